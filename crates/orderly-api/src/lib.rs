//! Orderly's HTTP API.
//!
//! # Layout
//! - [`route_table`]: every route, declared once — who may call it and its handler, whose
//!   `#[utoipa::path]` gives its method, its path and its documentation (its `route!` rows).
//!   The router, `orderly routes`, the OpenAPI document and the authorization matrix test all
//!   read it.
//! - [`router`]: every route, the body limit, the request context and the problem+json fallbacks.
//! - [`auth`]: the caller of each request, the per-route [`Access`] guard, the audit of staff
//!   changes.
//! - `admin`: the staff panel under `/admin` — server-rendered pages and plain form posts over
//!   the same use cases and access policy.
//! - `account_routes`: sign-up, log-in, tokens, profile, staff users, API keys, audit log.
//! - `routes`: the REST handlers under `/v1` — thin: parse, call one use case, map the result.
//! - `carts`: carts, checkout and exchange rates under `/v1`.
//! - `notifications`: failed notifications (list, retry) and notification preferences.
//! - [`graphql`]: the same use cases as a GraphQL schema at `/graphql`, with GraphiQL.
//! - `dto`: the wire format (camelCase JSON) and its parsing into domain values.
//!   Who may do what to an order is decided by `orderly_core::access::Policy`: the handlers
//!   ask it for the permit each use case takes ([`auth::Caller::policy`]).
//! - [`problem`]: RFC 9457 errors with stable `type`s; the one error shape of the API.
//! - `extract`: JSON and query extractors whose rejections are problems.
//! - `request`: the request id and the per-request tracing span.
//! - [`server`]: the listener of `orderly serve`: time limits on every connection, a bound on how
//!   many are open, and the body layer that reads each body within its deadline.
//! - [`ApiDoc`]: the OpenAPI 3.1 document: the operations of the routes of [`route_table`], with
//!   what the table knows added by [`openapi`] (security, the answers every route of a kind
//!   gives) and the rules of request values as schemas; served at `/openapi.json` and rendered
//!   at `/docs` without any CDN.
//! - `/metrics`: storage calls by operation (Prometheus text), when the server counts them.
#![forbid(unsafe_code)]

pub mod account_routes;
mod admin;
pub mod auth;
pub mod carts;
pub mod dto;
pub mod extract;
pub mod graphql;
pub mod notifications;
pub mod openapi;
pub mod problem;
pub mod request;
pub mod routes;
pub mod server;

use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use orderly_core::Orderly;
use orderly_core::accounts::Accounts;
use orderly_core::metered::StorageMetrics;
use serde::Serialize;
use std::sync::Arc;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem, Paths};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::UtoipaMethodRouter;

pub use crate::auth::Access;
use crate::openapi::RouteRules;
use crate::problem::Problem;

/// The OpenAPI document: its info, tags and shared schemas here; its paths are the operations
/// of [`route_table`], which [`RouteRules`] adds with what the table knows of each route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orderly",
        description = "Order management for e-commerce: orders carried from placed to delivered by an event-driven saga, with stock that never goes negative and exact money.\n\nEvery error is `application/problem+json` (RFC 9457) with a stable `type`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem, problem::FieldError)),
    modifiers(&RouteRules),
    tags(
        (name = "orders", description = "Place, read and move orders through their life"),
        (name = "catalog", description = "Products and their prices"),
        (name = "customers", description = "Buyers"),
        (name = "inventory", description = "Stock levels and manual adjustments"),
        (name = "carts", description = "Carts priced in the shopper's currency, and checkout; every call but the first carries the cart's `Cart-Token`"),
        (name = "rates", description = "Exchange rates from the base currency, for products without a price in the buyer's currency"),
        (name = "accounts", description = "Sign-up, log-in and tokens, profiles, staff users, API keys and the audit log. Every other route says who may call it; send `Authorization: Bearer <access token or API key>`"),
        (name = "notifications", description = "Failed notifications for staff, and customers' notification preferences"),
        (name = "graphql", description = "The same use cases as a GraphQL schema"),
        (name = "health", description = "Liveness and readiness"),
        (name = "openapi", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Liveness.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` or `ready`.
    status: &'static str,
    /// Saga jobs waiting (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_jobs: Option<u64>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        pending_jobs: None,
    })
}

/// The process can serve: its database answers and can take writes (on the embedded database:
/// its disk has room and a probe write commits).
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, body = Health)))]
pub async fn readyz(State(app): State<Orderly>) -> Response {
    if let Err(e) = app.readiness().check_ready().await {
        return Problem::from(orderly_core::AppError::Unavailable(format!(
            "not ready: {e}"
        )))
        .into_response();
    }
    match app.jobs().pending_jobs().await {
        Ok(n) => Json(Health {
            status: "ready",
            pending_jobs: Some(n),
        })
        .into_response(),
        Err(e) => Problem::from(orderly_core::AppError::Unavailable(e.to_string())).into_response(),
    }
}

/// `GET /metrics`: storage calls, failures and time by operation, and saga jobs waiting, in the
/// Prometheus text format.
async fn metrics(
    State(app): State<Orderly>,
    storage: Option<Extension<Arc<StorageMetrics>>>,
) -> Response {
    let mut text = storage
        .map(|Extension(m)| m.render_prometheus())
        .unwrap_or_default();
    if let Ok(n) = app.jobs().pending_jobs().await {
        text.push_str(&format!(
            "# HELP orderly_saga_jobs_pending Saga jobs waiting to run.\n# TYPE orderly_saga_jobs_pending gauge\norderly_saga_jobs_pending {n}\n"
        ));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// This document, OpenAPI 3.1.
#[utoipa::path(get, path = "/openapi.json", tag = "openapi", responses(
    (status = 200, description = "The OpenAPI document", body = Object),
))]
pub async fn openapi_json() -> Response {
    // Built once: it depends on nothing but the code.
    static DOCUMENT: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    match DOCUMENT.get_or_init(|| ApiDoc::openapi().to_json().map_err(|e| e.to_string())) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        Err(e) => Problem::from(orderly_core::AppError::Internal(e.clone())).into_response(),
    }
}

const DOCS_HTML: &str = include_str!("../assets/docs.html");

async fn docs_page() -> Html<String> {
    let rows: String = problem::PROBLEM_TYPES
        .iter()
        .map(|(code, status, title)| {
            format!("<tr id=\"{code}\"><td><code>{code}</code></td><td>{status}</td><td>{title}</td></tr>")
        })
        .collect();
    Html(DOCS_HTML.replace("<!--PROBLEM_ROWS-->", &rows))
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such route; the API lives under /v1 and is described at /docs",
    )
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this route does not accept that method; see /docs",
    )
}

/// Maps the body-limit's plain 413 onto a problem.
async fn problem_for_plain_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    // A problem already, or a page of the staff panel, which answers people in HTML.
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == problem::PROBLEM_JSON || v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    // An error answered by a layer or extractor outside our handlers (a path that is not
    // UTF-8, the body limit, a caught panic): give it the one error shape too.
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return extract::too_large().into_response();
    }
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    let problem = match status {
        StatusCode::NOT_FOUND => Problem::new(status, "not-found", "Not found", text),
        StatusCode::METHOD_NOT_ALLOWED => {
            Problem::new(status, "method-not-allowed", "Method not allowed", text)
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            Problem::new(status, "unsupported-media-type", "Send JSON", text)
        }
        s if s.is_server_error() => {
            tracing::error!(status = s.as_u16(), body = %text, "answering 5xx");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "something went wrong on our side; quote the requestId when reporting it",
            )
        }
        _ => Problem::bad_request(if text.is_empty() {
            status.to_string()
        } else {
            text
        }),
    };
    problem.into_response()
}

/// One declared route: its method, its path, who may call it, and what the OpenAPI document
/// says of it.
pub struct RouteSpec {
    /// The method.
    pub method: Method,
    /// The path, with `{param}` placeholders.
    pub path: String,
    /// Who may call it at all.
    pub access: Access,
    handler: MethodRouter<Orderly>,
    /// The route's operation and the schemas it names, for [`ApiDoc`]; `None` for a route the
    /// document leaves out (a page, GraphiQL's files, the metrics text, a webhook).
    openapi: Option<Documented>,
}

/// A route's part of the OpenAPI document, before [`openapi::RouteRules`] adds what its
/// [`Access`] and its kind imply.
struct Documented {
    /// The route's one operation, under its path.
    paths: Paths,
    /// The schemas the operation names, by name.
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl RouteSpec {
    /// A route the OpenAPI document leaves out (or describes with [`RouteSpec::described`]).
    pub fn new(
        method: Method,
        path: impl Into<String>,
        access: Access,
        handler: MethodRouter<Orderly>,
    ) -> Self {
        RouteSpec {
            method,
            path: path.into(),
            access,
            handler,
            openapi: None,
        }
    }

    /// A route whose method, path and documentation are its handler's `#[utoipa::path]`, as
    /// [`utoipa_axum::routes!`] collects them; written with `route!`.
    fn documented(access: Access, (schemas, paths, handler): UtoipaMethodRouter<Orderly>) -> Self {
        // One handler's attribute names one path and, as every one here does, one method; the
        // document test fails for a route whose table row and operation disagree.
        let (path, method) = paths
            .paths
            .iter()
            .next()
            .map(|(path, item)| (path.clone(), methods(item).next().unwrap_or_default()))
            .unwrap_or_default();
        RouteSpec {
            method,
            path,
            access,
            handler,
            openapi: Some(Documented { paths, schemas }),
        }
    }

    /// The route, described in the OpenAPI document by `operation`: for a handler without a
    /// `#[utoipa::path]` (GraphQL's, whose schema lives with async-graphql).
    #[must_use]
    pub fn described(mut self, operation: Operation) -> Self {
        let mut paths = Paths::new();
        paths.add_path_operation(&self.path, vec![http_method(&self.method)], operation);
        self.openapi = Some(Documented {
            paths,
            schemas: Vec::new(),
        });
        self
    }
}

/// The methods `item` has an operation for.
fn methods(item: &PathItem) -> impl Iterator<Item = Method> {
    [
        (Method::GET, item.get.is_some()),
        (Method::PUT, item.put.is_some()),
        (Method::POST, item.post.is_some()),
        (Method::DELETE, item.delete.is_some()),
        (Method::OPTIONS, item.options.is_some()),
        (Method::HEAD, item.head.is_some()),
        (Method::PATCH, item.patch.is_some()),
        (Method::TRACE, item.trace.is_some()),
    ]
    .into_iter()
    .filter_map(|(method, present)| present.then_some(method))
}

/// `method` as the document spells it (the table has no other methods than these).
fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::PUT => HttpMethod::Put,
        Method::POST => HttpMethod::Post,
        Method::DELETE => HttpMethod::Delete,
        Method::OPTIONS => HttpMethod::Options,
        Method::HEAD => HttpMethod::Head,
        Method::PATCH => HttpMethod::Patch,
        Method::TRACE => HttpMethod::Trace,
        _ => HttpMethod::Get,
    }
}

/// `route!(access, handler)`: the route of `handler`, which `access` may call. Its method, its
/// path, its parameters, bodies and own problems are the handler's `#[utoipa::path]`, written
/// once above the handler; the problems every route of its kind can answer are added by
/// [`openapi::RouteRules`].
macro_rules! route {
    ($access:expr, $handler:path) => {
        RouteSpec::documented($access, utoipa_axum::routes!($handler))
    };
}

/// Every route of the API with who may call it: the one place routes are declared. The router
/// is built from it, `orderly routes` prints it, the OpenAPI document is made of its
/// operations, and the authorization matrix test walks it.
#[must_use]
pub fn route_table() -> Vec<RouteSpec> {
    use Method as M;
    use orderly_auth::Permission as P;
    let public = Access::PUBLIC;
    let customers = Access::CUSTOMERS;
    let (staff, customers_or) = (Access::staff, Access::customers_or);
    vec![
        route!(public, account_routes::register),
        route!(public, account_routes::login),
        route!(public, account_routes::staff_login),
        route!(public, account_routes::refresh),
        route!(public, account_routes::logout),
        route!(customers, account_routes::profile),
        route!(customers, account_routes::update_profile),
        route!(staff(P::UsersManage), account_routes::list_staff),
        route!(staff(P::UsersManage), account_routes::create_staff),
        route!(staff(P::UsersManage), account_routes::update_staff),
        route!(staff(P::KeysManage), account_routes::list_keys),
        route!(staff(P::KeysManage), account_routes::create_key),
        route!(staff(P::KeysManage), account_routes::revoke_key),
        route!(staff(P::AuditRead), account_routes::audit_log),
        route!(customers_or(P::OrdersPlace), routes::place_order),
        route!(customers_or(P::OrdersRead), routes::list_orders),
        route!(customers_or(P::OrdersRead), routes::get_order),
        route!(customers_or(P::OrdersRead), routes::order_events),
        route!(customers_or(P::OrdersCancel), routes::cancel_order),
        route!(staff(P::OrdersRefund), routes::refund_order),
        route!(staff(P::OrdersRead), routes::order_notes),
        route!(staff(P::OrdersNote), routes::add_note),
        route!(staff(P::OrdersNote), routes::contact_customer),
        route!(staff(P::Escalations), routes::escalations),
        route!(staff(P::OrdersRetry), routes::retry_order),
        route!(customers_or(P::OrdersEdit), routes::change_address),
        route!(staff(P::OrdersFulfil), routes::ship_order),
        route!(staff(P::OrdersFulfil), routes::report_undeliverable),
        route!(staff(P::OrdersFulfil), routes::deliver_order),
        route!(public, routes::list_products),
        route!(staff(P::CatalogWrite), routes::create_product),
        route!(public, routes::get_product),
        route!(staff(P::CatalogWrite), routes::update_product),
        route!(staff(P::CustomersWrite), routes::create_customer),
        route!(customers_or(P::CustomersRead), routes::get_customer),
        route!(staff(P::InventoryRead), routes::get_stock),
        route!(staff(P::InventoryWrite), routes::adjust_stock),
        route!(public, carts::open_cart),
        route!(public, carts::get_cart),
        route!(public, carts::add_line),
        route!(public, carts::set_quantity),
        route!(public, carts::remove_line),
        route!(public, carts::checkout),
        route!(staff(P::Escalations), notifications::list_notifications),
        route!(staff(P::OrdersRetry), notifications::retry_notification),
        route!(
            customers_or(P::CustomersRead),
            notifications::get_preferences
        ),
        route!(
            customers_or(P::CustomersWrite),
            notifications::put_preferences
        ),
        route!(public, carts::list_rates),
        route!(staff(P::RatesWrite), carts::set_rate),
        RouteSpec::new(M::GET, "/graphql", public, get(graphql::graphiql))
            .described(openapi::graphiql_operation()),
        RouteSpec::new(M::POST, "/graphql", public, post(graphql::execute))
            .described(openapi::graphql_operation()),
        RouteSpec::new(
            M::GET,
            "/graphql/assets/{file}",
            public,
            get(graphql::asset),
        ),
        RouteSpec::new(M::GET, "/metrics", staff(P::MetricsRead), get(metrics)),
        route!(public, healthz),
        route!(public, readyz),
        route!(public, openapi_json),
        RouteSpec::new(M::GET, "/docs", public, get(docs_page)),
        RouteSpec::new(
            M::GET,
            "/",
            public,
            get(|| async { Redirect::temporary("/docs") }),
        ),
    ]
}

/// Every route, ready to serve. `/metrics` shows storage figures when the caller layers an
/// `Extension<Arc<StorageMetrics>>` onto the router.
pub fn router(app: Orderly, accounts: Arc<Accounts>) -> Router {
    router_with(app, accounts, Vec::new())
}

/// Every route of [`route_table`] plus `extra` routes of the caller's (webhooks of the
/// configured payment provider), each behind its [`Access`] guard and all behind the same
/// layers: request id and span, caller, body limit, panic catching and problem+json errors.
pub fn router_with(app: Orderly, accounts: Arc<Accounts>, extra: Vec<RouteSpec>) -> Router {
    let schema = graphql::schema(Some(app.clone()));
    let mut router: Router<Orderly> = Router::new();
    for spec in route_table().into_iter().chain(extra) {
        // The guard runs first: a caller who may not call the route is refused before its
        // body is read, so nobody unauthenticated can make the server hold a body for a
        // guarded route.
        let guarded = spec
            .handler
            .route_layer(axum::middleware::from_fn(server::read_body))
            .route_layer(axum::middleware::from_fn_with_state(
                spec.access,
                auth::guard,
            ));
        router = router.route(&spec.path, guarded);
    }
    // The staff panel: its pages and forms, with the same body deadline as the API.
    let panel = admin::router(app.clone(), Arc::clone(&accounts))
        .layer(axum::middleware::from_fn(server::read_body));
    router
        .with_state(app)
        .nest("/admin", panel)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(schema))
        .layer(Extension(Arc::clone(&accounts)))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn_with_state(
            accounts,
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(problem_for_plain_errors))
        .layer(axum::middleware::from_fn(request::context))
}
