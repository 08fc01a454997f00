//! The storage contract against the machine's PostgreSQL, a fresh schema per test.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use orderly_store_postgres::testing::TestSchema;
use orderly_store_postgres::{PgSettings, PgStore};
use orderly_testkit::Store;

async fn fresh() -> (Arc<dyn Store>, TestSchema) {
    let schema = TestSchema::create().await.unwrap();
    let mut settings = PgSettings::new(schema.url.clone());
    settings.pool_size = 8;
    let store = PgStore::open(&settings).await.unwrap();
    (Arc::new(store), schema)
}

orderly_testkit::store_contract_tests!(fresh());
