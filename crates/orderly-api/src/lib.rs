//! Orderly's HTTP API.
//!
//! # Layout
//! - [`router`]: every route, the body limit, the request context and the problem+json fallbacks.
//! - [`auth`]: the caller of each request, the per-route [`Access`] guard, the audit of staff
//!   changes.
//! - `account_routes`: sign-up, log-in, tokens, profile, staff users, API keys, audit log.
//! - `routes`: the REST handlers under `/v1` — thin: parse, call one use case, map the result.
//! - `carts`: carts, checkout and exchange rates under `/v1`.
//! - `notifications`: failed notifications (list, retry) and notification preferences.
//! - [`graphql`]: the same use cases as a GraphQL schema at `/graphql`, with GraphiQL.
//! - `dto`: the wire format (camelCase JSON) and its parsing into domain values.
//! - [`problem`]: RFC 9457 errors with stable `type`s; the one error shape of the API.
//! - `extract`: JSON and query extractors whose rejections are problems.
//! - `request`: the request id and the per-request tracing span.
//! - [`server`]: the listener of `orderly serve`: time limits on every connection, a bound on how
//!   many are open, and the body layer that reads each body within its deadline.
//! - [`ApiDoc`]: the OpenAPI 3.1 document, generated from the handlers and types, with what
//!   [`route_table`] knows added by [`openapi`] (security, the answers every route of a kind
//!   gives) and the rules of request values as schemas; served at `/openapi.json` and rendered
//!   at `/docs` without any CDN.
//! - `/metrics`: storage calls by operation (Prometheus text), when the server counts them.
#![forbid(unsafe_code)]

pub mod account_routes;
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
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use axum::{Json, Router};
use orderly_core::Orderly;
use orderly_core::accounts::Accounts;
use orderly_core::metered::StorageMetrics;
use serde::Serialize;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

pub use crate::auth::Access;
use crate::openapi::RouteRules;
use crate::problem::Problem;

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orderly",
        description = "Order management for e-commerce: orders carried from placed to delivered by an event-driven saga, with stock that never goes negative and exact money.\n\nEvery error is `application/problem+json` (RFC 9457) with a stable `type`.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::place_order, routes::list_orders, routes::get_order, routes::order_events,
        routes::cancel_order, routes::ship_order, routes::deliver_order,
        routes::order_notes, routes::add_note, routes::change_address, routes::retry_order,
        routes::escalations,
        routes::list_products, routes::get_product, routes::create_product, routes::update_product,
        routes::create_customer, routes::get_customer,
        routes::get_stock, routes::adjust_stock,
        carts::open_cart, carts::get_cart, carts::add_line, carts::set_quantity,
        carts::remove_line, carts::checkout, carts::list_rates, carts::set_rate,
        account_routes::register, account_routes::login, account_routes::staff_login,
        account_routes::refresh, account_routes::logout, account_routes::profile,
        account_routes::update_profile, account_routes::list_staff, account_routes::create_staff,
        account_routes::update_staff, account_routes::list_keys, account_routes::create_key,
        account_routes::revoke_key, account_routes::audit_log,
        notifications::list_notifications, notifications::retry_notification, notifications::get_preferences, notifications::put_preferences,
        healthz, readyz, openapi_json,
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
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
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
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == problem::PROBLEM_JSON);
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

/// One declared route: its method, its path and who may call it.
pub struct RouteSpec {
    /// The method.
    pub method: Method,
    /// The path, with `{param}` placeholders.
    pub path: &'static str,
    /// Who may call it at all.
    pub access: Access,
    handler: MethodRouter<Orderly>,
}

impl RouteSpec {
    /// A route.
    pub fn new(
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<Orderly>,
    ) -> Self {
        RouteSpec {
            method,
            path,
            access,
            handler,
        }
    }
}

/// Every route of the API with who may call it: the one place routes are declared. The router
/// is built from it, `orderly routes` prints it, and the authorization matrix test walks it.
#[must_use]
pub fn route_table() -> Vec<RouteSpec> {
    use Method as M;
    use orderly_auth::Permission as P;
    let r = RouteSpec::new;
    let public = Access::PUBLIC;
    vec![
        r(
            M::POST,
            "/v1/auth/register",
            public,
            post(account_routes::register),
        ),
        r(
            M::POST,
            "/v1/auth/login",
            public,
            post(account_routes::login),
        ),
        r(
            M::POST,
            "/v1/auth/staff/login",
            public,
            post(account_routes::staff_login),
        ),
        r(
            M::POST,
            "/v1/auth/refresh",
            public,
            post(account_routes::refresh),
        ),
        r(
            M::POST,
            "/v1/auth/logout",
            public,
            post(account_routes::logout),
        ),
        r(
            M::GET,
            "/v1/me",
            Access::CUSTOMERS,
            get(account_routes::profile),
        ),
        r(
            M::PATCH,
            "/v1/me",
            Access::CUSTOMERS,
            patch(account_routes::update_profile),
        ),
        r(
            M::GET,
            "/v1/staff/users",
            Access::staff(P::UsersManage),
            get(account_routes::list_staff),
        ),
        r(
            M::POST,
            "/v1/staff/users",
            Access::staff(P::UsersManage),
            post(account_routes::create_staff),
        ),
        r(
            M::PATCH,
            "/v1/staff/users/{email}",
            Access::staff(P::UsersManage),
            patch(account_routes::update_staff),
        ),
        r(
            M::GET,
            "/v1/api-keys",
            Access::staff(P::KeysManage),
            get(account_routes::list_keys),
        ),
        r(
            M::POST,
            "/v1/api-keys",
            Access::staff(P::KeysManage),
            post(account_routes::create_key),
        ),
        r(
            M::DELETE,
            "/v1/api-keys/{id}",
            Access::staff(P::KeysManage),
            delete(account_routes::revoke_key),
        ),
        r(
            M::GET,
            "/v1/audit",
            Access::staff(P::AuditRead),
            get(account_routes::audit_log),
        ),
        r(
            M::POST,
            "/v1/orders",
            Access::customers_or(P::OrdersPlace),
            post(routes::place_order),
        ),
        r(
            M::GET,
            "/v1/orders",
            Access::customers_or(P::OrdersRead),
            get(routes::list_orders),
        ),
        r(
            M::GET,
            "/v1/orders/{id}",
            Access::customers_or(P::OrdersRead),
            get(routes::get_order),
        ),
        r(
            M::GET,
            "/v1/orders/{id}/events",
            Access::customers_or(P::OrdersRead),
            get(routes::order_events),
        ),
        r(
            M::POST,
            "/v1/orders/{id}/cancel",
            Access::customers_or(P::OrdersCancel),
            post(routes::cancel_order),
        ),
        r(
            M::GET,
            "/v1/orders/{id}/notes",
            Access::staff(P::OrdersRead),
            get(routes::order_notes),
        ),
        r(
            M::POST,
            "/v1/orders/{id}/notes",
            Access::staff(P::OrdersNote),
            post(routes::add_note),
        ),
        r(
            M::GET,
            "/v1/escalations",
            Access::staff(P::Escalations),
            get(routes::escalations),
        ),
        r(
            M::POST,
            "/v1/orders/{id}/retry",
            Access::staff(P::OrdersRetry),
            post(routes::retry_order),
        ),
        r(
            M::PUT,
            "/v1/orders/{id}/shipping-address",
            Access::customers_or(P::OrdersEdit),
            put(routes::change_address),
        ),
        r(
            M::POST,
            "/v1/orders/{id}/ship",
            Access::staff(P::OrdersFulfil),
            post(routes::ship_order),
        ),
        r(
            M::POST,
            "/v1/orders/{id}/deliver",
            Access::staff(P::OrdersFulfil),
            post(routes::deliver_order),
        ),
        r(M::GET, "/v1/products", public, get(routes::list_products)),
        r(
            M::POST,
            "/v1/products",
            Access::staff(P::CatalogWrite),
            post(routes::create_product),
        ),
        r(
            M::GET,
            "/v1/products/{id}",
            public,
            get(routes::get_product),
        ),
        r(
            M::PATCH,
            "/v1/products/{id}",
            Access::staff(P::CatalogWrite),
            patch(routes::update_product),
        ),
        r(
            M::POST,
            "/v1/customers",
            Access::staff(P::CustomersWrite),
            post(routes::create_customer),
        ),
        r(
            M::GET,
            "/v1/customers/{id}",
            Access::customers_or(P::CustomersRead),
            get(routes::get_customer),
        ),
        r(
            M::GET,
            "/v1/inventory/{productId}",
            Access::staff(P::InventoryRead),
            get(routes::get_stock),
        ),
        r(
            M::POST,
            "/v1/inventory/{productId}/adjustments",
            Access::staff(P::InventoryWrite),
            post(routes::adjust_stock),
        ),
        r(M::POST, "/v1/carts", public, post(carts::open_cart)),
        r(M::GET, "/v1/carts/{id}", public, get(carts::get_cart)),
        r(
            M::POST,
            "/v1/carts/{id}/lines",
            public,
            post(carts::add_line),
        ),
        r(
            M::PATCH,
            "/v1/carts/{id}/lines/{productId}",
            public,
            patch(carts::set_quantity),
        ),
        r(
            M::DELETE,
            "/v1/carts/{id}/lines/{productId}",
            public,
            delete(carts::remove_line),
        ),
        r(
            M::POST,
            "/v1/carts/{id}/checkout",
            public,
            post(carts::checkout),
        ),
        r(
            M::GET,
            "/v1/notifications",
            Access::staff(P::Escalations),
            get(notifications::list_notifications),
        ),
        r(
            M::POST,
            "/v1/notifications/retry",
            Access::staff(P::OrdersRetry),
            post(notifications::retry_notification),
        ),
        r(
            M::GET,
            "/v1/customers/{id}/notification-preferences",
            Access::customers_or(P::CustomersRead),
            get(notifications::get_preferences),
        ),
        r(
            M::PUT,
            "/v1/customers/{id}/notification-preferences",
            Access::customers_or(P::CustomersWrite),
            put(notifications::put_preferences),
        ),
        r(M::GET, "/v1/rates", public, get(carts::list_rates)),
        r(
            M::PUT,
            "/v1/rates/{currency}",
            Access::staff(P::RatesWrite),
            put(carts::set_rate),
        ),
        r(M::GET, "/graphql", public, get(graphql::graphiql)),
        r(M::POST, "/graphql", public, post(graphql::execute)),
        r(
            M::GET,
            "/graphql/assets/{file}",
            public,
            get(graphql::asset),
        ),
        r(
            M::GET,
            "/metrics",
            Access::staff(P::MetricsRead),
            get(metrics),
        ),
        r(M::GET, "/healthz", public, get(healthz)),
        r(M::GET, "/readyz", public, get(readyz)),
        r(M::GET, "/openapi.json", public, get(openapi_json)),
        r(M::GET, "/docs", public, get(docs_page)),
        r(
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
        router = router.route(spec.path, guarded);
    }
    router
        .with_state(app)
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
