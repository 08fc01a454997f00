//! Who is using the panel: the session cookie, sign-in and sign-out, and the CSRF check every
//! form passes.
//!
//! The session cookie is HttpOnly and SameSite=Strict, scoped to `/admin`, and Secure when a
//! TLS-terminating proxy says the request came over TLS (`X-Forwarded-Proto: https`).
//! Every form carries the session's CSRF token; the sign-in form, which comes before any
//! session, carries the value of a cookie of its own (a double-submit token).

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use orderly_auth::token;
use orderly_core::AppError;
use orderly_core::access::Policy;
use orderly_core::accounts::browser::BrowserSession;

use super::{Fields, Panel, error_page, render};
use crate::auth::Caller;

/// The session cookie.
const SESSION: &str = "orderly_panel";
/// The sign-in form's double-submit cookie.
const LOGIN_CSRF: &str = "orderly_panel_login";

/// A signed-in member of staff, for a panel handler.
pub(crate) struct Staff {
    /// Their session.
    pub(crate) session: BrowserSession,
    /// The client's address, for rate limits and the audit.
    pub(crate) source: String,
}

impl Staff {
    /// The access rules for them.
    pub(crate) fn policy(&self) -> Policy<'_> {
        Policy::new(&self.session.principal, &self.source)
    }

    /// What every page's header shows of them.
    pub(crate) fn me(&self) -> Me {
        let (email, role) = match &self.session.principal {
            orderly_auth::Principal::Staff { email, role, .. } => (email.clone(), role.as_str()),
            _ => (String::new(), ""),
        };
        Me {
            email,
            role,
            csrf: self.session.csrf.clone(),
            engineering: self
                .session
                .principal
                .can(orderly_auth::Permission::RawErrors),
        }
    }

    /// True if the form carries this session's CSRF token (if not, answer [`stale_form`]).
    pub(crate) fn sent(&self, form: &Fields) -> bool {
        form.get("csrf")
            .is_some_and(|sent| token::digests_match(sent, &self.session.csrf))
    }
}

/// The signed-in user as the header shows them.
pub(crate) struct Me {
    /// Their e-mail.
    pub(crate) email: String,
    /// Their role.
    pub(crate) role: &'static str,
    /// The token the sign-out form carries.
    pub(crate) csrf: String,
    /// Whether the menu offers the cases with engineering (roles that read raw errors).
    pub(crate) engineering: bool,
}

/// The answer to a form without this session's token: nothing was changed.
pub(crate) fn stale_form() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The page was open too long or came from somewhere else, so nothing was changed. Go back, reload the page and try again.",
    )
}

impl FromRequestParts<Panel> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, panel: &Panel) -> Result<Self, Response> {
        let source = source(parts);
        let Some(secret) = cookie(&parts.headers, SESSION) else {
            return Err(to_login(parts));
        };
        match panel.accounts.browser_session(&secret).await {
            Ok(session) => Ok(Staff { session, source }),
            Err(AppError::Unauthenticated(_)) => Err(to_login(parts)),
            Err(e) => Err(super::app_error(&e)),
        }
    }
}

/// The client's address.
pub(crate) struct Source(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(source(parts)))
    }
}

fn source(parts: &Parts) -> String {
    parts
        .extensions
        .get::<Caller>()
        .map_or_else(|| "unknown".to_owned(), |c| c.source.clone())
}

/// To the sign-in page, coming back here afterwards.
fn to_login(parts: &Parts) -> Response {
    let back = if parts.method == axum::http::Method::GET {
        // The path as the browser asked for it: nested under `/admin`, `parts.uri` lacks it.
        parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .and_then(|u| u.0.path_and_query())
            .map_or("/admin", |p| p.as_str())
    } else {
        "/admin"
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("next", back);
    Redirect::to(&format!("/admin/login?{}", query.finish())).into_response()
}

/// Where a sign-in may send the browser back to: a panel page, nowhere else.
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/admin")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n.to_owned()
        }
        _ => "/admin".to_owned(),
    }
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn set_cookie(response: &mut Response, headers: &HeaderMap, name: &str, value: &str, max_age: i64) {
    let tls = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    let secure = if tls { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    if let Ok(v) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[derive(askama::Template)]
#[template(path = "admin/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
}

/// The sign-in form.
pub(crate) async fn login_form(headers: HeaderMap, query: axum::extract::RawQuery) -> Response {
    let next = query.0.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
    });
    let csrf = match cookie(&headers, LOGIN_CSRF) {
        Some(c) => c,
        None => match token::random_secret(24) {
            Ok(c) => c,
            Err(e) => return super::app_error(&AppError::Internal(e.to_string())),
        },
    };
    let mut response = render(&LoginPage {
        csrf: csrf.clone(),
        next: next_page(next.as_deref()),
        email: String::new(),
        error: None,
    });
    set_cookie(&mut response, &headers, LOGIN_CSRF, &csrf, 3600);
    response
}

/// Signs in: the same password check, rate limits and audit as the API's staff log-in.
pub(crate) async fn login(
    State(panel): State<Panel>,
    headers: HeaderMap,
    Source(source): Source,
    form: Fields,
) -> Response {
    let headers = &headers;
    let next = next_page(form.get("next"));
    let email = form.get("email").unwrap_or_default().to_owned();
    let expected = cookie(headers, LOGIN_CSRF);
    let again = |status: StatusCode, error: String| {
        let mut page = render(&LoginPage {
            csrf: expected.clone().unwrap_or_default(),
            next: next.clone(),
            email: email.clone(),
            error: Some(error),
        });
        *page.status_mut() = status;
        page
    };
    match (&expected, form.get("csrf")) {
        (Some(cookie), Some(sent)) if token::digests_match(cookie, sent) => {}
        _ => return stale_form(),
    }
    let password = form.get("password").unwrap_or_default();
    match panel
        .accounts
        .open_browser_session(&email, password, &source)
        .await
    {
        Ok(session) => {
            let mut response = Redirect::to(&next).into_response();
            let max_age = orderly_core::accounts::browser::BROWSER_SESSION_MS / 1000;
            set_cookie(&mut response, headers, SESSION, &session.secret, max_age);
            set_cookie(&mut response, headers, LOGIN_CSRF, "", 0);
            response
        }
        Err(AppError::Unauthenticated(why)) => again(StatusCode::UNAUTHORIZED, why),
        Err(AppError::RateLimited { detail, .. }) => again(StatusCode::TOO_MANY_REQUESTS, detail),
        Err(AppError::Invalid(errors)) => again(
            StatusCode::UNPROCESSABLE_ENTITY,
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => super::app_error(&e),
    }
}

/// Signs out: the session ends on every node, and the cookie is cleared.
pub(crate) async fn logout(State(panel): State<Panel>, staff: Staff, form: Fields) -> Response {
    if !staff.sent(&form) {
        return stale_form();
    }
    if let Err(e) = panel
        .accounts
        .close_browser_session(&staff.session.secret, &staff.source)
        .await
    {
        return super::app_error(&e);
    }
    let mut response = Redirect::to("/admin/login").into_response();
    set_cookie(&mut response, &HeaderMap::new(), SESSION, "", 0);
    response
}
