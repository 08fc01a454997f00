//! Every hot query is served by an index: none scans a large table from end to end.
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use orderly_store_postgres::testing::TestSchema;
use orderly_store_postgres::{PgSettings, PgStore, sql};
use serde_json::Value;
use sqlx::PgPool;

const LARGE_TABLES: [&str; 3] = ["orders", "events", "jobs"];

async fn fill(pool: &PgPool) {
    for statement in [
        "INSERT INTO orders (id, customer_id, status, version, created_at, doc) \
         SELECT gen_random_uuid(), 'c' || (i % 2000), \
                (ARRAY['placed','reserved','paid','shipped','delivered','rejected','canceled'])[1 + i % 7], \
                1, i, '{}' \
         FROM generate_series(1, 60000) AS i",
        "INSERT INTO events (id, order_id, kind, at, payload) \
         SELECT gen_random_uuid(), id, 'OrderPlaced', seq, '{}' FROM orders",
        "INSERT INTO jobs (order_id, consumer, event_seq, next_at, attempts) \
         SELECT order_id, 'inventory', seq, seq * 1000, CASE WHEN seq % 400 = 0 THEN 2 ELSE 0 END \
         FROM events WHERE seq % 4 = 0",
        "ANALYZE",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(pool)
            .await
            .unwrap();
    }
}

fn seq_scans(plan: &Value, found: &mut Vec<String>) {
    if plan["Node Type"] == "Seq Scan"
        && let Some(relation) = plan["Relation Name"].as_str()
        && LARGE_TABLES.contains(&relation)
    {
        found.push(relation.to_owned());
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        seq_scans(child, found);
    }
}

async fn explain(
    pool: &PgPool,
    name: &str,
    statement: &str,
    bind: impl FnOnce(
        sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) {
    let text = format!("EXPLAIN (FORMAT JSON) {statement}");
    let query = bind(sqlx::query(sqlx::AssertSqlSafe(text)));
    let row = query.fetch_one(pool).await.unwrap();
    let plan: Value = sqlx::Row::try_get::<sqlx::types::Json<Value>, _>(&row, 0)
        .unwrap()
        .0;
    let mut found = Vec::new();
    seq_scans(&plan[0]["Plan"], &mut found);
    assert!(
        found.is_empty(),
        "{name} scans {found:?} sequentially:\n{plan:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_queries_use_indexes_on_large_tables() {
    let schema = TestSchema::create().await.unwrap();
    let store = PgStore::open(&PgSettings::new(schema.url.clone()))
        .await
        .unwrap();
    let pool = store.pool().clone();
    fill(&pool).await;
    let some_order: uuid::Uuid = sqlx::query_scalar("SELECT id FROM orders WHERE seq = 30000")
        .fetch_one(&pool)
        .await
        .unwrap();

    explain(&pool, "order by id", sql::ORDER_BY_ID, |q| {
        q.bind(some_order)
    })
    .await;
    explain(
        &pool,
        "orders by id prefix",
        sql::ORDERS_BY_ID_PREFIX,
        |q| {
            let (low, high) =
                orderly_domain::search::OrderIdPrefix::parse(&some_order.to_string()[..6], 4)
                    .unwrap()
                    .bounds();
            q.bind(low).bind(high).bind(21i64)
        },
    )
    .await;
    explain(&pool, "orders newest first", sql::ORDERS_NEWEST, |q| {
        q.bind(i64::MAX).bind(21i64)
    })
    .await;
    explain(&pool, "orders by status", sql::ORDERS_BY_STATUS, |q| {
        q.bind("paid").bind(i64::MAX).bind(21i64)
    })
    .await;
    explain(
        &pool,
        "orders of a status counted since",
        sql::COUNT_ORDERS_SINCE,
        |q| q.bind("paid").bind(25_000i64),
    )
    .await;
    explain(&pool, "orders by customer", sql::ORDERS_BY_CUSTOMER, |q| {
        q.bind("c42").bind(i64::MAX).bind(21i64)
    })
    .await;
    explain(
        &pool,
        "orders by customer and status",
        sql::ORDERS_BY_CUSTOMER_STATUS,
        |q| q.bind("c42").bind("paid").bind(i64::MAX).bind(21i64),
    )
    .await;
    explain(&pool, "events of an order", sql::EVENTS_OF_ORDER, |q| {
        q.bind(some_order)
    })
    .await;
    explain(&pool, "due jobs", sql::CLAIM_JOBS, |q| {
        q.bind(1_000_000i64).bind(64i64).bind(60_000i64)
    })
    .await;
    explain(
        &pool,
        "jobs waiting after a failure",
        sql::WAITING_JOBS,
        |q| q.bind(20i64),
    )
    .await;
    explain(
        &pool,
        "an order's jobs waiting after a failure",
        sql::WAITING_JOBS_OF_ORDER,
        |q| q.bind(20i64).bind(some_order),
    )
    .await;
    store.close().await;
}
