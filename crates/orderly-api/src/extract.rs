//! Extractors whose rejections are problem+json with a message that says what to fix.
//!
//! # Layout
//! - [`ApiJson`], [`OptionalJson`]: a JSON body read strictly (`strict`): unknown fields and
//!   arrays in place of objects are refused, as the OpenAPI document says.
//! - [`ApiQuery`]: a query string.

mod strict;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError, Problem};

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON body; bad JSON, wrong types and unknown fields become clear 4xx problems.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Send JSON",
                "the body must be JSON with the header Content-Type: application/json",
            )
            .into());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                malformed(rejection.body_text())
            }
        })?;
        from_json(&bytes).map(ApiJson)
    }
}

/// True for `application/json` and `application/*+json` (what axum's `Json` accepts).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application"
                && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

/// Reads one JSON value into `T`, strictly: a struct only from an object, at any depth.
///
/// # Errors
/// `400 malformed-json` for text that is not JSON, `422 validation` naming the field for JSON
/// that does not fit `T`.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    use serde_json::error::Category;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(strict::Strict(&mut de)).map_err(|e| {
        ApiError::from(match e.inner().classify() {
            Category::Data => invalid_field(&e),
            Category::Syntax | Category::Eof | Category::Io => malformed(e.to_string()),
        })
    })?;
    de.end()
        .map_err(|e| ApiError::from(malformed(e.to_string())))?;
    Ok(value)
}

fn malformed(detail: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "malformed-json",
        "The body is not valid JSON",
        format!("{detail}; check quotes, commas and brackets"),
    )
}

fn invalid_field(e: &serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let mut p = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
        "Your request has invalid fields",
        e.to_string(),
    );
    let field = e.path().to_string();
    // `.` is the path of the body itself (an array where an object belongs).
    if field != "." {
        p.errors.push(FieldError {
            field,
            message: e.inner().to_string(),
        });
    }
    p
}

/// The 413 problem.
#[must_use]
pub fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "The body is too large",
        format!("request bodies are limited to {MAX_BODY} bytes"),
    )
}

/// A query string; a bad one is a 400 problem naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::from(query_problem(&rejection))),
        }
    }
}

fn query_problem(rejection: &QueryRejection) -> Problem {
    let text = rejection.body_text();
    let detail = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    Problem::bad_request(format!("query string: {detail}"))
}

/// An optional JSON body: empty means `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        let empty = match headers.get(axum::http::header::CONTENT_LENGTH) {
            Some(length) => length == "0",
            None => !headers.contains_key(axum::http::header::TRANSFER_ENCODING),
        };
        if empty {
            return Ok(OptionalJson(T::default()));
        }
        // `null` counts as no body, too.
        ApiJson::<Option<T>>::from_request(req, state)
            .await
            .map(|ApiJson(v)| OptionalJson(v.unwrap_or_default()))
    }
}
