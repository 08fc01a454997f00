//! The order saga: the consumers that carry an order from placed to paid (or rejected), the
//! compensation on cancel, and the dispatcher that runs queued jobs with retries.
//!
//! ```text
//! OrderPlaced       ──inventory──▶ InventoryReserved | InventoryRejected
//! InventoryReserved ──payment────▶ PaymentCaptured   | PaymentFailed (stock released)
//! OrderCanceled     ──payment────▶ RefundIssued (if a payment was captured)
//! ```
//!
//! Each consumer commits its effect together with the mark that it handled the event, so a
//! redelivered event changes nothing. A transient failure (storage, payment provider) is retried
//! with the [`RetryPolicy`]'s backoff; when retries run out the order is flagged as needing
//! attention and the job is done. Calls to the payment provider carry an idempotency key made of
//! the order id and the step, so a step re-run after a crash never charges twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use orderly_domain::{
    Actor, Attention, EventKind, Order, OrderStatus, Payment, Refund, Stamp, Transition,
};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::app::{outgoing, stock_moves};
use crate::ports::{
    Clock, Commit, CommitError, Consumer, Handled, IdGenerator, Job, OrderWrite, PaymentError,
    PaymentGateway, PaymentRequest, Store, StoreError,
};
use crate::retry::RetryPolicy;

/// Which consumers handle which events.
#[must_use]
pub fn consumers_of(kind: EventKind) -> &'static [Consumer] {
    match kind {
        EventKind::OrderPlaced => &[Consumer::Inventory],
        EventKind::InventoryReserved | EventKind::OrderCanceled => &[Consumer::Payment],
        _ => &[],
    }
}

/// Why a step did not finish.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth retrying later.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help; the order needs a person now.
    #[error("{0}")]
    Permanent(String),
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => StepError::Transient(m),
            other => StepError::Permanent(other.to_string()),
        }
    }
}

/// The saga's consumers.
pub struct Saga {
    store: Arc<dyn Store>,
    payments: Arc<dyn PaymentGateway>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    retry: RetryPolicy,
}

/// How many times a step re-reads the order after a concurrent change before it retries later.
const CONFLICT_RETRIES: usize = 8;

impl Saga {
    /// Wires the consumers.
    pub fn new(
        store: Arc<dyn Store>,
        payments: Arc<dyn PaymentGateway>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        retry: RetryPolicy,
    ) -> Self {
        Saga {
            store,
            payments,
            clock,
            ids,
            retry,
        }
    }

    fn stamp(&self, step: Consumer) -> Stamp {
        Stamp {
            event_id: self.ids.event_id(),
            at: self.clock.now(),
            actor: Actor::system(step.as_str()),
        }
    }

    /// Runs one job to its end: done, rescheduled, or flagged for attention.
    #[tracing::instrument(skip_all, fields(order_id = %job.event.order_id, consumer = job.consumer.as_str(), event = %job.event.kind, attempt = job.attempts + 1))]
    pub async fn run(&self, job: &Job) {
        let result = self.handle(job).await;
        let outcome = match result {
            Ok(()) => return,
            Err(StepError::Transient(error)) => {
                let attempts = job.attempts + 1;
                if attempts <= self.retry.max_attempts {
                    let delay = self.retry.delay(attempts);
                    let next_at = self
                        .clock
                        .now()
                        .plus_millis(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                    tracing::warn!(%error, retry_in_ms = delay.as_millis(), "step failed; will retry");
                    self.store
                        .retry_job(job.id, attempts, next_at, &error)
                        .await
                } else {
                    tracing::error!(%error, attempts, "step out of retries; order needs attention");
                    self.give_up(job, attempts, error).await
                }
            }
            Err(StepError::Permanent(error)) => {
                tracing::error!(%error, "step failed permanently; order needs attention");
                self.give_up(job, job.attempts + 1, error).await
            }
        };
        if let Err(e) = outcome {
            // The job keeps its lease and runs again when it expires.
            tracing::error!(error = %e, "could not record the step's failure");
        }
    }

    async fn give_up(&self, job: &Job, attempts: u32, error: String) -> Result<(), StoreError> {
        for _ in 0..CONFLICT_RETRIES {
            let Some(mut order) = self.store.order(job.event.order_id).await? else {
                return self.store.delete_job(job.id).await;
            };
            let expected_version = order.version;
            let stamp = self.stamp(job.consumer);
            let attention = Attention {
                step: job.consumer.as_str().to_owned(),
                error: error.clone(),
                attempts,
                since: stamp.at,
            };
            let event = order.flag_attention(attention, &stamp);
            let commit = Commit {
                order: Some(OrderWrite::Update {
                    order,
                    expected_version,
                }),
                events: vec![outgoing(event)],
                handled: Some(handled(job)),
                ..Commit::default()
            };
            match self.store.commit(commit).await {
                Ok(()) => return Ok(()),
                Err(CommitError::AlreadyHandled) => return self.store.delete_job(job.id).await,
                Err(CommitError::VersionConflict(_)) => {}
                Err(CommitError::Store(e)) => return Err(e),
                Err(other) => return Err(StoreError::Corrupt(other.to_string())),
            }
        }
        Err(StoreError::Unavailable(
            "order kept changing while flagging it".into(),
        ))
    }

    async fn handle(&self, job: &Job) -> Result<(), StepError> {
        for _ in 0..CONFLICT_RETRIES {
            let Some(order) = self.store.order(job.event.order_id).await? else {
                return Err(StepError::Permanent(format!(
                    "order {} does not exist",
                    job.event.order_id
                )));
            };
            let commit = match (job.consumer, job.event.kind) {
                (Consumer::Inventory, EventKind::OrderPlaced) => self.reserve(job, order).await?,
                (Consumer::Payment, EventKind::InventoryReserved) => {
                    self.capture(job, order).await?
                }
                (Consumer::Payment, EventKind::OrderCanceled) => self.refund(job, order).await?,
                (consumer, kind) => {
                    tracing::warn!(consumer = consumer.as_str(), %kind, "no handler; dropping");
                    Commit::default()
                }
            };
            let commit = Commit {
                handled: Some(handled(job)),
                ..commit
            };
            match self.commit_step(commit).await {
                Ok(()) => return Ok(()),
                Err(CommitError::AlreadyHandled) => {
                    self.store.delete_job(job.id).await?;
                    return Ok(());
                }
                Err(CommitError::VersionConflict(_)) => continue,
                Err(CommitError::InsufficientStock(product))
                    if job.consumer == Consumer::Inventory =>
                {
                    let order = self
                        .store
                        .order(job.event.order_id)
                        .await?
                        .ok_or_else(|| StepError::Permanent("order vanished".into()))?;
                    let commit = self.reject_out_of_stock(job, order, &product.to_string())?;
                    match self.commit_step(commit).await {
                        Ok(()) => return Ok(()),
                        Err(CommitError::AlreadyHandled) => {
                            self.store.delete_job(job.id).await?;
                            return Ok(());
                        }
                        Err(CommitError::VersionConflict(_)) => continue,
                        Err(e) => return Err(commit_failure(e)),
                    }
                }
                Err(e) => return Err(commit_failure(e)),
            }
        }
        Err(StepError::Transient(
            "order kept changing; will try again".into(),
        ))
    }

    async fn commit_step(&self, commit: Commit) -> Result<(), CommitError> {
        self.store.commit(commit).await
    }

    /// OrderPlaced → reserve every line's stock at once, or none.
    async fn reserve(&self, job: &Job, mut order: Order) -> Result<Commit, StepError> {
        if order.status != OrderStatus::Placed {
            tracing::info!(status = %order.status, "order no longer placed; nothing to reserve");
            return Ok(Commit::default());
        }
        let expected_version = order.version;
        let stamp = self.stamp(job.consumer);
        let event = order
            .apply(Transition::Reserve, &stamp, None)
            .map_err(|e| StepError::Permanent(e.to_string()))?;
        let stock = stock_moves(
            &order,
            Transition::Reserve.stock_effect(OrderStatus::Placed),
        );
        Ok(Commit {
            order: Some(OrderWrite::Update {
                order,
                expected_version,
            }),
            stock,
            events: vec![outgoing(event)],
            ..Commit::default()
        })
    }

    fn reject_out_of_stock(
        &self,
        job: &Job,
        mut order: Order,
        product: &str,
    ) -> Result<Commit, StepError> {
        if order.status != OrderStatus::Placed {
            return Ok(Commit {
                handled: Some(handled(job)),
                ..Commit::default()
            });
        }
        let asked: u32 = order
            .lines
            .iter()
            .filter(|l| l.product_id.as_str() == product)
            .map(|l| l.quantity.get())
            .sum();
        let expected_version = order.version;
        let stamp = self.stamp(job.consumer);
        let reason = format!("not enough stock of product {product} ({asked} asked)");
        let event = order
            .apply(Transition::RejectOutOfStock, &stamp, Some(reason))
            .map_err(|e| StepError::Permanent(e.to_string()))?;
        Ok(Commit {
            order: Some(OrderWrite::Update {
                order,
                expected_version,
            }),
            events: vec![outgoing(event)],
            handled: Some(handled(job)),
            ..Commit::default()
        })
    }

    /// InventoryReserved → capture the total; a decline rejects the order and releases stock.
    async fn capture(&self, job: &Job, mut order: Order) -> Result<Commit, StepError> {
        if order.payment.is_some()
            || !matches!(order.status, OrderStatus::Reserved | OrderStatus::Canceled)
        {
            return Ok(Commit::default());
        }
        if order.status == OrderStatus::Canceled {
            // Canceled before we charged: do not charge at all.
            return Ok(Commit::default());
        }
        let request = PaymentRequest {
            idempotency_key: format!("order:{}:capture", order.id),
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            amount: order.total,
        };
        let expected_version = order.version;
        match self.payments.capture(&request).await {
            Ok(provider_ref) => {
                let stamp = self.stamp(job.consumer);
                // Re-read: a cancel may have landed while the provider was charging.
                let fresh = self
                    .store
                    .order(order.id)
                    .await?
                    .ok_or_else(|| StepError::Permanent("order vanished".into()))?;
                let payment = Payment {
                    provider_ref,
                    amount: order.total,
                    captured_at: stamp.at,
                    refund: None,
                };
                if fresh.status != OrderStatus::Reserved {
                    let mut fresh = fresh;
                    let expected_version = fresh.version;
                    let event = fresh.record_late_payment(payment, &stamp);
                    return Ok(Commit {
                        order: Some(OrderWrite::Update {
                            order: fresh,
                            expected_version,
                        }),
                        events: vec![outgoing(event)],
                        ..Commit::default()
                    });
                }
                let event = order
                    .capture(payment, &stamp)
                    .map_err(|e| StepError::Permanent(e.to_string()))?;
                Ok(Commit {
                    order: Some(OrderWrite::Update {
                        order,
                        expected_version,
                    }),
                    events: vec![outgoing(event)],
                    ..Commit::default()
                })
            }
            Err(PaymentError::Declined(reason)) => {
                let stamp = self.stamp(job.consumer);
                let event = order
                    .apply(
                        Transition::DeclinePayment,
                        &stamp,
                        Some(format!("payment declined: {reason}")),
                    )
                    .map_err(|e| StepError::Permanent(e.to_string()))?;
                let stock = stock_moves(
                    &order,
                    Transition::DeclinePayment.stock_effect(OrderStatus::Reserved),
                );
                Ok(Commit {
                    order: Some(OrderWrite::Update {
                        order,
                        expected_version,
                    }),
                    stock,
                    events: vec![outgoing(event)],
                    ..Commit::default()
                })
            }
            Err(PaymentError::Transient(e)) => {
                Err(StepError::Transient(format!("payment provider: {e}")))
            }
        }
    }

    /// OrderCanceled → refund a captured payment in full.
    async fn refund(&self, job: &Job, mut order: Order) -> Result<Commit, StepError> {
        let Some(payment) = order.payment.clone().filter(|p| p.refund.is_none()) else {
            return Ok(Commit::default());
        };
        let request = PaymentRequest {
            idempotency_key: format!("order:{}:refund", order.id),
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            amount: payment.amount,
        };
        let provider_ref = self
            .payments
            .refund(&request, &payment.provider_ref)
            .await
            .map_err(|e| match e {
                PaymentError::Transient(m) => {
                    StepError::Transient(format!("payment provider: {m}"))
                }
                PaymentError::Declined(m) => StepError::Permanent(format!("refund refused: {m}")),
            })?;
        let expected_version = order.version;
        let stamp = self.stamp(job.consumer);
        let refund = Refund {
            provider_ref,
            amount: payment.amount,
            at: stamp.at,
        };
        let event = order.record_refund(refund, &stamp);
        Ok(Commit {
            order: Some(OrderWrite::Update {
                order,
                expected_version,
            }),
            events: vec![outgoing(event)],
            ..Commit::default()
        })
    }
}

fn handled(job: &Job) -> Handled {
    Handled {
        job_id: job.id,
        consumer: job.consumer,
        event_id: job.event.id,
    }
}

fn commit_failure(e: CommitError) -> StepError {
    match e {
        CommitError::Store(s) => s.into(),
        other => StepError::Permanent(other.to_string()),
    }
}

/// Tuning of the dispatcher loop.
#[derive(Clone, Copy, Debug)]
pub struct DispatcherSettings {
    /// Jobs claimed per round (each from a different order).
    pub batch: u32,
    /// How long a claimed job is ours before another worker may take it.
    pub lease: Duration,
    /// Longest sleep between looks at the queue when nothing signals new work.
    pub idle_poll: Duration,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        DispatcherSettings {
            batch: 64,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// Claims due jobs and runs them, one order's jobs strictly in order, different orders at once.
pub struct Dispatcher {
    saga: Arc<Saga>,
    settings: DispatcherSettings,
    work: Arc<Notify>,
}

impl Dispatcher {
    /// A dispatcher woken by `work` (signalled when a commit queues jobs).
    pub fn new(saga: Arc<Saga>, settings: DispatcherSettings, work: Arc<Notify>) -> Self {
        Dispatcher {
            saga,
            settings,
            work,
        }
    }

    /// Runs until `shutdown` turns true; the jobs in flight then finish before it returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let lease_ms = i64::try_from(self.settings.lease.as_millis()).unwrap_or(60_000);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let now = self.saga.clock.now();
            let jobs = match self
                .saga
                .store
                .claim_jobs(now, self.settings.batch, lease_ms)
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim jobs; backing off");
                    tokio::select! {
                        () = tokio::time::sleep(self.settings.idle_poll) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            if jobs.is_empty() {
                let wait = match self.saga.store.next_due().await {
                    Ok(Some(due)) => {
                        let ms = due
                            .millis()
                            .saturating_sub(self.saga.clock.now().millis())
                            .max(1);
                        Duration::from_millis(u64::try_from(ms).unwrap_or(1))
                            .min(self.settings.idle_poll)
                    }
                    _ => self.settings.idle_poll,
                };
                tokio::select! {
                    () = self.work.notified() => {}
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            debug_assert_eq!(
                jobs.iter()
                    .map(|j| j.event.order_id)
                    .collect::<HashSet<_>>()
                    .len(),
                jobs.len(),
                "at most one job per order per round"
            );
            let mut running = JoinSet::new();
            for job in jobs {
                let saga = Arc::clone(&self.saga);
                running.spawn(async move { saga.run(&job).await });
            }
            while let Some(done) = running.join_next().await {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a saga step panicked");
                }
            }
        }
        tracing::info!("dispatcher stopped");
    }
}
