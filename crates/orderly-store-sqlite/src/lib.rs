//! Orderly's embedded storage: every storage port on one SQLite file.
//!
//! # Layout
//! - [`SqliteStore::open`]: opens (creating if needed) the file, applies the embedded migrations,
//!   and keeps two pools — one connection that writes, several that read (WAL lets readers run
//!   beside the writer).
//! - `impl UnitOfWork`: one transaction per [`Commit`]: the order (with a version check), stock
//!   moves (refused below zero), the outbox events, their jobs, the idempotency key and the
//!   handled-event mark.
//! - `impl JobQueue`: the saga's queue, claimed with leases, first job of each order only.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so a commit is on disk before it is
//! acknowledged (see docs/ARCHITECTURE.md for why FULL and not NORMAL).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use orderly_core::ports::{
    CatalogStore, Commit, CommitError, Consumer, DocKind, Document, DocumentStore,
    IdempotencyRecord, Job, JobQueue, OrderFilter, OrderStore, OrderWrite, Page, PageRequest,
    StockStore, StoreError, UnitOfWork,
};
use orderly_core::storage::{self, decode, encode as to_json};
use orderly_domain::{
    Customer, CustomerId, Event, Order, OrderId, Product, ProductId, StockAdjustment, StockLevel,
    Timestamp,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Every storage port on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    /// One connection: SQLite has one writer at a time anyway, and a single connection never
    /// meets `SQLITE_BUSY` from its own siblings.
    writer: SqlitePool,
    /// Readers, concurrent with the writer thanks to WAL.
    reader: SqlitePool,
    /// Commits go to the group-commit task, which folds concurrent ones into one transaction.
    committer: mpsc::Sender<Pending>,
    path: PathBuf,
}

/// How to open the file.
#[derive(Clone, Debug)]
pub struct SqliteSettings {
    /// The database file; created with its folder if missing.
    pub path: PathBuf,
    /// Reader connections.
    pub readers: u32,
    /// How long a statement waits for a lock held by another process.
    pub busy_timeout: Duration,
}

impl SqliteSettings {
    /// Defaults for a file.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteSettings {
            path: path.into(),
            readers: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
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

impl SqliteStore {
    /// Opens the database, creating the file and its folder if needed, and migrates it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] with the reason (unwritable folder, locked or foreign file,
    /// failed migration).
    pub async fn open(settings: &SqliteSettings) -> Result<Self, StoreError> {
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create folder {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(unavailable)?
            .filename(&settings.path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(settings.busy_timeout);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", settings.path.display()))
            })?;
        MIGRATOR.run(&writer).await.map_err(|e| {
            StoreError::Unavailable(format!("migrating {} failed: {e}", settings.path.display()))
        })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(settings.readers.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await
            .map_err(unavailable)?;
        let (committer, queue) = mpsc::channel(4 * GROUP_MAX);
        tokio::spawn(group_commit(writer.clone(), queue));
        Ok(SqliteStore {
            writer,
            reader,
            committer,
            path: settings.path.clone(),
        })
    }

    /// Applies the migrations only (for `orderly migrate`); returns how many the schema has.
    ///
    /// # Errors
    /// As for [`SqliteStore::open`].
    pub async fn migrate(settings: &SqliteSettings) -> Result<usize, StoreError> {
        let store = Self::open(settings).await?;
        store.close().await;
        Ok(MIGRATOR.iter().count())
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn doc<T: serde::de::DeserializeOwned>(
        &self,
        sql: &'static str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(sql)
            .bind(key)
            .fetch_optional(&self.reader)
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
            .bind(to_json(&keys)?)
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable)?;
        rows.into_iter().map(|(doc,)| decode(&doc)).collect()
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn create_product(
        &self,
        product: &Product,
        initial_stock: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await.map_err(unavailable)?;
        let inserted = sqlx::query("INSERT INTO products (id, doc) VALUES (?, ?)")
            .bind(product.id.as_str())
            .bind(to_json(product)?)
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists),
            other => other.map_err(unavailable)?,
        };
        sqlx::query("INSERT INTO stock (product_id, available, reserved) VALUES (?, ?, 0)")
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
        let done =
            sqlx::query("UPDATE products SET doc = ?, version = ? WHERE id = ? AND version = ?")
                .bind(to_json(product)?)
                .bind(i64::from(product.version))
                .bind(product.id.as_str())
                .bind(i64::from(expected_version))
                .execute(&self.writer)
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
        self.doc("SELECT doc FROM products WHERE id = ?", id.as_str())
            .await
    }

    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        let keys = ids.iter().map(ProductId::as_str).collect();
        self.docs(
            "SELECT doc FROM products WHERE id IN (SELECT DISTINCT value FROM json_each(?))",
            keys,
        )
        .await
    }

    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, StoreError> {
        let after = storage::key_cursor(page.cursor.as_ref(), 'p')?.unwrap_or_default();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT id, doc FROM products WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after)
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&self.reader)
                .await
                .map_err(unavailable)?;
        storage::page(rows, page.limit, |id| format!("p{id}"))
    }

    async fn create_customer(&self, customer: &Customer) -> Result<(), StoreError> {
        let inserted = sqlx::query("INSERT INTO customers (id, doc) VALUES (?, ?)")
            .bind(customer.id.as_str())
            .bind(to_json(customer)?)
            .execute(&self.writer)
            .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
            other => other.map(|_| ()).map_err(unavailable),
        }
    }

    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        self.doc("SELECT doc FROM customers WHERE id = ?", id.as_str())
            .await
    }

    async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, StoreError> {
        let keys = ids.iter().map(CustomerId::as_str).collect();
        self.docs(
            "SELECT doc FROM customers WHERE id IN (SELECT DISTINCT value FROM json_each(?))",
            keys,
        )
        .await
    }
}

/// The hot queries, named so that tests can look at their plans.
pub mod sql {
    /// Newest orders.
    pub const ORDERS_NEWEST: &str =
        "SELECT seq, doc FROM orders WHERE seq < ? ORDER BY seq DESC LIMIT ?";
    /// Newest orders in one status.
    pub const ORDERS_BY_STATUS: &str =
        "SELECT seq, doc FROM orders WHERE status = ? AND seq < ? ORDER BY seq DESC LIMIT ?";
    /// A customer's newest orders.
    pub const ORDERS_BY_CUSTOMER: &str =
        "SELECT seq, doc FROM orders WHERE customer_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?";
    /// Leases due jobs: the first outstanding job of each order in each lane.
    pub const CLAIM_JOBS: &str = "UPDATE jobs SET lease_until = ?1 + ?3 WHERE id IN ( \
           SELECT j.id FROM jobs j \
           WHERE j.next_at <= ?1 AND (j.lease_until IS NULL OR j.lease_until <= ?1) \
             AND NOT EXISTS (SELECT 1 FROM jobs p WHERE p.order_id = j.order_id AND p.lane = j.lane AND p.id < j.id) \
           ORDER BY j.next_at, j.id LIMIT ?2) \
         RETURNING id";
    /// One order.
    pub const ORDER_BY_ID: &str = "SELECT doc FROM orders WHERE id = ?";
    /// An order's events.
    pub const EVENTS_OF_ORDER: &str = "SELECT payload FROM events WHERE order_id = ? ORDER BY seq";
    /// A customer's newest orders in one status.
    pub const ORDERS_BY_CUSTOMER_STATUS: &str = "SELECT seq, doc FROM orders \
         WHERE customer_id = ? AND status = ? AND seq < ? ORDER BY seq DESC LIMIT ?";
}

#[async_trait]
impl OrderStore for SqliteStore {
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.doc(sql::ORDER_BY_ID, &id.to_string()).await
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
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable)?;
        storage::page(rows, page.limit, |seq| format!("o{seq}"))
    }

    async fn order_events(&self, id: OrderId) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(sql::EVENTS_OF_ORDER)
            .bind(id.to_string())
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable)?;
        rows.into_iter().map(|(p,)| decode(&p)).collect()
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT request_hash, order_id, created_at FROM idempotency_keys WHERE key = ?",
        )
        .bind(key)
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable)?;
        row.map(|(request_hash, order_id, created_at)| {
            Ok(IdempotencyRecord {
                key: key.to_owned(),
                request_hash,
                order_id: OrderId::parse(&order_id).map_err(corrupt)?,
                created_at: Timestamp::from_millis(created_at),
            })
        })
        .transpose()
    }
}

#[async_trait]
impl DocumentStore for SqliteStore {
    async fn document(&self, kind: DocKind, key: &str) -> Result<Option<Document>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT version, doc FROM documents WHERE kind = ? AND key = ?")
                .bind(kind.as_str())
                .bind(key)
                .fetch_optional(&self.reader)
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
        // Through the group commit, so concurrent cart writes share an fsync with orders.
        let (reply, answer) = oneshot::channel();
        self.committer
            .send((Work::Document(doc.clone(), expected_version), reply))
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        match answer
            .await
            .map_err(|_| StoreError::Unavailable("the writer stopped".into()))?
        {
            Ok(()) => Ok(()),
            Err(CommitError::Store(e)) => Err(e),
            Err(other) => Err(StoreError::Corrupt(other.to_string())),
        }
    }

    async fn documents(
        &self,
        kind: DocKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>, StoreError> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT key, version, doc FROM documents WHERE kind = ? AND key > ? ORDER BY key LIMIT ?",
        )
        .bind(kind.as_str())
        .bind(after.unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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
impl StockStore for SqliteStore {
    async fn stock(&self, id: &ProductId) -> Result<Option<StockLevel>, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT available, reserved FROM stock WHERE product_id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.reader)
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
             WHERE product_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(id.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
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

/// Runs the parts of a commit inside `tx`; the caller commits or (on error) drops it.
async fn apply(tx: &mut SqliteConnection, commit: Commit) -> Result<(), CommitError> {
    let db = |e: sqlx::Error| CommitError::Store(unavailable(e));
    if let Some(h) = &commit.handled {
        let inserted = sqlx::query(
            "INSERT INTO handled_events (consumer, event_id, at) VALUES (?, ?, strftime('%s','now') * 1000)",
        )
        .bind(h.consumer.as_str())
        .bind(h.event_id.to_string())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(CommitError::AlreadyHandled),
            other => other.map_err(db)?,
        };
        sqlx::query("DELETE FROM jobs WHERE id = ?")
            .bind(h.job_id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    if let Some(rec) = &commit.idempotency {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (key, request_hash, order_id, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&rec.key)
        .bind(&rec.request_hash)
        .bind(rec.order_id.to_string())
        .bind(rec.created_at.millis())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(CommitError::IdempotencyKeyTaken),
            other => other.map_err(db)?,
        };
    }
    match &commit.order {
        Some(OrderWrite::Insert(order)) => {
            insert_order(tx, order).await?.map_err(db)?;
        }
        Some(OrderWrite::Update {
            order,
            expected_version,
        }) => {
            let done = sqlx::query(
                "UPDATE orders SET status = ?, version = ?, doc = ? WHERE id = ? AND version = ?",
            )
            .bind(order.status.as_str())
            .bind(i64::from(order.version))
            .bind(to_json(order)?)
            .bind(order.id.to_string())
            .bind(i64::from(*expected_version))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if done.rows_affected() == 0 {
                return Err(CommitError::VersionConflict(order.id));
            }
        }
        None => {}
    }
    for m in &commit.stock {
        // The WHERE clause is the guard: a move that would go below zero touches no row.
        let done = sqlx::query(
            "UPDATE stock SET available = available + ?1, reserved = reserved + ?2 \
             WHERE product_id = ?3 AND available + ?1 >= 0 AND reserved + ?2 >= 0",
        )
        .bind(m.available)
        .bind(m.reserved)
        .bind(m.product_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            let exists: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM stock WHERE product_id = ?")
                .bind(m.product_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
            return Err(match exists {
                Some(_) => CommitError::InsufficientStock(m.product_id.clone()),
                None => CommitError::UnknownProduct(m.product_id.clone()),
            });
        }
    }
    if let Some(a) = &commit.adjustment {
        sqlx::query(
            "INSERT INTO stock_adjustments (product_id, delta, reason, actor, at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(a.product_id.as_str())
        .bind(a.delta)
        .bind(&a.reason)
        .bind(&a.actor)
        .bind(a.at.millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    for out in &commit.events {
        let event = &out.event;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO events (id, order_id, kind, at, payload) VALUES (?, ?, ?, ?, ?) RETURNING seq",
        )
        .bind(event.id.to_string())
        .bind(event.order_id.to_string())
        .bind(event.kind.as_str())
        .bind(event.time.millis())
        .bind(to_json(event)?)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        for consumer in &out.consumers {
            sqlx::query(
                "INSERT INTO jobs (order_id, consumer, lane, event_seq, next_at) VALUES (?, ?, ?, ?, 0)",
            )
            .bind(event.order_id.to_string())
            .bind(consumer.as_str())
            .bind(consumer.lane().as_str())
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
    }
    Ok(())
}

#[async_trait]
impl UnitOfWork for SqliteStore {
    async fn import_orders(&self, orders: &[Order]) -> Result<(), StoreError> {
        // One transaction, one fsync, for the whole slice.
        let mut tx = self.writer.begin().await.map_err(unavailable)?;
        for order in orders {
            let inserted = insert_order(&mut tx, order).await?;
            match inserted {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists),
                other => other.map_err(unavailable)?,
            };
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let (reply, answer) = oneshot::channel();
        self.committer
            .send((Work::Commit(Box::new(commit)), reply))
            .await
            .map_err(|_| {
                CommitError::Store(StoreError::Unavailable("the store is closed".into()))
            })?;
        answer
            .await
            .map_err(|_| CommitError::Store(StoreError::Unavailable("the writer stopped".into())))?
    }
}

/// Inserts a new order row: the outer error is an order that cannot be encoded, the inner one
/// what SQLite answered (each caller maps a taken id its own way).
async fn insert_order(
    tx: &mut SqliteConnection,
    order: &Order,
) -> Result<Result<(), sqlx::Error>, StoreError> {
    let doc = to_json(order)?;
    Ok(sqlx::query(
        "INSERT INTO orders (id, customer_id, status, version, created_at, doc) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(order.id.to_string())
    .bind(order.customer_id.as_str())
    .bind(order.status.as_str())
    .bind(i64::from(order.version))
    .bind(order.created_at.millis())
    .bind(doc)
    .execute(&mut *tx)
    .await
    .map(|_| ()))
}

/// Most commits folded into one transaction.
const GROUP_MAX: usize = 256;

/// What the group commit writes: a unit of work, or one document.
enum Work {
    Commit(Box<Commit>),
    Document(Document, Option<u32>),
}

type Pending = (Work, oneshot::Sender<Result<(), CommitError>>);

/// Writes one document inside the group's transaction: insert if new, else only over the
/// version the caller read.
async fn apply_document(
    tx: &mut SqliteConnection,
    doc: &Document,
    expected_version: Option<u32>,
) -> Result<(), CommitError> {
    let Some(expected) = expected_version else {
        let inserted =
            sqlx::query("INSERT INTO documents (kind, key, version, doc) VALUES (?, ?, ?, ?)")
                .bind(doc.kind.as_str())
                .bind(&doc.key)
                .bind(i64::from(doc.version))
                .bind(&doc.body)
                .execute(&mut *tx)
                .await;
        return match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists.into()),
            other => other.map(|_| ()).map_err(|e| unavailable(e).into()),
        };
    };
    let done = sqlx::query(
        "UPDATE documents SET version = ?, doc = ? WHERE kind = ? AND key = ? AND version = ?",
    )
    .bind(i64::from(doc.version))
    .bind(&doc.body)
    .bind(doc.kind.as_str())
    .bind(&doc.key)
    .bind(i64::from(expected))
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() > 0 {
        return Ok(());
    }
    let exists: Option<(i64,)> =
        sqlx::query_as("SELECT version FROM documents WHERE kind = ? AND key = ?")
            .bind(doc.kind.as_str())
            .bind(&doc.key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
    Err(match exists {
        Some(_) => StoreError::Conflict,
        None => StoreError::NotFound,
    }
    .into())
}

/// Group commit: takes the commits waiting, applies each in its own savepoint (so one that
/// fails its conditions changes nothing and fails alone), commits them all with one fsync, and
/// only then answers each. Under load many requests share one fsync; alone, a commit waits for
/// nobody.
async fn group_commit(writer: SqlitePool, mut queue: mpsc::Receiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_MAX {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut results = Vec::with_capacity(batch.len());
        let outcome: Result<(), sqlx::Error> = async {
            let mut tx = writer.begin().await?;
            for (work, _) in &batch {
                // A transaction inside the transaction: a savepoint.
                let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                let applied = match work {
                    Work::Commit(commit) => apply(&mut savepoint, (**commit).clone()).await,
                    Work::Document(doc, expected) => {
                        apply_document(&mut savepoint, doc, *expected).await
                    }
                };
                match applied {
                    Ok(()) => {
                        savepoint.commit().await?;
                        results.push(Ok(()));
                    }
                    Err(e) => {
                        savepoint.rollback().await?;
                        results.push(Err(e));
                    }
                }
            }
            tx.commit().await
        }
        .await;
        match outcome {
            Ok(()) => {
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                // Nothing of the batch was written: every caller hears so and may retry.
                let error = StoreError::Unavailable(e.to_string());
                for (_, reply) in batch {
                    let _ = reply.send(Err(CommitError::Store(error.clone())));
                }
            }
        }
    }
}

fn job_from_row(row: &SqliteRow) -> Result<Job, StoreError> {
    let consumer: String = row.try_get("consumer").map_err(corrupt)?;
    let payload: String = row.try_get("payload").map_err(corrupt)?;
    let attempts: i64 = row.try_get("attempts").map_err(corrupt)?;
    Ok(Job {
        id: row.try_get("id").map_err(corrupt)?,
        consumer: Consumer::parse(&consumer)
            .ok_or_else(|| corrupt(format!("unknown consumer {consumer}")))?,
        event: decode(&payload)?,
        attempts: u32::try_from(attempts).map_err(corrupt)?,
        last_error: row.try_get("last_error").map_err(corrupt)?,
    })
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn claim_jobs(
        &self,
        now: Timestamp,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let mut tx = self.writer.begin().await.map_err(unavailable)?;
        // Only the first outstanding job of each order qualifies: one order's events are
        // handled strictly in order, even while an earlier one waits for its retry.
        let rows = sqlx::query(sql::CLAIM_JOBS)
            .bind(now.millis())
            .bind(i64::from(limit))
            .bind(lease_ms)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()
            .map_err(corrupt)?;
        if ids.is_empty() {
            tx.commit().await.map_err(unavailable)?;
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT j.id, j.consumer, j.attempts, j.last_error, e.payload \
             FROM jobs j JOIN events e ON e.seq = j.event_seq \
             WHERE j.id IN (SELECT value FROM json_each(?)) ORDER BY j.id",
        )
        .bind(to_json(&ids)?)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn retry_job(
        &self,
        job: &Job,
        attempts: u32,
        next_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET attempts = ?, next_at = ?, last_error = ?, lease_until = NULL WHERE id = ?",
        )
        .bind(i64::from(attempts))
        .bind(next_at.millis())
        .bind(error)
        .bind(job.id)
        .execute(&self.writer)
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn delete_job(&self, job: &Job) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM jobs WHERE id = ?")
            .bind(job.id)
            .execute(&self.writer)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn release_leases(&self) -> Result<u64, StoreError> {
        sqlx::query("UPDATE jobs SET lease_until = NULL WHERE lease_until IS NOT NULL")
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected())
            .map_err(unavailable)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        // The earliest moment a claim could find something: over each order's first job only,
        // the later of its due time and its lease's end.
        let row: (Option<i64>,) = sqlx::query_as(
            "SELECT MIN(MAX(next_at, COALESCE(lease_until, 0))) FROM jobs j \
             WHERE NOT EXISTS (SELECT 1 FROM jobs p WHERE p.order_id = j.order_id AND p.lane = j.lane AND p.id < j.id)",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(unavailable)?;
        Ok(row.0.map(Timestamp::from_millis))
    }

    async fn pending_jobs(&self) -> Result<u64, StoreError> {
        let row: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs")
            .fetch_one(&self.reader)
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(row.0).unwrap_or(0))
    }
}
