//! Notifications: which messages an event produces, for whom, and sending each exactly once.
//!
//! ```text
//! commit(order change + event + Notify job)  ──outbox──▶  Notify lane  ──▶  Notifications::deliver
//!      plan: event kind → templates → recipients (customer, SMS number, staff), minus opted-out
//!      for each message: record exists? skip : send, then write the record
//! ```
//!
//! The record (a [`DocKind::Notification`](crate::ports::DocKind::Notification) document keyed by `{event id}/{template}/{recipient}`)
//! is what makes a redelivered event send nothing twice. A transient failure leaves the job to
//! be retried with the saga's backoff; messages already sent are skipped on the retry. When the
//! retries run out, the unsent messages are recorded as failed ([`DocKind::NotificationFailure`](crate::ports::DocKind::NotificationFailure))
//! for staff to see and retry — the order itself is never flagged and never waits: notify jobs
//! run in their own [`crate::ports::Lane`].
//!
//! Rendering is a port ([`Templates`]): the templates live with their engine in `orderly-notify`.

use std::sync::Arc;

use orderly_domain::{CustomerId, Event, EventId};

mod records;
mod templates;

use self::records::FailedNotification;
pub use self::records::{MessagePreferences, NotificationRecord, Preferences, Status};
pub use self::templates::{
    Audience, Form, Rendered, Template, Templates, View, ViewAddress, ViewLine,
};
use crate::documents::{Documents, Versioned};
use crate::error::AppError;
use crate::ports::{
    CatalogStore, Category, Clock, Commit, CommitError, DocumentStore, Handled, Job, JobQueue,
    Message, Notifier, NotifyError, OrderStore, Recipient, StoreError, UnitOfWork,
};
use crate::step::StepError;

/// What the notifier needs to know about the shop.
#[derive(Clone, Debug, Default)]
pub struct NotifySettings {
    /// The shop's name, printed in messages.
    pub shop_name: String,
    /// Where staff messages go (admin e-mail, admin topic); none: no staff messages.
    pub staff: Vec<Recipient>,
}

/// One message planned for an event, with what its record needs.
#[derive(Clone, Debug)]
pub struct Planned {
    /// The message.
    pub message: Message,
    /// Its template.
    pub template: Template,
}

/// The notification use cases: deliver an event's messages, give up on them, show and retry
/// failures, keep preferences.
pub struct Notifications {
    orders: Arc<dyn OrderStore>,
    customers: Arc<dyn CatalogStore>,
    commits: Arc<dyn UnitOfWork>,
    jobs: Arc<dyn JobQueue>,
    records: Documents<NotificationRecord>,
    failures: Documents<FailedNotification>,
    preferences: MessagePreferences,
    notifier: Arc<dyn Notifier>,
    templates: Arc<dyn Templates>,
    clock: Arc<dyn Clock>,
    settings: NotifySettings,
}

/// The dedupe key of one message.
#[must_use]
pub fn dedupe_key(event: EventId, template: Template, recipient: &Recipient) -> String {
    format!(
        "{event}/{}/{}:{}",
        template.as_str(),
        recipient.channel(),
        recipient.address()
    )
}

/// The storage ports notifications use.
pub(crate) struct NotifyPorts {
    /// Orders and their events read.
    pub(crate) orders: Arc<dyn OrderStore>,
    /// Customers read.
    pub(crate) customers: Arc<dyn CatalogStore>,
    /// A delivered job's handled-mark committed.
    pub(crate) commits: Arc<dyn UnitOfWork>,
    /// A job that was handled elsewhere removed.
    pub(crate) jobs: Arc<dyn JobQueue>,
    /// Records and preferences.
    pub(crate) documents: Arc<dyn DocumentStore>,
}

impl Notifications {
    /// Wires the use cases (see [`crate::Application::with_notifier`]).
    pub(crate) fn new(
        ports: NotifyPorts,
        notifier: Arc<dyn Notifier>,
        templates: Arc<dyn Templates>,
        clock: Arc<dyn Clock>,
        settings: NotifySettings,
    ) -> Self {
        Notifications {
            records: Documents::new(Arc::clone(&ports.documents)),
            failures: Documents::new(Arc::clone(&ports.documents)),
            preferences: MessagePreferences::new(
                Arc::clone(&ports.documents),
                Arc::clone(&ports.customers),
                crate::search_index::SearchIndex::new(ports.documents, Arc::clone(&ports.commits)),
            ),
            orders: ports.orders,
            customers: ports.customers,
            commits: ports.commits,
            jobs: ports.jobs,
            notifier,
            templates,
            clock,
            settings,
        }
    }

    /// The messages `event` produces now: its templates, for every recipient the notifier can
    /// reach, minus marketing to customers who opted out.
    ///
    /// # Errors
    /// [`StepError::Transient`] if the store is down; [`StepError::Permanent`] if the order is
    /// gone or a template does not render.
    pub async fn plan(&self, event: &Event) -> Result<Vec<Planned>, StepError> {
        let templates = Template::of_event(event);
        if templates.is_empty() {
            return Ok(Vec::new());
        }
        let order = self.orders.order(event.order_id).await?.ok_or_else(|| {
            StepError::Permanent(format!("order {} does not exist", event.order_id))
        })?;
        let customer = self.customers.customer(&order.customer_id).await?;
        let prefs = self.preferences_of(&order.customer_id).await?;
        let view = View::of(&self.settings.shop_name, event, &order, customer.as_ref());
        let mut planned = Vec::new();
        for template in templates {
            if template.category() == Category::Marketing && !prefs.marketing {
                tracing::debug!(
                    template = template.as_str(),
                    "customer opted out of marketing"
                );
                continue;
            }
            let recipients: Vec<Recipient> = match template.audience() {
                Audience::Staff => self.settings.staff.clone(),
                Audience::Customer => {
                    let mut r = Vec::new();
                    if let Some(c) = &customer {
                        r.push(Recipient::Email(c.email.as_str().to_owned()));
                    }
                    if template.has_sms()
                        && let Some(phone) = &prefs.sms_phone
                    {
                        r.push(Recipient::Sms(phone.clone()));
                    }
                    r
                }
            };
            for recipient in recipients {
                if !self.notifier.reaches(&recipient) {
                    continue;
                }
                let form = match recipient {
                    Recipient::Sms(_) => Form::Sms,
                    _ => Form::Mail,
                };
                let rendered = self
                    .templates
                    .render(template, form, &view)
                    .map_err(StepError::Permanent)?;
                planned.push(Planned {
                    message: Message {
                        dedupe_key: dedupe_key(event.id, template, &recipient),
                        recipient,
                        subject: rendered.subject,
                        text: rendered.text,
                        html: rendered.html,
                        category: template.category(),
                    },
                    template,
                });
            }
        }
        Ok(planned)
    }

    /// Sends every message of the job's event that has no record yet, then completes the job.
    /// A message refused for good is recorded as failed at once; a transient failure fails the
    /// step (to be retried) after the other messages were tried.
    ///
    /// # Errors
    /// [`StepError::Transient`] to retry later; [`StepError::Permanent`] if nothing can be sent.
    #[tracing::instrument(skip_all, fields(order_id = %job.event.order_id, event = %job.event.kind))]
    pub async fn deliver(&self, job: &Job) -> Result<(), StepError> {
        let planned = self.plan(&job.event).await?;
        let mut transient = None;
        for p in &planned {
            if self.record(&p.message.dedupe_key).await?.is_some() {
                tracing::debug!(key = %p.message.dedupe_key, "already sent or failed; skipping");
                continue;
            }
            match self.notifier.send(&p.message).await {
                Ok(()) => {
                    tracing::info!(
                        template = p.template.as_str(),
                        channel = p.message.recipient.channel(),
                        "notification sent"
                    );
                    self.write_record(&job.event, p, Status::Sent, job.attempts + 1, None)
                        .await?;
                }
                Err(NotifyError::Permanent(e)) => {
                    tracing::warn!(template = p.template.as_str(), error = %e, "notification refused; recorded as failed");
                    self.write_record(&job.event, p, Status::Failed, job.attempts + 1, Some(e))
                        .await?;
                }
                Err(NotifyError::Transient(e)) => {
                    tracing::warn!(template = p.template.as_str(), error = %e, "notification not sent; will retry");
                    transient = Some(e);
                }
            }
        }
        if let Some(e) = transient {
            return Err(StepError::Transient(e));
        }
        self.complete(job).await.map_err(StepError::from)
    }

    /// After the last try: records every unsent message of the job's event as failed (staff see
    /// it), and completes the job. The order is not touched.
    ///
    /// # Errors
    /// A storage failure; the job then stays to be retried.
    pub async fn give_up(&self, job: &Job, attempts: u32, error: String) -> Result<(), StoreError> {
        match self.plan(&job.event).await {
            Ok(planned) => {
                for p in &planned {
                    if self.record(&p.message.dedupe_key).await?.is_none() {
                        tracing::error!(template = p.template.as_str(), %error, attempts, "notification failed for good; staff can retry it");
                        self.write_record(
                            &job.event,
                            p,
                            Status::Failed,
                            attempts,
                            Some(error.clone()),
                        )
                        .await?;
                    }
                }
            }
            Err(StepError::Transient(e)) => return Err(StoreError::Unavailable(e)),
            Err(StepError::Permanent(e) | StepError::Refused(_, e)) => {
                tracing::error!(error = %e, "notifications of this event cannot be planned; dropping them");
            }
        }
        self.complete(job).await
    }

    /// Marks the job's event handled by the notifier and removes the job.
    async fn complete(&self, job: &Job) -> Result<(), StoreError> {
        let commit = Commit {
            handled: Some(Handled {
                job_id: job.id,
                order_id: job.event.order_id,
                consumer: job.consumer,
                event_id: job.event.id,
            }),
            ..Commit::default()
        };
        match self.commits.commit(commit).await {
            Ok(()) => Ok(()),
            Err(CommitError::AlreadyHandled) => self.jobs.delete_job(job).await,
            Err(CommitError::Store(e)) => Err(e),
            Err(other) => Err(StoreError::Corrupt(other.to_string())),
        }
    }

    /// The record of one message, if it was sent or failed.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn record(&self, key: &str) -> Result<Option<NotificationRecord>, StoreError> {
        self.records.value(key).await
    }

    async fn write_record(
        &self,
        event: &Event,
        planned: &Planned,
        status: Status,
        attempts: u32,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        let record = NotificationRecord {
            key: planned.message.dedupe_key.clone(),
            order_id: event.order_id,
            event_id: event.id,
            event: event.kind,
            template: planned.template,
            recipient: planned.message.recipient.clone(),
            category: planned.message.category,
            subject: planned.message.subject.clone(),
            status,
            attempts,
            error,
            at: self.clock.now(),
        };
        // A concurrent writer of the same new record (another node sending the same message)
        // has the same facts, so a record that exists already is not an error.
        let new = |written: Result<(), StoreError>| match written {
            Err(StoreError::AlreadyExists) => Ok(()),
            other => other,
        };
        new(self.records.insert(&record.key, &record).await)?;
        if status == Status::Failed {
            new(self
                .failures
                .insert(&record.key, &FailedNotification(record.clone()))
                .await)?;
        }
        Ok(())
    }

    /// Notifications that failed and were not retried successfully since, in key order after
    /// `after`, at most `limit`.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn failed(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<NotificationRecord>, AppError> {
        let mut found = Vec::new();
        let mut cursor = after.map(str::to_owned);
        loop {
            let page = self.failures.page(cursor.as_deref(), 100).await?;
            let Some((last, _)) = page.last() else {
                return Ok(found);
            };
            cursor = Some(last.clone());
            for (_, FailedNotification(record)) in page {
                if record.status == Status::Failed {
                    found.push(record);
                    if found.len() >= limit as usize {
                        return Ok(found);
                    }
                }
            }
        }
    }

    /// Staff's retry of a failed notification: sends it now, as the event's templates render
    /// it today.
    ///
    /// # Errors
    /// [`RetryError::App`] with [`AppError::Invalid`] for a key that cannot be one, with
    /// [`AppError::NotFound`] for an unknown key (or a storage failure);
    /// [`RetryError::NotFailed`] if it was sent since; [`RetryError::NoLongerApplies`] if the
    /// message is not wanted any more; [`RetryError::NotSent`] if the channel refused it
    /// again (the record keeps the new error); [`RetryError::InFlight`] while another retry of
    /// it sends it.
    pub async fn retry(&self, key: &str) -> Result<NotificationRecord, RetryError> {
        // A key is an event id, a template and an address: nothing longer is one of ours.
        if key.is_empty() || key.chars().count() > MAX_KEY {
            return Err(RetryError::App(AppError::invalid(
                "key",
                format!("must be a notification's key, 1 to {MAX_KEY} characters"),
            )));
        }
        let Some(Versioned {
            value: FailedNotification(failure),
            version,
        }) = self.failures.get(key).await?
        else {
            return Err(RetryError::App(AppError::NotFound {
                what: "notification",
                id: key.to_owned(),
            }));
        };
        if failure.status != Status::Failed {
            return Err(RetryError::NotFailed(failure));
        }
        let event = self
            .orders
            .order_events(failure.order_id)
            .await?
            .into_iter()
            .find(|e| e.id == failure.event_id)
            .ok_or_else(|| RetryError::NoLongerApplies("its event is gone".into()))?;
        let planned = self.plan(&event).await.map_err(|e| match e {
            StepError::Transient(m) => RetryError::App(AppError::Unavailable(m)),
            StepError::Permanent(m) | StepError::Refused(_, m) => RetryError::NoLongerApplies(m),
        })?;
        let Some(p) = planned.into_iter().find(|p| p.message.dedupe_key == key) else {
            return Err(RetryError::NoLongerApplies(
                "the message is no longer wanted (opted out, or no channel reaches the recipient)"
                    .into(),
            ));
        };
        // Claimed before it is sent: of two retries at once (a double click), only the one
        // whose claim is stored sends; the other is told it is in flight.
        let mut updated = failure.clone();
        updated.attempts += 1;
        updated.at = self.clock.now();
        self.failures
            .save(key, &FailedNotification(updated.clone()), Some(version))
            .await
            .map_err(|e| match e {
                StoreError::Conflict => RetryError::InFlight,
                other => other.into(),
            })?;
        let sent = self.notifier.send(&p.message).await;
        match &sent {
            Ok(()) => {
                updated.status = Status::Sent;
                updated.error = None;
            }
            Err(NotifyError::Transient(e) | NotifyError::Permanent(e)) => {
                updated.error = Some(e.clone());
            }
        }
        // Only this retry writes over its own claim; a failure to record the outcome leaves
        // the claim (still failed, one attempt more), which staff may retry.
        self.failures
            .save(key, &FailedNotification(updated.clone()), Some(version + 1))
            .await?;
        // The dedupe record, if the message had one, says the same (a failure without one was
        // never sent, and stays without).
        self.records
            .update(key, |record| {
                record.clone_from(&updated);
                true
            })
            .await?;
        match sent {
            Ok(()) => Ok(updated),
            Err(e) => Err(RetryError::NotSent(e.to_string())),
        }
    }

    /// A customer's preferences (the defaults if they never set any).
    ///
    /// # Errors
    /// A storage failure.
    pub async fn preferences_of(&self, customer: &CustomerId) -> Result<Preferences, StoreError> {
        self.preferences.of(customer).await
    }
}

/// Longest notification key, in characters (an event id, a template and an address).
pub const MAX_KEY: usize = 512;

/// Why a staff retry did not send.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// Not found, or the store is down.
    #[error(transparent)]
    App(#[from] AppError),
    /// It is not failed (sent since).
    #[error("the notification is not failed")]
    NotFailed(NotificationRecord),
    /// The order or customer changed so the message is not wanted any more.
    #[error("the notification no longer applies: {0}")]
    NoLongerApplies(String),
    /// The channel refused it again; the record keeps the new error.
    #[error("{0}")]
    NotSent(String),
    /// Another retry of it is sending it right now.
    #[error("the notification is being sent by another retry")]
    InFlight,
}

impl From<StoreError> for RetryError {
    fn from(e: StoreError) -> Self {
        RetryError::App(e.into())
    }
}
