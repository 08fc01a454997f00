//! The storage contract against DynamoDB on the local AWS emulator, a fresh table per test.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use orderly_store_dynamodb::testing::TestTable;
use orderly_testkit::Store;

async fn fresh() -> (Arc<dyn Store>, TestTable) {
    let table = TestTable::create().await.unwrap();
    (Arc::new(table.store.clone()), table)
}

orderly_testkit::store_contract_tests!(fresh());
