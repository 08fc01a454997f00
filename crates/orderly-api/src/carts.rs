//! The shopper's routes: carts (opened by their `Cart-Token`), checkout, and the exchange rates
//! staff set for prices in other currencies.

use axum::Json;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use orderly_core::accounts::Accounts;
use orderly_core::{CartView, Checkout, Orderly, PricedLine};
use orderly_domain::{
    Address, CartId, CartNotice, Currency, Email, Name, ProductId, Quantity, Rate, ValueError,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::dto::{AddressDto, MoneyDto, OrderDto, RateDto};
use crate::extract::{ApiJson, OptionalJson};
use crate::openapi::NotFound;
use crate::problem::{ApiError, Problem};

type ApiResult<T> = Result<T, ApiError>;

/// The header that carries a cart's token.
pub const CART_TOKEN: &str = "cart-token";

fn cart_id(text: &str) -> ApiResult<CartId> {
    CartId::parse(text).map_err(|_| ApiError::from(Problem::not_found("cart", text)))
}

fn token(headers: &HeaderMap, id: &str) -> ApiResult<String> {
    headers
        .get(CART_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            // Without its token a cart is indistinguishable from a missing one.
            ApiError::from(Problem::not_found("cart", id))
        })
}

fn product_id(text: &str) -> ApiResult<ProductId> {
    ProductId::parse(text)
        .map_err(|_| ApiError::from(Problem::not_found("cart line for product", text)))
}

/// A new cart.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenCartRequest {
    /// The customer whose cart it is (their token, or staff and keys with `orders:place`);
    /// absent for a guest, or for the signed-in customer.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::MerchantId>)]
    pub customer_id: Option<String>,
    /// ISO 4217 currency to price in; the customer's default or the shop's base currency if
    /// absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::CurrencyCode>, example = "EUR")]
    pub currency: Option<String>,
}

/// A product to add.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddLineRequest {
    /// A product id from the catalog.
    #[schema(value_type = crate::openapi::MerchantId, example = "001")]
    pub product_id: String,
    /// 1 to 10000; added to the line if the product is in the cart already (the line's sum
    /// must stay within 10000).
    #[schema(value_type = crate::openapi::Quantity, example = 1)]
    pub quantity: i64,
}

/// A new quantity.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetQuantityRequest {
    /// 1 to 10000.
    #[schema(value_type = crate::openapi::Quantity, example = 2)]
    pub quantity: i64,
}

/// What checkout needs besides the cart.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The buyer's e-mail (guest carts only).
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::EmailAddress>)]
    pub email: Option<String>,
    /// The buyer's name (guest carts only).
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::PersonOrProductName>)]
    pub name: Option<String>,
    /// Where to ship.
    #[serde(default)]
    pub shipping_address: Option<AddressDto>,
    /// The payment provider's token for the buyer's payment method (a Stripe `pm_…`).
    #[serde(default)]
    pub payment_method: Option<String>,
}

/// A cart line priced now.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartLineDto {
    /// Product.
    pub product_id: String,
    /// Its name (absent if it no longer exists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many.
    pub quantity: u32,
    /// Price of one in the cart's currency, now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<MoneyDto>,
    /// `unitPrice × quantity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_total: Option<MoneyDto>,
    /// Why it cannot be bought now, if it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl From<&PricedLine> for CartLineDto {
    fn from(l: &PricedLine) -> Self {
        CartLineDto {
            product_id: l.product_id.to_string(),
            name: l.name.as_ref().map(|n| n.as_str().to_owned()),
            quantity: l.quantity.get(),
            unit_price: l.unit_price.map(Into::into),
            line_total: l.line_total.map(Into::into),
            problem: l.problem.clone(),
        }
    }
}

/// A change the availability sweep made.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartNoticeDto {
    /// Product.
    pub product_id: String,
    /// `trimmed` or `removed`.
    pub change: String,
    /// Quantity before.
    pub from: u32,
    /// Quantity after.
    pub to: u32,
    /// Why: `only 3 left`, `sold out`, `this product is no longer sold`.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

impl From<&CartNotice> for CartNoticeDto {
    fn from(n: &CartNotice) -> Self {
        CartNoticeDto {
            product_id: n.product_id.to_string(),
            change: match n.change {
                orderly_domain::CartChange::Trimmed => "trimmed",
                orderly_domain::CartChange::Removed => "removed",
            }
            .to_owned(),
            from: n.from,
            to: n.to,
            reason: n.reason.clone(),
            at: n.at.to_rfc3339(),
        }
    }
}

/// A cart with its prices now.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CartDto {
    /// Cart id.
    pub id: String,
    /// The token to send as `Cart-Token`; only in the answer that opened the cart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `open`, `checkedOut` or `expired`.
    pub status: String,
    /// The customer, for a signed-in shopper.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Currency of every amount.
    pub currency: String,
    /// Lines priced now.
    pub lines: Vec<CartLineDto>,
    /// Sum of the lines that can be bought.
    pub total: MoneyDto,
    /// The rate used when a price was converted from the base currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_rate: Option<RateDto>,
    /// Changes the availability sweep made, oldest first.
    pub notices: Vec<CartNoticeDto>,
    /// The order it became.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Expires at unless changed before (RFC 3339).
    pub expires_at: String,
    /// Last change by the shopper (RFC 3339).
    pub updated_at: String,
}

impl CartDto {
    fn new(view: &CartView, token: Option<String>) -> Self {
        let c = &view.cart;
        CartDto {
            id: c.id.to_string(),
            token,
            status: c.status.as_str().to_owned(),
            customer_id: c.customer_id.as_ref().map(ToString::to_string),
            currency: c.currency.code().to_owned(),
            lines: view.lines.iter().map(CartLineDto::from).collect(),
            total: view.total.into(),
            exchange_rate: view.exchange_rate.as_ref().map(Into::into),
            notices: c.notices.iter().map(CartNoticeDto::from).collect(),
            order_id: c.order_id.map(|o| o.to_string()),
            expires_at: c.expires_at.to_rfc3339(),
            updated_at: c.updated_at.to_rfc3339(),
        }
    }
}

fn quantity(n: i64) -> ApiResult<Quantity> {
    Ok(Quantity::new(n)?)
}

fn currency(text: Option<&str>) -> ApiResult<Option<Currency>> {
    text.map(Currency::parse)
        .transpose()
        .map_err(|e| ApiError::from(ValueError::new("currency", e.to_string())))
}

/// Opens a cart; the answer carries the token that opens it from then on.
#[utoipa::path(
    post, path = "/v1/carts", tag = "carts",
    request_body(content = Option<OpenCartRequest>, description = "Optional customer and currency"),
    responses(
        (status = 201, description = "Opened; `token` is shown only here", body = CartDto),
        (status = 403, description = "A customer naming another customer, or staff without `orders:place` naming one"),
        (status = 422, description = "Invalid fields, or a customer that does not exist"),
    )
)]
pub async fn open_cart(
    State(app): State<Orderly>,
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    OptionalJson(body): OptionalJson<OpenCartRequest>,
) -> ApiResult<Response> {
    let customer = body
        .customer_id
        .as_deref()
        .map(orderly_domain::CustomerId::parse)
        .transpose()?;
    // A cart for a named customer is theirs: only they (or staff and keys that may order for
    // anyone) open it. A signed-in customer's cart is theirs without saying so.
    let customer = match customer {
        Some(c) => {
            caller.policy().may_order_for(&c)?;
            Some(c)
        }
        None => caller.principal.customer_id().cloned(),
    };
    // A signed-in customer's cart opens in their profile's currency unless they name one.
    let cart_currency = match currency(body.currency.as_deref())? {
        Some(c) => Some(c),
        None => match &caller.principal {
            orderly_auth::Principal::Customer { email, .. } if !email.is_empty() => accounts
                .profile(email)
                .await
                .ok()
                .and_then(|p| p.default_currency),
            _ => None,
        },
    };
    let opened = app.carts.open_cart(customer, cart_currency).await?;
    let dto = CartDto::new(&opened.view, Some(opened.token));
    let mut response = (StatusCode::CREATED, Json(dto)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/carts/{}", opened.view.cart.id)) {
        response.headers_mut().insert("location", v);
    }
    Ok(response)
}

/// A cart with its lines priced now and what the sweep changed.
#[utoipa::path(
    get, path = "/v1/carts/{id}", tag = "carts",
    params(("id" = crate::openapi::Uuid, Path, description = "Cart id"), ("Cart-Token" = String, Header, description = "The token from opening the cart")),
    responses((status = 200, body = CartDto), (status = 404, description = "No such cart, or a wrong token"))
)]
pub async fn get_cart(
    State(app): State<Orderly>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<CartDto>> {
    let view = app
        .carts
        .cart(cart_id(&id)?, &token(&headers, &id)?)
        .await?;
    Ok(Json(CartDto::new(&view, None)))
}

/// Adds a product (to its line if it is in the cart already).
#[utoipa::path(
    post, path = "/v1/carts/{id}/lines", tag = "carts",
    params(("id" = crate::openapi::Uuid, Path, description = "Cart id"), ("Cart-Token" = String, Header, description = "The token from opening the cart")),
    request_body = AddLineRequest,
    responses(
        (status = 200, body = CartDto),
        (status = 404, response = NotFound),
        (status = 409, description = "Checked out or expired"),
        (status = 422, description = "Invalid fields; an unknown product, one not sold or without a price (or a rate) in the cart's currency; a line over 10000 units or a cart over 100 lines"),
    )
)]
pub async fn add_line(
    State(app): State<Orderly>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AddLineRequest>,
) -> ApiResult<Json<CartDto>> {
    let (cart, token) = (cart_id(&id)?, token(&headers, &id)?);
    let product = ProductId::parse(&body.product_id)?;
    let view = app
        .carts
        .add_to_cart(cart, &token, product, quantity(body.quantity)?)
        .await?;
    Ok(Json(CartDto::new(&view, None)))
}

/// Changes a line's quantity.
#[utoipa::path(
    patch, path = "/v1/carts/{id}/lines/{productId}", tag = "carts",
    params(("id" = crate::openapi::Uuid, Path, description = "Cart id"), ("productId" = crate::openapi::MerchantId, Path, description = "Product id"), ("Cart-Token" = String, Header, description = "The token from opening the cart")),
    request_body = SetQuantityRequest,
    responses((status = 200, body = CartDto), (status = 404, response = NotFound), (status = 409, description = "Checked out or expired"))
)]
pub async fn set_quantity(
    State(app): State<Orderly>,
    Path((id, product)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SetQuantityRequest>,
) -> ApiResult<Json<CartDto>> {
    let (cart, token) = (cart_id(&id)?, token(&headers, &id)?);
    let view = app
        .carts
        .set_cart_quantity(
            cart,
            &token,
            &product_id(&product)?,
            quantity(body.quantity)?,
        )
        .await?;
    Ok(Json(CartDto::new(&view, None)))
}

/// Takes a line out.
#[utoipa::path(
    delete, path = "/v1/carts/{id}/lines/{productId}", tag = "carts",
    params(("id" = crate::openapi::Uuid, Path, description = "Cart id"), ("productId" = crate::openapi::MerchantId, Path, description = "Product id"), ("Cart-Token" = String, Header, description = "The token from opening the cart")),
    responses((status = 200, body = CartDto), (status = 404, response = NotFound), (status = 409, description = "Checked out or expired"))
)]
pub async fn remove_line(
    State(app): State<Orderly>,
    Path((id, product)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<CartDto>> {
    let (cart, token) = (cart_id(&id)?, token(&headers, &id)?);
    let view = app
        .carts
        .remove_from_cart(cart, &token, &product_id(&product)?)
        .await?;
    Ok(Json(CartDto::new(&view, None)))
}

impl CheckoutRequest {
    fn parse(self) -> Result<Checkout, Vec<ValueError>> {
        let mut errors = Vec::new();
        let email = self
            .email
            .as_deref()
            .map(Email::parse)
            .transpose()
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        let name = self
            .name
            .as_deref()
            .map(|n| Name::parse("name", n))
            .transpose()
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        if errors.is_empty() {
            Ok(Checkout {
                email,
                name,
                shipping_address: self.shipping_address.map(Address::from),
                payment_method: self.payment_method,
            })
        } else {
            Err(errors)
        }
    }
}

/// Turns the cart into an order. The cart is its own idempotency key: checking out again
/// answers with the same order (`Idempotent-Replayed: true`).
#[utoipa::path(
    post, path = "/v1/carts/{id}/checkout", tag = "carts",
    params(("id" = crate::openapi::Uuid, Path, description = "Cart id"), ("Cart-Token" = String, Header, description = "The token from opening the cart")),
    request_body(content = Option<CheckoutRequest>, description = "Address, payment method; e-mail and name for a guest cart"),
    responses(
        (status = 201, description = "The order (placed now, or replayed)", body = OrderDto),
        (status = 404, response = NotFound),
        (status = 409, description = "The cart expired"),
        (status = 422, description = "Empty cart, lines that cannot be bought now, missing guest details"),
    )
)]
pub async fn checkout(
    State(app): State<Orderly>,
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<CheckoutRequest>,
) -> ApiResult<Response> {
    let (cart, token) = (cart_id(&id)?, token(&headers, &id)?);
    let permit = caller.policy().check_out(&accounts)?;
    let placed = app
        .carts
        .check_out(permit, cart, &token, body.parse()?)
        .await?;
    Ok(crate::routes::placed_response(placed))
}

/// The rates from the base currency.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RatesDto {
    /// The shop's base currency: catalog prices without one in the buyer's currency are
    /// converted from it.
    pub base: String,
    /// One per currency.
    pub rates: Vec<RateDto>,
}

/// A rate to set.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRateRequest {
    /// Units of the currency per unit of the base currency: a decimal string, at most 9
    /// decimal places.
    #[schema(value_type = crate::openapi::RateText, example = "151.25")]
    pub rate: String,
}

/// Every exchange rate staff set.
#[utoipa::path(get, path = "/v1/rates", tag = "rates", responses((status = 200, body = RatesDto)))]
pub async fn list_rates(State(app): State<Orderly>) -> ApiResult<Json<RatesDto>> {
    let rates = app.catalog.rates().await?;
    Ok(Json(RatesDto {
        base: app.settings().base_currency.code().to_owned(),
        rates: rates.iter().map(Into::into).collect(),
    }))
}

/// Sets the rate from the base currency to one currency. Placed orders keep the rate they were
/// priced with.
#[utoipa::path(
    put, path = "/v1/rates/{currency}", tag = "rates",
    params(("currency" = crate::openapi::CurrencyCode, Path, description = "ISO 4217 code")),
    request_body = SetRateRequest,
    responses((status = 200, body = RateDto), (status = 422, description = "Invalid fields; a rate of zero or over 1000000; the base currency itself"))
)]
pub async fn set_rate(
    State(app): State<Orderly>,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<SetRateRequest>,
) -> ApiResult<Json<RateDto>> {
    let to = Currency::parse(&code).map_err(|e| ValueError::new("currency", e.to_string()))?;
    let rate = Rate::parse(&body.rate)?;
    let set = app.catalog.set_rate(to, rate).await?;
    Ok(Json((&set).into()))
}
