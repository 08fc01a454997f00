//! The shapes of [`Commit`] the use cases and the saga's steps share, and who consumes each
//! event: what turns a domain change into one atomic write.

use std::collections::BTreeMap;

use orderly_domain::{Event, EventKind, Order, ProductId, StockEffect};

use crate::ports::{Commit, Consumer, OrderWrite, Outgoing, StockMove};

/// How many times a change is read and applied again after a concurrent writer changed the
/// same order or document first, before the caller is told to try again.
pub const CONFLICT_RETRIES: usize = 8;

/// Which consumers handle which events: the saga's steps, and the notifier for every event
/// that produces a message ([`crate::notify::Template::for_event`]).
#[must_use]
pub fn consumers_of(kind: EventKind) -> &'static [Consumer] {
    match kind {
        EventKind::OrderPlaced => &[Consumer::Inventory, Consumer::Notify],
        EventKind::InventoryReserved => &[Consumer::Payment],
        EventKind::OrderCanceled => &[Consumer::Payment, Consumer::Notify],
        EventKind::PaymentFailed
        | EventKind::OrderShipped
        | EventKind::OrderDelivered
        | EventKind::RefundIssued
        | EventKind::OrderNeedsAttention => &[Consumer::Notify],
        EventKind::InventoryRejected | EventKind::PaymentCaptured => &[],
        // A retry names the step it re-queues itself (see `Orderly::retry`).
        EventKind::RetryRequested => &[],
        // Recorded in the history; no step and no message follows from it.
        EventKind::ShippingAddressChanged => &[],
    }
}

/// A commit that writes `order` (read at `expected_version`), moves `stock` and publishes
/// `event`: the shape of almost every step.
#[must_use]
pub fn order_change(
    order: Order,
    expected_version: u32,
    event: Event,
    stock: Vec<StockMove>,
) -> Commit {
    Commit {
        order: Some(OrderWrite::Update {
            order,
            expected_version,
        }),
        stock,
        events: vec![outgoing(event)],
        ..Commit::default()
    }
}

/// An event with the consumers subscribed to its kind.
#[must_use]
pub fn outgoing(event: Event) -> Outgoing {
    Outgoing {
        consumers: consumers_of(event.kind).to_vec(),
        event,
    }
}

/// The stock moves a transition's effect implies for an order's lines, one per product.
#[must_use]
pub fn stock_moves(order: &Order, effect: StockEffect) -> Vec<StockMove> {
    let (available, reserved): (i64, i64) = match effect {
        StockEffect::Reserve => (-1, 1),
        StockEffect::Release => (1, -1),
        StockEffect::Consume => (0, -1),
        StockEffect::None => return Vec::new(),
    };
    let mut per_product: BTreeMap<&ProductId, i64> = BTreeMap::new();
    for line in &order.lines {
        *per_product.entry(&line.product_id).or_default() += i64::from(line.quantity.get());
    }
    per_product
        .into_iter()
        .map(|(product_id, n)| StockMove {
            product_id: product_id.clone(),
            available: available * n,
            reserved: reserved * n,
        })
        .collect()
}
