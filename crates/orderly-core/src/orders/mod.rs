//! Orders: placing them (priced from the catalog, once per idempotency key), reading and
//! listing them, and the changes staff and the shop make — cancel, ship, deliver.
//!
//! # Layout
//! - this module: [`Orders`], reading and changing orders;
//! - [`placing`]: the request to place an order, its idempotency key, and pricing it.

pub mod placing;
pub mod refunds;

use std::sync::Arc;

use orderly_domain::text::check_text;
use orderly_domain::{Event, Order, OrderId, OrderStatus, Shipment, Stamp, Transition};

pub use self::placing::{IdempotencyKey, LineRequest, PlaceOrder, Placed};
use crate::access::{Action, Cancel, Fulfil, OrderLookup, Permit, Read};
use crate::catalog::Pricing;
pub use crate::commits::MAX_REASON;
use crate::commits::{Changes, order_change, stock_moves};
use crate::documents::Documents;
use crate::error::{AppError, not_found};
use crate::escalations::{Escalation, Resolution, resolve_write};
use crate::ports::{
    CatalogStore, DocumentStore, OrderFilter, OrderStore, Page, PageRequest, StockMove,
};

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;
/// Longest carrier name or tracking number, in characters.
pub const MAX_SHIPMENT_TEXT: usize = 100;

/// Orders and what happens to them.
#[derive(Clone)]
pub struct Orders {
    orders: Arc<dyn OrderStore>,
    customers: Arc<dyn CatalogStore>,
    pricing: Pricing,
    changes: Changes,
    escalations: Documents<Escalation>,
    refund_limits: refunds::RefundLimits,
}

impl Orders {
    /// Orders over their ports (see [`crate::Application`]).
    pub(crate) fn new(
        orders: Arc<dyn OrderStore>,
        customers: Arc<dyn CatalogStore>,
        pricing: Pricing,
        changes: Changes,
        documents: Arc<dyn DocumentStore>,
        refund_limits: refunds::RefundLimits,
    ) -> Self {
        Orders {
            orders,
            customers,
            pricing,
            changes,
            escalations: Documents::new(documents),
            refund_limits,
        }
    }

    /// Orders whose id starts with `prefix`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// Storage.
    pub async fn with_id_prefix(
        &self,
        prefix: &orderly_domain::search::OrderIdPrefix,
        limit: u32,
    ) -> Result<Vec<Order>, AppError> {
        Ok(self.orders.orders_with_id_prefix(prefix, limit).await?)
    }

    /// One order with its history.
    ///
    /// # Errors
    /// [`AppError::NotFound`] or a storage failure.
    pub async fn order(&self, id: OrderId) -> Result<Order, AppError> {
        self.orders
            .order(id)
            .await?
            .ok_or_else(|| not_found("order", id))
    }

    /// Orders, newest first.
    ///
    /// # Errors
    /// [`AppError::InvalidCursor`] or a storage failure.
    pub async fn list_orders(
        &self,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> Result<Page<Order>, AppError> {
        Ok(self.orders.list_orders(filter, page).await?)
    }

    /// How many orders placed at or after `since` are in each status now (statuses with none
    /// left out), for the staff's dashboard.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn count_orders(
        &self,
        since: orderly_domain::Timestamp,
    ) -> Result<Vec<(OrderStatus, u64)>, AppError> {
        Ok(self.orders.count_orders(since).await?)
    }

    /// The events of order `id`, oldest first, for a use case that holds its own permit.
    pub(crate) async fn events_of(&self, id: OrderId) -> Result<Vec<Event>, AppError> {
        Ok(self.orders.order_events(id).await?)
    }

    /// The events of one order, oldest first.
    ///
    /// # Errors
    /// [`AppError::NotFound`] or a storage failure.
    pub async fn order_events(&self, permit: &Permit<Read>) -> Result<Vec<Event>, AppError> {
        Ok(self.orders.order_events(permit.id()).await?)
    }

    /// Cancels an order that has not shipped: releases its stock now; the payment step refunds a
    /// captured payment — which needs `orders:cancel-paid` unless the order is the caller's own. An order that needed attention no longer does, and its entry in the
    /// staff's queue is resolved by the permit's actor in the same commit.
    ///
    /// # Errors
    /// [`AppError::IllegalTransition`] once shipped or final, [`AppError::Forbidden`] for a paid
    /// order without `orders:cancel-paid`, [`AppError::Changed`] if the permit expects a
    /// version the order has left, [`AppError::NotFound`], storage.
    #[tracing::instrument(skip_all, fields(order_id = %permit.id()))]
    pub async fn cancel(
        &self,
        permit: Permit<Cancel>,
        reason: Option<String>,
    ) -> Result<Order, AppError> {
        if let Some(r) = &reason {
            check_text("reason", r, MAX_REASON)?;
        }
        let (permit, reason) = (&permit, &reason);
        self.changes
            .retrying(permit.id(), || async move {
                let mut order = self.order(permit.id()).await?;
                permit.check_current(&order)?;
                // A paid order that may still be canceled refunds: beyond a limited role.
                if order.status.after(Transition::Cancel).is_ok()
                    && order.has_unrefunded_payment()
                    && !permit.unlimited()
                {
                    return Err(AppError::Forbidden(format!(
                        "order {} is paid: canceling it refunds {}, which a manager does (orders:cancel-paid); ask one, or refund part of it within your limit",
                        order.id,
                        order.payment.as_ref().map_or(order.total, orderly_domain::Payment::refundable)
                    )));
                }
                let expected_version = order.version;
                let stamp = self.changes.stamp(permit.actor().clone());
                let from = order.status;
                let event = order.apply(Transition::Cancel, &stamp, reason.clone())?;
                let stock = stock_moves(&order, Transition::Cancel.stock_effect(from));
                let mut commit = order_change(order.clone(), expected_version, event, stock);
                commit.documents.extend(
                    resolve_write(&self.escalations, order.id, &stamp, Resolution::Canceled)
                        .await?,
                );
                Ok((commit, order))
            })
            .await
    }

    /// Records the hand-over to a carrier; the reserved stock leaves the warehouse.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for empty carrier or tracking number, [`AppError::IllegalTransition`]
    /// unless paid, [`AppError::NotNow`] while the carrier cannot deliver to its address,
    /// [`AppError::NotFound`], storage.
    #[tracing::instrument(skip_all, fields(order_id = %permit.id()))]
    pub async fn ship(
        &self,
        permit: Permit<Fulfil>,
        carrier: String,
        tracking_number: String,
    ) -> Result<Order, AppError> {
        let mut errors = Vec::new();
        for (field, value) in [("carrier", &carrier), ("trackingNumber", &tracking_number)] {
            if let Err(e) = check_text(field, value, MAX_SHIPMENT_TEXT) {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        self.change(&permit, |order, stamp| {
            if let Some(a) = order.needs_attention.as_ref().filter(|a| a.awaits_address()) {
                return Err(AppError::NotNow(format!(
                    "order {} cannot ship: the carrier cannot deliver to its address ({}); correct the address first",
                    order.id, a.error
                )));
            }
            let from = order.status;
            let shipment = Shipment {
                carrier: carrier.clone(),
                tracking_number: tracking_number.clone(),
                shipped_at: stamp.at,
            };
            let event = order.ship(shipment, stamp)?;
            Ok((
                event,
                stock_moves(order, Transition::Ship.stock_effect(from)),
            ))
        })
        .await
    }

    /// Records the delivery.
    ///
    /// # Errors
    /// [`AppError::IllegalTransition`] unless shipped, [`AppError::NotFound`], storage.
    #[tracing::instrument(skip_all, fields(order_id = %permit.id()))]
    pub async fn deliver(&self, permit: Permit<Fulfil>) -> Result<Order, AppError> {
        self.change(&permit, |order, stamp| {
            Ok((order.apply(Transition::Deliver, stamp, None)?, Vec::new()))
        })
        .await
    }

    /// Read, change, commit with the version check; on a concurrent change, read again.
    async fn change<A, F>(&self, permit: &Permit<A>, f: F) -> Result<Order, AppError>
    where
        A: Action,
        F: Fn(&mut Order, &Stamp) -> Result<(Event, Vec<StockMove>), AppError>,
    {
        let f = &f;
        let id = permit.id();
        self.changes
            .retrying(id, || async move {
                let mut order = self.order(id).await?;
                permit.check_current(&order)?;
                let expected_version = order.version;
                let stamp = self.changes.stamp(permit.actor().clone());
                let (event, stock) = f(&mut order, &stamp)?;
                let commit = order_change(order.clone(), expected_version, event, stock);
                Ok((commit, order))
            })
            .await
    }
}

impl OrderLookup for Orders {
    async fn order(&self, id: OrderId) -> Result<Order, AppError> {
        Orders::order(self, id).await
    }
}

/// True for statuses whose orders hold reserved stock.
#[must_use]
pub fn holds_stock(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Reserved | OrderStatus::Paid)
}
