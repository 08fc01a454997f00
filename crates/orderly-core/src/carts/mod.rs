//! The shopper's side: carts, their prices in the cart's currency, checkout into an order, and
//! the availability sweep.
//!
//! A cart is opened by a secret token (shown once, stored only as its SHA-256), so knowing a
//! cart's id is not enough to read or change it. Prices are looked up whenever a cart is shown
//! or checked out — listed in the cart's currency, or converted from the base currency with the
//! rate staff set. Checkout places an order through the same use case as `POST /v1/orders`,
//! keyed by the cart, so a repeated or concurrent checkout makes one order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use orderly_domain::{
    Address, Cart, CartError, CartId, CartStatus, Currency, Customer, CustomerId, Email,
    ExchangeRate, Money, Name, Product, ProductId, Quantity, Timestamp, ValueError,
};
use sha2::{Digest, Sha256};

use crate::access::CheckoutPermit;
use crate::catalog::{Priced, Pricing};
use crate::documents::{Change, DocumentType, Documents};
use crate::error::AppError;
use crate::orders::{IdempotencyKey, LineRequest, Orders, PlaceOrder, Placed};
use crate::ports::{CatalogStore, Clock, DocKind, DocumentStore, StockStore, StoreError};

impl DocumentType for Cart {
    const KIND: DocKind = DocKind::Cart;

    fn set_version(&mut self, version: u32) {
        self.version = version;
    }
}

/// The cart if `token` opens it; a wrong token looks exactly like a missing cart, so ids leak
/// nothing.
fn opened_by(cart: Option<Cart>, id: CartId, token: &str) -> Result<Cart, AppError> {
    cart.filter(|cart| same(&cart.token_hash, &token_hash(token)))
        .ok_or_else(|| AppError::NotFound {
            what: "cart",
            id: id.to_string(),
        })
}

/// Carts read per step of the sweep.
const SWEEP_PAGE: u32 = 100;

/// A cart line with its price now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedLine {
    /// The product.
    pub product_id: ProductId,
    /// Its name, if it still exists.
    pub name: Option<Name>,
    /// How many.
    pub quantity: Quantity,
    /// The price of one in the cart's currency; `None` if it cannot be sold in it now.
    pub unit_price: Option<Money>,
    /// `unit_price × quantity`.
    pub line_total: Option<Money>,
    /// Why it cannot be bought now, if it cannot.
    pub problem: Option<String>,
}

/// A cart as the shopper sees it: lines priced now, the total, and what the sweep changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartView {
    /// The stored cart.
    pub cart: Cart,
    /// Its lines, priced.
    pub lines: Vec<PricedLine>,
    /// Sum of the lines that can be bought.
    pub total: Money,
    /// The rate used, when a price was converted from the base currency.
    pub exchange_rate: Option<ExchangeRate>,
}

/// A new cart and the token that opens it (shown this once).
#[derive(Clone, Debug)]
pub struct OpenedCart {
    /// The cart.
    pub view: CartView,
    /// Send it back as `Cart-Token` on every call for this cart.
    pub token: String,
}

/// What checkout needs besides the cart.
#[derive(Clone, Debug, Default)]
pub struct Checkout {
    /// For a guest cart: the buyer's e-mail.
    pub email: Option<Email>,
    /// For a guest cart: the buyer's name.
    pub name: Option<Name>,
    /// Where to ship.
    pub shipping_address: Option<Address>,
    /// The payment provider's token for the buyer's payment method.
    pub payment_method: Option<String>,
}

/// What one pass of the availability sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Carts looked at.
    pub carts: u64,
    /// Carts that expired.
    pub expired: u64,
    /// Carts with lines trimmed or removed.
    pub changed: u64,
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares in time independent of where the texts differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn cart_error(e: CartError) -> AppError {
    match e {
        CartError::NotOpen(_) => AppError::CartClosed(e.to_string()),
        CartError::NoSuchLine(p) => AppError::NotFound {
            what: "cart line for product",
            id: p.to_string(),
        },
        CartError::TooManyLines | CartError::Empty => AppError::invalid("lines", e.to_string()),
        CartError::QuantityTooLarge(_) => AppError::invalid("quantity", e.to_string()),
    }
}

/// Carts and checkout.
#[derive(Clone)]
pub struct Carts {
    carts: Documents<Cart>,
    catalog: Arc<dyn CatalogStore>,
    stock: Arc<dyn StockStore>,
    pricing: Pricing,
    orders: Orders,
    clock: Arc<dyn Clock>,
    idle: Duration,
}

impl Carts {
    /// Carts over their ports (see [`crate::Application`]); a cart expires `idle` after the
    /// shopper last changed it.
    pub(crate) fn new(
        documents: Arc<dyn DocumentStore>,
        catalog: Arc<dyn CatalogStore>,
        stock: Arc<dyn StockStore>,
        pricing: Pricing,
        orders: Orders,
        clock: Arc<dyn Clock>,
        idle: Duration,
    ) -> Self {
        Carts {
            carts: Documents::new(documents),
            catalog,
            stock,
            pricing,
            orders,
            clock,
            idle,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn idle_ms(&self) -> i64 {
        i64::try_from(self.idle.as_millis()).unwrap_or(i64::MAX)
    }

    /// Opens an empty cart, for a customer or a guest, priced in `currency` (the base currency
    /// if absent).
    ///
    /// # Errors
    /// [`AppError::Invalid`] for an unknown customer, storage.
    pub async fn open_cart(
        &self,
        customer_id: Option<CustomerId>,
        currency: Option<Currency>,
    ) -> Result<OpenedCart, AppError> {
        if let Some(id) = &customer_id
            && self.catalog.customer(id).await?.is_none()
        {
            return Err(AppError::invalid(
                "customerId",
                format!("names no known customer ({id})"),
            ));
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let cart = Cart::open(
            CartId::from_uuid(uuid::Uuid::new_v4()),
            customer_id,
            token_hash(&token),
            currency.unwrap_or(self.pricing.base()),
            self.now(),
            self.idle_ms(),
        );
        self.carts.insert(&cart.id.to_string(), &cart).await?;
        tracing::info!(cart_id = %cart.id, "cart opened");
        Ok(OpenedCart {
            view: self.price_cart(cart).await?,
            token,
        })
    }

    async fn load_cart(&self, id: CartId, token: &str) -> Result<Cart, AppError> {
        let cart = self.carts.value(&id.to_string()).await?;
        opened_by(cart, id, token)
    }

    /// Reads the cart, applies `change`, writes it back if nobody changed it meanwhile (else
    /// reads again).
    async fn change_cart(
        &self,
        id: CartId,
        token: &str,
        change: impl Fn(&mut Cart, Timestamp) -> Result<(), AppError> + Send + Sync,
    ) -> Result<CartView, AppError> {
        let now = self.now();
        let cart = self
            .carts
            .modify(&id.to_string(), |read| {
                let mut cart = opened_by(read, id, token)?;
                change(&mut cart, now)?;
                Ok(Change::Write(cart.clone(), cart))
            })
            .await?;
        self.price_cart(cart).await
    }

    /// A cart with its lines priced now.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown cart or a wrong token, storage.
    pub async fn cart(&self, id: CartId, token: &str) -> Result<CartView, AppError> {
        let mut cart = self.load_cart(id, token).await?;
        if cart.is_past_expiry(self.now()) {
            // Shown as it is; the sweep records it.
            cart.status = CartStatus::Expired;
        }
        self.price_cart(cart).await
    }

    /// Adds a product to the cart (to its line if it has one).
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a product that does not exist, is not sold, or has no price in
    /// the cart's currency; [`AppError::CartClosed`]; [`AppError::NotFound`].
    pub async fn add_to_cart(
        &self,
        id: CartId,
        token: &str,
        product_id: ProductId,
        quantity: Quantity,
    ) -> Result<CartView, AppError> {
        let cart = self.load_cart(id, token).await?;
        let product = self.catalog.product(&product_id).await?;
        let rate = self.pricing.rate_to(cart.currency).await?;
        match product {
            None => {
                return Err(AppError::invalid(
                    "productId",
                    format!("names no known product ({product_id})"),
                ));
            }
            Some(p) if !p.active => {
                return Err(AppError::invalid(
                    "productId",
                    format!("product {product_id} is no longer sold"),
                ));
            }
            Some(p) => {
                self.pricing.price_of(&p, cart.currency, rate.as_ref())?;
            }
        }
        let idle = self.idle_ms();
        self.change_cart(id, token, |cart, now| {
            cart.add(product_id.clone(), quantity, now, idle)
                .map_err(cart_error)
        })
        .await
    }

    /// Sets a line's quantity.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for a product not in the cart, [`AppError::CartClosed`].
    pub async fn set_cart_quantity(
        &self,
        id: CartId,
        token: &str,
        product_id: &ProductId,
        quantity: Quantity,
    ) -> Result<CartView, AppError> {
        let idle = self.idle_ms();
        self.change_cart(id, token, |cart, now| {
            cart.set_quantity(product_id, quantity, now, idle)
                .map_err(cart_error)
        })
        .await
    }

    /// Takes a line out.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for a product not in the cart, [`AppError::CartClosed`].
    pub async fn remove_from_cart(
        &self,
        id: CartId,
        token: &str,
        product_id: &ProductId,
    ) -> Result<CartView, AppError> {
        let idle = self.idle_ms();
        self.change_cart(id, token, |cart, now| {
            cart.remove(product_id, now, idle).map_err(cart_error)
        })
        .await
    }

    /// Prices every line in the cart's currency, now.
    async fn price_cart(&self, cart: Cart) -> Result<CartView, AppError> {
        let ids: Vec<ProductId> = cart.lines.iter().map(|l| l.product_id.clone()).collect();
        let products: HashMap<ProductId, Product> = if ids.is_empty() {
            HashMap::new()
        } else {
            self.catalog
                .products(&ids)
                .await?
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect()
        };
        let rate = self.pricing.rate_to(cart.currency).await?;
        let mut used_rate = None;
        let mut total = Money::zero(cart.currency);
        let mut lines = Vec::with_capacity(cart.lines.len());
        for line in &cart.lines {
            let product = products.get(&line.product_id);
            let priced = match product {
                None => Err("this product no longer exists".to_owned()),
                Some(p) if !p.active => Err("this product is no longer sold".to_owned()),
                Some(p) => self
                    .pricing
                    .price_of(p, cart.currency, rate.as_ref())
                    .map_err(|e| e.message),
            };
            let (unit_price, problem) = match priced {
                Ok(Priced::Listed(price)) => (Some(price), None),
                Ok(Priced::Converted(price, r)) => {
                    used_rate = Some(r);
                    (Some(price), None)
                }
                Err(why) => (None, Some(why)),
            };
            let line_total = unit_price.and_then(|p| p.checked_mul(line.quantity.get()).ok());
            if let Some(t) = line_total {
                total = total
                    .checked_add(t)
                    .map_err(|e| AppError::invalid("lines", e.to_string()))?;
            }
            lines.push(PricedLine {
                product_id: line.product_id.clone(),
                name: product.map(|p| p.name.clone()),
                quantity: line.quantity,
                unit_price,
                line_total,
                problem,
            });
        }
        Ok(CartView {
            cart,
            lines,
            total,
            exchange_rate: used_rate,
        })
    }

    /// Turns the cart into an order through the same use case as `POST /v1/orders`. The cart
    /// is the idempotency key: checking out again (or twice at once) answers with the one
    /// order. A guest cart needs the buyer's e-mail and name, which make a customer record.
    ///
    /// # Errors
    /// [`AppError::CartClosed`] for an expired cart, [`AppError::Invalid`] for an invalid
    /// shipping address (also on a replay), an empty cart, a missing guest e-mail or name, or
    /// lines that cannot be bought now; as for placing.
    pub async fn check_out(
        &self,
        permit: CheckoutPermit,
        id: CartId,
        token: &str,
        checkout: Checkout,
    ) -> Result<Placed, AppError> {
        // Checked before the replay below, which answers without looking at the request: an
        // invalid address is refused on every try, not only the first.
        if let Some(address) = &checkout.shipping_address {
            address.validate().map_err(|errors| {
                AppError::Invalid(
                    errors
                        .into_iter()
                        .map(|e| e.within("shippingAddress"))
                        .collect(),
                )
            })?;
        }
        let cart = self.load_cart(id, token).await?;
        if cart.status == CartStatus::CheckedOut
            && let Some(order_id) = cart.order_id
        {
            return Ok(Placed::Replay(self.orders.order(order_id).await?));
        }
        cart.check_checkout(self.now()).map_err(cart_error)?;
        let customer_id = match &cart.customer_id {
            Some(c) => c.clone(),
            None => self.guest_customer(&cart, &checkout).await?,
        };
        let request = PlaceOrder {
            customer_id,
            items: cart
                .lines
                .iter()
                .map(|l| LineRequest {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            currency: Some(cart.currency),
            shipping_address: checkout.shipping_address,
            payment_method: checkout.payment_method,
        };
        let key = IdempotencyKey::parse(&format!("cart:{id}"))?;
        let placed = self
            .orders
            .place(request, Some(key), permit.actor().clone())
            .await?;
        let order_id = match &placed {
            Placed::New(o) | Placed::Replay(o) => o.id,
        };
        // Record the order on the cart; a concurrent checkout may have done so already. The
        // order is placed whatever happens here, and a repeated checkout answers with it.
        let now = self.now();
        let recorded = self
            .carts
            .modify(&id.to_string(), |read| {
                let mut cart = opened_by(read, id, token)?;
                if cart.status == CartStatus::CheckedOut {
                    return Ok(Change::Keep(()));
                }
                cart.checked_out(order_id, now);
                Ok(Change::Write(cart, ()))
            })
            .await;
        match recorded {
            Ok(()) => {}
            Err(AppError::Unavailable(e)) => {
                tracing::warn!(cart_id = %id, %order_id, error = %e, "the order is placed; the cart could not be marked checked out yet");
            }
            Err(e) => return Err(e),
        }
        tracing::info!(cart_id = %id, %order_id, "cart checked out");
        Ok(placed)
    }

    /// The customer record a guest checkout makes: `guest-<cart id>`.
    async fn guest_customer(
        &self,
        cart: &Cart,
        checkout: &Checkout,
    ) -> Result<CustomerId, AppError> {
        let mut errors = Vec::new();
        if checkout.email.is_none() {
            errors.push(ValueError::new(
                "email",
                "is needed to check out a guest cart",
            ));
        }
        if checkout.name.is_none() {
            errors.push(ValueError::new(
                "name",
                "is needed to check out a guest cart",
            ));
        }
        let (Some(email), Some(name)) = (&checkout.email, &checkout.name) else {
            return Err(AppError::Invalid(errors));
        };
        let id = CustomerId::parse(&format!("guest-{}", cart.id.uuid().simple()))?;
        let customer = Customer {
            id: id.clone(),
            email: email.clone(),
            name: name.clone(),
            created_at: self.now(),
        };
        match self.catalog.create_customer(&customer).await {
            Ok(()) | Err(StoreError::AlreadyExists) => Ok(id),
            Err(e) => Err(e.into()),
        }
    }

    /// One pass of the availability sweep over every open cart: expires idle ones, and trims
    /// or removes lines whose product is no longer sold or not in stock in the quantity asked,
    /// recording a notice the shopper sees. Carts changed meanwhile are left to the next pass.
    ///
    /// # Errors
    /// Storage.
    pub async fn sweep_carts(&self) -> Result<SweepReport, AppError> {
        let mut report = SweepReport::default();
        let mut after: Option<String> = None;
        loop {
            let page = self.carts.page(after.as_deref(), SWEEP_PAGE).await?;
            let Some((last, _)) = page.last() else {
                return Ok(report);
            };
            after = Some(last.clone());
            let carts: Vec<Cart> = page
                .into_iter()
                .map(|(_, cart)| cart)
                .filter(|cart| cart.status == CartStatus::Open)
                .collect();
            report.carts += carts.len() as u64;
            let ids: Vec<ProductId> = carts
                .iter()
                .flat_map(|c| c.lines.iter().map(|l| l.product_id.clone()))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let products: HashMap<ProductId, Product> = self
                .catalog
                .products(&ids)
                .await?
                .into_iter()
                .map(|p| (p.id.clone(), p))
                .collect();
            let mut available: BTreeMap<ProductId, i64> = BTreeMap::new();
            for id in &ids {
                if let Some(level) = self.stock.stock(id).await? {
                    available.insert(id.clone(), level.available);
                }
            }
            let now = self.now();
            for mut cart in carts {
                let expected = cart.version;
                if cart.is_past_expiry(now) {
                    cart.expire();
                    if self
                        .carts
                        .save(&cart.id.to_string(), &cart, Some(expected))
                        .await
                        .is_ok()
                    {
                        report.expired += 1;
                    }
                    continue;
                }
                let mut changed = false;
                let lines: Vec<_> = cart.lines.clone();
                for line in lines {
                    let (limit, reason) = match products.get(&line.product_id) {
                        None => (0, "this product no longer exists".to_owned()),
                        Some(p) if !p.active => (0, "this product is no longer sold".to_owned()),
                        Some(_) => {
                            let n = available.get(&line.product_id).copied().unwrap_or(0);
                            let n = u32::try_from(n.max(0)).unwrap_or(u32::MAX);
                            let why = if n == 0 {
                                "sold out".to_owned()
                            } else {
                                format!("only {n} left")
                            };
                            (n, why)
                        }
                    };
                    changed |= cart.limit_line(&line.product_id, limit, &reason, now);
                }
                if changed
                    && self
                        .carts
                        .save(&cart.id.to_string(), &cart, Some(expected))
                        .await
                        .is_ok()
                {
                    report.changed += 1;
                }
            }
        }
    }
}
