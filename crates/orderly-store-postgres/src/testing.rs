//! Test support: a fresh schema on a real PostgreSQL for every test, dropped afterwards.
//!
//! The server is `ORDERLY_TEST_DATABASE_URL`, by default the machine's
//! `postgres://postgres@127.0.0.1:5432/test`.

use std::str::FromStr;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The server tests use.
#[must_use]
pub fn admin_url() -> String {
    std::env::var("ORDERLY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of its own; `url` connects into it. Dropped with everything in it when this value
/// is dropped.
pub struct TestSchema {
    /// A database URL whose `search_path` is the new schema.
    pub url: String,
    name: String,
}

impl TestSchema {
    /// Creates `orderly_test_<random>`.
    ///
    /// # Errors
    /// A message saying how to reach PostgreSQL if it cannot be reached.
    pub async fn create() -> Result<TestSchema, String> {
        let admin = admin_url();
        let name = format!("orderly_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        let separator = if admin.contains('?') { '&' } else { '?' };
        Ok(TestSchema {
            url: format!("{admin}{separator}options=-c%20search_path%3D{name}"),
            name,
        })
    }

    /// The schema's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

async fn connect(url: &str) -> Result<PgConnection, String> {
    let options = PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    PgConnection::connect_with(&options).await.map_err(|e| {
        format!(
            "cannot reach PostgreSQL at {url}: {e}; start it (pg_ctlcluster 15 main start) or set ORDERLY_TEST_DATABASE_URL"
        )
    })
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside or outside a runtime: use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = connect(&admin_url()).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .execute(&mut conn)
                .await
                .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            tracing::warn!(schema = %self.name, "could not drop test schema");
        }
    }
}
