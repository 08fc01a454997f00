//! RFC 9457 problem details: the one error shape of the whole API.
//!
//! Every error has a stable `type` (`https://orderly.dev/problems/<code>`), a `title` that never
//! changes for the type, a `detail` saying what to fix, and for validation a list of field errors.
//! A 5xx body is opaque: its cause goes to the log under the request id the client sees.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderly_core::AppError;
use orderly_domain::ValueError;
use serde::Serialize;
use utoipa::ToSchema;

/// Where problem types are documented.
pub const PROBLEM_BASE: &str = "https://orderly.dev/problems/";

/// The content type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// The field as sent, with a path: `items[1].quantity`, `shippingAddress.city`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, fixed summary of the type.
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What happened here and what to do about it.
    pub detail: String,
    /// The stable code at the end of `type`, for programs.
    pub code: String,
    /// Per-field errors, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request id, also in the `x-request-id` header; quote it when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For 429: seconds to wait, sent as `Retry-After` (a 503 without one sends
    /// [`crate::openapi::UNAVAILABLE_RETRY_AFTER_SECS`]).
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after_secs: Option<u64>,
}

impl Problem {
    /// A problem of type `code`.
    #[must_use]
    pub fn new(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("{PROBLEM_BASE}{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            errors: Vec::new(),
            request_id: crate::request::current_id(),
            retry_after_secs: None,
        }
    }

    /// A 422 listing invalid fields.
    #[must_use]
    pub fn validation(errors: Vec<ValueError>) -> Self {
        let detail = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let mut p = Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Your request has invalid fields",
            detail,
        );
        p.errors = errors
            .into_iter()
            .map(|e| FieldError {
                field: e.field,
                message: e.message,
            })
            .collect();
        p
    }

    /// A 404 for a resource.
    #[must_use]
    pub fn not_found(what: &str, id: &str) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no {what} with id {id:?}"),
        )
    }

    /// A 400 for a bad query string or header.
    #[must_use]
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// The HTTP status.
    #[must_use]
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The 408 for a body that did not arrive within the body timeout.
#[must_use]
pub fn request_timeout() -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        "The request took too long to arrive",
        "the request body did not arrive within the server's body timeout; send it again, faster",
    )
}

/// Every problem type: `(code, status, title)`. The API page lists them.
pub const PROBLEM_TYPES: &[(&str, u16, &str)] = &[
    ("validation", 422, "Your request has invalid fields"),
    ("malformed-json", 400, "The body is not valid JSON"),
    ("bad-request", 400, "Bad request"),
    ("invalid-cursor", 400, "Invalid cursor"),
    ("not-found", 404, "Not found"),
    ("method-not-allowed", 405, "Method not allowed"),
    ("illegal-transition", 409, "The order cannot do that now"),
    ("already-exists", 409, "Already exists"),
    ("insufficient-stock", 409, "Not enough stock"),
    (
        "cart-closed",
        409,
        "The cart was checked out or has expired",
    ),
    (
        "invalid-signature",
        400,
        "The webhook signature does not verify",
    ),
    ("unauthenticated", 401, "Log in first"),
    ("forbidden", 403, "Not allowed"),
    ("rate-limited", 429, "Too many requests"),
    (
        "notification-not-failed",
        409,
        "The notification is not failed",
    ),
    (
        "notification-no-longer-applies",
        409,
        "The notification no longer applies",
    ),
    (
        "notification-not-sent",
        502,
        "The channel refused the notification again",
    ),
    ("payload-too-large", 413, "The body is too large"),
    (
        "request-timeout",
        408,
        "The request took too long to arrive",
    ),
    ("unsupported-media-type", 415, "Send JSON"),
    (
        "idempotency-key-reused",
        422,
        "Idempotency-Key reused with another request",
    ),
    ("unavailable", 503, "Temporarily unavailable"),
    ("internal", 500, "Internal error"),
];

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        // Every 503 says when to come back, as the OpenAPI document promises.
        let retry_after = self.retry_after_secs.or_else(|| {
            (status == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(crate::openapi::UNAVAILABLE_RETRY_AFTER_SECS)
        });
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"orderly\""),
            );
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(errors) => Problem::validation(errors),
            AppError::NotFound { what, id } => Problem::not_found(what, &id),
            AppError::IllegalTransition(t) => Problem::new(
                StatusCode::CONFLICT,
                "illegal-transition",
                "The order cannot do that now",
                format!("{t}; see the order's status and history"),
            ),
            AppError::NotNow(detail) => Problem::new(
                StatusCode::CONFLICT,
                "illegal-transition",
                "The order cannot do that now",
                detail,
            ),
            AppError::Changed(detail) => Problem::new(
                StatusCode::CONFLICT,
                "order-changed",
                "The order changed since it was read",
                detail,
            ),
            AppError::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused with another request",
                "this Idempotency-Key was first used with a different request body; use a new key for a new order",
            ),
            AppError::AlreadyExists { what, id } => Problem::new(
                StatusCode::CONFLICT,
                "already-exists",
                "Already exists",
                format!(
                    "a {what} with id {id:?} already exists; choose another id or update it instead"
                ),
            ),
            AppError::InsufficientStock(p) => Problem::new(
                StatusCode::CONFLICT,
                "insufficient-stock",
                "Not enough stock",
                format!("product {p} does not have enough available stock for this change"),
            ),
            AppError::CartClosed(detail) => Problem::new(
                StatusCode::CONFLICT,
                "cart-closed",
                "The cart was checked out or has expired",
                detail,
            ),
            AppError::InvalidCursor => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-cursor",
                "Invalid cursor",
                "the cursor was not issued by this server; start again without a cursor",
            ),
            AppError::Unauthenticated(detail) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Log in first",
                detail,
            ),
            AppError::Forbidden(detail) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed", detail)
            }
            AppError::RateLimited {
                detail,
                retry_after_ms,
            } => {
                let mut p = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                    detail,
                );
                p.retry_after_secs =
                    Some(u64::try_from(retry_after_ms.max(0) + 999).unwrap_or(1) / 1000);
                p
            }
            AppError::Unavailable(cause) => {
                tracing::warn!(%cause, "answering 503");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Temporarily unavailable",
                    "the service is busy or its database is unreachable; retry shortly (with the same Idempotency-Key for an order)",
                )
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "answering 500");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "something went wrong on our side; quote the requestId when reporting it",
                )
            }
        }
    }
}

/// Lets handlers use `?` on use-case results. Boxed: errors are the rare path, results stay small.
pub struct ApiError(Box<Problem>);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(Box::new(e.into()))
    }
}

impl From<Problem> for ApiError {
    fn from(p: Problem) -> Self {
        ApiError(Box::new(p))
    }
}

impl From<ValueError> for ApiError {
    fn from(e: ValueError) -> Self {
        ApiError(Box::new(Problem::validation(vec![e])))
    }
}

impl From<Vec<ValueError>> for ApiError {
    fn from(e: Vec<ValueError>) -> Self {
        ApiError(Box::new(Problem::validation(e)))
    }
}

impl ApiError {
    /// The problem.
    #[must_use]
    pub fn problem(&self) -> &Problem {
        &self.0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unavailable_answer_says_when_to_retry() {
        let response =
            Problem::from(AppError::Unavailable("database is down".into())).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn a_rate_limit_says_its_own_wait() {
        let response = Problem::from(AppError::RateLimited {
            detail: "slow down".into(),
            retry_after_ms: 2500,
        })
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }
}
