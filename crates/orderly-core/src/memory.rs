//! An in-memory store: every port, no durability. For fast tests of the use cases and the saga,
//! and as the reference the contract suite holds the real adapters to.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use orderly_domain::{
    Customer, CustomerId, Event, EventId, Order, OrderId, OrderStatus, Product, ProductId,
    StockAdjustment, StockLevel, Timestamp,
};

use crate::ports::{
    CatalogStore, Commit, CommitError, Consumer, DocKind, Document, DocumentStore,
    IdempotencyRecord, Job, JobQueue, OrderFilter, OrderStore, OrderWrite, Page, PageRequest,
    Readiness, StockStore, StoreError, UnitOfWork, WaitingJob,
};

#[derive(Default)]
struct State {
    products: BTreeMap<ProductId, Product>,
    customers: HashMap<CustomerId, Customer>,
    stock: HashMap<ProductId, StockLevel>,
    adjustments: Vec<StockAdjustment>,
    /// Orders by insertion sequence, for newest-first listing.
    orders: BTreeMap<i64, Order>,
    order_seq: HashMap<OrderId, i64>,
    events: Vec<Event>,
    idempotency: HashMap<String, IdempotencyRecord>,
    handled: HashSet<(Consumer, EventId)>,
    jobs: BTreeMap<i64, QueuedJob>,
    next_seq: i64,
    documents: BTreeMap<(&'static str, String), Document>,
}

struct QueuedJob {
    job: Job,
    next_at: Timestamp,
    lease_until: Option<Timestamp>,
}

/// Every storage port in a mutex.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }
}

fn cursor_of(seq: i64) -> String {
    format!("m{seq}")
}

fn parse_cursor(cursor: Option<&String>) -> Result<Option<i64>, StoreError> {
    cursor
        .map(|c| {
            c.strip_prefix('m')
                .and_then(|n| n.parse().ok())
                .ok_or(StoreError::InvalidCursor)
        })
        .transpose()
}

#[async_trait]
impl CatalogStore for MemoryStore {
    async fn create_product(
        &self,
        product: &Product,
        initial_stock: i64,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if s.products.contains_key(&product.id) {
            return Err(StoreError::AlreadyExists);
        }
        s.products.insert(product.id.clone(), product.clone());
        s.stock.insert(
            product.id.clone(),
            StockLevel {
                available: initial_stock,
                reserved: 0,
            },
        );
        Ok(())
    }

    async fn update_product(
        &self,
        product: &Product,
        expected_version: u32,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let slot = s
            .products
            .get_mut(&product.id)
            .ok_or(StoreError::NotFound)?;
        if slot.version != expected_version {
            return Err(StoreError::Conflict);
        }
        *slot = product.clone();
        Ok(())
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        Ok(self.lock()?.products.get(id).cloned())
    }

    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        let s = self.lock()?;
        let unique: HashSet<&ProductId> = ids.iter().collect();
        Ok(unique
            .into_iter()
            .filter_map(|id| s.products.get(id).cloned())
            .collect())
    }

    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, StoreError> {
        let s = self.lock()?;
        let after = page
            .cursor
            .as_ref()
            .map(|c| {
                c.strip_prefix('p')
                    .map(str::to_owned)
                    .ok_or(StoreError::InvalidCursor)
            })
            .transpose()?;
        let mut items: Vec<Product> = s
            .products
            .values()
            .filter(|p| after.as_deref().is_none_or(|a| p.id.as_str() > a))
            .take(page.limit as usize + 1)
            .cloned()
            .collect();
        let next_cursor = if items.len() > page.limit as usize {
            items.truncate(page.limit as usize);
            items.last().map(|p| format!("p{}", p.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn create_customer(&self, customer: &Customer) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if s.customers.contains_key(&customer.id) {
            return Err(StoreError::AlreadyExists);
        }
        s.customers.insert(customer.id.clone(), customer.clone());
        Ok(())
    }

    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        Ok(self.lock()?.customers.get(id).cloned())
    }

    async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, StoreError> {
        let s = self.lock()?;
        let unique: HashSet<&CustomerId> = ids.iter().collect();
        Ok(unique
            .into_iter()
            .filter_map(|id| s.customers.get(id).cloned())
            .collect())
    }
}

#[async_trait]
impl DocumentStore for MemoryStore {
    async fn document(&self, kind: DocKind, key: &str) -> Result<Option<Document>, StoreError> {
        Ok(self
            .lock()?
            .documents
            .get(&(kind.as_str(), key.to_owned()))
            .cloned())
    }

    async fn put_document(
        &self,
        doc: &Document,
        expected_version: Option<u32>,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let id = (doc.kind.as_str(), doc.key.clone());
        match (s.documents.get(&id), expected_version) {
            (Some(_), None) => return Err(StoreError::AlreadyExists),
            (None, Some(_)) => return Err(StoreError::NotFound),
            (Some(stored), Some(v)) if stored.version != v => return Err(StoreError::Conflict),
            _ => {}
        }
        s.documents.insert(id, doc.clone());
        Ok(())
    }

    async fn documents(
        &self,
        kind: DocKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>, StoreError> {
        let s = self.lock()?;
        let start = (kind.as_str(), after.unwrap_or_default().to_owned());
        Ok(s.documents
            .range(start..)
            .take_while(|((k, _), _)| *k == kind.as_str())
            .filter(|((_, key), _)| after.is_none_or(|a| key.as_str() > a))
            .take(limit as usize)
            .map(|(_, d)| d.clone())
            .collect())
    }
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let s = self.lock()?;
        Ok(s.order_seq
            .get(&id)
            .and_then(|seq| s.orders.get(seq))
            .cloned())
    }

    async fn orders_with_id_prefix(
        &self,
        prefix: &orderly_domain::search::OrderIdPrefix,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let s = self.lock()?;
        let mut found: Vec<Order> = s
            .orders
            .values()
            .filter(|o| o.id.to_string().starts_with(prefix.as_str()))
            .cloned()
            .collect();
        found.sort_by_key(|o| o.id.to_string());
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn count_orders(&self, since: Timestamp) -> Result<Vec<(OrderStatus, u64)>, StoreError> {
        let s = self.lock()?;
        Ok(OrderStatus::ALL
            .into_iter()
            .map(|status| {
                let n = s
                    .orders
                    .values()
                    .filter(|o| o.status == status && o.created_at >= since)
                    .count();
                (status, n as u64)
            })
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    async fn list_orders(
        &self,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Page<Order>, StoreError> {
        let s = self.lock()?;
        let before = parse_cursor(page.cursor.as_ref())?.unwrap_or(i64::MAX);
        let mut found: Vec<(i64, Order)> = s
            .orders
            .range(..before)
            .rev()
            .filter(|(_, o)| filter.status.is_none_or(|st| o.status == st))
            .filter(|(_, o)| {
                filter
                    .customer_id
                    .as_ref()
                    .is_none_or(|c| &o.customer_id == c)
            })
            .take(page.limit as usize + 1)
            .map(|(seq, o)| (*seq, o.clone()))
            .collect();
        let next_cursor = if found.len() > page.limit as usize {
            found.truncate(page.limit as usize);
            found.last().map(|(seq, _)| cursor_of(*seq))
        } else {
            None
        };
        Ok(Page {
            items: found.into_iter().map(|(_, o)| o).collect(),
            next_cursor,
        })
    }

    async fn order_events(&self, id: OrderId) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .lock()?
            .events
            .iter()
            .filter(|e| e.order_id == id)
            .cloned()
            .collect())
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.lock()?.idempotency.get(key).cloned())
    }
}

#[async_trait]
impl StockStore for MemoryStore {
    async fn stock(&self, id: &ProductId) -> Result<Option<StockLevel>, StoreError> {
        Ok(self.lock()?.stock.get(id).copied())
    }

    async fn adjustments(
        &self,
        id: &ProductId,
        limit: u32,
    ) -> Result<Vec<StockAdjustment>, StoreError> {
        let s = self.lock()?;
        Ok(s.adjustments
            .iter()
            .rev()
            .filter(|a| &a.product_id == id)
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl UnitOfWork for MemoryStore {
    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let mut guard = self.lock()?;
        let s = &mut *guard;
        // Check every condition before changing anything: all or nothing.
        if let Some(h) = &commit.handled
            && s.handled.contains(&(h.consumer, h.event_id))
        {
            return Err(CommitError::AlreadyHandled);
        }
        if let Some(rec) = &commit.idempotency
            && s.idempotency.contains_key(&rec.key)
        {
            return Err(CommitError::IdempotencyKeyTaken);
        }
        match &commit.order {
            Some(OrderWrite::Insert(o)) if s.order_seq.contains_key(&o.id) => {
                return Err(CommitError::Store(StoreError::AlreadyExists));
            }
            Some(OrderWrite::Update {
                order,
                expected_version,
            }) => {
                let current = s.order_seq.get(&order.id).and_then(|seq| s.orders.get(seq));
                if current.is_none_or(|c| c.version != *expected_version) {
                    return Err(CommitError::VersionConflict(order.id));
                }
            }
            _ => {}
        }
        for w in &commit.documents {
            let stored = s
                .documents
                .get(&(w.document.kind.as_str(), w.document.key.clone()));
            if stored.map(|d| d.version) != w.expected_version {
                return Err(CommitError::DocumentChanged(
                    w.document.kind,
                    w.document.key.clone(),
                ));
            }
        }
        let mut new_levels = Vec::with_capacity(commit.stock.len());
        for m in &commit.stock {
            let level = s
                .stock
                .get(&m.product_id)
                .ok_or_else(|| CommitError::UnknownProduct(m.product_id.clone()))?;
            let next = StockLevel {
                available: level.available + m.available,
                reserved: level.reserved + m.reserved,
            };
            if next.available < 0 || next.reserved < 0 {
                return Err(CommitError::InsufficientStock(m.product_id.clone()));
            }
            new_levels.push((m.product_id.clone(), next));
        }
        // Apply.
        for (id, level) in new_levels {
            s.stock.insert(id, level);
        }
        if let Some(a) = commit.adjustment {
            s.adjustments.push(a);
        }
        match commit.order {
            Some(OrderWrite::Insert(order)) => {
                s.next_seq += 1;
                s.order_seq.insert(order.id, s.next_seq);
                s.orders.insert(s.next_seq, order);
            }
            Some(OrderWrite::Update { order, .. }) => {
                if let Some(seq) = s.order_seq.get(&order.id) {
                    s.orders.insert(*seq, order);
                }
            }
            None => {}
        }
        if let Some(rec) = commit.idempotency {
            s.idempotency.insert(rec.key.clone(), rec);
        }
        for w in commit.documents {
            s.documents.insert(
                (w.document.kind.as_str(), w.document.key.clone()),
                w.document,
            );
        }
        if let Some(h) = commit.handled {
            s.handled.insert((h.consumer, h.event_id));
            s.jobs.remove(&h.job_id);
        }
        for out in commit.events {
            for consumer in out.consumers {
                s.next_seq += 1;
                let id = s.next_seq;
                s.jobs.insert(
                    id,
                    QueuedJob {
                        job: Job {
                            id,
                            consumer,
                            event: out.event.clone(),
                            attempts: 0,
                            last_error: None,
                            lease: None,
                        },
                        next_at: Timestamp::from_millis(0),
                        lease_until: None,
                    },
                );
            }
            s.events.push(out.event);
        }
        Ok(())
    }
}

#[async_trait]
impl Readiness for MemoryStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        self.lock().map(|_| ())
    }
}

#[async_trait]
impl JobQueue for MemoryStore {
    async fn claim_jobs(
        &self,
        now: Timestamp,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let mut s = self.lock()?;
        let mut seen_orders = HashSet::new();
        let mut claimed = Vec::new();
        for queued in s.jobs.values_mut() {
            // Only the first outstanding job of each order in each lane may run.
            if !seen_orders.insert((queued.job.event.order_id, queued.job.consumer.lane())) {
                continue;
            }
            let leased = queued.lease_until.is_some_and(|l| l > now);
            if queued.next_at <= now && !leased && claimed.len() < limit as usize {
                queued.lease_until = Some(now.plus_millis(lease_ms));
                claimed.push(Job {
                    lease: queued.lease_until,
                    ..queued.job.clone()
                });
            }
        }
        Ok(claimed)
    }

    async fn retry_job(
        &self,
        job: &Job,
        attempts: u32,
        next_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if let Some(q) = s.jobs.get_mut(&job.id)
            && holds(job, q)
        {
            q.job.attempts = attempts;
            q.job.last_error = Some(error.to_owned());
            q.next_at = next_at;
            q.lease_until = None;
        }
        Ok(())
    }

    async fn delete_job(&self, job: &Job) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        if s.jobs.get(&job.id).is_some_and(|q| holds(job, q)) {
            s.jobs.remove(&job.id);
        }
        Ok(())
    }

    async fn release_leases(&self) -> Result<u64, StoreError> {
        let mut s = self.lock()?;
        let mut n = 0;
        for q in s.jobs.values_mut() {
            if q.lease_until.take().is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn release_claim(&self, lease: Timestamp) -> Result<u64, StoreError> {
        let mut s = self.lock()?;
        let mut n = 0;
        for q in s.jobs.values_mut() {
            if q.lease_until == Some(lease) {
                q.lease_until = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let s = self.lock()?;
        let mut seen_orders = HashSet::new();
        Ok(s.jobs
            .values()
            .filter(|q| seen_orders.insert((q.job.event.order_id, q.job.consumer.lane())))
            .map(|q| q.next_at.max(q.lease_until.unwrap_or(q.next_at)))
            .min())
    }

    async fn pending_jobs(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.jobs.len() as u64)
    }

    async fn waiting_jobs(
        &self,
        order: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<WaitingJob>, StoreError> {
        let s = self.lock()?;
        let mut waiting: Vec<WaitingJob> = s
            .jobs
            .values()
            .filter(|q| q.job.attempts > 0 && order.is_none_or(|o| q.job.event.order_id == o))
            .map(|q| WaitingJob {
                job: Job {
                    lease: None,
                    ..q.job.clone()
                },
                due: q.next_at,
                running: q.lease_until.is_some(),
            })
            .collect();
        waiting.sort_by_key(|w| (w.due, w.job.id));
        waiting.truncate(limit as usize);
        Ok(waiting)
    }

    async fn hurry_job(
        &self,
        order: OrderId,
        job_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock()?;
        let Some(q) = s.jobs.get_mut(&job_id) else {
            return Ok(false);
        };
        let leased = q.lease_until.is_some_and(|l| l > now);
        if q.job.event.order_id != order || q.job.attempts == 0 || leased {
            return Ok(false);
        }
        q.next_at = q.next_at.min(now);
        q.lease_until = None;
        Ok(true)
    }
}

/// True if `job`'s claim still holds the queued job's lease (or was not a claim).
fn holds(job: &Job, queued: &QueuedJob) -> bool {
    job.lease.is_none() || job.lease == queued.lease_until
}
