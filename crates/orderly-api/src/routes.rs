//! The REST handlers: parse, call one use case, map the result. No business rules here.

use axum::Json;
use std::sync::Arc;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderly_auth::Permission;
use orderly_core::access::{
    Action, AddNote, Cancel, Edit, Fulfil, Permit, Read, ReadNotes, Refund, Retry,
};
use orderly_core::accounts::Accounts;
use orderly_core::ports::OrderFilter;
use orderly_core::{AppError, IdempotencyKey, Orderly, Placed, page_request};
use orderly_domain::{Actor, CustomerId, OrderStatus, ProductId, ValueError};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::dto::{
    AddressDto, AdjustmentRequest, CancelRequest, ContactRequest, CreateCustomerRequest,
    CreateProductRequest, CustomerDto, EscalationDto, EventDto, NoteDto, OrderDto, OrderPage,
    PlaceOrderRequest, ProductDto, ProductPage, RefundRequest, ShipRequest, StockDto,
    UndeliverableRequest, UpdateProductRequest,
};
use crate::extract::{ApiJson, ApiQuery, OptionalJson};
use crate::openapi::NotFound;
use crate::problem::{ApiError, Problem};
use crate::request::record_order_id;

type ApiResult<T> = Result<T, ApiError>;

fn product_id(text: &str) -> ApiResult<ProductId> {
    ProductId::parse(text).map_err(|_| ApiError::from(Problem::not_found("product", text)))
}

/// `202 Accepted` with the order as the caller may see it: a change whose effect a saga step
/// or the notifier makes next.
fn accepted(order: &orderly_domain::Order, caller: &Caller) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(OrderDto::from(order).for_caller(caller)),
    )
        .into_response()
}

fn with_location(status: StatusCode, location: &str, body: impl IntoResponse) -> Response {
    let mut response = (status, body).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Places an order; see the README tour.
#[utoipa::path(
    post, path = "/v1/orders", tag = "orders",
    request_body = PlaceOrderRequest,
    params(("Idempotency-Key" = Option<crate::openapi::IdempotencyKeyText>, Header, description = "Makes retries safe: the same key and body return the first order (with `Idempotent-Replayed: true`); the same key with another body is refused.")),
    responses(
        (status = 201, description = "Placed (or replayed); Location names the order", body = OrderDto),
        (status = 422, description = "Invalid fields, an unknown customer or product, a product not sold or without a price (or a rate) in the order's currency, or an Idempotency-Key used with another body"),
    )
)]
pub async fn place_order(
    State(app): State<Orderly>,
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PlaceOrderRequest>,
) -> ApiResult<Response> {
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map_err(|_| ValueError::new("Idempotency-Key", "must be visible ASCII"))
                .and_then(IdempotencyKey::parse)
        })
        .transpose()?;
    let request = body.parse()?;
    let permit = caller.policy().place_for(&accounts, &request.customer_id)?;
    Ok(placed_response(
        app.orders.place_order(permit, request, key).await?,
    ))
}

/// Leave to do `A` to the order `id` ([`orderly_core::access::Policy::order`]), the order
/// named in the request's span.
///
/// # Errors
/// 401/403, or 404 for an order the caller may not see; storage.
pub async fn permit<A: Action>(app: &Orderly, caller: &Caller, id: &str) -> ApiResult<Permit<A>> {
    let permit = caller.policy().order::<A>(&app.orders, id).await?;
    record_order_id(&permit.id());
    Ok(permit)
}

/// `201 Created` with the order and its `Location`; a replay also says `Idempotent-Replayed`.
pub fn placed_response(placed: Placed) -> Response {
    let (order, replayed) = match placed {
        Placed::New(o) => (o, false),
        Placed::Replay(o) => (o, true),
    };
    record_order_id(&order.id);
    let mut response = with_location(
        StatusCode::CREATED,
        &format!("/v1/orders/{}", order.id),
        Json(OrderDto::from(&order)),
    );
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// One order with its history.
#[utoipa::path(
    get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = OrderDto),
        (status = 404, response = NotFound),
    )
)]
pub async fn get_order(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderDto>> {
    let permit = permit::<Read>(&app, &caller, &id).await?;
    Ok(Json(OrderDto::from(permit.order()).for_caller(&caller)))
}

/// The events published for an order, oldest first, in the reference shape.
#[utoipa::path(
    get, path = "/v1/orders/{id}/events", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = [EventDto]),
        (status = 404, response = NotFound),
    )
)]
pub async fn order_events(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<orderly_domain::Event>>> {
    let permit = permit::<Read>(&app, &caller, &id).await?;
    // Serialized straight to bytes: `totalAmount` keeps its exact decimal text.
    Ok(Json(app.orders.order_events(&permit).await?))
}

/// Filters and paging for the order list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListOrdersQuery {
    /// Only orders in this status.
    #[param(value_type = Option<crate::openapi::OrderStatusName>)]
    status: Option<String>,
    /// Only this customer's orders.
    #[param(value_type = Option<crate::openapi::MerchantId>)]
    customer_id: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<crate::openapi::PageLimit>)]
    limit: Option<i64>,
    /// `nextCursor` from the previous page.
    cursor: Option<String>,
}

/// Orders, newest first, with cursor pagination.
#[utoipa::path(
    get, path = "/v1/orders", tag = "orders",
    params(ListOrdersQuery),
    responses((status = 200, body = OrderPage))
)]
pub async fn list_orders(
    State(app): State<Orderly>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListOrdersQuery>,
) -> ApiResult<Json<OrderPage>> {
    let mut errors = Vec::new();
    let status = q.status.as_deref().and_then(|s| {
        let parsed = OrderStatus::parse(s);
        if parsed.is_none() {
            let names: Vec<_> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
            errors.push(ValueError::new(
                "status",
                format!("must be one of {}", names.join(", ")),
            ));
        }
        parsed
    });
    let customer_id = q
        .customer_id
        .as_deref()
        .map(CustomerId::parse)
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let page = page_request(q.limit, q.cursor)
        .map_err(|e| errors.push(e))
        .ok();
    let Some(page) = page.filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    let customer_id = caller.policy().orders_of(customer_id)?;
    let filter = OrderFilter {
        status,
        customer_id,
    };
    let found = app.orders.list_orders(&filter, &page).await?;
    Ok(Json(OrderPage {
        items: found
            .items
            .iter()
            .map(|o| OrderDto::from(o).for_caller(&caller))
            .collect(),
        next_cursor: found.next_cursor,
    }))
}

/// Cancels an order that has not shipped: stock is released, a captured payment refunded.
#[utoipa::path(
    post, path = "/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    request_body(content = Option<CancelRequest>, description = "Optional reason"),
    responses(
        (status = 200, body = OrderDto),
        (status = 403, description = "A paid order, canceled without `orders:cancel-paid` (support may cancel only orders nothing was captured for)"),
        (status = 404, response = NotFound),
        (status = 409, description = "Already shipped, delivered, rejected or canceled"),
    )
)]
pub async fn cancel_order(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<CancelRequest>,
) -> ApiResult<Json<OrderDto>> {
    let permit = permit::<Cancel>(&app, &caller, &id).await?;
    let order = app.orders.cancel(permit, body.reason).await?;
    Ok(Json(OrderDto::from(&order)))
}

/// Gives back part of a captured payment: the payment step refunds it and the customer is
/// told. Without `orders:refund-any`, one order's refunds stay within the shop's refund limit.
#[utoipa::path(
    post, path = "/v1/orders/{id}/refunds", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    request_body = RefundRequest,
    responses(
        (status = 202, description = "Asked for: `payment.refundPending` until the provider has made it", body = OrderDto),
        (status = 403, description = "Over the caller's refund limit"),
        (status = 404, response = NotFound),
        (status = 409, description = "Nothing was captured, the order is canceled, or it changed since the version the caller expected"),
        (status = 422, description = "Not an amount in the order's currency, zero, or more than is left to refund"),
    )
)]
pub async fn refund_order(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RefundRequest>,
) -> ApiResult<Response> {
    let amount = body.amount().map_err(AppError::from)?;
    let permit = permit::<Refund>(&app, &caller, &id).await?;
    let permit = match body.expected_version {
        Some(v) => permit.expecting(v),
        None => permit,
    };
    let order = app.orders.refund(permit, amount, &body.reason).await?;
    Ok(accepted(&order, &caller))
}

/// Sends the order's customer one of the messages written for staff to send (`contact_payment`,
/// `contact_address`, `contact_delay`) through the notifier; the history names who and why.
#[utoipa::path(
    post, path = "/v1/orders/{id}/messages", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    request_body = ContactRequest,
    responses(
        (status = 202, description = "Queued: the notifier sends it once", body = OrderDto),
        (status = 404, response = NotFound),
    )
)]
pub async fn contact_customer(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ContactRequest>,
) -> ApiResult<Response> {
    let permit = permit::<AddNote>(&app, &caller, &id).await?;
    let order = app
        .support
        .contact_customer(permit, body.message.as_str(), body.reason.as_deref())
        .await?;
    Ok(accepted(&order, &caller))
}

/// Records the hand-over to a carrier.
#[utoipa::path(
    post, path = "/v1/orders/{id}/ship", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    request_body = ShipRequest,
    responses(
        (status = 200, body = OrderDto),
        (status = 404, response = NotFound),
        (status = 409, description = "Not paid yet, or already shipped/canceled"),
    )
)]
pub async fn ship_order(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ShipRequest>,
) -> ApiResult<Json<OrderDto>> {
    let permit = permit::<Fulfil>(&app, &caller, &id).await?;
    let order = app
        .orders
        .ship(permit, body.carrier, body.tracking_number)
        .await?;
    Ok(Json(OrderDto::from(&order)))
}

/// Records the delivery.
#[utoipa::path(
    post, path = "/v1/orders/{id}/deliver", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = OrderDto),
        (status = 404, response = NotFound),
        (status = 409, description = "Not shipped"),
    )
)]
pub async fn deliver_order(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderDto>> {
    let permit = permit::<Fulfil>(&app, &caller, &id).await?;
    let order = app.orders.deliver(permit).await?;
    Ok(Json(OrderDto::from(&order)))
}

/// Paging for lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<crate::openapi::PageLimit>)]
    limit: Option<i64>,
    /// `nextCursor` from the previous page.
    cursor: Option<String>,
}

/// Products by id.
#[utoipa::path(
    get, path = "/v1/products", tag = "catalog",
    params(PageQuery),
    responses((status = 200, body = ProductPage))
)]
pub async fn list_products(
    State(app): State<Orderly>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ProductPage>> {
    let page = page_request(q.limit, q.cursor)?;
    let found = app.catalog.list_products(&page).await?;
    Ok(Json(ProductPage {
        items: found.items.iter().map(ProductDto::from).collect(),
        next_cursor: found.next_cursor,
    }))
}

/// One product.
#[utoipa::path(
    get, path = "/v1/products/{id}", tag = "catalog",
    params(("id" = crate::openapi::MerchantId, Path, description = "Product id")),
    responses((status = 200, body = ProductDto), (status = 404, response = NotFound))
)]
pub async fn get_product(
    State(app): State<Orderly>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProductDto>> {
    let product = app.catalog.product(&product_id(&id)?).await?;
    Ok(Json(ProductDto::from(&product)))
}

/// Creates a product with its opening stock.
#[utoipa::path(
    post, path = "/v1/products", tag = "catalog",
    request_body = CreateProductRequest,
    responses(
        (status = 201, body = ProductDto),
        (status = 409, description = "The id is taken"),
        (status = 422, description = "Invalid fields; more decimal places than a price's currency has; two prices in one currency"),
    )
)]
pub async fn create_product(
    State(app): State<Orderly>,
    ApiJson(body): ApiJson<CreateProductRequest>,
) -> ApiResult<Response> {
    let product = app.catalog.create_product(body.parse()?).await?;
    Ok(with_location(
        StatusCode::CREATED,
        &format!("/v1/products/{}", product.id),
        Json(ProductDto::from(&product)),
    ))
}

/// Changes a product's name, prices or status; placed orders keep their prices.
#[utoipa::path(
    patch, path = "/v1/products/{id}", tag = "catalog",
    params(("id" = crate::openapi::MerchantId, Path, description = "Product id")),
    request_body = UpdateProductRequest,
    responses(
        (status = 200, body = ProductDto),
        (status = 404, response = NotFound),
        (status = 422, description = "Invalid fields; more decimal places than a price's currency has; two prices in one currency"),
    )
)]
pub async fn update_product(
    State(app): State<Orderly>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateProductRequest>,
) -> ApiResult<Json<ProductDto>> {
    let id = product_id(&id)?;
    let product = app.catalog.update_product(&id, body.parse()?).await?;
    Ok(Json(ProductDto::from(&product)))
}

/// Creates a customer.
#[utoipa::path(
    post, path = "/v1/customers", tag = "customers",
    request_body = CreateCustomerRequest,
    responses(
        (status = 201, body = CustomerDto),
        (status = 409, description = "The id is taken"),
        (status = 422, description = "Invalid fields; an e-mail over 254 bytes of UTF-8"),
    )
)]
pub async fn create_customer(
    State(app): State<Orderly>,
    ApiJson(body): ApiJson<CreateCustomerRequest>,
) -> ApiResult<Response> {
    let (id, email, name) = body.parse()?;
    let customer = app.catalog.create_customer(id, email, name).await?;
    Ok(with_location(
        StatusCode::CREATED,
        &format!("/v1/customers/{}", customer.id),
        Json(CustomerDto::from(&customer)),
    ))
}

/// One customer.
#[utoipa::path(
    get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = crate::openapi::MerchantId, Path, description = "Customer id")),
    responses((status = 200, body = CustomerDto), (status = 404, response = NotFound))
)]
pub async fn get_customer(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerDto>> {
    let parsed = CustomerId::parse(&id).map_err(|_| Problem::not_found("customer", &id))?;
    if !caller.may_touch(&parsed, Permission::CustomersRead) {
        return Err(Problem::not_found("customer", &id).into());
    }
    let id = parsed;
    let customer = app.catalog.customer(&id).await?;
    Ok(Json(CustomerDto::from(&customer)))
}

/// A product's stock: available, reserved, and recent adjustments.
#[utoipa::path(
    get, path = "/v1/inventory/{productId}", tag = "inventory",
    params(("productId" = crate::openapi::MerchantId, Path, description = "Product id")),
    responses((status = 200, body = StockDto), (status = 404, response = NotFound))
)]
pub async fn get_stock(
    State(app): State<Orderly>,
    Path(id): Path<String>,
) -> ApiResult<Json<StockDto>> {
    let id = product_id(&id)?;
    let level = app.catalog.stock(&id).await?;
    let adjustments = app.catalog.adjustments(&id, 20).await?;
    Ok(Json(StockDto::new(&id, level, &adjustments)))
}

/// Adds or removes available units, recording the reason.
#[utoipa::path(
    post, path = "/v1/inventory/{productId}/adjustments", tag = "inventory",
    params(("productId" = crate::openapi::MerchantId, Path, description = "Product id")),
    request_body = AdjustmentRequest,
    responses(
        (status = 201, body = StockDto),
        (status = 404, response = NotFound),
        (status = 409, description = "Would take available stock below zero"),
    )
)]
pub async fn adjust_stock(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AdjustmentRequest>,
) -> ApiResult<Response> {
    let id = product_id(&id)?;
    let level = app
        .catalog
        .adjust_stock(&id, body.delta, body.reason, Actor::caller(&caller.actor()))
        .await?;
    let adjustments = app.catalog.adjustments(&id, 20).await?;
    Ok(with_location(
        StatusCode::CREATED,
        &format!("/v1/inventory/{id}"),
        Json(StockDto::new(&id, level, &adjustments)),
    ))
}

/// A note to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// The note, any script, up to 4 000 characters.
    #[schema(value_type = crate::openapi::NoteText)]
    pub text: String,
}

/// Staff notes on an order, oldest first (never shown to the customer).
#[utoipa::path(
    get, path = "/v1/orders/{id}/notes", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    responses((status = 200, body = [NoteDto]), (status = 404, response = NotFound))
)]
pub async fn order_notes(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<NoteDto>>> {
    let permit = permit::<ReadNotes>(&app, &caller, &id).await?;
    let notes = app.support.notes(&permit).await?;
    Ok(Json(notes.iter().map(NoteDto::from).collect()))
}

/// Adds a staff note to an order.
#[utoipa::path(
    post, path = "/v1/orders/{id}/notes", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    request_body = NoteRequest,
    responses(
        (status = 201, body = NoteDto),
        (status = 404, response = NotFound),
        (status = 422, description = "Invalid fields, or the order holds the most notes it may"),
    )
)]
pub async fn add_note(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NoteRequest>,
) -> ApiResult<Response> {
    let permit = permit::<AddNote>(&app, &caller, &id).await?;
    let note = app.support.add_note(permit, &body.text, None).await?;
    Ok((StatusCode::CREATED, Json(NoteDto::from(&note))).into_response())
}

/// Corrects the shipping address of an order that has not shipped; the old one is kept in a
/// note. Customers may correct their own.
#[utoipa::path(
    put, path = "/v1/orders/{id}/shipping-address", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    request_body = AddressDto,
    responses(
        (status = 200, body = OrderDto),
        (status = 404, response = NotFound),
        (status = 409, description = "Already shipped or ended"),
    )
)]
pub async fn change_address(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddressDto>,
) -> ApiResult<Json<OrderDto>> {
    let permit = permit::<Edit>(&app, &caller, &id).await?;
    let order = app
        .support
        .change_shipping_address(permit, body.into(), None)
        .await?;
    Ok(Json(OrderDto::from(&order).for_caller(&caller)))
}

/// Reports that the carrier cannot deliver to a paid order's shipping address: the order needs
/// attention (it enters the staff's queue, and staff are alerted) and does not ship until its
/// address is corrected with `PUT /v1/orders/{id}/shipping-address`, which settles it.
#[utoipa::path(
    post, path = "/v1/orders/{id}/undeliverable", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    request_body = UndeliverableRequest,
    responses(
        (status = 200, description = "The order needs attention (also for the same report again)", body = OrderDto),
        (status = 404, response = NotFound),
        (status = 409, description = "Not paid, shipped or ended, or waiting for staff about a step that gave up"),
    )
)]
pub async fn report_undeliverable(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UndeliverableRequest>,
) -> ApiResult<Json<OrderDto>> {
    let permit = permit::<Fulfil>(&app, &caller, &id).await?;
    let order = app
        .support
        .report_undeliverable(permit, &body.reason)
        .await?;
    Ok(Json(OrderDto::from(&order).for_caller(&caller)))
}

/// Runs the saga step that gave up on an order once more, with fresh retries.
#[utoipa::path(
    post, path = "/v1/orders/{id}/retry", tag = "orders",
    params(("id" = crate::openapi::Uuid, Path, description = "Order id")),
    responses(
        (status = 202, description = "The step is queued again; the order no longer needs attention", body = OrderDto),
        (status = 404, response = NotFound),
        (status = 409, description = "The order does not need attention"),
    )
)]
pub async fn retry_order(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let permit = permit::<Retry>(&app, &caller, &id).await?;
    let order = app.support.retry(permit, None).await?;
    Ok(accepted(&order, &caller))
}

/// Which escalations.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EscalationQuery {
    /// `true` (default): only those not retried yet; `false`: all.
    open: Option<bool>,
}

/// The "needs attention" queue: orders a saga step gave up on, oldest first. The raw error is
/// shown only to callers with `errors:read`.
#[utoipa::path(
    get, path = "/v1/escalations", tag = "orders",
    params(EscalationQuery),
    responses((status = 200, body = [EscalationDto]))
)]
pub async fn escalations(
    State(app): State<Orderly>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EscalationQuery>,
) -> ApiResult<Json<Vec<EscalationDto>>> {
    let raw = caller.principal.can(Permission::RawErrors);
    let found = app.support.escalations(q.open.unwrap_or(true)).await?;
    Ok(Json(
        found
            .iter()
            .map(|e| EscalationDto::from(e).redacted(raw))
            .collect(),
    ))
}
