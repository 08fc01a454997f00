//! The writes themselves, as they run on the writer thread: a [`Commit`] (prepared on the
//! caller's thread, so the writer only binds and steps), a document, the job queue's leases.

use orderly_core::ports::{
    Commit, CommitError, Document, DocumentWrite, OrderWrite, StockMove, StoreError,
};
use orderly_core::storage::encode as to_json;
use orderly_domain::{Order, OrderId, StockAdjustment};
use rusqlite::{Connection, OptionalExtension, Params, params};

use crate::writer::{is_unique_violation, unavailable};

/// Runs one cached statement; the number of rows it changed.
pub(crate) fn exec(conn: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// An order row as written: the document encoded, the columns the queries use beside it.
pub(crate) struct OrderRow {
    id: OrderId,
    customer_id: String,
    status: &'static str,
    version: i64,
    created_at: i64,
    doc: String,
}

impl OrderRow {
    pub(crate) fn new(order: &Order) -> Result<Self, StoreError> {
        Ok(OrderRow {
            id: order.id,
            customer_id: order.customer_id.as_str().to_owned(),
            status: order.status.as_str(),
            version: i64::from(order.version),
            created_at: order.created_at.millis(),
            doc: to_json(order)?,
        })
    }

    /// Inserts the row; the error is SQLite's, so each caller can name a taken id its own way.
    pub(crate) fn insert(&self, conn: &Connection) -> rusqlite::Result<()> {
        exec(
            conn,
            "INSERT INTO orders (id, customer_id, status, version, created_at, doc) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                self.id.to_string(),
                self.customer_id,
                self.status,
                self.version,
                self.created_at,
                self.doc
            ],
        )
        .map(|_| ())
    }
}

struct EventRow {
    id: String,
    order_id: String,
    kind: &'static str,
    at: i64,
    payload: String,
    /// (consumer, lane) of each job it queues.
    jobs: Vec<(&'static str, &'static str)>,
}

/// A [`Commit`] with every document encoded.
pub(crate) struct Prepared {
    handled: Option<(&'static str, String, i64)>,
    idempotency: Option<(String, String, String, i64)>,
    insert: Option<OrderRow>,
    update: Option<(OrderRow, i64)>,
    stock: Vec<StockMove>,
    adjustment: Option<StockAdjustment>,
    events: Vec<EventRow>,
    documents: Vec<DocumentWrite>,
}

impl Prepared {
    pub(crate) fn new(commit: Commit) -> Result<Self, StoreError> {
        let (insert, update) = match &commit.order {
            Some(OrderWrite::Insert(order)) => (Some(OrderRow::new(order)?), None),
            Some(OrderWrite::Update {
                order,
                expected_version,
            }) => (
                None,
                Some((OrderRow::new(order)?, i64::from(*expected_version))),
            ),
            None => (None, None),
        };
        let events = commit
            .events
            .iter()
            .map(|out| {
                let e = &out.event;
                Ok(EventRow {
                    id: e.id.to_string(),
                    order_id: e.order_id.to_string(),
                    kind: e.kind.as_str(),
                    at: e.time.millis(),
                    payload: to_json(e)?,
                    jobs: out
                        .consumers
                        .iter()
                        .map(|c| (c.as_str(), c.lane().as_str()))
                        .collect(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Prepared {
            handled: commit
                .handled
                .map(|h| (h.consumer.as_str(), h.event_id.to_string(), h.job_id)),
            idempotency: commit.idempotency.map(|r| {
                (
                    r.key,
                    r.request_hash,
                    r.order_id.to_string(),
                    r.created_at.millis(),
                )
            }),
            insert,
            update,
            stock: commit.stock,
            adjustment: commit.adjustment,
            events,
            documents: commit.documents,
        })
    }

    /// Writes every part, or fails on the first condition that does not hold. The conditions
    /// are read first, so a refused commit has changed nothing (see [`crate::writer`]).
    pub(crate) fn apply(&self, conn: &Connection) -> Result<(), CommitError> {
        let db = |e: rusqlite::Error| CommitError::Store(unavailable(e));
        self.check(conn)?;
        if let Some((consumer, event_id, job_id)) = &self.handled {
            match exec(
                conn,
                "INSERT INTO handled_events (consumer, event_id, at) \
                 VALUES (?1, ?2, strftime('%s','now') * 1000)",
                params![consumer, event_id],
            ) {
                Err(e) if is_unique_violation(&e) => return Err(CommitError::AlreadyHandled),
                other => other.map_err(db)?,
            };
            exec(conn, "DELETE FROM jobs WHERE id = ?1", [job_id]).map_err(db)?;
        }
        if let Some((key, hash, order_id, at)) = &self.idempotency {
            match exec(
                conn,
                "INSERT INTO idempotency_keys (key, request_hash, order_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![key, hash, order_id, at],
            ) {
                Err(e) if is_unique_violation(&e) => {
                    return Err(CommitError::IdempotencyKeyTaken);
                }
                other => other.map_err(db)?,
            };
        }
        if let Some(row) = &self.insert {
            row.insert(conn).map_err(db)?;
        }
        if let Some((row, expected)) = &self.update {
            let changed = exec(
                conn,
                "UPDATE orders SET status = ?1, version = ?2, doc = ?3 WHERE id = ?4 AND version = ?5",
                params![row.status, row.version, row.doc, row.id.to_string(), expected],
            )
            .map_err(db)?;
            if changed == 0 {
                return Err(CommitError::VersionConflict(row.id));
            }
        }
        for m in &self.stock {
            // The WHERE clause guards again: a move that would go below zero touches no row.
            let changed = exec(
                conn,
                "UPDATE stock SET available = available + ?1, reserved = reserved + ?2 \
                 WHERE product_id = ?3 AND available + ?1 >= 0 AND reserved + ?2 >= 0",
                params![m.available, m.reserved, m.product_id.as_str()],
            )
            .map_err(db)?;
            if changed == 0 {
                return Err(CommitError::InsufficientStock(m.product_id.clone()));
            }
        }
        if let Some(a) = &self.adjustment {
            exec(
                conn,
                "INSERT INTO stock_adjustments (product_id, delta, reason, actor, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    a.product_id.as_str(),
                    a.delta,
                    a.reason,
                    a.actor,
                    a.at.millis()
                ],
            )
            .map_err(db)?;
        }
        for w in &self.documents {
            match put_document(conn, &w.document, w.expected_version) {
                Err(StoreError::AlreadyExists | StoreError::Conflict | StoreError::NotFound) => {
                    return Err(CommitError::DocumentChanged(
                        w.document.kind,
                        w.document.key.clone(),
                    ));
                }
                other => other?,
            }
        }
        for e in &self.events {
            exec(
                conn,
                "INSERT INTO events (id, order_id, kind, at, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.id, e.order_id, e.kind, e.at, e.payload],
            )
            .map_err(db)?;
            // `seq` is the table's rowid.
            let seq = conn.last_insert_rowid();
            for (consumer, lane) in &e.jobs {
                exec(
                    conn,
                    "INSERT INTO jobs (order_id, consumer, lane, event_seq, next_at) \
                     VALUES (?1, ?2, ?3, ?4, 0)",
                    params![e.order_id, consumer, lane, seq],
                )
                .map_err(db)?;
            }
        }
        Ok(())
    }
}

impl Prepared {
    /// The commit's conditions, read before anything is written, in the order a write would
    /// meet them: the event not yet handled, the order still at the version read, every stock
    /// move leaving both counts at zero or above (moves of one product taken in turn), every
    /// document still at the version read.
    fn check(&self, conn: &Connection) -> Result<(), CommitError> {
        let db = |e: rusqlite::Error| CommitError::Store(unavailable(e));
        if let Some((consumer, event_id, _)) = &self.handled {
            let handled = conn
                .prepare_cached(
                    "SELECT 1 FROM handled_events WHERE consumer = ?1 AND event_id = ?2",
                )
                .and_then(|mut s| s.exists(params![consumer, event_id]))
                .map_err(db)?;
            if handled {
                return Err(CommitError::AlreadyHandled);
            }
        }
        if let Some((row, expected)) = &self.update {
            let version: Option<i64> = conn
                .prepare_cached("SELECT version FROM orders WHERE id = ?1")
                .and_then(|mut s| s.query_row([row.id.to_string()], |r| r.get(0)).optional())
                .map_err(db)?;
            if version != Some(*expected) {
                return Err(CommitError::VersionConflict(row.id));
            }
        }
        for w in &self.documents {
            let version: Option<u32> = conn
                .prepare_cached("SELECT version FROM documents WHERE kind = ?1 AND key = ?2")
                .and_then(|mut s| {
                    s.query_row(params![w.document.kind.as_str(), w.document.key], |r| {
                        r.get(0)
                    })
                    .optional()
                })
                .map_err(db)?;
            if version != w.expected_version {
                return Err(CommitError::DocumentChanged(
                    w.document.kind,
                    w.document.key.clone(),
                ));
            }
        }
        let mut levels: Vec<(&str, i64, i64)> = Vec::with_capacity(self.stock.len());
        for m in &self.stock {
            let id = m.product_id.as_str();
            let at = match levels.iter().position(|l| l.0 == id) {
                Some(at) => at,
                None => {
                    let level: Option<(i64, i64)> = conn
                        .prepare_cached(
                            "SELECT available, reserved FROM stock WHERE product_id = ?1",
                        )
                        .and_then(|mut s| {
                            s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional()
                        })
                        .map_err(db)?;
                    let Some((available, reserved)) = level else {
                        return Err(CommitError::UnknownProduct(m.product_id.clone()));
                    };
                    levels.push((id, available, reserved));
                    levels.len() - 1
                }
            };
            let level = &mut levels[at];
            level.1 += m.available;
            level.2 += m.reserved;
            if level.1 < 0 || level.2 < 0 {
                return Err(CommitError::InsufficientStock(m.product_id.clone()));
            }
        }
        Ok(())
    }
}

/// Writes one document: insert if new, else only over the version the caller read.
pub(crate) fn put_document(
    conn: &Connection,
    doc: &Document,
    expected_version: Option<u32>,
) -> Result<(), StoreError> {
    let kind = doc.kind.as_str();
    let Some(expected) = expected_version else {
        return match exec(
            conn,
            "INSERT INTO documents (kind, key, version, doc) VALUES (?1, ?2, ?3, ?4)",
            params![kind, doc.key, doc.version, doc.body],
        ) {
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
            other => other.map(|_| ()).map_err(unavailable),
        };
    };
    let changed = exec(
        conn,
        "UPDATE documents SET version = ?1, doc = ?2 WHERE kind = ?3 AND key = ?4 AND version = ?5",
        params![doc.version, doc.body, kind, doc.key, expected],
    )
    .map_err(unavailable)?;
    if changed > 0 {
        return Ok(());
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM documents WHERE kind = ?1 AND key = ?2")
        .and_then(|mut s| s.exists(params![kind, doc.key]))
        .map_err(unavailable)?;
    Err(if exists {
        StoreError::Conflict
    } else {
        StoreError::NotFound
    })
}

/// A claimed job as read, before its event is decoded (that happens off the writer thread).
pub(crate) struct ClaimedRow {
    pub(crate) id: i64,
    pub(crate) consumer: String,
    pub(crate) attempts: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) payload: String,
}

/// Leases up to `limit` due jobs (see [`crate::sql::CLAIM_JOBS`]) and reads them, by id.
pub(crate) fn claim_jobs(
    conn: &Connection,
    now: i64,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<ClaimedRow>, StoreError> {
    let mut claimed: Vec<(i64, String, i64, Option<String>, i64)> = conn
        .prepare_cached(crate::sql::CLAIM_JOBS)
        .and_then(|mut s| {
            s.query_map(params![now, limit, lease_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })
        .map_err(unavailable)?;
    claimed.sort_unstable_by_key(|c| c.0);
    let mut payload = conn
        .prepare_cached("SELECT payload FROM events WHERE seq = ?1")
        .map_err(unavailable)?;
    claimed
        .into_iter()
        .map(|(id, consumer, attempts, last_error, seq)| {
            let payload: Option<String> = payload
                .query_row([seq], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            Ok(ClaimedRow {
                id,
                consumer,
                attempts,
                last_error,
                payload: payload.ok_or_else(|| {
                    StoreError::Corrupt(format!("job {id} names a missing event {seq}"))
                })?,
            })
        })
        .collect()
}
