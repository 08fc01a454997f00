//! Every hot query is served by an index: none scans a large table from end to end.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use orderly_store_sqlite::{SqliteSettings, SqliteStore, sql};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

#[tokio::test]
async fn hot_queries_use_indexes_on_large_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orderly.db");
    SqliteStore::open(&SqliteSettings::new(&path))
        .await
        .unwrap()
        .close()
        .await;
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .connect()
        .await
        .unwrap();
    for statement in [
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO orders (id, customer_id, status, version, created_at, doc) \
         SELECT 'o' || i, 'c' || (i % 500), \
                CASE i % 4 WHEN 0 THEN 'placed' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'canceled' END, \
                1, i, '{}' FROM n",
        "INSERT INTO events (id, order_id, kind, at, payload) SELECT 'e' || seq, id, 'OrderPlaced', seq, '{}' FROM orders",
        "INSERT INTO jobs (order_id, consumer, event_seq, next_at, attempts) SELECT order_id, 'inventory', seq, seq * 1000, CASE WHEN seq % 400 = 0 THEN 2 ELSE 0 END FROM events WHERE seq % 4 = 0",
        "ANALYZE",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for (name, statement) in [
        ("order by id", sql::ORDER_BY_ID),
        ("orders by id prefix", sql::ORDERS_BY_ID_PREFIX),
        ("orders newest first", sql::ORDERS_NEWEST),
        ("orders by status", sql::ORDERS_BY_STATUS),
        ("orders of a status counted since", sql::COUNT_ORDERS_SINCE),
        ("orders by customer", sql::ORDERS_BY_CUSTOMER),
        (
            "orders by customer and status",
            sql::ORDERS_BY_CUSTOMER_STATUS,
        ),
        ("events of an order", sql::EVENTS_OF_ORDER),
        ("due jobs", sql::CLAIM_JOBS),
        ("jobs waiting after a failure", sql::WAITING_JOBS),
        (
            "an order's jobs waiting after a failure",
            sql::WAITING_JOBS_OF_ORDER,
        ),
    ] {
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {statement}"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
        let full_scans: Vec<&&str> = plan
            .iter()
            .filter(|step| {
                [
                    "SCAN orders",
                    "SCAN events",
                    "SCAN jobs",
                    "SCAN j",
                    "SCAN p",
                ]
                .iter()
                .any(|s| step.starts_with(s))
                    // The partial index holds only the jobs that failed: walking it in due
                    // order is the point, not a scan of the queue.
                    && !step.contains("USING INDEX jobs_waiting")
            })
            .collect();
        assert!(
            full_scans.is_empty(),
            "{name} scans a large table: {plan:#?}"
        );
    }
    // The dashboard's count is a range of its own index, not a filter over another one.
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "EXPLAIN QUERY PLAN {}",
        sql::COUNT_ORDERS_SINCE
    )))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(
        rows.iter().any(|r| r
            .3
            .contains("orders_by_status_placed (status=? AND created_at>?)")),
        "{rows:#?}"
    );
    conn.close().await.unwrap();
}
