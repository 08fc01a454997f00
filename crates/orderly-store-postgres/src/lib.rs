//! Orderly's cluster storage: every storage port on PostgreSQL, shared by many nodes.
//!
//! # Layout
//! - [`PgStore::open`]: a pool with statement and lock timeouts, and the embedded migrations
//!   (sqlx takes an advisory lock, so several nodes may start at once).
//! - `impl UnitOfWork`: one transaction per [`Commit`], the same rules as every backend:
//!   a version-checked order write, stock moves refused below zero (row locks serialise
//!   concurrent buyers, across nodes too), outbox events and their jobs, the idempotency key
//!   and the handled-event mark. Serialization failures and deadlocks are retried with backoff.
//! - `impl JobQueue`: nodes claim the first outstanding job of each order with
//!   `FOR UPDATE SKIP LOCKED` and a lease; a dead node's leases run out and another node takes
//!   its work.
//! - [`sql`]: the hot queries by name, so a test can check their plans.
//! - [`testing`]: a fresh schema per test on a real server.
#![forbid(unsafe_code)]

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use orderly_core::ports::{
    CatalogStore, Commit, CommitError, Consumer, DocKind, Document, DocumentStore, DocumentWrite,
    IdempotencyRecord, Job, JobQueue, OrderFilter, OrderStore, OrderWrite, Page, PageRequest,
    Readiness, StockStore, StoreError, UnitOfWork, WaitingJob,
};
use orderly_core::storage::{self, decode, encode};
use orderly_domain::{
    Customer, CustomerId, Event, Order, OrderId, OrderStatus, Product, ProductId, StockAdjustment,
    StockLevel, Timestamp,
};
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use uuid::Uuid;

pub mod testing;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How to connect.
#[derive(Clone, Debug)]
pub struct PgSettings {
    /// `postgres://user@host:port/database` (libpq-style parameters such as
    /// `?options=-c search_path=…` are honoured).
    pub url: String,
    /// Connections per node.
    pub pool_size: u32,
    /// Longest a statement may run before the database cancels it.
    pub statement_timeout: Duration,
    /// Longest a statement may wait for a row lock.
    pub lock_timeout: Duration,
    /// Longest a caller waits for a pool connection (including connecting a new one) before
    /// the call fails as unavailable: while the server cannot be reached, requests are refused
    /// in about this time instead of hanging.
    pub acquire_timeout: Duration,
}

impl PgSettings {
    /// Defaults for a URL: 16 connections, 5 s statements, 2 s lock waits, 1 s to get a
    /// connection.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        PgSettings {
            url: url.into(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(2),
            acquire_timeout: Duration::from_secs(1),
        }
    }
}

/// Every storage port on PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Serialization failure or deadlock: the transaction did nothing and may simply run again.
fn is_retryable(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40001" || code == "40P01")
}

/// Hides the password of a URL for messages.
#[must_use]
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PgStore {
    /// Connects and migrates.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] naming what failed (bad URL, unreachable server, migration).
    pub async fn open(settings: &PgSettings) -> Result<Self, StoreError> {
        let shown = redact(&settings.url);
        let options = PgConnectOptions::from_str(&settings.url)
            .map_err(|e| StoreError::Unavailable(format!("bad database URL {shown}: {e}")))?
            .application_name("orderly")
            .options([
                (
                    "statement_timeout",
                    format!("{}ms", settings.statement_timeout.as_millis()),
                ),
                (
                    "lock_timeout",
                    format!("{}ms", settings.lock_timeout.as_millis()),
                ),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect to {shown}: {e}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrating {shown} failed: {e}")))?;
        Ok(PgStore { pool })
    }

    /// Applies the migrations only; returns how many the schema has.
    ///
    /// # Errors
    /// As for [`PgStore::open`].
    pub async fn migrate(settings: &PgSettings) -> Result<usize, StoreError> {
        let store = Self::open(settings).await?;
        store.close().await;
        Ok(MIGRATOR.iter().count())
    }

    /// The pool, for tests that look at plans.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn doc<T: serde::de::DeserializeOwned>(
        &self,
        sql: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|(doc,)| decode(&doc)).transpose()
    }

    /// The documents whose keys are in `keys` (missing keys left out).
    async fn docs<T: serde::de::DeserializeOwned>(
        &self,
        sql: &'static str,
        keys: Vec<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(sql)
            .bind(&keys)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.into_iter().map(|(doc,)| decode(&doc)).collect()
    }
}

/// The hot queries, named so that a test can look at their plans.
pub mod sql {
    /// One order.
    pub const ORDER_BY_ID: &str = "SELECT doc FROM orders WHERE id = $1";
    /// Newest orders.
    pub const ORDERS_NEWEST: &str =
        "SELECT seq, doc FROM orders WHERE seq < $1 ORDER BY seq DESC LIMIT $2";
    /// Newest orders in one status.
    pub const ORDERS_BY_STATUS: &str =
        "SELECT seq, doc FROM orders WHERE status = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3";
    /// Orders whose id starts with a prefix, lowest first (the search box).
    pub const ORDERS_BY_ID_PREFIX: &str =
        "SELECT doc FROM orders WHERE id BETWEEN $1 AND $2 ORDER BY id LIMIT $3";
    /// How many orders of one status were placed at or after a moment (the dashboard).
    pub const COUNT_ORDERS_SINCE: &str =
        "SELECT COUNT(*) FROM orders WHERE status = $1 AND created_at >= $2";
    /// A customer's newest orders.
    pub const ORDERS_BY_CUSTOMER: &str = "SELECT seq, doc FROM orders \
         WHERE customer_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3";
    /// A customer's newest orders in one status.
    pub const ORDERS_BY_CUSTOMER_STATUS: &str = "SELECT seq, doc FROM orders \
         WHERE customer_id = $1 AND status = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4";
    /// An order's events.
    pub const EVENTS_OF_ORDER: &str = "SELECT payload FROM events WHERE order_id = $1 ORDER BY seq";
    /// Claims due jobs: the first outstanding job of each order in each lane, not leased by
    /// another node.
    pub const CLAIM_JOBS: &str = "WITH picked AS ( \
           SELECT j.id FROM jobs j \
           WHERE j.next_at <= $1 AND (j.lease_until IS NULL OR j.lease_until <= $1) \
             AND NOT EXISTS (SELECT 1 FROM jobs p WHERE p.order_id = j.order_id AND p.lane = j.lane AND p.id < j.id) \
           ORDER BY j.next_at, j.id LIMIT $2 \
           FOR UPDATE OF j SKIP LOCKED) \
         UPDATE jobs SET lease_until = $1 + $3 \
         FROM events e \
         WHERE jobs.id = ANY(ARRAY(SELECT id FROM picked)) AND e.seq = jobs.event_seq \
         RETURNING jobs.id, jobs.consumer, jobs.attempts, jobs.last_error, e.payload";
    /// Jobs waiting for their next try after a failure, soonest first (the staff panel).
    pub const WAITING_JOBS: &str = "SELECT j.id, j.consumer, j.attempts, j.last_error, j.next_at, \
         j.lease_until, e.payload FROM jobs j JOIN events e ON e.seq = j.event_seq \
         WHERE j.attempts > 0 ORDER BY j.next_at, j.id LIMIT $1";
    /// One order's jobs waiting for their next try after a failure.
    pub const WAITING_JOBS_OF_ORDER: &str = "SELECT j.id, j.consumer, j.attempts, j.last_error, \
         j.next_at, j.lease_until, e.payload FROM jobs j JOIN events e ON e.seq = j.event_seq \
         WHERE j.order_id = $2 AND j.attempts > 0 ORDER BY j.next_at, j.id LIMIT $1";
}

#[async_trait]
impl CatalogStore for PgStore {
    async fn create_product(
        &self,
        product: &Product,
        initial_stock: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let inserted = sqlx::query("INSERT INTO products (id, version, doc) VALUES ($1, $2, $3)")
            .bind(product.id.as_str())
            .bind(i64::from(product.version))
            .bind(encode(product)?)
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists),
            other => other.map_err(unavailable)?,
        };
        sqlx::query("INSERT INTO stock (product_id, available, reserved) VALUES ($1, $2, 0)")
            .bind(product.id.as_str())
            .bind(initial_stock)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn update_product(
        &self,
        product: &Product,
        expected_version: u32,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE products SET doc = $1, version = $2 WHERE id = $3 AND version = $4",
        )
        .bind(encode(product)?)
        .bind(i64::from(product.version))
        .bind(product.id.as_str())
        .bind(i64::from(expected_version))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Err(match self.product(&product.id).await? {
                Some(_) => StoreError::Conflict,
                None => StoreError::NotFound,
            });
        }
        Ok(())
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        self.doc("SELECT doc FROM products WHERE id = $1", id.as_str())
            .await
    }

    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        let keys = ids.iter().map(ProductId::as_str).collect();
        self.docs("SELECT doc FROM products WHERE id = ANY($1)", keys)
            .await
    }

    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, StoreError> {
        let after = storage::key_cursor(page.cursor.as_ref(), 'p')?.unwrap_or_default();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, doc FROM products WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
        storage::page(rows, page.limit, |id| format!("p{id}"))
    }

    async fn create_customer(&self, customer: &Customer) -> Result<(), StoreError> {
        let inserted = sqlx::query("INSERT INTO customers (id, doc) VALUES ($1, $2)")
            .bind(customer.id.as_str())
            .bind(encode(customer)?)
            .execute(&self.pool)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
            other => other.map(|_| ()).map_err(unavailable),
        }
    }

    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        self.doc("SELECT doc FROM customers WHERE id = $1", id.as_str())
            .await
    }

    async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, StoreError> {
        let keys = ids.iter().map(CustomerId::as_str).collect();
        self.docs("SELECT doc FROM customers WHERE id = ANY($1)", keys)
            .await
    }
}

#[async_trait]
impl OrderStore for PgStore {
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(sql::ORDER_BY_ID)
            .bind(id.uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|(doc,)| decode(&doc)).transpose()
    }

    async fn list_orders(
        &self,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Page<Order>, StoreError> {
        let before = storage::seq_cursor(page.cursor.as_ref(), 'o')?.unwrap_or(i64::MAX);
        let limit = i64::from(page.limit) + 1;
        // One statement per filter combination, each served by its own index.
        let query = match (filter.status, &filter.customer_id) {
            (None, None) => sqlx::query_as(sql::ORDERS_NEWEST),
            (Some(status), None) => sqlx::query_as(sql::ORDERS_BY_STATUS).bind(status.as_str()),
            (None, Some(customer)) => {
                sqlx::query_as(sql::ORDERS_BY_CUSTOMER).bind(customer.as_str())
            }
            (Some(status), Some(customer)) => sqlx::query_as(sql::ORDERS_BY_CUSTOMER_STATUS)
                .bind(customer.as_str())
                .bind(status.as_str()),
        };
        let rows: Vec<(i64, String)> = query
            .bind(before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        storage::page(rows, page.limit, |seq| format!("o{seq}"))
    }

    async fn orders_with_id_prefix(
        &self,
        prefix: &orderly_domain::search::OrderIdPrefix,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let (low, high) = prefix.bounds();
        let rows: Vec<(String,)> = sqlx::query_as(sql::ORDERS_BY_ID_PREFIX)
            .bind(low)
            .bind(high)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(|(doc,)| decode(doc)).collect()
    }

    async fn count_orders(&self, since: Timestamp) -> Result<Vec<(OrderStatus, u64)>, StoreError> {
        let mut counts = Vec::new();
        for status in OrderStatus::ALL {
            let n: i64 = sqlx::query_scalar(sql::COUNT_ORDERS_SINCE)
                .bind(status.as_str())
                .bind(since.millis())
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
            if n > 0 {
                counts.push((status, u64::try_from(n).unwrap_or(0)));
            }
        }
        Ok(counts)
    }

    async fn order_events(&self, id: OrderId) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(sql::EVENTS_OF_ORDER)
            .bind(id.uuid())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.into_iter().map(|(p,)| decode(&p)).collect()
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row: Option<(String, Uuid, i64)> = sqlx::query_as(
            "SELECT request_hash, order_id, created_at FROM idempotency_keys WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(
            row.map(|(request_hash, order_id, created_at)| IdempotencyRecord {
                key: key.to_owned(),
                request_hash,
                order_id: OrderId::from_uuid(order_id),
                created_at: Timestamp::from_millis(created_at),
            }),
        )
    }
}

#[async_trait]
impl DocumentStore for PgStore {
    async fn document(&self, kind: DocKind, key: &str) -> Result<Option<Document>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT version, doc FROM documents WHERE kind = $1 AND key = $2")
                .bind(kind.as_str())
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        row.map(|(version, body)| document(kind, key.to_owned(), version, body))
            .transpose()
    }

    async fn put_document(
        &self,
        doc: &Document,
        expected_version: Option<u32>,
    ) -> Result<(), StoreError> {
        let Some(expected) = expected_version else {
            let inserted = sqlx::query(
                "INSERT INTO documents (kind, key, version, doc) VALUES ($1, $2, $3, $4)",
            )
            .bind(doc.kind.as_str())
            .bind(&doc.key)
            .bind(i64::from(doc.version))
            .bind(&doc.body)
            .execute(&self.pool)
            .await;
            return match inserted {
                Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
                other => other.map(|_| ()).map_err(unavailable),
            };
        };
        let done = sqlx::query(
            "UPDATE documents SET version = $1, doc = $2 WHERE kind = $3 AND key = $4 AND version = $5",
        )
        .bind(i64::from(doc.version))
        .bind(&doc.body)
        .bind(doc.kind.as_str())
        .bind(&doc.key)
        .bind(i64::from(expected))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Err(match self.document(doc.kind, &doc.key).await? {
                Some(_) => StoreError::Conflict,
                None => StoreError::NotFound,
            });
        }
        Ok(())
    }

    async fn documents(
        &self,
        kind: DocKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>, StoreError> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT key, version, doc FROM documents WHERE kind = $1 AND key > $2 ORDER BY key LIMIT $3",
        )
        .bind(kind.as_str())
        .bind(after.unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.into_iter()
            .map(|(key, version, body)| document(kind, key, version, body))
            .collect()
    }
}

fn document(
    kind: DocKind,
    key: String,
    version: i64,
    body: String,
) -> Result<Document, StoreError> {
    let version = u32::try_from(version)
        .map_err(|_| StoreError::Corrupt(format!("document version {version}")))?;
    Ok(Document {
        kind,
        key,
        version,
        body,
    })
}

#[async_trait]
impl StockStore for PgStore {
    async fn stock(&self, id: &ProductId) -> Result<Option<StockLevel>, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT available, reserved FROM stock WHERE product_id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        Ok(row.map(|(available, reserved)| StockLevel {
            available,
            reserved,
        }))
    }

    async fn adjustments(
        &self,
        id: &ProductId,
        limit: u32,
    ) -> Result<Vec<StockAdjustment>, StoreError> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT delta, reason, actor, at FROM stock_adjustments \
             WHERE product_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(id.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(delta, reason, actor, at)| StockAdjustment {
                product_id: id.clone(),
                delta,
                reason,
                actor,
                at: Timestamp::from_millis(at),
            })
            .collect())
    }
}

/// Why one attempt at a commit failed.
enum Attempt {
    /// A business condition: final.
    Refused(CommitError),
    /// A serialization failure or deadlock: run the whole transaction again.
    Retry(sqlx::Error),
}

impl From<sqlx::Error> for Attempt {
    fn from(e: sqlx::Error) -> Self {
        if is_retryable(&e) {
            Attempt::Retry(e)
        } else {
            Attempt::Refused(CommitError::Store(unavailable(e)))
        }
    }
}

impl From<StoreError> for Attempt {
    fn from(e: StoreError) -> Self {
        Attempt::Refused(CommitError::Store(e))
    }
}

fn refused(e: CommitError) -> Attempt {
    Attempt::Refused(e)
}

/// The statement that applies one [`Commit`]: the `orderly_commit` function (migration 0004),
/// which does every part in one round trip and raises an `OY…` code for a condition that does
/// not hold.
const COMMIT: &str = "SELECT orderly_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
     $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)";

/// Applies a commit: in one statement (its own transaction), or, when it carries documents,
/// in one transaction of the documents' writes and that statement.
async fn apply(pool: &PgPool, commit: &Commit) -> Result<(), Attempt> {
    if commit.documents.is_empty() {
        let done = commit_statement(commit)?.execute(pool).await;
        return done.map(|_| ()).map_err(|e| commit_refusal(commit, e));
    }
    let mut tx = pool.begin().await?;
    for w in &commit.documents {
        write_document(&mut tx, w).await?;
    }
    let done = commit_statement(commit)?.execute(&mut *tx).await;
    done.map_err(|e| commit_refusal(commit, e))?;
    tx.commit().await?;
    Ok(())
}

/// One document of a commit, inside its transaction: new, or over the version read.
async fn write_document(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    w: &DocumentWrite,
) -> Result<(), Attempt> {
    let doc = &w.document;
    let changed = || refused(CommitError::DocumentChanged(doc.kind, doc.key.clone()));
    let written = match w.expected_version {
        None => {
            sqlx::query(
                "INSERT INTO documents (kind, key, version, doc) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(doc.kind.as_str())
            .bind(&doc.key)
            .bind(i64::from(doc.version))
            .bind(&doc.body)
            .execute(&mut **tx)
            .await?
        }
        Some(expected) => {
            sqlx::query(
                "UPDATE documents SET version = $1, doc = $2 \
                 WHERE kind = $3 AND key = $4 AND version = $5",
            )
            .bind(i64::from(doc.version))
            .bind(&doc.body)
            .bind(doc.kind.as_str())
            .bind(&doc.key)
            .bind(i64::from(expected))
            .execute(&mut **tx)
            .await?
        }
    };
    if written.rows_affected() == 0 {
        return Err(changed());
    }
    Ok(())
}

/// The `orderly_commit` statement of a commit, bound.
fn commit_statement(
    commit: &Commit,
) -> Result<sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>, Attempt> {
    let handled = commit.handled.as_ref();
    let idem = commit.idempotency.as_ref();
    let (order, expected) = match &commit.order {
        Some(OrderWrite::Insert(order)) => (Some(order), None),
        Some(OrderWrite::Update {
            order,
            expected_version,
        }) => (
            Some(order),
            Some(i32::try_from(*expected_version).map_err(corrupt)?),
        ),
        None => (None, None),
    };
    let order_doc = order.map(encode).transpose()?;
    let order_version = order
        .map(|o| i32::try_from(o.version).map_err(corrupt))
        .transpose()?;
    let adj = commit.adjustment.as_ref();
    let mut job_events = Vec::new();
    let mut job_consumers = Vec::new();
    let mut job_lanes = Vec::new();
    for (i, out) in commit.events.iter().enumerate() {
        let index = i32::try_from(i + 1).map_err(corrupt)?;
        for consumer in &out.consumers {
            job_events.push(index);
            job_consumers.push(consumer.as_str());
            job_lanes.push(consumer.lane().as_str());
        }
    }
    let payloads = commit
        .events
        .iter()
        .map(|o| encode(&o.event))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sqlx::query(COMMIT)
        .bind(handled.map(|h| h.consumer.as_str()))
        .bind(handled.map(|h| h.event_id.uuid()))
        .bind(handled.map(|h| h.job_id))
        .bind(idem.map(|r| r.key.as_str()))
        .bind(idem.map(|r| r.request_hash.as_str()))
        .bind(idem.map(|r| r.order_id.uuid()))
        .bind(idem.map(|r| r.created_at.millis()))
        .bind(order.map(|o| o.id.uuid()))
        .bind(order.map(|o| o.customer_id.as_str()))
        .bind(order.map(|o| o.status.as_str()))
        .bind(order_version)
        .bind(order.map(|o| o.created_at.millis()))
        .bind(order_doc)
        .bind(expected)
        .bind(
            commit
                .stock
                .iter()
                .map(|m| m.product_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(commit.stock.iter().map(|m| m.available).collect::<Vec<_>>())
        .bind(commit.stock.iter().map(|m| m.reserved).collect::<Vec<_>>())
        .bind(adj.map(|a| a.product_id.as_str()))
        .bind(adj.map(|a| a.delta))
        .bind(adj.map(|a| a.reason.as_str()))
        .bind(adj.map(|a| a.actor.as_str()))
        .bind(adj.map(|a| a.at.millis()))
        .bind(
            commit
                .events
                .iter()
                .map(|o| o.event.id.uuid())
                .collect::<Vec<_>>(),
        )
        .bind(
            commit
                .events
                .iter()
                .map(|o| o.event.order_id.uuid())
                .collect::<Vec<_>>(),
        )
        .bind(
            commit
                .events
                .iter()
                .map(|o| o.event.kind.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            commit
                .events
                .iter()
                .map(|o| o.event.time.millis())
                .collect::<Vec<_>>(),
        )
        .bind(payloads)
        .bind(job_events)
        .bind(job_consumers)
        .bind(job_lanes))
}

/// What a failed `orderly_commit` statement means: a refused condition, or a database error.
fn commit_refusal(commit: &Commit, e: sqlx::Error) -> Attempt {
    let order = match &commit.order {
        Some(OrderWrite::Insert(order) | OrderWrite::Update { order, .. }) => Some(order),
        None => None,
    };
    let Some(db) = e.as_database_error() else {
        return e.into();
    };
    let product = || ProductId::parse(db.message()).map_err(|e| Attempt::from(corrupt(e)));
    match db.code().as_deref() {
        Some("OY001") => refused(CommitError::AlreadyHandled),
        Some("OY002") => refused(CommitError::IdempotencyKeyTaken),
        Some("OY003") => match order {
            Some(o) => refused(CommitError::VersionConflict(o.id)),
            None => Attempt::from(corrupt("a version conflict without an order")),
        },
        Some("OY004") => {
            product().map_or_else(|a| a, |p| refused(CommitError::InsufficientStock(p)))
        }
        Some("OY005") => product().map_or_else(|a| a, |p| refused(CommitError::UnknownProduct(p))),
        _ => e.into(),
    }
}

/// Transactions retried after a serialization failure or deadlock.
const RETRIES: u32 = 6;

#[async_trait]
impl UnitOfWork for PgStore {
    async fn import_orders(&self, orders: &[Order]) -> Result<(), StoreError> {
        // One multi-row insert per slice: one round trip instead of one per order.
        let mut ids = Vec::with_capacity(orders.len());
        let mut customers = Vec::with_capacity(orders.len());
        let mut statuses = Vec::with_capacity(orders.len());
        let mut versions = Vec::with_capacity(orders.len());
        let mut created = Vec::with_capacity(orders.len());
        let mut docs = Vec::with_capacity(orders.len());
        for order in orders {
            ids.push(order.id.uuid());
            customers.push(order.customer_id.as_str().to_owned());
            statuses.push(order.status.as_str().to_owned());
            versions.push(i64::from(order.version));
            created.push(order.created_at.millis());
            docs.push(encode(order)?);
        }
        let inserted = sqlx::query(
            "INSERT INTO orders (id, customer_id, status, version, created_at, doc) \
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])",
        )
        .bind(&ids)
        .bind(&customers)
        .bind(&statuses)
        .bind(&versions)
        .bind(&created)
        .bind(&docs)
        .execute(&self.pool)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
            other => other.map(|_| ()).map_err(unavailable),
        }
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let mut last = None;
        for attempt in 0..RETRIES {
            if attempt > 0 {
                // 5, 10, 20, 40, 80 ms: long enough for the other transaction to finish.
                tokio::time::sleep(Duration::from_millis(5 << (attempt - 1))).await;
            }
            match apply(&self.pool, &commit).await {
                Ok(()) => return Ok(()),
                Err(Attempt::Refused(e)) => return Err(e),
                Err(Attempt::Retry(e)) => {
                    tracing::debug!(error = %e, attempt, "transaction conflict; retrying");
                    last = Some(e);
                }
            }
        }
        Err(CommitError::Store(StoreError::Unavailable(format!(
            "transaction kept conflicting: {}",
            last.map_or_else(String::new, |e| e.to_string())
        ))))
    }
}

fn job_from_row(row: &PgRow) -> Result<Job, StoreError> {
    let consumer: String = row.try_get("consumer").map_err(corrupt)?;
    let payload: String = row.try_get("payload").map_err(corrupt)?;
    let attempts: i32 = row.try_get("attempts").map_err(corrupt)?;
    Ok(Job {
        id: row.try_get("id").map_err(corrupt)?,
        consumer: Consumer::parse(&consumer)
            .ok_or_else(|| corrupt(format!("unknown consumer {consumer}")))?,
        event: decode(&payload)?,
        attempts: u32::try_from(attempts).map_err(corrupt)?,
        last_error: row.try_get("last_error").map_err(corrupt)?,
        lease: None,
    })
}

#[async_trait]
impl Readiness for PgStore {
    /// A round trip to the server, which fails within the pool's acquire timeout while the
    /// server cannot be reached, and asks whether it takes writes: a standby left behind by a
    /// failover (or a database set read-only) does not. (PostgreSQL refuses writes itself when
    /// its disk is full.)
    async fn check_ready(&self) -> Result<(), StoreError> {
        let (writable,): (bool,) = sqlx::query_as(
            "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        if writable {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "the database is read-only (a standby, or default_transaction_read_only is on); point --database-url at the primary".into(),
            ))
        }
    }
}

#[async_trait]
impl JobQueue for PgStore {
    async fn claim_jobs(
        &self,
        now: Timestamp,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(sql::CLAIM_JOBS)
            .bind(now.millis())
            .bind(i64::from(limit))
            .bind(lease_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let lease = Some(now.plus_millis(lease_ms));
        let mut jobs = rows
            .iter()
            .map(|row| {
                Ok(Job {
                    lease,
                    ..job_from_row(row)?
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    async fn retry_job(
        &self,
        job: &Job,
        attempts: u32,
        next_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET attempts = $1, next_at = $2, last_error = $3, lease_until = NULL \
             WHERE id = $4 AND ($5::bigint IS NULL OR lease_until = $5)",
        )
        .bind(i32::try_from(attempts).unwrap_or(i32::MAX))
        .bind(next_at.millis())
        .bind(error)
        .bind(job.id)
        .bind(job.lease.map(Timestamp::millis))
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn delete_job(&self, job: &Job) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM jobs WHERE id = $1 AND ($2::bigint IS NULL OR lease_until = $2)")
            .bind(job.id)
            .bind(job.lease.map(Timestamp::millis))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn release_leases(&self) -> Result<u64, StoreError> {
        sqlx::query("UPDATE jobs SET lease_until = NULL WHERE lease_until IS NOT NULL")
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(unavailable)
    }

    async fn release_claim(&self, lease: Timestamp) -> Result<u64, StoreError> {
        sqlx::query("UPDATE jobs SET lease_until = NULL WHERE lease_until = $1")
            .bind(lease.millis())
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(unavailable)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        // The earliest moment a claim could find something: over each order's first job only,
        // the later of its due time and its lease's end.
        let row: (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(GREATEST(next_at, COALESCE(lease_until, 0))) FROM jobs j \
             WHERE NOT EXISTS (SELECT 1 FROM jobs p WHERE p.order_id = j.order_id AND p.lane = j.lane AND p.id < j.id)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(row.0.map(Timestamp::from_millis))
    }

    async fn pending_jobs(&self) -> Result<u64, StoreError> {
        let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(row.0).unwrap_or(0))
    }

    async fn waiting_jobs(
        &self,
        order: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<WaitingJob>, StoreError> {
        let query = match order {
            Some(id) => sqlx::query(sql::WAITING_JOBS_OF_ORDER)
                .bind(i64::from(limit))
                .bind(id.uuid()),
            None => sqlx::query(sql::WAITING_JOBS).bind(i64::from(limit)),
        };
        let rows = query.fetch_all(&self.pool).await.map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let lease: Option<i64> = row.try_get("lease_until").map_err(corrupt)?;
                Ok(WaitingJob {
                    job: job_from_row(row)?,
                    due: Timestamp::from_millis(row.try_get("next_at").map_err(corrupt)?),
                    running: lease.is_some(),
                })
            })
            .collect()
    }

    async fn hurry_job(
        &self,
        order: OrderId,
        job_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET next_at = LEAST(next_at, $3), lease_until = NULL \
             WHERE id = $1 AND order_id = $2 AND attempts > 0 \
               AND (lease_until IS NULL OR lease_until <= $3)",
        )
        .bind(job_id)
        .bind(order.uuid())
        .bind(now.millis())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }
}
