//! The storage contract: what every backend must do, written once.
//!
//! Each function takes a fresh, empty store and panics on a broken promise. Backends run them
//! through [`crate::store_contract_tests!`].

use std::sync::Arc;

use orderly_core::ports::{
    Commit, CommitError, Consumer, DocKind, Document, DocumentWrite, Handled, IdempotencyRecord,
    OrderFilter, OrderWrite, Outgoing, PageRequest, StockMove, Store, StoreError,
};
use orderly_domain::{
    CustomerId, Event, EventKind, OrderStatus, ProductId, StockAdjustment, Transition,
};

use crate::fixtures::{self, UNICODE_SAMPLES, at, stamp};

fn pid(id: &str) -> ProductId {
    ProductId::parse(id).unwrap()
}

fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest { limit, cursor }
}

async fn with_product(store: &Arc<dyn Store>, id: &str, stock: i64) {
    store
        .create_product(
            &fixtures::product(id, &format!("Product {id}"), "10.00"),
            stock,
        )
        .await
        .unwrap();
}

fn reserve(id: &str, n: i64) -> StockMove {
    StockMove {
        product_id: pid(id),
        available: -n,
        reserved: n,
    }
}

pub async fn products_round_trip_byte_exact(store: Arc<dyn Store>) {
    for (i, name) in UNICODE_SAMPLES.iter().enumerate() {
        let product = fixtures::product(&format!("u{i}"), name, "79.99");
        store.create_product(&product, 5).await.unwrap();
        let back = store.product(&product.id).await.unwrap().unwrap();
        assert_eq!(back, product);
        assert_eq!(back.name.as_str().as_bytes(), name.as_bytes());
    }
    let level = store.stock(&pid("u0")).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved), (5, 0));
    let mut updated = fixtures::product("u0", "Renamed ✓", "1.00");
    updated.active = false;
    updated.version = 2;
    store.update_product(&updated, 1).await.unwrap();
    assert_eq!(store.product(&pid("u0")).await.unwrap().unwrap(), updated);
    let mut stale = fixtures::product("u0", "Lost update", "2.00");
    stale.version = 2;
    assert_eq!(
        store.update_product(&stale, 1).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(store.product(&pid("u0")).await.unwrap().unwrap(), updated);
    let some = store
        .products(&[pid("u1"), pid("u1"), pid("nope"), pid("u2")])
        .await
        .unwrap();
    let mut ids: Vec<_> = some.iter().map(|p| p.id.as_str().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["u1", "u2"]);
    assert!(store.product(&pid("nope")).await.unwrap().is_none());
}

pub async fn creating_a_product_twice_is_refused(store: Arc<dyn Store>) {
    with_product(&store, "001", 1).await;
    let again = store
        .create_product(&fixtures::product("001", "Other", "1.00"), 99)
        .await;
    assert_eq!(again, Err(StoreError::AlreadyExists));
    assert_eq!(
        store.stock(&pid("001")).await.unwrap().unwrap().available,
        1
    );
}

pub async fn products_are_listed_by_id_in_pages(store: Arc<dyn Store>) {
    for i in 0..7 {
        with_product(&store, &format!("p{i}"), 0).await;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let p = store.list_products(&page(3, cursor)).await.unwrap();
        assert!(p.items.len() <= 3);
        seen.extend(p.items.iter().map(|p| p.id.as_str().to_owned()));
        cursor = p.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
}

pub async fn updating_a_missing_product_is_not_found(store: Arc<dyn Store>) {
    let missing = fixtures::product("ghost", "Ghost", "1.00");
    assert_eq!(
        store.update_product(&missing, 1).await,
        Err(StoreError::NotFound)
    );
}

pub async fn customers_round_trip_byte_exact(store: Arc<dyn Store>) {
    for (i, name) in UNICODE_SAMPLES.iter().enumerate() {
        let customer = fixtures::customer(&format!("c{i}"), name);
        store.create_customer(&customer).await.unwrap();
        let back = store.customer(&customer.id).await.unwrap().unwrap();
        assert_eq!(back.name.as_str().as_bytes(), name.as_bytes());
        assert_eq!(back, customer);
    }
    let dup = fixtures::customer("c0", "Again");
    assert_eq!(
        store.create_customer(&dup).await,
        Err(StoreError::AlreadyExists)
    );
    assert!(
        store
            .customer(&CustomerId::parse("zz").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let cid = |id: &str| CustomerId::parse(id).unwrap();
    let some = store
        .customers(&[cid("c1"), cid("c1"), cid("zz"), cid("c2")])
        .await
        .unwrap();
    let mut ids: Vec<_> = some.iter().map(|c| c.id.as_str().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["c1", "c2"]);
    assert!(store.customers(&[]).await.unwrap().is_empty());
}

pub async fn orders_round_trip_byte_exact(store: Arc<dyn Store>) {
    for text in UNICODE_SAMPLES {
        let mut order = fixtures::order("001", &[("001", 2), ("002", 1)]);
        order.shipping_address = Some(fixtures::address(text));
        store.commit(fixtures::place(&order)).await.unwrap();
        let back = store.order(order.id).await.unwrap().unwrap();
        assert_eq!(back, order);
        let address = back.shipping_address.unwrap();
        assert_eq!(address.line1.as_bytes(), text.as_bytes());
        assert_eq!(address.city.as_bytes(), text.as_bytes());
    }
    let absent = fixtures::order("001", &[("001", 1)]);
    assert!(store.order(absent.id).await.unwrap().is_none());
}

pub async fn an_update_with_a_stale_version_is_refused(store: Arc<dyn Store>) {
    let order = fixtures::order("001", &[("001", 1)]);
    store.commit(fixtures::place(&order)).await.unwrap();
    let mut first = order.clone();
    first
        .apply(Transition::Cancel, &stamp(), Some("first".into()))
        .unwrap();
    let mut second = order.clone();
    second
        .apply(Transition::Cancel, &stamp(), Some("second".into()))
        .unwrap();
    let update = |o: &orderly_domain::Order| Commit {
        order: Some(OrderWrite::Update {
            order: o.clone(),
            expected_version: 1,
        }),
        ..Commit::default()
    };
    store.commit(update(&first)).await.unwrap();
    assert_eq!(
        store.commit(update(&second)).await,
        Err(CommitError::VersionConflict(order.id))
    );
    let stored = store.order(order.id).await.unwrap().unwrap();
    assert_eq!(stored.reason.as_deref(), Some("first"));
    assert_eq!(stored.version, 2);
}

pub async fn inserting_an_order_id_twice_fails(store: Arc<dyn Store>) {
    let order = fixtures::order("001", &[("001", 1)]);
    store.commit(fixtures::place(&order)).await.unwrap();
    assert!(store.commit(fixtures::place(&order)).await.is_err());
    assert_eq!(store.order_events(order.id).await.unwrap().len(), 1);
}

pub async fn stock_never_goes_below_zero(store: Arc<dyn Store>) {
    with_product(&store, "001", 3).await;
    let take = |n| Commit {
        stock: vec![reserve("001", n)],
        ..Commit::default()
    };
    store.commit(take(2)).await.unwrap();
    assert_eq!(
        store.commit(take(2)).await,
        Err(CommitError::InsufficientStock(pid("001")))
    );
    store.commit(take(1)).await.unwrap();
    let level = store.stock(&pid("001")).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved), (0, 3));
    // Releasing more than is reserved is refused too.
    let over_release = Commit {
        stock: vec![StockMove {
            product_id: pid("001"),
            available: 4,
            reserved: -4,
        }],
        ..Commit::default()
    };
    assert_eq!(
        store.commit(over_release).await,
        Err(CommitError::InsufficientStock(pid("001")))
    );
}

pub async fn a_failed_commit_changes_nothing(store: Arc<dyn Store>) {
    with_product(&store, "001", 10).await;
    with_product(&store, "002", 1).await;
    let order = fixtures::order("001", &[("001", 5), ("002", 2)]);
    store.commit(fixtures::place(&order)).await.unwrap();
    let mut reserved = order.clone();
    let event = reserved.apply(Transition::Reserve, &stamp(), None).unwrap();
    let commit = Commit {
        order: Some(OrderWrite::Update {
            order: reserved,
            expected_version: 1,
        }),
        stock: vec![reserve("001", 5), reserve("002", 2)],
        events: vec![Outgoing {
            event,
            consumers: vec![Consumer::Payment],
        }],
        idempotency: Some(IdempotencyRecord {
            key: "k-failed".into(),
            request_hash: "h".into(),
            order_id: order.id,
            created_at: at(0),
        }),
        ..Commit::default()
    };
    assert_eq!(
        store.commit(commit).await,
        Err(CommitError::InsufficientStock(pid("002")))
    );
    assert_eq!(
        store.stock(&pid("001")).await.unwrap().unwrap().available,
        10,
        "first move undone"
    );
    assert_eq!(
        store.order(order.id).await.unwrap().unwrap().status,
        OrderStatus::Placed
    );
    assert_eq!(
        store.order_events(order.id).await.unwrap().len(),
        1,
        "no event escaped"
    );
    assert_eq!(store.pending_jobs().await.unwrap(), 1, "no job escaped");
    assert!(store.idempotency("k-failed").await.unwrap().is_none());
}

pub async fn moves_on_an_unknown_product_are_refused(store: Arc<dyn Store>) {
    let commit = Commit {
        stock: vec![reserve("ghost", 1)],
        ..Commit::default()
    };
    assert_eq!(
        store.commit(commit).await,
        Err(CommitError::UnknownProduct(pid("ghost")))
    );
}

pub async fn adjustments_are_recorded_newest_first(store: Arc<dyn Store>) {
    with_product(&store, "001", 0).await;
    for (i, delta) in [5i64, -2, 7].into_iter().enumerate() {
        let adjustment = StockAdjustment {
            product_id: pid("001"),
            delta,
            reason: format!("count {i} — Zürich 🏠"),
            actor: "staff:ana".into(),
            at: at(i as i64),
        };
        let commit = Commit {
            stock: vec![StockMove {
                product_id: pid("001"),
                available: delta,
                reserved: 0,
            }],
            adjustment: Some(adjustment),
            ..Commit::default()
        };
        store.commit(commit).await.unwrap();
    }
    let list = store.adjustments(&pid("001"), 10).await.unwrap();
    let deltas: Vec<i64> = list.iter().map(|a| a.delta).collect();
    assert_eq!(deltas, [7, -2, 5]);
    assert_eq!(list[0].reason, "count 2 — Zürich 🏠");
    assert_eq!(
        store.stock(&pid("001")).await.unwrap().unwrap().available,
        10
    );
    assert_eq!(store.adjustments(&pid("001"), 1).await.unwrap().len(), 1);
}

pub async fn an_idempotency_key_is_stored_once(store: Arc<dyn Store>) {
    let first = fixtures::order("001", &[("001", 1)]);
    let record = |order_id| IdempotencyRecord {
        key: "key-1".into(),
        request_hash: "abc".into(),
        order_id,
        created_at: at(5),
    };
    let mut commit = fixtures::place(&first);
    commit.idempotency = Some(record(first.id));
    store.commit(commit).await.unwrap();
    let second = fixtures::order("001", &[("001", 1)]);
    let mut commit = fixtures::place(&second);
    commit.idempotency = Some(record(second.id));
    assert_eq!(
        store.commit(commit).await,
        Err(CommitError::IdempotencyKeyTaken)
    );
    assert!(
        store.order(second.id).await.unwrap().is_none(),
        "the losing order was not stored"
    );
    assert_eq!(
        store.idempotency("key-1").await.unwrap(),
        Some(record(first.id))
    );
    assert!(store.idempotency("key-2").await.unwrap().is_none());
}

pub async fn a_handled_event_is_recognised_and_its_job_removed(store: Arc<dyn Store>) {
    let order = fixtures::order("001", &[("001", 1)]);
    store.commit(fixtures::place(&order)).await.unwrap();
    let jobs = store.claim_jobs(at(0), 10, 60_000).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.consumer, Consumer::Inventory);
    assert_eq!(job.event.kind, EventKind::OrderPlaced);
    let handled = Handled {
        job_id: job.id,
        order_id: job.event.order_id,
        consumer: job.consumer,
        event_id: job.event.id,
    };
    let done = Commit {
        handled: Some(handled.clone()),
        ..Commit::default()
    };
    store.commit(done.clone()).await.unwrap();
    assert_eq!(store.pending_jobs().await.unwrap(), 0);
    assert_eq!(store.commit(done).await, Err(CommitError::AlreadyHandled));
    // Another consumer may still handle the same event.
    let other = Commit {
        handled: Some(Handled {
            consumer: Consumer::Payment,
            ..handled
        }),
        ..Commit::default()
    };
    store.commit(other).await.unwrap();
}

pub async fn events_are_kept_per_order_in_order(store: Arc<dyn Store>) {
    let a = fixtures::order("001", &[("001", 1)]);
    let b = fixtures::order("002", &[("001", 1)]);
    store.commit(fixtures::place(&a)).await.unwrap();
    store.commit(fixtures::place(&b)).await.unwrap();
    let mut changed = a.clone();
    let event = changed.apply(Transition::Cancel, &stamp(), None).unwrap();
    store
        .commit(Commit {
            order: Some(OrderWrite::Update {
                order: changed,
                expected_version: 1,
            }),
            events: vec![Outgoing {
                event: event.clone(),
                consumers: vec![],
            }],
            ..Commit::default()
        })
        .await
        .unwrap();
    let kinds: Vec<EventKind> = store
        .order_events(a.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::OrderPlaced, EventKind::OrderCanceled]);
    let stored: Vec<Event> = store.order_events(a.id).await.unwrap();
    assert_eq!(stored[1], event, "payload round-trips");
    assert_eq!(store.order_events(b.id).await.unwrap().len(), 1);
}

pub async fn only_the_first_job_of_each_order_is_claimed(store: Arc<dyn Store>) {
    let a = fixtures::order("001", &[("001", 1)]);
    let b = fixtures::order("001", &[("001", 1)]);
    store.commit(fixtures::place(&a)).await.unwrap();
    // A second event for order a, queued behind the first.
    let mut later = a.clone();
    let event = later.apply(Transition::Cancel, &stamp(), None).unwrap();
    store
        .commit(Commit {
            events: vec![Outgoing {
                event,
                consumers: vec![Consumer::Payment],
            }],
            ..Commit::default()
        })
        .await
        .unwrap();
    store.commit(fixtures::place(&b)).await.unwrap();
    let claimed = store.claim_jobs(at(0), 10, 60_000).await.unwrap();
    let mut orders: Vec<_> = claimed
        .iter()
        .map(|j| (j.event.order_id, j.event.kind))
        .collect();
    orders.sort();
    let mut expected = vec![
        (a.id, EventKind::OrderPlaced),
        (b.id, EventKind::OrderPlaced),
    ];
    expected.sort();
    assert_eq!(orders, expected);
    // Completing a's first job lets its second one through.
    let first_a = claimed.iter().find(|j| j.event.order_id == a.id).unwrap();
    store
        .commit(Commit {
            handled: Some(Handled {
                job_id: first_a.id,
                order_id: first_a.event.order_id,
                consumer: first_a.consumer,
                event_id: first_a.event.id,
            }),
            ..Commit::default()
        })
        .await
        .unwrap();
    let next = store.claim_jobs(at(1), 10, 60_000).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event.kind, EventKind::OrderCanceled);
    assert_eq!(next[0].consumer, Consumer::Payment);
}

pub async fn a_claimed_job_is_leased_until_it_expires_or_is_released(store: Arc<dyn Store>) {
    let order = fixtures::order("001", &[("001", 1)]);
    store.commit(fixtures::place(&order)).await.unwrap();
    assert_eq!(store.claim_jobs(at(0), 10, 1_000).await.unwrap().len(), 1);
    assert!(
        store
            .claim_jobs(at(500), 10, 1_000)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert_eq!(store.next_due().await.unwrap(), Some(at(1_000)));
    assert_eq!(
        store.claim_jobs(at(1_000), 10, 1_000).await.unwrap().len(),
        1,
        "lease expired"
    );
    assert_eq!(store.release_leases().await.unwrap(), 1);
    assert_eq!(
        store.claim_jobs(at(1_001), 10, 1_000).await.unwrap().len(),
        1,
        "released"
    );
}

pub async fn a_claim_whose_answer_was_lost_is_released_by_its_lease(store: Arc<dyn Store>) {
    let (a, b) = (
        fixtures::order("001", &[("001", 1)]),
        fixtures::order("002", &[("001", 1)]),
    );
    store.commit(fixtures::place(&a)).await.unwrap();
    // One claim whose answer the dispatcher never saw, one by another worker a moment later.
    let lost = store.claim_jobs(at(0), 1, 60_000).await.unwrap();
    store.commit(fixtures::place(&b)).await.unwrap();
    let other = store.claim_jobs(at(5), 10, 60_000).await.unwrap();
    assert_eq!((lost.len(), other.len()), (1, 1));
    assert_eq!(lost[0].lease, Some(at(60_000)));
    assert_eq!(
        store.release_claim(at(60_000)).await.unwrap(),
        1,
        "only the lost claim's lease"
    );
    let again = store.claim_jobs(at(10), 10, 60_000).await.unwrap();
    assert_eq!(again.len(), 1, "the lost claim's job is claimable at once");
    assert_eq!(again[0].id, lost[0].id);
    assert_eq!(store.release_claim(at(60_000)).await.unwrap(), 0);
    // The other worker's lease still holds: it puts its job back.
    store
        .retry_job(&other[0], 1, at(20), "try again")
        .await
        .unwrap();
    assert_eq!(store.claim_jobs(at(20), 10, 60_000).await.unwrap().len(), 1);
}

pub async fn a_retried_job_waits_until_due(store: Arc<dyn Store>) {
    let order = fixtures::order("001", &[("001", 1)]);
    store.commit(fixtures::place(&order)).await.unwrap();
    let job = store.claim_jobs(at(0), 10, 60_000).await.unwrap().remove(0);
    store
        .retry_job(&job, 1, at(5_000), "provider down")
        .await
        .unwrap();
    assert!(
        store
            .claim_jobs(at(4_999), 10, 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due().await.unwrap(), Some(at(5_000)));
    let again = store.claim_jobs(at(5_000), 10, 60_000).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("provider down"));
    store.delete_job(&again[0]).await.unwrap();
    assert_eq!(store.pending_jobs().await.unwrap(), 0);
    assert_eq!(store.next_due().await.unwrap(), None);
}

pub async fn jobs_waiting_after_a_failure_are_listed_and_can_be_hurried(store: Arc<dyn Store>) {
    let (first, second) = (
        fixtures::order("001", &[("001", 1)]),
        fixtures::order("002", &[("001", 1)]),
    );
    store.commit(fixtures::place(&first)).await.unwrap();
    store.commit(fixtures::place(&second)).await.unwrap();
    assert!(
        store.waiting_jobs(None, 10).await.unwrap().is_empty(),
        "a job never tried is not waiting"
    );
    let jobs = store.claim_jobs(at(0), 10, 60_000).await.unwrap();
    assert_eq!(jobs.len(), 2);
    let of = |order: &orderly_domain::Order| {
        jobs.iter()
            .find(|j| j.event.order_id == order.id)
            .unwrap()
            .clone()
    };
    store
        .retry_job(
            &of(&second),
            1,
            at(300_000),
            "[payment-unavailable] provider down",
        )
        .await
        .unwrap();
    store
        .retry_job(
            &of(&first),
            2,
            at(900_000),
            "[payment-declined] card_declined",
        )
        .await
        .unwrap();

    // Soonest due first, with what stage 1 needs to show them.
    let waiting = store.waiting_jobs(None, 10).await.unwrap();
    let seen: Vec<_> = waiting
        .iter()
        .map(|w| (w.job.event.order_id, w.job.attempts, w.due, w.running))
        .collect();
    assert_eq!(
        seen,
        [
            (second.id, 1, at(300_000), false),
            (first.id, 2, at(900_000), false)
        ]
    );
    assert_eq!(
        waiting[1].job.last_error.as_deref(),
        Some("[payment-declined] card_declined")
    );
    assert_eq!(store.waiting_jobs(None, 1).await.unwrap().len(), 1);
    let of_first = store.waiting_jobs(Some(first.id), 10).await.unwrap();
    assert_eq!(of_first.len(), 1);
    assert_eq!(of_first[0].job.id, of(&first).id);

    // "Retry now": due at once, once; another order's job id changes nothing.
    assert!(
        !store
            .hurry_job(second.id, of(&first).id, at(1_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .hurry_job(first.id, of(&first).id, at(1_000))
            .await
            .unwrap()
    );
    let claimed = store.claim_jobs(at(1_000), 10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.order_id, first.id);
    assert!(
        store.waiting_jobs(Some(first.id), 10).await.unwrap()[0].running,
        "a job being tried shows as running"
    );
    assert!(
        !store
            .hurry_job(first.id, claimed[0].id, at(2_000))
            .await
            .unwrap(),
        "a running try is not hurried"
    );
    store.delete_job(&claimed[0]).await.unwrap();
    assert!(
        store
            .waiting_jobs(Some(first.id), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .hurry_job(first.id, claimed[0].id, at(3_000))
            .await
            .unwrap(),
        "a job done is not hurried"
    );
}

pub async fn orders_are_found_by_the_start_of_their_id(store: Arc<dyn Store>) {
    use orderly_domain::search::OrderIdPrefix;
    let mut placed = Vec::new();
    for customer in ["001", "002", "003"] {
        let order = fixtures::order(customer, &[("001", 1)]);
        store.commit(fixtures::place(&order)).await.unwrap();
        placed.push(order.id.to_string());
    }
    placed.sort();
    let found = |prefix: &str| {
        let store = Arc::clone(&store);
        let prefix = OrderIdPrefix::parse(prefix, 1).unwrap();
        async move {
            store
                .orders_with_id_prefix(&prefix, 10)
                .await
                .unwrap()
                .iter()
                .map(|o| o.id.to_string())
                .collect::<Vec<_>>()
        }
    };
    // The whole id, or its start, with or without its dashes, in any case.
    assert_eq!(found(&placed[1]).await, [placed[1].clone()]);
    assert_eq!(found(&placed[1].to_uppercase()).await, [placed[1].clone()]);
    let undashed: String = placed[2].chars().filter(|c| *c != '-').collect();
    assert_eq!(found(&undashed).await, [placed[2].clone()]);
    // Ids made in the same millisecond share most of their start: every one that has it.
    assert!(found(&undashed[..20]).await.contains(&placed[2]));
    // Time-ordered ids made together share their start: all three, lowest first.
    assert_eq!(found(&placed[0][..6]).await, placed);
    assert!(found("ffffffff-ffff").await.is_empty());
    let limited = store
        .orders_with_id_prefix(&OrderIdPrefix::parse(&placed[0][..6], 1).unwrap(), 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
}

pub async fn orders_are_listed_newest_first_with_filters_and_cursors(store: Arc<dyn Store>) {
    let mut placed = Vec::new();
    for i in 0..9 {
        let customer = if i % 3 == 0 { "alice" } else { "bob" };
        let mut order = fixtures::order(customer, &[("001", 1)]);
        if i % 2 == 0 {
            order.apply(Transition::Cancel, &stamp(), None).unwrap();
        }
        store.commit(fixtures::place(&order)).await.unwrap();
        placed.push(order);
    }
    let newest_first: Vec<_> = placed.iter().rev().map(|o| o.id).collect();
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let p = store
            .list_orders(&OrderFilter::default(), &page(4, cursor))
            .await
            .unwrap();
        listed.extend(p.items.iter().map(|o| o.id));
        cursor = p.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(listed, newest_first);

    let filter = OrderFilter {
        status: Some(OrderStatus::Canceled),
        customer_id: Some(CustomerId::parse("alice").unwrap()),
    };
    let p = store.list_orders(&filter, &page(10, None)).await.unwrap();
    let expected: Vec<_> = placed
        .iter()
        .rev()
        .filter(|o| o.status == OrderStatus::Canceled && o.customer_id.as_str() == "alice")
        .map(|o| o.id)
        .collect();
    assert_eq!(p.items.iter().map(|o| o.id).collect::<Vec<_>>(), expected);
    assert_eq!(expected.len(), 2);
    assert!(p.next_cursor.is_none());

    let by_status = OrderFilter {
        status: Some(OrderStatus::Placed),
        customer_id: None,
    };
    let p = store
        .list_orders(&by_status, &page(100, None))
        .await
        .unwrap();
    assert_eq!(p.items.len(), 4);
    assert!(p.items.iter().all(|o| o.status == OrderStatus::Placed));
}

/// An order of alice's placed at `ms` (its UUIDv7 id and its `created_at` both say so).
fn order_placed_at(ms: i64) -> orderly_domain::Order {
    let mut order = fixtures::order("alice", &[("001", 1)]);
    let (secs, nanos) = (ms / 1000, (ms % 1000) * 1_000_000);
    let when = uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(secs).unwrap(),
        u32::try_from(nanos).unwrap(),
    );
    order.id = orderly_domain::OrderId::from_uuid(uuid::Uuid::new_v7(when));
    order.created_at = orderly_domain::Timestamp::from_millis(ms);
    order
}

pub async fn orders_are_counted_by_status_since_a_moment(store: Arc<dyn Store>) {
    let day = 86_400_000;
    let now = 1_800_000_000_000;
    let mut placed = Vec::new();
    for i in 0..3 {
        placed.push(order_placed_at(now - day + i));
    }
    for i in 0..4 {
        let mut order = order_placed_at(now + i);
        if i % 2 == 0 {
            order.apply(Transition::Cancel, &stamp(), None).unwrap();
        }
        placed.push(order);
    }
    for order in &placed {
        store.commit(fixtures::place(order)).await.unwrap();
    }
    let counted = |since| {
        let store = Arc::clone(&store);
        async move {
            store
                .count_orders(orderly_domain::Timestamp::from_millis(since))
                .await
                .unwrap()
        }
    };
    assert_eq!(
        counted(now).await,
        [(OrderStatus::Placed, 2), (OrderStatus::Canceled, 2)],
        "since now: the four placed since, by their status now"
    );
    assert_eq!(
        counted(now - day).await,
        [(OrderStatus::Placed, 5), (OrderStatus::Canceled, 2)]
    );
    assert_eq!(counted(now + 3).await, [(OrderStatus::Placed, 1)]);
    assert_eq!(counted(now + day).await, []);

    // A status change moves the order from one count to the other.
    let mut order = placed[6].clone();
    let read = order.version;
    let event = order.apply(Transition::Cancel, &stamp(), None).unwrap();
    store
        .commit(orderly_core::commits::order_change(
            order,
            read,
            event,
            Vec::new(),
        ))
        .await
        .unwrap();
    assert_eq!(counted(now + 3).await, [(OrderStatus::Canceled, 1)]);
}

pub async fn a_fresh_store_is_ready(store: Arc<dyn Store>) {
    store.check_ready().await.unwrap();
    // Checking is not a change anyone sees: no job, no event, no order.
    store.check_ready().await.unwrap();
    assert_eq!(store.pending_jobs().await.unwrap(), 0);
}

pub async fn a_foreign_cursor_is_refused(store: Arc<dyn Store>) {
    for bad in ["", "zzz", "o-1x", "p'; DROP TABLE orders; --"] {
        let result = store
            .list_orders(&OrderFilter::default(), &page(5, Some(bad.into())))
            .await;
        assert_eq!(result, Err(StoreError::InvalidCursor), "cursor {bad:?}");
    }
}

/// 64 buyers at once for a product with 10 in stock: exactly 10 reservations commit.
pub async fn concurrent_reservations_sell_exactly_the_stock(store: Arc<dyn Store>) {
    with_product(&store, "hot", 10).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let order = fixtures::order("001", &[("hot", 1)]);
            store.commit(fixtures::place(&order)).await.unwrap();
            let mut reserved = order.clone();
            let event = reserved.apply(Transition::Reserve, &stamp(), None).unwrap();
            store
                .commit(Commit {
                    order: Some(OrderWrite::Update {
                        order: reserved,
                        expected_version: 1,
                    }),
                    stock: vec![reserve("hot", 1)],
                    events: vec![Outgoing {
                        event,
                        consumers: vec![],
                    }],
                    ..Commit::default()
                })
                .await
        });
    }
    let mut sold = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(()) => sold += 1,
            Err(CommitError::InsufficientStock(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(sold, 10);
    let level = store.stock(&pid("hot")).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved), (0, 10));
    let reserved = store
        .list_orders(
            &OrderFilter {
                status: Some(OrderStatus::Reserved),
                customer_id: None,
            },
            &page(100, None),
        )
        .await
        .unwrap();
    assert_eq!(reserved.items.len(), 10);
    assert!(reserved.items.iter().all(fixtures::holds));
}

/// The search index's scan: keys in byte order (UTF-8, so any script sorts the same on every
/// store), listed after any key, one that is not there included.
pub async fn documents_are_listed_in_byte_order_after_any_key(store: Arc<dyn Store>) {
    let keys = [
        "zoe\u{1f}c1",
        "zoe martin\u{1f}c2",
        "zoé\u{1f}c3",
        "zoë\u{1f}c4",
        "山田\u{1f}c5",
        "山田 太郎\u{1f}c6",
        "+33612345678\u{1f}c7",
    ];
    for key in keys {
        let doc = Document {
            kind: DocKind::SearchTerm,
            key: key.to_owned(),
            version: 1,
            body: "{}".to_owned(),
        };
        store.put_document(&doc, None).await.unwrap();
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let listed = |after: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .documents(DocKind::SearchTerm, Some(after), 100)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.key)
                .collect::<Vec<_>>()
        }
    };
    // After a prefix that is no key: every key that starts with it comes next, in byte order.
    let after_zoe = listed("zoe").await;
    assert_eq!(
        after_zoe,
        sorted[sorted.iter().position(|k| k.starts_with("zoe")).unwrap()..]
    );
    assert_eq!(&after_zoe[..2], ["zoe\u{1f}c1", "zoe martin\u{1f}c2"]);
    let after_yamada = listed("山田").await;
    assert_eq!(after_yamada, ["山田\u{1f}c5", "山田 太郎\u{1f}c6"]);
    assert_eq!(
        listed("+3361").await.first().map(String::as_str),
        Some("+33612345678\u{1f}c7")
    );
    assert!(listed("山田 太郎\u{1f}c6").await.is_empty());
}

pub async fn documents_are_versioned_and_listed_by_key(store: Arc<dyn Store>) {
    let doc = |kind, key: &str, version, body: &str| Document {
        kind,
        key: key.to_owned(),
        version,
        body: body.to_owned(),
    };
    let first = doc(DocKind::Cart, "b", 1, "{\"name\":\"山田 🛒\"}");
    store.put_document(&first, None).await.unwrap();
    assert_eq!(
        store.put_document(&first, None).await,
        Err(StoreError::AlreadyExists)
    );
    let back = store.document(DocKind::Cart, "b").await.unwrap().unwrap();
    assert_eq!(back, first);
    assert_eq!(back.body.as_bytes(), first.body.as_bytes());
    // The same key of another kind is another document.
    assert!(store.document(DocKind::Rate, "b").await.unwrap().is_none());

    let second = doc(DocKind::Cart, "b", 2, "{\"v\":2}");
    store.put_document(&second, Some(1)).await.unwrap();
    let stale = doc(DocKind::Cart, "b", 2, "{\"v\":\"lost\"}");
    assert_eq!(
        store.put_document(&stale, Some(1)).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(
        store
            .put_document(&doc(DocKind::Cart, "zz", 2, "{}"), Some(1))
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.document(DocKind::Cart, "b").await.unwrap().unwrap(),
        second
    );

    for key in ["a", "c", "d", "e"] {
        store
            .put_document(&doc(DocKind::Cart, key, 1, "{}"), None)
            .await
            .unwrap();
    }
    store
        .put_document(&doc(DocKind::Rate, "EUR", 1, "{}"), None)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .documents(DocKind::Cart, after.as_deref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().map(|d| d.key.clone());
        seen.extend(page.into_iter().map(|d| d.key));
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    let rates = store.documents(DocKind::Rate, None, 10).await.unwrap();
    assert_eq!(rates.len(), 1);
}

pub async fn orders_import_in_bulk_without_saga_work(store: Arc<dyn Store>) {
    let orders: Vec<_> = (0..5)
        .map(|i| {
            let mut o = fixtures::order(if i % 2 == 0 { "alice" } else { "bob" }, &[("001", 1)]);
            o.shipping_address = Some(fixtures::address("Zürich 🏔"));
            o
        })
        .collect();
    store.import_orders(&orders).await.unwrap();
    for o in &orders {
        assert_eq!(store.order(o.id).await.unwrap().as_ref(), Some(o));
    }
    let all = store
        .list_orders(&OrderFilter::default(), &page(10, None))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 5);
    let bobs = OrderFilter {
        status: None,
        customer_id: Some(CustomerId::parse("bob").unwrap()),
    };
    assert_eq!(
        store
            .list_orders(&bobs, &page(10, None))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert_eq!(store.pending_jobs().await.unwrap(), 0, "no saga work");
    assert_eq!(
        store.import_orders(&orders[..1]).await,
        Err(StoreError::AlreadyExists)
    );
}

pub async fn a_waiting_notification_never_holds_back_the_saga(store: Arc<dyn Store>) {
    // Lanes: one order's saga jobs wait only for its saga jobs, its notify jobs only for its
    // notify jobs.
    let order = fixtures::order("001", &[("001", 1)]);
    let placed = Event::about(&order, EventKind::OrderPlaced, &stamp(), None);
    store
        .commit(Commit {
            order: Some(OrderWrite::Insert(order.clone())),
            events: vec![Outgoing {
                event: placed,
                consumers: vec![Consumer::Notify, Consumer::Inventory],
            }],
            ..Commit::default()
        })
        .await
        .unwrap();
    let claimed = store.claim_jobs(at(0), 10, 60_000).await.unwrap();
    let mut consumers: Vec<_> = claimed.iter().map(|j| j.consumer.as_str()).collect();
    consumers.sort_unstable();
    assert_eq!(consumers, ["inventory", "notify"], "both lanes run at once");
    // The notification fails and waits a long time to retry.
    let notify = claimed
        .iter()
        .find(|j| j.consumer == Consumer::Notify)
        .unwrap();
    store
        .retry_job(notify, 1, at(3_600_000), "smtp: 451 try later")
        .await
        .unwrap();
    // The saga's job completes and queues the next saga step and another notification.
    let inventory = claimed
        .iter()
        .find(|j| j.consumer == Consumer::Inventory)
        .unwrap();
    let mut reserved = order.clone();
    let next = reserved.apply(Transition::Reserve, &stamp(), None).unwrap();
    let mut canceled = reserved.clone();
    let cancel = canceled.apply(Transition::Cancel, &stamp(), None).unwrap();
    store
        .commit(Commit {
            events: vec![
                Outgoing {
                    event: next,
                    consumers: vec![Consumer::Payment],
                },
                Outgoing {
                    event: cancel,
                    consumers: vec![Consumer::Notify],
                },
            ],
            handled: Some(Handled {
                job_id: inventory.id,
                order_id: order.id,
                consumer: Consumer::Inventory,
                event_id: inventory.event.id,
            }),
            ..Commit::default()
        })
        .await
        .unwrap();
    // The payment step runs although the order's older notification is still waiting, and the
    // newer notification waits behind the older one.
    let claimed = store.claim_jobs(at(1), 10, 100_000_000).await.unwrap();
    let got: Vec<_> = claimed.iter().map(|j| (j.consumer, j.event.kind)).collect();
    assert_eq!(got, [(Consumer::Payment, EventKind::InventoryReserved)]);
    // When the notification falls due, it runs before the one behind it.
    let claimed = store.claim_jobs(at(3_600_000), 10, 60_000).await.unwrap();
    let got: Vec<_> = claimed.iter().map(|j| (j.consumer, j.event.kind)).collect();
    assert_eq!(got, [(Consumer::Notify, EventKind::OrderPlaced)]);
    assert_eq!(store.pending_jobs().await.unwrap(), 3);
}

pub async fn notification_documents_are_kept_like_any_other(store: Arc<dyn Store>) {
    for kind in [
        DocKind::Notification,
        DocKind::NotificationFailure,
        DocKind::NotificationPreferences,
        DocKind::CaseBundle,
    ] {
        let key = "0193a0a0-0000-7000-8000-000000000001/shipped/email:山田@example.com";
        let doc = Document {
            kind,
            key: key.to_owned(),
            version: 1,
            body: "{\"subject\":\"Your order shipped 📦\"}".to_owned(),
        };
        store.put_document(&doc, None).await.unwrap();
        assert_eq!(
            store.put_document(&doc, None).await,
            Err(StoreError::AlreadyExists),
            "{kind:?}: a second record of one message is refused"
        );
        assert_eq!(store.document(kind, key).await.unwrap(), Some(doc));
        assert_eq!(store.documents(kind, None, 10).await.unwrap().len(), 1);
    }
    assert!(store.document(DocKind::Cart, "x").await.unwrap().is_none());
}

/// The commit that reserves `order` (stored at version 1), publishing its event to
/// `consumers`, and the order as it is after.
fn reserving(order: &orderly_domain::Order, consumers: Vec<Consumer>) -> Commit {
    let mut reserved = order.clone();
    let event = reserved.apply(Transition::Reserve, &stamp(), None).unwrap();
    Commit {
        order: Some(OrderWrite::Update {
            order: reserved,
            expected_version: 1,
        }),
        events: vec![Outgoing { event, consumers }],
        ..Commit::default()
    }
}

fn note_write(key: &str, body: &str, read: Option<u32>) -> DocumentWrite {
    DocumentWrite {
        document: Document {
            kind: DocKind::Notes,
            key: key.to_owned(),
            version: read.map_or(1, |v| v + 1),
            body: body.to_owned(),
        },
        expected_version: read,
    }
}

pub async fn a_commit_writes_its_documents_with_the_order(store: Arc<dyn Store>) {
    with_product(&store, "001", 10).await;
    let order = fixtures::order("001", &[("001", 1)]);
    let key = order.id.to_string();
    let body = serde_json::json!({ "text": UNICODE_SAMPLES.join(" ") }).to_string();
    store
        .commit(Commit {
            documents: vec![note_write(&key, &body, None)],
            ..fixtures::place(&order)
        })
        .await
        .unwrap();
    let doc = store.document(DocKind::Notes, &key).await.unwrap().unwrap();
    assert_eq!((doc.version, doc.body.as_str()), (1, body.as_str()));
    store
        .commit(Commit {
            documents: vec![
                note_write(&key, "{\"n\":2}", Some(1)),
                DocumentWrite {
                    document: Document {
                        kind: DocKind::Escalation,
                        ..note_write(&key, "{}", None).document
                    },
                    expected_version: None,
                },
            ],
            ..reserving(&order, Vec::new())
        })
        .await
        .unwrap();
    let doc = store.document(DocKind::Notes, &key).await.unwrap().unwrap();
    assert_eq!((doc.version, doc.body.as_str()), (2, "{\"n\":2}"));
    assert!(
        store
            .document(DocKind::Escalation, &key)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.order(order.id).await.unwrap().unwrap().status,
        OrderStatus::Reserved
    );
}

pub async fn a_commit_whose_document_changed_writes_nothing(store: Arc<dyn Store>) {
    with_product(&store, "001", 10).await;
    let order = fixtures::order("001", &[("001", 2)]);
    let key = order.id.to_string();
    store.commit(fixtures::place(&order)).await.unwrap();
    store
        .put_document(&note_write(&key, "{\"n\":1}", None).document, None)
        .await
        .unwrap();
    store
        .put_document(&note_write(&key, "{\"n\":2}", Some(1)).document, Some(1))
        .await
        .unwrap();
    let stale = Commit {
        stock: vec![reserve("001", 2)],
        documents: vec![note_write(&key, "{\"n\":\"stale\"}", Some(1))],
        ..reserving(&order, vec![Consumer::Payment])
    };
    assert_eq!(
        store.commit(stale.clone()).await,
        Err(CommitError::DocumentChanged(DocKind::Notes, key.clone()))
    );
    let new_but_taken = Commit {
        documents: vec![note_write(&key, "{}", None)],
        ..stale
    };
    assert_eq!(
        store.commit(new_but_taken).await,
        Err(CommitError::DocumentChanged(DocKind::Notes, key.clone()))
    );
    assert_eq!(
        store.order(order.id).await.unwrap().unwrap().status,
        OrderStatus::Placed,
        "the order is not written"
    );
    assert_eq!(
        store.stock(&pid("001")).await.unwrap().unwrap().available,
        10,
        "no stock moved"
    );
    assert_eq!(store.order_events(order.id).await.unwrap().len(), 1);
    assert_eq!(store.pending_jobs().await.unwrap(), 1, "no job escaped");
    let doc = store.document(DocKind::Notes, &key).await.unwrap().unwrap();
    assert_eq!((doc.version, doc.body.as_str()), (2, "{\"n\":2}"));
}

pub async fn a_commit_whose_order_changed_writes_no_document(store: Arc<dyn Store>) {
    with_product(&store, "001", 10).await;
    let order = fixtures::order("001", &[("001", 1)]);
    let key = order.id.to_string();
    store.commit(fixtures::place(&order)).await.unwrap();
    let mut commit = Commit {
        documents: vec![note_write(&key, "{}", None)],
        ..reserving(&order, Vec::new())
    };
    if let Some(OrderWrite::Update {
        expected_version, ..
    }) = &mut commit.order
    {
        *expected_version = 7;
    }
    assert_eq!(
        store.commit(commit).await,
        Err(CommitError::VersionConflict(order.id))
    );
    assert!(
        store
            .document(DocKind::Notes, &key)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn only_the_lease_holder_puts_a_job_back_or_removes_it(store: Arc<dyn Store>) {
    let order = fixtures::order("001", &[("001", 1)]);
    store.commit(fixtures::place(&order)).await.unwrap();
    let first = store.claim_jobs(at(0), 10, 1_000).await.unwrap().remove(0);
    // The first run's lease runs out (its answer was lost, say) and another claims the job.
    let second = store
        .claim_jobs(at(2_000), 10, 1_000)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.id, second.id);
    assert_ne!(first.lease, second.lease, "each claim holds its own lease");
    store
        .retry_job(&first, 1, at(2_500), "late record of the first run")
        .await
        .unwrap();
    store.delete_job(&first).await.unwrap();
    assert_eq!(
        store.pending_jobs().await.unwrap(),
        1,
        "the stale claim removed nothing"
    );
    assert!(
        store
            .claim_jobs(at(2_600), 10, 1_000)
            .await
            .unwrap()
            .is_empty(),
        "the second claim still holds its lease: the step cannot run twice at once"
    );
    store
        .retry_job(&second, 1, at(3_500), "provider down")
        .await
        .unwrap();
    let third = store.claim_jobs(at(3_500), 10, 1_000).await.unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].last_error.as_deref(), Some("provider down"));
    store.delete_job(&third[0]).await.unwrap();
    assert_eq!(store.pending_jobs().await.unwrap(), 0);
}
