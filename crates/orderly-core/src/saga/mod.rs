//! The order saga: the consumers that carry an order from placed to paid (or rejected), the
//! compensation on cancel, and the dispatcher that runs queued jobs with retries.
//!
//! ```text
//! OrderPlaced       ──inventory──▶ InventoryReserved | InventoryRejected
//! InventoryReserved ──payment────▶ PaymentCaptured   | PaymentFailed (stock released)
//! OrderCanceled     ──payment────▶ RefundIssued (if a payment was captured)
//! RefundRequested   ──payment────▶ RefundIssued (the part staff asked for)
//! ```
//!
//! Events that tell somebody something also get a [`Consumer::Notify`] job, which runs in its
//! own lane (see [`crate::ports::Lane`]) and is handed to [`crate::notify::Notifications`].
//!
//! Each consumer commits its effect together with the mark that it handled the event, so a
//! redelivered event changes nothing. Stage 1 is data ([`RetryPolicies`]): a transient failure
//! (storage, payment provider, mail server) gets the fast retries and then its
//! [`FailureClass`]'s longer waits; when they run out the order is flagged as needing attention
//! and the job is done. A refusal (a declined card, short stock) gets its class's waits, with
//! the stock held, and its last try commits the step's final answer (the order is rejected). Calls to the payment provider carry an idempotency key made of
//! the order id and the step, so a step re-run after a crash never charges twice.

mod dispatcher;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use orderly_domain::{Actor, Attention, EventKind, Order, OrderStatus, Stamp, Timestamp};

pub use self::dispatcher::{Dispatcher, DispatcherSettings};
pub use crate::commits::consumers_of;
use crate::commits::{CONFLICT_RETRIES, order_change};
use crate::documents::Documents;
use crate::escalations::{Escalation, flag_write};
use crate::notify::Notifications;
use crate::ports::{
    Clock, Commit, CommitError, Consumer, DocumentStore, Handled, IdGenerator, Job, JobQueue,
    OrderStore, PaymentError, PaymentGateway, StoreError, UnitOfWork,
};
use crate::retry::{FailureClass, RetryPolicies};
pub use crate::step::StepError;

/// The storage ports the saga's steps use.
pub(crate) struct SagaPorts {
    /// Orders read.
    pub(crate) orders: Arc<dyn OrderStore>,
    /// Effects committed.
    pub(crate) commits: Arc<dyn UnitOfWork>,
    /// Jobs put back or removed.
    pub(crate) jobs: Arc<dyn JobQueue>,
    /// Escalations written with the flag.
    pub(crate) documents: Arc<dyn DocumentStore>,
}

/// The saga's consumers.
pub struct Saga {
    orders: Arc<dyn OrderStore>,
    commits: Arc<dyn UnitOfWork>,
    jobs: Arc<dyn JobQueue>,
    escalations: Documents<Escalation>,
    payments: Arc<dyn PaymentGateway>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    retry: RetryPolicies,
    /// Longest wait for the payment provider; a silent provider is a transient failure.
    payment_timeout: Duration,
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

impl Saga {
    /// Wires the consumers (see [`crate::Application::saga`]).
    pub(crate) fn new(
        ports: SagaPorts,
        payments: Arc<dyn PaymentGateway>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        retry: RetryPolicies,
    ) -> Self {
        Saga {
            orders: ports.orders,
            commits: ports.commits,
            jobs: ports.jobs,
            escalations: Documents::new(ports.documents),
            payments,
            clock,
            ids,
            retry,
            payment_timeout: Duration::from_secs(30),
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

    /// The class of a transient failure of `job`'s step: the payment provider for the payment
    /// steps, the mail server for notifications, the database for reservations.
    #[must_use]
    pub fn transient_class(job: &Job) -> FailureClass {
        match job.consumer {
            Consumer::Payment => FailureClass::PaymentUnavailable,
            Consumer::Notify => FailureClass::MailUnavailable,
            Consumer::Inventory => FailureClass::Storage,
        }
    }

    /// The class of a failure of `job`'s step, and the wait before its next try (`None`: the
    /// job has had all its tries).
    #[must_use]
    pub fn next_try(&self, job: &Job, error: &StepError) -> (FailureClass, Option<Duration>) {
        let attempts = job.attempts.saturating_add(1);
        match error {
            StepError::Transient(_) => {
                let class = Saga::transient_class(job);
                (class, self.retry.next_wait(class, attempts))
            }
            StepError::Refused(class, _) => (*class, self.retry.next_wait(*class, attempts)),
            StepError::Permanent(_) => (Saga::transient_class(job), None),
        }
    }

    /// Whether this try of `job` is its last should it be refused with `class`: the step then
    /// commits its final answer instead of returning [`StepError::Refused`].
    pub(super) fn last_try(&self, job: &Job, class: FailureClass) -> bool {
        self.retry
            .next_wait(class, job.attempts.saturating_add(1))
            .is_none()
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
            Err(error) => {
                let attempts = job.attempts + 1;
                let (class, wait) = self.next_try(job, &error);
                let error = error.to_string();
                match wait {
                    Some(delay) => {
                        let next_at = self
                            .clock
                            .now()
                            .plus_millis(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                        tracing::warn!(%error, %class, retry_in_ms = delay.as_millis(), "step failed; will retry");
                        Outcome::Retry {
                            attempts,
                            next_at,
                            error: class.tag(&error),
                        }
                    }
                    None => {
                        tracing::error!(%error, %class, attempts, "step out of tries; giving up");
                        Outcome::GiveUp { attempts, error }
                    }
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
                } => self.jobs.retry_job(job, *attempts, *next_at, error).await,
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
                None => self.jobs.delete_job(job).await,
            };
        }
        for _ in 0..CONFLICT_RETRIES {
            let Some(mut order) = self.orders.order(job.event.order_id).await? else {
                return self.jobs.delete_job(job).await;
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
            let escalation = flag_write(&self.escalations, &order).await?;
            let commit = Commit {
                handled: Some(handled(job)),
                documents: escalation.into_iter().collect(),
                ..order_change(order, expected_version, event, Vec::new())
            };
            match self.commits.commit(commit).await {
                Ok(()) => return Ok(()),
                Err(CommitError::AlreadyHandled) => return self.jobs.delete_job(job).await,
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

    /// Stage 1's policies.
    #[must_use]
    pub fn retry_policies(&self) -> &RetryPolicies {
        &self.retry
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
            (Consumer::Payment, EventKind::OrderCanceled | EventKind::RefundRequested) => {
                self.refund(job).await
            }
            // A retry staff asked for: the step does what the order's state still needs.
            (Consumer::Inventory, EventKind::RetryRequested) => self.reserve(job).await,
            // The payment step that gave up was a refund when money was taken and some is
            // owed (or one is in flight), a capture otherwise.
            (Consumer::Payment, EventKind::RetryRequested) => {
                let order = self.load(job).await?;
                let refunding = order.payment.as_ref().is_some_and(|p| {
                    p.refund_in_flight.is_some() || steps::refund_owed(&order).is_some()
                });
                if refunding || order.status == OrderStatus::Canceled {
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

    pub(super) async fn load(&self, job: &Job) -> Result<Order, StepError> {
        self.orders.order(job.event.order_id).await?.ok_or_else(|| {
            StepError::Permanent(format!("order {} does not exist", job.event.order_id))
        })
    }

    /// Reads the order, lets `decide` say what changes, and commits that together with the
    /// handled-mark; on a concurrent change of the order, reads and decides again. External
    /// calls happen before, never inside, so a conflict never repeats or forgets one.
    pub(super) async fn settle<F>(&self, job: &Job, decide: F) -> Result<(), Settle>
    where
        F: FnMut(Order, &Stamp) -> Result<Commit, StepError>,
    {
        self.write(job, true, decide).await
    }

    /// Like [`Saga::settle`], but the job stays: for what a try records before it is tried
    /// again (a declined payment).
    pub(super) async fn note<F>(&self, job: &Job, decide: F) -> Result<(), StepError>
    where
        F: FnMut(Order, &Stamp) -> Result<Commit, StepError>,
    {
        self.write(job, false, decide)
            .await
            .map_err(StepError::from)
    }

    async fn write<F>(&self, job: &Job, done: bool, mut decide: F) -> Result<(), Settle>
    where
        F: FnMut(Order, &Stamp) -> Result<Commit, StepError>,
    {
        for _ in 0..CONFLICT_RETRIES {
            let order = self.load(job).await?;
            let stamp = self.stamp(job.consumer);
            let commit = Commit {
                handled: done.then(|| handled(job)),
                ..decide(order, &stamp)?
            };
            if commit.is_empty() {
                return Ok(());
            }
            match self.commits.commit(commit).await {
                Ok(()) => return Ok(()),
                Err(CommitError::AlreadyHandled) => {
                    return Ok(self.jobs.delete_job(job).await.map_err(StepError::from)?);
                }
                Err(CommitError::VersionConflict(_)) => {}
                Err(e) => return Err(Settle::Commit(e)),
            }
        }
        Err(StepError::Transient("order kept changing; will try again".into()).into())
    }
}

pub(crate) fn handled(job: &Job) -> Handled {
    Handled {
        job_id: job.id,
        order_id: job.event.order_id,
        consumer: job.consumer,
        event_id: job.event.id,
    }
}

pub(super) fn permanent(e: impl std::fmt::Display) -> StepError {
    StepError::Permanent(e.to_string())
}

pub(super) fn provider_failure(e: PaymentError) -> StepError {
    match e {
        PaymentError::Transient(m) => StepError::Transient(format!("payment provider: {m}")),
        PaymentError::Declined(m) => StepError::Permanent(format!("payment provider refused: {m}")),
    }
}

/// Why [`Saga::settle`] stopped: the step failed, or the commit hit a condition the caller may
/// want to handle (not enough stock).
pub(super) enum Settle {
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
