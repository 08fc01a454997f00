//! The reference scenario, idempotency and Unicode, end to end over HTTP.

use serde_json::json;

use crate::common::{TestServer, history_events, id_of, reference_body};

#[tokio::test]
async fn the_reference_order_goes_from_placed_to_delivered() {
    let server = TestServer::start(&[]).await;
    let placed = server.place_reference().await;
    assert_eq!(placed["status"], "placed");
    assert_eq!(
        placed["total"],
        json!({"amount": "279.98", "currency": "USD", "formatted": "$279.98"})
    );
    let id = id_of(&placed);

    let paid = server.wait_for(&id, "paid").await;
    assert_eq!(paid["payment"]["amount"]["amount"], "279.98");
    assert_eq!(server.stock("001").await, (149, 1));
    assert_eq!(server.stock("002").await, (199, 1));

    let (code, shipped) = server
        .post(
            &format!("/v1/orders/{id}/ship"),
            &json!({"carrier": "DHL", "trackingNumber": "JD014600006281234567"}),
        )
        .await;
    assert_eq!(code, 200, "{shipped}");
    assert_eq!(
        shipped["shipment"]["trackingNumber"],
        "JD014600006281234567"
    );
    assert_eq!(
        server.stock("001").await,
        (149, 0),
        "shipped goods leave the reserve"
    );

    let (code, delivered) = server
        .post(&format!("/v1/orders/{id}/deliver"), &json!(null))
        .await;
    assert_eq!(code, 200, "{delivered}");
    assert_eq!(delivered["status"], "delivered");
    assert_eq!(
        history_events(&delivered),
        [
            "OrderPlaced",
            "InventoryReserved",
            "PaymentCaptured",
            "OrderShipped",
            "OrderDelivered"
        ]
    );
    let actors: Vec<_> = delivered["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["actor"].as_str().unwrap())
        .collect();
    // Placement, shipping and delivery name the caller: here the tests' API key.
    assert_eq!(actors[1..3], ["system:inventory", "system:payment"]);
    assert!(
        [actors[0], actors[3], actors[4]]
            .iter()
            .all(|a| a.starts_with("key:")),
        "{actors:?}"
    );

    // The outbox kept every event in the reference shape.
    let (code, events) = server.get(&format!("/v1/orders/{id}/events")).await;
    assert_eq!(code, 200);
    let placed_event = &events[0];
    assert_eq!(placed_event["detailType"], "OrderPlaced");
    assert_eq!(placed_event["orderStatus"], "OrderPlaced");
    assert_eq!(placed_event["source"], "ecommerce.order");
    assert_eq!(placed_event["customerId"], "001");
    assert_eq!(
        placed_event["items"],
        json!([{"productId": "001", "quantity": 1}, {"productId": "002", "quantity": 1}])
    );
    assert_eq!(placed_event["totalAmount"].to_string(), "279.98");
    assert_eq!(events[1]["source"], "ecommerce.inventory");
    assert_eq!(events[2]["source"], "ecommerce.payment");
    assert_eq!(events.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn cancel_releases_reserved_stock_and_refunds_the_payment() {
    let server = TestServer::start(&[]).await;
    let id = id_of(&server.place_reference().await);
    server.wait_for(&id, "paid").await;
    assert_eq!(server.stock("001").await, (149, 1));
    let (code, canceled) = server
        .post(
            &format!("/v1/orders/{id}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(code, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["reason"], "changed my mind");
    assert_eq!(server.stock("001").await, (150, 0));
    assert_eq!(server.stock("002").await, (200, 0));
    let refunded = server
        .wait_until(&id, |o| o["payment"]["refunds"][0].is_object(), "a refund")
        .await;
    assert_eq!(
        refunded["payment"]["refunds"][0]["amount"]["amount"],
        "279.98"
    );
    assert_eq!(history_events(&refunded).last().unwrap(), "RefundIssued");
}

#[tokio::test]
async fn an_order_canceled_while_payment_is_in_flight_ends_refunded_with_no_stock_held() {
    // Each provider call takes half a second here. Once the authorization is in the provider's
    // ledger, the capture is under way: the cancel lands while the provider is charging.
    let server = TestServer::start(&["--payment-latency-ms", "500"]).await;
    let id = id_of(&server.place_reference().await);
    let ledger = server.dir.join("orderly.payments-ledger");
    let authorized = format!("authorize order:{id}:authorize ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !std::fs::read_to_string(&ledger).is_ok_and(|l| l.contains(&authorized)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the authorization never reached the ledger"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (code, _) = server
        .post(&format!("/v1/orders/{id}/cancel"), &json!(null))
        .await;
    assert_eq!(code, 200);
    server.wait_idle().await;
    let settled = server.get(&format!("/v1/orders/{id}")).await.1;
    assert_eq!(settled["status"], "canceled");
    // The charge that was in flight was recorded and then refunded in full.
    assert_eq!(
        settled["payment"]["refunds"][0]["amount"]["amount"], "279.98",
        "{settled}"
    );
    assert_eq!(server.stock("001").await, (150, 0));
    assert_eq!(server.stock("002").await, (200, 0));
}

#[tokio::test]
async fn shipping_a_canceled_order_is_a_conflict() {
    let server = TestServer::start(&[]).await;
    let id = id_of(&server.place_reference().await);
    server
        .post(&format!("/v1/orders/{id}/cancel"), &json!(null))
        .await;
    let (code, problem) = server
        .post(
            &format!("/v1/orders/{id}/ship"),
            &json!({"carrier": "DHL", "trackingNumber": "1"}),
        )
        .await;
    assert_eq!(code, 409);
    assert_eq!(
        problem["type"],
        "https://orderly.dev/problems/illegal-transition"
    );
    assert_eq!(
        problem["detail"],
        "cannot ship an order that is canceled; see the order's status and history"
    );
    let (code, _) = server
        .post(&format!("/v1/orders/{id}/deliver"), &json!(null))
        .await;
    assert_eq!(code, 409);
}

#[tokio::test]
async fn an_idempotent_replay_returns_the_same_order_and_a_reused_key_is_refused() {
    let server = TestServer::start(&[]).await;
    let send = |body: serde_json::Value| {
        server
            .client
            .post(server.url("/v1/orders"))
            .header("Idempotency-Key", "checkout-7f3a")
            .json(&body)
            .send()
    };
    let first = send(reference_body()).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let location = first.headers()["location"].to_str().unwrap().to_owned();
    let first: serde_json::Value = first.json().await.unwrap();

    let again = send(reference_body()).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"].to_str().unwrap(), location);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);

    let other = json!({"customerId": "001", "items": [{"productId": "001", "quantity": 2}]});
    let reused = send(other).await.unwrap();
    assert_eq!(reused.status(), 422);
    assert_eq!(reused.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = reused.json().await.unwrap();
    assert_eq!(problem["code"], "idempotency-key-reused");

    let (_, page) = server.get("/v1/orders?customerId=001").await;
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        1,
        "one order for one key"
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_order() {
    let server = TestServer::start(&[]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let client = server.client.clone();
        let url = server.url("/v1/orders");
        tasks.spawn(async move {
            let r = client
                .post(url)
                .header("Idempotency-Key", "race-1")
                .json(&reference_body())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        });
    }
    let ids: std::collections::HashSet<String> = tasks.join_all().await.into_iter().collect();
    assert_eq!(ids.len(), 1);
    let (_, page) = server.get("/v1/orders").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

const SAMPLES: [&str; 4] = [
    "東京都渋谷区 🏠",
    "شارع الملك فهد",
    "Zürich",
    "👩\u{200d}👩\u{200d}👧",
];

#[tokio::test]
async fn names_and_addresses_in_any_script_round_trip_byte_exact() {
    let server = TestServer::start(&[]).await;
    for (i, text) in SAMPLES.iter().enumerate() {
        let customer_id = format!("u{i}");
        let (code, customer) = server
            .post(
                "/v1/customers",
                &json!({"id": customer_id, "email": format!("u{i}@example.com"), "name": text}),
            )
            .await;
        assert_eq!(code, 201, "{customer}");
        let (_, back) = server.get(&format!("/v1/customers/{customer_id}")).await;
        assert_eq!(back["name"].as_str().unwrap().as_bytes(), text.as_bytes());

        let (code, product) = server
            .post("/v1/products", &json!({"id": format!("u{i}"), "name": text, "prices": [{"amount": "5.00", "currency": "USD"}], "stock": 3}))
            .await;
        assert_eq!(code, 201, "{product}");

        let address = json!({"name": text, "line1": text, "line2": text, "city": text, "region": text, "postalCode": text, "country": "JP"});
        let order = server
            .place(&json!({"customerId": customer_id, "items": [{"productId": format!("u{i}"), "quantity": 1}], "shippingAddress": address}))
            .await;
        // Compare the raw bytes of the stored document, not a re-encoded copy.
        let raw = server
            .client
            .get(server.url(&format!("/v1/orders/{}", id_of(&order))))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let back: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        for field in ["name", "line1", "line2", "city", "region", "postalCode"] {
            assert_eq!(
                back["shippingAddress"][field].as_str().unwrap().as_bytes(),
                text.as_bytes(),
                "{field}"
            );
        }
        assert_eq!(
            back["lines"][0]["name"].as_str().unwrap().as_bytes(),
            text.as_bytes()
        );
        let needle = serde_json::to_string(text).unwrap();
        assert!(
            std::str::from_utf8(&raw)
                .unwrap()
                .contains(&needle[1..needle.len() - 1]),
            "sent unescaped UTF-8"
        );
    }
}

#[tokio::test]
async fn orders_are_listed_newest_first_in_pages_with_filters() {
    let server = TestServer::start(&[]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let customer = if i % 2 == 0 { "001" } else { "002" };
        let order = server
            .place(&json!({"customerId": customer, "items": [{"productId": "001", "quantity": 1}]}))
            .await;
        ids.push(id_of(&order));
    }
    let mut seen = Vec::new();
    let mut url = "/v1/orders?limit=2".to_owned();
    loop {
        let (code, page) = server.get(&url).await;
        assert_eq!(code, 200, "{page}");
        seen.extend(page["items"].as_array().unwrap().iter().map(id_of));
        match page["nextCursor"].as_str() {
            Some(c) => url = format!("/v1/orders?limit=2&cursor={c}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let (_, page) = server.get("/v1/orders?customerId=002").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    for id in &ids {
        server.wait_for(id, "paid").await;
    }
    let (_, page) = server
        .get("/v1/orders?status=paid&customerId=001&limit=100")
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
}

/// Every string in `value` that is an RFC 3339 instant, with where it was found.
fn instants(value: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::String(s)
            if s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' =>
        {
            out.push((at.to_owned(), s.clone()));
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                instants(v, &format!("{at}[{i}]"), out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (k, v) in fields {
                instants(v, &format!("{at}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_instant_in_orders_and_events_has_exactly_three_fractional_digits() {
    let server = TestServer::start(&[]).await;
    let mut found = Vec::new();
    // Enough orders that some instants fall on a whole ten or hundred milliseconds.
    for _ in 0..20 {
        let order = server.place_reference().await;
        let id = id_of(&order);
        let paid = server.wait_for(&id, "paid").await;
        let (_, events) = server.get(&format!("/v1/orders/{id}/events")).await;
        instants(&paid, "order", &mut found);
        instants(&events, "events", &mut found);
    }
    assert!(found.len() > 100, "{}", found.len());
    for (at, text) in &found {
        let fraction = text
            .split_once('.')
            .map(|(_, f)| f)
            .unwrap_or_else(|| panic!("{at}: {text} has no fraction"));
        assert!(
            fraction.len() == 4 && fraction.ends_with('Z'),
            "{at}: {text} must end in .mmmZ"
        );
    }
}
