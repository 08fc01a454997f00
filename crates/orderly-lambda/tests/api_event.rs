//! The `api` function's router, fed a real API Gateway HTTP API (v2) proxy event, on DynamoDB.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use lambda_http::request::LambdaRequest;
use orderly_core::ports::{Store, SystemClock, UuidV7};
use orderly_core::{AppSettings, Orderly};
use orderly_store_dynamodb::testing::TestTable;
use serde_json::{Value, json};
use tower::ServiceExt;

/// An HTTP API payload 2.0 event, as API Gateway sends it.
fn proxy_event(method: &str, path: &str, body: Option<&str>, key: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": "abc123.execute-api.eu-west-1.amazonaws.com",
            "idempotency-key": key,
            "user-agent": "curl/8.5.0"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:10:15:30 +0000",
            "timeEpoch": 1795000530000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

async fn call(router: &axum::Router, event: Value) -> (u16, Value) {
    let request: LambdaRequest = serde_json::from_value(event).unwrap();
    let request: http::Request<lambda_http::Body> = request.into();
    let (parts, body) = request.into_parts();
    let request = http::Request::from_parts(parts, axum::body::Body::from(body.as_ref().to_vec()));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_gateway_event_places_the_reference_order_on_dynamodb() {
    let table = TestTable::create().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(table.store.clone());
    let app = Orderly::new(
        store,
        Arc::new(SystemClock),
        Arc::new(UuidV7),
        AppSettings::default(),
        Arc::new(tokio::sync::Notify::new()),
    );
    app.load_demo_data().await.unwrap();
    let router = orderly_api::router(app);
    let body = r#"{"customerId":"001","items":[{"productId":"001","quantity":1},{"productId":"002","quantity":1}]}"#;

    let (status, order) = call(
        &router,
        proxy_event("POST", "/v1/orders", Some(body), "lambda-1"),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(
        order["total"],
        json!({"amount": "279.98", "currency": "USD", "formatted": "$279.98"})
    );
    let (status, again) = call(
        &router,
        proxy_event("POST", "/v1/orders", Some(body), "lambda-1"),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(again["id"], order["id"], "the same Idempotency-Key replays");

    let path = format!("/v1/orders/{}", order["id"].as_str().unwrap());
    let (status, read) = call(&router, proxy_event("GET", &path, None, "unused")).await;
    assert_eq!(status, 200);
    assert_eq!(read["status"], "placed");
    let (status, problem) = call(
        &router,
        proxy_event("POST", "/v1/orders", Some("{"), "lambda-2"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(problem["code"], "malformed-json");
}
