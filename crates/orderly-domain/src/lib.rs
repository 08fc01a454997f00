//! Orderly's domain: the rules of orders, money and stock, with no I/O, no async and no framework.
//!
//! # Layout
//! - [`money`]: [`Money`] in integer minor units with an ISO 4217 [`Currency`]; exact parse/format.
//! - [`ids`]: [`OrderId`], [`EventId`], merchant ids ([`ProductId`], [`CustomerId`]),
//!   [`Quantity`], [`Email`].
//! - [`text`]: [`Name`] and [`Address`], any script, byte-exact.
//! - [`catalog`]: [`Product`], [`Customer`], [`StockLevel`], [`StockAdjustment`].
//! - [`fx`]: [`ExchangeRate`], exact conversion of prices between currencies.
//! - [`cart`]: [`Cart`], a shopper's lines before checkout, with expiry and sweep notices.
//! - [`order`]: [`Order`] and its state machine ([`OrderStatus::after`]), history, payment, shipment.
//! - [`event`]: [`Event`] in the reference designs' shape.
//! - [`time`]: [`Timestamp`], UTC milliseconds.
//!
//! Everything that varies by the moment — the clock, new ids — is passed in (see [`Stamp`]), so
//! every rule here is a pure function that unit and property tests can pin down.
#![forbid(unsafe_code)]

pub mod cart;
pub mod catalog;
pub mod event;
pub mod fx;
pub mod ids;
pub mod money;
pub mod order;
pub mod search;
pub mod text;
pub mod time;

pub use cart::{Cart, CartChange, CartError, CartLine, CartNotice, CartStatus, MAX_CART_LINES};
pub use catalog::{Customer, Prices, Product, StockAdjustment, StockLevel};
pub use event::{Event, EventItem, EventKind};
pub use fx::{ExchangeRate, Rate};
pub use ids::{CartId, CustomerId, Email, EventId, OrderId, ProductId, Quantity};
pub use money::{Currency, Money, MoneyError};
pub use order::{
    Actor, AddressLocked, Attention, HistoryEntry, IllegalTransition, NewOrder, NotReportable,
    Order, OrderError, OrderLine, OrderStatus, Payment, Refund, RefundRefused, Shipment, Stamp,
    StockEffect, Transition, UNDELIVERABLE, UNDELIVERABLE_DETAIL, error_is_internal,
    visible_detail,
};
pub use text::{Address, Name};
pub use time::Timestamp;

/// A value that failed validation: which field, and what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct ValueError {
    /// The field's name as the API spells it (`quantity`, `shippingAddress.city`).
    pub field: String,
    /// What is wrong, phrased to follow the field name.
    pub message: String,
}

impl ValueError {
    /// A new error for `field`.
    #[must_use]
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        ValueError {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The same error under a parent field: `city` → `shippingAddress.city`.
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}
