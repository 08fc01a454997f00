//! `POST /v1/webhooks/stripe`: Stripe's event notifications, accepted only with a valid
//! signature (the endpoint secret, within the timestamp tolerance).
//!
//! Orderly drives payments itself (authorize, capture, refund, void), so events are receipts:
//! each verified one is logged with its id and type and acknowledged, which is what Stripe
//! needs to stop redelivering it. A call that does not verify is refused with a problem and
//! changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use orderly_api::problem::Problem;
use orderly_payments::{Stripe, WebhookError};
use serde_json::json;

/// The route, for an Orderly whose payments go through Stripe.
pub fn router(stripe: Arc<Stripe>) -> Router {
    Router::new()
        .route("/v1/webhooks/stripe", post(receive))
        .with_state(stripe)
}

async fn receive(State(stripe): State<Arc<Stripe>>, headers: HeaderMap, body: Bytes) -> Response {
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
