//! The saga's failure paths: declines, transient failures, exhausted retries.

use serde_json::json;

use crate::common::{TestServer, history_events, id_of};

#[tokio::test]
async fn a_declined_payment_rejects_the_order_and_releases_its_stock() {
    let server = TestServer::start(&["--payment-decline-rate", "1"]).await;
    let id = id_of(&server.place_reference().await);
    let rejected = server.wait_for(&id, "rejected").await;
    assert!(
        rejected["reason"]
            .as_str()
            .unwrap()
            .contains("payment declined"),
        "{rejected}"
    );
    assert!(rejected["payment"].is_null());
    assert_eq!(
        history_events(&rejected),
        ["OrderPlaced", "InventoryReserved", "PaymentFailed"]
    );
    server.wait_idle().await;
    assert_eq!(server.stock("001").await, (150, 0));
    assert_eq!(server.stock("002").await, (200, 0));
}

#[tokio::test]
async fn transient_payment_failures_are_retried_until_paid() {
    let server = TestServer::start(&[
        "--payment-transient-rate",
        "0.6",
        // Authorize and capture each fail 60 % of the time: a try gets through 16 % of the
        // time, so 80 retries leave each order a one-in-a-million chance of running out.
        "--retry-max-attempts",
        "80",
        "--retry-backoff-rate",
        "1",
    ])
    .await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(id_of(&server.place_reference().await));
    }
    for id in &ids {
        let paid = server.wait_for(id, "paid").await;
        assert!(paid["needsAttention"].is_null());
        assert_eq!(
            history_events(&paid)
                .iter()
                .filter(|e| *e == "PaymentCaptured")
                .count(),
            1
        );
    }
    assert!(
        server.log().contains("will retry"),
        "at 60 % failures some step was retried"
    );
    assert_eq!(server.stock("001").await, (142, 8));
}

#[tokio::test]
async fn an_order_out_of_retries_needs_attention_with_the_last_error() {
    let server = TestServer::start(&[
        "--payment-transient-rate",
        "1",
        "--retry-max-attempts",
        "2",
        "--retry-interval-ms",
        "5",
        "--retry-payment-unavailable",
        "400ms",
    ])
    .await;
    let placed = std::time::Instant::now();
    let id = id_of(&server.place_reference().await);
    let flagged = server
        .wait_until(&id, |o| o["needsAttention"].is_object(), "needs attention")
        .await;
    assert!(
        placed.elapsed() >= std::time::Duration::from_millis(400),
        "the stage-1 try waits its class's wait before the order is flagged"
    );
    let attention = &flagged["needsAttention"];
    assert_eq!(attention["step"], "payment");
    assert_eq!(
        attention["attempts"], 4,
        "the first try, two retries and the stage-1 try"
    );
    assert!(
        attention["error"]
            .as_str()
            .unwrap()
            .contains("simulated authorize outage"),
        "{attention}"
    );
    assert_eq!(
        flagged["status"], "reserved",
        "nothing was charged; the stock stays held for staff to decide"
    );
    assert_eq!(
        history_events(&flagged).last().unwrap(),
        "OrderNeedsAttention"
    );
    server.wait_idle().await;
    // Staff can still cancel it, which releases the stock.
    let (code, canceled) = server
        .post(
            &format!("/v1/orders/{id}/cancel"),
            &json!({"reason": "payment provider down"}),
        )
        .await;
    assert_eq!(code, 200, "{canceled}");
    assert_eq!(server.stock("001").await, (150, 0));
}

#[tokio::test]
async fn an_order_larger_than_the_stock_is_rejected_and_reserves_nothing() {
    let server = TestServer::start(&[]).await;
    let order = server
        .place(&json!({"customerId": "001", "items": [{"productId": "001", "quantity": 2}, {"productId": "002", "quantity": 201}]}))
        .await;
    let rejected = server.wait_for(&id_of(&order), "rejected").await;
    assert_eq!(
        rejected["reason"],
        "not enough stock of product 002 (201 asked)"
    );
    assert_eq!(
        server.stock("001").await,
        (150, 0),
        "the line that fitted was not reserved either"
    );
    assert_eq!(server.stock("002").await, (200, 0));
}
