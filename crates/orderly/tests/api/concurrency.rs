//! Stock is exact under contention.

use serde_json::json;

use crate::common::{TestServer, id_of};

#[tokio::test]
async fn sixty_four_buyers_of_ten_units_leave_exactly_ten_orders_holding_stock() {
    let server = TestServer::start(&[]).await;
    let (code, _) = server
        .post("/v1/products", &json!({"id": "hot", "name": "Limited edition", "prices": [{"amount": "49.00", "currency": "USD"}], "stock": 10}))
        .await;
    assert_eq!(code, 201);
    let mut buyers = tokio::task::JoinSet::new();
    for i in 0..64 {
        let client = server.client.clone();
        let url = server.url("/v1/orders");
        buyers.spawn(async move {
            let r = client
                .post(url)
                .header("Idempotency-Key", format!("buyer-{i}"))
                .json(&json!({"customerId": if i % 2 == 0 { "001" } else { "002" }, "items": [{"productId": "hot", "quantity": 1}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "every order is acknowledged");
            id_of(&r.json().await.unwrap())
        });
    }
    let ids = buyers.join_all().await;
    assert_eq!(ids.len(), 64);
    server.wait_idle().await;
    let mut paid = 0;
    let mut rejected = 0;
    for id in &ids {
        let (_, order) = server.get(&format!("/v1/orders/{id}")).await;
        match order["status"].as_str().unwrap() {
            "paid" => paid += 1,
            "rejected" => {
                rejected += 1;
                assert!(
                    order["reason"]
                        .as_str()
                        .unwrap()
                        .contains("not enough stock of product hot"),
                    "{order}"
                );
            }
            other => panic!("order {id} ended {other}"),
        }
    }
    assert_eq!((paid, rejected), (10, 54));
    assert_eq!(server.stock("hot").await, (0, 10));
}
