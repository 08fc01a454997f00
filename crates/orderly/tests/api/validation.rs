//! Every malformed input gets a clear 4xx problem — never a 500, never a stored order.

use serde_json::{Value, json};

use crate::common::{TestServer, status_and_json};

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Body,
    headers: Vec<(&'static str, String)>,
    status: u16,
    code: &'static str,
    /// A word the detail must contain, so the caller learns what to fix.
    says: &'static str,
}

enum Body {
    None,
    Json(Value),
    Raw(&'static str, String),
}

fn order(items: Value) -> Body {
    Body::Json(json!({"customerId": "001", "items": items}))
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &str,
    body: Body,
    status: u16,
    code: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        body,
        headers: Vec::new(),
        status,
        code,
        says,
    }
}

fn cases() -> Vec<Case> {
    let one = json!([{"productId": "001", "quantity": 1}]);
    let long_id = "x".repeat(65);
    let address = |field: &str, value: Value| {
        let mut a = json!({"name": "A", "line1": "B", "city": "C", "country": "JP"});
        a[field] = value;
        Body::Json(
            json!({"customerId": "001", "items": [{"productId": "001", "quantity": 1}], "shippingAddress": a}),
        )
    };
    let hundred_one: Vec<Value> = (0..101)
        .map(|_| json!({"productId": "001", "quantity": 1}))
        .collect();
    vec![
        case("malformed JSON", "POST", "/v1/orders", Body::Raw("application/json", "{\"customerId\": \"001\", ".into()), 400, "malformed-json", "EOF"),
        case("not JSON at all", "POST", "/v1/orders", Body::Raw("application/json", "customerId=001".into()), 400, "malformed-json", "expected"),
        case("no content type", "POST", "/v1/orders", Body::Raw("text/plain", "{}".into()), 415, "unsupported-media-type", "Content-Type"),
        // serde alone reads a struct from an array of its fields; the API takes objects only.
        case("array for an order", "POST", "/v1/orders", Body::Json(json!(["001", [["001", 1]]])), 422, "validation", "invalid type: sequence"),
        case("array for a line", "POST", "/v1/orders", order(json!([["001", 1]])), 422, "validation", "items[0]: invalid type: sequence"),
        case("array for a cart", "POST", "/v1/carts", Body::Json(json!([null, null])), 422, "validation", "invalid type: sequence"),
        case("unknown field", "POST", "/v1/orders", Body::Json(json!({"customerId": "001", "items": one, "coupon": "X"})), 422, "validation", "unknown field `coupon`"),
        case("missing items", "POST", "/v1/orders", Body::Json(json!({"customerId": "001"})), 422, "validation", "items"),
        case("wrong type", "POST", "/v1/orders", order(json!([{"productId": "001", "quantity": "two"}])), 422, "validation", "quantity"),
        case("quantity zero", "POST", "/v1/orders", order(json!([{"productId": "001", "quantity": 0}])), 422, "validation", "between 1 and 10000"),
        case("quantity negative", "POST", "/v1/orders", order(json!([{"productId": "001", "quantity": -3}])), 422, "validation", "between 1 and 10000"),
        case("quantity too large", "POST", "/v1/orders", order(json!([{"productId": "001", "quantity": 10001}])), 422, "validation", "between 1 and 10000"),
        case("quantity beyond i64", "POST", "/v1/orders", Body::Raw("application/json", "{\"customerId\":\"001\",\"items\":[{\"productId\":\"001\",\"quantity\":99999999999999999999999}]}".into()), 422, "validation", "quantity"),
        case("fractional quantity", "POST", "/v1/orders", order(json!([{"productId": "001", "quantity": 1.5}])), 422, "validation", "quantity"),
        case("no lines", "POST", "/v1/orders", order(json!([])), 422, "validation", "at least one line"),
        case("too many lines", "POST", "/v1/orders", order(Value::Array(hundred_one)), 422, "validation", "limit is 100"),
        case("over-long product id", "POST", "/v1/orders", order(json!([{"productId": long_id, "quantity": 1}])), 422, "validation", "limit is 64"),
        case("over-long customer id", "POST", "/v1/orders", Body::Json(json!({"customerId": "c".repeat(65), "items": one})), 422, "validation", "limit is 64"),
        case("unknown product", "POST", "/v1/orders", order(json!([{"productId": "999", "quantity": 1}])), 422, "validation", "no known product"),
        case("unknown customer", "POST", "/v1/orders", Body::Json(json!({"customerId": "404", "items": one})), 422, "validation", "POST /v1/customers"),
        case("unsupported currency", "POST", "/v1/orders", Body::Json(json!({"customerId": "001", "items": one, "currency": "ABC"})), 422, "validation", "ISO 4217"),
        case("currency without a price", "POST", "/v1/orders", Body::Json(json!({"customerId": "001", "items": one, "currency": "JPY"})), 422, "validation", "no price in JPY"),
        case("over-long address line", "POST", "/v1/orders", address("line1", json!("é".repeat(201))), 422, "validation", "shippingAddress.line1"),
        case("control character in address", "POST", "/v1/orders", address("city", json!("a\nb")), 422, "validation", "control characters"),
        case("bad country", "POST", "/v1/orders", address("country", json!("Japan")), 422, "validation", "ISO 3166-1"),
        case("body over 1 MiB", "POST", "/v1/orders", Body::Raw("application/json", format!("{{\"customerId\":\"{}\"}}", "a".repeat(1_100_000))), 413, "payload-too-large", "1048576"),
        Case { headers: vec![("Idempotency-Key", "k".repeat(256))], ..case("over-long idempotency key", "POST", "/v1/orders", order(one.clone()), 422, "validation", "Idempotency-Key") },
        case("order id that is no id", "GET", "/v1/orders/12345", Body::None, 404, "not-found", "12345"),
        case("unknown order", "GET", "/v1/orders/01a20209-de3c-70c5-99c1-72f98cb6e41f", Body::None, 404, "not-found", "order"),
        case("unknown route", "GET", "/v1/nothing-here", Body::None, 404, "not-found", "/docs"),
        case("wrong method", "DELETE", "/v1/orders", Body::None, 405, "method-not-allowed", "method"),
        case("bad status filter", "GET", "/v1/orders?status=lost", Body::None, 422, "validation", "placed, reserved"),
        case("bad limit", "GET", "/v1/orders?limit=1000", Body::None, 422, "validation", "between 1 and 100"),
        case("non-numeric limit", "GET", "/v1/orders?limit=ten", Body::None, 400, "bad-request", "limit"),
        // The audit log's pages are 1 to 500 entries; 0 and 501 used to be clamped silently.
        case("audit page of none", "GET", "/v1/audit?limit=0", Body::None, 422, "validation", "between 1 and 500"),
        case("audit page too large", "GET", "/v1/audit?limit=501", Body::None, 422, "validation", "between 1 and 500"),
        case("unknown query parameter", "GET", "/v1/orders?sort=asc", Body::None, 400, "bad-request", "sort"),
        case("foreign cursor", "GET", "/v1/orders?cursor=abc", Body::None, 400, "invalid-cursor", "cursor"),
        case("ship without tracking", "POST", "/v1/orders/01a20209-de3c-70c5-99c1-72f98cb6e41f/ship", Body::Json(json!({"carrier": "DHL"})), 422, "validation", "trackingNumber"),
        case("product with float price", "POST", "/v1/products", Body::Json(json!({"id": "p1", "name": "P", "prices": [{"amount": 9.99, "currency": "USD"}]})), 422, "validation", "amount"),
        case("product with too precise price", "POST", "/v1/products", Body::Json(json!({"id": "p1", "name": "P", "prices": [{"amount": "9.999", "currency": "USD"}]})), 422, "validation", "decimal place"),
        case("product with fractional yen", "POST", "/v1/products", Body::Json(json!({"id": "p1", "name": "P", "prices": [{"amount": "100.5", "currency": "JPY"}]})), 422, "validation", "JPY has 0"),
        case("product without prices", "POST", "/v1/products", Body::Json(json!({"id": "p1", "name": "P", "prices": []})), 422, "validation", "at least one price"),
        case("product id taken", "POST", "/v1/products", Body::Json(json!({"id": "001", "name": "P", "prices": [{"amount": "1.00", "currency": "USD"}]})), 409, "already-exists", "001"),
        case("customer with bad email", "POST", "/v1/customers", Body::Json(json!({"id": "c9", "email": "nope", "name": "N"})), 422, "validation", "e-mail"),
        case("adjustment of zero", "POST", "/v1/inventory/001/adjustments", Body::Json(json!({"delta": 0, "reason": "x"})), 422, "validation", "non-zero"),
        case("adjustment below zero", "POST", "/v1/inventory/001/adjustments", Body::Json(json!({"delta": -151, "reason": "count"})), 409, "insufficient-stock", "001"),
        case("adjustment without reason", "POST", "/v1/inventory/001/adjustments", Body::Json(json!({"delta": 5, "reason": ""})), 422, "validation", "reason"),
        case("path that is not UTF-8", "GET", "/v1/orders/%FF", Body::None, 400, "bad-request", "UTF-8"),
        case("adjustment of the smallest i64", "POST", "/v1/inventory/001/adjustments", Body::Raw("application/json", "{\"delta\":-9223372036854775808,\"reason\":\"x\"}".into()), 422, "validation", "non-zero"),
        case("stock of unknown product", "GET", "/v1/inventory/nope", Body::None, 404, "not-found", "nope"),
    ]
}

#[tokio::test]
async fn every_malformed_input_gets_its_4xx_problem() {
    let server = TestServer::start(&[]).await;
    let mut failures = Vec::new();
    for c in cases() {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut request = server.client.request(method, server.url(&c.path));
        for (name, value) in &c.headers {
            request = request.header(*name, value);
        }
        request = match c.body {
            Body::None => request,
            Body::Json(v) => request.json(&v),
            Body::Raw(content_type, text) => {
                request.header("content-type", content_type).body(text)
            }
        };
        let response = request.send().await.unwrap();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let (status, problem) = status_and_json(response).await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        let ok = status == c.status
            && content_type.as_deref() == Some("application/problem+json")
            && problem["code"] == c.code
            && problem["type"] == format!("https://orderly.dev/problems/{}", c.code)
            && problem["status"] == c.status
            && problem["title"].is_string()
            && detail.contains(c.says);
        if !ok {
            failures.push(format!(
                "{}: expected {} {} mentioning {:?}, got {status} {content_type:?} {problem}",
                c.name, c.status, c.code, c.says
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nothing bad was stored and the server is still healthy.
    let (_, page) = server.get("/v1/orders").await;
    assert_eq!(page["items"], json!([]));
    assert_eq!(server.stock("001").await, (150, 0));
    assert_eq!(server.get("/healthz").await.0, 200);
    assert!(!server.log().contains("panicked"));
}

#[tokio::test]
async fn validation_problems_list_every_bad_field() {
    let server = TestServer::start(&[]).await;
    let body = json!({
        "customerId": "001",
        "items": [{"productId": "001", "quantity": 0}, {"productId": "bad id", "quantity": 20000}],
        "currency": "usd"
    });
    let (status, problem) = server.post("/v1/orders", &body).await;
    assert_eq!(status, 422);
    let fields: Vec<_> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fields,
        [
            "items[0].quantity",
            "items[1].productId",
            "items[1].quantity",
            "currency"
        ]
    );
}

#[tokio::test]
async fn an_integer_may_be_written_as_any_number_without_a_fraction() {
    // JSON Schema's `integer`, which the OpenAPI document states: 2.0 and 1e0 are integers.
    let server = TestServer::start(&[]).await;
    let body = json!({"customerId": "001", "items": [{"productId": "001", "quantity": 2.0}, {"productId": "002", "quantity": 1e0}]});
    let (status, order) = server.post("/v1/orders", &body).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["lines"][0]["quantity"], 2);
    assert_eq!(order["lines"][1]["quantity"], 1);
    let (status, stock) = server
        .post(
            "/v1/inventory/001/adjustments",
            &json!({"delta": 5.0, "reason": "recount"}),
        )
        .await;
    assert_eq!(status, 201, "{stock}");
    let (status, problem) = server
        .post(
            "/v1/inventory/001/adjustments",
            &json!({"delta": 5.5, "reason": "recount"}),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("validation"))
    );
}

#[tokio::test]
async fn checking_out_again_still_refuses_an_invalid_address() {
    // The cart is its own idempotency key; a second checkout answers with the first order, but
    // a body that breaks the rules is refused like the first time, not replayed over.
    let server = TestServer::start(&[]).await;
    let (status, cart) = server.post("/v1/carts", &json!({})).await;
    assert_eq!(status, 201, "{cart}");
    let id = cart["id"].as_str().unwrap();
    let token = cart["token"].as_str().unwrap();
    let post = |path: String, body: Value| {
        let request = server
            .client
            .post(server.url(&path))
            .header("cart-token", token)
            .json(&body);
        async move { status_and_json(request.send().await.unwrap()).await }
    };
    let line = json!({"productId": "001", "quantity": 1});
    assert_eq!(post(format!("/v1/carts/{id}/lines"), line).await.0, 200);
    let address = |country: &str| {
        json!({"email": "guest@example.com", "name": "Guest", "shippingAddress":
            {"name": "G", "line1": "1 Road", "city": "Town", "country": country}})
    };
    let checkout = format!("/v1/carts/{id}/checkout");
    let (status, order) = post(checkout.clone(), address("JP")).await;
    assert_eq!(status, 201, "{order}");
    let (status, problem) = post(checkout.clone(), address("00")).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "shippingAddress.country");
    let (status, replayed) = post(checkout, address("JP")).await;
    assert_eq!((status, &replayed["id"]), (201, &order["id"]));
}
