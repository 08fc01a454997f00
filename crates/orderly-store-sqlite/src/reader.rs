//! Readers: read-only connections, used on the caller's own thread.
//!
//! Every read the store makes is a point lookup or a short index range with a limit (the plans
//! test keeps it so), answered from SQLite's page cache in microseconds, and in WAL mode a reader
//! never waits for the writer. Handing such a read to another thread would cost more than the
//! read, so it runs where it is asked, on a connection taken from a small free list (as many as
//! threads read at once, so about one per runtime worker).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use orderly_core::ports::StoreError;
use rusqlite::{Connection, OpenFlags};

use crate::writer::unavailable;

/// Read-only connections to the file, opened on demand and kept.
pub(crate) struct Readers {
    path: PathBuf,
    busy_timeout: Duration,
    /// Most connections kept when idle.
    keep: usize,
    idle: Mutex<Vec<Connection>>,
}

/// Cached prepared statements per reader: every read statement the store has.
const STATEMENT_CACHE: usize = 48;

impl Readers {
    /// Readers of `path`; one is opened now, so a file that cannot be read fails here.
    pub(crate) fn open(
        path: PathBuf,
        busy_timeout: Duration,
        keep: usize,
    ) -> Result<Readers, StoreError> {
        let readers = Readers {
            path,
            busy_timeout,
            keep: keep.max(1),
            idle: Mutex::new(Vec::new()),
        };
        let first = readers.connect()?;
        readers.give_back(first);
        Ok(readers)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot open {}: {e}", self.path.display()))
        })?;
        conn.busy_timeout(self.busy_timeout).map_err(unavailable)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < self.keep {
            idle.push(conn);
        }
    }

    /// Runs `read` on an idle connection (opening one if none is idle).
    pub(crate) fn read<R>(
        &self,
        read: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let result = read(&conn);
        self.give_back(conn);
        result
    }

    /// Closes the idle connections.
    pub(crate) fn close(&self) {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}
