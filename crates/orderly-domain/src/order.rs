//! The order and its state machine.
//!
//! ```text
//! placed ──reserve──▶ reserved ──capture──▶ paid ──ship──▶ shipped ──deliver──▶ delivered
//!   │                   │                    │
//!   └─ out of stock ─▶ rejected  └─ declined ─▶ rejected (stock released)
//!   cancel from placed/reserved/paid ─▶ canceled (stock released, payment refunded)
//! ```
//!
//! Every change goes through [`Order::apply`], which checks the transition against the table in
//! [`OrderStatus::after`], bumps the version, appends a history entry and returns the event to
//! publish. An illegal transition is an [`IllegalTransition`] error and changes nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind};
use crate::fx::ExchangeRate;
use crate::{
    Address, Currency, CustomerId, EventId, Money, Name, OrderId, ProductId, Quantity, Timestamp,
};

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OrderStatus {
    /// Accepted and acknowledged; stock not yet reserved.
    Placed,
    /// Stock is held for it; payment not yet captured.
    Reserved,
    /// Payment captured.
    Paid,
    /// Handed to a carrier.
    Shipped,
    /// Received by the customer. Final.
    Delivered,
    /// Out of stock or payment declined; nothing is held. Final.
    Rejected,
    /// Canceled before shipping; stock released, payment refunded. Final.
    Canceled,
}

impl OrderStatus {
    /// True until the order ships (or ends without shipping): where it goes can still change.
    #[must_use]
    pub fn accepts_address_change(self) -> bool {
        matches!(
            self,
            OrderStatus::Placed | OrderStatus::Reserved | OrderStatus::Paid
        )
    }

    /// Every status, in life order.
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Placed,
        OrderStatus::Reserved,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Rejected,
        OrderStatus::Canceled,
    ];

    /// The lower-case name used in the API and in storage.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Reserved => "reserved",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Canceled => "canceled",
        }
    }

    /// Parses the lower-case name.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// True when nothing more can happen to the order.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Delivered | OrderStatus::Rejected | OrderStatus::Canceled
        )
    }

    /// The state machine: the status after `transition`, or why it is not allowed.
    ///
    /// # Errors
    /// [`IllegalTransition`] for any pair not drawn in the module diagram.
    pub fn after(self, transition: Transition) -> Result<OrderStatus, IllegalTransition> {
        use OrderStatus as S;
        use Transition as T;
        let next = match (self, transition) {
            (S::Placed, T::Reserve) => S::Reserved,
            (S::Placed, T::RejectOutOfStock) => S::Rejected,
            (S::Reserved, T::CapturePayment) => S::Paid,
            (S::Reserved, T::DeclinePayment) => S::Rejected,
            (S::Paid, T::Ship) => S::Shipped,
            (S::Shipped, T::Deliver) => S::Delivered,
            (S::Placed | S::Reserved | S::Paid, T::Cancel) => S::Canceled,
            (from, transition) => return Err(IllegalTransition { from, transition }),
        };
        Ok(next)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Transition {
    /// Stock was reserved for every line.
    Reserve,
    /// Some line could not be reserved.
    RejectOutOfStock,
    /// The payment provider captured the total.
    CapturePayment,
    /// The payment provider declined.
    DeclinePayment,
    /// Handed to a carrier.
    Ship,
    /// The carrier delivered.
    Deliver,
    /// The customer or staff canceled.
    Cancel,
}

impl Transition {
    /// Every transition.
    pub const ALL: [Transition; 7] = [
        Transition::Reserve,
        Transition::RejectOutOfStock,
        Transition::CapturePayment,
        Transition::DeclinePayment,
        Transition::Ship,
        Transition::Deliver,
        Transition::Cancel,
    ];

    /// The verb used in error messages ("cannot ship a canceled order").
    #[must_use]
    pub fn verb(self) -> &'static str {
        match self {
            Transition::Reserve => "reserve stock for",
            Transition::RejectOutOfStock => "reject",
            Transition::CapturePayment => "capture payment for",
            Transition::DeclinePayment => "decline payment for",
            Transition::Ship => "ship",
            Transition::Deliver => "deliver",
            Transition::Cancel => "cancel",
        }
    }

    /// What the transition does to stock when taken from `from`.
    #[must_use]
    pub fn stock_effect(self, from: OrderStatus) -> StockEffect {
        match (self, from) {
            (Transition::Reserve, _) => StockEffect::Reserve,
            (Transition::DeclinePayment, _) => StockEffect::Release,
            (Transition::Cancel, OrderStatus::Reserved | OrderStatus::Paid) => StockEffect::Release,
            (Transition::Ship, _) => StockEffect::Consume,
            _ => StockEffect::None,
        }
    }

    fn event_kind(self) -> EventKind {
        match self {
            Transition::Reserve => EventKind::InventoryReserved,
            Transition::RejectOutOfStock => EventKind::InventoryRejected,
            Transition::CapturePayment => EventKind::PaymentCaptured,
            Transition::DeclinePayment => EventKind::PaymentFailed,
            Transition::Ship => EventKind::OrderShipped,
            Transition::Deliver => EventKind::OrderDelivered,
            Transition::Cancel => EventKind::OrderCanceled,
        }
    }
}

/// How a transition moves each line's quantity between available and reserved stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockEffect {
    /// available → reserved (must not drive available below zero).
    Reserve,
    /// reserved → available.
    Release,
    /// reserved → gone (shipped).
    Consume,
    /// No stock moves.
    None,
}

/// A transition not allowed from the order's current status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} an order that is {from}", transition.verb())]
pub struct IllegalTransition {
    /// The status the order is in.
    pub from: OrderStatus,
    /// What was asked.
    pub transition: Transition,
}

/// Why a refund cannot be asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefused {
    /// Nothing was captured.
    #[error("nothing was captured for this order, so there is nothing to refund")]
    NotPaid,
    /// A canceled order refunds all that is left on its own.
    #[error("the order is canceled; what was captured is refunded in full without asking")]
    Canceled,
    /// The amount is in another currency than the order.
    #[error("the order is in {order}; a refund of it is in {order} too, not {asked}")]
    WrongCurrency {
        /// The order's currency.
        order: Currency,
        /// The amount's.
        asked: Currency,
    },
    /// Zero or less.
    #[error("a refund is more than zero")]
    NotPositive,
    /// More than is left to refund.
    #[error(
        "at most {left} is left to refund (what was captured, less what is refunded or being refunded)"
    )]
    TooMuch {
        /// What may still be refunded.
        left: Money,
    },
}

/// Why an undeliverable address cannot be reported for an order now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotReportable {
    /// Only a paid order, not yet shipped, is on its way to a carrier.
    #[error(
        "the order is {0}; an undeliverable address is reported for a paid order, before it ships"
    )]
    NotPaid(OrderStatus),
    /// A step that gave up waits for staff first.
    #[error("the order needs attention for its {0} step; settle that first")]
    Flagged(String),
}

/// A shipping address change asked of an order that has shipped or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the order is {0}; its address can change only until it ships")]
pub struct AddressLocked(pub OrderStatus);

/// Who or what caused a change: shown in the history so staff can tell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(String);

impl Actor {
    /// A request to the public API (REST, GraphQL).
    #[must_use]
    pub fn api() -> Self {
        Actor("api".to_owned())
    }

    /// An automatic step of the saga, e.g. `system:inventory`.
    #[must_use]
    pub fn system(step: &str) -> Self {
        Actor(format!("system:{step}"))
    }

    /// An authenticated caller, as it names itself: `customer:001`, `staff:ana@shop.example`,
    /// `key:3f9a…`.
    #[must_use]
    pub fn caller(label: &str) -> Self {
        Actor(label.to_owned())
    }

    /// A named member of staff.
    #[must_use]
    pub fn staff(name: &str) -> Self {
        Actor(format!("staff:{name}"))
    }

    /// The label.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One priced line of an order; the price is a snapshot taken when the order was placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// What was ordered.
    pub product_id: ProductId,
    /// The product's name when ordered.
    pub name: Name,
    /// How many.
    pub quantity: Quantity,
    /// Price of one, in the order's currency, when ordered.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub line_total: Money,
}

/// The captured payment of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// The provider's id for the charge.
    pub provider_ref: String,
    /// The provider's id for the authorization the charge took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// Captured amount.
    pub amount: Money,
    /// When it was captured.
    pub captured_at: Timestamp,
    /// Refunds so far, oldest first (full or partial). Documents written before partial
    /// refunds existed hold one under `refund`.
    #[serde(
        default,
        alias = "refund",
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub refunds: Vec<Refund>,
    /// Refunds staff asked for that the payment step has not made yet, summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_pending: Option<Money>,
    /// The refund the payment step is making now: its amount is fixed before the provider is
    /// asked, so every retry of it asks for the same amount under the same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_in_flight: Option<Money>,
}

impl Payment {
    /// What has been refunded so far.
    #[must_use]
    pub fn refunded(&self) -> Money {
        self.refunds
            .iter()
            .fold(Money::zero(self.amount.currency()), |sum, r| {
                sum.checked_add(r.amount).unwrap_or(sum)
            })
    }

    /// What can still be refunded.
    #[must_use]
    pub fn refundable(&self) -> Money {
        self.amount
            .checked_sub(self.refunded())
            .unwrap_or(Money::zero(self.amount.currency()))
    }
}

/// Reads a list of refunds, or the single refund older documents hold.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Refund>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<Refund>),
        One(Refund),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        Some(OneOrMany::Many(v)) => v,
        Some(OneOrMany::One(r)) => vec![r],
        None => Vec::new(),
    })
}

/// Money given back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Refund {
    /// The provider's id for the refund.
    pub provider_ref: String,
    /// Refunded amount.
    pub amount: Money,
    /// When.
    pub at: Timestamp,
}

/// The carrier's parcel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shipment {
    /// Carrier name as staff typed it.
    pub carrier: String,
    /// The carrier's tracking number.
    pub tracking_number: String,
    /// When it left.
    pub shipped_at: Timestamp,
}

/// The [`Attention::step`] of an order whose shipping address the carrier cannot deliver to:
/// a person corrects the address ([`Order::change_shipping_address`] settles it); running a
/// step again would not help.
pub const UNDELIVERABLE: &str = "address";

/// Why an order is waiting for a person: a step ran out of retries, or the carrier cannot
/// deliver to its address ([`UNDELIVERABLE`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attention {
    /// The saga step that gave up (`inventory`, `payment`).
    pub step: String,
    /// The last error, for staff.
    pub error: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// When it was flagged.
    pub since: Timestamp,
}

impl Attention {
    /// True if it waits for a corrected address ([`UNDELIVERABLE`]), not for a step to run
    /// again.
    #[must_use]
    pub fn awaits_address(&self) -> bool {
        self.step == UNDELIVERABLE
    }

    /// True if [`Attention::error`] is a step's raw error, which may quote internals (SQL, a
    /// provider's message) and is shown only to those allowed to read raw errors; false for
    /// words meant for staff (the carrier's reason for an [`UNDELIVERABLE`] address).
    #[must_use]
    pub fn error_is_internal(&self) -> bool {
        error_is_internal(&self.step)
    }
}

/// [`Attention::error_is_internal`] for the step named `step`.
#[must_use]
pub fn error_is_internal(step: &str) -> bool {
    step != UNDELIVERABLE
}

/// How the history records an undeliverable address, before the carrier's words.
pub const UNDELIVERABLE_DETAIL: &str = "the carrier cannot deliver to the shipping address";

/// How a step's give-up entry in the history begins: `payment gave up after 5 attempts: …`,
/// the raw error after the colon.
const GAVE_UP: &str = " gave up after ";

/// One line of an order's history: what happened, when, and who or what caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// When.
    pub at: Timestamp,
    /// The event recorded (e.g. `PaymentCaptured`).
    pub event: EventKind,
    /// Status before; absent for the placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<OrderStatus>,
    /// Status after.
    pub to: OrderStatus,
    /// Who or what caused it.
    pub actor: Actor,
    /// A reason, a carrier, an error: whatever explains the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HistoryEntry {
    /// The detail as a caller sees it: without `raw_errors`, a step's give-up entry stops
    /// before its raw error (`payment gave up after 5 attempts`).
    #[must_use]
    pub fn detail_for(&self, raw_errors: bool) -> Option<&str> {
        self.detail
            .as_deref()
            .map(|d| visible_detail(self.event, d, raw_errors))
    }
}

/// [`HistoryEntry::detail_for`], for a detail already apart from its entry.
#[must_use]
pub fn visible_detail(event: EventKind, detail: &str, raw_errors: bool) -> &str {
    if raw_errors || event != EventKind::OrderNeedsAttention {
        return detail;
    }
    match detail.split_once(": ") {
        Some((head, _)) if head.contains(GAVE_UP) => head,
        _ => detail,
    }
}

/// An order: who bought what, at which prices, and everything that happened to it since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Time-ordered id.
    pub id: OrderId,
    /// The buyer.
    pub customer_id: CustomerId,
    /// The currency of every amount on the order.
    pub currency: Currency,
    /// What was bought; at least one line.
    pub lines: Vec<OrderLine>,
    /// Sum of the line totals.
    pub total: Money,
    /// Where it goes; optional for digital goods and the reference body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<Address>,
    /// The rate its prices were converted with, when the catalog had none in its currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_rate: Option<ExchangeRate>,
    /// The provider's token for the buyer's payment method (never card data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// Current status.
    pub status: OrderStatus,
    /// Starts at 1; +1 on every change. Stores use it for optimistic concurrency.
    pub version: u32,
    /// Why the order was rejected or canceled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when a step ran out of retries; cleared when staff resolve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_attention: Option<Attention>,
    /// The captured payment and its refund.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<Payment>,
    /// The parcel, once shipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<Shipment>,
    /// Every change, oldest first.
    pub history: Vec<HistoryEntry>,
    /// When it was placed.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// When, by whom and under which event id a change happens: supplied by the caller so that the
/// domain stays free of clocks and random numbers.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// The id the resulting event will carry.
    pub event_id: EventId,
    /// Now.
    pub at: Timestamp,
    /// Who or what.
    pub actor: Actor,
}

/// A new order's content, already validated and priced.
#[derive(Clone, Debug)]
pub struct NewOrder {
    /// The id to give it.
    pub id: OrderId,
    /// The buyer.
    pub customer_id: CustomerId,
    /// Currency of every line.
    pub currency: Currency,
    /// Priced lines.
    pub lines: Vec<OrderLine>,
    /// Optional address.
    pub shipping_address: Option<Address>,
    /// The rate used to convert prices, if any was.
    pub exchange_rate: Option<ExchangeRate>,
    /// The provider's token for the buyer's payment method.
    pub payment_method: Option<String>,
}

/// Why a new order cannot be made from its parts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// No lines.
    #[error("an order needs at least one line")]
    Empty,
    /// A line in another currency than the order.
    #[error("line for {0} is not priced in the order's currency")]
    MixedCurrency(ProductId),
    /// The total does not fit.
    #[error("order total is out of range")]
    Overflow,
}

impl Order {
    /// Places a new order and returns it with its `OrderPlaced` event.
    ///
    /// # Errors
    /// [`OrderError`] if there are no lines, a line is in another currency, or the total overflows.
    pub fn place(new: NewOrder, stamp: Stamp) -> Result<(Order, Event), OrderError> {
        if new.lines.is_empty() {
            return Err(OrderError::Empty);
        }
        let mut total = Money::zero(new.currency);
        for line in &new.lines {
            if line.line_total.currency() != new.currency
                || line.unit_price.currency() != new.currency
            {
                return Err(OrderError::MixedCurrency(line.product_id.clone()));
            }
            total = total
                .checked_add(line.line_total)
                .map_err(|_| OrderError::Overflow)?;
        }
        let order = Order {
            id: new.id,
            customer_id: new.customer_id,
            currency: new.currency,
            lines: new.lines,
            total,
            shipping_address: new.shipping_address,
            exchange_rate: new.exchange_rate,
            payment_method: new.payment_method,
            status: OrderStatus::Placed,
            version: 1,
            reason: None,
            needs_attention: None,
            payment: None,
            shipment: None,
            history: vec![HistoryEntry {
                at: stamp.at,
                event: EventKind::OrderPlaced,
                from: None,
                to: OrderStatus::Placed,
                actor: stamp.actor.clone(),
                detail: None,
            }],
            created_at: stamp.at,
            updated_at: stamp.at,
        };
        let event = Event::about(&order, EventKind::OrderPlaced, &stamp, None);
        Ok((order, event))
    }

    /// Takes a transition: checks it, updates status, version and history, and returns the
    /// event to publish. `detail` explains it in the history and the event (a reason, a carrier).
    /// Canceling also clears the attention flag: the step that gave up has nothing left to do
    /// (the cancellation's own work — releasing stock, refunding — runs as new steps).
    ///
    /// # Errors
    /// [`IllegalTransition`] if the state machine does not allow it; the order is unchanged.
    pub fn apply(
        &mut self,
        transition: Transition,
        stamp: &Stamp,
        detail: Option<String>,
    ) -> Result<Event, IllegalTransition> {
        let from = self.status;
        let to = from.after(transition)?;
        if matches!(
            transition,
            Transition::RejectOutOfStock | Transition::DeclinePayment | Transition::Cancel
        ) {
            self.reason.clone_from(&detail);
        }
        if transition == Transition::Cancel {
            self.needs_attention = None;
        }
        self.status = to;
        Ok(self.record(transition.event_kind(), Some(from), stamp, detail))
    }

    /// Replaces the shipping address of an order that has not shipped; the history keeps the
    /// old and the new address. No status change. An order flagged [`UNDELIVERABLE`] no longer
    /// needs attention.
    ///
    /// # Errors
    /// [`AddressLocked`] once the order has shipped, or ended without shipping.
    pub fn change_shipping_address(
        &mut self,
        address: Address,
        stamp: &Stamp,
    ) -> Result<Event, AddressLocked> {
        if !self.status.accepts_address_change() {
            return Err(AddressLocked(self.status));
        }
        let detail = Some(format!(
            "shipping address changed from {} to {}",
            self.shipping_address
                .as_ref()
                .map_or_else(|| "none".to_owned(), Address::one_line),
            address.one_line()
        ));
        self.shipping_address = Some(address);
        if self
            .needs_attention
            .as_ref()
            .is_some_and(Attention::awaits_address)
        {
            self.needs_attention = None;
        }
        let mut event = self.record(
            EventKind::ShippingAddressChanged,
            Some(self.status),
            stamp,
            detail,
        );
        // The addresses stay in the order's own history; the event, which leaves for the bus,
        // says only what happened.
        event.detail = Some("shipping address changed".to_owned());
        Ok(event)
    }

    /// Records the captured payment and moves the order to `paid`.
    ///
    /// # Errors
    /// [`IllegalTransition`] unless the order is `reserved`.
    pub fn capture(&mut self, payment: Payment, stamp: &Stamp) -> Result<Event, IllegalTransition> {
        self.status.after(Transition::CapturePayment)?;
        let detail = Some(format!("payment {}", payment.provider_ref));
        self.payment = Some(payment);
        self.apply(Transition::CapturePayment, stamp, detail)
    }

    /// Records the shipment and moves the order to `shipped`.
    ///
    /// # Errors
    /// [`IllegalTransition`] unless the order is `paid`.
    pub fn ship(&mut self, shipment: Shipment, stamp: &Stamp) -> Result<Event, IllegalTransition> {
        self.status.after(Transition::Ship)?;
        let detail = Some(format!("{} {}", shipment.carrier, shipment.tracking_number));
        self.shipment = Some(shipment);
        self.apply(Transition::Ship, stamp, detail)
    }

    /// Records a payment captured after the order left `reserved` (it was canceled while the
    /// provider was charging): the money must be known so that it can be refunded.
    pub fn record_late_payment(&mut self, payment: Payment, stamp: &Stamp) -> Event {
        let detail = Some(format!(
            "payment {} arrived after the order was {}",
            payment.provider_ref, self.status
        ));
        self.payment = Some(payment);
        self.record(EventKind::PaymentCaptured, Some(self.status), stamp, detail)
    }

    /// Records a refund of the captured payment. No status change.
    pub fn record_refund(&mut self, refund: Refund, stamp: &Stamp) -> Event {
        let detail = Some(format!(
            "refund {} of {}",
            refund.provider_ref, refund.amount
        ));
        if let Some(payment) = &mut self.payment {
            // What it makes of the refunds asked for is no longer pending; nor is anything
            // once nothing is left to refund.
            let amount = refund.amount;
            payment.refunds.push(refund);
            payment.refund_in_flight = None;
            payment.refund_pending = payment
                .refund_pending
                .and_then(|p| p.checked_sub(amount).ok())
                .filter(|p| p.minor() > 0 && payment.refundable().minor() > 0);
        }
        self.record(EventKind::RefundIssued, Some(self.status), stamp, detail)
    }

    /// Asks for part of the captured payment back (a goodwill gesture, a missing item): the
    /// payment step refunds it. No status change.
    ///
    /// # Errors
    /// [`RefundRefused`]: nothing captured, a canceled order, another currency, not more than
    /// zero, or more than is left once the refunds already asked for are made.
    pub fn request_refund(
        &mut self,
        amount: Money,
        stamp: &Stamp,
        reason: Option<&str>,
    ) -> Result<Event, RefundRefused> {
        let left = self.refund_left().ok_or(RefundRefused::NotPaid)?;
        if self.status == OrderStatus::Canceled {
            return Err(RefundRefused::Canceled);
        }
        if amount.currency() != self.currency {
            return Err(RefundRefused::WrongCurrency {
                order: self.currency,
                asked: amount.currency(),
            });
        }
        if amount.minor() <= 0 {
            return Err(RefundRefused::NotPositive);
        }
        if amount.minor() > left.minor() {
            return Err(RefundRefused::TooMuch { left });
        }
        if let Some(payment) = &mut self.payment {
            payment.refund_pending = Some(match payment.refund_pending {
                Some(p) => p
                    .checked_add(amount)
                    .map_err(|_| RefundRefused::TooMuch { left })?,
                None => amount,
            });
        }
        let mut detail = format!("refund of {amount} asked for");
        if let Some(r) = reason.filter(|r| !r.trim().is_empty()) {
            detail.push_str(": ");
            detail.push_str(r);
        }
        Ok(self.record(
            EventKind::RefundRequested,
            Some(self.status),
            stamp,
            Some(detail),
        ))
    }

    /// Fixes the amount of the refund the payment step makes next (see
    /// [`Payment::refund_in_flight`]); a new version, no history entry (the refund records one
    /// when it is made). `false` if a refund is in flight already, or nothing was captured.
    pub fn begin_refund(&mut self, amount: Money, at: Timestamp) -> bool {
        let Some(payment) = &mut self.payment else {
            return false;
        };
        if payment.refund_in_flight.is_some() {
            return false;
        }
        payment.refund_in_flight = Some(amount);
        self.version += 1;
        self.updated_at = at;
        true
    }

    /// What may still be asked for: captured, less refunded, less pending (`None`: nothing
    /// was captured).
    #[must_use]
    pub fn refund_left(&self) -> Option<Money> {
        let payment = self.payment.as_ref()?;
        let left = payment.refundable();
        Some(match payment.refund_pending {
            Some(p) => left.checked_sub(p).unwrap_or(Money::zero(left.currency())),
            None => left,
        })
    }

    /// What the payment step owes of the refunds asked for: pending, at most what is left to
    /// refund (`None`: nothing).
    #[must_use]
    pub fn refund_due(&self) -> Option<Money> {
        let payment = self.payment.as_ref()?;
        let pending = payment.refund_pending?;
        let due = pending.minor().min(payment.refundable().minor());
        (due > 0).then(|| Money::from_minor(due, pending.currency()))
    }

    /// Flags the order for staff: a step ran out of retries. No status change.
    pub fn flag_attention(&mut self, attention: Attention, stamp: &Stamp) -> Event {
        let detail = Some(format!(
            "{}{GAVE_UP}{} attempts: {}",
            attention.step, attention.attempts, attention.error
        ));
        self.needs_attention = Some(attention);
        self.record(
            EventKind::OrderNeedsAttention,
            Some(self.status),
            stamp,
            detail,
        )
    }

    /// Flags a paid order for staff because the carrier cannot deliver to its shipping address
    /// (`why`, in the carrier's or the warehouse's words): it waits for a corrected address.
    /// No status change. The same report again changes nothing (`Ok(None)`).
    ///
    /// # Errors
    /// [`NotReportable`] unless the order is paid (the warehouse reports it when it comes to
    /// ship), or while a step that gave up waits for staff.
    pub fn report_undeliverable(
        &mut self,
        why: &str,
        stamp: &Stamp,
    ) -> Result<Option<Event>, NotReportable> {
        if self.status != OrderStatus::Paid {
            return Err(NotReportable::NotPaid(self.status));
        }
        match &self.needs_attention {
            Some(a) if a.awaits_address() && a.error == why => return Ok(None),
            Some(a) if !a.awaits_address() => {
                return Err(NotReportable::Flagged(a.step.clone()));
            }
            _ => {}
        }
        self.needs_attention = Some(Attention {
            step: UNDELIVERABLE.to_owned(),
            error: why.to_owned(),
            attempts: 1,
            since: stamp.at,
        });
        let detail = Some(format!("{UNDELIVERABLE_DETAIL}: {why}"));
        Ok(Some(self.record(
            EventKind::OrderNeedsAttention,
            Some(self.status),
            stamp,
            detail,
        )))
    }

    /// Records a declined payment on a try that is not the last: no status change, the stock
    /// stays reserved, and the next try asks the provider afresh ([`Order::declines`]).
    pub fn record_decline(&mut self, why: &str, stamp: &Stamp) -> Event {
        self.record(
            EventKind::PaymentDeclined,
            Some(self.status),
            stamp,
            Some(why.to_owned()),
        )
    }

    /// Records that staff sent the customer the message named `message` (a template name), with
    /// their reason. No status change; the history entry's detail starts with the name.
    pub fn record_contact(&mut self, message: &str, why: Option<&str>, stamp: &Stamp) -> Event {
        let detail = match why.filter(|w| !w.trim().is_empty()) {
            Some(w) => format!("{message}: {w}"),
            None => message.to_owned(),
        };
        self.record(
            EventKind::CustomerContacted,
            Some(self.status),
            stamp,
            Some(detail),
        )
    }

    /// How many payment tries were declined and tried again: the next try is the provider's
    /// `declines()`-th fresh request (a try after a timeout repeats the last one instead).
    #[must_use]
    pub fn declines(&self) -> u32 {
        let n = self
            .history
            .iter()
            .filter(|h| h.event == EventKind::PaymentDeclined)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Clears the attention flag so the step that gave up can run again; `None` if the order
    /// does not need attention. Returns the step's name and the event that records the request.
    pub fn request_retry(
        &mut self,
        stamp: &Stamp,
        reason: Option<&str>,
    ) -> Option<(String, Event)> {
        let attention = self.needs_attention.take()?;
        let mut detail = format!(
            "{} to run again (it gave up after {} attempts)",
            attention.step, attention.attempts
        );
        if let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) {
            detail = format!("{detail}: {reason}");
        }
        let detail = Some(detail);
        let event = self.record(EventKind::RetryRequested, Some(self.status), stamp, detail);
        Some((attention.step, event))
    }

    /// True if part of a captured payment has not been refunded yet.
    #[must_use]
    pub fn has_unrefunded_payment(&self) -> bool {
        self.payment
            .as_ref()
            .is_some_and(|p| p.refundable().minor() > 0)
    }

    fn record(
        &mut self,
        kind: EventKind,
        from: Option<OrderStatus>,
        stamp: &Stamp,
        detail: Option<String>,
    ) -> Event {
        self.version += 1;
        self.updated_at = stamp.at;
        self.history.push(HistoryEntry {
            at: stamp.at,
            event: kind,
            from,
            to: self.status,
            actor: stamp.actor.clone(),
            detail: detail.clone(),
        });
        Event::about(self, kind, stamp, detail)
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use uuid::Uuid;

    pub(crate) fn stamp(n: u128) -> Stamp {
        Stamp {
            event_id: EventId::from_uuid(Uuid::from_u128(n)),
            at: Timestamp::from_millis(1_000 + n as i64),
            actor: Actor::api(),
        }
    }

    pub(crate) fn reference_order() -> Order {
        let usd = Currency::USD;
        let line = |id: &str, name: &str, price: &str| {
            let unit = Money::parse(price, usd).unwrap();
            OrderLine {
                product_id: ProductId::parse(id).unwrap(),
                name: Name::parse("name", name).unwrap(),
                quantity: Quantity::new(1).unwrap(),
                unit_price: unit,
                line_total: unit,
            }
        };
        let new = NewOrder {
            id: OrderId::from_uuid(Uuid::from_u128(7)),
            customer_id: CustomerId::parse("001").unwrap(),
            currency: usd,
            lines: vec![
                line("001", "Wireless Headphones", "79.99"),
                line("002", "Smartwatch", "199.99"),
            ],
            shipping_address: None,
            exchange_rate: None,
            payment_method: None,
        };
        Order::place(new, stamp(0)).unwrap().0
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::{reference_order, stamp};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn placing_the_reference_order_totals_279_98() {
        let order = reference_order();
        assert_eq!(order.total.to_decimal_string(), "279.98");
        assert_eq!(order.status, OrderStatus::Placed);
        assert_eq!(order.version, 1);
        assert_eq!(order.history.len(), 1);
    }

    #[test]
    fn the_happy_path_reaches_delivered_with_a_history_line_each() {
        let mut order = reference_order();
        paid(&mut order);
        let shipment = Shipment {
            carrier: "DHL".into(),
            tracking_number: "JD0123".into(),
            shipped_at: Timestamp::from_millis(6),
        };
        order.ship(shipment, &stamp(3)).unwrap();
        let event = order.apply(Transition::Deliver, &stamp(4), None).unwrap();
        assert_eq!(event.kind, EventKind::OrderDelivered);
        assert_eq!(order.status, OrderStatus::Delivered);
        assert_eq!(order.version, 5);
        let kinds: Vec<_> = order.history.iter().map(|h| h.event).collect();
        assert_eq!(
            kinds,
            [
                EventKind::OrderPlaced,
                EventKind::InventoryReserved,
                EventKind::PaymentCaptured,
                EventKind::OrderShipped,
                EventKind::OrderDelivered
            ]
        );
    }

    fn paid(order: &mut Order) {
        order.apply(Transition::Reserve, &stamp(1), None).unwrap();
        let payment = Payment {
            provider_ref: "pay_1".into(),
            amount: order.total,
            captured_at: Timestamp::from_millis(5),
            authorization: None,
            refunds: Vec::new(),
            refund_pending: None,
            refund_in_flight: None,
        };
        order.capture(payment, &stamp(2)).unwrap();
    }

    #[test]
    fn refunds_asked_for_never_add_up_to_more_than_was_captured() {
        let usd = |s: &str| Money::parse(s, Currency::USD).unwrap();
        let mut order = reference_order();
        assert_eq!(
            order.request_refund(usd("1.00"), &stamp(1), None),
            Err(RefundRefused::NotPaid)
        );
        paid(&mut order);
        let before = order.clone();
        assert_eq!(
            order.request_refund(usd("0.00"), &stamp(3), None),
            Err(RefundRefused::NotPositive)
        );
        assert!(matches!(
            order.request_refund(
                Money::parse("1.00", Currency::parse("EUR").unwrap()).unwrap(),
                &stamp(3),
                None
            ),
            Err(RefundRefused::WrongCurrency { .. })
        ));
        assert_eq!(order, before, "a refused refund changes nothing");

        let event = order
            .request_refund(usd("42.10"), &stamp(3), Some("one mug arrived broken 🫖"))
            .unwrap();
        assert_eq!(event.kind, EventKind::RefundRequested);
        assert_eq!(order.status, OrderStatus::Paid, "no status change");
        assert_eq!(order.refund_due(), Some(usd("42.10")));
        assert_eq!(order.refund_left(), Some(usd("237.88")));
        assert_eq!(
            order.history.last().unwrap().detail.as_deref(),
            Some("refund of 42.10 USD asked for: one mug arrived broken 🫖")
        );
        // Asked for twice before the first is made: both count.
        order
            .request_refund(usd("200.00"), &stamp(4), None)
            .unwrap();
        assert_eq!(
            order.request_refund(usd("37.89"), &stamp(5), None),
            Err(RefundRefused::TooMuch { left: usd("37.88") })
        );
        assert_eq!(order.refund_due(), Some(usd("242.10")));

        // Made in one refund: nothing pending, 37.88 left.
        let refund = Refund {
            provider_ref: "re_1".into(),
            amount: usd("242.10"),
            at: Timestamp::from_millis(9),
        };
        order.record_refund(refund, &stamp(6));
        assert_eq!(order.refund_due(), None);
        assert_eq!(order.refund_left(), Some(usd("37.88")));
        order.request_refund(usd("37.88"), &stamp(7), None).unwrap();
        assert_eq!(order.refund_left(), Some(usd("0.00")));
        assert!(matches!(
            order.request_refund(usd("0.01"), &stamp(8), None),
            Err(RefundRefused::TooMuch { .. })
        ));
        order.apply(Transition::Cancel, &stamp(9), None).ok();
        assert_eq!(
            order.request_refund(usd("0.01"), &stamp(10), None),
            Err(RefundRefused::Canceled)
        );
    }

    #[test]
    fn shipping_a_canceled_order_is_an_illegal_transition() {
        let mut order = reference_order();
        order
            .apply(
                Transition::Cancel,
                &stamp(1),
                Some("changed my mind".into()),
            )
            .unwrap();
        let before = order.clone();
        let err = order.apply(Transition::Ship, &stamp(2), None).unwrap_err();
        assert_eq!(err.to_string(), "cannot ship an order that is canceled");
        assert_eq!(order, before, "a refused transition changes nothing");
    }

    #[test]
    fn canceling_an_order_that_needs_attention_settles_the_flag() {
        let mut order = reference_order();
        order.apply(Transition::Reserve, &stamp(1), None).unwrap();
        let attention = Attention {
            step: "payment".into(),
            error: "provider down".into(),
            attempts: 5,
            since: Timestamp::from_millis(9),
        };
        order.flag_attention(attention, &stamp(2));
        assert!(order.needs_attention.is_some());
        let entry = order.history.last().unwrap();
        assert_eq!(
            entry.detail_for(true),
            Some("payment gave up after 5 attempts: provider down")
        );
        assert_eq!(
            entry.detail_for(false),
            Some("payment gave up after 5 attempts"),
            "the raw error is for those who may read it"
        );
        order
            .apply(Transition::Cancel, &stamp(3), Some("customer asked".into()))
            .unwrap();
        assert_eq!(order.needs_attention, None);
        assert_eq!(order.status, OrderStatus::Canceled);
        let refused = order.clone();
        assert!(order.request_retry(&stamp(4), None).is_none());
        assert_eq!(order, refused, "nothing is left to retry");
    }

    #[test]
    fn an_undeliverable_address_waits_for_a_correction_not_a_retry() {
        let mut order = reference_order();
        order.apply(Transition::Reserve, &stamp(1), None).unwrap();
        assert_eq!(
            order.report_undeliverable("no such street", &stamp(2)),
            Err(NotReportable::NotPaid(OrderStatus::Reserved))
        );
        order
            .apply(Transition::CapturePayment, &stamp(2), None)
            .unwrap();
        let event = order
            .report_undeliverable("no such street", &stamp(2))
            .unwrap()
            .unwrap();
        let version = order.version;
        assert_eq!(
            order.report_undeliverable("no such street", &stamp(3)),
            Ok(None),
            "the same report again changes nothing"
        );
        assert_eq!(order.version, version);
        assert_eq!(event.kind, EventKind::OrderNeedsAttention);
        let attention = order.needs_attention.clone().unwrap();
        assert_eq!(attention.step, UNDELIVERABLE);
        assert!(
            !attention.error_is_internal(),
            "the carrier's words are for staff"
        );
        assert_eq!(
            order.history.last().unwrap().detail_for(false),
            Some("the carrier cannot deliver to the shipping address: no such street")
        );
        assert_eq!(attention.error, "no such street");
        let address = Address {
            name: "Zoé Ñúñez 🌻".into(),
            line1: "Rua das Flores 12".into(),
            line2: None,
            city: "Lisboa".into(),
            region: None,
            postal_code: Some("1200-195".into()),
            country: "PT".into(),
        };
        order.change_shipping_address(address, &stamp(3)).unwrap();
        assert_eq!(order.needs_attention, None, "the correction settles it");

        let mut shipped = reference_order();
        shipped.status = OrderStatus::Shipped;
        let before = shipped.clone();
        assert_eq!(
            shipped.report_undeliverable("gone", &stamp(4)),
            Err(NotReportable::NotPaid(OrderStatus::Shipped))
        );
        assert_eq!(shipped, before);

        // A step that gave up is settled first; its flag is not overwritten.
        let mut stuck = reference_order();
        stuck.status = OrderStatus::Paid;
        let attention = Attention {
            step: "payment".into(),
            error: "refund failed".into(),
            attempts: 5,
            since: Timestamp::from_millis(9),
        };
        stuck.flag_attention(attention, &stamp(5));
        let before = stuck.clone();
        assert_eq!(
            stuck.report_undeliverable("gone", &stamp(6)),
            Err(NotReportable::Flagged("payment".into()))
        );
        assert_eq!(stuck, before);
    }

    #[test]
    fn stock_effects_match_the_diagram() {
        assert_eq!(
            Transition::Reserve.stock_effect(OrderStatus::Placed),
            StockEffect::Reserve
        );
        assert_eq!(
            Transition::Cancel.stock_effect(OrderStatus::Placed),
            StockEffect::None
        );
        assert_eq!(
            Transition::Cancel.stock_effect(OrderStatus::Paid),
            StockEffect::Release
        );
        assert_eq!(
            Transition::DeclinePayment.stock_effect(OrderStatus::Reserved),
            StockEffect::Release
        );
        assert_eq!(
            Transition::Ship.stock_effect(OrderStatus::Paid),
            StockEffect::Consume
        );
    }

    fn transition() -> impl Strategy<Value = Transition> {
        prop::sample::select(Transition::ALL.to_vec())
    }

    proptest! {
        /// Whatever is asked in whatever order, the order only ever takes drawn edges, holds
        /// stock exactly while reserved/paid, and its history tells the same story as its status.
        #[test]
        fn random_command_sequences_never_reach_an_illegal_state(commands in prop::collection::vec(transition(), 0..40)) {
            let mut order = reference_order();
            let mut held = false;
            for (i, t) in commands.into_iter().enumerate() {
                let before = order.clone();
                match order.apply(t, &stamp(i as u128 + 1), None) {
                    Ok(event) => {
                        prop_assert_eq!(Ok(order.status), before.status.after(t));
                        prop_assert!(!before.status.is_final(), "left a final status");
                        prop_assert_eq!(order.version, before.version + 1);
                        prop_assert_eq!(event.order_id, order.id);
                        match t.stock_effect(before.status) {
                            StockEffect::Reserve => { prop_assert!(!held); held = true; }
                            StockEffect::Release | StockEffect::Consume => { prop_assert!(held); held = false; }
                            StockEffect::None => {}
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e.from, before.status);
                        prop_assert_eq!(&order, &before);
                    }
                }
                let last = order.history.last().unwrap();
                prop_assert_eq!(last.to, order.status);
                prop_assert_eq!(order.history.len() as u32, order.version);
                prop_assert_eq!(held, matches!(order.status, OrderStatus::Reserved | OrderStatus::Paid));
            }
        }
    }
}
