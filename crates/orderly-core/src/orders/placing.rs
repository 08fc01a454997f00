//! Placing an order: the request, its `Idempotency-Key`, pricing it from the catalog, and the
//! one commit that stores it with its `OrderPlaced` event.

use std::collections::BTreeMap;

use orderly_domain::{
    Actor, Address, Currency, CustomerId, NewOrder, Order, OrderLine, Product, ProductId, Quantity,
    ValueError,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{MAX_LINES, Orders};
use crate::access::PlacePermit;
use crate::catalog::Priced;
use crate::commits::outgoing;
use crate::error::AppError;
use crate::ports::{Commit, CommitError, IdempotencyRecord, OrderWrite};

/// Longest `Idempotency-Key`, in bytes (visible ASCII, so also characters).
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses the header value.
    ///
    /// # Errors
    /// [`ValueError`] on `Idempotency-Key`.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        if text.is_empty()
            || text.len() > MAX_IDEMPOTENCY_KEY
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ValueError::new(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters, e.g. a UUID",
            ));
        }
        Ok(IdempotencyKey(text.to_owned()))
    }
}

/// One requested line.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineRequest {
    /// What.
    pub product_id: ProductId,
    /// How many.
    pub quantity: Quantity,
}

/// A request to place an order, already parsed into domain values.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceOrder {
    /// The buyer.
    pub customer_id: CustomerId,
    /// At least one line.
    pub items: Vec<LineRequest>,
    /// The currency to price in; the shop's base currency if absent.
    pub currency: Option<Currency>,
    /// Where to ship.
    pub shipping_address: Option<Address>,
    /// The payment provider's token for the buyer's payment method (a Stripe `pm_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
}

/// The result of placing: a new order, or the one an earlier request with the same key made.
#[derive(Clone, Debug)]
pub enum Placed {
    /// Made now.
    New(Order),
    /// Made by an earlier request with the same `Idempotency-Key` and body.
    Replay(Order),
}

impl Orders {
    /// Places an order: prices it from the catalog, stores it with its `OrderPlaced` event and
    /// queues the stock reservation, all in one commit. With a key, a repeat of the same request
    /// returns the first order; the same key with another request is refused. The permit names
    /// the customer it may be for ([`crate::access::Policy::place_for`]).
    ///
    /// # Errors
    /// [`AppError::Forbidden`] for another customer than the permit's; [`AppError::Invalid`]
    /// for unknown customers or products and unpriced currencies,
    /// [`AppError::IdempotencyKeyReused`], or a storage failure.
    pub async fn place_order(
        &self,
        permit: PlacePermit,
        request: PlaceOrder,
        key: Option<IdempotencyKey>,
    ) -> Result<Placed, AppError> {
        permit.check(&request.customer_id)?;
        self.place(request, key, permit.actor().clone()).await
    }

    /// [`Orders::place_order`] on behalf of `actor`, whom the order's history names, for the
    /// use cases that hold their own permit (cart checkout).
    #[tracing::instrument(skip_all, fields(customer_id = %request.customer_id))]
    pub(crate) async fn place(
        &self,
        request: PlaceOrder,
        key: Option<IdempotencyKey>,
        actor: Actor,
    ) -> Result<Placed, AppError> {
        let hash = request_hash(&request)?;
        if let Some(key) = &key
            && let Some(found) = self.replay(key, &hash).await?
        {
            return Ok(found);
        }
        let order = self.price(request).await?;
        let (order, event) = Order::place(order, self.changes.stamp(actor))
            .map_err(|e| AppError::invalid("items", e.to_string()))?;
        let commit = Commit {
            order: Some(OrderWrite::Insert(order.clone())),
            events: vec![outgoing(event)],
            idempotency: key.as_ref().map(|k| IdempotencyRecord {
                key: k.0.clone(),
                request_hash: hash.clone(),
                order_id: order.id,
                created_at: order.created_at,
            }),
            ..Commit::default()
        };
        match self.changes.commit(commit).await {
            Ok(()) => {
                tracing::info!(order_id = %order.id, total = %order.total, "order placed");
                Ok(Placed::New(order))
            }
            Err(CommitError::IdempotencyKeyTaken) => {
                // A concurrent request with the same key won the race: answer as it did.
                let key = key.ok_or_else(|| AppError::Internal("key race without key".into()))?;
                self.replay(&key, &hash)
                    .await?
                    .ok_or_else(|| AppError::Internal("idempotency key vanished".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn replay(&self, key: &IdempotencyKey, hash: &str) -> Result<Option<Placed>, AppError> {
        let Some(record) = self.orders.idempotency(&key.0).await? else {
            return Ok(None);
        };
        if record.request_hash != hash {
            return Err(AppError::IdempotencyKeyReused);
        }
        let order = self.orders.order(record.order_id).await?.ok_or_else(|| {
            AppError::Internal(format!(
                "idempotency key points at missing order {}",
                record.order_id
            ))
        })?;
        Ok(Some(Placed::Replay(order)))
    }

    async fn price(&self, request: PlaceOrder) -> Result<NewOrder, AppError> {
        let mut errors = Vec::new();
        if request.items.is_empty() {
            errors.push(ValueError::new("items", "needs at least one line"));
        }
        if request.items.len() > MAX_LINES {
            errors.push(ValueError::new(
                "items",
                format!(
                    "has {} lines; the limit is {MAX_LINES}",
                    request.items.len()
                ),
            ));
        }
        if let Some(address) = &request.shipping_address
            && let Err(e) = address.validate()
        {
            errors.extend(e.into_iter().map(|e| e.within("shippingAddress")));
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let currency = request.currency.unwrap_or(self.pricing.base());
        let rate = self.pricing.rate_to(currency).await?;
        let mut used_rate = None;
        if self
            .customers
            .customer(&request.customer_id)
            .await?
            .is_none()
        {
            errors.push(ValueError::new(
                "customerId",
                format!(
                    "names no known customer ({}); create it with POST /v1/customers first",
                    request.customer_id
                ),
            ));
        }
        let ids: Vec<ProductId> = request.items.iter().map(|i| i.product_id.clone()).collect();
        let products: BTreeMap<ProductId, Product> = self
            .customers
            .products(&ids)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let mut lines = Vec::with_capacity(request.items.len());
        for (i, item) in request.items.iter().enumerate() {
            let field = format!("items[{i}].productId");
            let Some(product) = products.get(&item.product_id) else {
                errors.push(ValueError::new(
                    &field,
                    format!("names no known product ({})", item.product_id),
                ));
                continue;
            };
            if !product.active {
                errors.push(ValueError::new(
                    &field,
                    format!("product {} is no longer sold", product.id),
                ));
                continue;
            }
            let unit_price = match self.pricing.price_of(product, currency, rate.as_ref()) {
                Ok(Priced::Listed(price)) => price,
                Ok(Priced::Converted(price, rate)) => {
                    used_rate = Some(rate);
                    price
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let Ok(line_total) = unit_price.checked_mul(item.quantity.get()) else {
                errors.push(ValueError::new(
                    &format!("items[{i}].quantity"),
                    "makes the line total too large",
                ));
                continue;
            };
            lines.push(OrderLine {
                product_id: product.id.clone(),
                name: product.name.clone(),
                quantity: item.quantity,
                unit_price,
                line_total,
            });
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        Ok(NewOrder {
            id: self.changes.order_id(),
            customer_id: request.customer_id,
            currency,
            lines,
            shipping_address: request.shipping_address,
            exchange_rate: used_rate,
            payment_method: request.payment_method,
        })
    }
}

fn request_hash(request: &PlaceOrder) -> Result<String, AppError> {
    let canonical = serde_json::to_vec(request).map_err(|e| AppError::Internal(e.to_string()))?;
    let digest = Sha256::digest(&canonical);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}
