//! The staff panel under `/admin`: server-rendered pages for support staff, over the same
//! services and the same access policy ([`orderly_core::access::Policy`]) as the REST API —
//! no rule is written twice. Every page works without JavaScript: each action is a plain form
//! post, shown first with its effect and confirmed.
//!
//! # Layout
//! - this module: the router, the form extractor, pages and error pages;
//! - `session`: the session cookie, sign-in and sign-out, the CSRF check;
//! - `pages`: the needs-attention queue, an order with its timeline, a customer, the search;
//! - `actions`: retry, cancel, note — the confirmation page and the change;
//! - `messages`: the messages that did not go out, and sending one again;
//! - `engineering`: stage 3 — the cases handed to engineering, their bundles, sending back.

/// The value of a `Result<_, Box<Response>>`, or the page that says why not, answered at once.
macro_rules! or_page {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(page) => return *page,
        }
    };
}

mod actions;
mod engineering;
mod messages;
mod pages;
mod session;

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use orderly_core::accounts::Accounts;
use orderly_core::{AppError, Orderly};

/// What the panel's handlers share.
#[derive(Clone)]
pub(crate) struct Panel {
    /// The use cases.
    pub(crate) app: Orderly,
    /// Sessions, rate limits, the audit.
    pub(crate) accounts: Arc<Accounts>,
}

/// The panel's routes, to be nested under `/admin`.
pub(crate) fn router(app: Orderly, accounts: Arc<Accounts>) -> Router {
    Router::new()
        .route("/", get(pages::queue))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/search", get(pages::search))
        .route("/orders", get(pages::orders))
        .route("/orders/{id}", get(pages::order))
        .route("/orders/{id}/confirm/{action}", get(actions::confirm))
        .route(
            "/orders/{id}/address",
            get(actions::address_form).post(actions::correct_address),
        )
        .route("/orders/{id}/{action}", post(actions::act))
        .route("/customers/{id}", get(pages::customer))
        .route("/engineering", get(engineering::list))
        .route("/orders/{id}/bundle.json", get(engineering::bundle_json))
        .route("/notifications", get(messages::list))
        .route("/notifications/retry", post(messages::retry))
        .route("/panel.css", get(stylesheet))
        .fallback(not_found)
        .with_state(Panel { app, accounts })
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/admin/panel.css"),
    )
        .into_response()
}

async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "There is no such page",
        "Use the menu above, or search for an order or a customer.",
    )
}

/// The path's segments, as [`axum::extract::Path`] gives them; a path that does not read (not
/// UTF-8, say) is a page that does not exist, answered in HTML like any other.
pub(crate) struct Segments<T>(pub(crate) T);

impl<S, T> axum::extract::FromRequestParts<S> for Segments<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(segments)) => Ok(Segments(segments)),
            Err(_) => Err(not_found().await),
        }
    }
}

/// The fields of a posted form (`application/x-www-form-urlencoded`), each by name.
pub(crate) struct Fields(HashMap<String, String>);

impl Fields {
    /// The field `name`, if sent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| {
                error_page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "This form is too large",
                    "Shorten what you typed and send it again.",
                )
            })?;
        Ok(Fields(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// The value of `name` in a query string (the first, if it is there more than once).
pub(crate) fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A rendered page, with the headers every panel page carries.
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = axum::response::Html(html).into_response();
            secure(&mut response);
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a panel page did not render");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The page could not be shown. Try again; if it keeps happening, tell engineering.",
            )
        }
    }
}

/// A form shown again because what was sent did not pass: the same page, answered `422`.
pub(crate) fn refused_if(mut page: Response, refused: bool) -> Response {
    if refused && page.status().is_success() {
        *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    page
}

/// No caching of personal data, no framing, scripts and styles from the panel only.
fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[derive(Template)]
#[template(path = "admin/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    detail: &'a str,
}

/// A page that says what went wrong and what to do next.
pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let html = ErrorPage { title, detail }
        .render()
        .unwrap_or_else(|_| format!("<!doctype html><title>{status}</title><p>{status}</p>"));
    let mut response = (status, axum::response::Html(html)).into_response();
    secure(&mut response);
    response
}

/// The page for a use case's refusal: in the words of the refusal where it speaks to the user,
/// opaque for a server fault (whose cause goes to the log).
pub(crate) fn app_error(e: &AppError) -> Response {
    let (status, title) = match e {
        AppError::NotFound { .. } => (StatusCode::NOT_FOUND, "Not found"),
        AppError::Invalid(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Please check what you entered",
        ),
        AppError::IllegalTransition(_) | AppError::NotNow(_) => {
            (StatusCode::CONFLICT, "This cannot be done now")
        }
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "Your role does not allow this"),
        AppError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Please sign in"),
        AppError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "Too many attempts"),
        AppError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The system is busy or the database is unreachable",
        ),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
    };
    let detail = match e {
        AppError::Unavailable(_) => "Nothing was changed. Wait a moment and try again.".to_owned(),
        AppError::Internal(cause) => {
            tracing::error!(error = %cause, "a panel request failed");
            "Nothing was changed. Try again; if it keeps happening, tell engineering.".to_owned()
        }
        other => other.to_string(),
    };
    error_page(status, title, &detail)
}

/// After a change: back to the page that shows it (303, so a reload does not post again).
pub(crate) fn see(location: &str) -> Response {
    Redirect::to(location).into_response()
}
