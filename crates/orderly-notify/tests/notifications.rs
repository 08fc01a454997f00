//! Notifications end to end in one process: the saga over the in-memory store, the templates in
//! `templates/`, lettre talking SMTP to the testkit's real SMTP listener on loopback.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orderly_core::access::Fulfil;
use orderly_core::memory::MemoryStore;
use orderly_core::notify::{self, Notifications, NotifySettings, Preferences, Status};
use orderly_core::ports::{
    Consumer, PaymentError, PaymentGateway, PaymentRequest, Recipient, Store, SystemClock,
};
use orderly_core::saga::Saga;
use orderly_core::{AppSettings, Application, LineRequest, Orderly, PlaceOrder, RetryPolicy};
use orderly_domain::{Customer, CustomerId, Email, Name, OrderId, OrderStatus, Quantity};
use orderly_notify::sink::LogNotifier;
use orderly_notify::smtp::{SmtpNotifier, SmtpSettings, TlsMode};
use orderly_notify::{FileTemplates, Routes, message_id};
use orderly_testkit::fixtures;
use orderly_testkit::smtp::SmtpServer;
use orderly_testkit::staff::Staff;

/// Charges always go through.
struct Approve;

#[async_trait]
impl PaymentGateway for Approve {
    async fn authorize(&self, r: &PaymentRequest) -> Result<String, PaymentError> {
        Ok(format!("auth_{}", r.order_id))
    }
    async fn capture(&self, r: &PaymentRequest, _: &str) -> Result<String, PaymentError> {
        Ok(format!("ch_{}", r.order_id))
    }
    async fn refund(&self, r: &PaymentRequest, _: &str) -> Result<String, PaymentError> {
        Ok(format!("re_{}", r.order_id))
    }
    async fn void(&self, _: &PaymentRequest) -> Result<(), PaymentError> {
        Ok(())
    }
}

/// A name with markup and emoji (a ZWJ sequence): byte-exact in text, escaped in HTML.
const NAME: &str = "Zoë <b>山田</b> 👩\u{200d}👩\u{200d}👧";
const ADMIN: &str = "admin@orderly.test";

struct Shop {
    store: Arc<dyn Store>,
    app: Orderly,
    staff: Staff,
    saga: Saga,
    notes: Arc<Notifications>,
    smtp: SmtpServer,
    sms_dir: tempfile::TempDir,
}

async fn shop(max_attempts: u32) -> Shop {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .create_product(
            &fixtures::product("001", "Wireless Headphones 🎧", "79.99"),
            100,
        )
        .await
        .unwrap();
    store
        .create_customer(&Customer {
            id: CustomerId::parse("001").unwrap(),
            email: Email::parse("zoe@example.com").unwrap(),
            name: Name::parse("name", NAME).unwrap(),
            created_at: fixtures::at(0),
        })
        .await
        .unwrap();
    let smtp = SmtpServer::start().await;
    let mail = SmtpNotifier::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port: smtp.port(),
        tls: TlsMode::None,
        username: None,
        password: None,
        from: "Orderly Shop <shop@orderly.test>".into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let sms_dir = tempfile::tempdir().unwrap();
    let routes = Routes {
        email: Some(Arc::new(mail)),
        sms: Some(Arc::new(LogNotifier::dir(sms_dir.path()))),
        topic: None,
    };
    let wiring = Application::new(Arc::clone(&store))
        .with_settings(AppSettings {
            base_currency: orderly_domain::Currency::USD,
            cart_idle: orderly_core::CART_IDLE,
            ..AppSettings::default()
        })
        // Fast retries only: a message the server does not take is failed when they run out.
        .with_retry_policies(orderly_core::retry::RetryPolicies::fast_only(RetryPolicy {
            interval: Duration::from_millis(1),
            max_attempts,
            backoff_rate: 1.0,
        }))
        .with_notifier(
            Arc::new(routes),
            Arc::new(FileTemplates::load().unwrap()),
            NotifySettings {
                shop_name: "Orderly Shop".into(),
                staff: vec![Recipient::Email(ADMIN.into())],
            },
        );
    let app = wiring.orderly();
    let notes = wiring.notifications().unwrap();
    let saga = wiring.saga(Arc::new(Approve));
    let staff = Staff::admin(&wiring).await.unwrap();
    Shop {
        store,
        app,
        staff,
        saga,
        notes,
        smtp,
        sms_dir,
    }
}

impl Shop {
    /// Ships order `id` with `carrier` and `tracking`, and delivers it.
    async fn ship(&self, id: OrderId, carrier: &str, tracking: &str) {
        let permit = self.staff.permit::<Fulfil>(&self.app, id).await.unwrap();
        let orders = &self.app.orders;
        orders
            .ship(permit, carrier.into(), tracking.into())
            .await
            .unwrap();
        let permit = self.staff.permit::<Fulfil>(&self.app, id).await.unwrap();
        orders.deliver(permit).await.unwrap();
    }

    async fn place(&self) -> OrderId {
        let placed = self
            .staff
            .place(
                &self.app,
                PlaceOrder {
                    customer_id: CustomerId::parse("001").unwrap(),
                    items: vec![LineRequest {
                        product_id: orderly_domain::ProductId::parse("001").unwrap(),
                        quantity: Quantity::new(2).unwrap(),
                    }],
                    currency: None,
                    shipping_address: Some(fixtures::address("東京都渋谷区 🏠")),
                    payment_method: None,
                },
                None,
            )
            .await
            .unwrap();
        match placed {
            orderly_core::Placed::New(o) | orderly_core::Placed::Replay(o) => o.id,
        }
    }

    /// Runs every due job once, `consumer` only if given; returns how many ran.
    async fn run_due(&self, only: Option<Consumer>) -> usize {
        let now = orderly_core::ports::Clock::now(&SystemClock);
        let jobs = self.store.claim_jobs(now, 100, 60_000).await.unwrap();
        let mut ran = 0;
        for job in jobs {
            if only.is_some_and(|c| c != job.consumer) {
                self.store.release_leases().await.unwrap();
                continue;
            }
            self.saga.run(&job).await;
            ran += 1;
        }
        ran
    }

    /// Runs jobs until none is left (at most 10 s).
    async fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.store.pending_jobs().await.unwrap() > 0 {
            assert!(Instant::now() < deadline, "jobs never finished");
            if self.run_due(None).await == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }

    async fn status(&self, id: OrderId) -> OrderStatus {
        self.app.orders.order(id).await.unwrap().status
    }
}

#[tokio::test]
async fn placing_an_order_mails_the_customer_and_the_shop_once_each() {
    let shop = shop(3).await;
    let id = shop.place().await;
    shop.drain().await;
    assert_eq!(shop.status(id).await, OrderStatus::Paid);

    let mails = shop.smtp.wait_for(2).await;
    assert_eq!(mails.len(), 2);
    let to_customer = mails.iter().find(|m| m.to == ["zoe@example.com"]).unwrap();
    let to_admin = mails.iter().find(|m| m.to == [ADMIN]).unwrap();
    assert_eq!(to_customer.from, "shop@orderly.test");

    let mail = to_customer.parsed();
    assert_eq!(mail.subject, "Your Orderly Shop order is confirmed");
    assert_eq!(mail.content_type, "multipart/alternative");
    assert_eq!(mail.from, "shop@orderly.test");
    // Names and addresses byte-exact in the text, escaped in the HTML.
    assert!(
        mail.text.contains(&format!("Hello {NAME},")),
        "{}",
        mail.text
    );
    assert!(mail.text.contains("東京都渋谷区 🏠"));
    assert!(mail.text.contains("2 × Wireless Headphones 🎧 — $159.98"));
    assert!(mail.text.contains("Total: $159.98"));
    assert!(
        mail.html
            .contains("Zoë &lt;b&gt;山田&lt;&#x2f;b&gt; 👩\u{200d}👩\u{200d}👧"),
        "{}",
        mail.html
    );
    assert!(!mail.html.contains("<b>山田"));
    assert!(mail.html.contains("<strong>$159.98</strong>"));
    let event = shop.store.order_events(id).await.unwrap()[0].clone();
    let key = notify::dedupe_key(
        event.id,
        notify::Template::OrderConfirmation,
        &Recipient::Email("zoe@example.com".into()),
    );
    assert_eq!(
        format!("<{}>", mail.message_id),
        message_id(&key, "orderly.test")
    );

    let alert = to_admin.parsed();
    assert_eq!(alert.subject, format!("New order {id}: $159.98"));
    assert!(
        alert
            .text
            .contains(&format!("Customer: {NAME} <zoe@example.com> (id 001)"))
    );
}

#[tokio::test]
async fn a_notify_job_that_runs_twice_sends_each_message_once() {
    let shop = shop(3).await;
    shop.place().await;
    let now = orderly_core::ports::Clock::now(&SystemClock);
    let jobs = shop.store.claim_jobs(now, 100, 60_000).await.unwrap();
    shop.store.release_leases().await.unwrap();
    let job = jobs
        .into_iter()
        .find(|j| j.consumer == Consumer::Notify)
        .unwrap();
    shop.saga.run(&job).await;
    // Redelivery: the same job again, as after a crash between send and completion.
    shop.saga.run(&job).await;
    shop.drain().await;
    let mails = shop.smtp.wait_for(2).await;
    assert_eq!(mails.len(), 2, "one message per event and recipient");
}

#[tokio::test]
async fn a_message_is_sent_when_the_server_is_back() {
    let mut shop = shop(5).await;
    let id = shop.place().await;
    // The server answers 451 (try later): nothing is sent, the notify job waits to retry…
    shop.smtp.set_failing(true);
    assert_eq!(shop.run_due(Some(Consumer::Notify)).await, 1);
    assert!(shop.smtp.messages().is_empty());
    // …and the order's saga goes on meanwhile: its own lane.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shop.status(id).await != OrderStatus::Paid {
        assert!(Instant::now() < deadline);
        shop.run_due(Some(Consumer::Inventory)).await;
        shop.run_due(Some(Consumer::Payment)).await;
    }
    // The server goes down altogether: the connection is refused.
    shop.smtp.set_failing(false);
    shop.smtp.stop().await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(shop.run_due(Some(Consumer::Notify)).await, 1);
    // It comes back on the same port: the retry delivers.
    shop.smtp.restart().await;
    shop.drain().await;
    let mails = shop.smtp.wait_for(2).await;
    assert_eq!(mails.len(), 2);
    assert!(shop.notes.failed(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_notification_out_of_retries_is_shown_to_staff_and_the_order_is_untouched() {
    let mut shop = shop(1).await;
    shop.smtp.stop().await;
    let id = shop.place().await;
    shop.drain().await;
    let order = shop.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert!(
        order.needs_attention.is_none(),
        "a notification never flags the order"
    );

    let failed = shop.notes.failed(None, 10).await.unwrap();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|f| f.status == Status::Failed
        && f.order_id == id
        && f.attempts == 2
        && f.error.as_deref().is_some_and(|e| e.contains("SMTP"))));

    // Staff retry one once the server is back.
    shop.smtp.restart().await;
    let to_customer = failed
        .iter()
        .find(|f| f.recipient == Recipient::Email("zoe@example.com".into()))
        .unwrap();
    let sent = shop.notes.retry(&to_customer.key).await.unwrap();
    assert_eq!(sent.status, Status::Sent);
    let mails = shop.smtp.wait_for(1).await;
    assert_eq!(mails[0].to, ["zoe@example.com"]);
    let left = shop.notes.failed(None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].recipient, Recipient::Email(ADMIN.into()));
    assert!(matches!(
        shop.notes.retry(&to_customer.key).await,
        Err(notify::RetryError::NotFailed(_))
    ));
}

#[tokio::test]
async fn shipping_and_delivery_tell_the_customer_by_mail_and_sms_and_marketing_respects_opt_out() {
    let shop = shop(3).await;
    let customer = CustomerId::parse("001").unwrap();
    shop.app
        .preferences
        .set(
            &customer,
            &Preferences {
                marketing: false,
                sms_phone: Some("+15551234567".into()),
            },
        )
        .await
        .unwrap();
    let first = shop.place().await;
    shop.drain().await;
    shop.ship(first, "DHL Express", "JD014600006281234567")
        .await;
    shop.drain().await;

    let subjects = |mails: &[orderly_testkit::smtp::Captured]| -> Vec<String> {
        let mut s: Vec<String> = mails
            .iter()
            .filter(|m| m.to == ["zoe@example.com"])
            .map(|m| m.parsed().subject)
            .collect();
        s.sort();
        s
    };
    let mails = shop.smtp.wait_for(4).await;
    assert_eq!(
        subjects(&mails),
        [
            "Your Orderly Shop order is confirmed",
            "Your order is on its way",
            "Your order was delivered",
        ],
        "transactional messages go, the marketing one does not"
    );
    let shipped = mails
        .iter()
        .map(|m| m.parsed())
        .find(|m| m.subject == "Your order is on its way")
        .unwrap();
    assert!(shipped.text.contains("Carrier:         DHL Express"));
    assert!(
        shipped
            .text
            .contains("Tracking number: JD014600006281234567")
    );
    assert!(
        shipped
            .html
            .contains("<strong>JD014600006281234567</strong>")
    );
    let sms: Vec<String> = std::fs::read_dir(shop.sms_dir.path())
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(sms.len(), 2, "shipped and delivered by SMS");
    assert!(sms.iter().any(|s| s.starts_with("To: sms +15551234567")
        && s.contains("has shipped with DHL Express, tracking JD014600006281234567.")));

    // Opted in again, the next delivery brings the review request too.
    shop.app
        .preferences
        .set(&customer, &Preferences::default())
        .await
        .unwrap();
    let second = shop.place().await;
    shop.drain().await;
    shop.ship(second, "UPS", "1Z999").await;
    shop.drain().await;
    let mails = shop.smtp.wait_for(9).await;
    let review = mails
        .iter()
        .map(|m| m.parsed())
        .filter(|m| m.subject == "How do you like your purchase?")
        .count();
    assert_eq!(review, 1);
}

#[tokio::test]
async fn a_phone_number_that_is_not_e164_is_refused() {
    let shop = shop(1).await;
    let err = shop
        .app
        .preferences
        .set(
            &CustomerId::parse("001").unwrap(),
            &Preferences {
                marketing: true,
                sms_phone: Some("555-1234".into()),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("smsPhone"), "{err}");
}
