//! Orderly's embedded storage: every storage port on one SQLite file.
//!
//! # Layout
//! - [`SqliteStore::open`]: opens (creating if needed) the file, applies the embedded migrations,
//!   starts the writer thread (the one connection that writes) and a pool of readers (WAL lets
//!   readers run beside the writer).
//! - `writer`: every write runs on that thread, in batches: concurrent writes share one
//!   transaction and one fsync (group commit), without savepoints: each write reads its
//!   conditions before it changes anything, and a write that fails after a change makes the
//!   batch run again with a savepoint around each write.
//! - `commit`: the writes themselves. A [`Commit`] is one unit: the order (with a version
//!   check), stock moves (refused below zero), the outbox events, their jobs, the idempotency key
//!   and the handled-event mark.
//! - `impl JobQueue`: the saga's queue, claimed with leases, first job of each order per lane.
//! - `impl Readiness`: free space on the file's disk and a probe write.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL`, so a commit is on disk before it is
//! acknowledged (see docs/ARCHITECTURE.md for why FULL and not NORMAL).
#![forbid(unsafe_code)]

mod commit;
mod reader;
mod writer;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orderly_core::ports::{
    CatalogStore, Commit, CommitError, Consumer, DocKind, Document, DocumentStore,
    IdempotencyRecord, Job, JobQueue, OrderFilter, OrderStore, Page, PageRequest, Readiness,
    StockStore, StoreError, UnitOfWork, WaitingJob,
};
use orderly_core::storage::{self, decode, encode as to_json};
use orderly_domain::{
    Customer, CustomerId, Event, Order, OrderId, OrderStatus, Product, ProductId, StockAdjustment,
    StockLevel, Timestamp,
};
use rusqlite::{OptionalExtension, params};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::commit::{OrderRow, Prepared, exec};
use crate::reader::Readers;
use crate::writer::{Writer, is_unique_violation};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Least free space on the database's disk for the node to call itself ready: room for the
/// write-ahead log to grow through a burst of orders and a checkpoint.
pub const MIN_FREE_DISK: u64 = 16 * 1024 * 1024;

/// Every storage port on one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    /// The one connection that writes, on its own thread: SQLite has one writer at a time
    /// anyway, and a single connection never meets `SQLITE_BUSY` from its own siblings.
    writer: Writer,
    /// Readers, concurrent with the writer thanks to WAL.
    readers: Arc<Readers>,
    path: PathBuf,
    /// When the last readiness probe write committed (ms since the epoch): a probe within
    /// [`PROBE_EVERY_MS`] of it is not repeated, so frequent `/readyz` calls cost no writes.
    last_probe: Arc<std::sync::atomic::AtomicI64>,
}

/// Least time between two readiness probe writes.
const PROBE_EVERY_MS: i64 = 1_000;

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
        // The migrations run on a connection of their own, closed before the writer opens.
        let migrations = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot open {}: {e}", settings.path.display()))
            })?;
        let migrated = MIGRATOR.run(&migrations).await.map_err(|e| {
            StoreError::Unavailable(format!("migrating {} failed: {e}", settings.path.display()))
        });
        migrations.close().await;
        migrated?;
        let writer = Writer::start(&settings.path, settings.busy_timeout)?;
        let readers = Readers::open(
            settings.path.clone(),
            settings.busy_timeout,
            settings.readers as usize,
        )?;
        Ok(SqliteStore {
            writer,
            readers: Arc::new(readers),
            path: settings.path.clone(),
            last_probe: Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
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
        self.readers.read(|c| {
            c.prepare_cached("SELECT 1")
                .and_then(|mut s| s.exists([]))
                .map(|_| ())
                .map_err(writer::unavailable)
        })
    }

    /// Closes the readers, then the writer once the writes queued are done (checkpointing the
    /// WAL).
    pub async fn close(&self) {
        self.readers.close();
        self.writer.close().await;
    }

    /// Rows of one statement, each made by `row`.
    fn rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        self.readers.read(|c| {
            c.prepare_cached(sql)
                .and_then(|mut s| s.query_map(params, row)?.collect())
                .map_err(writer::unavailable)
        })
    }

    /// The one row of a statement, if any.
    fn row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        self.readers.read(|c| {
            c.prepare_cached(sql)
                .and_then(|mut s| s.query_row(params, row).optional())
                .map_err(writer::unavailable)
        })
    }

    fn doc<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.row(sql, [key], |r| r.get::<_, String>(0))?
            .map(|doc| decode(&doc))
            .transpose()
    }

    /// The documents whose keys are in `keys` (missing keys left out).
    fn docs<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        keys: Vec<&str>,
    ) -> Result<Vec<T>, StoreError> {
        self.rows(sql, [to_json(&keys)?], |r| r.get::<_, String>(0))?
            .iter()
            .map(|doc| decode(doc))
            .collect()
    }
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn create_product(
        &self,
        product: &Product,
        initial_stock: i64,
    ) -> Result<(), StoreError> {
        let id = product.id.as_str().to_owned();
        let doc = to_json(product)?;
        self.writer
            .write(move |c| {
                match exec(
                    c,
                    "INSERT INTO products (id, doc) VALUES (?1, ?2)",
                    params![id, doc],
                ) {
                    Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists),
                    other => other.map_err(writer::unavailable)?,
                };
                exec(
                    c,
                    "INSERT INTO stock (product_id, available, reserved) VALUES (?1, ?2, 0)",
                    params![id, initial_stock],
                )
                .map(|_| ())
                .map_err(writer::unavailable)
            })
            .await
    }

    async fn update_product(
        &self,
        product: &Product,
        expected_version: u32,
    ) -> Result<(), StoreError> {
        let id = product.id.as_str().to_owned();
        let doc = to_json(product)?;
        let version = product.version;
        self.writer
            .write(move |c| {
                let changed = exec(
                    c,
                    "UPDATE products SET doc = ?1, version = ?2 WHERE id = ?3 AND version = ?4",
                    params![doc, version, id, expected_version],
                )
                .map_err(writer::unavailable)?;
                if changed > 0 {
                    return Ok(());
                }
                let exists = c
                    .prepare_cached("SELECT 1 FROM products WHERE id = ?1")
                    .and_then(|mut s| s.exists([&id]))
                    .map_err(writer::unavailable)?;
                Err(if exists {
                    StoreError::Conflict
                } else {
                    StoreError::NotFound
                })
            })
            .await
    }

    async fn product(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        self.doc("SELECT doc FROM products WHERE id = ?1", id.as_str())
    }

    async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, StoreError> {
        let keys = ids.iter().map(ProductId::as_str).collect();
        self.docs(
            "SELECT doc FROM products WHERE id IN (SELECT DISTINCT value FROM json_each(?1))",
            keys,
        )
    }

    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, StoreError> {
        let after = storage::key_cursor(page.cursor.as_ref(), 'p')?.unwrap_or_default();
        let rows = self.rows(
            "SELECT id, doc FROM products WHERE id > ?1 ORDER BY id LIMIT ?2",
            params![after, i64::from(page.limit) + 1],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )?;
        storage::page(rows, page.limit, |id| format!("p{id}"))
    }

    async fn create_customer(&self, customer: &Customer) -> Result<(), StoreError> {
        let id = customer.id.as_str().to_owned();
        let doc = to_json(customer)?;
        self.writer
            .write(move |c| {
                match exec(
                    c,
                    "INSERT INTO customers (id, doc) VALUES (?1, ?2)",
                    params![id, doc],
                ) {
                    Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
                    other => other.map(|_| ()).map_err(writer::unavailable),
                }
            })
            .await
    }

    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        self.doc("SELECT doc FROM customers WHERE id = ?1", id.as_str())
    }

    async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, StoreError> {
        let keys = ids.iter().map(CustomerId::as_str).collect();
        self.docs(
            "SELECT doc FROM customers WHERE id IN (SELECT DISTINCT value FROM json_each(?1))",
            keys,
        )
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
    /// How many orders of one status were placed at or after a moment (the dashboard).
    pub const COUNT_ORDERS_SINCE: &str =
        "SELECT COUNT(*) FROM orders WHERE status = ? AND created_at >= ?";
    /// A customer's newest orders.
    pub const ORDERS_BY_CUSTOMER: &str =
        "SELECT seq, doc FROM orders WHERE customer_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?";
    /// Leases due jobs: the first outstanding job of each order in each lane.
    pub const CLAIM_JOBS: &str = "UPDATE jobs SET lease_until = ?1 + ?3 WHERE id IN ( \
           SELECT j.id FROM jobs j \
           WHERE j.next_at <= ?1 AND (j.lease_until IS NULL OR j.lease_until <= ?1) \
             AND NOT EXISTS (SELECT 1 FROM jobs p WHERE p.order_id = j.order_id AND p.lane = j.lane AND p.id < j.id) \
           ORDER BY j.next_at, j.id LIMIT ?2) \
         RETURNING id, consumer, attempts, last_error, event_seq";
    /// Jobs waiting for their next try after a failure, soonest first (the staff panel).
    pub const WAITING_JOBS: &str = "SELECT j.id, j.consumer, j.attempts, j.last_error, j.next_at, \
         j.lease_until, e.payload FROM jobs j INDEXED BY jobs_waiting JOIN events e ON e.seq = j.event_seq \
         WHERE j.attempts > 0 ORDER BY j.next_at, j.id LIMIT ?1";
    /// One order's jobs waiting for their next try after a failure.
    pub const WAITING_JOBS_OF_ORDER: &str = "SELECT j.id, j.consumer, j.attempts, j.last_error, \
         j.next_at, j.lease_until, e.payload FROM jobs j JOIN events e ON e.seq = j.event_seq \
         WHERE j.order_id = ?2 AND j.attempts > 0 ORDER BY j.next_at, j.id LIMIT ?1";
    /// One order.
    pub const ORDER_BY_ID: &str = "SELECT doc FROM orders WHERE id = ?";
    /// Orders whose id starts with a prefix, lowest first (the search box).
    pub const ORDERS_BY_ID_PREFIX: &str =
        "SELECT seq, doc FROM orders WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3";
    /// An order's events.
    pub const EVENTS_OF_ORDER: &str = "SELECT payload FROM events WHERE order_id = ? ORDER BY seq";
    /// A customer's newest orders in one status.
    pub const ORDERS_BY_CUSTOMER_STATUS: &str = "SELECT seq, doc FROM orders \
         WHERE customer_id = ? AND status = ? AND seq < ? ORDER BY seq DESC LIMIT ?";
}

#[async_trait]
impl OrderStore for SqliteStore {
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.doc(sql::ORDER_BY_ID, &id.to_string())
    }

    async fn list_orders(
        &self,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Page<Order>, StoreError> {
        use rusqlite::types::Value;
        let before = storage::seq_cursor(page.cursor.as_ref(), 'o')?.unwrap_or(i64::MAX);
        let limit = i64::from(page.limit) + 1;
        // One statement per filter combination, each served by its own index.
        let (statement, mut values) = match (filter.status, &filter.customer_id) {
            (None, None) => (sql::ORDERS_NEWEST, Vec::new()),
            (Some(status), None) => (
                sql::ORDERS_BY_STATUS,
                vec![Value::Text(status.as_str().to_owned())],
            ),
            (None, Some(customer)) => (
                sql::ORDERS_BY_CUSTOMER,
                vec![Value::Text(customer.as_str().to_owned())],
            ),
            (Some(status), Some(customer)) => (
                sql::ORDERS_BY_CUSTOMER_STATUS,
                vec![
                    Value::Text(customer.as_str().to_owned()),
                    Value::Text(status.as_str().to_owned()),
                ],
            ),
        };
        values.extend([Value::Integer(before), Value::Integer(limit)]);
        let rows = self.rows(statement, rusqlite::params_from_iter(values), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        storage::page(rows, page.limit, |seq| format!("o{seq}"))
    }

    async fn orders_with_id_prefix(
        &self,
        prefix: &orderly_domain::search::OrderIdPrefix,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        self.rows(
            sql::ORDERS_BY_ID_PREFIX,
            params![prefix.as_str(), prefix.end(), limit],
            |r| r.get::<_, String>(1),
        )?
        .iter()
        .map(|doc| decode(doc))
        .collect()
    }

    async fn count_orders(&self, since: Timestamp) -> Result<Vec<(OrderStatus, u64)>, StoreError> {
        let mut counts = Vec::new();
        for status in OrderStatus::ALL {
            let n = self
                .rows(
                    sql::COUNT_ORDERS_SINCE,
                    rusqlite::params![status.as_str(), since.millis()],
                    |r| r.get::<_, i64>(0),
                )?
                .first()
                .copied()
                .unwrap_or(0);
            if n > 0 {
                counts.push((status, u64::try_from(n).unwrap_or(0)));
            }
        }
        Ok(counts)
    }

    async fn order_events(&self, id: OrderId) -> Result<Vec<Event>, StoreError> {
        self.rows(sql::EVENTS_OF_ORDER, [id.to_string()], |r| {
            r.get::<_, String>(0)
        })?
        .iter()
        .map(|p| decode(p))
        .collect()
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = self.row(
            "SELECT request_hash, order_id, created_at FROM idempotency_keys WHERE key = ?1",
            [key],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )?;
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
        self.row(
            "SELECT version, doc FROM documents WHERE kind = ?1 AND key = ?2",
            params![kind.as_str(), key],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )?
        .map(|(version, body)| document(kind, key.to_owned(), version, body))
        .transpose()
    }

    async fn put_document(
        &self,
        doc: &Document,
        expected_version: Option<u32>,
    ) -> Result<(), StoreError> {
        // Through the writer's batches, so concurrent cart writes share an fsync with orders.
        let doc = doc.clone();
        self.writer
            .write(move |c| commit::put_document(c, &doc, expected_version))
            .await
    }

    async fn documents(
        &self,
        kind: DocKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Document>, StoreError> {
        self.rows(
            "SELECT key, version, doc FROM documents WHERE kind = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
            params![kind.as_str(), after.unwrap_or_default(), i64::from(limit)],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
        )?
        .into_iter()
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
        self.row(
            "SELECT available, reserved FROM stock WHERE product_id = ?1",
            [id.as_str()],
            |r| {
                Ok(StockLevel {
                    available: r.get(0)?,
                    reserved: r.get(1)?,
                })
            },
        )
    }

    async fn adjustments(
        &self,
        id: &ProductId,
        limit: u32,
    ) -> Result<Vec<StockAdjustment>, StoreError> {
        self.rows(
            "SELECT delta, reason, actor, at FROM stock_adjustments \
             WHERE product_id = ?1 ORDER BY id DESC LIMIT ?2",
            params![id.as_str(), i64::from(limit)],
            |r| {
                Ok(StockAdjustment {
                    product_id: id.clone(),
                    delta: r.get(0)?,
                    reason: r.get(1)?,
                    actor: r.get(2)?,
                    at: Timestamp::from_millis(r.get(3)?),
                })
            },
        )
    }
}

#[async_trait]
impl UnitOfWork for SqliteStore {
    async fn import_orders(&self, orders: &[Order]) -> Result<(), StoreError> {
        // One write of the batch, one fsync, for the whole slice.
        let rows = orders
            .iter()
            .map(OrderRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        self.writer
            .write(move |c| {
                for row in &rows {
                    match row.insert(c) {
                        Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists),
                        other => other.map_err(writer::unavailable)?,
                    }
                }
                Ok(())
            })
            .await
    }

    async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let prepared = Prepared::new(commit)?;
        self.writer.write(move |c| prepared.apply(c)).await
    }
}

#[async_trait]
impl Readiness for SqliteStore {
    /// Ready when the file's disk has [`MIN_FREE_DISK`] free and a probe write (one row,
    /// through the writer, with its fsync) commits. The space is checked too because a full
    /// disk does not fail every write: one that reuses the write-ahead log's existing pages
    /// still succeeds, while a burst of orders fails.
    async fn check_ready(&self) -> Result<(), StoreError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let free = rustix::fs::statvfs(&dir)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot read the free space of {}: {e}",
                    dir.display()
                ))
            })?;
        if free < MIN_FREE_DISK {
            return Err(StoreError::Unavailable(format!(
                "the disk of {} is full ({} KiB free, {} KiB needed); free some space",
                self.path.display(),
                free / 1024,
                MIN_FREE_DISK / 1024
            )));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let last = self.last_probe.load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) < PROBE_EVERY_MS {
            return Ok(());
        }
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO health (id, checked_at) VALUES (1, ?1) \
                     ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                    params![now],
                )
                .map(|_| ())
                .map_err(writer::unavailable)
            })
            .await?;
        self.last_probe
            .store(now, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn claim_jobs(
        &self,
        now: Timestamp,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Job>, StoreError> {
        let now = now.millis();
        let rows = self
            .writer
            .write(move |c| commit::claim_jobs(c, now, i64::from(limit), lease_ms))
            .await?;
        // Decoded here, off the writer's thread.
        rows.into_iter()
            .map(|row| {
                Ok(Job {
                    id: row.id,
                    consumer: Consumer::parse(&row.consumer)
                        .ok_or_else(|| corrupt(format!("unknown consumer {}", row.consumer)))?,
                    event: decode(&row.payload)?,
                    attempts: u32::try_from(row.attempts).map_err(corrupt)?,
                    last_error: row.last_error,
                    lease: Some(Timestamp::from_millis(now + lease_ms)),
                })
            })
            .collect()
    }

    async fn retry_job(
        &self,
        job: &Job,
        attempts: u32,
        next_at: Timestamp,
        error: &str,
    ) -> Result<(), StoreError> {
        let (id, next_at, error) = (job.id, next_at.millis(), error.to_owned());
        let lease = job.lease.map(Timestamp::millis);
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "UPDATE jobs SET attempts = ?1, next_at = ?2, last_error = ?3, lease_until = NULL \
                     WHERE id = ?4 AND (?5 IS NULL OR lease_until = ?5)",
                    params![attempts, next_at, error, id, lease],
                )
                .map(|_| ())
                .map_err(writer::unavailable)
            })
            .await
    }

    async fn delete_job(&self, job: &Job) -> Result<(), StoreError> {
        let (id, lease) = (job.id, job.lease.map(Timestamp::millis));
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "DELETE FROM jobs WHERE id = ?1 AND (?2 IS NULL OR lease_until = ?2)",
                    params![id, lease],
                )
                .map(|_| ())
                .map_err(writer::unavailable)
            })
            .await
    }

    async fn release_leases(&self) -> Result<u64, StoreError> {
        self.writer
            .write(|c| {
                exec(
                    c,
                    "UPDATE jobs SET lease_until = NULL WHERE lease_until IS NOT NULL",
                    [],
                )
                .map(|n| n as u64)
                .map_err(writer::unavailable)
            })
            .await
    }

    async fn release_claim(&self, lease: Timestamp) -> Result<u64, StoreError> {
        let lease = lease.millis();
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "UPDATE jobs SET lease_until = NULL WHERE lease_until = ?1",
                    [lease],
                )
                .map(|n| n as u64)
                .map_err(writer::unavailable)
            })
            .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        // The earliest moment a claim could find something: over each order's first job only,
        // the later of its due time and its lease's end.
        let due = self.row(
            "SELECT MIN(MAX(next_at, COALESCE(lease_until, 0))) FROM jobs j \
             WHERE NOT EXISTS (SELECT 1 FROM jobs p WHERE p.order_id = j.order_id AND p.lane = j.lane AND p.id < j.id)",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )?;
        Ok(due.flatten().map(Timestamp::from_millis))
    }

    async fn pending_jobs(&self) -> Result<u64, StoreError> {
        let count = self.row("SELECT COUNT(*) FROM jobs", [], |r| r.get::<_, i64>(0))?;
        Ok(count.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }

    async fn waiting_jobs(
        &self,
        order: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<WaitingJob>, StoreError> {
        type Row = (i64, String, i64, Option<String>, i64, Option<i64>, String);
        let read = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Row> {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        };
        let rows = match order {
            Some(id) => self.rows(
                sql::WAITING_JOBS_OF_ORDER,
                params![limit, id.to_string()],
                read,
            )?,
            None => self.rows(sql::WAITING_JOBS, params![limit], read)?,
        };
        rows.into_iter()
            .map(
                |(id, consumer, attempts, last_error, next_at, lease, payload)| {
                    Ok(WaitingJob {
                        job: Job {
                            id,
                            consumer: Consumer::parse(&consumer)
                                .ok_or_else(|| corrupt(format!("unknown consumer {consumer}")))?,
                            event: decode(&payload)?,
                            attempts: u32::try_from(attempts).map_err(corrupt)?,
                            last_error,
                            lease: None,
                        },
                        due: Timestamp::from_millis(next_at),
                        running: lease.is_some(),
                    })
                },
            )
            .collect()
    }

    async fn hurry_job(
        &self,
        order: OrderId,
        job_id: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (order, now) = (order.to_string(), now.millis());
        self.writer
            .write(move |c| {
                exec(
                    c,
                    "UPDATE jobs SET next_at = MIN(next_at, ?3), lease_until = NULL \
                     WHERE id = ?1 AND order_id = ?2 AND attempts > 0 \
                       AND (lease_until IS NULL OR lease_until <= ?3)",
                    params![job_id, order, now],
                )
                .map(|n| n > 0)
                .map_err(writer::unavailable)
            })
            .await
    }
}
