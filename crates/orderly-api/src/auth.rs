//! Who may call what.
//!
//! Every route is declared once in [`crate::route_table`] with its [`Access`]: who may call it
//! at all. The [`authenticate`] middleware turns the request's credentials into a [`Caller`]
//! (a bad credential is a 401 even on public routes, so a client learns its token is broken);
//! each route's guard then lets the caller through or answers 401 (no credentials) or 403.
//! What a customer may touch — their own orders, carts and profile — is checked by the handler
//! once it has loaded the thing, and answered with 404 so nobody learns what exists.
//!
//! Changes made by staff and API keys are recorded in the audit log here, in one place, with
//! the method, the path, the status and the client's address.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orderly_auth::{Permission, Principal};
use orderly_core::AppError;
use orderly_core::access::Policy;
pub use orderly_core::access::denied;
use orderly_core::accounts::Accounts;
use orderly_domain::CustomerId;

use crate::problem::Problem;

/// Who may call a route at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// Anyone, signed in or not.
    pub anonymous: bool,
    /// Signed-in customers (the handler then limits them to what is theirs).
    pub customers: bool,
    /// Staff and API keys holding this permission.
    pub permission: Option<Permission>,
}

impl Access {
    /// Anyone.
    pub const PUBLIC: Access = Access {
        anonymous: true,
        customers: true,
        permission: None,
    };
    /// Signed-in customers only.
    pub const CUSTOMERS: Access = Access {
        anonymous: false,
        customers: true,
        permission: None,
    };

    /// Staff and keys holding `permission`.
    #[must_use]
    pub const fn staff(permission: Permission) -> Access {
        Access {
            anonymous: false,
            customers: false,
            permission: Some(permission),
        }
    }

    /// Customers (for what is theirs), and staff and keys holding `permission`.
    #[must_use]
    pub const fn customers_or(permission: Permission) -> Access {
        Access {
            anonymous: false,
            customers: true,
            permission: Some(permission),
        }
    }

    /// True if `principal` may call.
    #[must_use]
    pub fn allows(&self, principal: &Principal) -> bool {
        self.anonymous
            || (self.customers && matches!(principal, Principal::Customer { .. }))
            || self.permission.is_some_and(|p| principal.can(p))
    }

    /// How the rule reads in docs and in `orderly routes`.
    #[must_use]
    pub fn describe(&self) -> String {
        if self.anonymous {
            return "public".to_owned();
        }
        match (self.customers, self.permission) {
            (true, Some(p)) => format!("own customer, or {p}"),
            (true, None) => "customer".to_owned(),
            (false, Some(p)) => p.to_string(),
            (false, None) => "nobody".to_owned(),
        }
    }
}

/// The caller of this request and where it came from.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// The client's address as the server saw it (`unknown` behind a runtime that does not
    /// say).
    pub source: String,
}

impl Caller {
    /// True if the caller may act on what belongs to `owner`: that customer themself, or
    /// staff and keys holding `permission`.
    #[must_use]
    pub fn may_touch(&self, owner: &CustomerId, permission: Permission) -> bool {
        self.principal.customer_id() == Some(owner) || self.principal.can(permission)
    }

    /// The access rules for this caller: the only way to a permit for an order's use cases.
    #[must_use]
    pub fn policy(&self) -> Policy<'_> {
        Policy::new(&self.principal, &self.source)
    }

    /// How the caller is written in order histories.
    #[must_use]
    pub fn actor(&self) -> String {
        self.principal.actor()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned().unwrap_or(Caller {
            principal: Principal::Anonymous,
            source: source_of(parts),
        }))
    }
}

/// The client's address as a runtime in front of the router saw it (API Gateway's source IP),
/// for runtimes where the socket's peer is not the client.
#[derive(Clone, Debug)]
pub struct ClientAddress(pub String);

fn source_of(parts: &Parts) -> String {
    if let Some(ClientAddress(address)) = parts.extensions.get::<ClientAddress>() {
        return address.clone();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(a)| a.ip().to_string())
}

/// The bearer credential of a request, if it sent one.
fn bearer(parts: &Parts) -> Result<Option<String>, AppError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        AppError::Unauthenticated("the Authorization header is not readable".into())
    })?;
    let (scheme, credential) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || credential.trim().is_empty() {
        return Err(AppError::Unauthenticated(
            "use Authorization: Bearer <access token or API key>".into(),
        ));
    }
    Ok(Some(credential.trim().to_owned()))
}

/// Middleware: establishes the [`Caller`], and records staff and key changes in the audit log.
pub async fn authenticate(
    State(accounts): State<Arc<Accounts>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let source = source_of(&parts);
    let principal = match bearer(&parts) {
        Ok(None) => Principal::Anonymous,
        Ok(Some(credential)) => match accounts.authenticate(&credential).await {
            Ok(p) => p,
            Err(e) => return Problem::from(e).into_response(),
        },
        Err(e) => return Problem::from(e).into_response(),
    };
    let caller = Caller { principal, source };
    parts.extensions.insert(caller.clone());
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let response = next.run(Request::from_parts(parts, body)).await;
    if caller.principal.is_operator() && audited(&method, &path) {
        let status = response.status();
        let outcome = if status.is_success() {
            "ok".to_owned()
        } else {
            status.as_u16().to_string()
        };
        accounts
            .audit(
                caller.actor(),
                &format!("{method} {path}"),
                target_of(&path),
                &outcome,
                &caller.source,
            )
            .await;
    }
    response
}

/// Changes worth an audit entry: every write except the high-volume shopper flow (placing an
/// order, which its own history records, and carts) and log-ins (recorded by the log-in).
fn audited(method: &Method, path: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    !(path == "/v1/orders"
        || path.starts_with("/v1/carts")
        || path.starts_with("/v1/auth/")
        || path == "/graphql")
}

/// The id a path acts on: the segment after the collection.
fn target_of(path: &str) -> Option<&str> {
    let mut segments = path.trim_start_matches("/v1/").split('/');
    segments.next()?;
    segments.next().filter(|s| !s.is_empty())
}

/// The guard on one route: lets the caller through if `access` allows them.
pub async fn guard(
    State(access): State<Access>,
    caller: Caller,
    request: Request,
    next: Next,
) -> Response {
    if access.allows(&caller.principal) {
        return next.run(request).await;
    }
    let why = match access.permission {
        Some(p) => format!("this needs the {p} permission"),
        None => "this is for signed-in customers".to_owned(),
    };
    Problem::from(denied(&caller.principal, &why)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderly_auth::Role;

    #[test]
    fn access_rules_let_through_exactly_who_they_name() {
        let customer = Principal::Customer {
            customer_id: CustomerId::parse("001").unwrap(),
            email: "a@b.example".into(),
        };
        let support = Principal::Staff {
            user_id: "s".into(),
            email: "s@shop.example".into(),
            role: Role::Support,
        };
        let engineer = Principal::Staff {
            user_id: "e".into(),
            email: "e@shop.example".into(),
            role: Role::Engineer,
        };
        let cancel = Access::customers_or(Permission::OrdersCancel);
        assert!(cancel.allows(&customer));
        assert!(cancel.allows(&support));
        assert!(!cancel.allows(&engineer));
        let refund_any = Access::staff(Permission::OrdersRefundAny);
        assert!(!refund_any.allows(&support));
        assert!(!refund_any.allows(&customer));
        assert!(!cancel.allows(&Principal::Anonymous));
        assert!(Access::staff(Permission::OrdersRead).allows(&support));
        assert!(!Access::staff(Permission::OrdersRead).allows(&customer));
        assert!(Access::PUBLIC.allows(&Principal::Anonymous));
        assert!(!Access::CUSTOMERS.allows(&support));
    }

    #[test]
    fn the_audit_skips_reads_and_the_shopper_flow() {
        assert!(!audited(&Method::GET, "/v1/orders/1"));
        assert!(!audited(&Method::POST, "/v1/orders"));
        assert!(audited(&Method::POST, "/v1/orders/1/cancel"));
        assert!(audited(&Method::POST, "/v1/orders/1/refunds"));
        assert!(audited(&Method::PUT, "/v1/rates/EUR"));
        assert_eq!(target_of("/v1/orders/abc/cancel"), Some("abc"));
        assert_eq!(target_of("/v1/api-keys"), None);
    }
}
