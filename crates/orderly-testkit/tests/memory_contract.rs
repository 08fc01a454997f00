//! The storage contract against the in-memory store: the reference the real adapters match.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use orderly_core::memory::MemoryStore;
use orderly_testkit::Store;

async fn fresh() -> (Arc<dyn Store>, ()) {
    (Arc::new(MemoryStore::new()), ())
}

orderly_testkit::store_contract_tests!(fresh());
