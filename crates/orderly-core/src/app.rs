//! The use cases behind the API: place, read, list, cancel, ship and deliver orders; manage the
//! catalog and stock.

use std::collections::BTreeMap;
use std::sync::Arc;

use orderly_domain::text::check_text;
use orderly_domain::{
    Actor, Address, Currency, Customer, CustomerId, Email, Event, ExchangeRate, Money, Name,
    NewOrder, Order, OrderId, OrderLine, OrderStatus, Prices, Product, ProductId, Quantity, Rate,
    Shipment, Stamp, StockAdjustment, StockLevel, Transition, ValueError,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::commits::{CONFLICT_RETRIES, order_change, outgoing, stock_moves};
use crate::documents::{DocumentType, Documents};
use crate::error::AppError;
use crate::ports::{
    Clock, Commit, CommitError, DocKind, IdGenerator, IdempotencyRecord, OrderFilter, OrderWrite,
    Page, PageRequest, Store, StoreError,
};

impl DocumentType for ExchangeRate {
    const KIND: DocKind = DocKind::Rate;
}

/// A product's price in a currency, and whether it was converted.
pub(crate) enum Priced {
    /// The catalog lists it in that currency.
    Listed(Money),
    /// Converted from the base currency with this rate.
    Converted(Money, ExchangeRate),
}

/// Most lines one order may have.
pub const MAX_LINES: usize = 100;
/// Largest stock count or adjustment, to keep sums far from overflow.
pub const MAX_STOCK: i64 = 1_000_000_000;
/// Longest reason (of a cancellation, of a stock adjustment), in characters.
pub const MAX_REASON: usize = 500;
/// Longest carrier name or tracking number, in characters.
pub const MAX_SHIPMENT_TEXT: usize = 100;
/// Longest `Idempotency-Key`, in bytes (visible ASCII, so also characters).
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Page sizes a list accepts.
pub const PAGE_LIMITS: std::ops::RangeInclusive<u32> = 1..=100;
/// The page size of a list that names none.
pub const DEFAULT_PAGE_LIMIT: u32 = 20;

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

/// A new product.
#[derive(Clone, Debug)]
pub struct CreateProduct {
    /// Merchant id.
    pub id: ProductId,
    /// Name.
    pub name: Name,
    /// Prices.
    pub prices: Vec<Money>,
    /// Units on hand.
    pub stock: i64,
    /// On sale.
    pub active: bool,
}

/// Changes to a product; absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct UpdateProduct {
    /// New name.
    pub name: Option<Name>,
    /// New price list (replaces the old one).
    pub prices: Option<Vec<Money>>,
    /// On sale or not.
    pub active: Option<bool>,
}

/// Settings the use cases need.
#[derive(Clone, Debug)]
pub struct AppSettings {
    /// The currency orders are priced in when the request names none.
    pub base_currency: Currency,
    /// A cart expires this long after the shopper last changed it.
    pub cart_idle: std::time::Duration,
}

/// Default idle time before a cart expires: a week.
pub const CART_IDLE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings {
            base_currency: Currency::USD,
            cart_idle: CART_IDLE,
        }
    }
}

/// The application: use cases over the ports.
#[derive(Clone)]
pub struct Orderly {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: AppSettings,
    work: Arc<Notify>,
}

impl Orderly {
    /// Wires the use cases. `work` is signalled whenever a commit queues saga work.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: AppSettings,
        work: Arc<Notify>,
    ) -> Self {
        Orderly {
            store,
            clock,
            ids,
            settings,
            work,
        }
    }

    /// The store, for health checks.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    /// The time now, by the application's clock.
    pub(crate) fn now(&self) -> orderly_domain::Timestamp {
        self.clock.now()
    }

    pub(crate) fn stamp(&self, actor: Actor) -> Stamp {
        Stamp {
            event_id: self.ids.event_id(),
            at: self.clock.now(),
            actor,
        }
    }

    pub(crate) async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let queues = commit.queues_jobs();
        self.store.commit(commit).await?;
        if queues {
            self.work.notify_one();
        }
        Ok(())
    }

    /// Places an order: prices it from the catalog, stores it with its `OrderPlaced` event and
    /// queues the stock reservation, all in one commit. With a key, a repeat of the same request
    /// returns the first order; the same key with another request is refused.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for unknown customers or products and unpriced currencies,
    /// [`AppError::IdempotencyKeyReused`], or a storage failure.
    pub async fn place_order(
        &self,
        request: PlaceOrder,
        key: Option<IdempotencyKey>,
    ) -> Result<Placed, AppError> {
        self.place_order_by(request, key, Actor::api()).await
    }

    /// [`Orderly::place_order`] on behalf of `actor`, whom the order's history names.
    ///
    /// # Errors
    /// As [`Orderly::place_order`].
    #[tracing::instrument(skip_all, fields(customer_id = %request.customer_id))]
    pub async fn place_order_by(
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
        let (order, event) = Order::place(order, self.stamp(actor))
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
        match self.commit(commit).await {
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
        let Some(record) = self.store.idempotency(&key.0).await? else {
            return Ok(None);
        };
        if record.request_hash != hash {
            return Err(AppError::IdempotencyKeyReused);
        }
        let order = self.store.order(record.order_id).await?.ok_or_else(|| {
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
        let currency = request.currency.unwrap_or(self.settings.base_currency);
        let rate = self.rate_to(currency).await?;
        let mut used_rate = None;
        if self.store.customer(&request.customer_id).await?.is_none() {
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
            .store
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
            let unit_price = match self.price_of(product, currency, rate.as_ref()) {
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
            id: self.ids.order_id(),
            customer_id: request.customer_id,
            currency,
            lines,
            shipping_address: request.shipping_address,
            exchange_rate: used_rate,
            payment_method: request.payment_method,
        })
    }

    /// A product's price in `currency`: its listed one, or its base-currency price converted
    /// with `rate` (the base → `currency` rate staff set, if any).
    pub(crate) fn price_of(
        &self,
        product: &Product,
        currency: Currency,
        rate: Option<&ExchangeRate>,
    ) -> Result<Priced, ValueError> {
        if let Some(price) = product.price_in(currency) {
            return Ok(Priced::Listed(price));
        }
        let base = self.settings.base_currency;
        if let (Some(base_price), Some(rate)) = (product.price_in(base), rate) {
            return rate
                .convert(base_price)
                .map(|p| Priced::Converted(p, *rate))
                .map_err(|e| ValueError::new("currency", e.to_string()));
        }
        let known: Vec<_> = product
            .prices
            .as_slice()
            .iter()
            .map(|p| p.currency().code())
            .collect();
        let hint = if product.price_in(base).is_some() {
            format!("; set a rate from {base} with PUT /v1/rates/{currency} to sell it converted")
        } else {
            String::new()
        };
        Err(ValueError::new(
            "currency",
            format!(
                "product {} has no price in {currency}; it is priced in {}{hint}",
                product.id,
                known.join(", ")
            ),
        ))
    }

    /// The rate staff set from the base currency to `currency` (none for the base itself).
    pub(crate) async fn rate_to(
        &self,
        currency: Currency,
    ) -> Result<Option<ExchangeRate>, AppError> {
        if currency == self.settings.base_currency {
            return Ok(None);
        }
        let rate = self.rates_of().value(currency.code()).await?;
        Ok(rate.filter(|r| r.from == self.settings.base_currency))
    }

    fn rates_of(&self) -> Documents<ExchangeRate> {
        Documents::new(self.store.clone())
    }

    /// Every rate from the base currency, by currency code.
    ///
    /// # Errors
    /// Storage.
    pub async fn rates(&self) -> Result<Vec<ExchangeRate>, AppError> {
        Ok(self
            .rates_of()
            .all()
            .await?
            .into_iter()
            .map(|(_, rate)| rate)
            .filter(|rate| rate.from == self.settings.base_currency)
            .collect())
    }

    /// Sets the rate from the base currency to `to`. Orders placed before keep the rate they
    /// were priced with.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for the base currency itself, storage.
    pub async fn set_rate(&self, to: Currency, rate: Rate) -> Result<ExchangeRate, AppError> {
        let base = self.settings.base_currency;
        if to == base {
            return Err(AppError::invalid(
                "currency",
                format!("{to} is the base currency; its prices are the catalog's own"),
            ));
        }
        let new = ExchangeRate {
            from: base,
            to,
            rate,
            set_at: self.clock.now(),
        };
        self.rates_of().put(to.code(), &new).await?;
        tracing::info!(from = %base, %to, %rate, "exchange rate set");
        Ok(new)
    }

    /// One order with its history.
    ///
    /// # Errors
    /// [`AppError::NotFound`] or a storage failure.
    pub async fn order(&self, id: OrderId) -> Result<Order, AppError> {
        self.store
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
        Ok(self.store.list_orders(filter, page).await?)
    }

    /// The events of one order, oldest first.
    ///
    /// # Errors
    /// [`AppError::NotFound`] or a storage failure.
    pub async fn order_events(&self, id: OrderId) -> Result<Vec<Event>, AppError> {
        self.order(id).await?;
        Ok(self.store.order_events(id).await?)
    }

    /// Cancels an order that has not shipped: releases its stock now; the payment step refunds a
    /// captured payment.
    ///
    /// # Errors
    /// [`AppError::IllegalTransition`] once shipped or final, [`AppError::NotFound`], storage.
    #[tracing::instrument(skip(self, reason), fields(order_id = %id))]
    pub async fn cancel(
        &self,
        id: OrderId,
        reason: Option<String>,
        actor: Actor,
    ) -> Result<Order, AppError> {
        if let Some(r) = &reason {
            check_text("reason", r, MAX_REASON)?;
        }
        self.change(
            id,
            |order, stamp| {
                let from = order.status;
                let event = order.apply(Transition::Cancel, stamp, reason.clone())?;
                Ok((
                    event,
                    stock_moves(order, Transition::Cancel.stock_effect(from)),
                ))
            },
            actor,
        )
        .await
    }

    /// Records the hand-over to a carrier; the reserved stock leaves the warehouse.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for empty carrier or tracking number, [`AppError::IllegalTransition`]
    /// unless paid, [`AppError::NotFound`], storage.
    #[tracing::instrument(skip(self, carrier, tracking_number), fields(order_id = %id))]
    pub async fn ship(
        &self,
        id: OrderId,
        carrier: String,
        tracking_number: String,
        actor: Actor,
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
        self.change(
            id,
            |order, stamp| {
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
            },
            actor,
        )
        .await
    }

    /// Records the delivery.
    ///
    /// # Errors
    /// [`AppError::IllegalTransition`] unless shipped, [`AppError::NotFound`], storage.
    #[tracing::instrument(skip(self), fields(order_id = %id))]
    pub async fn deliver(&self, id: OrderId, actor: Actor) -> Result<Order, AppError> {
        self.change(
            id,
            |order, stamp| Ok((order.apply(Transition::Deliver, stamp, None)?, Vec::new())),
            actor,
        )
        .await
    }

    /// Read, change, commit with the version check; on a concurrent change, read again.
    async fn change<F>(&self, id: OrderId, mut f: F, actor: Actor) -> Result<Order, AppError>
    where
        F: FnMut(&mut Order, &Stamp) -> Result<(Event, Vec<crate::ports::StockMove>), AppError>,
    {
        for _ in 0..CONFLICT_RETRIES {
            let mut order = self.order(id).await?;
            let expected_version = order.version;
            let stamp = self.stamp(actor.clone());
            let (event, stock) = f(&mut order, &stamp)?;
            let commit = order_change(order.clone(), expected_version, event, stock);
            match self.commit(commit).await {
                Ok(()) => return Ok(order),
                Err(CommitError::VersionConflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(format!(
            "order {id} is changing too often; try again"
        )))
    }

    /// Creates a product with its opening stock.
    ///
    /// # Errors
    /// [`AppError::Invalid`], [`AppError::AlreadyExists`], storage.
    pub async fn create_product(&self, request: CreateProduct) -> Result<Product, AppError> {
        let prices = Prices::new(request.prices)?;
        if !(0..=MAX_STOCK).contains(&request.stock) {
            return Err(AppError::invalid(
                "stock",
                format!("must be between 0 and {MAX_STOCK}"),
            ));
        }
        let now = self.clock.now();
        let product = Product {
            id: request.id,
            name: request.name,
            prices,
            active: request.active,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_product(&product, request.stock).await {
            Ok(()) => Ok(product),
            Err(StoreError::AlreadyExists) => Err(AppError::AlreadyExists {
                what: "product",
                id: product.id.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes a product's name, prices or status. Orders already placed keep their prices.
    ///
    /// # Errors
    /// [`AppError::Invalid`], [`AppError::NotFound`], storage.
    pub async fn update_product(
        &self,
        id: &ProductId,
        update: UpdateProduct,
    ) -> Result<Product, AppError> {
        let prices = update.prices.map(Prices::new).transpose()?;
        for _ in 0..CONFLICT_RETRIES {
            let mut product = self.product(id).await?;
            let expected_version = product.version;
            if let Some(name) = &update.name {
                product.name = name.clone();
            }
            if let Some(prices) = &prices {
                product.prices = prices.clone();
            }
            if let Some(active) = update.active {
                product.active = active;
            }
            product.version += 1;
            product.updated_at = self.clock.now();
            match self.store.update_product(&product, expected_version).await {
                Ok(()) => return Ok(product),
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(format!(
            "product {id} is changing too often; try again"
        )))
    }

    /// One product.
    ///
    /// # Errors
    /// [`AppError::NotFound`], storage.
    pub async fn product(&self, id: &ProductId) -> Result<Product, AppError> {
        self.store
            .product(id)
            .await?
            .ok_or_else(|| not_found("product", id))
    }

    /// Several products in one read, for batched lookups; missing ids are left out.
    ///
    /// # Errors
    /// Storage.
    pub async fn products(&self, ids: &[ProductId]) -> Result<Vec<Product>, AppError> {
        Ok(self.store.products(ids).await?)
    }

    /// Products by id.
    ///
    /// # Errors
    /// [`AppError::InvalidCursor`], storage.
    pub async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>, AppError> {
        Ok(self.store.list_products(page).await?)
    }

    /// Creates a customer.
    ///
    /// # Errors
    /// [`AppError::AlreadyExists`], storage.
    pub async fn create_customer(
        &self,
        id: CustomerId,
        email: Email,
        name: Name,
    ) -> Result<Customer, AppError> {
        let customer = Customer {
            id,
            email,
            name,
            created_at: self.clock.now(),
        };
        match self.store.create_customer(&customer).await {
            Ok(()) => Ok(customer),
            Err(StoreError::AlreadyExists) => Err(AppError::AlreadyExists {
                what: "customer",
                id: customer.id.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// One customer.
    ///
    /// # Errors
    /// [`AppError::NotFound`], storage.
    pub async fn customer(&self, id: &CustomerId) -> Result<Customer, AppError> {
        self.store
            .customer(id)
            .await?
            .ok_or_else(|| not_found("customer", id))
    }

    /// Several customers in one read, for batched lookups; missing ids are left out.
    ///
    /// # Errors
    /// Storage.
    pub async fn customers(&self, ids: &[CustomerId]) -> Result<Vec<Customer>, AppError> {
        Ok(self.store.customers(ids).await?)
    }

    /// A product's stock.
    ///
    /// # Errors
    /// [`AppError::NotFound`], storage.
    pub async fn stock(&self, id: &ProductId) -> Result<StockLevel, AppError> {
        self.store
            .stock(id)
            .await?
            .ok_or_else(|| not_found("product", id))
    }

    /// A product's recent manual adjustments, newest first.
    ///
    /// # Errors
    /// [`AppError::NotFound`], storage.
    pub async fn adjustments(
        &self,
        id: &ProductId,
        limit: u32,
    ) -> Result<Vec<StockAdjustment>, AppError> {
        self.stock(id).await?;
        Ok(self.store.adjustments(id, limit).await?)
    }

    /// Adds or removes available units, recording why and who.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a zero or huge delta or an empty reason,
    /// [`AppError::InsufficientStock`] if available would go below zero, [`AppError::NotFound`].
    pub async fn adjust_stock(
        &self,
        id: &ProductId,
        delta: i64,
        reason: String,
        actor: Actor,
    ) -> Result<StockLevel, AppError> {
        let mut errors = Vec::new();
        if delta == 0 || !(-MAX_STOCK..=MAX_STOCK).contains(&delta) {
            errors.push(ValueError::new(
                "delta",
                format!("must be non-zero and between -{MAX_STOCK} and {MAX_STOCK}"),
            ));
        }
        if let Err(e) = check_text("reason", &reason, MAX_REASON) {
            errors.push(e);
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let adjustment = StockAdjustment {
            product_id: id.clone(),
            delta,
            reason,
            actor: actor.as_str().to_owned(),
            at: self.clock.now(),
        };
        let commit = Commit {
            stock: vec![crate::ports::StockMove {
                product_id: id.clone(),
                available: delta,
                reserved: 0,
            }],
            adjustment: Some(adjustment),
            ..Commit::default()
        };
        self.commit(commit).await?;
        self.stock(id).await
    }

    /// Loads the reference catalog and customers of the design brief into an empty store.
    /// Returns true if it loaded anything.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn load_demo_data(&self) -> Result<bool, AppError> {
        let mut loaded = false;
        for (id, name, price, stock) in [
            ("001", "Wireless Headphones", "79.99", 150),
            ("002", "Smartwatch", "199.99", 200),
        ] {
            let request = CreateProduct {
                id: ProductId::parse(id)?,
                name: Name::parse("name", name)?,
                prices: vec![
                    Money::parse(price, Currency::USD)
                        .map_err(|e| AppError::Internal(e.to_string()))?,
                ],
                stock,
                active: true,
            };
            match self.create_product(request).await {
                Ok(_) => loaded = true,
                Err(AppError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for (id, email, name) in [
            ("001", "alice.johnson@example.com", "Alice Johnson"),
            ("002", "michael.brown@example.com", "Michael Brown"),
        ] {
            match self
                .create_customer(
                    CustomerId::parse(id)?,
                    Email::parse(email)?,
                    Name::parse("name", name)?,
                )
                .await
            {
                Ok(_) => loaded = true,
                Err(AppError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(loaded)
    }
}

fn not_found(what: &'static str, id: impl ToString) -> AppError {
    AppError::NotFound {
        what,
        id: id.to_string(),
    }
}

fn request_hash(request: &PlaceOrder) -> Result<String, AppError> {
    let canonical = serde_json::to_vec(request).map_err(|e| AppError::Internal(e.to_string()))?;
    let digest = Sha256::digest(&canonical);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Parses a page request's raw values.
///
/// # Errors
/// [`ValueError`] on `limit` outside [`PAGE_LIMITS`].
pub fn page_request(limit: Option<i64>, cursor: Option<String>) -> Result<PageRequest, ValueError> {
    let limit = limit.unwrap_or(i64::from(DEFAULT_PAGE_LIMIT));
    let limit = u32::try_from(limit)
        .ok()
        .filter(|l| PAGE_LIMITS.contains(l))
        .ok_or_else(|| {
            ValueError::new(
                "limit",
                format!(
                    "must be between {} and {}, got {limit}",
                    PAGE_LIMITS.start(),
                    PAGE_LIMITS.end()
                ),
            )
        })?;
    Ok(PageRequest { limit, cursor })
}

/// True for statuses whose orders hold reserved stock.
#[must_use]
pub fn holds_stock(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Reserved | OrderStatus::Paid)
}
