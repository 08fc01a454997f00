//! The use cases and the saga over the in-memory store, with a scripted payment provider.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orderly_core::access::{Cancel, Refund, Retry};
use orderly_core::memory::MemoryStore;
use orderly_core::ports::{
    Clock, ManualClock, PaymentError, PaymentGateway, PaymentKey, PaymentRequest, PaymentStep,
    Store,
};
use orderly_core::retry::{FailureClass, RetryPolicies};
use orderly_core::saga::Saga;
use orderly_core::{
    AppError, Application, IdempotencyKey, LineRequest, Orderly, PlaceOrder, Placed, RetryPolicy,
};
use orderly_domain::{
    CustomerId, EventKind, Order, OrderId, OrderStatus, ProductId, Quantity, Timestamp,
};
use orderly_testkit::staff::Staff;
use tokio::sync::Notify;

/// Answers captures from a script (then succeeds), and counts what it charged per key.
#[derive(Default)]
struct ScriptedPayments {
    script: Mutex<VecDeque<Result<(), PaymentError>>>,
    charged: Mutex<Vec<String>>,
    refunded: Mutex<Vec<String>>,
    /// The provider's book of refunds: the amount each key was first made for.
    refund_book: Mutex<std::collections::HashMap<String, i64>>,
    /// Refund calls still to time out — after the provider made the refund.
    refund_timeouts: Mutex<u32>,
    voided: Mutex<Vec<String>>,
    /// When set, a capture signals `started` and waits for `release` before answering.
    gate: Option<(Arc<Notify>, Arc<Notify>)>,
}

impl ScriptedPayments {
    fn with(script: Vec<Result<(), PaymentError>>) -> Arc<Self> {
        Arc::new(ScriptedPayments {
            script: Mutex::new(script.into()),
            ..Self::default()
        })
    }
}

#[async_trait]
impl PaymentGateway for ScriptedPayments {
    async fn authorize(&self, request: &PaymentRequest) -> Result<String, PaymentError> {
        Ok(format!("auth_{}", request.order_id))
    }

    async fn capture(
        &self,
        request: &PaymentRequest,
        _authorization: &str,
    ) -> Result<String, PaymentError> {
        if let Some((started, release)) = &self.gate {
            started.notify_one();
            release.notified().await;
        }
        let next = self.script.lock().unwrap().pop_front().unwrap_or(Ok(()));
        next?;
        let mut charged = self.charged.lock().unwrap();
        // A real provider answers a repeated idempotency key with the original charge.
        let key = request.idempotency_key.to_string();
        if !charged.contains(&key) {
            charged.push(key);
        }
        Ok(format!("ch_{}", request.order_id))
    }

    async fn refund(
        &self,
        request: &PaymentRequest,
        _capture: &str,
    ) -> Result<String, PaymentError> {
        let key = request.idempotency_key.to_string();
        // A provider answers a repeated key with the first refund, and refuses another amount.
        let first = *self
            .refund_book
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_insert(request.amount.minor());
        assert_eq!(
            first,
            request.amount.minor(),
            "{key} asked for another amount"
        );
        {
            let mut timeouts = self.refund_timeouts.lock().unwrap();
            if *timeouts > 0 {
                *timeouts -= 1;
                return Err(PaymentError::Transient("timed out after making it".into()));
            }
        }
        let mut refunded = self.refunded.lock().unwrap();
        if !refunded.contains(&key) {
            refunded.push(key);
        }
        Ok(format!("re_{}", request.order_id))
    }

    async fn void(&self, request: &PaymentRequest) -> Result<(), PaymentError> {
        let mut charged = self.charged.lock().unwrap();
        let key = request.idempotency_key.to_string();
        if let Some(i) = charged.iter().position(|k| *k == key) {
            charged.remove(i);
            self.voided.lock().unwrap().push(key);
        }
        Ok(())
    }
}

struct World {
    store: Arc<dyn Store>,
    app: Orderly,
    /// Who acts for the shop in these tests: an admin, who may do anything to any order.
    staff: Staff,
    /// A support agent: cancels only unpaid orders, refunds within the shop's limit.
    support: Staff,
    saga: Saga,
    payments: Arc<ScriptedPayments>,
    clock: Arc<ManualClock>,
}

async fn world(script: Vec<Result<(), PaymentError>>, retry: RetryPolicy) -> World {
    world_with(ScriptedPayments::with(script), retry).await
}

async fn world_with(payments: Arc<ScriptedPayments>, retry: RetryPolicy) -> World {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    // Time moves only when the test moves it: retry delays are skipped, not waited out.
    let clock = Arc::new(ManualClock::at(Timestamp::from_millis(1_700_000_000_000)));
    let wiring = Application::new(Arc::clone(&store))
        .with_clock(clock.clone())
        .with_retry_policies(RetryPolicies::fast_only(retry));
    let app = wiring.orderly();
    app.catalog.load_demo_data().await.unwrap();
    let saga = wiring.saga(payments.clone());
    let staff = Staff::admin(&wiring).await.unwrap();
    let support = Staff::with_role(&wiring, orderly_auth::Role::Support)
        .await
        .unwrap();
    World {
        store,
        app,
        staff,
        support,
        saga,
        payments,
        clock,
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        interval: Duration::from_millis(1),
        max_attempts: 3,
        backoff_rate: 1.0,
    }
}

fn reference() -> PlaceOrder {
    let line = |p: &str| LineRequest {
        product_id: ProductId::parse(p).unwrap(),
        quantity: Quantity::new(1).unwrap(),
    };
    PlaceOrder {
        customer_id: CustomerId::parse("001").unwrap(),
        items: vec![line("001"), line("002")],
        currency: None,
        shipping_address: None,
        payment_method: None,
    }
}

impl World {
    async fn place_order(
        &self,
        request: PlaceOrder,
        key: Option<IdempotencyKey>,
    ) -> Result<Placed, AppError> {
        self.staff.place(&self.app, request, key).await
    }

    async fn cancel(&self, id: OrderId, reason: Option<String>) -> Result<Order, AppError> {
        let permit = self.staff.permit::<Cancel>(&self.app, id).await?;
        self.app.orders.cancel(permit, reason).await
    }

    async fn retry(&self, id: OrderId) -> Result<Order, AppError> {
        let permit = self.staff.permit::<Retry>(&self.app, id).await?;
        self.app.support.retry(permit, None).await
    }

    async fn place(&self) -> OrderId {
        match self.place_order(reference(), None).await.unwrap() {
            Placed::New(o) => o.id,
            Placed::Replay(_) => panic!("replay"),
        }
    }

    /// The order's next saga step (inventory or payment), leaving its notify jobs, which wait
    /// in their own lane, unclaimed.
    async fn saga_job(&self, now: orderly_domain::Timestamp) -> orderly_core::ports::Job {
        let jobs = self.store.claim_jobs(now, 64, 60_000).await.unwrap();
        self.store.release_leases().await.unwrap();
        jobs.into_iter()
            .find(|j| j.consumer.lane() == orderly_core::ports::Lane::Saga)
            .expect("a saga job")
    }

    /// Runs the jobs due now, once each, leaving those that fail to wait for their next try.
    async fn run_due(&self) {
        let jobs = self
            .store
            .claim_jobs(self.clock.now(), 64, 60_000)
            .await
            .unwrap();
        for job in jobs {
            self.saga.run(&job).await;
        }
    }

    /// Runs queued jobs until none is left, moving the clock to each retry when it is due.
    async fn drain(&self) {
        for _ in 0..1000 {
            let now = self.clock.now();
            let jobs = self.store.claim_jobs(now, 64, 60_000).await.unwrap();
            if jobs.is_empty() {
                if self.store.pending_jobs().await.unwrap() == 0 {
                    return;
                }
                let due = self.store.next_due().await.unwrap().expect("a job is due");
                assert!(due > now, "a due job that cannot be claimed");
                self.clock.advance_to(due);
                continue;
            }
            for job in jobs {
                self.saga.run(&job).await;
            }
        }
        panic!("the saga never settled");
    }

    async fn stock(&self, p: &str) -> (i64, i64) {
        let s = self
            .app
            .catalog
            .stock(&ProductId::parse(p).unwrap())
            .await
            .unwrap();
        (s.available, s.reserved)
    }
}

#[tokio::test]
async fn a_placed_order_is_reserved_then_paid() {
    let w = world(vec![], fast()).await;
    let id = w.place().await;
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(w.stock("001").await, (149, 1));
    assert_eq!(w.payments.charged.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_decline_rejects_and_releases_stock() {
    let w = world(
        vec![Err(PaymentError::Declined("card_declined".into()))],
        fast(),
    )
    .await;
    let id = w.place().await;
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Rejected);
    assert_eq!(
        order.reason.as_deref(),
        Some("payment declined: card_declined")
    );
    assert_eq!(w.stock("001").await, (150, 0));
}

#[tokio::test]
async fn transient_failures_are_retried_and_charge_once() {
    let down = || Err(PaymentError::Transient("503".into()));
    let w = world(vec![down(), down()], fast()).await;
    let id = w.place().await;
    w.drain().await;
    assert_eq!(
        w.app.orders.order(id).await.unwrap().status,
        OrderStatus::Paid
    );
    assert_eq!(w.payments.charged.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn exhausted_retries_flag_the_order_for_attention() {
    let down = || Err(PaymentError::Transient("provider timeout".into()));
    let w = world(vec![down(), down(), down(), down()], fast()).await;
    let id = w.place().await;
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Reserved);
    let attention = order.needs_attention.unwrap();
    assert_eq!(
        (attention.step.as_str(), attention.attempts),
        ("payment", 4)
    );
    assert!(attention.error.contains("provider timeout"));
    let kinds: Vec<_> = w
        .store
        .order_events(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.last(), Some(&EventKind::OrderNeedsAttention));
}

/// The saga of `w` with stage 1's policies `policies`.
fn with_policies(w: &mut World, policies: RetryPolicies) {
    w.saga = Application::new(Arc::clone(&w.store))
        .with_clock(w.clock.clone())
        .with_retry_policies(policies)
        .saga(w.payments.clone());
}

#[tokio::test]
async fn stage_one_tries_a_failing_capture_again_after_its_class_waits_before_flagging() {
    let down = || Err(PaymentError::Transient("503".into()));
    let fast_two = RetryPolicy {
        max_attempts: 2,
        ..fast()
    };
    // Three fast tries fail (the first and its two retries), and the first stage-1 wait's try
    // too; the second gets through.
    let mut w = world(vec![down(), down(), down(), down()], fast()).await;
    with_policies(
        &mut w,
        RetryPolicies::fast_only(fast_two).with_waits(
            FailureClass::PaymentUnavailable,
            vec![Duration::from_secs(300), Duration::from_secs(1_800)],
        ),
    );
    let id = w.place().await;
    let started = w.clock.now();
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid, "{order:?}");
    assert!(order.needs_attention.is_none());
    assert!(
        w.clock.now().millis() - started.millis() >= 2_100_000,
        "the tries wait 5 and then 30 minutes"
    );
    assert_eq!(w.payments.charged.lock().unwrap().len(), 1);

    // Without the waits, the same failures flag the order.
    let w = world(vec![down(), down(), down()], fast_two).await;
    let id = w.place().await;
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Reserved);
    assert_eq!(order.needs_attention.unwrap().attempts, 3);
}

#[tokio::test]
async fn a_declined_card_is_tried_again_after_5_min_and_30_min_with_the_stock_held() {
    let declined = || Err(PaymentError::Declined("insufficient_funds".into()));
    let mut w = world(vec![declined(), declined()], fast()).await;
    with_policies(&mut w, RetryPolicies::default());
    let id = w.place().await;
    let started = w.clock.now();

    // The first decline: the order keeps its stock and waits five minutes.
    w.run_due().await; // reserves
    w.run_due().await; // fails to pay
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Reserved);
    assert_eq!(order.declines(), 1);
    assert_eq!(w.stock("001").await, (149, 1), "the stock stays reserved");
    let waiting = w.store.waiting_jobs(Some(id), 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        waiting[0].due.millis() - w.clock.now().millis(),
        300_000,
        "the next try is in five minutes"
    );
    assert_eq!(
        FailureClass::untag(waiting[0].job.last_error.as_deref().unwrap()).0,
        Some(FailureClass::PaymentDeclined)
    );

    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid, "{order:?}");
    assert_eq!(order.declines(), 2);
    assert!(w.clock.now().millis() - started.millis() >= 2_100_000);
    // Each try after a decline asked the provider afresh; one charge in all.
    let charged = w.payments.charged.lock().unwrap().clone();
    assert_eq!(charged.len(), 1);
    assert!(charged[0].ends_with(":capture:2"), "{charged:?}");
    let declines = order
        .history
        .iter()
        .filter(|h| h.event == EventKind::PaymentDeclined)
        .count();
    assert_eq!(declines, 2, "each decline is on the timeline");
}

#[tokio::test]
async fn a_card_declined_on_every_try_rejects_the_order_after_the_last_wait() {
    let declined = || Err(PaymentError::Declined("card_declined".into()));
    let mut w = world(vec![declined(); 4], fast()).await;
    with_policies(&mut w, RetryPolicies::default());
    let id = w.place().await;
    let started = w.clock.now();
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Rejected);
    assert_eq!(
        order.reason.as_deref(),
        Some("payment declined: card_declined")
    );
    assert_eq!(
        order.declines(),
        3,
        "three declines waited, the fourth was final"
    );
    assert!(order.needs_attention.is_none());
    assert_eq!(w.stock("001").await, (150, 0), "the stock is back on sale");
    assert!(
        w.clock.now().millis() - started.millis() >= (300 + 1_800 + 21_600) * 1_000,
        "5 min, 30 min and 6 h"
    );
}

#[tokio::test]
async fn short_stock_waits_for_a_restock_when_told_to() {
    let mut w = world(vec![], fast()).await;
    with_policies(
        &mut w,
        RetryPolicies::fast_only(fast())
            .with_waits(FailureClass::StockShort, vec![Duration::from_secs(1_800)]),
    );
    let mut request = reference();
    request.items[0].quantity = Quantity::new(151).unwrap();
    let id = match w.place_order(request, None).await.unwrap() {
        Placed::New(o) => o.id,
        Placed::Replay(_) => panic!("replay"),
    };
    w.run_due().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(
        order.status,
        OrderStatus::Placed,
        "waits instead of rejecting"
    );
    assert_eq!(
        w.stock("001").await,
        (150, 0),
        "nothing is reserved while it waits"
    );
    // Nobody restocks: the try after the wait rejects it.
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Rejected);
}

#[tokio::test]
async fn retry_now_runs_a_waiting_step_at_once_and_says_who_asked() {
    let down = || Err(PaymentError::Transient("503".into()));
    let mut w = world(vec![down()], fast()).await;
    with_policies(
        &mut w,
        RetryPolicies::fast_only(RetryPolicy {
            max_attempts: 0,
            ..fast()
        })
        .with_waits(
            FailureClass::PaymentUnavailable,
            vec![Duration::from_secs(21_600)],
        ),
    );
    let id = w.place().await;
    w.run_due().await; // reserves
    w.run_due().await; // fails to pay
    let permit = w
        .staff
        .permit::<orderly_core::access::Read>(&w.app, id)
        .await
        .unwrap();
    let waiting = w.app.support.waiting(&permit).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].class, Some(FailureClass::PaymentUnavailable));
    assert_eq!(waiting[0].when(w.clock.now()), "automatic retry in 6:00:00");

    // Retry now: due at once, without moving the clock six hours.
    w.retry(id).await.unwrap();
    w.run_due().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Paid);
    let permit = w
        .staff
        .permit::<orderly_core::access::ReadNotes>(&w.app, id)
        .await
        .unwrap();
    let notes = w.app.support.notes(&permit).await.unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.text.starts_with("Retry now: the payment step")),
        "{notes:?}"
    );
    // Nothing waits any more: a second click is told so.
    assert!(matches!(w.retry(id).await, Err(AppError::NotNow(_))));
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing() {
    let w = world(vec![], fast()).await;
    let id = w.place().await;
    let now = w.clock.now();
    let job = w.saga_job(now).await;
    w.saga.run(&job).await;
    w.saga.run(&job).await; // delivered again
    w.drain().await;
    assert_eq!(w.stock("001").await, (149, 1), "reserved once");
    let kinds: Vec<_> = w
        .store
        .order_events(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::OrderPlaced,
            EventKind::InventoryReserved,
            EventKind::PaymentCaptured
        ]
    );
}

#[tokio::test]
async fn canceling_a_paid_order_releases_stock_and_refunds_once() {
    let w = world(vec![], fast()).await;
    let id = w.place().await;
    w.drain().await;
    w.cancel(id, Some("changed mind".into())).await.unwrap();
    assert_eq!(w.stock("001").await, (150, 0));
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.payment.unwrap().refunds.len(), 1);
    assert_eq!(w.payments.refunded.lock().unwrap().len(), 1);
    // A second cancel is refused and refunds nothing more.
    assert!(w.cancel(id, None).await.is_err());
    w.drain().await;
    assert_eq!(w.payments.refunded.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_cancel_before_the_payment_step_means_no_charge_at_all() {
    let w = world(vec![], fast()).await;
    let id = w.place().await;
    // Run only the inventory step, then cancel before the payment step runs.
    let now = w.clock.now();
    let job = w.saga_job(now).await;
    w.saga.run(&job).await;
    w.cancel(id, None).await.unwrap();
    w.drain().await;
    assert!(w.payments.charged.lock().unwrap().is_empty());
    assert!(w.payments.refunded.lock().unwrap().is_empty());
    assert_eq!(w.stock("002").await, (200, 0));
}

#[tokio::test]
async fn an_idempotency_key_replays_and_refuses_another_body() {
    let w = world(vec![], fast()).await;
    let key = || Some(IdempotencyKey::parse("k-1").unwrap());
    let Placed::New(first) = w.place_order(reference(), key()).await.unwrap() else {
        panic!()
    };
    let Placed::Replay(again) = w.place_order(reference(), key()).await.unwrap() else {
        panic!()
    };
    assert_eq!(first.id, again.id);
    let mut other = reference();
    other.items.pop();
    assert_eq!(
        w.place_order(other, key()).await.unwrap_err(),
        orderly_core::AppError::IdempotencyKeyReused
    );
}

#[tokio::test]
async fn a_cancel_that_lands_while_the_provider_charges_is_recorded_and_refunded() {
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let payments = Arc::new(ScriptedPayments {
        gate: Some((started.clone(), release.clone())),
        ..ScriptedPayments::default()
    });
    let w = Arc::new(world_with(payments, fast()).await);
    let id = w.place().await;
    let now = w.clock.now();
    let reserve = w.saga_job(now).await;
    w.saga.run(&reserve).await;
    let capture = w.saga_job(now).await;
    let runner = {
        let w = Arc::clone(&w);
        tokio::spawn(async move { w.saga.run(&capture).await })
    };
    started.notified().await;
    w.cancel(id, Some("too slow".into())).await.unwrap();
    release.notify_one();
    runner.await.unwrap();
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.status, OrderStatus::Canceled);
    let payment = order.payment.expect("the charge is recorded");
    assert_eq!(payment.refunds.len(), 1, "and refunded");
    assert_eq!(w.payments.refunded.lock().unwrap().len(), 1);
    assert_eq!(w.stock("001").await, (150, 0));
}

#[tokio::test]
async fn a_charge_left_by_an_interrupted_run_is_voided_when_the_order_is_canceled() {
    let w = world(vec![], fast()).await;
    let id = w.place().await;
    let now = w.clock.now();
    let reserve = w.saga_job(now).await;
    w.saga.run(&reserve).await;
    // A run that charged and died before it could record the charge.
    let order = w.app.orders.order(id).await.unwrap();
    let request = PaymentRequest {
        idempotency_key: PaymentKey::new(id, PaymentStep::Capture),
        order_id: id,
        customer_id: order.customer_id.clone(),
        amount: order.total,
        payment_method: None,
    };
    w.payments.capture(&request, "auth").await.unwrap();
    w.cancel(id, None).await.unwrap();
    w.drain().await;
    assert!(
        w.payments.charged.lock().unwrap().is_empty(),
        "nothing stays charged"
    );
    assert_eq!(
        *w.payments.voided.lock().unwrap(),
        [format!("order:{id}:capture")]
    );
}

#[tokio::test]
async fn an_escalation_that_no_longer_reads_never_keeps_an_order_from_being_flagged() {
    let down = || Err(PaymentError::Transient("503".into()));
    let w = world(
        vec![down(), down(), down()],
        RetryPolicy {
            max_attempts: 2,
            ..fast()
        },
    )
    .await;
    let id = w.place().await;
    // An earlier entry for the order, in a shape that no longer reads.
    w.store
        .put_document(
            &orderly_core::ports::Document {
                kind: orderly_core::ports::DocKind::Escalation,
                key: id.to_string(),
                version: 1,
                body: "[\"an old shape\"]".into(),
            },
            None,
        )
        .await
        .unwrap();
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.needs_attention.unwrap().attempts, 3);
    let queue = w.app.support.escalations(true).await.unwrap();
    assert_eq!(queue.len(), 1, "the entry is written over");
    assert_eq!(queue[0].order_id, id);
    // And staff can retry it.
    w.retry(id).await.unwrap();
    w.drain().await;
    assert_eq!(
        w.app.orders.order(id).await.unwrap().status,
        OrderStatus::Paid
    );
}

#[tokio::test]
async fn staff_refund_part_then_a_cancel_refunds_the_rest_each_under_its_own_key() {
    let w = world(vec![], fast()).await;
    let id = w.place().await;
    w.drain().await;
    let usd = |s: &str| orderly_domain::Money::parse(s, orderly_domain::Currency::USD).unwrap();
    let permit = w.staff.permit::<Refund>(&w.app, id).await.unwrap();
    let asked = w
        .app
        .orders
        .refund(permit, usd("42.10"), "one item arrived broken")
        .await
        .unwrap();
    assert_eq!(
        asked.payment.as_ref().unwrap().refund_pending,
        Some(usd("42.10"))
    );
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    let payment = order.payment.clone().unwrap();
    assert_eq!(payment.refunds.len(), 1);
    assert_eq!(payment.refunds[0].amount, usd("42.10"));
    assert_eq!(payment.refund_pending, None);
    assert_eq!(order.status, OrderStatus::Paid);

    w.cancel(id, Some("customer asked".into())).await.unwrap();
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    let payment = order.payment.clone().unwrap();
    let amounts: Vec<String> = payment
        .refunds
        .iter()
        .map(|r| r.amount.to_string())
        .collect();
    assert_eq!(amounts, ["42.10 USD", "237.88 USD"]);
    assert_eq!(
        payment.refunded(),
        payment.amount,
        "refunds add up to what was captured, exactly"
    );
    assert_eq!(
        *w.payments.refunded.lock().unwrap(),
        [format!("order:{id}:refund"), format!("order:{id}:refund:1")]
    );
    // Nothing is left: another refund is refused, and nothing more goes out.
    let permit = w.staff.permit::<Refund>(&w.app, id).await.unwrap();
    assert!(matches!(
        w.app.orders.refund(permit, usd("0.01"), "again").await,
        Err(AppError::NotNow(_))
    ));
}

#[tokio::test]
async fn support_refunds_within_the_limit_and_cancels_only_what_is_unpaid() {
    let w = world(vec![], fast()).await;
    let usd = |s: &str| orderly_domain::Money::parse(s, orderly_domain::Currency::USD).unwrap();
    // Unpaid: support may cancel.
    let unpaid = w.place().await;
    let permit = w.support.permit::<Cancel>(&w.app, unpaid).await.unwrap();
    w.app
        .orders
        .cancel(permit, Some("customer asked".into()))
        .await
        .unwrap();

    let id = w.place().await;
    w.drain().await;
    let permit = w.support.permit::<Cancel>(&w.app, id).await.unwrap();
    let refused = w
        .app
        .orders
        .cancel(permit, Some("customer asked".into()))
        .await;
    assert!(
        matches!(&refused, Err(AppError::Forbidden(m)) if m.contains("orders:cancel-paid")),
        "{refused:?}"
    );
    // The default limit: 100.00 USD per order in all, however it is split.
    let refund = |amount: &str, why: &str| {
        let (amount, why) = (usd(amount), why.to_owned());
        let (support, app) = (&w.support, &w.app);
        async move {
            let permit = support.permit::<Refund>(app, id).await.unwrap();
            app.orders.refund(permit, amount, &why).await
        }
    };
    refund("60.00", "late parcel").await.unwrap();
    let over = refund("40.01", "and a scratch").await;
    assert!(
        matches!(&over, Err(AppError::Forbidden(m)) if m.contains("100.00 USD") && m.contains("100.01 USD")),
        "{over:?}"
    );
    refund("40.00", "and a scratch").await.unwrap();
    assert!(matches!(
        refund("0.01", "more").await,
        Err(AppError::Forbidden(_))
    ));
    // A reason is required; nothing changed by the refusals.
    assert!(matches!(
        refund("1.00", " ").await,
        Err(AppError::Invalid(_))
    ));
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.payment.unwrap().refunded(), usd("100.00"));
    // A manager is not limited.
    let permit = w.staff.permit::<Refund>(&w.app, id).await.unwrap();
    w.app
        .orders
        .refund(permit, usd("179.98"), "all of it")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refund_tried_again_after_a_timeout_asks_for_the_same_amount_under_the_same_key() {
    let w = world(vec![], fast()).await;
    let id = w.place().await;
    w.drain().await;
    let usd = |s: &str| orderly_domain::Money::parse(s, orderly_domain::Currency::USD).unwrap();
    let refund = |amount: &str| {
        let (amount, staff, app) = (usd(amount), &w.staff, &w.app);
        async move {
            let permit = staff.permit::<Refund>(app, id).await.unwrap();
            app.orders.refund(permit, amount, "goodwill").await.unwrap();
        }
    };
    // The provider makes the first refund, but its answer is lost.
    *w.payments.refund_timeouts.lock().unwrap() = 1;
    refund("10.00").await;
    w.run_due().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(
        order.payment.as_ref().unwrap().refund_in_flight,
        Some(usd("10.00"))
    );
    // More is asked for before the retry: the retry still asks for 10.00 under its key.
    refund("20.00").await;
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    let payment = order.payment.unwrap();
    let amounts: Vec<i64> = payment.refunds.iter().map(|r| r.amount.minor()).collect();
    assert_eq!(amounts, [1_000, 2_000]);
    assert_eq!(payment.refund_pending, None);
    assert_eq!(payment.refund_in_flight, None);
    let book = w.payments.refund_book.lock().unwrap().clone();
    assert_eq!(book.get(&format!("order:{id}:refund")), Some(&1_000));
    assert_eq!(book.get(&format!("order:{id}:refund:1")), Some(&2_000));
    assert_eq!(book.len(), 2, "{book:?}");
}

#[tokio::test]
async fn a_refund_that_gave_up_is_made_when_staff_retry_it() {
    let w = world(vec![], fast()).await;
    let id = w.place().await;
    w.drain().await;
    *w.payments.refund_timeouts.lock().unwrap() = 100;
    let usd = |s: &str| orderly_domain::Money::parse(s, orderly_domain::Currency::USD).unwrap();
    let permit = w.staff.permit::<Refund>(&w.app, id).await.unwrap();
    w.app
        .orders
        .refund(permit, usd("42.10"), "broken mug")
        .await
        .unwrap();
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    assert_eq!(order.needs_attention.as_ref().unwrap().step, "payment");
    assert!(order.payment.as_ref().unwrap().refunds.is_empty());
    // The provider is back: staff retry, and the refund — not a capture — is made, once.
    *w.payments.refund_timeouts.lock().unwrap() = 0;
    w.retry(id).await.unwrap();
    w.drain().await;
    let order = w.app.orders.order(id).await.unwrap();
    let payment = order.payment.unwrap();
    assert_eq!(payment.refunds.len(), 1);
    assert_eq!(payment.refunds[0].amount, usd("42.10"));
    assert_eq!(payment.refund_pending, None);
    assert!(order.needs_attention.is_none());
    assert_eq!(w.payments.charged.lock().unwrap().len(), 1, "charged once");
}
