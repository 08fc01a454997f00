//! Refunds of part of a payment, and the role limits on money going back: support refunds
//! within the shop's limit and cancels only orders nothing was captured for.

use serde_json::json;

use crate::access::{create_staff, staff_token};
use crate::common::{TestServer, client_with, history_events, id_of};

/// Support `sam`, manager `mia`, and the reference order once it is paid.
async fn support_manager_and_a_paid_order(
    server: &TestServer,
) -> (reqwest::Client, reqwest::Client, String) {
    create_staff(server, "sam@shop.example", "support", "support password").await;
    create_staff(server, "mia@shop.example", "manager", "manager password").await;
    let sam = client_with(&staff_token(server, "sam@shop.example", "support password").await);
    let mia = client_with(&staff_token(server, "mia@shop.example", "manager password").await);
    let id = id_of(&server.place_reference().await);
    server.wait_for(&id, "paid").await;
    (sam, mia, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_refunds_within_the_limit_and_a_manager_beyond_it() {
    let server = TestServer::start(&["--refund-limit", "50.00 USD"]).await;
    let (sam, mia, id) = support_manager_and_a_paid_order(&server).await;
    let refund = |amount: &str, reason: &str| json!({"amount": {"amount": amount, "currency": "USD"}, "reason": reason});
    let path = format!("/v1/orders/{id}/refunds");

    // Within the limit: accepted, pending until the provider has made it.
    let (code, asked) = server
        .post_with(&sam, &path, &refund("42.10", "one item arrived broken 🫖"))
        .await;
    assert_eq!(code, 202, "{asked}");
    assert_eq!(
        asked["payment"]["refundPending"]["amount"], "42.10",
        "{asked}"
    );
    // Beyond it, counting what was refunded already: refused, and nothing changes.
    let (code, over) = server
        .post_with(&sam, &path, &refund("8.00", "and the box"))
        .await;
    assert_eq!(code, 403, "{over}");
    assert!(
        over["detail"].as_str().unwrap().contains("50.00 USD"),
        "{over}"
    );
    // Bad input: a clear 422 each.
    for bad in [
        refund("0", "nothing"),
        refund("1.001", "too precise"),
        refund("300.00", "more than was paid"),
        json!({"amount": {"amount": "1.00", "currency": "EUR"}, "reason": "wrong currency"}),
        json!({"amount": {"amount": "1.00", "currency": "USD"}, "reason": " "}),
        json!({"amount": {"amount": "1.00", "currency": "USD"}}),
    ] {
        let (code, problem) = server.post_with(&mia, &path, &bad).await;
        assert_eq!(code, 422, "{bad} → {problem}");
    }
    // With the version read, a request sent again after a lost answer refunds nothing more.
    server.wait_idle().await;
    let (_, now) = server.get(&format!("/v1/orders/{id}")).await;
    let mut once = refund("1.00", "sent twice by a flaky client");
    once["expectedVersion"] = now["version"].clone();
    let (code, _) = server.post_with(&mia, &path, &once).await;
    assert_eq!(code, 202);
    let (code, problem) = server.post_with(&mia, &path, &once).await;
    assert_eq!(code, 409, "{problem}");
    assert_eq!(problem["code"], "order-changed", "{problem}");
    // A manager is not limited; the refunds never exceed what was captured.
    let (code, _) = server
        .post_with(
            &mia,
            &path,
            &refund("236.88", "goodwill: the parcel was a week late"),
        )
        .await;
    assert_eq!(code, 202);
    let (code, problem) = server.post_with(&mia, &path, &refund("0.01", "more")).await;
    assert_eq!(code, 422, "nothing is left: {problem}");
    server.wait_idle().await;
    let (_, order) = server.get(&format!("/v1/orders/{id}")).await;
    let refunds: Vec<&str> = order["payment"]["refunds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"]["amount"].as_str().unwrap())
        .collect();
    assert_eq!(refunds, ["42.10", "1.00", "236.88"], "{order}");
    assert_eq!(order["payment"]["refundable"]["amount"], "0.00");
    assert!(order["payment"]["refundPending"].is_null(), "{order}");
    assert_eq!(order["status"], "paid", "a refund changes no status");
    let events = history_events(&order);
    assert_eq!(events.iter().filter(|e| *e == "RefundRequested").count(), 3);
    assert_eq!(events.iter().filter(|e| *e == "RefundIssued").count(), 3);
    // Customers cannot refund themselves.
    let (code, _) = server
        .post_with(&server.anonymous(), &path, &refund("1.00", "me"))
        .await;
    assert_eq!(code, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_manager_cancels_a_paid_order() {
    let server = TestServer::start(&[]).await;
    let (sam, mia, id) = support_manager_and_a_paid_order(&server).await;
    let cancel = format!("/v1/orders/{id}/cancel");
    let (code, problem) = server
        .post_with(&sam, &cancel, &json!({"reason": "customer asked"}))
        .await;
    assert_eq!(code, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("orders:cancel-paid"),
        "{problem}"
    );
    let (code, canceled) = server
        .post_with(&mia, &cancel, &json!({"reason": "customer asked"}))
        .await;
    assert_eq!(code, 200, "{canceled}");
    let refunded = server
        .wait_until(
            &id,
            |o| o["payment"]["refundable"]["amount"] == "0.00",
            "refunded",
        )
        .await;
    assert_eq!(refunded["status"], "canceled");
}
