//! Products, customers, stock adjustments, health and the API description.

use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn products_are_created_updated_and_listed() {
    let server = TestServer::start(&[]).await;
    let (code, created) = server
        .post("/v1/products", &json!({"id": "003", "name": "Bluetooth Speaker", "prices": [{"amount": "5000", "currency": "JPY"}, {"amount": "39.50", "currency": "USD"}, {"amount": "12.250", "currency": "KWD"}], "stock": 40}))
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["prices"],
        json!([{"amount": "5000", "currency": "JPY", "formatted": "¥5,000"}, {"amount": "12.250", "currency": "KWD", "formatted": "KWD 12.250"}, {"amount": "39.50", "currency": "USD", "formatted": "$39.50"}])
    );
    let response = server
        .client
        .patch(server.url("/v1/products/003"))
        .json(&json!({"prices": [{"amount": "42.00", "currency": "USD"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, product) = server.get("/v1/products/003").await;
    assert_eq!(
        product["prices"],
        json!([{"amount": "42.00", "currency": "USD", "formatted": "$42.00"}])
    );
    assert_eq!(product["name"], "Bluetooth Speaker");
    let (_, page) = server.get("/v1/products?limit=2").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["nextCursor"].as_str().unwrap();
    let (_, rest) = server
        .get(&format!("/v1/products?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest["items"][0]["id"], "003");
    assert!(rest["nextCursor"].is_null());
}

#[tokio::test]
async fn a_jpy_order_totals_whole_yen() {
    let server = TestServer::start(&[]).await;
    server
        .post("/v1/products", &json!({"id": "tea", "name": "抹茶", "prices": [{"amount": "1500", "currency": "JPY"}], "stock": 10}))
        .await;
    let order = server
        .place(&json!({"customerId": "001", "currency": "JPY", "items": [{"productId": "tea", "quantity": 3}]}))
        .await;
    assert_eq!(
        order["total"],
        json!({"amount": "4500", "currency": "JPY", "formatted": "¥4,500"})
    );
    assert_eq!(order["currency"], "JPY");
}

#[tokio::test]
async fn stock_adjustments_are_recorded_with_their_reason() {
    let server = TestServer::start(&[]).await;
    let (code, level) = server
        .post(
            "/v1/inventory/001/adjustments",
            &json!({"delta": 25, "reason": "delivery from supplier"}),
        )
        .await;
    assert_eq!(code, 201, "{level}");
    assert_eq!(level["available"], 175);
    let (code, _) = server
        .post(
            "/v1/inventory/001/adjustments",
            &json!({"delta": -5, "reason": "damaged in the warehouse"}),
        )
        .await;
    assert_eq!(code, 201);
    let (_, stock) = server.get("/v1/inventory/001").await;
    assert_eq!(stock["available"], 170);
    assert_eq!(stock["reserved"], 0);
    assert_eq!(stock["adjustments"][0]["delta"], -5);
    assert_eq!(
        stock["adjustments"][0]["reason"],
        "damaged in the warehouse"
    );
    assert_eq!(stock["adjustments"][1]["delta"], 25);
}

#[tokio::test]
async fn customers_are_created_and_read() {
    let server = TestServer::start(&[]).await;
    let (code, c) = server
        .post(
            "/v1/customers",
            &json!({"id": "003", "email": "yamada@example.jp", "name": "山田 太郎"}),
        )
        .await;
    assert_eq!(code, 201, "{c}");
    let (_, back) = server.get("/v1/customers/003").await;
    assert_eq!(back["email"], "yamada@example.jp");
    let (_, alice) = server.get("/v1/customers/001").await;
    assert_eq!(alice["name"], "Alice Johnson", "demo data is loaded");
}

#[tokio::test]
async fn health_openapi_and_the_api_page_are_served_without_a_cdn() {
    let server = TestServer::start(&[]).await;
    assert_eq!(server.get("/healthz").await, (200, json!({"status": "ok"})));
    let (code, ready) = server.get("/readyz").await;
    assert_eq!(code, 200);
    assert_eq!(ready["status"], "ready");
    let (code, spec) = server.get("/openapi.json").await;
    assert_eq!(code, 200);
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    // Every route the server has, but its HTML pages, GraphiQL's files and the metrics text,
    // is in the served document, with who may call it and the answers every route gives.
    let not_json = ["/docs", "/graphql/assets/{file}", "/metrics", "/"];
    for route in orderly_api::route_table() {
        if not_json.contains(&route.path.as_str()) {
            continue;
        }
        let method = route.method.as_str().to_lowercase();
        let operation = &spec["paths"][&route.path][&method];
        assert!(
            operation.is_object(),
            "{} {} missing from the OpenAPI document",
            route.method,
            route.path
        );
        assert!(operation["security"].is_array(), "{method} {}", route.path);
        for status in ["401", "503"] {
            assert!(
                operation["responses"][status].is_object(),
                "{method} {} lacks {status}",
                route.path
            );
        }
    }
    assert!(spec["components"]["securitySchemes"]["apiKey"].is_object());
    assert!(spec["components"]["securitySchemes"]["accessToken"].is_object());
    let page = server.client.get(server.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/openapi.json"));
    assert!(
        html.contains("idempotency-key-reused"),
        "problem types are listed"
    );
    assert!(
        !html.contains("src=\"http"),
        "no script or style from another host"
    );
    assert!(
        !html.contains("href=\"http"),
        "no stylesheet from another host"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let server = TestServer::start(&[]).await;
    let r = server
        .client
        .get(server.url("/v1/orders/nope"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-123");
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["requestId"], "trace-123");
    let r = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"].to_str().unwrap().len(), 32);
}

#[tokio::test]
async fn json_logs_carry_the_request_span_with_the_order_id() {
    let server = TestServer::start(&["--log-format", "json"]).await;
    let order = server.place_reference().await;
    let id = order["id"].as_str().unwrap();
    server.wait_for(id, "paid").await;
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let request_line = lines
        .iter()
        .find(|l| l["span"]["order_id"] == id && l["span"]["method"] == "POST")
        .unwrap_or_else(|| panic!("no request line with order_id {id} in\n{log}"));
    assert!(request_line["span"]["request_id"].is_string());
    assert_eq!(request_line["status"], 201);
}

#[tokio::test]
async fn kwd_amounts_keep_three_places_in_orders_and_events() {
    let server = TestServer::start(&[]).await;
    server
        .post(
            "/v1/products",
            &json!({"id": "dates", "name": "تمر", "prices": [{"amount": "1.250", "currency": "KWD"}], "stock": 10}),
        )
        .await;
    let order = server
        .place(&json!({"customerId": "001", "currency": "KWD", "items": [{"productId": "dates", "quantity": 2}]}))
        .await;
    assert_eq!(
        order["total"],
        json!({"amount": "2.500", "currency": "KWD", "formatted": "KWD 2.500"})
    );
    let id = order["id"].as_str().unwrap();
    let raw = server
        .client
        .get(server.url(&format!("/v1/orders/{id}/events")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains(r#""totalAmount":2.500,"#), "{raw}");
    assert!(
        raw.contains(r#""total":{"amount":"2.500","currency":"KWD"}"#),
        "{raw}"
    );
}
