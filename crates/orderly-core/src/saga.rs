//! The order saga: the consumers that carry an order from placed to paid (or rejected), the
//! compensation on cancel, and the dispatcher that runs queued jobs with retries.
//!
//! ```text
//! OrderPlaced       ──inventory──▶ InventoryReserved | InventoryRejected
//! InventoryReserved ──payment────▶ PaymentCaptured   | PaymentFailed (stock released)
//! OrderCanceled     ──payment────▶ RefundIssued (if a payment was captured)
//! ```
//!
//! Events that tell somebody something also get a [`Consumer::Notify`] job, which runs in its
//! own lane (see [`crate::ports::Lane`]) and is handed to [`crate::notify::Notifications`].
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
    Actor, Attention, EventKind, Order, OrderStatus, Payment, Refund, Stamp, StockEffect,
    Timestamp, Transition,
};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

pub use crate::commits::consumers_of;
use crate::commits::{CONFLICT_RETRIES, order_change, stock_moves};
use crate::notify::Notifications;
use crate::ports::{
    Clock, Commit, CommitError, Consumer, Handled, IdGenerator, Job, PaymentError, PaymentGateway,
    PaymentKey, PaymentRequest, PaymentStep, Store, StoreError,
};
use crate::retry::RetryPolicy;

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
    /// Longest wait for the payment provider; a silent provider is a transient failure.
    payment_timeout: Duration,
    /// Stage-1 recovery: when a capture still fails transiently after the fast retries, one
    /// more try this much later before the order needs attention (`None`: no such try).
    payment_recovery: Option<Duration>,
    /// Runs [`Consumer::Notify`] jobs; `None`: they are marked handled and nothing is sent.
    notifications: Option<Arc<Notifications>>,
    /// How long a claimed job stays ours: a failure that cannot be recorded (the database is
    /// down) is tried again for half of it, so the step runs again soon after the database
    /// returns instead of when the lease runs out.
    lease: Duration,
}

/// First wait before recording a step's outcome again; doubled each time up to
/// [`RECORD_BACKOFF_MAX`].
const RECORD_BACKOFF_MIN: Duration = Duration::from_millis(100);

/// Longest wait between tries to record a step's outcome.
const RECORD_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What a failed step leaves to record.
enum Outcome {
    /// Due again at `next_at`.
    Retry {
        attempts: u32,
        next_at: Timestamp,
        error: String,
    },
    /// Out of tries, or failed for good: the order needs attention.
    GiveUp { attempts: u32, error: String },
}

/// Default wait before the stage-1 recovery try of a capture.
pub const PAYMENT_RECOVERY_DELAY: Duration = Duration::from_secs(300);

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
            payment_timeout: Duration::from_secs(30),
            payment_recovery: Some(PAYMENT_RECOVERY_DELAY),
            notifications: None,
            lease: Duration::from_secs(60),
        }
    }

    /// The job lease of the queue this saga's jobs come from (default 60 s).
    #[must_use]
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sends notifications for the events that produce them (without, notify jobs are dropped).
    #[must_use]
    pub fn with_notifications(mut self, notifications: Arc<Notifications>) -> Self {
        self.notifications = Some(notifications);
        self
    }

    /// Changes the stage-1 recovery delay of captures (default 5 minutes; `None` turns it off).
    #[must_use]
    pub fn with_payment_recovery(mut self, delay: Option<Duration>) -> Self {
        self.payment_recovery = delay;
        self
    }

    /// The wait before the next try of a job that failed transiently for the `attempts`-th
    /// time, or `None` when it has had all its tries.
    fn next_try(&self, job: &Job, attempts: u32) -> Option<Duration> {
        if attempts <= self.retry.max_attempts {
            return Some(self.retry.delay(attempts));
        }
        let is_capture =
            job.consumer == Consumer::Payment && job.event.kind == EventKind::InventoryReserved;
        if is_capture && attempts == self.retry.max_attempts + 1 {
            return self.payment_recovery;
        }
        None
    }

    /// Changes how long a payment call may take (default 30 s); keep it below the job lease.
    #[must_use]
    pub fn with_payment_timeout(mut self, timeout: Duration) -> Self {
        self.payment_timeout = timeout;
        self
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
        let started = tokio::time::Instant::now();
        let outcome = match self.handle(job).await {
            Ok(()) => return,
            Err(StepError::Transient(error)) => {
                let attempts = job.attempts + 1;
                if let Some(delay) = self.next_try(job, attempts) {
                    let next_at = self
                        .clock
                        .now()
                        .plus_millis(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                    tracing::warn!(%error, retry_in_ms = delay.as_millis(), "step failed; will retry");
                    Outcome::Retry {
                        attempts,
                        next_at,
                        error,
                    }
                } else {
                    tracing::error!(%error, attempts, "step out of retries; giving up");
                    Outcome::GiveUp { attempts, error }
                }
            }
            Err(StepError::Permanent(error)) => {
                tracing::error!(%error, "step failed permanently; giving up");
                Outcome::GiveUp {
                    attempts: job.attempts + 1,
                    error,
                }
            }
        };
        // The failure is often the database itself: keep trying to record it while the lease
        // is surely ours. Recording twice is harmless (the retry is an update by id; giving up
        // is refused as already handled the second time).
        let window = started + self.lease / 2;
        let mut backoff = RECORD_BACKOFF_MIN;
        loop {
            let recorded = match &outcome {
                Outcome::Retry {
                    attempts,
                    next_at,
                    error,
                } => self.store.retry_job(job, *attempts, *next_at, error).await,
                Outcome::GiveUp { attempts, error } => {
                    self.give_up(job, *attempts, error.clone()).await
                }
            };
            let Err(e) = recorded else { return };
            if tokio::time::Instant::now() + backoff >= window {
                // The job keeps its lease and runs again when it expires.
                tracing::error!(error = %e, "could not record the step's failure; it runs again when its lease runs out");
                return;
            }
            tracing::warn!(error = %e, retry_in_ms = backoff.as_millis(), "could not record the step's failure; trying again");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECORD_BACKOFF_MAX);
        }
    }

    /// Flags the job's order as needing attention after `attempts` tries ending in `error`, and
    /// marks the job done; a notify job instead records its unsent messages as failed and
    /// leaves the order alone. For runtimes whose queue does the retrying (SQS), too.
    ///
    /// # Errors
    /// A storage failure; the job then stays to be retried.
    pub async fn give_up(&self, job: &Job, attempts: u32, error: String) -> Result<(), StoreError> {
        if job.consumer == Consumer::Notify {
            return match &self.notifications {
                Some(n) => n.give_up(job, attempts, error).await,
                None => self.store.delete_job(job).await,
            };
        }
        for _ in 0..CONFLICT_RETRIES {
            let Some(mut order) = self.store.order(job.event.order_id).await? else {
                return self.store.delete_job(job).await;
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
            // The staff's queue entry commits with the flag: no flagged order is missing from
            // it, and no entry names an order that was not flagged.
            let escalation = crate::support::escalation_write(&self.store, &order).await?;
            let commit = Commit {
                handled: Some(handled(job)),
                documents: escalation.into_iter().collect(),
                ..order_change(order, expected_version, event, Vec::new())
            };
            match self.store.commit(commit).await {
                Ok(()) => return Ok(()),
                Err(CommitError::AlreadyHandled) => return self.store.delete_job(job).await,
                Err(CommitError::VersionConflict(_) | CommitError::DocumentChanged(..)) => {}
                Err(CommitError::Store(e)) => return Err(e),
                Err(other) => return Err(StoreError::Corrupt(other.to_string())),
            }
        }
        Err(StoreError::Unavailable(
            "order kept changing while flagging it".into(),
        ))
    }

    /// Runs one job once and says how it went, leaving retries to the caller: for runtimes
    /// whose queue does the retrying (SQS). [`Saga::run`] is this plus the retry bookkeeping.
    ///
    /// # Errors
    /// [`StepError::Transient`] (try again later) or [`StepError::Permanent`].
    pub async fn attempt(&self, job: &Job) -> Result<(), StepError> {
        self.handle(job).await
    }

    /// The retry policy.
    #[must_use]
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    async fn handle(&self, job: &Job) -> Result<(), StepError> {
        if job.consumer == Consumer::Notify
            && let Some(notifications) = &self.notifications
        {
            return notifications.deliver(job).await;
        }
        match (job.consumer, job.event.kind) {
            (Consumer::Inventory, EventKind::OrderPlaced) => self.reserve(job).await,
            (Consumer::Payment, EventKind::InventoryReserved) => self.capture(job).await,
            (Consumer::Payment, EventKind::OrderCanceled) => self.refund(job).await,
            // A retry staff asked for: the step does what the order's state still needs.
            (Consumer::Inventory, EventKind::RetryRequested) => self.reserve(job).await,
            (Consumer::Payment, EventKind::RetryRequested) => {
                if self.load(job).await?.status == OrderStatus::Canceled {
                    self.refund(job).await
                } else {
                    self.capture(job).await
                }
            }
            (consumer, kind) => {
                tracing::warn!(consumer = consumer.as_str(), %kind, "no handler; marking handled");
                self.settle(job, |_, _| Ok(Commit::default()))
                    .await
                    .map_err(StepError::from)
            }
        }
    }

    async fn load(&self, job: &Job) -> Result<Order, StepError> {
        self.store.order(job.event.order_id).await?.ok_or_else(|| {
            StepError::Permanent(format!("order {} does not exist", job.event.order_id))
        })
    }

    /// Reads the order, lets `decide` say what changes, and commits that together with the
    /// handled-mark; on a concurrent change of the order, reads and decides again. External
    /// calls happen before, never inside, so a conflict never repeats or forgets one.
    async fn settle<F>(&self, job: &Job, mut decide: F) -> Result<(), Settle>
    where
        F: FnMut(Order, &Stamp) -> Result<Commit, StepError>,
    {
        for _ in 0..CONFLICT_RETRIES {
            let order = self.load(job).await?;
            let stamp = self.stamp(job.consumer);
            let commit = Commit {
                handled: Some(handled(job)),
                ..decide(order, &stamp)?
            };
            match self.store.commit(commit).await {
                Ok(()) => return Ok(()),
                Err(CommitError::AlreadyHandled) => {
                    return Ok(self.store.delete_job(job).await.map_err(StepError::from)?);
                }
                Err(CommitError::VersionConflict(_)) => {}
                Err(e) => return Err(Settle::Commit(e)),
            }
        }
        Err(StepError::Transient("order kept changing; will try again".into()).into())
    }

    /// OrderPlaced → reserve every line's stock at once; if any line is short, reject the order
    /// and reserve nothing.
    async fn reserve(&self, job: &Job) -> Result<(), StepError> {
        let reserved = self
            .settle(job, |mut order, stamp| {
                if order.status != OrderStatus::Placed {
                    tracing::info!(status = %order.status, "order no longer placed; nothing to reserve");
                    return Ok(Commit::default());
                }
                let expected_version = order.version;
                let event = order.apply(Transition::Reserve, stamp, None).map_err(permanent)?;
                let stock = stock_moves(&order, StockEffect::Reserve);
                Ok(order_change(order, expected_version, event, stock))
            })
            .await;
        let Err(Settle::Commit(CommitError::InsufficientStock(product))) = reserved else {
            return reserved.map_err(StepError::from);
        };
        self.settle(job, |mut order, stamp| {
            if order.status != OrderStatus::Placed {
                return Ok(Commit::default());
            }
            let asked: u32 = order
                .lines
                .iter()
                .filter(|l| l.product_id == product)
                .map(|l| l.quantity.get())
                .sum();
            let expected_version = order.version;
            let reason = format!("not enough stock of product {product} ({asked} asked)");
            let event = order
                .apply(Transition::RejectOutOfStock, stamp, Some(reason))
                .map_err(permanent)?;
            Ok(order_change(order, expected_version, event, Vec::new()))
        })
        .await
        .map_err(StepError::from)
    }

    async fn call_provider<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, PaymentError>>,
    ) -> Result<T, PaymentError> {
        tokio::time::timeout(self.payment_timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(PaymentError::Transient(format!(
                    "no answer within {} ms",
                    self.payment_timeout.as_millis()
                )))
            })
    }

    /// Authorizes and captures the total for one order. Both calls carry the step's keys, so a
    /// re-run after a crash gets the first answers back instead of charging again.
    async fn charge(&self, request: &PaymentRequest) -> Result<(String, String), PaymentError> {
        let authorize = PaymentRequest {
            idempotency_key: request.idempotency_key.for_step(PaymentStep::Authorize),
            ..request.clone()
        };
        let authorization = self
            .call_provider(self.payments.authorize(&authorize))
            .await?;
        let capture = self
            .call_provider(self.payments.capture(request, &authorization))
            .await?;
        Ok((authorization, capture))
    }

    /// InventoryReserved → authorize and capture the total; a decline rejects the order and
    /// releases stock. If the order was canceled before the charge was recorded, whatever an
    /// earlier, interrupted run may have authorized or charged is voided.
    async fn capture(&self, job: &Job) -> Result<(), StepError> {
        let order = self.load(job).await?;
        let request = PaymentRequest {
            idempotency_key: PaymentKey::new(order.id, PaymentStep::Capture),
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            amount: order.total,
            payment_method: order.payment_method.clone(),
        };
        if order.payment.is_some() || order.status != OrderStatus::Reserved {
            if order.status == OrderStatus::Canceled && order.payment.is_none() {
                self.call_provider(self.payments.void(&request))
                    .await
                    .map_err(provider_failure)?;
            }
            return self
                .settle(job, |_, _| Ok(Commit::default()))
                .await
                .map_err(StepError::from);
        }
        match self.charge(&request).await {
            Ok((authorization, provider_ref)) => self
                .settle(job, |mut order, stamp| {
                    if order.payment.is_some() {
                        return Ok(Commit::default());
                    }
                    let payment = Payment {
                        provider_ref: provider_ref.clone(),
                        authorization: Some(authorization.clone()),
                        amount: request.amount,
                        captured_at: stamp.at,
                        refunds: Vec::new(),
                    };
                    let expected_version = order.version;
                    let event = if order.status == OrderStatus::Reserved {
                        order.capture(payment, stamp).map_err(permanent)?
                    } else {
                        // Canceled while the provider was charging: record the money so the
                        // cancel's refund step gives it back.
                        order.record_late_payment(payment, stamp)
                    };
                    Ok(order_change(order, expected_version, event, Vec::new()))
                })
                .await
                .map_err(StepError::from),
            Err(PaymentError::Declined(reason)) => self
                .settle(job, |mut order, stamp| {
                    if order.status != OrderStatus::Reserved {
                        return Ok(Commit::default());
                    }
                    let expected_version = order.version;
                    let event = order
                        .apply(
                            Transition::DeclinePayment,
                            stamp,
                            Some(format!("payment declined: {reason}")),
                        )
                        .map_err(permanent)?;
                    let stock = stock_moves(&order, StockEffect::Release);
                    Ok(order_change(order, expected_version, event, stock))
                })
                .await
                .map_err(StepError::from),
            Err(e) => Err(provider_failure(e)),
        }
    }

    /// OrderCanceled → refund what is left of a captured payment (all of it, unless staff
    /// refunded part before).
    async fn refund(&self, job: &Job) -> Result<(), StepError> {
        let order = self.load(job).await?;
        let Some(payment) = order.payment.clone().filter(|p| p.refundable().minor() > 0) else {
            return self
                .settle(job, |_, _| Ok(Commit::default()))
                .await
                .map_err(StepError::from);
        };
        let request = PaymentRequest {
            idempotency_key: PaymentKey::new(order.id, PaymentStep::Refund),
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            amount: payment.refundable(),
            payment_method: order.payment_method.clone(),
        };
        let provider_ref = self
            .call_provider(self.payments.refund(&request, &payment.provider_ref))
            .await
            .map_err(provider_failure)?;
        self.settle(job, |mut order, stamp| {
            if !order.has_unrefunded_payment() {
                return Ok(Commit::default());
            }
            let expected_version = order.version;
            let refund = Refund {
                provider_ref: provider_ref.clone(),
                amount: request.amount,
                at: stamp.at,
            };
            let event = order.record_refund(refund, stamp);
            Ok(order_change(order, expected_version, event, Vec::new()))
        })
        .await
        .map_err(StepError::from)
    }
}

fn handled(job: &Job) -> Handled {
    Handled {
        job_id: job.id,
        order_id: job.event.order_id,
        consumer: job.consumer,
        event_id: job.event.id,
    }
}

fn permanent(e: impl std::fmt::Display) -> StepError {
    StepError::Permanent(e.to_string())
}

fn provider_failure(e: PaymentError) -> StepError {
    match e {
        PaymentError::Transient(m) => StepError::Transient(format!("payment provider: {m}")),
        PaymentError::Declined(m) => StepError::Permanent(format!("payment provider refused: {m}")),
    }
}

/// Why [`Saga::settle`] stopped: the step failed, or the commit hit a condition the caller may
/// want to handle (not enough stock).
enum Settle {
    Step(StepError),
    Commit(CommitError),
}

impl From<StepError> for Settle {
    fn from(e: StepError) -> Self {
        Settle::Step(e)
    }
}

impl From<Settle> for StepError {
    fn from(e: Settle) -> Self {
        match e {
            Settle::Step(s) => s,
            Settle::Commit(CommitError::Store(s)) => s.into(),
            Settle::Commit(other) => StepError::Permanent(other.to_string()),
        }
    }
}

fn report(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "a saga step panicked; its job runs again when its lease ends");
    }
}

/// Tuning of the dispatcher loop.
#[derive(Clone, Copy, Debug)]
pub struct DispatcherSettings {
    /// Most steps in flight at once (each of a different order).
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

/// Claims due jobs and runs them, one order's jobs strictly in order within each lane, different
/// orders and lanes at once.
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
        let limit = self.settings.batch.max(1) as usize;
        let mut running: JoinSet<()> = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(done) = running.try_join_next() {
                report(done);
            }
            // Claim while steps run: a slow payment holds up its own order, never the others.
            // Claimed jobs are leased, so the next claim skips them and their orders.
            let room = limit.saturating_sub(running.len());
            if room > 0 {
                let now = self.saga.clock.now();
                let claim = u32::try_from(room).unwrap_or(u32::MAX);
                match self.saga.store.claim_jobs(now, claim, lease_ms).await {
                    Ok(jobs) if !jobs.is_empty() => {
                        debug_assert_eq!(
                            jobs.iter()
                                .map(|j| (j.event.order_id, j.consumer.lane()))
                                .collect::<HashSet<_>>()
                                .len(),
                            jobs.len(),
                            "at most one job per order and lane per claim"
                        );
                        for job in jobs {
                            let saga = Arc::clone(&self.saga);
                            running.spawn(async move { saga.run(&job).await });
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not claim jobs; backing off"),
                }
            }
            let wait = self.idle_wait().await;
            tokio::select! {
                () = self.work.notified() => {}
                Some(done) = running.join_next(), if !running.is_empty() => report(done),
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        while let Some(done) = running.join_next().await {
            report(done);
        }
        tracing::info!("dispatcher stopped");
    }

    /// How long to sleep when nothing is claimable: until the next job falls due, at most
    /// `idle_poll`.
    async fn idle_wait(&self) -> Duration {
        match self.saga.store.next_due().await {
            Ok(Some(due)) => {
                let ms = due
                    .millis()
                    .saturating_sub(self.saga.clock.now().millis())
                    .max(1);
                Duration::from_millis(u64::try_from(ms).unwrap_or(1)).min(self.settings.idle_poll)
            }
            _ => self.settings.idle_poll,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Template;

    #[test]
    fn every_event_with_a_message_queues_a_notify_job_and_no_other_does() {
        for kind in EventKind::ALL {
            let notifies = consumers_of(kind).contains(&Consumer::Notify);
            assert_eq!(notifies, !Template::for_event(kind).is_empty(), "{kind}");
        }
    }
}
