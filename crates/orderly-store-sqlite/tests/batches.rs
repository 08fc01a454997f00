//! The writer's batches: concurrent writes share one transaction, and a write that fails after
//! changing something is undone alone while the others in its batch stand.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use orderly_core::ports::{
    CatalogStore, Commit, CommitError, Handled, IdempotencyRecord, JobQueue, OrderStore,
    StockStore, StoreError, UnitOfWork,
};
use orderly_store_sqlite::{SqliteSettings, SqliteStore};
use orderly_testkit::fixtures::{self, at};
use tempfile::TempDir;
use tokio::task::JoinSet;

async fn fresh() -> (Arc<SqliteStore>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&SqliteSettings::new(dir.path().join("orderly.db")))
        .await
        .unwrap();
    (Arc::new(store), dir)
}

fn keyed(order: &orderly_domain::Order, key: &str) -> Commit {
    Commit {
        idempotency: Some(IdempotencyRecord {
            key: key.into(),
            request_hash: "h".into(),
            order_id: order.id,
            created_at: at(0),
        }),
        ..fixtures::place(order)
    }
}

/// Places `n` orders at once; they land in the same few batches as whatever else is sent.
fn placements(store: &Arc<SqliteStore>, n: usize, set: &mut JoinSet<Result<(), CommitError>>) {
    for i in 0..n {
        let store = Arc::clone(store);
        set.spawn(async move {
            let order = fixtures::order(&format!("c{i}"), &[("001", 1)]);
            store.commit(fixtures::place(&order)).await
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_failing_after_a_write_is_undone_alone() {
    let (store, _dir) = fresh().await;
    let first = fixtures::order("alice", &[("001", 1)]);
    store.commit(keyed(&first, "k-taken")).await.unwrap();
    let job = store.claim_jobs(at(0), 10, 60_000).await.unwrap().remove(0);
    let handled = Handled {
        job_id: job.id,
        order_id: job.event.order_id,
        consumer: job.consumer,
        event_id: job.event.id,
    };
    // Marks the job handled (a write), then meets a taken key: the mark must be undone too.
    let second = fixtures::order("bob", &[("001", 1)]);
    let bad = Commit {
        handled: Some(handled.clone()),
        ..keyed(&second, "k-taken")
    };
    for _ in 0..5 {
        let mut set = JoinSet::new();
        placements(&store, 40, &mut set);
        let failing = {
            let store = Arc::clone(&store);
            let bad = bad.clone();
            tokio::spawn(async move { store.commit(bad).await })
        };
        placements(&store, 40, &mut set);
        assert_eq!(
            failing.await.unwrap(),
            Err(CommitError::IdempotencyKeyTaken)
        );
        while let Some(placed) = set.join_next().await {
            placed.unwrap().unwrap();
        }
    }
    assert!(store.order(second.id).await.unwrap().is_none());
    assert_eq!(
        store.pending_jobs().await.unwrap(),
        401,
        "the job is still queued"
    );
    let done = Commit {
        handled: Some(handled),
        ..Commit::default()
    };
    store.commit(done).await.unwrap();
    assert_eq!(store.pending_jobs().await.unwrap(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_meeting_a_taken_id_writes_none_of_its_orders() {
    let (store, _dir) = fresh().await;
    store
        .create_product(&fixtures::product("001", "Tea", "4.00"), 5)
        .await
        .unwrap();
    let existing = fixtures::order("alice", &[("001", 1)]);
    store
        .import_orders(std::slice::from_ref(&existing))
        .await
        .unwrap();
    let fresh_orders: Vec<_> = (0..20)
        .map(|i| fixtures::order(&format!("d{i}"), &[("001", 1)]))
        .collect();
    let mut slice = fresh_orders.clone();
    slice.insert(10, existing);
    let mut set = JoinSet::new();
    placements(&store, 30, &mut set);
    let import = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.import_orders(&slice).await })
    };
    placements(&store, 30, &mut set);
    assert_eq!(import.await.unwrap(), Err(StoreError::AlreadyExists));
    while let Some(placed) = set.join_next().await {
        placed.unwrap().unwrap();
    }
    for order in &fresh_orders {
        assert!(store.order(order.id).await.unwrap().is_none());
    }
    assert_eq!(store.pending_jobs().await.unwrap(), 60);
    assert_eq!(
        store
            .stock(&orderly_domain::ProductId::parse("001").unwrap())
            .await
            .unwrap()
            .map(|s| s.available),
        Some(5)
    );
}
