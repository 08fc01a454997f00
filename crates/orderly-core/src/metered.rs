//! Storage calls counted and timed: a [`Store`] that wraps another and keeps, per port method,
//! how often it was called, how often it failed and how long it took. `GET /metrics` shows the
//! figures; tests use them to prove that a request's storage work does not grow with its result.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use orderly_domain::{
    Customer, CustomerId, Event, Order, OrderId, OrderStatus, Product, ProductId, StockAdjustment,
    StockLevel, Timestamp,
};

use crate::ports::{
    CatalogStore, Commit, CommitError, DocKind, Document, DocumentStore, IdempotencyRecord, Job,
    JobQueue, OrderFilter, OrderStore, Page, PageRequest, Readiness, StockStore, Store, StoreError,
    UnitOfWork, WaitingJob,
};

/// The storage operations counted: one per port method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum StorageOp {
    CreateProduct,
    UpdateProduct,
    Product,
    Products,
    ListProducts,
    CreateCustomer,
    Customer,
    Customers,
    Order,
    ListOrders,
    CountOrders,
    OrdersByIdPrefix,
    OrderEvents,
    Idempotency,
    Stock,
    Adjustments,
    Commit,
    ClaimJobs,
    RetryJob,
    DeleteJob,
    ReleaseLeases,
    ReleaseClaim,
    NextDue,
    PendingJobs,
    WaitingJobs,
    HurryJob,
    CheckReady,
    Document,
    PutDocument,
    Documents,
}

impl StorageOp {
    /// Every operation, in the order the metrics list them.
    pub const ALL: [StorageOp; 30] = [
        StorageOp::CreateProduct,
        StorageOp::UpdateProduct,
        StorageOp::Product,
        StorageOp::Products,
        StorageOp::ListProducts,
        StorageOp::CreateCustomer,
        StorageOp::Customer,
        StorageOp::Customers,
        StorageOp::Order,
        StorageOp::ListOrders,
        StorageOp::CountOrders,
        StorageOp::OrdersByIdPrefix,
        StorageOp::OrderEvents,
        StorageOp::Idempotency,
        StorageOp::Stock,
        StorageOp::Adjustments,
        StorageOp::Commit,
        StorageOp::ClaimJobs,
        StorageOp::RetryJob,
        StorageOp::DeleteJob,
        StorageOp::ReleaseLeases,
        StorageOp::ReleaseClaim,
        StorageOp::NextDue,
        StorageOp::PendingJobs,
        StorageOp::WaitingJobs,
        StorageOp::HurryJob,
        StorageOp::CheckReady,
        StorageOp::Document,
        StorageOp::PutDocument,
        StorageOp::Documents,
    ];

    /// The label value in the metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StorageOp::CreateProduct => "create_product",
            StorageOp::UpdateProduct => "update_product",
            StorageOp::Product => "product",
            StorageOp::Products => "products",
            StorageOp::ListProducts => "list_products",
            StorageOp::CreateCustomer => "create_customer",
            StorageOp::Customer => "customer",
            StorageOp::Customers => "customers",
            StorageOp::Order => "order",
            StorageOp::ListOrders => "list_orders",
            StorageOp::CountOrders => "count_orders",
            StorageOp::OrdersByIdPrefix => "orders_by_id_prefix",
            StorageOp::OrderEvents => "order_events",
            StorageOp::Idempotency => "idempotency",
            StorageOp::Stock => "stock",
            StorageOp::Adjustments => "adjustments",
            StorageOp::Commit => "commit",
            StorageOp::ClaimJobs => "claim_jobs",
            StorageOp::RetryJob => "retry_job",
            StorageOp::DeleteJob => "delete_job",
            StorageOp::ReleaseLeases => "release_leases",
            StorageOp::ReleaseClaim => "release_claim",
            StorageOp::NextDue => "next_due",
            StorageOp::PendingJobs => "pending_jobs",
            StorageOp::WaitingJobs => "waiting_jobs",
            StorageOp::HurryJob => "hurry_job",
            StorageOp::CheckReady => "check_ready",
            StorageOp::Document => "document",
            StorageOp::PutDocument => "put_document",
            StorageOp::Documents => "documents",
        }
    }

    /// True for the operations a request for data makes (not the saga's queue, not writes).
    #[must_use]
    pub fn is_read(self) -> bool {
        matches!(
            self,
            StorageOp::Product
                | StorageOp::Products
                | StorageOp::ListProducts
                | StorageOp::Customer
                | StorageOp::Customers
                | StorageOp::Order
                | StorageOp::ListOrders
                | StorageOp::CountOrders
                | StorageOp::OrdersByIdPrefix
                | StorageOp::WaitingJobs
                | StorageOp::OrderEvents
                | StorageOp::Idempotency
                | StorageOp::Stock
                | StorageOp::Adjustments
                | StorageOp::Document
                | StorageOp::Documents
        )
    }
}

#[derive(Default)]
struct Counter {
    calls: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

/// Counters for every [`StorageOp`]; cheap enough to keep on in production.
#[derive(Default)]
pub struct StorageMetrics {
    counters: [Counter; StorageOp::ALL.len()],
}

/// One operation's figures at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpFigures {
    /// The operation.
    pub op: StorageOp,
    /// Calls made.
    pub calls: u64,
    /// Calls that failed (including refused commits).
    pub errors: u64,
    /// Time spent in them, in seconds.
    pub seconds: f64,
}

impl StorageMetrics {
    fn record(&self, op: StorageOp, started: Instant, failed: bool) {
        let c = &self.counters[op as usize];
        c.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        c.micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The figures of every operation.
    #[must_use]
    pub fn snapshot(&self) -> Vec<OpFigures> {
        StorageOp::ALL
            .iter()
            .map(|&op| {
                let c = &self.counters[op as usize];
                #[allow(clippy::cast_precision_loss)]
                let seconds = c.micros.load(Ordering::Relaxed) as f64 / 1e6;
                OpFigures {
                    op,
                    calls: c.calls.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    seconds,
                }
            })
            .collect()
    }

    /// The figures in the Prometheus text format.
    #[must_use]
    pub fn render_prometheus(&self) -> String {
        use std::fmt::Write as _;
        let figures = self.snapshot();
        let mut out = String::new();
        let series: [Series; 3] = [
            (
                "orderly_storage_calls_total",
                "counter",
                "Storage calls, by port operation.",
                |f| f.calls.to_string(),
            ),
            (
                "orderly_storage_errors_total",
                "counter",
                "Storage calls that failed or were refused, by port operation.",
                |f| f.errors.to_string(),
            ),
            (
                "orderly_storage_seconds_total",
                "counter",
                "Time spent in storage calls, by port operation.",
                |f| format!("{:.6}", f.seconds),
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for f in &figures {
                let _ = writeln!(out, "{name}{{op=\"{}\"}} {}", f.op.as_str(), value(f));
            }
        }
        out
    }
}

/// One metric family: name, kind, help and how to read its value off an operation's figures.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&OpFigures) -> String,
);

/// A [`Store`] that counts and times every call to the store it wraps.
pub struct Metered {
    inner: Arc<dyn Store>,
    metrics: Arc<StorageMetrics>,
}

impl Metered {
    /// Wraps `inner`, recording into `metrics`.
    #[must_use]
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<StorageMetrics>) -> Self {
        Metered { inner, metrics }
    }
}

/// Runs one call of the inner store and records it.
macro_rules! counted {
    ($self:ident, $op:ident, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self
            .metrics
            .record(StorageOp::$op, started, result.is_err());
        result
    }};
}

#[async_trait]
impl CatalogStore for Metered {
    async fn create_product(
        &self,
        product: &Product,
        initial_stock: i64,
    ) -> Result<(), StoreError> {
        counted!(
            self,
            CreateProduct,
            self.inner.create_product(product, initial_stock)
        )
    }
    async fn update_product(
        &self,
        product: &Product,
        expected_version: u32,
    ) -> Result<(), StoreError> {
        counted!(
            self,
            UpdateProduct,
            self.inner.update_product(product, expected_version)
        )
    }
    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        counted!(self, Product, self.inner.product(id))
    }
    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        counted!(self, Products, self.inner.products(ids))
    }
    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, StoreError> {
        counted!(self, ListProducts, self.inner.list_products(page))
    }
    async fn create_customer(&self, customer: &Customer) -> Result<(), StoreError> {
        counted!(self, CreateCustomer, self.inner.create_customer(customer))
    }
    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        counted!(self, Customer, self.inner.customer(id))
    }
    async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, StoreError> {
        counted!(self, Customers, self.inner.customers(ids))
    }
}

#[async_trait]
impl OrderStore for Metered {
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        counted!(self, Order, self.inner.order(id))
    }
    async fn list_orders(
        &self,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Page<Order>, StoreError> {
        counted!(self, ListOrders, self.inner.list_orders(filter, page))
    }
    async fn count_orders(&self, since: Timestamp) -> Result<Vec<(OrderStatus, u64)>, StoreError> {
        counted!(self, CountOrders, self.inner.count_orders(since))
    }
    async fn orders_with_id_prefix(
        &self,
        prefix: &orderly_domain::search::OrderIdPrefix,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        counted!(
            self,
            OrdersByIdPrefix,
            self.inner.orders_with_id_prefix(prefix, limit)
        )
    }
    async fn order_events(&self, id: OrderId) -> Result<Vec<Event>, StoreError> {
        counted!(self, OrderEvents, self.inner.order_events(id))
    }
    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        counted!(self, Idempotency, self.inner.idempotency(key))
    }
}

#[async_trait]
impl StockStore for Metered {
    async fn stock(&self, id: &ProductId) -> Result<Option<StockLevel>, StoreError> {
        counted!(self, Stock, self.inner.stock(id))
    }
    async fn adjustments(
        &self,
        id: &ProductId,
        limit: u32,
    ) -> Result<Vec<StockAdjustment>, StoreError> {
        counted!(self, Adjustments, self.inner.adjustments(id, limit))
    }
}

#[async_trait]
impl DocumentStore for Metered {
    async fn document(&self, kind: DocKind, key: &str) -> Result<Option<Document>, StoreError> {
        counted!(self, Document, self.inner.document(kind, key))
    }
    async fn put_document(
        &self,
        doc: &Document,
        expected_version: Option<u32>,
    ) -> Result<(), StoreError> {
        counted!(
            self,
            PutDocument,
            self.inner.put_document(doc, expected_version)
        )
    }
    async fn documents(
        &self,
        kind: DocKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>, StoreError> {
        counted!(self, Documents, self.inner.documents(kind, after, limit))
    }
}

#[async_trait]
impl UnitOfWork for Metered {
    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        counted!(self, Commit, self.inner.commit(commit))
    }
    async fn import_orders(&self, orders: &[Order]) -> Result<(), StoreError> {
        counted!(self, Commit, self.inner.import_orders(orders))
    }
}

#[async_trait]
impl JobQueue for Metered {
    async fn claim_jobs(
        &self,
        now: Timestamp,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError> {
        counted!(self, ClaimJobs, self.inner.claim_jobs(now, limit, lease_ms))
    }
    async fn retry_job(
        &self,
        job: &Job,
        attempts: u32,
        next_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        counted!(
            self,
            RetryJob,
            self.inner.retry_job(job, attempts, next_at, error)
        )
    }
    async fn delete_job(&self, job: &Job) -> Result<(), StoreError> {
        counted!(self, DeleteJob, self.inner.delete_job(job))
    }
    async fn release_leases(&self) -> Result<u64, StoreError> {
        counted!(self, ReleaseLeases, self.inner.release_leases())
    }
    async fn release_claim(&self, lease: Timestamp) -> Result<u64, StoreError> {
        counted!(self, ReleaseClaim, self.inner.release_claim(lease))
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        counted!(self, NextDue, self.inner.next_due())
    }
    async fn waiting_jobs(
        &self,
        order: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<WaitingJob>, StoreError> {
        counted!(self, WaitingJobs, self.inner.waiting_jobs(order, limit))
    }
    async fn hurry_job(
        &self,
        order: OrderId,
        job_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        counted!(self, HurryJob, self.inner.hurry_job(order, job_id, now))
    }
    async fn pending_jobs(&self) -> Result<u64, StoreError> {
        counted!(self, PendingJobs, self.inner.pending_jobs())
    }
}

#[async_trait]
impl Readiness for Metered {
    async fn check_ready(&self) -> Result<(), StoreError> {
        counted!(self, CheckReady, self.inner.check_ready())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;

    #[tokio::test]
    async fn every_call_is_counted_once_and_failures_apart() {
        let metrics = Arc::new(StorageMetrics::default());
        let store = Metered::new(Arc::new(MemoryStore::default()), Arc::clone(&metrics));
        let id = ProductId::parse("001").unwrap();
        store.product(&id).await.unwrap();
        store.products(&[id.clone(), id]).await.unwrap();
        store.pending_jobs().await.unwrap();
        let figures = metrics.snapshot();
        let calls = |op: StorageOp| figures.iter().find(|f| f.op == op).unwrap().calls;
        assert_eq!(calls(StorageOp::Product), 1);
        assert_eq!(calls(StorageOp::Products), 1);
        assert_eq!(calls(StorageOp::PendingJobs), 1);
        assert_eq!(calls(StorageOp::Order), 0);
        let text = metrics.render_prometheus();
        assert!(text.contains("orderly_storage_calls_total{op=\"products\"} 1\n"));
        assert!(text.contains("# TYPE orderly_storage_errors_total counter"));
    }
}
