//! Orderly's application layer: the use cases, by capability, and the ports they need.
//!
//! # Layout
//! Each capability is a module with one service that holds only the ports it uses; the
//! [`Application`] composes them from one store.
//! - [`orders`]: [`Orders`] — place (priced, once per idempotency key), read, list, cancel,
//!   ship, deliver.
//! - [`catalog`]: [`Catalog`] — products, customers, stock and its adjustments, exchange
//!   rates; [`catalog::Pricing`], a product's price in any currency, shared with orders and carts.
//! - [`carts`]: [`Carts`] — carts priced in the shopper's currency, checkout, the availability
//!   sweep.
//! - [`support`]: [`Support`] — staff notes, address corrections, retries of a step that gave
//!   up, the needs-attention queue.
//! - [`accounts`]: customer accounts and profiles, staff users, sessions, API keys, rate limits
//!   and the audit log.
//! - [`notify`]: which messages an event produces and sending each once, through the
//!   [`ports::Notifier`] and [`notify::Templates`] ports; customers' preferences.
//! - [`saga`]: the steps that carry an order from placed to paid, and the
//!   [`saga::Dispatcher`] that runs queued jobs with retries.
//! - [`application`]: [`Application`], the composition root every entry point builds through,
//!   and [`Orderly`], the services the API serves.
//!
//! Shared by the capabilities, each small and importing none of them:
//! - [`ports`]: the traits adapters implement — the storage ports, the atomic
//!   [`ports::UnitOfWork`] of a [`ports::Commit`], the saga's [`ports::JobQueue`], payments,
//!   messages, the clock.
//! - [`commits`]: [`commits::Changes`] (commit, stamp, wake the dispatcher) and the commit
//!   shapes steps and use cases share; which consumers handle which event.
//! - [`documents`]: [`documents::Documents`], the typed repository over the document store,
//!   with the one optimistic-concurrency loop.
//! - [`step`]: [`step::StepError`], why a step did not finish.
//! - [`escalations`]: the staff's needs-attention queue, flagged and settled in the commits of
//!   the orders it names.
//! - [`paging`], [`retry`] (the backoff policy, as data), [`secret`] (a string that never
//!   reaches a log), [`error`] ([`AppError`]).
//! - [`memory`], [`metered`], [`storage`]: an in-memory store for tests, a store wrapper that
//!   counts every call for `/metrics`, and what every storage adapter shares.
//!
//! No module imports another in a circle (`tests/layout.rs` holds the crate to it). This crate
//! never sees SQL, HTTP or AWS types: adapters and entry points depend on it, not the other way
//! round.
#![forbid(unsafe_code)]

pub mod access;
pub mod accounts;
pub mod application;
pub mod carts;
pub mod catalog;
pub mod commits;
pub mod documents;
pub mod error;
pub mod escalations;
pub mod memory;
pub mod metered;
pub mod notify;
pub mod orders;
pub mod paging;
pub mod ports;
pub mod retry;
pub mod saga;
mod search_index;
pub mod secret;
pub mod step;
pub mod storage;
pub mod support;

pub use application::{AppSettings, Application, CART_IDLE, Orderly, Services};
pub use carts::{CartView, Carts, Checkout, OpenedCart, PricedLine, SweepReport};
pub use catalog::{Catalog, CreateProduct, UpdateProduct};
pub use error::AppError;
pub use orders::{IdempotencyKey, LineRequest, Orders, PlaceOrder, Placed};
pub use paging::page_request;
pub use retry::RetryPolicy;
pub use support::Support;
