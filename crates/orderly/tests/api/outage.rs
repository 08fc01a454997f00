//! The database going away under a running node: requests are refused fast with 503 and
//! `Retry-After`, `/readyz` says not ready, and once the database is back the node is ready
//! again and the saga finishes what the outage interrupted — soon, not when a lease runs out.

use std::time::{Duration, Instant};

use orderly_store_postgres::testing::{TestSchema, admin_url};
use orderly_testkit::proxy::FaultProxy;
use serde_json::json;

use crate::common::{TestServer, id_of, reference_body};

/// `host:port` of a database URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// Polls `/readyz` until it answers `status`; panics after `limit`.
async fn readiness_becomes(server: &TestServer, status: u16, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let r = server
            .client
            .get(server.url("/readyz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "/readyz still {} after {limit:?}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_refused_fast_and_the_saga_resumes_soon_after_it() {
    let schema = TestSchema::create().await.unwrap();
    let upstream = host_port(&admin_url());
    let address = tokio::net::lookup_host(&upstream)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = FaultProxy::start(address).await;
    let url = proxy.rewrite(&schema.url, &upstream);
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_node(
        dir.path(),
        "server.log",
        &url,
        &[
            // The lease is long on purpose: what finishes the orders must not be its expiry.
            "--job-lease-secs",
            "60",
            // Each payment call takes a while, so the outage meets a step in flight.
            "--payment-latency-ms",
            "1000",
            "--retry-interval-ms",
            "200",
            "--retry-max-attempts",
            "10",
        ],
    )
    .await;
    let before = server.place_reference().await;
    // Stock reserved: the payment step (a second per provider call) has started.
    server.wait_for(&id_of(&before), "reserved").await;

    proxy.cut();
    let cut_at = Instant::now();
    // A new order while the database is unreachable: refused in about the acquire timeout.
    let started = Instant::now();
    let refused = server
        .client
        .post(server.url("/v1/orders"))
        .header("idempotency-key", "outage-order-1")
        .json(&reference_body())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert!(took < Duration::from_secs(3), "refused after {took:?}");
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable");
    // Readiness follows.
    readiness_becomes(&server, 503, Duration::from_secs(5)).await;
    // Liveness does not depend on the database.
    let (code, _) = server.get("/healthz").await;
    assert_eq!(code, 200);
    // Three seconds of outage.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(cut_at.elapsed())).await;

    proxy.restore();
    let back = Instant::now();
    readiness_becomes(&server, 200, Duration::from_secs(10)).await;
    // The client retries with the same key: placed once.
    let (code, placed) = {
        let r = server
            .client
            .post(server.url("/v1/orders"))
            .header("idempotency-key", "outage-order-1")
            .json(&reference_body())
            .send()
            .await
            .unwrap();
        crate::common::status_and_json(r).await
    };
    assert_eq!(code, 201, "{placed}");
    // Both orders settle well before the 60 s lease would have freed any step.
    server.wait_for(&id_of(&before), "paid").await;
    server.wait_for(&id_of(&placed), "paid").await;
    assert!(
        back.elapsed() < Duration::from_secs(20),
        "settled {:?} after the database returned",
        back.elapsed()
    );
    let (_, orders) = server.get("/v1/orders").await;
    assert_eq!(orders["items"].as_array().unwrap().len(), 2, "{orders}");
    let (_, stock) = server.get("/v1/inventory/001").await;
    assert_eq!(stock["available"], json!(148), "{stock}");
    // The payment step in flight at the cut could not record its failure, and kept trying
    // until the database was back.
    let log = server.log();
    assert!(
        log.contains("could not record the step's failure; trying again"),
        "{log}"
    );
    assert!(!log.contains("runs again when its lease runs out"), "{log}");
    drop(server);
    drop(schema);
}

/// A small tmpfs mounted on a folder for as long as this lives.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    /// Writes zeros until the disk is full; returns the file.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_not_ready_while_the_embedded_disk_is_full_and_ready_once_it_has_room() {
    let Some(disk) = SmallDisk::mount(48) else {
        // scripts/test demands it where it runs as root; elsewhere (a laptop, a container
        // without CAP_SYS_ADMIN) the test says so and steps aside.
        assert!(
            std::env::var_os("ORDERLY_REQUIRE_TMPFS").is_none(),
            "ORDERLY_REQUIRE_TMPFS is set but a tmpfs could not be mounted"
        );
        eprintln!("skipped: mounting a small disk needs root with CAP_SYS_ADMIN");
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", disk.dir.path().join("orderly.db").display());
    let server = TestServer::start_node(logs.path(), "server.log", &db, &[]).await;
    readiness_becomes(&server, 200, Duration::from_secs(5)).await;

    let filler = disk.fill();
    readiness_becomes(&server, 503, Duration::from_secs(5)).await;
    let r = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(server.log().contains("is full"), "{}", server.log());

    std::fs::remove_file(filler).unwrap();
    readiness_becomes(&server, 200, Duration::from_secs(5)).await;
    let order = server.place_reference().await;
    server.wait_for(&id_of(&order), "paid").await;
}
