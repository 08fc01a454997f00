//! The storage baseline: the four rows a placed order writes (order, outbox event, saga job,
//! idempotency key) in one transaction, straight through sqlx — what the database can do with
//! Orderly's work and none of its code. Same schema, same durability settings, same pool shape.

use std::str::FromStr;
use std::sync::Arc;

use orderly_domain::{Event, EventKind};
use orderly_store_postgres::{PgSettings, PgStore};
use orderly_store_sqlite::{SqliteSettings, SqliteStore};
use orderly_testkit::fixtures;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::server::Fresh;
use crate::{Report, drive, latency, own_cpu_seconds};

/// One order's rows as text, the way Orderly stores them.
fn rows() -> (String, String, String, String) {
    let order = fixtures::order("001", &[("001", 1), ("002", 1)]);
    let event = Event::about(&order, EventKind::OrderPlaced, &fixtures::stamp(), None);
    (
        order.id.to_string(),
        serde_json::to_string(&order).unwrap_or_default(),
        event.id.to_string(),
        serde_json::to_string(&event).unwrap_or_default(),
    )
}

pub async fn run(
    database: &str,
    clients: usize,
    requests: u64,
    seconds: u64,
) -> Result<Report, String> {
    let fresh = Fresh::create(database).await?;
    let cpu_before = own_cpu_seconds();
    let (latencies, errors, elapsed) = match &fresh {
        Fresh::Sqlite(dir) => {
            let path = dir.path().join("orderly.db");
            SqliteStore::open(&SqliteSettings::new(&path))
                .await
                .map_err(|e| e.to_string())?
                .close()
                .await;
            let options = SqliteConnectOptions::from_str("sqlite:")
                .map_err(|e| e.to_string())?
                .filename(&path)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full);
            // One writer connection, as Orderly's embedded store has.
            let pool = Arc::new(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            drive(clients, requests, seconds, move |n| {
                let pool = Arc::clone(&pool);
                async move {
                    let (order_id, doc, event_id, payload) = rows();
                    let write = async {
                        let mut tx = pool.begin().await?;
                        sqlx::query("INSERT INTO orders (id, customer_id, status, version, created_at, doc) VALUES (?, '001', 'placed', 1, 0, ?)")
                            .bind(&order_id).bind(&doc).execute(&mut *tx).await?;
                        let seq: i64 = sqlx::query_scalar("INSERT INTO events (id, order_id, kind, at, payload) VALUES (?, ?, 'OrderPlaced', 0, ?) RETURNING seq")
                            .bind(&event_id).bind(&order_id).bind(&payload).fetch_one(&mut *tx).await?;
                        sqlx::query("INSERT INTO jobs (order_id, consumer, event_seq, next_at) VALUES (?, 'inventory', ?, 0)")
                            .bind(&order_id).bind(seq).execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO jobs (order_id, consumer, event_seq, next_at, lane) VALUES (?, 'notify', ?, 0, 'notify')")
                            .bind(&order_id).bind(seq).execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO idempotency_keys (key, request_hash, order_id, created_at) VALUES (?, 'h', ?, 0)")
                            .bind(format!("raw-{n}")).bind(&order_id).execute(&mut *tx).await?;
                        tx.commit().await
                    };
                    write.await.is_ok()
                }
            })
            .await
        }
        Fresh::Postgres { url, .. } => {
            PgStore::open(&PgSettings::new(url.clone()))
                .await
                .map_err(|e| e.to_string())?
                .close()
                .await;
            let pool = Arc::new(
                PgPoolOptions::new()
                    .max_connections(16)
                    .connect(url)
                    .await
                    .map_err(|e| e.to_string())?,
            );
            drive(clients, requests, seconds, move |n| {
                let pool = Arc::clone(&pool);
                async move {
                    let (order_id, doc, event_id, payload) = rows();
                    let order_uuid = uuid::Uuid::parse_str(&order_id).unwrap_or_default();
                    let event_uuid = uuid::Uuid::parse_str(&event_id).unwrap_or_default();
                    let write = async {
                        let mut tx = pool.begin().await?;
                        sqlx::query("INSERT INTO orders (id, customer_id, status, version, created_at, doc) VALUES ($1, '001', 'placed', 1, 0, $2)")
                            .bind(order_uuid).bind(&doc).execute(&mut *tx).await?;
                        let seq: i64 = sqlx::query_scalar("INSERT INTO events (id, order_id, kind, at, payload) VALUES ($1, $2, 'OrderPlaced', 0, $3) RETURNING seq")
                            .bind(event_uuid).bind(order_uuid).bind(&payload).fetch_one(&mut *tx).await?;
                        sqlx::query("INSERT INTO jobs (order_id, consumer, event_seq, next_at) VALUES ($1, 'inventory', $2, 0)")
                            .bind(order_uuid).bind(seq).execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO jobs (order_id, consumer, event_seq, next_at, lane) VALUES ($1, 'notify', $2, 0, 'notify')")
                            .bind(order_uuid).bind(seq).execute(&mut *tx).await?;
                        sqlx::query("INSERT INTO idempotency_keys (key, request_hash, order_id, created_at) VALUES ($1, 'h', $2, 0)")
                            .bind(format!("raw-{n}")).bind(order_uuid).execute(&mut *tx).await?;
                        tx.commit().await
                    };
                    write.await.is_ok()
                }
            })
            .await
        }
    };
    let requests_done = latencies.len() as u64;
    Ok(Report {
        scenario: "raw-storage".to_owned(),
        database: if matches!(fresh, Fresh::Sqlite(_)) {
            "sqlite".into()
        } else {
            "postgres".into()
        },
        clients,
        requests: requests_done,
        errors,
        seconds: elapsed,
        throughput_per_s: if elapsed > 0.0 {
            requests_done as f64 / elapsed
        } else {
            0.0
        },
        latency_ms: latency(latencies),
        server: None,
        load_generator_cpu_s: own_cpu_seconds() - cpu_before,
    })
}
