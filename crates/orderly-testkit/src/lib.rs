//! What Orderly's tests share.
//!
//! # Layout
//! - [`fixtures`]: builders for products, customers and orders with sensible defaults.
//! - [`contract`]: the storage contract — every behaviour a backend must have — as async
//!   functions over a fresh [`Store`]. [`store_contract_tests!`] expands it into one `#[test]`
//!   per behaviour for a backend, so SQLite, PostgreSQL and the memory store run the very same
//!   tests.
//! - [`stripe_double`]: a local double of Stripe's API (PaymentIntents, refunds, search,
//!   idempotency, errors, test cards) that records every request and can be told to fail.
//! - [`proxy`]: a TCP proxy that can cut and restore the line to a database, for outage tests.
//! - [`smtp`]: a real SMTP server on loopback that captures messages, decodes them, can be
//!   stopped and restarted on its port, and can be told to answer 4xx.
//! - [`staff`]: an admin who acts on orders through the access policy, as every entry point
//!   does.
#![forbid(unsafe_code)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod contract;
pub mod fixtures;
pub mod proxy;
pub mod smtp;
pub mod staff;
pub mod stripe_double;

pub use orderly_core::ports::Store;

/// Expands the storage contract into tests for one backend.
///
/// `$fresh` is an async expression (evaluated once per test) giving a fresh, empty
/// `Arc<dyn Store>` plus whatever must live as long as the test (a temp dir, a database guard).
///
/// ```text
/// orderly_testkit::store_contract_tests!(async { fresh_sqlite().await });
/// ```
#[macro_export]
macro_rules! store_contract_tests {
    ($fresh:expr) => {
        $crate::store_contract_tests!(@each $fresh;
            products_round_trip_byte_exact,
            creating_a_product_twice_is_refused,
            products_are_listed_by_id_in_pages,
            documents_are_versioned_and_listed_by_key,
            documents_are_listed_in_byte_order_after_any_key,
            orders_import_in_bulk_without_saga_work,
            updating_a_missing_product_is_not_found,
            customers_round_trip_byte_exact,
            orders_round_trip_byte_exact,
            an_update_with_a_stale_version_is_refused,
            inserting_an_order_id_twice_fails,
            stock_never_goes_below_zero,
            a_failed_commit_changes_nothing,
            moves_on_an_unknown_product_are_refused,
            adjustments_are_recorded_newest_first,
            an_idempotency_key_is_stored_once,
            a_handled_event_is_recognised_and_its_job_removed,
            events_are_kept_per_order_in_order,
            only_the_first_job_of_each_order_is_claimed,
            a_waiting_notification_never_holds_back_the_saga,
            notification_documents_are_kept_like_any_other,
            a_claimed_job_is_leased_until_it_expires_or_is_released,
            a_claim_whose_answer_was_lost_is_released_by_its_lease,
            a_retried_job_waits_until_due,
            jobs_waiting_after_a_failure_are_listed_and_can_be_hurried,
            orders_are_listed_newest_first_with_filters_and_cursors,
            orders_are_found_by_the_start_of_their_id,
            orders_are_counted_by_status_since_a_moment,
            a_foreign_cursor_is_refused,
            concurrent_reservations_sell_exactly_the_stock,
            a_fresh_store_is_ready,
            a_commit_writes_its_documents_with_the_order,
            a_commit_whose_document_changed_writes_nothing,
            a_commit_whose_order_changed_writes_no_document,
            only_the_lease_holder_puts_a_job_back_or_removes_it,
        );
    };
    (@each $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $fresh.await;
                $crate::contract::$name(store).await;
            }
        )*
    };
}
