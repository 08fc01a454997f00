//! Orderly's application layer: the use cases and the ports they need.
//!
//! # Layout
//! - [`ports`]: the traits adapters implement — stores ([`ports::CatalogStore`],
//!   [`ports::OrderStore`], [`ports::StockStore`]), the atomic [`ports::UnitOfWork`], the saga's
//!   [`ports::JobQueue`], the [`ports::PaymentGateway`], the [`ports::Clock`] and id generator.
//! - [`app`]: [`Orderly`], the use cases the API calls (place, read, list, cancel, ship, deliver,
//!   catalog, stock).
//! - [`accounts`]: customer accounts and profiles, staff users, sessions, API keys, rate limits
//!   and the audit log.
//! - [`carts`]: carts priced in the shopper's currency, checkout, the availability sweep.
//! - [`saga`]: the consumers that carry an order from placed to paid, and the [`saga::Dispatcher`]
//!   that runs queued jobs with retries.
//! - [`notify`]: which messages an event produces and sending each once, through the
//!   [`ports::Notifier`] port and the [`notify::Templates`] port.
//! - [`retry`]: the backoff policy, as data.
//! - [`secret`]: [`secret::Secret`], a string that never reaches a log.
//! - [`memory`]: an in-memory implementation of every storage port, for fast tests.
//! - [`metered`]: a store wrapper that counts and times every storage call, for `/metrics`.
//! - [`storage`]: what every storage adapter shares (document encoding, cursor pages).
//! - [`support`]: staff notes on orders, and shipping-address corrections.
//! - [`error`]: [`AppError`], what a use case answers instead of a result.
//!
//! This crate never sees SQL, HTTP or AWS types: adapters and entry points depend on it, not the
//! other way round.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod application;
pub mod carts;
pub mod catalog;
pub mod commits;
pub mod documents;
pub mod error;
pub mod memory;
pub mod metered;
pub mod notify;
pub mod orders;
pub mod paging;
pub mod ports;
pub mod retry;
pub mod saga;
pub mod secret;
pub mod storage;
pub mod support;

pub use application::{AppSettings, Application, CART_IDLE, Orderly};
pub use carts::{CartView, Carts, Checkout, OpenedCart, PricedLine, SweepReport};
pub use catalog::{Catalog, CreateProduct, UpdateProduct};
pub use error::AppError;
pub use orders::{IdempotencyKey, LineRequest, Orders, PlaceOrder, Placed};
pub use paging::page_request;
pub use retry::RetryPolicy;
pub use support::Support;
