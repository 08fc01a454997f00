//! `orderly serve` with SMTP configured: placing and shipping an order delivers the right
//! messages to a real SMTP listener on loopback, on SQLite and on PostgreSQL; a mail server that
//! is down never holds an order back, and staff see and retry what failed.

use orderly_store_postgres::testing::TestSchema;
use orderly_testkit::smtp::SmtpServer;
use serde_json::{Value, json};

use crate::common::{TestServer, id_of, reference_body};

const ADMIN: &str = "staff@shop.example";

pub(crate) fn smtp_args(port: &str) -> Vec<String> {
    [
        "--notifier",
        "smtp",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        port,
        "--smtp-tls",
        "none",
        "--notify-from",
        "Orderly Shop <orders@shop.example>",
        "--notify-admin-email",
        ADMIN,
        "--shop-name",
        "Orderly Shop",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

pub(crate) async fn start(
    smtp: &SmtpServer,
    db: Option<&str>,
) -> (TestServer, Option<tempfile::TempDir>) {
    let port = smtp.port().to_string();
    let args = smtp_args(&port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match db {
        None => (TestServer::start(&args).await, None),
        Some(url) => {
            let dir = tempfile::tempdir().unwrap();
            let server = TestServer::start_node(dir.path(), "node.log", url, &args).await;
            (server, Some(dir))
        }
    }
}

/// Places the reference order with an address in two scripts, ships it, and checks every
/// message: who gets what, subjects, both bodies, and nothing twice.
async fn place_and_ship_delivers_the_right_messages(server: &TestServer, smtp: &SmtpServer) {
    let mut body = reference_body();
    body["shippingAddress"] = json!({
        "name": "Алиса Джонсон 🎁", "line1": "東京都渋谷区神南1-2-3", "city": "渋谷区",
        "postalCode": "150-0041", "country": "JP"
    });
    let order = server.place(&body).await;
    let id = id_of(&order);
    server.wait_for(&id, "paid").await;
    let (code, shipped) = server
        .post(
            &format!("/v1/orders/{id}/ship"),
            &json!({"carrier": "DHL", "trackingNumber": "JD014600006281234567"}),
        )
        .await;
    assert_eq!(code, 200, "{shipped}");
    server.wait_idle().await;

    let mails = smtp.wait_for(3).await;
    let mut seen: Vec<(String, String)> = mails
        .iter()
        .map(|m| (m.to.join(","), m.parsed().subject))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "alice.johnson@example.com".to_owned(),
                "Your Orderly Shop order is confirmed".to_owned()
            ),
            (
                "alice.johnson@example.com".to_owned(),
                "Your order is on its way".to_owned()
            ),
            (ADMIN.to_owned(), format!("New order {id}: $279.98")),
        ]
    );
    let confirmation = mails
        .iter()
        .map(|m| m.parsed())
        .find(|m| m.subject.ends_with("is confirmed"))
        .unwrap();
    assert_eq!(confirmation.content_type, "multipart/alternative");
    assert!(confirmation.text.contains("Hello Alice Johnson,"));
    assert!(
        confirmation
            .text
            .contains("  Алиса Джонсон 🎁\n  東京都渋谷区神南1-2-3\n"),
        "{:?}",
        confirmation.text
    );
    assert!(confirmation.text.contains("Total: $279.98"));
    assert!(confirmation.html.contains("Алиса Джонсон 🎁<br>"));
    let ship = mails
        .iter()
        .map(|m| m.parsed())
        .find(|m| m.subject == "Your order is on its way")
        .unwrap();
    assert!(ship.text.contains("Tracking number: JD014600006281234567"));
    assert!(ship.html.contains("Carrier: <strong>DHL</strong>"));
    // Nothing more arrives: with no saga or notify work left, every message that was going to
    // be sent has been.
    server.wait_idle().await;
    assert_eq!(smtp.messages().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_and_shipping_mails_the_customer_and_the_shop_on_sqlite() {
    let smtp = SmtpServer::start().await;
    let (server, _dir) = start(&smtp, None).await;
    place_and_ship_delivers_the_right_messages(&server, &smtp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placing_and_shipping_mails_the_customer_and_the_shop_on_postgres() {
    let schema = TestSchema::create().await.unwrap();
    let smtp = SmtpServer::start().await;
    let (server, _dir) = start(&smtp, Some(&schema.url)).await;
    place_and_ship_delivers_the_right_messages(&server, &smtp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_server_that_is_down_holds_no_order_back_and_staff_retry_what_failed() {
    let mut smtp = SmtpServer::start().await;
    smtp.stop().await;
    let (server, _dir) = start(&smtp, None).await;
    let id = id_of(&server.place_reference().await);
    // The saga finishes although every e-mail fails (5 fast retries, then given up).
    let order = server.wait_for(&id, "paid").await;
    assert!(order["needsAttention"].is_null(), "{order}");
    server.wait_idle().await;

    let (code, page) = server.get("/v1/notifications?status=failed").await;
    assert_eq!(code, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    assert!(items.iter().all(|n| n["orderId"] == id.as_str()
        && n["status"] == "failed"
        && n["attempts"] == 6
        && n["error"].as_str().unwrap().contains("SMTP")));
    let key = |to: &str| -> String {
        items
            .iter()
            .find(|n| n["recipient"] == to)
            .map(|n| n["key"].as_str().unwrap().to_owned())
            .unwrap()
    };

    // Still down: the retry says so and keeps it failed.
    let (code, problem) = server
        .post("/v1/notifications/retry", &json!({"key": key(ADMIN)}))
        .await;
    assert_eq!(code, 502, "{problem}");
    assert_eq!(problem["code"], "notification-not-sent");

    smtp.restart().await;
    let (code, sent) = server
        .post("/v1/notifications/retry", &json!({"key": key(ADMIN)}))
        .await;
    assert_eq!(code, 200, "{sent}");
    assert_eq!(sent["status"], "sent");
    assert_eq!(smtp.wait_for(1).await[0].to, [ADMIN]);
    let (_, page) = server.get("/v1/notifications?status=failed").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // Retrying what is no longer failed, or never was, is a clear 4xx.
    let (code, problem) = server
        .post("/v1/notifications/retry", &json!({"key": key(ADMIN)}))
        .await;
    assert_eq!(code, 409, "{problem}");
    assert_eq!(problem["code"], "notification-not-failed");
    let (code, _) = server
        .post("/v1/notifications/retry", &json!({"key": "nope"}))
        .await;
    assert_eq!(code, 404);
    let (code, problem) = server
        .post(
            "/v1/notifications/retry",
            &json!({"key": "k".repeat(100_000)}),
        )
        .await;
    assert_eq!(code, 422, "a key no notification can have: {problem}");
    assert!(
        problem.to_string().len() < 2_000,
        "the key is not echoed back"
    );
    let (code, _) = server.get("/v1/notifications").await;
    assert_eq!(code, 422);
    let (code, _) = server.get("/v1/notifications?status=failed&limit=0").await;
    assert_eq!(code, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_preferences_are_kept_and_checked() {
    let smtp = SmtpServer::start().await;
    let (server, _dir) = start(&smtp, None).await;
    let path = "/v1/customers/001/notification-preferences";
    let (code, prefs) = server.get(path).await;
    assert_eq!(code, 200);
    assert_eq!(prefs, json!({"marketing": true, "smsPhone": null}));
    let put = |body: Value| {
        let client = server.client.clone();
        let url = server.url(path);
        async move {
            let r = client.put(url).json(&body).send().await.unwrap();
            let code = r.status().as_u16();
            let ctype = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (code, ctype, r.json::<Value>().await.unwrap())
        }
    };
    let (code, _, saved) = put(json!({"marketing": false, "smsPhone": "+4915123456789"})).await;
    assert_eq!(code, 200, "{saved}");
    assert_eq!(server.get(path).await.1, saved);
    let (code, ctype, problem) = put(json!({"marketing": false, "smsPhone": "0151 2345"})).await;
    assert_eq!(code, 422);
    assert_eq!(ctype.as_deref(), Some("application/problem+json"));
    assert_eq!(problem["errors"][0]["field"], "smsPhone", "{problem}");
    let (code, _, _) = put(json!({"marketing": "no"})).await;
    assert!(code == 400 || code == 422, "{code}");
    let (code, _, _) = put(json!({"marketing": true, "extra": 1})).await;
    assert!(code == 400 || code == 422, "{code}");
    let (code, _) = server
        .get("/v1/customers/nobody/notification-preferences")
        .await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_send_the_customer_a_written_message_once_and_the_history_says_who_and_why() {
    let smtp = SmtpServer::start().await;
    let (server, _dir) = start(&smtp, None).await;
    let mut body = reference_body();
    body["shippingAddress"] = json!({
        "name": "山田 太郎", "line1": "渋谷区神南 1-2-3 🏠", "city": "東京都",
        "postalCode": "150-0041", "country": "JP"
    });
    let id = id_of(&server.place(&body).await);
    server.wait_for(&id, "paid").await;
    server.wait_idle().await;
    let before = smtp.wait_for(2).await.len();
    let path = format!("/v1/orders/{id}/messages");
    let (code, order) = server
        .post(
            &path,
            &json!({"message": "contact_address", "reason": "the carrier called 📞"}),
        )
        .await;
    assert_eq!(code, 202, "{order}");
    let entry = order["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(entry["event"], "CustomerContacted", "{entry}");
    assert_eq!(entry["detail"], "contact_address: the carrier called 📞");
    server.wait_idle().await;
    let mails = smtp.wait_for(before + 1).await;
    let sent: Vec<_> = mails
        .iter()
        .map(|m| m.parsed())
        .filter(|m| m.subject.starts_with("Please check the delivery address"))
        .collect();
    assert_eq!(sent.len(), 1, "sent once");
    assert_eq!(
        sent[0].subject,
        format!("Please check the delivery address of order {id}")
    );
    assert!(
        sent[0].text.contains("渋谷区神南 1-2-3 🏠"),
        "{}",
        sent[0].text
    );
    assert!(
        !sent[0].text.contains("carrier called"),
        "the reason stays with staff"
    );
    // Only the messages written for it.
    for bad in [
        json!({"message": "order_confirmation"}),
        json!({"message": "hello"}),
        json!({}),
    ] {
        let (code, problem) = server.post(&path, &bad).await;
        assert_eq!(code, 422, "{bad} → {problem}");
    }
}
