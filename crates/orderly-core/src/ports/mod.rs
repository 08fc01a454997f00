//! The ports: narrow traits the use cases need, implemented by one adapter per technology.
//!
//! Reads are plain queries ([`CatalogStore`], [`OrderStore`], [`StockStore`]). Every write that
//! changes an order, stock or the outbox goes through one atomic [`UnitOfWork::commit`] of a
//! [`Commit`]: the use case decides *what* changes, the adapter makes it happen all-or-nothing
//! and checks the conditions (order version, stock never below zero, an event handled once).
//! Pending saga work is a [`JobQueue`] kept in the same database, so it survives a crash.
//!
//! This module holds the storage ports; `payments` the provider's ([`PaymentGateway`],
//! [`PaymentKey`]), `messages` the notifier's ([`Notifier`], [`Message`]), `clock` time and ids
//! ([`Clock`], [`ManualClock`], [`IdGenerator`]). [`Store`] is their union, for the one place
//! that splits it: [`crate::Application`].

mod clock;
mod messages;
mod payments;

pub use self::clock::{Clock, IdGenerator, ManualClock, SystemClock, UuidV7};
pub use self::messages::{Category, Message, Notifier, NotifyError, Recipient};
pub use self::payments::{PaymentError, PaymentGateway, PaymentKey, PaymentRequest, PaymentStep};
use async_trait::async_trait;
use orderly_domain::{
    Customer, CustomerId, Event, EventId, Order, OrderId, OrderStatus, Product, ProductId,
    StockAdjustment, StockLevel, Timestamp,
};

/// A failure of the storage itself, not of a business rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or timed out; worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A pagination cursor this store did not issue.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A row with this key exists already.
    #[error("already exists")]
    AlreadyExists,
    /// The row changed since it was read.
    #[error("changed concurrently")]
    Conflict,
    /// A row to update does not exist.
    #[error("not found")]
    NotFound,
    /// Stored data that cannot be read back; needs an engineer.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

/// Why a [`Commit`] did not happen. Nothing of it was applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The order changed since it was read (its version moved on).
    #[error("order {0} was changed concurrently")]
    VersionConflict(OrderId),
    /// A stock move would have taken a product's available or reserved count below zero.
    #[error("not enough stock of product {0}")]
    InsufficientStock(ProductId),
    /// A stock move names a product with no stock row.
    #[error("unknown product {0}")]
    UnknownProduct(ProductId),
    /// The idempotency key was stored by a concurrent request first.
    #[error("idempotency key already used")]
    IdempotencyKeyTaken,
    /// This consumer already handled this event; the work is done.
    #[error("event already handled")]
    AlreadyHandled,
    /// A document of the commit was written by someone else since it was read (or, for a new
    /// one, exists already).
    #[error("{0} {1} was changed concurrently")]
    DocumentChanged(DocKind, String),
    /// The storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The steps that consume events: the saga's and the notifier's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Consumer {
    /// Reserves stock for placed orders.
    Inventory,
    /// Captures payment for reserved orders; refunds canceled ones.
    Payment,
    /// Tells customers and staff what happened (e-mail, SMS, topic).
    Notify,
}

/// Which line of work a job waits in. One order's jobs run strictly in order *within* a lane;
/// the lanes are independent, so a notification retrying with backoff never holds back the
/// order's saga, and a slow saga step never delays an e-mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// Stock and payment: the steps that change the order.
    Saga,
    /// Messages about the order; they never change it.
    Notify,
}

impl Lane {
    /// The name stored with jobs.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Saga => "saga",
            Lane::Notify => "notify",
        }
    }
}

impl Consumer {
    /// Every consumer.
    pub const ALL: [Consumer; 3] = [Consumer::Inventory, Consumer::Payment, Consumer::Notify];

    /// The name stored with jobs and handled-event records.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Consumer::Inventory => "inventory",
            Consumer::Payment => "payment",
            Consumer::Notify => "notify",
        }
    }

    /// The lane its jobs wait in.
    #[must_use]
    pub fn lane(self) -> Lane {
        match self {
            Consumer::Inventory | Consumer::Payment => Lane::Saga,
            Consumer::Notify => Lane::Notify,
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// How an order row is written.
#[derive(Clone, Debug)]
pub enum OrderWrite {
    /// A new order; fails if the id exists.
    Insert(Order),
    /// A change, only if the stored version is still `expected_version`.
    Update {
        /// The order after the change (its `version` is the new one).
        order: Order,
        /// The version read before the change.
        expected_version: u32,
    },
}

/// Units moved between a product's available and reserved counts. Deltas; the store refuses a
/// move that would leave either count below zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockMove {
    /// The product.
    pub product_id: ProductId,
    /// Change of `available`.
    pub available: i64,
    /// Change of `reserved`.
    pub reserved: i64,
}

/// An event to publish and the consumers that must handle it.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// The event, written to the outbox.
    pub event: Event,
    /// One job per consumer is queued with it.
    pub consumers: Vec<Consumer>,
}

/// A stored idempotency key: the request it was first used with and the order it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The client's `Idempotency-Key`.
    pub key: String,
    /// SHA-256 of the canonical request; a reuse with another request is refused.
    pub request_hash: String,
    /// The order the first request made.
    pub order_id: OrderId,
    /// When.
    pub created_at: Timestamp,
}

/// Marks a job's event as handled by its consumer, in the same transaction as the effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// The job being completed (deleted from the queue).
    pub job_id: i64,
    /// Its order (stores that keep jobs with their order need it to find the job).
    pub order_id: OrderId,
    /// Who handled it.
    pub consumer: Consumer,
    /// What was handled.
    pub event_id: EventId,
}

/// Everything one step changes, applied atomically by [`UnitOfWork::commit`].
#[derive(Clone, Debug, Default)]
pub struct Commit {
    /// The order written, if any.
    pub order: Option<OrderWrite>,
    /// Stock moved.
    pub stock: Vec<StockMove>,
    /// A manual stock adjustment to record (its delta must also be in `stock`).
    pub adjustment: Option<StockAdjustment>,
    /// Events for the outbox, with their consumers' jobs.
    pub events: Vec<Outgoing>,
    /// An idempotency key to store (fails with [`CommitError::IdempotencyKeyTaken`] if taken).
    pub idempotency: Option<IdempotencyRecord>,
    /// The job this commit completes.
    pub handled: Option<Handled>,
    /// Documents that belong to the change (a note, an escalation), each written only over
    /// the version read ([`CommitError::DocumentChanged`] otherwise).
    pub documents: Vec<DocumentWrite>,
}

/// A document to write as part of a [`Commit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentWrite {
    /// The document, at its new version.
    pub document: Document,
    /// `None`: it must be new; `Some(v)`: the stored one must still be at version `v`.
    pub expected_version: Option<u32>,
}

impl Commit {
    /// True if it writes nothing at all (a use case that found the change already made).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.order.is_none()
            && self.stock.is_empty()
            && self.adjustment.is_none()
            && self.events.is_empty()
            && self.idempotency.is_none()
            && self.handled.is_none()
            && self.documents.is_empty()
    }

    /// True if the commit queues saga work.
    #[must_use]
    pub fn queues_jobs(&self) -> bool {
        self.events.iter().any(|e| !e.consumers.is_empty())
    }
}

/// A page of results, newest first, and where the next one starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Which page to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items (1..=100).
    pub limit: u32,
    /// A cursor from a previous page.
    pub cursor: Option<String>,
}

/// Which orders to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only this status.
    pub status: Option<OrderStatus>,
    /// Only this customer's.
    pub customer_id: Option<CustomerId>,
}

/// A queued unit of saga work: one consumer's handling of one event.
#[derive(Clone, Debug)]
pub struct Job {
    /// Queue position; per order, jobs run in this order.
    pub id: i64,
    /// The consumer to run.
    pub consumer: Consumer,
    /// The event to handle.
    pub event: Event,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last failure, if any, tagged with its class ([`crate::retry::FailureClass::tag`]).
    pub last_error: Option<String>,
    /// The end of the lease this claim holds, which is also its token: a later claim of the
    /// same job (after the lease ran out) holds another. `None` for a job not claimed from a
    /// [`JobQueue`] (a queue message of the serverless runtime).
    pub lease: Option<Timestamp>,
}

/// Products and customers.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Creates a product with its stock row (`available` = `initial_stock`).
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the id is taken.
    async fn create_product(&self, product: &Product, initial_stock: i64)
    -> Result<(), StoreError>;
    /// Replaces a product, if its stored version is still `expected_version`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if it does not exist, [`StoreError::Conflict`] if it changed.
    async fn update_product(
        &self,
        product: &Product,
        expected_version: u32,
    ) -> Result<(), StoreError>;
    /// One product.
    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError>;
    /// Several products at once (missing ids are left out).
    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError>;
    /// Products by id.
    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, StoreError>;
    /// Creates a customer.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if the id is taken.
    async fn create_customer(&self, customer: &Customer) -> Result<(), StoreError>;
    /// One customer.
    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError>;
    /// Several customers at once (missing ids are left out).
    async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, StoreError>;
}

/// Orders, their events and idempotency keys.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// One order with its history.
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    /// Orders matching `filter`, newest first.
    async fn list_orders(
        &self,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Page<Order>, StoreError>;
    /// How many orders placed at or after `since` are in each status now, in
    /// [`OrderStatus::ALL`] order, statuses without any left out: the staff's dashboard. Served
    /// by an index on status and placement time, so it costs the orders counted, not all.
    async fn count_orders(&self, since: Timestamp) -> Result<Vec<(OrderStatus, u64)>, StoreError>;
    /// Orders whose id, as written (`0196…-…`, lowercase), starts with `prefix` — a canonical
    /// prefix ([`orderly_domain::search::OrderIdPrefix`]) — lowest id (oldest) first, at most `limit`: the
    /// search box's order ids. A range of the id's index.
    async fn orders_with_id_prefix(
        &self,
        prefix: &orderly_domain::search::OrderIdPrefix,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError>;
    /// The events published for an order, oldest first.
    async fn order_events(&self, id: OrderId) -> Result<Vec<Event>, StoreError>;
    /// A stored idempotency key.
    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
}

/// Stock levels and their manual adjustments.
#[async_trait]
pub trait StockStore: Send + Sync {
    /// A product's stock.
    async fn stock(&self, id: &ProductId) -> Result<Option<StockLevel>, StoreError>;
    /// A product's adjustments, newest first.
    async fn adjustments(
        &self,
        id: &ProductId,
        limit: u32,
    ) -> Result<Vec<StockAdjustment>, StoreError>;
}

/// The one atomic write.
#[async_trait]
pub trait UnitOfWork: Send + Sync {
    /// Applies every part of `commit` or none.
    ///
    /// # Errors
    /// [`CommitError`] naming the condition that failed.
    async fn commit(&self, commit: Commit) -> Result<(), CommitError>;

    /// Stores finished orders from elsewhere — no events, no saga work — as fast as the
    /// backend can (seeding, imports, benchmarks). All of them or, on error, possibly a prefix.
    /// The default commits them one by one.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] for an id that is taken, or a storage failure.
    async fn import_orders(&self, orders: &[Order]) -> Result<(), StoreError> {
        for order in orders {
            let commit = Commit {
                order: Some(OrderWrite::Insert(order.clone())),
                ..Commit::default()
            };
            self.commit(commit).await.map_err(|e| match e {
                CommitError::Store(s) => s,
                other => StoreError::Corrupt(other.to_string()),
            })?;
        }
        Ok(())
    }
}

/// Saga work waiting to run.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Leases up to `limit` due jobs until `now + lease_ms`: only the first outstanding job of
    /// each order in each [`Lane`] (see [`Consumer::lane`]), so one order's events are handled
    /// in order by its saga and, separately, by its notifier.
    async fn claim_jobs(
        &self,
        now: Timestamp,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError>;
    /// Puts a failed job back, due at `next_at`, with its attempt count and error — only while
    /// `job`'s lease is still the job's (else, with the job claimed again since, it changes
    /// nothing: the new holder decides).
    async fn retry_job(
        &self,
        job: &Job,
        attempts: u32,
        next_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError>;
    /// Removes a job whose event was already handled, on the same condition as
    /// [`JobQueue::retry_job`].
    async fn delete_job(&self, job: &Job) -> Result<(), StoreError>;
    /// Frees every lease: for a single-node database after a restart, whose leases all belonged
    /// to the process that died.
    async fn release_leases(&self) -> Result<u64, StoreError>;
    /// Frees the leases that end at `lease`: those of a claim made at `lease - lease_ms` whose
    /// answer was lost (the connection dropped after the store took the jobs), so the jobs
    /// are claimable again instead of leased to nobody until `lease`. Another claim whose
    /// lease ends at the very same millisecond loses its lease too, so the dispatcher gives
    /// each claim a lease end of its own (see `saga::Dispatcher`); if two still meet, a step
    /// may run twice at once: its handled mark keeps the second commit out, but an effect
    /// before the commit (a message sent) can happen twice.
    async fn release_claim(&self, lease: Timestamp) -> Result<u64, StoreError>;
    /// When the next job falls due (`None` if the queue is empty).
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError>;
    /// Jobs outstanding, for readiness and metrics.
    async fn pending_jobs(&self) -> Result<u64, StoreError>;
    /// Stage 1 at work: jobs that failed at least once and are not done, soonest due first —
    /// of one order, or of every order — at most `limit`.
    async fn waiting_jobs(
        &self,
        order: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<WaitingJob>, StoreError>;
    /// Staff's "retry now": makes job `job_id` of `order`, waiting after a failure, due at
    /// `now` — unless it is leased at `now` (a try is running). True if it did.
    async fn hurry_job(
        &self,
        order: OrderId,
        job_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// A job waiting for its next try after a failure (see [`JobQueue::waiting_jobs`]).
#[derive(Clone, Debug)]
pub struct WaitingJob {
    /// The job, its attempts and its last error ([`crate::retry::FailureClass::tag`]ged);
    /// `lease` is `None`.
    pub job: Job,
    /// When the next try falls due.
    pub due: Timestamp,
    /// True while a try is running.
    pub running: bool,
}

/// The kinds of [`Document`] kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// A shopper's cart, by cart id.
    Cart,
    /// An exchange rate from the base currency, by target currency code.
    Rate,
    /// A customer's log-in account and profile, by normalised e-mail.
    Account,
    /// A staff user, by normalised e-mail.
    Staff,
    /// A log-in session, by id.
    Session,
    /// A refresh token, by its SHA-256.
    Refresh,
    /// An API key, by key id.
    ApiKey,
    /// An audit log entry, by time-ordered id.
    Audit,
    /// A server secret (the access-token signing key), by name.
    Secret,
    /// Staff notes on an order, by order id.
    Notes,
    /// An order a saga step gave up on, by order id: the staff's "needs attention" queue.
    Escalation,
    /// One message about one event to one recipient, sent or failed, by its dedupe key
    /// (`{event id}/{template}/{recipient}`): what makes a redelivered event send nothing twice.
    Notification,
    /// A notification that ran out of retries, by the same key, for staff to see and retry.
    NotificationFailure,
    /// A customer's notification preferences (marketing opt-out, SMS number), by customer id.
    NotificationPreferences,
    /// What a case looked like when staff handed it to engineering, frozen, by order id.
    CaseBundle,
    /// One term a customer is found by in the staff's search, by `{term}\u{1f}{customer id}`.
    SearchTerm,
}

impl std::fmt::Display for DocKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DocKind {
    /// The name stored with the document.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Cart => "cart",
            DocKind::Rate => "rate",
            DocKind::Account => "account",
            DocKind::Staff => "staff",
            DocKind::Session => "session",
            DocKind::Refresh => "refresh",
            DocKind::ApiKey => "api-key",
            DocKind::Audit => "audit",
            DocKind::Secret => "secret",
            DocKind::Notes => "notes",
            DocKind::Escalation => "escalation",
            DocKind::Notification => "notification",
            DocKind::NotificationFailure => "notification-failure",
            DocKind::NotificationPreferences => "notification-preferences",
            DocKind::CaseBundle => "case-bundle",
            DocKind::SearchTerm => "search-term",
        }
    }
}

/// A document the use cases keep whole (JSON text), by kind and key, with a version for
/// optimistic concurrency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// What it is.
    pub kind: DocKind,
    /// Its key within the kind.
    pub key: String,
    /// 1 when new; +1 on every write.
    pub version: u32,
    /// The JSON text.
    pub body: String,
}

/// Documents read and written whole, by [`DocKind`] and key, each with a version for
/// optimistic concurrency: carts, exchange rates, accounts, sessions, staff users, API keys,
/// notes, escalations, notification records and the rest [`DocKind`] lists.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// One document.
    async fn document(&self, kind: DocKind, key: &str) -> Result<Option<Document>, StoreError>;
    /// Writes `doc`. With `expected_version: None` it must be new ([`StoreError::AlreadyExists`]
    /// otherwise); with `Some(v)` the stored one must still be at version `v`
    /// ([`StoreError::Conflict`], or [`StoreError::NotFound`] if there is none).
    async fn put_document(
        &self,
        doc: &Document,
        expected_version: Option<u32>,
    ) -> Result<(), StoreError>;
    /// Documents of one kind in key order, starting after `after`, at most `limit` (a store may
    /// return fewer; only an empty answer means there are no more).
    async fn documents(
        &self,
        kind: DocKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>, StoreError>;
}

/// Whether a store can serve now: what `/readyz` asks.
#[async_trait]
pub trait Readiness: Send + Sync {
    /// `Ok` when the store answers and can take writes.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] saying why not: the database cannot be reached, its disk is
    /// full, a probe write failed.
    async fn check_ready(&self) -> Result<(), StoreError>;
}

/// Every storage port: what a backend provides.
pub trait Store:
    CatalogStore + OrderStore + StockStore + UnitOfWork + JobQueue + DocumentStore + Readiness
{
}
impl<T: CatalogStore + OrderStore + StockStore + UnitOfWork + JobQueue + DocumentStore + Readiness>
    Store for T
{
}
