//! The Stripe adapter against a local double of Stripe's API.
//!
//! The double ([`orderly_testkit::stripe_double`], an axum server on 127.0.0.1, port 0) answers
//! the endpoints the adapter uses the way Stripe's API reference documents them: PaymentIntent,
//! Refund and search-result objects, error objects with Stripe's HTTP statuses,
//! `Authorization: Bearer` enforced, form bodies parsed, and a repeated `Idempotency-Key`
//! answered with the stored first answer. It records every request for the assertions. Special
//! payment methods drive outcomes like Stripe's test cards, and switches inject rate limits,
//! server errors, hangs and dropped connections.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use orderly_core::ports::{PaymentError, PaymentGateway, PaymentKey, PaymentRequest, PaymentStep};
use orderly_core::secret::Secret;
use orderly_domain::{Currency, CustomerId, Money, OrderId};
use orderly_payments::stripe::{STRIPE_VERSION, StripeSettings, WebhookError, verify_webhook};
use orderly_payments::{Stripe, WebhookEvent};
use orderly_testkit::stripe_double::{
    API_KEY as KEY, Fault, StripeDouble as Double, WEBHOOK_SECRET, webhook_v1,
};
use serde_json::{Value, json};

/// The adapter, configured for the double.
trait Adapter {
    fn settings(&self) -> StripeSettings;
    fn stripe(&self) -> Stripe;
}

impl Adapter for Double {
    fn settings(&self) -> StripeSettings {
        StripeSettings {
            api_base: self.base_url(),
            webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
            ..StripeSettings::new(Secret::new(KEY))
        }
    }

    fn stripe(&self) -> Stripe {
        Stripe::new(self.settings()).unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn order(n: u128) -> OrderId {
    OrderId::from_uuid(uuid::Uuid::from_u128(
        0x0193_a5c4_0000_7000_8000_0000_0000_0000 + n,
    ))
}

fn money(minor: i64, code: &str) -> Money {
    Money::from_minor(minor, Currency::parse(code).unwrap())
}

/// A request of `order_id` under the key `{step}` or `{step}:{n}`, as the saga writes them.
fn request(order_id: OrderId, step: &str, amount: Money, pm: Option<&str>) -> PaymentRequest {
    let (name, n) = step.split_once(':').unwrap_or((step, "0"));
    let step = match name {
        "authorize" => PaymentStep::Authorize,
        "capture" => PaymentStep::Capture,
        "refund" => PaymentStep::Refund,
        other => panic!("no payment step {other}"),
    };
    PaymentRequest {
        idempotency_key: PaymentKey::new(order_id, step).nth(n.parse().unwrap()),
        order_id,
        customer_id: CustomerId::parse("cust-001").unwrap(),
        amount,
        payment_method: pm.map(str::to_owned),
    }
}

fn usd_order(n: u128, step: &str) -> PaymentRequest {
    request(order(n), step, money(27998, "USD"), Some("pm_card_visa"))
}

fn declined(result: Result<impl std::fmt::Debug, PaymentError>) -> String {
    match result {
        Err(PaymentError::Declined(m)) => m,
        other => panic!("expected Declined, got {other:?}"),
    }
}

fn transient(result: Result<impl std::fmt::Debug, PaymentError>) -> String {
    match result {
        Err(PaymentError::Transient(m)) => m,
        other => panic!("expected Transient, got {other:?}"),
    }
}

fn status_fault(status: u16, should_retry: Option<bool>, body: Value) -> Option<Fault> {
    Some(Fault::Status {
        status,
        should_retry,
        body,
    })
}

// ---------------------------------------------------------------------------------------------
// Authorize, capture, refund
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn authorize_sends_the_documented_request() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let req = usd_order(1, "authorize");

    let id = stripe.authorize(&req).await.unwrap();

    let requests = double.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/payment_intents");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent.header("stripe-version"), Some("2024-06-20"));
    assert_eq!(STRIPE_VERSION, "2024-06-20");
    assert_eq!(
        sent.header("idempotency-key"),
        Some(format!("order:{}:authorize", order(1)).as_str())
    );
    assert_eq!(
        sent.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let order_id = order(1).to_string();
    let expected: BTreeMap<&str, &str> = [
        ("amount", "27998"),
        ("currency", "usd"),
        ("capture_method", "manual"),
        ("confirm", "true"),
        ("payment_method", "pm_card_visa"),
        ("automatic_payment_methods[enabled]", "true"),
        ("automatic_payment_methods[allow_redirects]", "never"),
        ("metadata[order_id]", order_id.as_str()),
        ("metadata[customer_id]", "cust-001"),
    ]
    .into_iter()
    .collect();
    assert_eq!(sent.form_map(), expected);
    assert_eq!(sent.form.len(), expected.len(), "no parameter twice");

    let intent = double.intent(&id);
    assert!(id.starts_with("pi_"), "{id}");
    assert_eq!(intent["status"], "requires_capture");
    assert_eq!(intent["amount_capturable"], 27998);
    assert_eq!(intent["metadata"]["order_id"], order_id.as_str());
}

#[tokio::test]
async fn amounts_are_sent_in_the_currencys_minor_units() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let cases = [
        (money(27998, "USD"), "27998", "usd"), // USD 279.98: cents
        (money(1500, "JPY"), "1500", "jpy"),   // JPY 1500: no decimals
        (money(24590, "KWD"), "24590", "kwd"), // KWD 24.590: fils, three decimals
        (money(5000, "ISK"), "500000", "isk"), // ISK 5000: two decimals at Stripe
    ];
    for (n, (amount, minor, currency)) in cases.iter().enumerate() {
        let req = request(
            order(10 + n as u128),
            "authorize",
            *amount,
            Some("pm_card_visa"),
        );
        let id = stripe.authorize(&req).await.unwrap();
        let sent = double.requests().pop().unwrap();
        assert_eq!(sent.form_map()["amount"], *minor, "{amount}");
        assert_eq!(sent.form_map()["currency"], *currency, "{amount}");
        assert_eq!(double.intent(&id)["amount"].to_string(), *minor);
    }

    // KWD 24.593: Stripe takes three-decimal amounts only in steps of 0.010; refused here
    // instead of rounding the customer's charge.
    let before = double.requests().len();
    let reason = declined(
        stripe
            .authorize(&request(
                order(20),
                "authorize",
                money(24593, "KWD"),
                Some("pm_card_visa"),
            ))
            .await,
    );
    assert!(reason.contains("24.593 KWD"), "{reason}");
    assert_eq!(double.requests().len(), before, "Stripe not called");
}

#[tokio::test]
async fn authorize_capture_partial_refund_and_refund_of_the_rest() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let o = order(30);
    let total = money(27998, "USD");

    let authorization = stripe
        .authorize(&request(o, "authorize", total, Some("pm_card_visa")))
        .await
        .unwrap();
    let captured = stripe
        .capture(
            &request(o, "capture", total, Some("pm_card_visa")),
            &authorization,
        )
        .await
        .unwrap();
    assert_eq!(
        captured, authorization,
        "refunds refer to the PaymentIntent"
    );
    let intent = double.intent(&captured);
    assert_eq!(intent["status"], "succeeded");
    assert_eq!(intent["amount_received"], 27998);
    let capture_call = double.requests().pop().unwrap();
    assert_eq!(
        capture_call.path,
        format!("/v1/payment_intents/{authorization}/capture")
    );
    assert_eq!(capture_call.form_map()["amount_to_capture"], "27998");
    assert_eq!(
        capture_call.header("idempotency-key"),
        Some(format!("order:{o}:capture").as_str())
    );

    let first = stripe
        .refund(
            &request(o, "refund:1", money(10000, "USD"), None),
            &captured,
        )
        .await
        .unwrap();
    let rest = stripe
        .refund(
            &request(o, "refund:2", money(17998, "USD"), None),
            &captured,
        )
        .await
        .unwrap();
    assert!(first.starts_with("re_") && rest.starts_with("re_"));
    assert_ne!(first, rest);
    let refunds = double.refunds();
    let amounts: Vec<(&str, i64)> = refunds
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["amount"].as_i64().unwrap()))
        .collect();
    assert_eq!(amounts, [(first.as_str(), 10000), (rest.as_str(), 17998)]);
    let refund_call = double.requests().pop().unwrap();
    assert_eq!(refund_call.path, "/v1/refunds");
    assert_eq!(refund_call.form_map()["payment_intent"], captured.as_str());
    assert_eq!(refund_call.form_map()["amount"], "17998");
    assert_eq!(
        refund_call.header("idempotency-key"),
        Some(format!("order:{o}:refund:2").as_str())
    );

    // Nothing left: Stripe refuses, and that is final.
    let reason = declined(
        stripe
            .refund(&request(o, "refund:3", money(1, "USD"), None), &captured)
            .await,
    );
    assert!(reason.contains("charge_already_refunded"), "{reason}");
}

#[tokio::test]
async fn a_repeated_authorize_with_the_same_key_returns_the_same_payment_intent() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let req = usd_order(40, "authorize");

    let first = stripe.authorize(&req).await.unwrap();
    let again = stripe.authorize(&req).await.unwrap();

    assert_eq!(first, again);
    assert_eq!(double.intents().len(), 1, "nothing new created");
    let requests = double.requests();
    assert_eq!(requests.len(), 2, "both calls reached Stripe");
    assert_eq!(
        requests[0].header("idempotency-key"),
        requests[1].header("idempotency-key")
    );

    let other = stripe.authorize(&usd_order(41, "authorize")).await.unwrap();
    assert_ne!(other, first);
    assert_eq!(double.intents().len(), 2);
}

#[tokio::test]
async fn a_declined_card_is_declined_with_stripes_reason() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let reason = declined(
        stripe
            .authorize(&request(
                order(50),
                "authorize",
                money(27998, "USD"),
                Some("pm_card_chargeDeclined"),
            ))
            .await,
    );
    assert_eq!(
        reason,
        "card_declined (generic_decline): Your card was declined. (request req_dbl0001)"
    );

    let reason = declined(
        stripe
            .authorize(&request(
                order(51),
                "authorize",
                money(27998, "USD"),
                Some("pm_card_chargeDeclinedInsufficientFunds"),
            ))
            .await,
    );
    assert!(
        reason.starts_with("card_declined (insufficient_funds): Your card has insufficient funds."),
        "{reason}"
    );
    let intents = double.intents();
    assert_eq!(intents.len(), 2);
    assert!(
        intents
            .iter()
            .all(|pi| pi["status"] == "requires_payment_method")
    );
}

#[tokio::test]
async fn a_card_that_needs_authentication_is_declined() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let reason = declined(
        stripe
            .authorize(&request(
                order(52),
                "authorize",
                money(5000, "EUR"),
                Some("pm_card_authenticationRequired"),
            ))
            .await,
    );
    let id = double.intents()[0]["id"].as_str().unwrap().to_owned();
    assert!(reason.contains("authenticate"), "{reason}");
    assert!(reason.contains(&id), "{reason}");
}

#[tokio::test]
async fn an_order_without_a_payment_method_is_declined_without_calling_stripe() {
    let double = Double::start().await;
    let stripe = double.stripe();
    for pm in [None, Some(""), Some("  ")] {
        let reason = declined(
            stripe
                .authorize(&request(order(53), "authorize", money(100, "USD"), pm))
                .await,
        );
        assert!(
            reason.starts_with(&format!("no payment method on the order {}", order(53))),
            "{reason}"
        );
    }
    assert!(double.requests().is_empty());
}

#[tokio::test]
async fn a_request_stripe_finds_invalid_is_declined_with_its_message() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let reason = declined(
        stripe
            .authorize(&request(
                order(54),
                "authorize",
                money(100, "USD"),
                Some("pm_nonexistent"),
            ))
            .await,
    );
    assert_eq!(
        reason,
        "resource_missing: No such PaymentMethod: 'pm_nonexistent' (request req_dbl0001)"
    );
    // A capture of a PaymentIntent Stripe does not know.
    let reason = declined(
        stripe
            .capture(&usd_order(54, "capture"), "pi_unknown")
            .await,
    );
    assert!(
        reason.starts_with("resource_missing: No such payment_intent: 'pi_unknown'"),
        "{reason}"
    );
    // An authorization reference that is not a PaymentIntent id never reaches a URL.
    let before = double.requests().len();
    let reason = declined(
        stripe
            .capture(&usd_order(54, "capture"), "pi_1/../../v1/refunds")
            .await,
    );
    assert!(reason.contains("is not a Stripe id"), "{reason}");
    assert_eq!(double.requests().len(), before);
}

#[tokio::test]
async fn capturing_an_already_captured_payment_intent_returns_it() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let authorization = stripe.authorize(&usd_order(55, "authorize")).await.unwrap();
    let first = stripe
        .capture(&usd_order(55, "capture"), &authorization)
        .await
        .unwrap();
    // Another key, as after Stripe dropped the first key's record (24 hours): Stripe refuses a
    // second capture, and the adapter finds the PaymentIntent captured already.
    let again = stripe
        .capture(&usd_order(55, "capture:1"), &authorization)
        .await
        .unwrap();
    assert_eq!(again, first);
    let calls: Vec<(String, String)> = double
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        calls[2..],
        [
            (
                "POST".to_owned(),
                format!("/v1/payment_intents/{authorization}/capture")
            ),
            (
                "GET".to_owned(),
                format!("/v1/payment_intents/{authorization}")
            ),
        ]
    );
    assert_eq!(double.intent(&first)["amount_received"], 27998);

    // A canceled authorization cannot be captured: final.
    let canceled = stripe.authorize(&usd_order(56, "authorize")).await.unwrap();
    stripe.void(&usd_order(56, "capture")).await.unwrap();
    let reason = declined(stripe.capture(&usd_order(56, "capture:2"), &canceled).await);
    assert!(
        reason.contains("payment_intent_unexpected_state"),
        "{reason}"
    );
}

// ---------------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rate_limit_is_transient_and_the_retry_goes_through() {
    let double = Double::start().await;
    let stripe = double.stripe();
    double.fail_next(status_fault(
        429,
        None,
        json!({"error": {"type": "invalid_request_error", "code": "rate_limit",
            "message": "Request rate limit exceeded. Learn more about rate limits here \
                https://stripe.com/docs/rate-limits."}}),
    ));
    let req = usd_order(60, "authorize");
    let message = transient(stripe.authorize(&req).await);
    assert!(
        message.starts_with("Stripe rate limit: rate_limit: Request rate limit exceeded."),
        "{message}"
    );
    assert!(double.intents().is_empty());

    let id = stripe.authorize(&req).await.unwrap();
    assert_eq!(double.intents().len(), 1);
    assert_eq!(double.intent(&id)["status"], "requires_capture");
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let double = Double::start().await;
    let stripe = double.stripe();
    double.fail_next(status_fault(
        500,
        None,
        json!({"error": {"type": "api_error", "message": "An unknown error occurred"}}),
    ));
    let message = transient(stripe.authorize(&usd_order(61, "authorize")).await);
    assert_eq!(
        message,
        "Stripe failed (HTTP 500): An unknown error occurred (request req_dbl0001)"
    );
    // An error page that is not Stripe's JSON, e.g. from a proxy.
    double.fail_next(status_fault(502, None, json!("Bad Gateway")));
    let message = transient(stripe.capture(&usd_order(61, "capture"), "pi_123").await);
    assert!(
        message.starts_with("Stripe failed (HTTP 502): HTTP 502"),
        "{message}"
    );
    // Stripe saying not to retry does not turn an unknown outcome into a decline.
    double.fail_next(status_fault(
        503,
        Some(false),
        json!({"error": {"type": "api_error", "message": "Service unavailable"}}),
    ));
    transient(stripe.authorize(&usd_order(61, "authorize")).await);
}

#[tokio::test]
async fn a_dropped_connection_is_transient() {
    let double = Double::start().await;
    let stripe = double.stripe();
    double.drop_next_connection();
    let req = usd_order(62, "authorize");
    let message = transient(stripe.authorize(&req).await);
    assert!(message.starts_with("Stripe unreachable"), "{message}");
    assert_eq!(double.dropped(), 1);
    assert!(double.intents().is_empty());

    let id = stripe.authorize(&req).await.unwrap();
    assert_eq!(double.intent(&id)["status"], "requires_capture");
}

#[tokio::test]
async fn nothing_listening_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let stripe = Stripe::new(StripeSettings {
        api_base: format!("http://127.0.0.1:{port}"),
        ..StripeSettings::new(Secret::new(KEY))
    })
    .unwrap();
    let message = transient(stripe.authorize(&usd_order(63, "authorize")).await);
    assert!(
        message.starts_with("Stripe unreachable (cannot connect"),
        "{message}"
    );
    let message = transient(stripe.void(&usd_order(63, "capture")).await);
    assert!(message.contains("cannot connect"), "{message}");
}

#[tokio::test]
async fn a_timeout_is_transient_and_the_retry_gets_the_first_answer() {
    let double = Double::start().await;
    let stripe = Stripe::new(StripeSettings {
        timeout: Duration::from_millis(800),
        ..double.settings()
    })
    .unwrap();
    double.fail_next(Some(Fault::Hang(Duration::from_millis(2500))));
    let req = usd_order(64, "authorize");
    let message = transient(stripe.authorize(&req).await);
    assert!(
        message.starts_with("Stripe unreachable (no answer in time"),
        "{message}"
    );

    // Stripe is still working on the first request: a retry now is told so (409), transient.
    let message = transient(stripe.authorize(&req).await);
    assert!(message.starts_with("Stripe conflict:"), "{message}");

    // Once it is done, the retry gets its answer instead of a second PaymentIntent.
    for _ in 0..100 {
        if double.in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = stripe.authorize(&req).await.unwrap();
    assert_eq!(double.intents().len(), 1);
    assert_eq!(double.intents()[0]["id"], id.as_str());
}

#[tokio::test]
async fn a_wrong_api_key_is_transient_and_says_to_check_the_key() {
    let double = Double::start().await;
    let wrong = "sk_test_51WrongKey00000000000000000000000abcd";
    let stripe = Stripe::new(StripeSettings {
        api_key: Secret::new(wrong),
        ..double.settings()
    })
    .unwrap();
    let message = transient(stripe.authorize(&usd_order(65, "authorize")).await);
    assert_eq!(
        message,
        "Stripe refused the API key (HTTP 401): check the configured Stripe secret key and its \
         permissions (request req_dbl0001)"
    );
    assert!(!message.contains(wrong) && !message.contains("sk_test"));
    assert_eq!(
        double.requests()[0].header("authorization"),
        Some(format!("Bearer {wrong}").as_str())
    );
    // 403: a restricted key without the permission.
    double.fail_next(status_fault(
        403,
        None,
        json!({"error": {"type": "invalid_request_error",
            "message": "The provided key 'rk_test_***abcd' does not have the required \
                permissions for this endpoint."}}),
    ));
    let message = transient(double.stripe().authorize(&usd_order(66, "authorize")).await);
    assert!(
        message.starts_with("Stripe refused the API key (HTTP 403)"),
        "{message}"
    );
}

#[tokio::test]
async fn stripe_should_retry_is_honoured() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let lock = json!({"error": {"type": "invalid_request_error", "code": "lock_timeout",
        "message": "This object cannot be accessed right now because another API request or \
            Stripe process is currently accessing it."}});
    double.fail_next(status_fault(409, Some(true), lock.clone()));
    let message = transient(stripe.capture(&usd_order(67, "capture"), "pi_123").await);
    assert!(
        message.starts_with("Stripe asks to retry: lock_timeout:"),
        "{message}"
    );

    // A 400 is final, unless Stripe says a retry can succeed.
    let invalid = json!({"error": {"type": "invalid_request_error", "message": "Try again."}});
    double.fail_next(status_fault(400, Some(true), invalid.clone()));
    transient(stripe.capture(&usd_order(67, "capture"), "pi_123").await);
    double.fail_next(status_fault(400, None, invalid));
    declined(stripe.capture(&usd_order(67, "capture"), "pi_123").await);

    // A conflict Stripe says not to retry is final.
    double.fail_next(status_fault(409, Some(false), lock));
    declined(stripe.capture(&usd_order(67, "capture"), "pi_123").await);
}

// ---------------------------------------------------------------------------------------------
// Void
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn void_cancels_an_uncaptured_payment_intent() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let id = stripe.authorize(&usd_order(70, "authorize")).await.unwrap();

    stripe.void(&usd_order(70, "capture")).await.unwrap();

    let intent = double.intent(&id);
    assert_eq!(intent["status"], "canceled");
    assert_eq!(intent["cancellation_reason"], "abandoned");
    let requests = double.requests();
    let search = &requests[1];
    assert_eq!(
        (search.method.as_str(), search.path.as_str()),
        ("GET", "/v1/payment_intents/search")
    );
    assert_eq!(
        search.query_param("query"),
        Some(format!("metadata['order_id']:'{}'", order(70)).as_str())
    );
    assert_eq!(
        search.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(search.header("stripe-version"), Some("2024-06-20"));
    let cancel = &requests[2];
    assert_eq!(cancel.path, format!("/v1/payment_intents/{id}/cancel"));
    assert_eq!(
        cancel.header("idempotency-key"),
        Some(format!("order:{}:capture:void:cancel:{id}", order(70)).as_str())
    );
    assert_eq!(requests.len(), 3);
    assert!(double.refunds().is_empty());

    // Again: the PaymentIntent is canceled now, so only the search.
    stripe.void(&usd_order(70, "capture")).await.unwrap();
    assert_eq!(double.requests().len(), 4);
}

#[tokio::test]
async fn void_refunds_a_captured_payment_intent() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let id = stripe.authorize(&usd_order(71, "authorize")).await.unwrap();
    stripe
        .capture(&usd_order(71, "capture"), &id)
        .await
        .unwrap();

    stripe.void(&usd_order(71, "capture")).await.unwrap();

    let refunds = double.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["payment_intent"], id.as_str());
    assert_eq!(refunds[0]["amount"], 27998, "all of it");
    let call = double.requests().pop().unwrap();
    assert_eq!(call.path, "/v1/refunds");
    assert_eq!(
        call.header("idempotency-key"),
        Some(format!("order:{}:capture:void:refund:{id}", order(71)).as_str())
    );
    assert_eq!(call.form_map()["payment_intent"], id.as_str());
    assert_eq!(double.intent(&id)["status"], "succeeded", "not canceled");

    // A repeated void replays the refund instead of making another.
    stripe.void(&usd_order(71, "capture")).await.unwrap();
    assert_eq!(double.refunds().len(), 1);
    // Without the key's record (expired at Stripe), Stripe says it is refunded: done too.
    double.forget_idempotency_keys();
    stripe.void(&usd_order(71, "capture")).await.unwrap();
    assert_eq!(double.refunds().len(), 1);
}

#[tokio::test]
async fn void_does_nothing_when_there_is_nothing_to_release() {
    let double = Double::start().await;
    let stripe = double.stripe();
    stripe.void(&usd_order(72, "capture")).await.unwrap();
    let requests = double.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/payment_intents/search");

    // Another order's PaymentIntent is left alone.
    let other = stripe.authorize(&usd_order(73, "authorize")).await.unwrap();
    stripe.void(&usd_order(72, "capture")).await.unwrap();
    assert_eq!(double.intent(&other)["status"], "requires_capture");
    assert_eq!(double.requests().len(), 3);
}

#[tokio::test]
async fn void_releases_every_payment_intent_of_the_order_across_search_pages() {
    let double = Double::start().await;
    double.set_search_page_size(1);
    let stripe = double.stripe();
    let o = order(74);
    let declined_one = request(
        o,
        "authorize",
        money(27998, "USD"),
        Some("pm_card_chargeDeclined"),
    );
    declined(stripe.authorize(&declined_one).await);
    let authorized = stripe
        .authorize(&request(
            o,
            "authorize:2",
            money(27998, "USD"),
            Some("pm_card_visa"),
        ))
        .await
        .unwrap();
    let captured = stripe
        .authorize(&request(
            o,
            "authorize:3",
            money(27998, "USD"),
            Some("pm_card_visa"),
        ))
        .await
        .unwrap();
    stripe
        .capture(
            &request(o, "capture:3", money(27998, "USD"), None),
            &captured,
        )
        .await
        .unwrap();

    stripe
        .void(&request(o, "capture", money(27998, "USD"), None))
        .await
        .unwrap();

    let statuses: Vec<String> = double
        .intents()
        .iter()
        .map(|pi| pi["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["canceled", "canceled", "succeeded"]);
    assert_eq!(double.intent(&authorized)["status"], "canceled");
    let refunds = double.refunds();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["payment_intent"], captured.as_str());
    let pages: Vec<Option<String>> = double
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/payment_intents/search")
        .map(|r| r.query_param("page").map(str::to_owned))
        .collect();
    assert_eq!(pages, [None, Some("page_1".into()), Some("page_2".into())]);
}

#[tokio::test]
async fn void_failures_are_transient() {
    let double = Double::start().await;
    let stripe = double.stripe();
    let id = stripe.authorize(&usd_order(75, "authorize")).await.unwrap();
    // The search goes through; the cancel is refused as if the PaymentIntent moved on.
    double.fail_next(None);
    double.fail_next(status_fault(
        400,
        None,
        json!({"error": {
            "type": "invalid_request_error",
            "code": "payment_intent_unexpected_state",
            "message": "You cannot cancel this PaymentIntent because it has a status of succeeded.",
        }}),
    ));
    let message = transient(stripe.void(&usd_order(75, "capture")).await);
    assert!(
        message.starts_with(&format!(
            "void of order {}: payment_intent_unexpected_state",
            order(75)
        )),
        "{message}"
    );
    // The next try searches again and finishes.
    stripe.void(&usd_order(75, "capture")).await.unwrap();
    assert_eq!(double.intent(&id)["status"], "canceled");
}

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn settings_and_the_adapter_never_show_the_key() {
    let settings = StripeSettings {
        webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        ..StripeSettings::new(Secret::new(KEY))
    };
    assert_eq!(settings.api_base, "https://api.stripe.com");
    assert_eq!(settings.webhook_tolerance, Duration::from_secs(300));
    assert_eq!(settings.timeout, Duration::from_secs(20));
    let shown = format!("{settings:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(!shown.contains(WEBHOOK_SECRET), "{shown}");
    assert!(!shown.contains("sk_test"), "{shown}");
    assert!(shown.contains("api_key: Secret(****Qx7Z)"), "{shown}");
    let stripe = Stripe::new(settings).unwrap();
    let shown = format!("{stripe:?}");
    assert!(
        !shown.contains(KEY) && !shown.contains(WEBHOOK_SECRET),
        "{shown}"
    );
}

#[test]
fn bad_settings_are_refused_with_a_reason() {
    let with = |key: &str, base: &str| {
        Stripe::new(StripeSettings {
            api_base: base.to_owned(),
            ..StripeSettings::new(Secret::new(key))
        })
        .map(|_| ())
    };
    let https = "https://api.stripe.com";
    assert!(with("", https).unwrap_err().contains("key is empty"));
    let publishable = "pk_test_51Public0000000000000000";
    let err = with(publishable, https).unwrap_err();
    assert!(
        err.contains("publishable key") && !err.contains(publishable),
        "{err}"
    );
    let err = with(&format!("{KEY}\n"), https).unwrap_err();
    assert!(err.contains("line breaks") && !err.contains(KEY), "{err}");
    assert!(
        with("whsec_123", https)
            .unwrap_err()
            .contains("not a secret key")
    );
    let err = with(KEY, "http://api.stripe.com").unwrap_err();
    assert!(err.contains("plain http"), "{err}");
    assert!(with(KEY, "not a url").unwrap_err().contains("is not a URL"));
    assert!(with(KEY, "ftp://127.0.0.1").unwrap_err().contains("scheme"));
    with(KEY, "http://127.0.0.1:12111/").unwrap();
    with(KEY, "http://localhost:12111").unwrap();
    with(KEY, "http://[::1]:12111").unwrap();
    with("rk_test_51Restricted000000", https).unwrap();
    let zero = Stripe::new(StripeSettings {
        timeout: Duration::ZERO,
        ..StripeSettings::new(Secret::new(KEY))
    });
    assert!(zero.unwrap_err().contains("timeout"));
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

/// A payload and signature computed outside this code base:
/// `printf '%s' "1700000000.$PAYLOAD" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET"`.
const EVENT: &str = r#"{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"payment_intent.succeeded","created":1699999990,"livemode":false,"data":{"object":{"id":"pi_3Double","object":"payment_intent","amount":27998,"currency":"usd","status":"succeeded"}}}"#;
const EVENT_AT: i64 = 1_700_000_000;
const EVENT_SIGNATURE: &str = "7a83c8b3c148ae2f8b12ad739dfd09b995125130af7f94b254e033d7dffd0820";

fn sign(secret: &str, at: i64, payload: &[u8]) -> String {
    webhook_v1(secret, at, payload)
}

fn check(payload: &[u8], header: &str, now: i64) -> Result<WebhookEvent, WebhookError> {
    verify_webhook(
        payload,
        header,
        &Secret::new(WEBHOOK_SECRET),
        Duration::from_secs(300),
        now,
    )
}

#[test]
fn a_correctly_signed_webhook_is_accepted() {
    assert_eq!(
        sign(WEBHOOK_SECRET, EVENT_AT, EVENT.as_bytes()),
        EVENT_SIGNATURE
    );
    let header = format!("t={EVENT_AT},v1={EVENT_SIGNATURE}");
    let event = check(EVENT.as_bytes(), &header, EVENT_AT + 42).unwrap();
    assert_eq!(event.id, "evt_1NG8Du2eZvKYlo2CUI79vXWy");
    assert_eq!(event.event_type, "payment_intent.succeeded");
    assert_eq!(event.created, 1_699_999_990);
    assert_eq!(event.object["id"], "pi_3Double");
    assert_eq!(event.object["amount"], 27998);
    // Exactly at the tolerance, either way, still passes.
    check(EVENT.as_bytes(), &header, EVENT_AT + 300).unwrap();
    check(EVENT.as_bytes(), &header, EVENT_AT - 300).unwrap();
}

#[test]
fn a_tampered_webhook_payload_is_refused() {
    let header = format!("t={EVENT_AT},v1={EVENT_SIGNATURE}");
    let tampered = EVENT.replace("27998", "1");
    assert_eq!(
        check(tampered.as_bytes(), &header, EVENT_AT),
        Err(WebhookError::NoMatchingSignature)
    );
    // The timestamp is signed too: moving it forward breaks the signature.
    let moved = format!("t={},v1={EVENT_SIGNATURE}", EVENT_AT + 1000);
    assert_eq!(
        check(EVENT.as_bytes(), &moved, EVENT_AT + 1000),
        Err(WebhookError::NoMatchingSignature)
    );
}

#[test]
fn a_webhook_signed_with_another_secret_is_refused() {
    let other = sign("whsec_another_endpoint", EVENT_AT, EVENT.as_bytes());
    let err = check(
        EVENT.as_bytes(),
        &format!("t={EVENT_AT},v1={other}"),
        EVENT_AT,
    )
    .unwrap_err();
    assert_eq!(err, WebhookError::NoMatchingSignature);
    assert!(
        err.to_string()
            .contains("webhook secret is not this endpoint's")
    );
    assert!(!err.to_string().contains(WEBHOOK_SECRET));
}

#[test]
fn a_stale_or_future_webhook_timestamp_is_refused() {
    let header = format!("t={EVENT_AT},v1={EVENT_SIGNATURE}");
    let err = check(EVENT.as_bytes(), &header, EVENT_AT + 301).unwrap_err();
    assert_eq!(
        err,
        WebhookError::TimestampOutsideTolerance {
            timestamp: EVENT_AT,
            now: EVENT_AT + 301,
            age: 301,
            tolerance: 300
        }
    );
    assert!(
        err.to_string().contains("a replay, or a wrong clock"),
        "{err}"
    );
    assert!(matches!(
        check(EVENT.as_bytes(), &header, EVENT_AT - 301),
        Err(WebhookError::TimestampOutsideTolerance { age: 301, .. })
    ));
    assert!(matches!(
        check(EVENT.as_bytes(), &header, i64::MIN),
        Err(WebhookError::TimestampOutsideTolerance { .. })
    ));
}

#[test]
fn one_right_signature_among_several_is_enough() {
    let rolled_out = sign("whsec_old_secret", EVENT_AT, EVENT.as_bytes());
    let v0 = "6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39";
    let header = format!("t={EVENT_AT},v1={rolled_out},v0={v0},v1=zz-not-hex,v1={EVENT_SIGNATURE}");
    let event = check(EVENT.as_bytes(), &header, EVENT_AT).unwrap();
    assert_eq!(event.id, "evt_1NG8Du2eZvKYlo2CUI79vXWy");
    // A right signature under another scheme does not count.
    let only_v0 = format!("t={EVENT_AT},v0={EVENT_SIGNATURE},v1={rolled_out}");
    assert_eq!(
        check(EVENT.as_bytes(), &only_v0, EVENT_AT),
        Err(WebhookError::NoMatchingSignature)
    );
}

#[test]
fn malformed_signature_headers_are_refused() {
    let payload = EVENT.as_bytes();
    assert_eq!(
        check(payload, "", EVENT_AT),
        Err(WebhookError::MissingHeader)
    );
    assert_eq!(
        check(payload, "   ", EVENT_AT),
        Err(WebhookError::MissingHeader)
    );
    let malformed = |header: &str| match check(payload, header, EVENT_AT) {
        Err(WebhookError::MalformedHeader(why)) => why,
        other => panic!("{header:?}: {other:?}"),
    };
    assert_eq!(
        malformed(&format!("v1={EVENT_SIGNATURE}")),
        "no t=<timestamp>"
    );
    assert_eq!(malformed(&format!("t={EVENT_AT}")), "no v1= signature");
    assert_eq!(
        malformed(&format!("t={EVENT_AT},v0={EVENT_SIGNATURE}")),
        "no v1= signature"
    );
    assert_eq!(
        malformed(&format!("t=yesterday,v1={EVENT_SIGNATURE}")),
        "t= is not a Unix timestamp"
    );
    assert_eq!(
        malformed(&format!("t={EVENT_AT},{EVENT_SIGNATURE}")),
        "an entry without '='"
    );
    assert_eq!(
        malformed(&format!("t={EVENT_AT},t=1,v1={EVENT_SIGNATURE}")),
        "more than one t= timestamp"
    );
    // Spaces after the commas are tolerated.
    check(
        payload,
        &format!("t={EVENT_AT}, v1={EVENT_SIGNATURE}"),
        EVENT_AT,
    )
    .unwrap();
}

#[test]
fn a_signed_payload_that_is_not_an_event_is_refused() {
    for payload in [&b"not json"[..], br#"{"id":"evt_1","type":"x"}"#] {
        let header = format!(
            "t={EVENT_AT},v1={}",
            sign(WEBHOOK_SECRET, EVENT_AT, payload)
        );
        assert!(matches!(
            check(payload, &header, EVENT_AT),
            Err(WebhookError::BadJson(_))
        ));
    }
}

#[tokio::test]
async fn the_adapter_checks_webhooks_with_its_secret_and_the_clock() {
    let double = Double::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = format!("t={now},v1={}", sign(WEBHOOK_SECRET, now, EVENT.as_bytes()));
    let event = double
        .stripe()
        .verify_webhook(EVENT.as_bytes(), &header)
        .unwrap();
    assert_eq!(event.event_type, "payment_intent.succeeded");
    let old = EVENT_AT;
    let stale = format!("t={old},v1={EVENT_SIGNATURE}");
    assert!(matches!(
        double.stripe().verify_webhook(EVENT.as_bytes(), &stale),
        Err(WebhookError::TimestampOutsideTolerance { .. })
    ));

    let without = Stripe::new(StripeSettings {
        webhook_secret: None,
        ..double.settings()
    })
    .unwrap();
    assert_eq!(
        without.verify_webhook(EVENT.as_bytes(), &header),
        Err(WebhookError::NotConfigured)
    );
    assert_eq!(
        verify_webhook(
            EVENT.as_bytes(),
            &header,
            &Secret::new(""),
            Duration::from_secs(300),
            now
        ),
        Err(WebhookError::NotConfigured)
    );
}
