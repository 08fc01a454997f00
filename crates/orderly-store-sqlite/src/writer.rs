//! The one writer: a thread that owns the file's only writing connection and runs every write.
//!
//! Writes arrive as closures over a channel. The thread takes all that are waiting (up to
//! [`GROUP_MAX`]), runs each in its own savepoint inside one `BEGIN IMMEDIATE` transaction, so
//! one that fails its conditions changes nothing and fails alone, commits them all with one
//! fsync, and only then answers each caller: group commit. Under load many writes share one
//! fsync; alone, a write waits for nobody.
//!
//! The statements run on this thread, synchronously, from a cache of prepared statements: no
//! hand-off to another thread per statement, only one per write (the channel) and one per answer.

use std::path::Path;
use std::time::Duration;

use orderly_core::ports::StoreError;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{mpsc, oneshot};

/// Most writes folded into one transaction.
pub(crate) const GROUP_MAX: usize = 256;

/// Cached prepared statements: every write statement the store has, with room to spare.
const STATEMENT_CACHE: usize = 64;

/// A write waiting for the thread: run it, then answer once the batch's fate is known.
trait Write: Send {
    /// Runs the write inside the batch's transaction; `guarded`, in a savepoint of its own.
    /// False if it failed after changing something (possible only unguarded): the batch must
    /// then be undone and run again, guarded.
    fn apply(&mut self, conn: &Connection, guarded: bool) -> bool;
    /// Answers the caller: `committed` is the batch's commit (or why it did not happen).
    fn answer(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Task<F, R, E> {
    run: F,
    result: Option<Result<R, E>>,
    reply: oneshot::Sender<Result<R, E>>,
}

impl<F, R, E> Write for Task<F, R, E>
where
    F: Fn(&Connection) -> Result<R, E> + Send,
    R: Send,
    E: From<StoreError> + Send,
{
    fn apply(&mut self, conn: &Connection, guarded: bool) -> bool {
        if guarded {
            self.result = Some(in_savepoint(conn, &self.run));
            return true;
        }
        let before = conn.total_changes();
        let result = (self.run)(conn);
        let clean = result.is_ok() || conn.total_changes() == before;
        self.result = Some(result);
        clean
    }

    fn answer(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Unavailable("the write was not run".into()).into()),
            (Err(e), _) => Err(e.into()),
        };
        // The caller may have gone (a dropped request); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// Runs `run` between `SAVEPOINT` and `RELEASE`, undoing its changes if it fails.
fn in_savepoint<R, E: From<StoreError>>(
    conn: &Connection,
    run: impl Fn(&Connection) -> Result<R, E>,
) -> Result<R, E> {
    exec(conn, "SAVEPOINT w").map_err(E::from)?;
    let result = run(conn);
    let closed = if result.is_ok() {
        exec(conn, "RELEASE w")
    } else {
        exec(conn, "ROLLBACK TO w").and_then(|()| exec(conn, "RELEASE w"))
    };
    match closed {
        Ok(()) => result,
        Err(e) => Err(E::from(e)),
    }
}

/// Runs one statement without parameters (transaction control).
fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    crate::commit::exec(conn, sql, [])
        .map(|_| ())
        .map_err(unavailable)
}

enum Message {
    Write(Box<dyn Write>),
    /// Finish what is queued, close the connection, then say so.
    Close(oneshot::Sender<()>),
}

/// The handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Message>,
}

impl Writer {
    /// Opens the writing connection and starts its thread.
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<Writer, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(busy_timeout).map_err(unavailable)?;
        // WAL was set when the file was made (it sticks); FULL makes every commit durable
        // before it is answered. The savepoints' journal stays in memory: it only ever undoes
        // a write inside the open transaction, and on disk it cost a write per page touched.
        for (pragma, value) in [
            ("journal_mode", "wal"),
            ("synchronous", "full"),
            ("foreign_keys", "on"),
            ("temp_store", "memory"),
        ] {
            conn.pragma_update(None, pragma, value)
                .map_err(|e| StoreError::Unavailable(format!("PRAGMA {pragma}: {e}")))?;
        }
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (queue, inbox) = mpsc::channel(4 * GROUP_MAX);
        std::thread::Builder::new()
            .name("orderly-sqlite-writer".into())
            .spawn(move || run(conn, inbox))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Writer { queue })
    }

    /// Runs `write` on the writer thread, in the next batch, and answers once that batch is
    /// durable (or with the reason it is not). An error from `write` undoes its own changes
    /// only.
    ///
    /// `write` should check its conditions before it changes anything: a batch runs without
    /// savepoints first, and a write that fails after a change makes the thread undo the batch
    /// and run it again with a savepoint around each write (so `write` may run twice).
    pub(crate) async fn write<R, E>(
        &self,
        write: impl Fn(&Connection) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let task = Task {
            run: write,
            result: None,
            reply,
        };
        self.queue
            .send(Message::Write(Box::new(task)))
            .await
            .map_err(|_| E::from(StoreError::Unavailable("the store is closed".into())))?;
        answer
            .await
            .map_err(|_| E::from(StoreError::Unavailable("the writer stopped".into())))?
    }

    /// Lets the writes already queued finish, then closes the connection (checkpointing the
    /// WAL if it is the file's last).
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

fn run(conn: Connection, mut inbox: mpsc::Receiver<Message>) {
    let mut batch: Vec<Box<dyn Write>> = Vec::with_capacity(GROUP_MAX);
    let mut closing = None;
    while closing.is_none() {
        match inbox.blocking_recv() {
            Some(Message::Write(w)) => batch.push(w),
            Some(Message::Close(done)) => closing = Some(done),
            None => break,
        }
        while closing.is_none() && batch.len() < GROUP_MAX {
            match inbox.try_recv() {
                Ok(Message::Write(w)) => batch.push(w),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            // A write that panics must not take the thread, and with it every later write,
            // down: its batch is rolled back and its callers hear so.
            let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                commit_batch(&conn, &mut batch)
            }))
            .unwrap_or_else(|_| {
                if !conn.is_autocommit() {
                    let _ = exec(&conn, "ROLLBACK");
                }
                Err(StoreError::Unavailable(
                    "a write failed unexpectedly; nothing of its batch was written".into(),
                ))
            });
            for write in batch.drain(..) {
                write.answer(committed.clone());
            }
        }
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite writer failed");
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Runs every write of the batch in one transaction and commits it. First without
/// savepoints, which cost a copy of every page a write touches; if a write failed after
/// changing something, the batch is undone and run again with a savepoint around each write.
fn commit_batch(conn: &Connection, batch: &mut [Box<dyn Write>]) -> Result<(), StoreError> {
    if !run_batch(conn, batch, false)? {
        exec(conn, "ROLLBACK")?;
        if !run_batch(conn, batch, true)? {
            return Err(StoreError::Unavailable(
                "a write failed inside its savepoint".into(),
            ));
        }
    }
    exec(conn, "COMMIT").inspect_err(|_| {
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
    })
}

/// Opens the transaction and applies each write; false (with the transaction still open) if
/// one failed after changing something.
fn run_batch(
    conn: &Connection,
    batch: &mut [Box<dyn Write>],
    guarded: bool,
) -> Result<bool, StoreError> {
    if !conn.is_autocommit() {
        // A transaction left open by a failure to end the last one.
        exec(conn, "ROLLBACK")?;
    }
    exec(conn, "BEGIN IMMEDIATE")?;
    for write in batch.iter_mut() {
        let clean = write.apply(conn, guarded);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full disk): nothing of
            // the batch stands, and every caller must hear so.
            return Err(StoreError::Unavailable(
                "the transaction was rolled back by SQLite".into(),
            ));
        }
        if !clean {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A failure of the database itself: the caller may try again.
pub(crate) fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// True if `e` is a UNIQUE or PRIMARY KEY violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == ErrorCode::ConstraintViolation
                && matches!(
                    f.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                )
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_panicking_write_fails_its_batch_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = wal; CREATE TABLE t (x INTEGER)")
            .unwrap();
        let writer = Writer::start(&path, Duration::from_secs(1)).unwrap();
        let broken = writer.write(|c| -> Result<(), StoreError> {
            c.execute("INSERT INTO t VALUES (1)", [])
                .map_err(unavailable)?;
            panic!("a bug inside a write");
        });
        assert!(matches!(broken.await, Err(StoreError::Unavailable(_))));
        writer
            .write(|c| {
                c.execute("INSERT INTO t VALUES (2)", [])
                    .map(|_| ())
                    .map_err(unavailable)
            })
            .await
            .unwrap();
        let rows: Vec<i64> = writer
            .write(|c| {
                c.prepare("SELECT x FROM t")
                    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                    .map_err(unavailable)
            })
            .await
            .unwrap();
        assert_eq!(rows, [2], "the panicking write's row was rolled back");
        writer.close().await;
    }
}
