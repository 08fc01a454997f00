//! Extractors whose rejections are problem+json with a message that says what to fix.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, Problem};

/// Largest accepted request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON body; bad JSON, wrong types and unknown fields become clear 4xx problems.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(ApiError::from(json_problem(&rejection))),
        }
    }
}

/// Maps axum's JSON rejections onto problems.
#[must_use]
pub fn json_problem(rejection: &JsonRejection) -> Problem {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Send JSON",
            "the body must be JSON with the header Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "The body is not valid JSON",
            format!("{}; check quotes, commas and brackets", strip_prefix(&text)),
        ),
        JsonRejection::JsonDataError(_) => {
            let detail = strip_prefix(&text);
            let mut p = Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Your request has invalid fields",
                detail.clone(),
            );
            if let Some((field, message)) = detail.split_once(": ")
                && !field.contains(' ')
            {
                p.errors.push(crate::problem::FieldError {
                    field: field.to_owned(),
                    message: message.to_owned(),
                });
            }
            p
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "The body is not valid JSON",
            other.body_text(),
        ),
    }
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

fn strip_prefix(text: &str) -> String {
    for prefix in [
        "Failed to deserialize the JSON body into the target type: ",
        "Failed to parse the request body as JSON: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_owned();
        }
    }
    text.to_owned()
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
