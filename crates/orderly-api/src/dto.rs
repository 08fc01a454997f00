//! The wire format: request and response bodies, camelCase JSON, documented in the OpenAPI.
//!
//! Requests arrive as plain strings and numbers and are parsed into domain types here, collecting
//! every field error at once, so a caller learns everything to fix in one round trip.

use async_graphql::{InputObject, SimpleObject};
use orderly_core::support::{Escalation, Note};
use orderly_core::{CreateProduct, LineRequest, PlaceOrder, UpdateProduct};
use orderly_domain::{
    Address, Attention, Currency, Customer, CustomerId, Email, ExchangeRate, HistoryEntry, Money,
    Name, Order, OrderLine, Payment, Product, ProductId, Quantity, Shipment, StockAdjustment,
    StockLevel, ValueError,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What callers without `errors:read` see in place of a step's raw error.
const HIDDEN_ERROR: &str = "the step failed; the error is shown to engineers and admins";

/// Exact money in an answer: the amount as a decimal string with the currency's decimal places,
/// and the same amount as a receipt prints it.
#[derive(Clone, Debug, Serialize, ToSchema, SimpleObject)]
#[graphql(name = "Money")]
pub struct MoneyDto {
    /// Decimal string, e.g. `"279.98"` (USD), `"1500"` (JPY), `"1.250"` (KWD).
    #[schema(example = "279.98")]
    pub amount: String,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: String,
    /// As a receipt shows it: `$279.98`, `€83.09`, `¥30,248`, `KWD 24.593`.
    #[schema(example = "$279.98")]
    pub formatted: String,
}

impl From<Money> for MoneyDto {
    fn from(m: Money) -> Self {
        MoneyDto {
            amount: m.to_decimal_string(),
            currency: m.currency().code().to_owned(),
            formatted: m.to_display_string(),
        }
    }
}

/// Exact money in a request: the amount as a decimal string with at most the currency's decimal
/// places.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyInput {
    /// Decimal string, e.g. `"279.98"` (USD), `"1500"` (JPY), `"1.250"` (KWD); at most the
    /// currency's decimal places.
    #[schema(value_type = crate::openapi::AmountText)]
    pub amount: String,
    /// ISO 4217 code.
    #[schema(value_type = crate::openapi::CurrencyCode)]
    pub currency: String,
    /// Ignored: accepted so that a price read from an answer can be sent back unchanged.
    #[serde(default)]
    pub formatted: Option<String>,
}

impl MoneyInput {
    fn parse(&self, field: &str) -> Result<Money, ValueError> {
        let currency = Currency::parse(&self.currency)
            .map_err(|e| ValueError::new(&format!("{field}.currency"), e.to_string()))?;
        Money::parse(&self.amount, currency)
            .map_err(|e| ValueError::new(&format!("{field}.amount"), e.to_string()))
    }
}

/// A postal address; every part in any script, returned byte-exact.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, SimpleObject, InputObject)]
#[graphql(name = "Address", input_name = "AddressInput")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressDto {
    /// Recipient.
    #[schema(value_type = crate::openapi::AddressLine, example = "山田 太郎")]
    pub name: String,
    /// Street and number.
    #[schema(value_type = crate::openapi::AddressLine, example = "東京都渋谷区 🏠")]
    pub line1: String,
    /// Flat, floor, building.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::AddressLine>)]
    pub line2: Option<String>,
    /// City.
    #[schema(value_type = crate::openapi::AddressLine, example = "渋谷区")]
    pub city: String,
    /// State, prefecture, province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::AddressLine>)]
    pub region: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::AddressLine>)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[schema(value_type = crate::openapi::CountryCode, example = "JP")]
    pub country: String,
}

impl From<AddressDto> for Address {
    fn from(a: AddressDto) -> Self {
        Address {
            name: a.name,
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            region: a.region,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<&Address> for AddressDto {
    fn from(a: &Address) -> Self {
        AddressDto {
            name: a.name.clone(),
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            region: a.region.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        }
    }
}

/// One requested line.
#[derive(Clone, Debug, Deserialize, ToSchema, InputObject)]
#[graphql(name = "OrderItemInput")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemRequest {
    /// A product id from the catalog.
    #[schema(value_type = crate::openapi::MerchantId, example = "001")]
    pub product_id: String,
    /// 1 to 10000.
    #[schema(value_type = crate::openapi::Quantity, example = 1)]
    pub quantity: i64,
}

/// The reference order body, plus optional currency and address.
#[derive(Clone, Debug, Deserialize, ToSchema, InputObject)]
#[graphql(name = "PlaceOrderInput")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceOrderRequest {
    /// The buyer.
    #[schema(value_type = crate::openapi::MerchantId, example = "001")]
    pub customer_id: String,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<ItemRequest>,
    /// ISO 4217 currency to price in; the shop's base currency if absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::CurrencyCode>, example = "USD")]
    pub currency: Option<String>,
    /// Where to ship.
    #[serde(default)]
    pub shipping_address: Option<AddressDto>,
    /// The payment provider's token for the buyer's payment method (a Stripe `pm_…`),
    /// collected by the shop's front end; card numbers never reach Orderly.
    #[serde(default)]
    #[schema(example = "pm_card_visa")]
    pub payment_method: Option<String>,
}

impl PlaceOrderRequest {
    /// Parses into the use case's input, with every field error at once.
    ///
    /// # Errors
    /// One [`ValueError`] per bad field.
    pub fn parse(self) -> Result<PlaceOrder, Vec<ValueError>> {
        let mut errors = Vec::new();
        let customer_id = CustomerId::parse(&self.customer_id)
            .map_err(|e| errors.push(e))
            .ok();
        let mut items = Vec::with_capacity(self.items.len());
        for (i, item) in self.items.iter().enumerate() {
            let product =
                ProductId::parse(&item.product_id).map_err(|e| e.within(&format!("items[{i}]")));
            let quantity =
                Quantity::new(item.quantity).map_err(|e| e.within(&format!("items[{i}]")));
            match (product, quantity) {
                (Ok(product_id), Ok(quantity)) => items.push(LineRequest {
                    product_id,
                    quantity,
                }),
                (p, q) => {
                    errors.extend(p.err());
                    errors.extend(q.err());
                }
            }
        }
        let currency = match self.currency.as_deref().map(Currency::parse).transpose() {
            Ok(c) => c,
            Err(e) => {
                errors.push(ValueError::new("currency", e.to_string()));
                None
            }
        };
        match (customer_id, errors.is_empty()) {
            (Some(customer_id), true) => Ok(PlaceOrder {
                customer_id,
                items,
                currency,
                shipping_address: self.shipping_address.map(Address::from),
                payment_method: self.payment_method,
            }),
            _ => Err(errors),
        }
    }
}

/// A line of an order.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderLineDto {
    /// Product.
    pub product_id: String,
    /// Its name when ordered.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one when ordered.
    pub unit_price: MoneyDto,
    /// unitPrice × quantity.
    pub line_total: MoneyDto,
}

impl From<&OrderLine> for OrderLineDto {
    fn from(l: &OrderLine) -> Self {
        OrderLineDto {
            product_id: l.product_id.to_string(),
            name: l.name.as_str().to_owned(),
            quantity: l.quantity.get(),
            unit_price: l.unit_price.into(),
            line_total: l.line_total.into(),
        }
    }
}

/// One entry of an order's history.
#[derive(Clone, Debug, Serialize, ToSchema, SimpleObject)]
#[graphql(name = "HistoryEntry")]
#[serde(rename_all = "camelCase")]
pub struct HistoryDto {
    /// When (RFC 3339).
    pub at: String,
    /// The event recorded, e.g. `PaymentCaptured`.
    pub event: String,
    /// Status before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Status after.
    pub to: String,
    /// `api`, `system:inventory`, `system:payment`, `staff:<name>`.
    pub actor: String,
    /// Reason, carrier, error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<&HistoryEntry> for HistoryDto {
    fn from(h: &HistoryEntry) -> Self {
        HistoryDto {
            at: h.at.to_rfc3339(),
            event: h.event.as_str().to_owned(),
            from: h.from.map(|s| s.as_str().to_owned()),
            to: h.to.as_str().to_owned(),
            actor: h.actor.as_str().to_owned(),
            detail: h.detail.clone(),
        }
    }
}

/// The captured payment.
#[derive(Clone, Debug, Serialize, ToSchema, SimpleObject)]
#[graphql(name = "Payment")]
#[serde(rename_all = "camelCase")]
pub struct PaymentDto {
    /// Provider's charge id.
    pub provider_ref: String,
    /// Provider's id for the authorization the charge took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
    /// Amount captured.
    pub amount: MoneyDto,
    /// When.
    pub captured_at: String,
    /// Refunds, oldest first: one in full, or several parts.
    pub refunds: Vec<RefundDto>,
    /// What is left to refund.
    pub refundable: MoneyDto,
    /// Refunds asked for that the payment step has not made yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_pending: Option<MoneyDto>,
}

/// A refund.
#[derive(Clone, Debug, Serialize, ToSchema, SimpleObject)]
#[graphql(name = "Refund")]
#[serde(rename_all = "camelCase")]
pub struct RefundDto {
    /// Provider's refund id.
    pub provider_ref: String,
    /// Amount refunded.
    pub amount: MoneyDto,
    /// When.
    pub at: String,
}

impl From<&Payment> for PaymentDto {
    fn from(p: &Payment) -> Self {
        PaymentDto {
            provider_ref: p.provider_ref.clone(),
            authorization: p.authorization.clone(),
            amount: p.amount.into(),
            captured_at: p.captured_at.to_rfc3339(),
            refunds: p
                .refunds
                .iter()
                .map(|r| RefundDto {
                    provider_ref: r.provider_ref.clone(),
                    amount: r.amount.into(),
                    at: r.at.to_rfc3339(),
                })
                .collect(),
            refundable: p.refundable().into(),
            refund_pending: p.refund_pending.map(Into::into),
        }
    }
}

/// The parcel.
#[derive(Clone, Debug, Serialize, ToSchema, SimpleObject)]
#[graphql(name = "Shipment")]
#[serde(rename_all = "camelCase")]
pub struct ShipmentDto {
    /// Carrier.
    pub carrier: String,
    /// Tracking number.
    pub tracking_number: String,
    /// When it left.
    pub shipped_at: String,
}

impl From<&Shipment> for ShipmentDto {
    fn from(s: &Shipment) -> Self {
        ShipmentDto {
            carrier: s.carrier.clone(),
            tracking_number: s.tracking_number.clone(),
            shipped_at: s.shipped_at.to_rfc3339(),
        }
    }
}

/// Why staff must look at an order.
#[derive(Clone, Debug, Serialize, ToSchema, SimpleObject)]
#[graphql(name = "Attention")]
#[serde(rename_all = "camelCase")]
pub struct AttentionDto {
    /// The step that gave up.
    pub step: String,
    /// Its last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// Since when.
    pub since: String,
}

impl HistoryDto {
    /// A step's give-up entry quotes its raw error after the attempt count: only callers
    /// with `errors:read` see that part.
    #[must_use]
    pub fn redacted(mut self, raw_errors: bool) -> Self {
        let kind = orderly_domain::EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == self.event);
        if let (Some(kind), Some(detail)) = (kind, &self.detail) {
            self.detail = Some(orderly_domain::visible_detail(kind, detail, raw_errors).to_owned());
        }
        self
    }
}

impl AttentionDto {
    /// The raw error text may quote internals (SQL, provider messages): only callers with
    /// `errors:read` see it; others see that there is one. The carrier's reason for an
    /// undeliverable address is for everyone.
    #[must_use]
    pub fn redacted(mut self, raw_errors: bool) -> Self {
        if !raw_errors && orderly_domain::error_is_internal(&self.step) {
            self.error = HIDDEN_ERROR.to_owned();
        }
        self
    }
}

impl From<&Attention> for AttentionDto {
    fn from(a: &Attention) -> Self {
        AttentionDto {
            step: a.step.clone(),
            error: a.error.clone(),
            attempts: a.attempts,
            since: a.since.to_rfc3339(),
        }
    }
}

/// The rate prices were converted with.
#[derive(Clone, Debug, Serialize, ToSchema, SimpleObject)]
#[graphql(name = "ExchangeRate")]
#[serde(rename_all = "camelCase")]
pub struct RateDto {
    /// The shop's base currency.
    #[schema(example = "USD")]
    pub from: String,
    /// The currency converted into.
    #[schema(example = "JPY")]
    pub to: String,
    /// Units of `to` per unit of `from`, exact decimal.
    #[schema(example = "151.25")]
    pub rate: String,
    /// When staff set it (RFC 3339).
    pub set_at: String,
}

impl From<&ExchangeRate> for RateDto {
    fn from(r: &ExchangeRate) -> Self {
        RateDto {
            from: r.from.code().to_owned(),
            to: r.to.code().to_owned(),
            rate: r.rate.to_decimal_string(),
            set_at: r.set_at.to_rfc3339(),
        }
    }
}

/// An order with its history.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderDto {
    /// Order id.
    pub id: String,
    /// `placed`, `reserved`, `paid`, `shipped`, `delivered`, `rejected`, `canceled`.
    #[schema(example = "paid")]
    pub status: String,
    /// Buyer.
    pub customer_id: String,
    /// Currency of every amount.
    pub currency: String,
    /// Lines with price snapshots.
    pub lines: Vec<OrderLineDto>,
    /// Sum of lines.
    pub total: MoneyDto,
    /// Where it goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<AddressDto>,
    /// The rate prices were converted with from the base currency, kept with the order so its
    /// totals never change when rates do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_rate: Option<RateDto>,
    /// Why rejected or canceled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when a step ran out of retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs_attention: Option<AttentionDto>,
    /// Captured payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentDto>,
    /// Parcel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipment: Option<ShipmentDto>,
    /// Every change, oldest first.
    pub history: Vec<HistoryDto>,
    /// +1 on every change.
    pub version: u32,
    /// Placed at.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl OrderDto {
    /// The order as `caller` may see it: raw step errors only for `errors:read`.
    #[must_use]
    pub fn for_caller(mut self, caller: &crate::auth::Caller) -> Self {
        let raw = caller.principal.can(orderly_auth::Permission::RawErrors);
        self.needs_attention = self.needs_attention.map(|a| a.redacted(raw));
        self.history = self.history.into_iter().map(|h| h.redacted(raw)).collect();
        self
    }
}

impl From<&Order> for OrderDto {
    fn from(o: &Order) -> Self {
        OrderDto {
            id: o.id.to_string(),
            status: o.status.as_str().to_owned(),
            customer_id: o.customer_id.to_string(),
            currency: o.currency.code().to_owned(),
            lines: o.lines.iter().map(OrderLineDto::from).collect(),
            total: o.total.into(),
            shipping_address: o.shipping_address.as_ref().map(AddressDto::from),
            exchange_rate: o.exchange_rate.as_ref().map(Into::into),
            reason: o.reason.clone(),
            needs_attention: o.needs_attention.as_ref().map(AttentionDto::from),
            payment: o.payment.as_ref().map(PaymentDto::from),
            shipment: o.shipment.as_ref().map(ShipmentDto::from),
            history: o.history.iter().map(Into::into).collect(),
            version: o.version,
            created_at: o.created_at.to_rfc3339(),
            updated_at: o.updated_at.to_rfc3339(),
        }
    }
}

/// A staff note on an order.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoteDto {
    /// When (RFC 3339).
    pub at: String,
    /// Who (`staff:…`, `key:…`, or `system` for changes recorded automatically).
    pub author: String,
    /// What, in any script, byte-exact.
    pub text: String,
}

impl From<&Note> for NoteDto {
    fn from(n: &Note) -> Self {
        NoteDto {
            at: n.at.to_rfc3339(),
            author: n.author.clone(),
            text: n.text.clone(),
        }
    }
}

/// An order a saga step gave up on: an entry of the "needs attention" queue.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EscalationDto {
    /// The order.
    pub order_id: String,
    /// Its buyer.
    pub customer_id: String,
    /// Its status when the step gave up.
    #[schema(value_type = crate::openapi::OrderStatusName)]
    pub status: String,
    /// The step (`inventory`, `payment`).
    pub step: String,
    /// The step's last error (raw only for callers with `errors:read`).
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was flagged (RFC 3339).
    pub since: String,
    /// When staff settled it (retried the step or canceled the order), if they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// Who settled it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// How: `retried`, `canceled` or `addressCorrected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "retried")]
    pub resolution: Option<String>,
}

impl EscalationDto {
    /// The raw error text may quote internals: only callers with `errors:read` see it (the
    /// carrier's reason for an undeliverable address is for everyone).
    #[must_use]
    pub fn redacted(mut self, raw_errors: bool) -> Self {
        if !raw_errors && orderly_domain::error_is_internal(&self.step) {
            self.error = HIDDEN_ERROR.to_owned();
        }
        self
    }
}

impl From<&Escalation> for EscalationDto {
    fn from(e: &Escalation) -> Self {
        EscalationDto {
            order_id: e.order_id.to_string(),
            customer_id: e.customer_id.to_string(),
            status: e.status.as_str().to_owned(),
            step: e.step.clone(),
            error: e.error.clone(),
            attempts: e.attempts,
            since: e.since.to_rfc3339(),
            resolved_at: e.resolved_at.map(|t| t.to_rfc3339()),
            resolved_by: e.resolved_by.clone(),
            resolution: e
                .resolved_at
                .map(|_| e.resolution.map_or("retried", |r| r.as_str()).to_owned()),
        }
    }
}

/// A page of orders, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    /// The orders.
    pub items: Vec<OrderDto>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// An event, in the reference designs' shape (`detailType`, `orderId`, `orderStatus`,
/// `customerId`, `items`, `totalAmount`) plus the exact `total`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct EventDto(pub serde_json::Value);

/// Hand-over to a carrier.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShipRequest {
    /// Carrier name.
    #[schema(value_type = crate::openapi::ShipmentText, example = "DHL")]
    pub carrier: String,
    /// Tracking number.
    #[schema(value_type = crate::openapi::ShipmentText, example = "JD014600006281234567")]
    pub tracking_number: String,
}

/// Why the carrier cannot deliver to an order's shipping address.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UndeliverableRequest {
    /// In the carrier's or the warehouse's words; staff read it in the queue.
    #[schema(value_type = crate::openapi::Reason, example = "the carrier has no such street in 1200-195 Lisboa")]
    pub reason: String,
}

/// A message staff send the customer: one of those written for it.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StaffMessage {
    /// The card was declined: we hold the items, try again, and can help pay another way.
    ContactPayment,
    /// The carrier cannot deliver: please send the right address.
    ContactAddress,
    /// The order is late and someone is on it.
    ContactDelay,
}

impl StaffMessage {
    /// The template's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StaffMessage::ContactPayment => "contact_payment",
            StaffMessage::ContactAddress => "contact_address",
            StaffMessage::ContactDelay => "contact_delay",
        }
    }
}

/// Send the customer a message about their order.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContactRequest {
    /// Which message.
    pub message: StaffMessage,
    /// Why, shown in the history (not in the message).
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Reason>, example = "card declined twice")]
    pub reason: Option<String>,
}

/// Part of a captured payment to give back.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundRequest {
    /// How much, in the order's currency; at most what is left to refund.
    pub amount: MoneyInput,
    /// Why, shown in the history.
    #[schema(value_type = crate::openapi::Reason, example = "one mug arrived broken")]
    pub reason: String,
    /// The order's `version` as the caller read it: the refund is made only if the order is
    /// still there, so a request sent again after a lost answer refunds nothing more (`409
    /// order-changed`).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 4_294_967_295_u64)]
    pub expected_version: Option<u32>,
}

impl RefundRequest {
    /// The amount.
    ///
    /// # Errors
    /// The field that is not an amount or a currency.
    pub fn amount(&self) -> Result<Money, ValueError> {
        self.amount.parse("amount")
    }
}

/// Why an order is canceled; the body is optional.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelRequest {
    /// Shown in the history.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::Reason>, example = "customer changed their mind")]
    pub reason: Option<String>,
}

/// A product.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductDto {
    /// Merchant id.
    #[schema(example = "001")]
    pub id: String,
    /// Name.
    #[schema(example = "Wireless Headphones")]
    pub name: String,
    /// One price per currency.
    pub prices: Vec<MoneyDto>,
    /// On sale.
    pub active: bool,
    /// +1 on every change.
    pub version: u32,
    /// Created.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<&Product> for ProductDto {
    fn from(p: &Product) -> Self {
        ProductDto {
            id: p.id.to_string(),
            name: p.name.as_str().to_owned(),
            prices: p.prices.as_slice().iter().map(|m| (*m).into()).collect(),
            active: p.active,
            version: p.version,
            created_at: p.created_at.to_rfc3339(),
            updated_at: p.updated_at.to_rfc3339(),
        }
    }
}

/// A page of products, by id.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductPage {
    /// The products.
    pub items: Vec<ProductDto>,
    /// Pass as `cursor` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn parse_prices(prices: &[MoneyInput], errors: &mut Vec<ValueError>) -> Vec<Money> {
    prices
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            p.parse(&format!("prices[{i}]"))
                .map_err(|e| errors.push(e))
                .ok()
        })
        .collect()
}

/// A new product.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProductRequest {
    /// Merchant id: 1-64 of `A-Z a-z 0-9 - _ . :`.
    #[schema(value_type = crate::openapi::MerchantId, example = "003")]
    pub id: String,
    /// Name in any script.
    #[schema(value_type = crate::openapi::PersonOrProductName, example = "Bluetooth Speaker")]
    pub name: String,
    /// At least one price; one per currency.
    #[schema(min_items = 1)]
    pub prices: Vec<MoneyInput>,
    /// Units on hand (default 0).
    #[serde(default)]
    #[schema(value_type = crate::openapi::StockCount)]
    pub stock: i64,
    /// On sale (default true).
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

impl CreateProductRequest {
    /// Parses into the use case's input.
    ///
    /// # Errors
    /// One [`ValueError`] per bad field.
    pub fn parse(self) -> Result<CreateProduct, Vec<ValueError>> {
        let mut errors = Vec::new();
        let id = ProductId::parse(&self.id).map_err(|e| errors.push(e)).ok();
        let name = Name::parse("name", &self.name)
            .map_err(|e| errors.push(e))
            .ok();
        let prices = parse_prices(&self.prices, &mut errors);
        match (id, name) {
            (Some(id), Some(name)) if errors.is_empty() => Ok(CreateProduct {
                id,
                name,
                prices,
                stock: self.stock,
                active: self.active,
            }),
            _ => Err(errors),
        }
    }
}

/// Changes to a product; absent fields stay.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateProductRequest {
    /// New name.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::PersonOrProductName>)]
    pub name: Option<String>,
    /// New price list, replacing the old one: at least one price; one per currency.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub prices: Option<Vec<MoneyInput>>,
    /// On sale or not.
    #[serde(default)]
    pub active: Option<bool>,
}

impl UpdateProductRequest {
    /// Parses into the use case's input.
    ///
    /// # Errors
    /// One [`ValueError`] per bad field.
    pub fn parse(self) -> Result<UpdateProduct, Vec<ValueError>> {
        let mut errors = Vec::new();
        let name = self
            .name
            .map(|n| Name::parse("name", &n))
            .transpose()
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        let prices = self.prices.map(|p| parse_prices(&p, &mut errors));
        if errors.is_empty() {
            Ok(UpdateProduct {
                name,
                prices,
                active: self.active,
            })
        } else {
            Err(errors)
        }
    }
}

/// A customer.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerDto {
    /// Shop's id.
    #[schema(example = "001")]
    pub id: String,
    /// E-mail.
    #[schema(example = "alice.johnson@example.com")]
    pub email: String,
    /// Name, any script.
    #[schema(example = "Alice Johnson")]
    pub name: String,
    /// Created.
    pub created_at: String,
}

impl From<&Customer> for CustomerDto {
    fn from(c: &Customer) -> Self {
        CustomerDto {
            id: c.id.to_string(),
            email: c.email.as_str().to_owned(),
            name: c.name.as_str().to_owned(),
            created_at: c.created_at.to_rfc3339(),
        }
    }
}

/// A new customer.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCustomerRequest {
    /// Shop's id.
    #[schema(value_type = crate::openapi::MerchantId, example = "003")]
    pub id: String,
    /// E-mail.
    #[schema(value_type = crate::openapi::EmailAddress, example = "yamada@example.jp")]
    pub email: String,
    /// Name, any script.
    #[schema(value_type = crate::openapi::PersonOrProductName, example = "山田 太郎")]
    pub name: String,
}

impl CreateCustomerRequest {
    /// Parses into domain values.
    ///
    /// # Errors
    /// One [`ValueError`] per bad field.
    pub fn parse(self) -> Result<(CustomerId, Email, Name), Vec<ValueError>> {
        let mut errors = Vec::new();
        let id = CustomerId::parse(&self.id).map_err(|e| errors.push(e)).ok();
        let email = Email::parse(&self.email).map_err(|e| errors.push(e)).ok();
        let name = Name::parse("name", &self.name)
            .map_err(|e| errors.push(e))
            .ok();
        match (id, email, name) {
            (Some(id), Some(email), Some(name)) => Ok((id, email, name)),
            _ => Err(errors),
        }
    }
}

/// A product's stock.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockDto {
    /// Product.
    pub product_id: String,
    /// Free to sell.
    pub available: i64,
    /// Held for orders not yet shipped.
    pub reserved: i64,
    /// Recent manual adjustments, newest first.
    pub adjustments: Vec<AdjustmentDto>,
}

impl StockDto {
    /// Joins a level with its adjustments.
    #[must_use]
    pub fn new(product_id: &ProductId, level: StockLevel, adjustments: &[StockAdjustment]) -> Self {
        StockDto {
            product_id: product_id.to_string(),
            available: level.available,
            reserved: level.reserved,
            adjustments: adjustments.iter().map(AdjustmentDto::from).collect(),
        }
    }
}

/// A recorded manual stock change.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdjustmentDto {
    /// Units added or removed.
    pub delta: i64,
    /// Why.
    pub reason: String,
    /// Who.
    pub actor: String,
    /// When.
    pub at: String,
}

impl From<&StockAdjustment> for AdjustmentDto {
    fn from(a: &StockAdjustment) -> Self {
        AdjustmentDto {
            delta: a.delta,
            reason: a.reason.clone(),
            actor: a.actor.clone(),
            at: a.at.to_rfc3339(),
        }
    }
}

/// A manual change of available stock.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Units to add (positive) or remove (negative); not zero.
    #[schema(value_type = crate::openapi::StockDelta, example = 25)]
    pub delta: i64,
    /// Why, recorded with the change.
    #[schema(value_type = crate::openapi::Reason, example = "delivery from supplier")]
    pub reason: String,
}
