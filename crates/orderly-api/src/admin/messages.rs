//! Messages that did not go out: the notifications that failed for good (the mail server was
//! down past every retry, or refused the message), each with the order it is about, and a
//! "send again" that goes through the same use case as `POST /v1/notifications/retry`.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use orderly_auth::Permission;
use orderly_core::notify::{MAX_KEY, NotificationRecord, Notifications, RetryError};
use orderly_core::ports::{Clock, Recipient, SystemClock};

use super::pages::age;
use super::session::{Me, Staff};
use super::{Fields, Panel, app_error, error_page, query_value, render, see};

/// Most failed messages one page lists.
const PAGE: u32 = 50;

/// One message that did not go out, as staff read it.
pub(crate) struct Failed {
    pub(crate) key: String,
    pub(crate) order_id: String,
    pub(crate) what: String,
    pub(crate) to: String,
    pub(crate) why: String,
    pub(crate) age: String,
    pub(crate) raw_error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/messages.html")]
struct MessagesPage {
    me: Me,
    failed: Vec<Failed>,
    more: bool,
    can_retry: bool,
    done: Option<&'static str>,
}

/// What the message is, in words: `Order confirmation`, `Shipping update`.
pub(crate) fn message_name(template: &str) -> String {
    let words = template.replace(['-', '_'], " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn recipient(r: &Recipient) -> String {
    match r {
        Recipient::Email(a) => format!("e-mail to {a}"),
        Recipient::Sms(n) => format!("text message to {n}"),
        Recipient::Topic(_) => "the staff's alert channel".to_owned(),
    }
}

/// Why it did not go out, without the channel's internals.
fn why(record: &NotificationRecord) -> String {
    let channel = match record.recipient {
        Recipient::Email(_) => "The mail server",
        Recipient::Sms(_) => "The text message service",
        Recipient::Topic(_) => "The alert channel",
    };
    let tries = record.attempts;
    let tries = if tries == 1 {
        "1 try".to_owned()
    } else {
        format!("{tries} tries")
    };
    format!("{channel} did not take the message ({tries}). Once it works again, send it again.")
}

impl Failed {
    fn of(record: &NotificationRecord, raw: bool, now: orderly_domain::Timestamp) -> Self {
        Failed {
            key: record.key.clone(),
            order_id: record.order_id.to_string(),
            what: message_name(record.template.as_str()),
            to: recipient(&record.recipient),
            why: why(record),
            age: match age(record.at, now) {
                just if just == "just now" => just,
                ago => format!("{ago} ago"),
            },
            raw_error: record.error.clone().filter(|_| raw),
        }
    }
}

fn done_message(query: Option<&str>) -> Option<&'static str> {
    Some(match query_value(query, "done")?.as_str() {
        "sent" => "Done: the message went out.",
        "already" => "Nothing was done: the message had gone out already.",
        "refused" => {
            "The channel refused the message again; it stays on this list. Try again later, or tell engineering if it keeps failing."
        }
        "busy" => {
            "Someone is sending this message right now; it leaves the list once it has gone out."
        }
        "gone" => {
            "Nothing was sent: the message no longer applies (the customer opted out, or the order changed so it is not wanted)."
        }
        _ => return None,
    })
}

fn notifier(
    notes: Option<Extension<Arc<Notifications>>>,
) -> Result<Arc<Notifications>, Box<Response>> {
    notes.map(|Extension(n)| n).ok_or_else(|| {
        Box::new(error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Messages are not handled here",
            "This server sends no messages (messages go out from the notify worker). Open the panel on a server that runs the notifier.",
        ))
    })
}

/// The list of messages that did not go out, oldest first.
pub(crate) async fn list(
    State(_panel): State<Panel>,
    staff: Staff,
    notes: Option<Extension<Arc<Notifications>>>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(e) = staff.policy().require(Permission::Escalations) {
        return app_error(&e);
    }
    let notes = or_page!(notifier(notes));
    let mut found = match notes.failed(None, PAGE + 1).await {
        Ok(found) => found,
        Err(e) => return app_error(&e),
    };
    let more = found.len() > PAGE as usize;
    found.truncate(PAGE as usize);
    found.sort_by_key(|r| r.at);
    let principal = &staff.session.principal;
    let now = SystemClock.now();
    render(&MessagesPage {
        me: staff.me(),
        failed: found
            .iter()
            .map(|r| Failed::of(r, principal.can(Permission::RawErrors), now))
            .collect(),
        more,
        can_retry: principal.can(Permission::OrdersRetry),
        done: done_message(query.as_deref()),
    })
}

/// Sends one failed message again: checked against the session's CSRF token, audited. A
/// second post of the same form finds it sent and does nothing.
pub(crate) async fn retry(
    State(panel): State<Panel>,
    staff: Staff,
    notes: Option<Extension<Arc<Notifications>>>,
    form: Fields,
) -> Response {
    if !staff.sent(&form) {
        return super::session::stale_form();
    }
    let policy = staff.policy();
    // Bounded before it reaches the audit: one character over the limit still fails the check.
    let key: String = form
        .get("key")
        .unwrap_or_default()
        .chars()
        .take(MAX_KEY + 1)
        .collect();
    if let Err(e) = policy.require(Permission::OrdersRetry) {
        policy
            .audit(
                &panel.accounts,
                "panel notification.retry",
                Some(&key),
                false,
            )
            .await;
        return app_error(&e);
    }
    let notes = or_page!(notifier(notes));
    let outcome = notes.retry(&key).await;
    policy
        .audit(
            &panel.accounts,
            "panel notification.retry",
            Some(&key),
            outcome.is_ok(),
        )
        .await;
    let done = match outcome {
        Ok(_) => "sent",
        Err(RetryError::NotFailed(_)) => "already",
        Err(RetryError::NotSent(_)) => "refused",
        Err(RetryError::NoLongerApplies(_)) => "gone",
        Err(RetryError::InFlight) => "busy",
        Err(RetryError::App(e)) => return app_error(&e),
    };
    see(&format!("/admin/notifications?done={done}"))
}
