//! The storage backend a command runs on, chosen by the database URL.

use std::path::Path;
use std::sync::Arc;

use orderly_core::ports::Store;
use orderly_store_postgres::{PgSettings, PgStore, redact};
use orderly_store_sqlite::{SqliteSettings, SqliteStore};

use crate::config::{Database, PgTuning};

/// An open database.
pub enum Backend {
    /// The embedded runtime's file.
    Sqlite(Arc<SqliteStore>),
    /// A cluster node's share of PostgreSQL.
    Postgres(Arc<PgStore>),
}

impl Backend {
    /// Opens (and migrates) the database.
    ///
    /// # Errors
    /// What failed, and what to try.
    pub async fn open(database: &Database, tuning: &PgTuning) -> Result<Backend, String> {
        match database {
            Database::Sqlite(path) => SqliteStore::open(&SqliteSettings::new(path))
                .await
                .map(|s| Backend::Sqlite(Arc::new(s)))
                .map_err(|e| {
                    format!("{e}\n  check the path and its permissions, or choose another with --database-url sqlite://PATH")
                }),
            Database::Postgres(url) => PgStore::open(&pg_settings(url, tuning))
                .await
                .map(|s| Backend::Postgres(Arc::new(s)))
                .map_err(|e| {
                    format!("{e}\n  check that PostgreSQL runs and that {} is right", redact(url))
                }),
        }
    }

    /// Applies the migrations; returns how many the schema has.
    ///
    /// # Errors
    /// What failed.
    pub async fn migrate(database: &Database, tuning: &PgTuning) -> Result<usize, String> {
        match database {
            Database::Sqlite(path) => SqliteStore::migrate(&SqliteSettings::new(path)).await,
            Database::Postgres(url) => PgStore::migrate(&pg_settings(url, tuning)).await,
        }
        .map_err(|e| e.to_string())
    }

    /// Every storage port.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(s) => Arc::clone(s) as Arc<dyn Store>,
            Backend::Postgres(s) => Arc::clone(s) as Arc<dyn Store>,
        }
    }

    /// True when this process is the database's only node.
    pub fn is_embedded(&self) -> bool {
        matches!(self, Backend::Sqlite(_))
    }

    /// Closes the pools.
    pub async fn close(&self) {
        match self {
            Backend::Sqlite(s) => s.close().await,
            Backend::Postgres(s) => s.close().await,
        }
    }
}

fn pg_settings(url: &str, tuning: &PgTuning) -> PgSettings {
    PgSettings {
        url: url.to_owned(),
        pool_size: tuning.pool_size,
        statement_timeout: tuning.statement_timeout,
        lock_timeout: tuning.lock_timeout,
        acquire_timeout: tuning.acquire_timeout,
    }
}

/// Holds an exclusive lock on `<database>.lock` for as long as the returned file lives: one
/// `orderly serve` owns an embedded database.
///
/// # Errors
/// Another process holds it, or the file cannot be made.
pub fn lock_embedded(path: &Path) -> Result<std::fs::File, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create folder {}: {e}", dir.display()))?;
    }
    let lock_path = path.with_extension("db.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another `orderly serve` is using {}; stop it first, or give this one its own --database-url",
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("cannot lock {}: {e}", lock_path.display()))
        }
    }
}
