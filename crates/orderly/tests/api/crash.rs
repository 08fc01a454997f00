//! Crash safety: `kill -9` loses no acknowledged order and repeats no step.

use std::time::Duration;

use crate::common::{TestServer, history_events, id_of};

#[tokio::test]
async fn a_server_killed_mid_saga_finishes_the_order_after_restart_without_doing_anything_twice() {
    // A slow payment provider, so the kill lands while the payment step is in flight.
    let mut server = TestServer::start(&["--payment-latency-ms", "2000"]).await;
    let id = id_of(&server.place_reference().await);
    // Orders acknowledged just before the kill must survive it too.
    let mut acknowledged = Vec::new();
    for _ in 0..5 {
        acknowledged.push(id_of(&server.place_reference().await));
    }
    server.wait_for(&id, "reserved").await;
    server.kill9().await;

    let dir = server.dir.clone();
    let restarted = TestServer::start_in(&dir, &[]).await;
    let paid = restarted.wait_for(&id, "paid").await;
    let events = history_events(&paid);
    assert_eq!(
        events,
        ["OrderPlaced", "InventoryReserved", "PaymentCaptured"],
        "each step once"
    );
    let (_, outbox) = restarted.get(&format!("/v1/orders/{id}/events")).await;
    let kinds: Vec<_> = outbox
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detailType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["OrderPlaced", "InventoryReserved", "PaymentCaptured"]
    );
    for other in &acknowledged {
        restarted.wait_for(other, "paid").await;
    }
    restarted.wait_idle().await;
    assert_eq!(
        restarted.stock("001").await,
        (144, 6),
        "six orders, each reserved exactly once"
    );
    assert_eq!(restarted.stock("002").await, (194, 6));
    let (_, page) = restarted.get("/v1/orders?limit=100").await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        6,
        "none lost, none doubled"
    );
    // The provider's own ledger: one charge per order, across both processes.
    let ledger = std::fs::read_to_string(dir.join("orderly.payments-ledger")).unwrap();
    let mut captures: Vec<&str> = ledger
        .lines()
        .filter(|l| l.starts_with("capture "))
        .collect();
    assert_eq!(captures.len(), 6, "{ledger}");
    captures.sort_unstable();
    captures.dedup();
    assert_eq!(captures.len(), 6, "no order charged twice: {ledger}");
    assert!(ledger.contains(&format!("capture order:{id}:capture ")));
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_cleanly() {
    let mut server = TestServer::start(&["--payment-latency-ms", "300"]).await;
    let id = id_of(&server.place_reference().await);
    server.wait_for(&id, "reserved").await;
    let status = server.terminate().await;
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        server.log()
    );
    assert!(server.log().contains("dispatcher stopped"));
    // The step that was in flight finished before exit.
    let dir = server.dir.clone();
    let restarted = TestServer::start_in(&dir, &["--payment-latency-ms", "5000"]).await;
    let (_, order) = restarted.get(&format!("/v1/orders/{id}")).await;
    assert_eq!(order["status"], "paid", "{order}");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn a_second_server_on_the_same_embedded_database_refuses_to_start() {
    let server = TestServer::start(&[]).await;
    let db = format!("sqlite://{}", server.dir.join("orderly.db").display());
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderly"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &db])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("another `orderly serve` is using"),
        "{stderr}"
    );
    assert_eq!(
        server.get("/healthz").await.0,
        200,
        "the first one is untouched"
    );
}
