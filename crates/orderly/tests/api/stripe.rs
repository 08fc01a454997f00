//! `orderly serve --payment-provider stripe` against the Stripe double of
//! `orderly_testkit::stripe_double`: what the saga sends to Stripe, what the order records, and
//! the signed webhook endpoint.

use std::time::{SystemTime, UNIX_EPOCH};

use orderly_testkit::stripe_double::{API_KEY, StripeDouble, WEBHOOK_SECRET, webhook_signature};
use serde_json::{Value, json};

use crate::common::{TestServer, history_events, id_of, reference_body, status_and_json};

/// A server whose payments go to `stripe`, with webhooks signed with [`WEBHOOK_SECRET`].
async fn serve_with(stripe: &StripeDouble) -> TestServer {
    let base = stripe.base_url();
    TestServer::start(&[
        "--payment-provider",
        "stripe",
        "--stripe-api-key",
        API_KEY,
        "--stripe-api-base",
        &base,
        "--stripe-webhook-secret",
        WEBHOOK_SECRET,
    ])
    .await
}

/// The reference order (279.98 USD), paid with `payment_method`.
fn reference_paid_with(payment_method: &str) -> Value {
    let mut body = reference_body();
    body["paymentMethod"] = json!(payment_method);
    body
}

/// `(method, path)` of every request Stripe received.
fn calls(stripe: &StripeDouble) -> Vec<(String, String)> {
    stripe
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect()
}

fn post(path: &str) -> (String, String) {
    ("POST".to_owned(), path.to_owned())
}

#[tokio::test]
async fn a_card_payment_is_authorized_then_captured_and_refunded_in_full_on_cancel() {
    let stripe = StripeDouble::start().await;
    let server = serve_with(&stripe).await;
    let stock_before = (server.stock("001").await, server.stock("002").await);
    let id = id_of(&server.place(&reference_paid_with("pm_card_visa")).await);

    let paid = server.wait_for(&id, "paid").await;

    let intents = stripe.intents();
    assert_eq!(intents.len(), 1, "{intents:?}");
    let pi = intents[0]["id"].as_str().unwrap().to_owned();
    assert!(pi.starts_with("pi_"), "{pi}");
    assert_eq!(
        calls(&stripe),
        [
            post("/v1/payment_intents"),
            post(&format!("/v1/payment_intents/{pi}/capture"))
        ]
    );
    let requests = stripe.requests();
    let authorize = &requests[0];
    assert_eq!(
        authorize.header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(
        authorize.header("idempotency-key"),
        Some(format!("order:{id}:authorize").as_str())
    );
    let form = authorize.form_map();
    assert_eq!(form["capture_method"], "manual");
    assert_eq!(form["confirm"], "true");
    assert_eq!(form["amount"], "27998");
    assert_eq!(form["currency"], "usd");
    assert_eq!(form["payment_method"], "pm_card_visa");
    assert_eq!(form["metadata[order_id]"], id);
    assert_eq!(form["metadata[customer_id]"], "001");
    let capture = &requests[1];
    assert_eq!(
        capture.header("idempotency-key"),
        Some(format!("order:{id}:capture").as_str())
    );
    assert_eq!(capture.form_map()["amount_to_capture"], "27998");
    let intent = stripe.intent(&pi);
    assert_eq!(intent["status"], "succeeded");
    assert_eq!(intent["amount_received"], 27998);
    assert_eq!(intent["metadata"]["order_id"], id.as_str());

    let payment = &paid["payment"];
    assert_eq!(payment["providerRef"], pi.as_str(), "{paid}");
    assert_eq!(payment["authorization"], pi.as_str());
    assert_eq!(payment["amount"]["amount"], "279.98");
    assert_eq!(payment["amount"]["currency"], "USD");
    assert_eq!(payment["refunds"], json!([]));

    let (code, canceled) = server
        .post(
            &format!("/v1/orders/{id}/cancel"),
            &json!({"reason": "changed my mind"}),
        )
        .await;
    assert_eq!(code, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    let refunded = server
        .wait_until(&id, |o| o["payment"]["refunds"][0].is_object(), "a refund")
        .await;
    server.wait_idle().await;

    let refunds = stripe.refunds();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    let re = refunds[0]["id"].as_str().unwrap().to_owned();
    assert!(re.starts_with("re_"), "{re}");
    assert_eq!(refunds[0]["payment_intent"], pi.as_str());
    assert_eq!(refunds[0]["amount"], 27998);
    assert_eq!(refunds[0]["currency"], "usd");
    assert_eq!(refunds[0]["metadata"]["order_id"], id.as_str());
    let requests = stripe.requests();
    assert_eq!(requests.len(), 3, "only the refund after the capture");
    let refund = &requests[2];
    assert_eq!(calls(&stripe)[2], post("/v1/refunds"));
    assert_eq!(
        refund.header("idempotency-key"),
        Some(format!("order:{id}:refund").as_str())
    );
    assert_eq!(refund.form_map()["payment_intent"], pi.as_str());
    assert_eq!(refund.form_map()["amount"], "27998");

    let recorded = &refunded["payment"]["refunds"];
    assert_eq!(recorded.as_array().unwrap().len(), 1, "{refunded}");
    assert_eq!(recorded[0]["providerRef"], re.as_str());
    assert_eq!(recorded[0]["amount"]["amount"], "279.98");
    assert_eq!(recorded[0]["amount"]["currency"], "USD");
    assert_eq!(refunded["payment"]["refundable"]["amount"], "0.00");
    assert_eq!(history_events(&refunded).last().unwrap(), "RefundIssued");
    assert_eq!(
        (server.stock("001").await, server.stock("002").await),
        stock_before
    );
}

#[tokio::test]
async fn a_declined_card_rejects_the_order_and_releases_its_stock() {
    let stripe = StripeDouble::start().await;
    let server = serve_with(&stripe).await;
    let stock_before = (server.stock("001").await, server.stock("002").await);
    let id = id_of(
        &server
            .place(&reference_paid_with("pm_card_chargeDeclined"))
            .await,
    );

    let rejected = server.wait_for(&id, "rejected").await;

    let reason = rejected["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "payment declined: card_declined (generic_decline): Your card was declined."
        ),
        "{reason}"
    );
    assert!(rejected["payment"].is_null(), "{rejected}");
    assert_eq!(
        history_events(&rejected),
        ["OrderPlaced", "InventoryReserved", "PaymentFailed"]
    );
    server.wait_idle().await;
    assert_eq!(
        (server.stock("001").await, server.stock("002").await),
        stock_before
    );
    // One authorize, declined; nothing captured.
    assert_eq!(calls(&stripe), [post("/v1/payment_intents")]);
    let authorize = &stripe.requests()[0];
    assert_eq!(
        authorize.form_map()["payment_method"],
        "pm_card_chargeDeclined"
    );
    assert_eq!(
        authorize.header("idempotency-key"),
        Some(format!("order:{id}:authorize").as_str())
    );
    assert_eq!(stripe.intents()[0]["status"], "requires_payment_method");
    assert!(stripe.refunds().is_empty());
}

#[tokio::test]
async fn yen_are_charged_as_whole_yen() {
    let stripe = StripeDouble::start().await;
    let server = serve_with(&stripe).await;

    // A product priced in yen: 3 × ¥1,500.
    let (code, product) = server
        .post(
            "/v1/products",
            &json!({"id": "tea", "name": "抹茶", "prices": [{"amount": "1500", "currency": "JPY"}], "stock": 10}),
        )
        .await;
    assert_eq!(code, 201, "{product}");
    let order = server
        .place(
            &json!({"customerId": "001", "currency": "JPY", "paymentMethod": "pm_card_visa",
            "items": [{"productId": "tea", "quantity": 3}]}),
        )
        .await;
    assert_eq!(
        order["total"],
        json!({"amount": "4500", "currency": "JPY", "formatted": "¥4,500"})
    );
    let tea = server.wait_for(&id_of(&order), "paid").await;
    let requests = stripe.requests();
    assert_eq!(requests.len(), 2, "authorize and capture");
    assert_eq!(requests[0].form_map()["amount"], "4500");
    assert_eq!(requests[0].form_map()["currency"], "jpy");
    assert_eq!(requests[1].form_map()["amount_to_capture"], "4500");
    assert_eq!(tea["payment"]["amount"]["amount"], "4500");
    assert_eq!(stripe.intents()[0]["amount_received"], 4500);

    // Products priced in dollars, ordered in yen at 151.25 yen to the dollar.
    let r = server
        .client
        .put(server.url("/v1/rates/JPY"))
        .json(&json!({"rate": "151.25"}))
        .send()
        .await
        .unwrap();
    let (code, rate) = status_and_json(r).await;
    assert_eq!(code, 200, "{rate}");
    let mut body = reference_paid_with("pm_card_visa");
    body["currency"] = json!("JPY");
    let order = server.place(&body).await;
    // Each unit price converted to whole yen: 199.99 × 151.25 = 30248.4875 → ¥30,248 and
    // 79.99 × 151.25 = 12098.4875 → ¥12,098.
    assert_eq!(
        order["total"],
        json!({"amount": "42346", "currency": "JPY", "formatted": "¥42,346"})
    );
    let converted = server.wait_for(&id_of(&order), "paid").await;
    let requests = stripe.requests();
    assert_eq!(
        requests.len(),
        4,
        "authorize and capture of the second order"
    );
    assert_eq!(requests[2].form_map()["amount"], "42346");
    assert_eq!(requests[2].form_map()["currency"], "jpy");
    assert_eq!(requests[3].form_map()["amount_to_capture"], "42346");
    assert_eq!(converted["payment"]["amount"]["amount"], "42346");
    assert_eq!(stripe.intents()[1]["amount_received"], 42346);
}

/// Posts `payload` to the webhook endpoint: status, content type and body.
async fn deliver(
    server: &TestServer,
    payload: &str,
    signature: Option<&str>,
) -> (u16, String, Value) {
    let mut request = server
        .client
        .post(server.url("/v1/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(payload.to_owned());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let r = request.send().await.unwrap();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = status_and_json(r).await;
    (status, content_type, body)
}

fn unix_now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// A 400 problem with the code `invalid-signature` whose detail contains `why`.
fn assert_refused(answer: &(u16, String, Value), why: &str) {
    let (status, content_type, problem) = answer;
    assert_eq!(*status, 400, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["code"], "invalid-signature", "{problem}");
    assert_eq!(problem["status"], 400);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(why), "{detail}");
    assert!(!detail.contains(WEBHOOK_SECRET), "{detail}");
    // The route sits behind the API's layers: the problem names the request.
    assert!(problem["requestId"].is_string(), "{problem}");
}

#[tokio::test]
async fn webhooks_are_accepted_only_with_a_fresh_signature_over_the_exact_body() {
    let stripe = StripeDouble::start().await;
    let server = serve_with(&stripe).await;
    let event = json!({
        "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event",
        "type": "payment_intent.succeeded", "created": 1_699_999_990, "livemode": false,
        "data": {"object": {"id": "pi_3Double", "object": "payment_intent", "amount": 27998,
            "currency": "usd", "status": "succeeded", "metadata": {"order_id": "o-1"}}},
    })
    .to_string();
    let now = unix_now();

    let signed = webhook_signature(WEBHOOK_SECRET, now, event.as_bytes());
    let (status, content_type, body) = deliver(&server, &event, Some(&signed)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "application/json");
    assert_eq!(body, json!({"received": true}));
    // Within the five minutes' tolerance.
    let recent = webhook_signature(WEBHOOK_SECRET, now - 240, event.as_bytes());
    assert_eq!(deliver(&server, &event, Some(&recent)).await.0, 200);

    let tampered = event.replace("27998", "1");
    assert_ne!(tampered, event);
    assert_refused(
        &deliver(&server, &tampered, Some(&signed)).await,
        "no signature in the Stripe-Signature header matches the payload",
    );
    let other_secret = webhook_signature("whsec_another_endpoint", now, event.as_bytes());
    assert_refused(
        &deliver(&server, &event, Some(&other_secret)).await,
        "no signature in the Stripe-Signature header matches the payload",
    );
    let stale = webhook_signature(WEBHOOK_SECRET, now - 301, event.as_bytes());
    assert_refused(
        &deliver(&server, &event, Some(&stale)).await,
        "a replay, or a wrong clock",
    );
    assert_refused(
        &deliver(&server, &event, None).await,
        "the Stripe-Signature header is missing",
    );

    // Events are receipts: nothing is asked of Stripe.
    assert!(stripe.requests().is_empty());
}
