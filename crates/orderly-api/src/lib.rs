//! Orderly's HTTP API.
//!
//! # Layout
//! - [`router`]: every route, the body limit, the request context and the problem+json fallbacks.
//! - `routes`: the REST handlers under `/v1` — thin: parse, call one use case, map the result.
//! - `carts`: carts, checkout and exchange rates under `/v1`.
//! - `notifications`: failed notifications (list, retry) and notification preferences.
//! - [`graphql`]: the same use cases as a GraphQL schema at `/graphql`, with GraphiQL.
//! - `dto`: the wire format (camelCase JSON) and its parsing into domain values.
//! - [`problem`]: RFC 9457 errors with stable `type`s; the one error shape of the API.
//! - `extract`: JSON and query extractors whose rejections are problems.
//! - `request`: the request id and the per-request tracing span.
//! - [`ApiDoc`]: the OpenAPI 3.1 document, generated from the handlers and types; served at
//!   `/openapi.json` and rendered at `/docs` without any CDN.
//! - `/metrics`: storage calls by operation (Prometheus text), when the server counts them.
#![forbid(unsafe_code)]

pub mod carts;
pub mod dto;
pub mod extract;
pub mod graphql;
pub mod notifications;
pub mod problem;
pub mod request;
pub mod routes;

use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orderly_core::Orderly;
use orderly_core::metered::StorageMetrics;
use serde::Serialize;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

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
        routes::list_products, routes::get_product, routes::create_product, routes::update_product,
        routes::create_customer, routes::get_customer,
        routes::get_stock, routes::adjust_stock,
        carts::open_cart, carts::get_cart, carts::add_line, carts::set_quantity,
        carts::remove_line, carts::checkout, carts::list_rates, carts::set_rate,
        notifications::list_notifications, notifications::retry_notification, notifications::get_preferences, notifications::put_preferences,
        healthz, readyz,
    ),
    components(schemas(Problem, problem::FieldError)),
    tags(
        (name = "orders", description = "Place, read and move orders through their life"),
        (name = "catalog", description = "Products and their prices"),
        (name = "customers", description = "Buyers"),
        (name = "inventory", description = "Stock levels and manual adjustments"),
        (name = "carts", description = "Carts priced in the shopper's currency, and checkout; every call but the first carries the cart's `Cart-Token`"),
        (name = "rates", description = "Exchange rates from the base currency, for products without a price in the buyer's currency"),
        (name = "notifications", description = "Failed notifications for staff, and customers' notification preferences"),
        (name = "health", description = "Liveness and readiness"),
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

/// The process can serve: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn readyz(State(app): State<Orderly>) -> Response {
    match app.store().pending_jobs().await {
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
    if let Ok(n) = app.store().pending_jobs().await {
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

async fn openapi_json() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => Problem::from(orderly_core::AppError::Internal(e.to_string())).into_response(),
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

/// Every route, ready to serve. `/metrics` shows storage figures when the caller layers an
/// `Extension<Arc<StorageMetrics>>` onto the router.
pub fn router(app: Orderly) -> Router {
    router_with(app, Router::new())
}

/// Every route plus `extra` routes of the caller's (webhooks of the configured payment
/// provider), all behind the same layers: request id and span, body limit, panic catching and
/// problem+json errors.
pub fn router_with(app: Orderly, extra: Router) -> Router {
    let schema = graphql::schema(Some(app.clone()));
    let v1 = Router::new()
        .route(
            "/orders",
            post(routes::place_order).get(routes::list_orders),
        )
        .route("/orders/{id}", get(routes::get_order))
        .route("/orders/{id}/events", get(routes::order_events))
        .route("/orders/{id}/cancel", post(routes::cancel_order))
        .route("/orders/{id}/ship", post(routes::ship_order))
        .route("/orders/{id}/deliver", post(routes::deliver_order))
        .route(
            "/products",
            get(routes::list_products).post(routes::create_product),
        )
        .route(
            "/products/{id}",
            get(routes::get_product).patch(routes::update_product),
        )
        .route("/customers", post(routes::create_customer))
        .route("/customers/{id}", get(routes::get_customer))
        .route("/inventory/{productId}", get(routes::get_stock))
        .route(
            "/inventory/{productId}/adjustments",
            post(routes::adjust_stock),
        )
        .route("/carts", post(carts::open_cart))
        .route("/carts/{id}", get(carts::get_cart))
        .route("/carts/{id}/lines", post(carts::add_line))
        .route(
            "/carts/{id}/lines/{productId}",
            axum::routing::patch(carts::set_quantity).delete(carts::remove_line),
        )
        .route("/carts/{id}/checkout", post(carts::checkout))
        .route("/rates", get(carts::list_rates))
        .route("/rates/{currency}", axum::routing::put(carts::set_rate));
    Router::new()
        .nest("/v1", v1.merge(notifications::routes()))
        .route("/graphql", get(graphql::graphiql).post(graphql::execute))
        .route("/graphql/assets/{file}", get(graphql::asset))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs_page))
        .route("/", get(|| async { Redirect::temporary("/docs") }))
        .with_state(app)
        .merge(extra)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(schema))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(problem_for_plain_errors))
        .layer(axum::middleware::from_fn(request::context))
}
