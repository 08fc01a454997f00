//! HTTP tests against the real `orderly` binary: port 0, a fresh SQLite file per test.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod access;
mod carts;
mod catalog;
mod cluster;
mod concurrency;
mod crash;
mod graphql;
mod hostile;
mod notify;
mod orders;
mod outage;
mod panel;
mod refunds;
mod saga;
mod stripe;
mod validation;
