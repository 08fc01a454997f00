//! `POST /v1/webhooks/stripe`: Stripe's event notifications, accepted only with a valid
//! signature (the endpoint secret, within the timestamp tolerance).
//!
//! Orderly drives payments itself (authorize, capture, refund, void), so events are receipts:
//! each verified one is logged with its id and type and acknowledged, which is what Stripe
//! needs to stop redelivering it. A call that does not verify is refused with a problem and
//! changes nothing.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use orderly_api::problem::Problem;
use orderly_api::{Access, RouteSpec};
use orderly_payments::{Stripe, WebhookError};
use serde_json::json;

/// The route, for an Orderly whose payments go through Stripe. Public: the signature is its
/// credential.
pub fn route(stripe: Arc<Stripe>) -> RouteSpec {
    RouteSpec::new(
        Method::POST,
        PATH,
        Access::PUBLIC,
        post(receive).layer(Extension(stripe)),
    )
}

const PATH: &str = "/v1/webhooks/stripe";

/// The route as declared, for `orderly routes` (mounted only when a webhook secret is set).
pub fn declared() -> RouteSpec {
    RouteSpec::new(
        Method::POST,
        PATH,
        Access::PUBLIC,
        axum::routing::MethodRouter::new(),
    )
}

async fn receive(
    Extension(stripe): Extension<Arc<Stripe>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match stripe.verify_webhook(&body, signature) {
        Ok(event) => {
            let order_id = event.object["metadata"]["order_id"].as_str().unwrap_or("");
            tracing::info!(event_id = %event.id, event_type = %event.event_type, order_id, "stripe event received");
            (StatusCode::OK, Json(json!({"received": true}))).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "stripe webhook refused");
            let hint = match e {
                WebhookError::NoMatchingSignature => {
                    "; check that ORDERLY_STRIPE_WEBHOOK_SECRET is this endpoint's signing secret"
                }
                WebhookError::TimestampOutsideTolerance { .. } => {
                    "; the event is too old to be trusted (or this clock is wrong)"
                }
                _ => "",
            };
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-signature",
                "The webhook signature does not verify",
                format!("{e}{hint}"),
            )
            .into_response()
        }
    }
}
