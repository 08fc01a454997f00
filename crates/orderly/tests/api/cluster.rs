//! Several `orderly serve` nodes on one PostgreSQL database (a fresh schema per test).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use orderly_store_postgres::testing::TestSchema;
use serde_json::json;
use tempfile::TempDir;

use crate::common::{TestServer, history_events, id_of, reference_body};

struct Cluster {
    nodes: Vec<TestServer>,
    dir: TempDir,
    schema: TestSchema,
}

impl Cluster {
    /// `n` nodes sharing a schema and a payment ledger; a dead node's work waits 2 s.
    async fn start(n: usize, extra: &[&str]) -> Cluster {
        let schema = TestSchema::create().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("payments.ledger");
        let mut args = vec![
            "--job-lease-secs",
            "2",
            "--payment-ledger",
            ledger.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut nodes = Vec::new();
        for i in 0..n {
            nodes.push(
                TestServer::start_node(dir.path(), &format!("node{i}.log"), &schema.url, &args)
                    .await,
            );
        }
        Cluster { nodes, dir, schema }
    }

    fn ledger(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("payments.ledger")).unwrap_or_default()
    }

    /// The first node still answering.
    async fn any(&self) -> &TestServer {
        for node in &self.nodes {
            if node.client.get(node.url("/healthz")).send().await.is_ok() {
                return node;
            }
        }
        panic!("no node answers");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_on_an_empty_database_again_and_from_three_nodes_at_once() {
    let schema = TestSchema::create().await.unwrap();
    let migrate = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_orderly"))
            .args(["migrate", "--database-url", &schema.url])
            .output()
    };
    let (a, b, c) = tokio::join!(migrate(), migrate(), migrate());
    for out in [a, b, c] {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("schema up to date"));
    }
    let again = migrate().await.unwrap();
    assert!(again.status.success(), "re-running is a no-op");
    // And three nodes starting at once on a fresh schema migrate it and load demo data once.
    let cluster = Cluster::start(3, &[]).await;
    let (_, products) = cluster.nodes[2].get("/v1/products").await;
    assert_eq!(products["items"].as_array().unwrap().len(), 2);
    drop(schema);
    drop(cluster.schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_buyers_across_three_nodes_sell_exactly_the_stock() {
    let cluster = Cluster::start(3, &[]).await;
    let (code, _) = cluster.nodes[0]
        .post("/v1/products", &json!({"id": "hot", "name": "Limited", "prices": [{"amount": "49.00", "currency": "USD"}], "stock": 10}))
        .await;
    assert_eq!(code, 201);
    let mut buyers = tokio::task::JoinSet::new();
    for i in 0..64 {
        let node = &cluster.nodes[i % 3];
        let (client, url) = (node.client.clone(), node.url("/v1/orders"));
        buyers.spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"customerId": "001", "items": [{"productId": "hot", "quantity": 1}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            id_of(&r.json().await.unwrap())
        });
    }
    let ids = buyers.join_all().await;
    let node = &cluster.nodes[1];
    node.wait_idle().await;
    let mut outcome: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let (_, order) = node.get(&format!("/v1/orders/{id}")).await;
        *outcome
            .entry(order["status"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(outcome.get("paid"), Some(&10), "{outcome:?}");
    assert_eq!(outcome.get("rejected"), Some(&54), "{outcome:?}");
    assert_eq!(node.stock("hot").await, (0, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_stream_loses_no_acknowledged_order_and_charges_none_twice() {
    let mut cluster = Cluster::start(3, &["--payment-latency-ms", "50"]).await;
    let endpoints: Vec<(reqwest::Client, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.client.clone(), n.url("/v1/orders")))
        .collect();
    let total = 60;
    let stream = tokio::spawn(async move {
        // A client behind a load balancer: round robin, and on a dead node the same request
        // (same Idempotency-Key) goes to the next one.
        let mut acknowledged = Vec::new();
        for i in 0..total {
            let key = format!("stream-{i}");
            let mut attempt = i;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (client, url) = &endpoints[attempt % endpoints.len()];
                let sent = client
                    .post(url)
                    .header("Idempotency-Key", &key)
                    .json(&reference_body())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        acknowledged.push(id_of(&r.json().await.unwrap()));
                        break;
                    }
                    _ => {
                        assert!(Instant::now() < deadline, "order {i} never acknowledged");
                        attempt += 1;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        acknowledged
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    cluster.nodes[1].kill9().await;
    let acknowledged = stream.await.unwrap();
    assert_eq!(acknowledged.len(), total);
    let survivor = cluster.any().await;
    for id in &acknowledged {
        let paid = survivor.wait_for(id, "paid").await;
        assert_eq!(
            history_events(&paid),
            ["OrderPlaced", "InventoryReserved", "PaymentCaptured"],
            "each step once, in order"
        );
    }
    survivor.wait_idle().await;
    let (_, page) = survivor.get("/v1/orders?limit=100").await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        total,
        "none lost, none created twice"
    );
    assert_eq!(
        survivor.stock("001").await,
        (150 - total as i64, total as i64)
    );
    let ledger = cluster.ledger();
    let captures: Vec<&str> = ledger
        .lines()
        .filter(|l| l.starts_with("capture "))
        .collect();
    assert_eq!(captures.len(), total, "one charge per order:\n{ledger}");
    for id in &acknowledged {
        assert_eq!(
            captures.iter().filter(|l| l.contains(id.as_str())).count(),
            1,
            "order {id} charged once"
        );
    }
}
