//! Notifications: which messages an event produces, for whom, and sending each exactly once.
//!
//! ```text
//! commit(order change + event + Notify job)  ──outbox──▶  Notify lane  ──▶  Notifications::deliver
//!      plan: event kind → templates → recipients (customer, SMS number, staff), minus opted-out
//!      for each message: record exists? skip : send, then write the record
//! ```
//!
//! The record (a [`DocKind::Notification`] document keyed by `{event id}/{template}/{recipient}`)
//! is what makes a redelivered event send nothing twice. A transient failure leaves the job to
//! be retried with the saga's backoff; messages already sent are skipped on the retry. When the
//! retries run out, the unsent messages are recorded as failed ([`DocKind::NotificationFailure`])
//! for staff to see and retry — the order itself is never flagged and never waits: notify jobs
//! run in their own [`crate::ports::Lane`].
//!
//! Rendering is a port ([`Templates`]): the templates live with their engine in `orderly-notify`.

use std::sync::Arc;

use orderly_domain::{Customer, CustomerId, Event, EventId, EventKind, Order, OrderId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::documents::{DocumentType, Documents, Versioned};
use crate::error::AppError;
use crate::ports::{
    Category, Clock, Commit, CommitError, DocKind, Handled, Job, Message, Notifier, NotifyError,
    Recipient, Store, StoreError,
};
use crate::saga::StepError;

/// The messages Orderly sends, one template each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// To the customer: we have your order.
    OrderConfirmation,
    /// To staff: a new order came in.
    NewOrder,
    /// To the customer: the payment did not go through.
    PaymentFailed,
    /// To the customer: handed to the carrier, with the tracking number (e-mail and SMS).
    Shipped,
    /// To the customer: delivered (e-mail and SMS).
    Delivered,
    /// To the customer: the order was canceled.
    Canceled,
    /// To the customer: money was refunded.
    Refunded,
    /// To staff: an order ran out of retries and needs a person.
    NeedsAttention,
    /// To the customer, marketing: after delivery, an invitation to review the purchase.
    ReviewRequest,
}

/// Who a template is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The order's customer.
    Customer,
    /// The shop's staff (admin e-mail, admin topic).
    Staff,
}

impl Template {
    /// Every template.
    pub const ALL: [Template; 9] = [
        Template::OrderConfirmation,
        Template::NewOrder,
        Template::PaymentFailed,
        Template::Shipped,
        Template::Delivered,
        Template::Canceled,
        Template::Refunded,
        Template::NeedsAttention,
        Template::ReviewRequest,
    ];

    /// The file name stem (`templates/{name}.txt`, `.html`, `.sms.txt`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Template::OrderConfirmation => "order_confirmation",
            Template::NewOrder => "new_order",
            Template::PaymentFailed => "payment_failed",
            Template::Shipped => "shipped",
            Template::Delivered => "delivered",
            Template::Canceled => "canceled",
            Template::Refunded => "refunded",
            Template::NeedsAttention => "needs_attention",
            Template::ReviewRequest => "review_request",
        }
    }

    /// Transactional, or marketing (which customers may refuse).
    #[must_use]
    pub fn category(self) -> Category {
        match self {
            Template::ReviewRequest => Category::Marketing,
            _ => Category::Transactional,
        }
    }

    /// Who it is for.
    #[must_use]
    pub fn audience(self) -> Audience {
        match self {
            Template::NewOrder | Template::NeedsAttention => Audience::Staff,
            _ => Audience::Customer,
        }
    }

    /// True if it also goes by SMS to a customer who gave a number.
    #[must_use]
    pub fn has_sms(self) -> bool {
        matches!(self, Template::Shipped | Template::Delivered)
    }

    /// The templates an event produces.
    #[must_use]
    pub fn for_event(kind: EventKind) -> &'static [Template] {
        match kind {
            EventKind::OrderPlaced => &[Template::OrderConfirmation, Template::NewOrder],
            EventKind::PaymentFailed => &[Template::PaymentFailed],
            EventKind::OrderShipped => &[Template::Shipped],
            EventKind::OrderDelivered => &[Template::Delivered, Template::ReviewRequest],
            EventKind::OrderCanceled => &[Template::Canceled],
            EventKind::RefundIssued => &[Template::Refunded],
            EventKind::OrderNeedsAttention => &[Template::NeedsAttention],
            _ => &[],
        }
    }
}

/// Which form of a template to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Subject, plain text and HTML (e-mail; topics use subject and text).
    Mail,
    /// One short plain text.
    Sms,
}

/// What a template sees: the order as the customer knows it, every value ready to print.
#[derive(Clone, Debug, Serialize)]
pub struct View {
    /// The shop's name, as configured.
    pub shop_name: String,
    /// The order's id.
    pub order_id: String,
    /// Its status now (`shipped`, …).
    pub status: String,
    /// The event's type (`OrderShipped`, …).
    pub event: String,
    /// The customer's id.
    pub customer_id: String,
    /// The customer's name, exactly as entered (empty if the customer is unknown).
    pub customer_name: String,
    /// The customer's e-mail address.
    pub customer_email: String,
    /// The lines ordered.
    pub lines: Vec<ViewLine>,
    /// The total in the order's currency (`¥1,000`, `$279.98`).
    pub total: String,
    /// ISO 4217 code of the order's currency.
    pub currency: String,
    /// Where it ships to, if given.
    pub address: Option<ViewAddress>,
    /// The carrier, once shipped.
    pub carrier: Option<String>,
    /// The tracking number, once shipped.
    pub tracking_number: Option<String>,
    /// The event's detail (why rejected, why it needs attention).
    pub detail: Option<String>,
    /// The amount refunded so far, once refunded.
    pub refunded: Option<String>,
}

/// A line of [`View`].
#[derive(Clone, Debug, Serialize)]
pub struct ViewLine {
    /// The product's name at the time of the order.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, formatted.
    pub unit_price: String,
    /// Price of the line, formatted.
    pub line_total: String,
}

/// A shipping address in [`View`], every part as entered.
#[derive(Clone, Debug, Serialize)]
pub struct ViewAddress {
    /// Who receives it.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Flat, floor.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Region.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Country code.
    pub country: String,
}

impl View {
    /// The view of `order` after `event`.
    #[must_use]
    pub fn of(shop_name: &str, event: &Event, order: &Order, customer: Option<&Customer>) -> View {
        View {
            shop_name: shop_name.to_owned(),
            order_id: order.id.to_string(),
            status: order.status.as_str().to_owned(),
            event: event.kind.as_str().to_owned(),
            customer_id: order.customer_id.to_string(),
            customer_name: customer
                .map(|c| c.name.as_str().to_owned())
                .unwrap_or_default(),
            customer_email: customer
                .map(|c| c.email.as_str().to_owned())
                .unwrap_or_default(),
            lines: order
                .lines
                .iter()
                .map(|l| ViewLine {
                    name: l.name.as_str().to_owned(),
                    quantity: l.quantity.get(),
                    unit_price: l.unit_price.to_display_string(),
                    line_total: l.line_total.to_display_string(),
                })
                .collect(),
            total: order.total.to_display_string(),
            currency: order.currency.code().to_owned(),
            address: order.shipping_address.as_ref().map(|a| ViewAddress {
                name: a.name.clone(),
                line1: a.line1.clone(),
                line2: a.line2.clone(),
                city: a.city.clone(),
                region: a.region.clone(),
                postal_code: a.postal_code.clone(),
                country: a.country.clone(),
            }),
            carrier: order.shipment.as_ref().map(|s| s.carrier.clone()),
            tracking_number: order.shipment.as_ref().map(|s| s.tracking_number.clone()),
            detail: event.detail.clone(),
            refunded: order
                .payment
                .as_ref()
                .filter(|p| !p.refunds.is_empty())
                .map(|p| p.refunded().to_display_string()),
        }
    }
}

/// A rendered template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain text.
    pub text: String,
    /// The HTML (empty for [`Form::Sms`]).
    pub html: String,
}

/// Renders templates: the port `orderly-notify` implements with the files kept in the repo.
pub trait Templates: Send + Sync {
    /// Renders `template` in `form` for `view`.
    ///
    /// # Errors
    /// A message naming the template and what went wrong (a bug; not worth retrying).
    fn render(&self, template: Template, form: Form, view: &View) -> Result<Rendered, String>;
}

/// Whether a notification went out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Delivered to the channel.
    Sent,
    /// Ran out of retries or was refused for good; staff can retry it.
    Failed,
}

impl Status {
    /// `sent` or `failed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Failed => "failed",
        }
    }
}

/// What is kept about one message: the dedupe record, and for failures the staff's view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRecord {
    /// `{event id}/{template}/{recipient}`.
    pub key: String,
    /// The order it is about.
    pub order_id: OrderId,
    /// The event that caused it.
    pub event_id: EventId,
    /// That event's type.
    pub event: EventKind,
    /// Which message.
    pub template: Template,
    /// Where it went (or was to go).
    pub recipient: Recipient,
    /// Transactional or marketing.
    pub category: Category,
    /// Its subject.
    pub subject: String,
    /// Sent or failed.
    pub status: Status,
    /// Tries so far.
    pub attempts: u32,
    /// The last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was sent or last failed.
    pub at: Timestamp,
}

/// A customer's choices about messages, kept as a [`DocKind::NotificationPreferences`] document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferences {
    /// False: no marketing messages. Transactional ones always go.
    pub marketing: bool,
    /// An E.164 number (`+15551234567`) for shipping updates by SMS; none: no SMS.
    #[serde(default)]
    pub sms_phone: Option<String>,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            marketing: true,
            sms_phone: None,
        }
    }
}

impl Preferences {
    /// How many digits an E.164 number has after its `+`.
    pub const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

    /// Checks the phone number is E.164: `+`, then 8 to 15 digits, the first not 0.
    ///
    /// # Errors
    /// [`AppError::Invalid`] naming `smsPhone`.
    pub fn validate(&self) -> Result<(), AppError> {
        if let Some(phone) = &self.sms_phone {
            let digits = phone.strip_prefix('+').unwrap_or("");
            let ok = Self::PHONE_DIGITS.contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0');
            if !ok {
                return Err(AppError::invalid(
                    "smsPhone",
                    "must be an E.164 number such as +15551234567",
                ));
            }
        }
        Ok(())
    }
}

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
    store: Arc<dyn Store>,
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

impl Notifications {
    /// Wires the use cases.
    pub fn new(
        store: Arc<dyn Store>,
        notifier: Arc<dyn Notifier>,
        templates: Arc<dyn Templates>,
        clock: Arc<dyn Clock>,
        settings: NotifySettings,
    ) -> Self {
        Notifications {
            store,
            notifier,
            templates,
            clock,
            settings,
        }
    }

    /// The store the records are kept in.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The messages `event` produces now: its templates, for every recipient the notifier can
    /// reach, minus marketing to customers who opted out.
    ///
    /// # Errors
    /// [`StepError::Transient`] if the store is down; [`StepError::Permanent`] if the order is
    /// gone or a template does not render.
    pub async fn plan(&self, event: &Event) -> Result<Vec<Planned>, StepError> {
        let templates = Template::for_event(event.kind);
        if templates.is_empty() {
            return Ok(Vec::new());
        }
        let order = self.store.order(event.order_id).await?.ok_or_else(|| {
            StepError::Permanent(format!("order {} does not exist", event.order_id))
        })?;
        let customer = self.store.customer(&order.customer_id).await?;
        let prefs = self.preferences_of(&order.customer_id).await?;
        let view = View::of(&self.settings.shop_name, event, &order, customer.as_ref());
        let mut planned = Vec::new();
        for &template in templates {
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
            Err(StepError::Permanent(e)) => {
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
        match self.store.commit(commit).await {
            Ok(()) => Ok(()),
            Err(CommitError::AlreadyHandled) => self.store.delete_job(job).await,
            Err(CommitError::Store(e)) => Err(e),
            Err(other) => Err(StoreError::Corrupt(other.to_string())),
        }
    }

    /// The record of one message, if it was sent or failed.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn record(&self, key: &str) -> Result<Option<NotificationRecord>, StoreError> {
        self.records().value(key).await
    }

    fn records(&self) -> Documents<NotificationRecord> {
        Documents::new(self.store.clone())
    }

    fn failures(&self) -> Documents<FailedNotification> {
        Documents::new(self.store.clone())
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
        new(self.records().insert(&record.key, &record).await)?;
        if status == Status::Failed {
            new(self
                .failures()
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
            let page = self.failures().page(cursor.as_deref(), 100).await?;
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
    /// [`RetryError::App`] with [`AppError::NotFound`] for an unknown key (or a storage
    /// failure); [`RetryError::NotFailed`] if it was sent since; [`RetryError::NoLongerApplies`]
    /// if the message is not wanted any more; [`RetryError::NotSent`] if the channel refused it
    /// again (the record keeps the new error).
    pub async fn retry(&self, key: &str) -> Result<NotificationRecord, RetryError> {
        let Some(Versioned {
            value: FailedNotification(failure),
            version,
        }) = self.failures().get(key).await?
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
            .store
            .order_events(failure.order_id)
            .await?
            .into_iter()
            .find(|e| e.id == failure.event_id)
            .ok_or_else(|| RetryError::NoLongerApplies("its event is gone".into()))?;
        let planned = self.plan(&event).await.map_err(|e| match e {
            StepError::Transient(m) => RetryError::App(AppError::Unavailable(m)),
            StepError::Permanent(m) => RetryError::NoLongerApplies(m),
        })?;
        let Some(p) = planned.into_iter().find(|p| p.message.dedupe_key == key) else {
            return Err(RetryError::NoLongerApplies(
                "the message is no longer wanted (opted out, or no channel reaches the recipient)"
                    .into(),
            ));
        };
        let sent = self.notifier.send(&p.message).await;
        let mut updated = failure.clone();
        updated.attempts += 1;
        updated.at = self.clock.now();
        match &sent {
            Ok(()) => {
                updated.status = Status::Sent;
                updated.error = None;
            }
            Err(NotifyError::Transient(e) | NotifyError::Permanent(e)) => {
                updated.error = Some(e.clone());
            }
        }
        self.failures()
            .save(key, &FailedNotification(updated.clone()), Some(version))
            .await
            .map_err(|e| match e {
                StoreError::Conflict => RetryError::App(AppError::Unavailable(
                    "the notification was retried concurrently".into(),
                )),
                other => other.into(),
            })?;
        self.records().put(key, &updated).await?;
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
        preferences(&self.store, customer).await
    }
}

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
}

impl From<StoreError> for RetryError {
    fn from(e: StoreError) -> Self {
        RetryError::App(e.into())
    }
}

/// A customer's preferences, the defaults if they never set any.
///
/// # Errors
/// A storage failure, or a stored document that does not parse.
pub async fn preferences(
    store: &Arc<dyn Store>,
    customer: &CustomerId,
) -> Result<Preferences, StoreError> {
    Ok(Documents::<Preferences>::new(store.clone())
        .value(customer.as_str())
        .await?
        .unwrap_or_default())
}

/// Replaces a customer's preferences.
///
/// # Errors
/// [`AppError::NotFound`] for an unknown customer, [`AppError::Invalid`] for a bad number.
pub async fn set_preferences(
    store: &Arc<dyn Store>,
    customer: &CustomerId,
    prefs: &Preferences,
) -> Result<Preferences, AppError> {
    prefs.validate()?;
    if store.customer(customer).await?.is_none() {
        return Err(AppError::NotFound {
            what: "customer",
            id: customer.to_string(),
        });
    }
    Documents::<Preferences>::new(store.clone())
        .put(customer.as_str(), prefs)
        .await?;
    Ok(prefs.clone())
}

impl DocumentType for Preferences {
    const KIND: DocKind = DocKind::NotificationPreferences;
}

impl DocumentType for NotificationRecord {
    const KIND: DocKind = DocKind::Notification;
}

/// A notification that ran out of retries, kept apart for staff (the same record, under
/// [`DocKind::NotificationFailure`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
struct FailedNotification(NotificationRecord);

impl DocumentType for FailedNotification {
    const KIND: DocKind = DocKind::NotificationFailure;
}
