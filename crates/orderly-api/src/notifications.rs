//! Notifications over HTTP: failed notifications for staff (and their retry), and a customer's
//! notification preferences. Thin, like `routes`: parse, call one use case, map the result.
//!
//! - `GET  /v1/notifications?status=failed` — messages that ran out of retries.
//! - `POST /v1/notifications/retry` — send one of them again now (body: its `key`).
//! - `GET|PUT /v1/customers/{id}/notification-preferences` — marketing opt-out, SMS number.
//!
//! The failure list and the retry need the server's notifier, which the binary layers on as an
//! `Extension<Arc<Notifications>>`; without one they answer 503.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use orderly_auth::Permission;
use orderly_core::notify::{NotificationRecord, Notifications, Preferences, RetryError};
use orderly_core::ports::Category;
use orderly_core::{Orderly, page_request};
use orderly_domain::{CustomerId, ValueError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery};
use crate::openapi::NotFound;
use crate::problem::{ApiError, Problem};

type ApiResult<T> = Result<T, ApiError>;

/// One notification as staff see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDto {
    /// `{event id}/{template}/{channel}:{address}`: names the message for a retry.
    key: String,
    /// The order it is about.
    order_id: String,
    /// The event that caused it (`OrderShipped`, …).
    event: String,
    /// Which message (`order_confirmation`, `shipped`, …).
    template: String,
    /// `email`, `sms` or `topic`.
    channel: String,
    /// The address, number or topic.
    recipient: String,
    /// `transactional` or `marketing`.
    category: String,
    /// The subject line.
    subject: String,
    /// `failed` or `sent`.
    status: String,
    /// Tries so far.
    attempts: u32,
    /// The last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// When it was sent or last failed (RFC 3339).
    at: String,
}

impl NotificationDto {
    /// The channel's error may quote internals (a mail server's reply, addresses of hosts):
    /// only callers with `errors:read` see it; others see that there is one.
    #[must_use]
    fn redacted(mut self, raw_errors: bool) -> Self {
        if !raw_errors && self.error.is_some() {
            self.error = Some(
                "the channel did not take it; the error is shown to engineers and admins"
                    .to_owned(),
            );
        }
        self
    }
}

impl From<&NotificationRecord> for NotificationDto {
    fn from(r: &NotificationRecord) -> Self {
        NotificationDto {
            key: r.key.clone(),
            order_id: r.order_id.to_string(),
            event: r.event.as_str().to_owned(),
            template: r.template.as_str().to_owned(),
            channel: r.recipient.channel().to_owned(),
            recipient: r.recipient.address().to_owned(),
            category: match r.category {
                Category::Transactional => "transactional",
                Category::Marketing => "marketing",
            }
            .to_owned(),
            subject: r.subject.clone(),
            status: r.status.as_str().to_owned(),
            attempts: r.attempts,
            error: r.error.clone(),
            at: r.at.to_rfc3339(),
        }
    }
}

/// A page of notifications.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    /// The notifications, in key order.
    items: Vec<NotificationDto>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Which notifications to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListNotificationsQuery {
    /// `failed`: messages that ran out of retries and were not sent since.
    #[param(value_type = crate::openapi::NotificationStatus, required = true)]
    status: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[param(value_type = Option<crate::openapi::PageLimit>)]
    limit: Option<i64>,
    /// `nextCursor` from the previous page.
    after: Option<String>,
}

fn notifier(notes: Option<Extension<Arc<Notifications>>>) -> Result<Arc<Notifications>, ApiError> {
    notes.map(|Extension(n)| n).ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            "this server does not send notifications",
        )
        .into()
    })
}

/// Notifications that failed for good (out of retries, or refused by the channel) and were not
/// sent since. The orders they are about were never held back by them.
///
/// A server without a notifier (the Lambda API function) answers `503`.
#[utoipa::path(
    get, path = "/v1/notifications", tag = "notifications",
    params(ListNotificationsQuery),
    responses(
        (status = 200, body = NotificationPage),
    )
)]
pub async fn list_notifications(
    notes: Option<Extension<Arc<Notifications>>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListNotificationsQuery>,
) -> ApiResult<Json<NotificationPage>> {
    let raw = caller.principal.can(Permission::RawErrors);
    let mut errors = Vec::new();
    if q.status.as_deref() != Some("failed") {
        errors.push(ValueError::new(
            "status",
            "must be failed (only failed notifications are listed)",
        ));
    }
    let page = page_request(q.limit, None).map_err(|e| errors.push(e)).ok();
    let Some(limit) = page.map(|p| p.limit).filter(|_| errors.is_empty()) else {
        return Err(errors.into());
    };
    let notes = notifier(notes)?;
    // One more than asked says whether there is a next page.
    let mut found = notes.failed(q.after.as_deref(), limit + 1).await?;
    let next_cursor = if found.len() > limit as usize {
        found.truncate(limit as usize);
        found.last().map(|r| r.key.clone())
    } else {
        None
    };
    Ok(Json(NotificationPage {
        items: found
            .iter()
            .map(|r| NotificationDto::from(r).redacted(raw))
            .collect(),
        next_cursor,
    }))
}

/// Which notification to retry.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryRequest {
    /// The `key` of a failed notification.
    #[schema(value_type = crate::openapi::NotificationKey)]
    key: String,
}

/// Sends a failed notification again now, rendered from the order as it is today. Answers the
/// notification, now `sent`; if the channel refuses again, `502 notification-not-sent` and the
/// notification stays failed with the new error.
///
/// A server without a notifier (the Lambda API function) answers `503`.
#[utoipa::path(
    post, path = "/v1/notifications/retry", tag = "notifications",
    request_body = RetryRequest,
    responses(
        (status = 200, body = NotificationDto),
        (status = 404, description = "No notification with that key"),
        (status = 409, description = "`notification-not-failed`, `notification-no-longer-applies`, `notification-in-flight`"),
        (status = 502, description = "`notification-not-sent`: the channel refused it again"),
    )
)]
pub async fn retry_notification(
    notes: Option<Extension<Arc<Notifications>>>,
    caller: Caller,
    ApiJson(body): ApiJson<RetryRequest>,
) -> ApiResult<Json<NotificationDto>> {
    let raw = caller.principal.can(Permission::RawErrors);
    let notes = notifier(notes)?;
    match notes.retry(&body.key).await {
        Ok(record) => Ok(Json(NotificationDto::from(&record).redacted(raw))),
        Err(RetryError::App(e)) => Err(e.into()),
        Err(RetryError::NotFailed(record)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "notification-not-failed",
            "The notification is not failed",
            format!(
                "notification {} is {}; only failed notifications are retried",
                record.key,
                record.status.as_str()
            ),
        )
        .into()),
        Err(RetryError::NoLongerApplies(why)) => Err(Problem::new(
            StatusCode::CONFLICT,
            "notification-no-longer-applies",
            "The notification no longer applies",
            why,
        )
        .into()),
        Err(RetryError::NotSent(why)) => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "notification-not-sent",
            "The channel refused the notification again",
            if raw {
                why
            } else {
                "the channel refused it again; it stays failed, try again later".to_owned()
            },
        )
        .into()),
        Err(RetryError::InFlight) => Err(Problem::new(
            StatusCode::CONFLICT,
            "notification-in-flight",
            "The notification is being sent",
            "another retry of this notification is sending it right now; look at it again in a moment",
        )
        .into()),
    }
}

/// A customer's notification preferences.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferencesDto {
    /// False: no marketing messages (review requests). Order messages always go.
    marketing: bool,
    /// E.164 number (`+15551234567`) for shipping updates by SMS; null: none.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::PhoneNumber>)]
    sms_phone: Option<String>,
}

impl From<Preferences> for PreferencesDto {
    fn from(p: Preferences) -> Self {
        PreferencesDto {
            marketing: p.marketing,
            sms_phone: p.sms_phone,
        }
    }
}

fn customer_id(text: &str) -> ApiResult<CustomerId> {
    CustomerId::parse(text).map_err(|_| ApiError::from(Problem::not_found("customer", text)))
}

/// A customer's notification preferences (the defaults if never set: marketing on, no SMS).
#[utoipa::path(
    get, path = "/v1/customers/{id}/notification-preferences", tag = "notifications",
    params(("id" = crate::openapi::MerchantId, Path, description = "Customer id")),
    responses(
        (status = 200, body = PreferencesDto),
        (status = 404, response = NotFound),
    )
)]
pub async fn get_preferences(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<PreferencesDto>> {
    let id = own_customer(&caller, &id, Permission::CustomersRead)?;
    app.catalog.customer(&id).await?;
    let prefs = app
        .preferences
        .of(&id)
        .await
        .map_err(orderly_core::AppError::from)?;
    Ok(Json(prefs.into()))
}

/// Replaces a customer's notification preferences.
#[utoipa::path(
    put, path = "/v1/customers/{id}/notification-preferences", tag = "notifications",
    params(("id" = crate::openapi::MerchantId, Path, description = "Customer id")),
    request_body = PreferencesDto,
    responses(
        (status = 200, body = PreferencesDto),
        (status = 404, response = NotFound),
    )
)]
pub async fn put_preferences(
    State(app): State<Orderly>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PreferencesDto>,
) -> ApiResult<Json<PreferencesDto>> {
    let id = own_customer(&caller, &id, Permission::CustomersWrite)?;
    let prefs = Preferences {
        marketing: body.marketing,
        sms_phone: body.sms_phone,
    };
    let saved = app.preferences.set(&id, &prefs).await?;
    Ok(Json(saved.into()))
}

/// The customer `id` if the caller may act on them: themself, or staff and keys holding
/// `permission`; others get the same 404 as for a customer that does not exist.
fn own_customer(caller: &Caller, id: &str, permission: Permission) -> ApiResult<CustomerId> {
    let parsed = customer_id(id)?;
    if caller.may_touch(&parsed, permission) {
        Ok(parsed)
    } else {
        Err(Problem::not_found("customer", id).into())
    }
}
