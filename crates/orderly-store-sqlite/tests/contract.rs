//! The storage contract against a real SQLite file, fresh per test.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use orderly_store_sqlite::{SqliteSettings, SqliteStore};
use orderly_testkit::Store;
use tempfile::TempDir;

async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteSettings::new(dir.path().join("orderly.db")))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

orderly_testkit::store_contract_tests!(fresh());
