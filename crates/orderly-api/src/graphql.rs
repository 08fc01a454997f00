//! GraphQL at `/graphql`: the order graph for services that read it, on the same use cases as
//! REST, and GraphiQL at `GET /graphql` with its assets served from the binary.
//!
//! - The reference query works unchanged: `query { getOrder(id: "…") { id status } }`.
//! - Only what a query selects is loaded. An order is one document; its customer and its lines'
//!   products are fetched through per-request [`DataLoader`]s, so a page of 50 orders costs one
//!   read for the orders, one for all their customers and one for all their products.
//! - Errors carry the REST problem codes in `extensions` (`code`, `type`, `status`,
//!   `fieldErrors`, `requestId`); queries deeper than [`MAX_DEPTH`], costlier than
//!   [`MAX_COMPLEXITY`], with more than [`MAX_ALIASES`] aliases or more than [`MAX_FIELDS`]
//!   fields (`limits`) are refused before anything runs.
//! - The schema's SDL is committed as `docs/schema.graphql`; a test fails when they drift.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, ID, Object, Schema, ServerError, SimpleObject,
};
use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use orderly_auth::{Permission, Principal};
use orderly_core::accounts::Accounts;
use orderly_core::ports::{OrderFilter, Page, PageRequest};
use orderly_core::{AppError, IdempotencyKey, Orderly, Placed};
use orderly_domain::{
    Currency, Customer, CustomerId, Order, OrderLine, OrderStatus, Product, ProductId, ValueError,
};

mod limits;

pub use limits::{INTROSPECTION_QUERY, MAX_ALIASES, MAX_FIELDS};

use crate::auth::{Access, Caller, denied};
use crate::dto::{
    AddressDto, AttentionDto, HistoryDto, MoneyDto, PaymentDto, PlaceOrderRequest, RateDto,
    ShipmentDto,
};
use crate::extract::ApiJson;
use crate::problem::{ApiError, Problem};
use orderly_core::access::{Action, Cancel, Fulfil, Permit, Read, Refund};

/// The schema type.
pub type OrderlySchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest selection accepted. Deep enough for the standard introspection query (GraphiQL's),
/// whose type references nest 15 levels; the order graph itself is at most 7 deep.
pub const MAX_DEPTH: usize = 16;

/// Costliest query accepted: every field costs 1, and a connection multiplies what it selects
/// by `first`. Fifty orders with customers and product names cost about 400.
pub const MAX_COMPLEXITY: usize = 5_000;

/// How long a loader collects keys before it reads them in one call.
const LOADER_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

/// Default page size of connections.
const DEFAULT_FIRST: i32 = 20;

/// Largest page of a connection.
const MAX_FIRST: i32 = 100;

/// Builds the schema; `app` is absent only when the schema is built to print it.
#[must_use]
pub fn schema(app: Option<Orderly>) -> OrderlySchema {
    let mut builder = Schema::build(Query, Mutation, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY);
    if let Some(app) = app {
        builder = builder.data(app);
    }
    builder.finish()
}

/// The schema in SDL, as committed in `docs/schema.graphql`.
#[must_use]
pub fn sdl() -> String {
    schema(None).sdl()
}

fn app<'a>(ctx: &Context<'a>) -> &'a Orderly {
    // The schema is always built with the application before it serves.
    ctx.data_unchecked::<Orderly>()
}

/// A problem as a GraphQL error: the message is the problem's detail, the extensions carry its
/// stable code, type URI, HTTP status, field errors and the request id.
fn graphql_error(problem: &Problem) -> async_graphql::Error {
    async_graphql::Error::new(problem.detail.clone()).extend_with(|_, e| {
        e.set("code", problem.code.clone());
        e.set("type", problem.kind.clone());
        e.set("status", i32::from(problem.status));
        if let Ok(fields) = serde_json::to_value(&problem.errors)
            .map_err(|_| ())
            .and_then(|v| async_graphql::Value::from_json(v).map_err(|_| ()))
            && !problem.errors.is_empty()
        {
            e.set("fieldErrors", fields);
        }
        if let Some(id) = &problem.request_id {
            e.set("requestId", id.clone());
        }
    })
}

/// A use case's error as a GraphQL error with its problem code. (Never rely on `?` alone for
/// an [`AppError`]: async-graphql converts any displayable error, dropping the code.)
fn gql(e: AppError) -> async_graphql::Error {
    graphql_error(&Problem::from(e))
}

fn invalid(errors: Vec<ValueError>) -> async_graphql::Error {
    graphql_error(&Problem::validation(errors))
}

/// Turns a use case's "not found" into GraphQL's `null`.
fn found<T>(result: Result<T, AppError>) -> async_graphql::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(AppError::NotFound { .. }) => Ok(None),
        Err(e) => Err(gql(e)),
    }
}

/// Batches the lookups of one request: every customer and product asked for while one level of
/// the query resolves is read in one storage call.
pub struct CatalogLoader(Orderly);

impl Loader<ProductId> for CatalogLoader {
    type Value = Product;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ProductId]) -> Result<HashMap<ProductId, Product>, Self::Error> {
        let found = self.0.catalog.products(keys).await.map_err(gql)?;
        Ok(found.into_iter().map(|p| (p.id.clone(), p)).collect())
    }
}

impl Loader<CustomerId> for CatalogLoader {
    type Value = Customer;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[CustomerId],
    ) -> Result<HashMap<CustomerId, Customer>, Self::Error> {
        let found = self.0.catalog.customers(keys).await.map_err(gql)?;
        Ok(found.into_iter().map(|c| (c.id.clone(), c)).collect())
    }
}

/// The request's loader: it batches and remembers what it read for the rest of the request.
type RequestLoader = DataLoader<CatalogLoader, HashMapCache>;

fn loader<'a>(ctx: &Context<'a>) -> &'a RequestLoader {
    // Every request gets its loader in `execute`.
    ctx.data_unchecked::<RequestLoader>()
}

/// True if the selection asks for `path` under each node of a connection.
fn selects(ctx: &Context<'_>, path: &[&str]) -> bool {
    ["edges", "nodes"].iter().any(|root| {
        let mut look = ctx.look_ahead().field(root);
        if *root == "edges" {
            look = look.field("node");
        }
        path.iter().fold(look, |l, name| l.field(name)).exists()
    })
}

/// Reads, in one call each, the customers and products that a page of orders will ask for —
/// only if the query selects them. The loader's timing window batches most lookups anyway;
/// this makes the cost of a page a fixed three reads however long its resolution takes.
async fn prefetch(ctx: &Context<'_>, orders: &[Order]) {
    let loader = loader(ctx);
    if selects(ctx, &["customer"]) {
        let ids: Vec<CustomerId> = orders.iter().map(|o| o.customer_id.clone()).collect();
        // A failure shows where the field is resolved; here it only means no head start.
        let _ = loader.load_many(ids).await;
    }
    if selects(ctx, &["lines", "product"]) {
        let mut ids: Vec<ProductId> = Vec::new();
        for order in orders {
            ids.extend(order.lines.iter().map(|l| l.product_id.clone()));
        }
        let _ = loader.load_many(ids).await;
    }
}

/// Where a connection page starts: a store cursor (or the beginning) and how many of that
/// page's items to skip. Rendered as `<store cursor>~<skip>`; clients treat it as opaque.
#[derive(Debug, PartialEq, Eq)]
struct Position {
    page: Option<String>,
    skip: u32,
}

impl Position {
    fn parse(text: &str) -> Result<Position, ValueError> {
        let bad = || ValueError::new("after", "is not a cursor this server issued");
        let (page, skip) = text.rsplit_once('~').ok_or_else(bad)?;
        let skip: u32 = skip.parse().map_err(|_| bad())?;
        if skip > MAX_FIRST.unsigned_abs() {
            return Err(bad());
        }
        Ok(Position {
            page: (!page.is_empty()).then(|| page.to_owned()),
            skip,
        })
    }

    fn render(page: Option<&str>, skip: u32) -> String {
        format!("{}~{skip}", page.unwrap_or(""))
    }
}

/// Reads one Relay page through a store's cursor pages: `first` items after `after`.
async fn connection<T, N, F>(
    first: Option<i32>,
    after: Option<String>,
    fetch: impl FnOnce(PageRequest) -> F,
    node: impl Fn(T) -> N,
) -> async_graphql::Result<Connection<String, N>>
where
    N: async_graphql::OutputType,
    F: Future<Output = Result<Page<T>, AppError>>,
{
    let first = first.unwrap_or(DEFAULT_FIRST);
    if !(1..=MAX_FIRST).contains(&first) {
        return Err(invalid(vec![ValueError::new(
            "first",
            format!("must be 1 to {MAX_FIRST}"),
        )]));
    }
    let start = match after.as_deref().map(Position::parse).transpose() {
        Ok(p) => p.unwrap_or(Position {
            page: None,
            skip: 0,
        }),
        Err(e) => return Err(invalid(vec![e])),
    };
    let first = first.unsigned_abs();
    let page = fetch(PageRequest {
        limit: start.skip + first,
        cursor: start.page.clone(),
    })
    .await
    .map_err(|e| match e {
        AppError::InvalidCursor => invalid(vec![ValueError::new(
            "after",
            "is not a cursor this server issued",
        )]),
        e => gql(e),
    })?;
    let has_next = page.next_cursor.is_some();
    let mut connection = Connection::new(after.is_some(), has_next);
    let items: Vec<T> = page.items.into_iter().skip(start.skip as usize).collect();
    let count = items.len();
    for (i, item) in items.into_iter().enumerate() {
        let cursor = match &page.next_cursor {
            Some(next) if i + 1 == count => Position::render(Some(next), 0),
            _ => Position::render(
                start.page.as_deref(),
                start.skip + u32::try_from(i + 1).unwrap_or(u32::MAX),
            ),
        };
        connection.edges.push(Edge::new(cursor, node(item)));
    }
    Ok(connection)
}

/// The cost of a connection field: what each node selects, `first` times.
fn connection_cost(first: Option<i32>, child: usize) -> usize {
    let first = first.unwrap_or(DEFAULT_FIRST).clamp(1, MAX_FIRST);
    usize::try_from(first).unwrap_or(1).saturating_mul(child) + 1
}

/// Which orders `orders` lists.
#[derive(Debug, Default, async_graphql::InputObject)]
pub struct OrderFilterInput {
    /// Only orders in this status: `placed`, `reserved`, `paid`, `shipped`, `delivered`,
    /// `rejected`, `canceled`.
    pub status: Option<String>,
    /// Only this customer's orders.
    pub customer_id: Option<ID>,
}

impl OrderFilterInput {
    fn parse(self) -> Result<OrderFilter, Vec<ValueError>> {
        let mut errors = Vec::new();
        let status = self.status.as_deref().and_then(|s| {
            let parsed = OrderStatus::parse(s);
            if parsed.is_none() {
                let names: Vec<_> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
                errors.push(ValueError::new(
                    "filter.status",
                    format!("must be one of {}", names.join(", ")),
                ));
            }
            parsed
        });
        let customer_id = self.customer_id.and_then(|id| {
            CustomerId::parse(&id)
                .map_err(|e| errors.push(e.within("filter")))
                .ok()
        });
        if errors.is_empty() {
            Ok(OrderFilter {
                status,
                customer_id,
            })
        } else {
            Err(errors)
        }
    }
}

/// The read side.
pub struct Query;

/// Reads: orders, products, customers.
#[Object]
impl Query {
    /// One order, or null if there is none with this id. The reference designs' query.
    async fn get_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<OrderNode>> {
        // Someone else's order is as absent as one that does not exist.
        match caller(ctx)
            .policy()
            .order::<Read>(&app(ctx).orders, &id)
            .await
        {
            Ok(permit) => Ok(Some(OrderNode(permit.into_order()))),
            Err(AppError::NotFound { .. }) => Ok(None),
            Err(e) => Err(gql(e)),
        }
    }

    /// Orders, newest first, as a Relay connection.
    #[graphql(complexity = "connection_cost(first, child_complexity)")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        filter: Option<OrderFilterInput>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "`endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, OrderNode>> {
        let mut filter = filter.unwrap_or_default().parse().map_err(invalid)?;
        filter.customer_id = caller(ctx)
            .policy()
            .orders_of(filter.customer_id)
            .map_err(gql)?;
        let app = app(ctx);
        connection(
            first,
            after,
            |page| async move {
                let page = app.orders.list_orders(&filter, &page).await?;
                prefetch(ctx, &page.items).await;
                Ok(page)
            },
            OrderNode,
        )
        .await
    }

    /// One product, or null.
    async fn product(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<ProductNode>> {
        let Ok(id) = ProductId::parse(&id) else {
            return Ok(None);
        };
        Ok(found(app(ctx).catalog.product(&id).await)?.map(ProductNode))
    }

    /// Products by id, as a Relay connection.
    #[graphql(complexity = "connection_cost(first, child_complexity)")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "`endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, ProductNode>> {
        let app = app(ctx);
        connection(
            first,
            after,
            |page| async move { app.catalog.list_products(&page).await },
            ProductNode,
        )
        .await
    }

    /// One customer, or null.
    async fn customer(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<CustomerNode>> {
        let caller = caller(ctx);
        if !Access::customers_or(Permission::CustomersRead).allows(&caller.principal) {
            return Err(gql(denied(
                &caller.principal,
                "reading customers needs customers:read",
            )));
        }
        let Ok(id) = CustomerId::parse(&id) else {
            return Ok(None);
        };
        if !caller.may_touch(&id, Permission::CustomersRead) {
            return Ok(None);
        }
        Ok(found(app(ctx).catalog.customer(&id).await)?.map(CustomerNode))
    }
}

fn caller<'a>(ctx: &Context<'a>) -> &'a Caller {
    static ANONYMOUS: std::sync::OnceLock<Caller> = std::sync::OnceLock::new();
    ctx.data_opt::<Caller>().unwrap_or_else(|| {
        ANONYMOUS.get_or_init(|| Caller {
            principal: Principal::Anonymous,
            source: "unknown".into(),
        })
    })
}

fn accounts<'a>(ctx: &Context<'a>) -> &'a Arc<Accounts> {
    ctx.data_unchecked::<Arc<Accounts>>()
}

/// Leave to do `A` to the order `id` ([`orderly_core::access::Policy::order`]).
async fn permit<A: Action>(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<Permit<A>> {
    caller(ctx)
        .policy()
        .order::<A>(&app(ctx).orders, id)
        .await
        .map_err(gql)
}

/// Records a staff or key mutation in the audit log, as the REST routes' audit layer does.
async fn audit(ctx: &Context<'_>, mutation: &str, id: &ID, ok: bool) {
    caller(ctx)
        .policy()
        .audit(
            accounts(ctx),
            &format!("graphql {mutation}"),
            Some(id.as_str()),
            ok,
        )
        .await;
}

/// What `placeOrder` answers.
#[derive(SimpleObject)]
pub struct PlacedOrder {
    /// The order placed, or the one the idempotency key placed first.
    order: OrderNode,
    /// True when the idempotency key had been used with the same request: nothing new was made.
    replayed: bool,
}

/// The write side: the same use cases as `POST /v1/orders` and friends.
pub struct Mutation;

/// Writes: the same use cases as `POST /v1/orders` and its siblings.
#[Object]
impl Mutation {
    /// Places an order. With an idempotency key, a repeat of the same request returns the first
    /// order (`replayed: true`); the same key with another request is refused.
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        input: PlaceOrderRequest,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<PlacedOrder> {
        let key = idempotency_key
            .as_deref()
            .map(|k| IdempotencyKey::parse(k).map_err(|e| invalid(vec![e])))
            .transpose()?;
        let request = input.parse().map_err(invalid)?;
        let permit = caller(ctx)
            .policy()
            .place_for(accounts(ctx), &request.customer_id)
            .map_err(gql)?;
        let placed = app(ctx)
            .orders
            .place_order(permit, request, key)
            .await
            .map_err(gql)?;
        let (order, replayed) = match placed {
            Placed::New(o) => (o, false),
            Placed::Replay(o) => (o, true),
        };
        Ok(PlacedOrder {
            order: OrderNode(order),
            replayed,
        })
    }

    /// Cancels an order that has not shipped: stock is released, a captured payment refunded.
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> async_graphql::Result<OrderNode> {
        let permit = permit::<Cancel>(ctx, &id).await?;
        let order = app(ctx).orders.cancel(permit, reason).await.map_err(gql);
        audit(ctx, "cancelOrder", &id, order.is_ok()).await;
        Ok(OrderNode(order?))
    }

    /// Gives back part of a captured payment (`amount` a decimal string in the order's
    /// currency): the payment step refunds it and the customer is told. Without
    /// `orders:refund-any`, one order's refunds stay within the shop's refund limit. With
    /// `expectedVersion`, only if the order is still at that version (a retry refunds once).
    async fn refund_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        amount: String,
        currency: String,
        reason: String,
        expected_version: Option<u32>,
    ) -> async_graphql::Result<OrderNode> {
        let currency = orderly_domain::Currency::parse(&currency)
            .map_err(|e| gql(AppError::invalid("currency", e.to_string())))?;
        let amount = orderly_domain::Money::parse(&amount, currency)
            .map_err(|e| gql(AppError::invalid("amount", e.to_string())))?;
        let permit = permit::<Refund>(ctx, &id).await?;
        let permit = match expected_version {
            Some(v) => permit.expecting(v),
            None => permit,
        };
        let order = app(ctx)
            .orders
            .refund(permit, amount, &reason)
            .await
            .map_err(gql);
        audit(ctx, "refundOrder", &id, order.is_ok()).await;
        Ok(OrderNode(order?))
    }

    /// Records the hand-over to a carrier.
    async fn ship_order(
        &self,
        ctx: &Context<'_>,
        id: ID,
        carrier: String,
        tracking_number: String,
    ) -> async_graphql::Result<OrderNode> {
        let permit = permit::<Fulfil>(ctx, &id).await?;
        let order = app(ctx)
            .orders
            .ship(permit, carrier, tracking_number)
            .await
            .map_err(gql);
        audit(ctx, "shipOrder", &id, order.is_ok()).await;
        Ok(OrderNode(order?))
    }

    /// Records the delivery.
    async fn deliver_order(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<OrderNode> {
        let permit = permit::<Fulfil>(ctx, &id).await?;
        let order = app(ctx).orders.deliver(permit).await.map_err(gql);
        audit(ctx, "deliverOrder", &id, order.is_ok()).await;
        Ok(OrderNode(order?))
    }
}

/// An order.
pub struct OrderNode(Order);

/// An order: lines priced when placed, its history, payment and shipments.
#[Object(name = "Order")]
impl OrderNode {
    /// Order id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// `placed`, `reserved`, `paid`, `shipped`, `delivered`, `rejected` or `canceled`.
    async fn status(&self) -> Option<&str> {
        Some(self.0.status.as_str())
    }

    /// The buyer's id.
    async fn customer_id(&self) -> ID {
        ID(self.0.customer_id.to_string())
    }

    /// The buyer, read in one batch with the other orders' buyers.
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<CustomerNode>> {
        if !caller(ctx).may_touch(&self.0.customer_id, Permission::CustomersRead) {
            return Ok(None);
        }
        let customer = loader(ctx).load_one(self.0.customer_id.clone()).await?;
        Ok(customer.map(CustomerNode))
    }

    /// ISO 4217 currency of every amount.
    async fn currency(&self) -> &str {
        self.0.currency.code()
    }

    /// Lines with the prices they were sold at.
    async fn lines(&self) -> Vec<LineNode> {
        self.0.lines.iter().cloned().map(LineNode).collect()
    }

    /// Units over all lines.
    async fn item_count(&self) -> u64 {
        self.0
            .lines
            .iter()
            .map(|l| u64::from(l.quantity.get()))
            .sum()
    }

    /// Sum of the lines.
    async fn total(&self) -> MoneyDto {
        self.0.total.into()
    }

    /// Where it goes.
    async fn shipping_address(&self) -> Option<AddressDto> {
        self.0.shipping_address.as_ref().map(AddressDto::from)
    }

    /// The rate its prices were converted with from the base currency, if any were.
    async fn exchange_rate(&self) -> Option<RateDto> {
        self.0.exchange_rate.as_ref().map(Into::into)
    }

    /// Why it was rejected or canceled.
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }

    /// Set when a saga step ran out of retries and staff must look.
    async fn needs_attention(&self, ctx: &Context<'_>) -> Option<AttentionDto> {
        let raw = caller(ctx).principal.can(Permission::RawErrors);
        self.0
            .needs_attention
            .as_ref()
            .map(|a| AttentionDto::from(a).redacted(raw))
    }

    /// The captured payment and its refund.
    async fn payment(&self) -> Option<PaymentDto> {
        self.0.payment.as_ref().map(PaymentDto::from)
    }

    /// Parcels handed to carriers.
    async fn shipments(&self) -> Vec<ShipmentDto> {
        self.0.shipment.iter().map(ShipmentDto::from).collect()
    }

    /// Every change, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> Vec<HistoryDto> {
        let raw = caller(ctx).principal.can(Permission::RawErrors);
        self.0
            .history
            .iter()
            .map(|h| {
                let entry: HistoryDto = h.into();
                entry.redacted(raw)
            })
            .collect()
    }

    /// +1 on every change.
    async fn version(&self) -> u32 {
        self.0.version
    }

    /// Placed at (RFC 3339).
    async fn created_at(&self) -> String {
        self.0.created_at.to_rfc3339()
    }

    /// Last change (RFC 3339).
    async fn updated_at(&self) -> String {
        self.0.updated_at.to_rfc3339()
    }
}

/// A line of an order.
pub struct LineNode(OrderLine);

/// A line of an order.
#[Object(name = "OrderLine")]
impl LineNode {
    /// The product's id.
    async fn product_id(&self) -> ID {
        ID(self.0.product_id.to_string())
    }

    /// The product as it is now (null if it was deleted), read in one batch with the others.
    async fn product(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ProductNode>> {
        let product = loader(ctx).load_one(self.0.product_id.clone()).await?;
        Ok(product.map(ProductNode))
    }

    /// The product's name when ordered.
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    /// How many.
    async fn quantity(&self) -> u32 {
        self.0.quantity.get()
    }

    /// Price of one when ordered.
    async fn unit_price(&self) -> MoneyDto {
        self.0.unit_price.into()
    }

    /// `unitPrice` × `quantity`.
    async fn line_total(&self) -> MoneyDto {
        self.0.line_total.into()
    }
}

/// A product of the catalog.
pub struct ProductNode(Product);

/// A product of the catalog.
#[Object(name = "Product")]
impl ProductNode {
    /// Merchant id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Name, in any script.
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    /// One price per currency.
    async fn prices(&self) -> Vec<MoneyDto> {
        self.0
            .prices
            .as_slice()
            .iter()
            .map(|m| (*m).into())
            .collect()
    }

    /// The price in one currency, or null if the product has none in it.
    async fn price(&self, currency: String) -> async_graphql::Result<Option<MoneyDto>> {
        let currency = Currency::parse(&currency)
            .map_err(|e| invalid(vec![ValueError::new("currency", e.to_string())]))?;
        Ok(self
            .0
            .prices
            .as_slice()
            .iter()
            .find(|m| m.currency() == currency)
            .map(|m| (*m).into()))
    }

    /// On sale.
    async fn active(&self) -> bool {
        self.0.active
    }

    /// +1 on every change.
    async fn version(&self) -> u32 {
        self.0.version
    }

    /// Created (RFC 3339).
    async fn created_at(&self) -> String {
        self.0.created_at.to_rfc3339()
    }

    /// Last change (RFC 3339).
    async fn updated_at(&self) -> String {
        self.0.updated_at.to_rfc3339()
    }
}

/// A buyer.
pub struct CustomerNode(Customer);

/// A buyer.
#[Object(name = "Customer")]
impl CustomerNode {
    /// The shop's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// E-mail.
    async fn email(&self) -> &str {
        self.0.email.as_str()
    }

    /// Name, in any script.
    async fn name(&self) -> &str {
        self.0.name.as_str()
    }

    /// Created (RFC 3339).
    async fn created_at(&self) -> String {
        self.0.created_at.to_rfc3339()
    }
}

/// Gives validation failures (which carry no code of their own) a stable one and a message that
/// says what to do.
fn explain(error: &mut ServerError) {
    if error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
    {
        return;
    }
    let (code, message) = match error.message.as_str() {
        "Query is nested too deep." => (
            "query-too-deep",
            format!("the query nests deeper than {MAX_DEPTH} levels; select less at once"),
        ),
        "Query is too complex." => (
            "query-too-complex",
            format!(
                "the query would cost more than {MAX_COMPLEXITY} (each field 1, connections × first); ask for fewer items or fields, and page"
            ),
        ),
        _ => ("invalid-query", error.message.clone()),
    };
    error.message = message;
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}

/// `POST /graphql`: one GraphQL request as JSON (`query`, `operationName`, `variables`).
pub async fn execute(
    State(app): State<Orderly>,
    Extension(schema): Extension<OrderlySchema>,
    Extension(accounts): Extension<Arc<Accounts>>,
    caller: Caller,
    ApiJson(mut request): ApiJson<async_graphql::Request>,
) -> Json<async_graphql::Response> {
    if let Some(refused) = too_large(&mut request) {
        return Json(async_graphql::Response::from_errors(vec![refused]));
    }
    // Keys asked for within LOADER_WINDOW of the first are read in one call; one level of a
    // query asks for all of its keys well inside it.
    let loader = DataLoader::with_cache(CatalogLoader(app), tokio::spawn, HashMapCache::default())
        .delay(LOADER_WINDOW);
    let request = request.data(loader).data(caller).data(accounts);
    let mut response = schema.execute(request).await;
    response.errors.iter_mut().for_each(explain);
    Json(response)
}

/// The error for a request that selects too many fields or aliases, counted with fragments
/// expanded; `None` when it is within the limits or does not parse (execution then reports the
/// syntax error as usual).
fn too_large(request: &mut async_graphql::Request) -> Option<ServerError> {
    let size = limits::measure(request.parsed_query().ok()?);
    let (code, message) = if size.aliases > MAX_ALIASES {
        (
            "query-too-many-aliases",
            format!(
                "the query has {} aliased fields, more than {MAX_ALIASES}; fetch many orders with orders(first: …) and page",
                size.aliases
            ),
        )
    } else if size.fields > MAX_FIELDS {
        (
            "query-too-large",
            format!(
                "the query selects {} fields (fragments counted where they are used), more than {MAX_FIELDS}; select fewer fields, or split it",
                size.fields
            ),
        )
    } else {
        return None;
    };
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    Some(error)
}

const GRAPHIQL_HTML: &str = include_str!("../assets/graphiql/index.html");

/// `GET /graphql`: GraphiQL, to explore the schema and try queries.
pub async fn graphiql() -> Html<&'static str> {
    Html(GRAPHIQL_HTML)
}

/// GraphiQL's files, gzipped at build time; `(name, content type, gzipped bytes)`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/graphiql.js.gz"),
    ),
    (
        "graphiql.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/graphiql/graphiql.css.gz"),
    ),
    (
        "react.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/react.js.gz"),
    ),
    (
        "react-dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/graphiql/react-dom.js.gz"),
    ),
];

/// `GET /graphql/assets/{file}`: served gzipped to clients that accept it (every browser), and
/// unpacked for the rest.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, content_type, gz)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return Problem::not_found("asset", &file).into_response();
    };
    let gzip_ok = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = if gzip_ok {
        let mut r = (*gz).into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        let mut plain = Vec::new();
        if let Err(e) =
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(*gz), &mut plain)
        {
            return ApiError::from(AppError::Internal(format!("asset {file}: {e}")))
                .into_response();
        }
        plain.into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    *response.status_mut() = StatusCode::OK;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_sdl_is_the_schema() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema.graphql");
        let now = sdl();
        if std::env::var_os("ORDERLY_UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &now).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == now,
            "docs/schema.graphql differs from the schema in the code; if the change is meant, \
             run `ORDERLY_UPDATE_SCHEMA=1 cargo test -p orderly-api the_committed_sdl` and commit \
             the file"
        );
    }

    #[test]
    fn the_reference_fields_are_in_the_schema() {
        let sdl = sdl();
        assert!(sdl.contains("getOrder(id: ID!): Order\n"), "{sdl}");
        assert!(sdl.contains("\tid: ID!\n"));
        assert!(sdl.contains("\tstatus: String\n"));
    }

    #[test]
    fn cursors_render_and_parse_back() {
        for (page, skip) in [(None, 0), (Some("o17"), 3), (Some("p001"), 100)] {
            let text = Position::render(page, skip);
            assert_eq!(
                Position::parse(&text).unwrap(),
                Position {
                    page: page.map(str::to_owned),
                    skip
                }
            );
        }
        for bad in ["", "o17", "o17~", "o17~x", "~-1", "~101"] {
            assert!(Position::parse(bad).is_err(), "{bad}");
        }
    }
}
