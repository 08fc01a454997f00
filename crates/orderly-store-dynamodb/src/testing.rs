//! Test support: a fresh table per test on the local AWS emulator, deleted afterwards.
//!
//! The emulator is `ORDERLY_TEST_AWS_ENDPOINT`, by default `http://127.0.0.1:5005` (what
//! `scripts/test` starts: moto in server mode).

use crate::{DynamoSettings, DynamoStore};

/// The emulator tests use.
#[must_use]
pub fn endpoint() -> String {
    std::env::var("ORDERLY_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5005".to_owned())
}

/// Settings for a table on the emulator, with its static test credentials.
#[must_use]
pub fn emulator_settings(table: &str) -> DynamoSettings {
    DynamoSettings {
        table: table.to_owned(),
        endpoint: Some(endpoint()),
        region: Some("us-east-1".to_owned()),
        static_credentials: Some(("testing".to_owned(), "testing".to_owned())),
    }
}

/// A table of its own; deleted when this value is dropped.
pub struct TestTable {
    /// The store on it.
    pub store: DynamoStore,
}

impl TestTable {
    /// Creates `orderly-test-<random>` with its indexes.
    ///
    /// # Errors
    /// A message saying how to start the emulator if it cannot be reached.
    pub async fn create() -> Result<TestTable, String> {
        let name = format!("orderly-test-{}", uuid::Uuid::now_v7().simple());
        let store = DynamoStore::connect(&emulator_settings(&name)).await;
        store.create_table().await.map_err(|e| {
            format!(
                "cannot create a table on the AWS emulator at {}: {e}; run scripts/test (it starts the emulator) or set ORDERLY_TEST_AWS_ENDPOINT",
                endpoint()
            )
        })?;
        Ok(TestTable { store })
    }
}

impl Drop for TestTable {
    fn drop(&mut self) {
        let store = self.store.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(store.delete_table()).ok()
        })
        .join();
    }
}
