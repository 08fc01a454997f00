//! Events: what happened to an order, in the reference designs' shape.
//!
//! The JSON form keeps the reference fields (`detailType`, `orderId`, `orderStatus`, `customerId`,
//! `items`, `totalAmount`) so existing consumers keep working, and adds the exact money as
//! `total: {"amount":"279.98","currency":"USD"}`. `totalAmount` is written as a JSON number from
//! the decimal string, never through a float.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::order::{Actor, Order, Stamp};
use crate::{CustomerId, EventId, Money, OrderId, ProductId, Quantity, Timestamp};

/// The kinds of event, named as in the reference design's EventBridge `detail-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// An order was accepted.
    OrderPlaced,
    /// Stock was reserved for every line.
    InventoryReserved,
    /// Not enough stock; the order is rejected.
    InventoryRejected,
    /// Payment captured; the order is paid.
    PaymentCaptured,
    /// Payment declined; the order is rejected and its stock released.
    PaymentFailed,
    /// Payment declined on a try that is not the last: the stock stays reserved and the
    /// payment is tried again after stage 1's next wait for declined cards.
    PaymentDeclined,
    /// Handed to a carrier.
    OrderShipped,
    /// Delivered.
    OrderDelivered,
    /// Canceled; stock released, payment to be refunded.
    OrderCanceled,
    /// A captured payment was refunded.
    RefundIssued,
    /// Staff asked for part of a captured payment back; the payment step refunds it.
    RefundRequested,
    /// A step ran out of retries; staff must look.
    OrderNeedsAttention,
    /// Staff asked for the step that gave up to run again.
    RetryRequested,
    /// Staff corrected the shipping address before the order shipped.
    ShippingAddressChanged,
    /// Staff sent the customer one of the messages written for it (the detail names it).
    CustomerContacted,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 15] = [
        EventKind::OrderPlaced,
        EventKind::InventoryReserved,
        EventKind::InventoryRejected,
        EventKind::PaymentCaptured,
        EventKind::PaymentFailed,
        EventKind::PaymentDeclined,
        EventKind::OrderShipped,
        EventKind::OrderDelivered,
        EventKind::OrderCanceled,
        EventKind::RefundIssued,
        EventKind::RefundRequested,
        EventKind::OrderNeedsAttention,
        EventKind::RetryRequested,
        EventKind::ShippingAddressChanged,
        EventKind::CustomerContacted,
    ];

    /// The `detail-type` name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::OrderPlaced => "OrderPlaced",
            EventKind::InventoryReserved => "InventoryReserved",
            EventKind::InventoryRejected => "InventoryRejected",
            EventKind::PaymentCaptured => "PaymentCaptured",
            EventKind::PaymentFailed => "PaymentFailed",
            EventKind::PaymentDeclined => "PaymentDeclined",
            EventKind::OrderShipped => "OrderShipped",
            EventKind::OrderDelivered => "OrderDelivered",
            EventKind::OrderCanceled => "OrderCanceled",
            EventKind::RefundIssued => "RefundIssued",
            EventKind::RefundRequested => "RefundRequested",
            EventKind::OrderNeedsAttention => "OrderNeedsAttention",
            EventKind::RetryRequested => "RetryRequested",
            EventKind::ShippingAddressChanged => "ShippingAddressChanged",
            EventKind::CustomerContacted => "CustomerContacted",
        }
    }

    /// Parses the `detail-type` name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The publishing service, as the reference bus rules match it.
    #[must_use]
    pub fn source(self) -> &'static str {
        match self {
            EventKind::InventoryReserved | EventKind::InventoryRejected => "ecommerce.inventory",
            EventKind::PaymentCaptured
            | EventKind::PaymentFailed
            | EventKind::PaymentDeclined
            | EventKind::RefundIssued
            | EventKind::RefundRequested => "ecommerce.payment",
            _ => "ecommerce.order",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A product and quantity, as the reference payload lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventItem {
    /// The product.
    pub product_id: ProductId,
    /// How many.
    pub quantity: Quantity,
}

/// Something that happened to an order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Unique; consumers record it to ignore redeliveries.
    pub id: EventId,
    /// What happened.
    #[serde(rename = "detailType")]
    pub kind: EventKind,
    /// When.
    pub time: Timestamp,
    /// The order.
    pub order_id: OrderId,
    /// The buyer.
    pub customer_id: CustomerId,
    /// What the order holds.
    pub items: Vec<EventItem>,
    /// The exact total.
    pub total: Money,
    /// Who or what caused it.
    pub actor: Actor,
    /// The order's version after the change; consumers can tell a stale event.
    pub order_version: u32,
    /// A reason, a carrier, an error: whatever explains the event.
    #[serde(default)]
    pub detail: Option<String>,
}

impl Event {
    /// The event describing `order` just after a change of kind `kind`.
    #[must_use]
    pub fn about(order: &Order, kind: EventKind, stamp: &Stamp, detail: Option<String>) -> Event {
        Event {
            id: stamp.event_id,
            kind,
            time: stamp.at,
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            items: order
                .lines
                .iter()
                .map(|l| EventItem {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            total: order.total,
            actor: stamp.actor.clone(),
            order_version: order.version,
            detail,
        }
    }

    /// The reference `source` of this event.
    #[must_use]
    pub fn source(&self) -> &'static str {
        self.kind.source()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventJson<'a> {
    id: EventId,
    detail_type: &'static str,
    source: &'static str,
    time: Timestamp,
    order_id: OrderId,
    order_status: &'static str,
    customer_id: &'a CustomerId,
    items: &'a [EventItem],
    total_amount: &'a RawValue,
    total: Money,
    actor: &'a Actor,
    order_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A decimal string is always a valid JSON number; building the raw value cannot fail
        // for text that `Money` formatted.
        let amount = RawValue::from_string(self.total.to_decimal_string())
            .map_err(serde::ser::Error::custom)?;
        EventJson {
            id: self.id,
            detail_type: self.kind.as_str(),
            source: self.kind.source(),
            time: self.time,
            order_id: self.order_id,
            order_status: self.kind.as_str(),
            customer_id: &self.customer_id,
            items: &self.items,
            total_amount: &amount,
            total: self.total,
            actor: &self.actor,
            order_version: self.order_version,
            detail: self.detail.as_deref(),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::tests_support::reference_order;

    #[test]
    fn the_json_carries_the_reference_fields_and_the_exact_total() {
        let order = reference_order();
        let stamp = Stamp {
            event_id: EventId::from_uuid(uuid::Uuid::from_u128(9)),
            at: Timestamp::from_millis(0),
            actor: Actor::api(),
        };
        let event = Event::about(&order, EventKind::OrderPlaced, &stamp, None);
        let json = serde_json::to_string(&event).unwrap();
        assert!(json.contains(r#""detailType":"OrderPlaced""#), "{json}");
        assert!(json.contains(r#""orderStatus":"OrderPlaced""#), "{json}");
        assert!(json.contains(r#""customerId":"001""#), "{json}");
        assert!(
            json.contains(
                r#""items":[{"productId":"001","quantity":1},{"productId":"002","quantity":1}]"#
            ),
            "{json}"
        );
        assert!(json.contains(r#""totalAmount":279.98,"#), "{json}");
        assert!(
            json.contains(r#""total":{"amount":"279.98","currency":"USD"}"#),
            "{json}"
        );
        assert!(json.contains(r#""source":"ecommerce.order""#), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn sources_follow_the_publishing_service() {
        assert_eq!(EventKind::InventoryReserved.source(), "ecommerce.inventory");
        assert_eq!(EventKind::PaymentCaptured.source(), "ecommerce.payment");
        assert_eq!(EventKind::OrderShipped.source(), "ecommerce.order");
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}
