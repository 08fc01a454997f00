//! Carts, checkout and prices in the shopper's currency, over HTTP, on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestServer, id_of, on_postgres, status_and_json};

/// Calls a cart route with its token.
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = server
        .client
        .request(method, server.url(path))
        .header("Cart-Token", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let headers = r.headers().clone();
    let (status, value) = status_and_json(r).await;
    (status, value, headers)
}

async fn open(server: &TestServer, body: Value) -> (String, String, Value) {
    let (status, cart) = server.post("/v1/carts", &body).await;
    assert_eq!(status, 201, "{cart}");
    let id = cart["id"].as_str().unwrap().to_owned();
    let token = cart["token"].as_str().unwrap().to_owned();
    (id, token, cart)
}

async fn add(server: &TestServer, id: &str, token: &str, product: &str, n: i64) -> Value {
    let (status, cart, _) = call(
        server,
        reqwest::Method::POST,
        &format!("/v1/carts/{id}/lines"),
        token,
        Some(json!({"productId": product, "quantity": n})),
    )
    .await;
    assert_eq!(status, 200, "{cart}");
    cart
}

async fn set_rate(server: &TestServer, currency: &str, rate: &str) {
    let r = server
        .client
        .put(server.url(&format!("/v1/rates/{currency}")))
        .json(&json!({"rate": rate}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rate"], rate);
}

async fn empty_cart_to_paid_order_in_eur_and_jpy(server: &TestServer) {
    set_rate(server, "EUR", "0.92").await;
    set_rate(server, "JPY", "151.25").await;
    let (status, rates) = server.get("/v1/rates").await;
    assert_eq!(status, 200);
    assert_eq!(rates["base"], "USD");
    assert_eq!(rates["rates"].as_array().unwrap().len(), 2);
    // A product with its own euro price next to the converted ones.
    let (status, _) = server
        .post("/v1/products", &json!({"id": "eu-1", "name": "Café Crème ☕", "stock": 10,
            "prices": [{"amount": "10.00", "currency": "USD"}, {"amount": "9.50", "currency": "EUR"}]}))
        .await;
    assert_eq!(status, 201);

    // A guest shops in euros.
    let (id, token, cart) = open(server, json!({"currency": "EUR"})).await;
    assert_eq!(cart["status"], "open");
    assert_eq!(
        cart["total"],
        json!({"amount": "0.00", "currency": "EUR", "formatted": "€0.00"})
    );
    add(server, &id, &token, "001", 2).await;
    let cart = add(server, &id, &token, "eu-1", 1).await;
    // 79.99 USD × 0.92 = 73.5908 → 73.59 EUR a headphone; the café's own price is 9.50.
    assert_eq!(
        cart["lines"][0]["unitPrice"],
        json!({"amount": "73.59", "currency": "EUR", "formatted": "€73.59"})
    );
    assert_eq!(cart["lines"][0]["lineTotal"]["amount"], "147.18");
    assert_eq!(cart["lines"][1]["unitPrice"]["amount"], "9.50");
    assert_eq!(cart["lines"][1]["name"], "Café Crème ☕");
    assert_eq!(
        cart["total"],
        json!({"amount": "156.68", "currency": "EUR", "formatted": "€156.68"})
    );
    assert_eq!(cart["exchangeRate"]["rate"], "0.92");
    let lines = format!("/v1/carts/{id}/lines/001");
    let (status, cart, _) = call(
        server,
        reqwest::Method::PATCH,
        &lines,
        &token,
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!(status, 200, "{cart}");
    assert_eq!(cart["total"]["amount"], "83.09");
    let (status, cart, _) = call(
        server,
        reqwest::Method::DELETE,
        "/v1/carts/x/lines/001",
        &token,
        None,
    )
    .await;
    assert_eq!((status, cart["code"].as_str()), (404, Some("not-found")));
    let added = add(server, &id, &token, "002", 1).await;
    let (status, cart, _) = call(
        server,
        reqwest::Method::DELETE,
        &format!("/v1/carts/{id}/lines/002"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(cart["lines"].as_array().unwrap().len(), 2, "{added}");

    // Nobody without the token sees or changes it.
    let (status, _, _) = call(
        server,
        reqwest::Method::GET,
        &format!("/v1/carts/{id}"),
        "wrong",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = server.get(&format!("/v1/carts/{id}")).await;
    assert_eq!(status, 404);

    // Checkout: a guest gives e-mail and name; the order keeps the rate.
    let checkout = format!("/v1/carts/{id}/checkout");
    let (status, problem, _) = call(server, reqwest::Method::POST, &checkout, &token, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("validation")),
        "{problem}"
    );
    let details = json!({"email": "zoe@example.fr", "name": "Zoé Lefèvre 🌷",
        "shippingAddress": {"name": "Zoé Lefèvre 🌷", "line1": "1 rue de la Paix", "city": "Paris", "country": "FR"}});
    let (status, order, headers) = call(
        server,
        reqwest::Method::POST,
        &checkout,
        &token,
        Some(details.clone()),
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(order["currency"], "EUR");
    assert_eq!(
        order["total"],
        json!({"amount": "83.09", "currency": "EUR", "formatted": "€83.09"})
    );
    assert_eq!(order["exchangeRate"]["from"], "USD");
    assert_eq!(order["exchangeRate"]["rate"], "0.92");
    let order_id = id_of(&order);
    let paid = server.wait_for(&order_id, "paid").await;
    assert_eq!(paid["payment"]["amount"]["amount"], "83.09");
    // Checking out again is the same order; the cart is closed for changes.
    let (status, again, headers) = call(
        server,
        reqwest::Method::POST,
        &checkout,
        &token,
        Some(details),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(id_of(&again), order_id);
    assert_eq!(headers["idempotent-replayed"], "true");
    let (status, problem, _) = call(
        server,
        reqwest::Method::POST,
        &format!("/v1/carts/{id}/lines"),
        &token,
        Some(json!({"productId": "001", "quantity": 1})),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("cart-closed"))
    );
    let (_, cart, _) = call(
        server,
        reqwest::Method::GET,
        &format!("/v1/carts/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(cart["status"], "checkedOut");
    assert_eq!(cart["orderId"], order_id.as_str());
    // A new rate changes new prices, never an order's.
    set_rate(server, "EUR", "0.95").await;
    let (_, order) = server.get(&format!("/v1/orders/{order_id}")).await;
    assert_eq!(order["total"]["amount"], "83.09");

    // A customer shops in yen: 199.99 USD × 151.25 = 30248.4875 → 30248 JPY, whole yen.
    let (id, token, _) = open(server, json!({"customerId": "002", "currency": "JPY"})).await;
    let cart = add(server, &id, &token, "002", 1).await;
    assert_eq!(
        cart["total"],
        json!({"amount": "30248", "currency": "JPY", "formatted": "¥30,248"})
    );
    let (status, order, _) = call(
        server,
        reqwest::Method::POST,
        &format!("/v1/carts/{id}/checkout"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["customerId"], "002");
    let paid = server.wait_for(&id_of(&order), "paid").await;
    assert_eq!(
        paid["total"],
        json!({"amount": "30248", "currency": "JPY", "formatted": "¥30,248"})
    );
    assert_eq!(paid["lines"][0]["unitPrice"]["amount"], "30248");

    // A currency without a rate cannot be shopped in for products priced only in USD.
    let (id, token, _) = open(server, json!({"currency": "GBP"})).await;
    let (status, problem, _) = call(
        server,
        reqwest::Method::POST,
        &format!("/v1/carts/{id}/lines"),
        &token,
        Some(json!({"productId": "001", "quantity": 1})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("PUT /v1/rates/GBP"),
        "{problem}"
    );
}

#[tokio::test]
async fn empty_cart_to_paid_order_in_eur_and_jpy_on_sqlite() {
    let server = TestServer::start(&[]).await;
    empty_cart_to_paid_order_in_eur_and_jpy(&server).await;
}

#[tokio::test]
async fn empty_cart_to_paid_order_in_eur_and_jpy_on_postgres() {
    let (server, _schema, _dir) = on_postgres(&[]).await;
    empty_cart_to_paid_order_in_eur_and_jpy(&server).await;
}

/// Polls the cart until `ok`, or panics after 10 s.
async fn wait_cart(
    server: &TestServer,
    id: &str,
    token: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, cart, _) = call(
            server,
            reqwest::Method::GET,
            &format!("/v1/carts/{id}"),
            token,
            None,
        )
        .await;
        assert_eq!(status, 200, "{cart}");
        if ok(&cart) {
            return cart;
        }
        assert!(Instant::now() < deadline, "the cart never changed: {cart}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn the_sweep_trims_to_stock_and_idle_carts_expire(server: &TestServer) {
    let (a, token_a, _) = open(server, json!({})).await;
    add(server, &a, &token_a, "001", 5).await;
    add(server, &a, &token_a, "002", 2).await;
    // Stock of 001 falls to 3; product 002 stops being sold.
    let (status, _) = server
        .post(
            "/v1/inventory/001/adjustments",
            &json!({"delta": -147, "reason": "damaged in storage"}),
        )
        .await;
    assert_eq!(status, 201);
    let r = server
        .client
        .patch(server.url("/v1/products/002"))
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cart = wait_cart(server, &a, &token_a, |c| {
        c["notices"].as_array().is_some_and(|n| n.len() == 2)
    })
    .await;
    assert_eq!(
        cart["lines"],
        json!([{"productId": "001", "name": "Wireless Headphones", "quantity": 3,
        "unitPrice": {"amount": "79.99", "currency": "USD", "formatted": "$79.99"}, "lineTotal": {"amount": "239.97", "currency": "USD", "formatted": "$239.97"}}])
    );
    let notices = cart["notices"].as_array().unwrap();
    let by_product = |p: &str| {
        notices
            .iter()
            .find(|n| n["productId"] == p)
            .unwrap()
            .clone()
    };
    let trimmed = by_product("001");
    assert_eq!(
        (
            trimmed["change"].as_str(),
            trimmed["from"].as_u64(),
            trimmed["to"].as_u64()
        ),
        (Some("trimmed"), Some(5), Some(3))
    );
    assert_eq!(trimmed["reason"], "only 3 left");
    assert_eq!(by_product("002")["change"], "removed");
    assert_eq!(
        by_product("002")["reason"],
        "this product is no longer sold"
    );

    // An idle cart expires (idle time 1 s here) and refuses changes and checkout.
    let (b, token_b, _) = open(server, json!({})).await;
    add(server, &b, &token_b, "001", 1).await;
    let cart = wait_cart(server, &b, &token_b, |c| c["status"] == "expired").await;
    assert_eq!(cart["lines"].as_array().unwrap().len(), 1);
    for path in [
        format!("/v1/carts/{b}/lines"),
        format!("/v1/carts/{b}/checkout"),
    ] {
        let (status, problem, _) = call(
            server,
            reqwest::Method::POST,
            &path,
            &token_b,
            Some(json!({"productId": "001", "quantity": 1})),
        )
        .await;
        assert!(status == 409 || status == 422, "{path}: {status} {problem}");
        if path.ends_with("lines") {
            assert_eq!(problem["code"], "cart-closed");
        }
    }
}

const SWEEP: &[&str] = &["--cart-sweep-interval-ms", "50", "--cart-idle-secs", "1"];

#[tokio::test]
async fn the_sweep_trims_to_stock_and_idle_carts_expire_on_sqlite() {
    let server = TestServer::start(SWEEP).await;
    the_sweep_trims_to_stock_and_idle_carts_expire(&server).await;
}

#[tokio::test]
async fn the_sweep_trims_to_stock_and_idle_carts_expire_on_postgres() {
    let (server, _schema, _dir) = on_postgres(SWEEP).await;
    the_sweep_trims_to_stock_and_idle_carts_expire(&server).await;
}

#[tokio::test]
async fn bad_cart_input_gets_clear_problems() {
    let server = TestServer::start(&[]).await;
    let (status, p) = server.post("/v1/carts", &json!({"currency": "XXX"})).await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (422, Some("currency")),
        "{p}"
    );
    let (status, p) = server
        .post("/v1/carts", &json!({"customerId": "nobody"}))
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (422, Some("customerId")),
        "{p}"
    );
    let (id, token, _) = open(&server, json!({})).await;
    for (body, field) in [
        (json!({"productId": "001", "quantity": 0}), "quantity"),
        (json!({"productId": "nope", "quantity": 1}), "productId"),
        (json!({"productId": "001", "quantity": 10001}), "quantity"),
    ] {
        let (status, p, _) = call(
            &server,
            reqwest::Method::POST,
            &format!("/v1/carts/{id}/lines"),
            &token,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 422, "{body}: {p}");
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
    let (status, p, _) = call(
        &server,
        reqwest::Method::POST,
        &format!("/v1/carts/{id}/checkout"),
        &token,
        Some(json!({"email": "a@b.c", "name": "A"})),
    )
    .await;
    assert_eq!(status, 422, "an empty cart: {p}");
    let r = server
        .client
        .put(server.url("/v1/rates/JPY"))
        .json(&json!({"rate": "-3"}))
        .send()
        .await
        .unwrap();
    let (status, p) = status_and_json(r).await;
    assert_eq!(
        (status, p["errors"][0]["field"].as_str()),
        (422, Some("rate")),
        "{p}"
    );
    let r = server
        .client
        .put(server.url("/v1/rates/USD"))
        .json(&json!({"rate": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "the base currency has no rate");
}
