//! What staff do to an order from the panel. An action that changes the order is shown first
//! with its effect, asks for a reason, and is confirmed with the order's version: a second
//! post of the same form (a double click, a reload) finds a newer version and does nothing. A
//! note carries the form's request id, so the same form adds one note however often it is sent.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use orderly_core::access::{Action as Allowed, AddNote, Cancel, Permit, Retry};
use orderly_core::orders::MAX_REASON;

use super::pages::{OrderView, explain, not_allowed};
use super::session::{Me, Staff};
use super::{Fields, Panel, Segments, app_error, render, see};

/// The actions that go through a confirmation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    Cancel,
}

impl Action {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "retry" => Some(Action::Retry),
            "cancel" => Some(Action::Cancel),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
        }
    }
}

#[derive(Template)]
#[template(path = "admin/confirm.html")]
struct ConfirmPage {
    me: Me,
    order: OrderView,
    action: &'static str,
    title: String,
    effect: Vec<String>,
    button: &'static str,
    reason_required: bool,
    max_reason: usize,
    error: Option<String>,
}

/// Leave to do `A` to order `id`, or the page that says why not (`what` names the action to a
/// role that may not do it).
async fn permit<A: Allowed>(
    panel: &Panel,
    staff: &Staff,
    id: &str,
    what: &str,
) -> Result<Permit<A>, Box<Response>> {
    match staff.policy().order::<A>(&panel.app.orders, id).await {
        Ok(p) => Ok(p),
        Err(orderly_core::AppError::Forbidden(_)) => Err(Box::new(not_allowed(what))),
        Err(e) => Err(Box::new(app_error(&e))),
    }
}

fn unknown_action() -> Response {
    super::error_page(
        axum::http::StatusCode::NOT_FOUND,
        "There is no such action",
        "Open the order and choose one of the actions it offers.",
    )
}

/// The confirmation of an action: what it will do, in plain words, and a reason.
pub(crate) async fn confirm(
    State(panel): State<Panel>,
    staff: Staff,
    Segments((id, action)): Segments<(String, String)>,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return unknown_action();
    };
    confirmation(&panel, &staff, &id, action, None).await
}

async fn confirmation(
    panel: &Panel,
    staff: &Staff,
    id: &str,
    action: Action,
    error: Option<String>,
) -> Response {
    let raw = staff
        .session
        .principal
        .can(orderly_auth::Permission::RawErrors);
    let (order, title, effect, button, reason_required) = match action {
        Action::Retry => {
            let permit = match permit::<Retry>(panel, staff, id, "Running a step again").await {
                Ok(p) => p,
                Err(page) => return *page,
            };
            let order = permit.into_order();
            let Some(attention) = order.needs_attention.clone() else {
                return app_error(&orderly_core::AppError::NotNow(format!(
                    "order {id} does not need attention; there is nothing to retry"
                )));
            };
            let mut effect = vec![
                explain(&attention.step, &attention.error, attention.attempts),
                format!(
                    "The {} step runs again now, with a fresh set of automatic retries.",
                    attention.step
                ),
            ];
            if attention.step == "payment" {
                effect.push("A payment that did go through earlier is not taken twice.".to_owned());
            }
            (order, "Run it again".to_owned(), effect, "Retry now", false)
        }
        Action::Cancel => {
            let permit = match permit::<Cancel>(panel, staff, id, "Canceling an order").await {
                Ok(p) => p,
                Err(page) => return *page,
            };
            let order = permit.into_order();
            let mut effect = vec![format!("Order {} is canceled.", order.id)];
            if orderly_core::orders::holds_stock(order.status) {
                effect.push("Its reserved stock goes back on sale.".to_owned());
            }
            match &order.payment {
                Some(p) if p.refundable().minor() > 0 => effect.push(format!(
                    "{} is refunded to the customer's payment method.",
                    p.refundable()
                )),
                _ => effect.push("No payment was taken, so nothing is refunded.".to_owned()),
            }
            effect.push("The customer is told by e-mail.".to_owned());
            (
                order,
                "Cancel the order".to_owned(),
                effect,
                "Cancel order",
                true,
            )
        }
    };
    let mut page = render(&ConfirmPage {
        me: staff.me(),
        order: OrderView::of(&order, raw),
        action: action.as_str(),
        title,
        effect,
        button,
        reason_required,
        max_reason: MAX_REASON,
        error: error.clone(),
    });
    if error.is_some() {
        *page.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    page
}

/// An action, posted: checked against the session's CSRF token and the version the form was
/// made from, then done through the same use case as the REST API, and audited.
pub(crate) async fn act(
    State(panel): State<Panel>,
    staff: Staff,
    Segments((id, action)): Segments<(String, String)>,
    form: Fields,
) -> Response {
    if !staff.sent(&form) {
        return super::session::stale_form();
    }
    let back = format!("/admin/orders/{id}");
    let reason = form
        .get("reason")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let version = form.get("version").and_then(|v| v.parse::<u32>().ok());
    let policy = staff.policy();
    let outcome = match action.as_str() {
        "note" => {
            let permit = match permit::<AddNote>(&panel, &staff, &id, "Writing a note").await {
                Ok(p) => p,
                Err(page) => return *page,
            };
            let text = form.get("text").unwrap_or_default();
            match panel
                .app
                .support
                .add_note(permit, text, form.get("request").filter(|r| !r.is_empty()))
                .await
            {
                Ok(_) => Ok("noted"),
                Err(e) => Err(e),
            }
        }
        "retry" => {
            let permit = match permit::<Retry>(&panel, &staff, &id, "Running a step again").await {
                Ok(p) => p,
                Err(page) => return *page,
            };
            if version != Some(permit.order().version) {
                return see(&format!("{back}?done=changed"));
            }
            panel
                .app
                .support
                .retry(permit, reason.as_deref())
                .await
                .map(|_| "retried")
        }
        "cancel" => {
            let permit = match permit::<Cancel>(&panel, &staff, &id, "Canceling an order").await {
                Ok(p) => p,
                Err(page) => return *page,
            };
            if version != Some(permit.order().version) {
                return see(&format!("{back}?done=changed"));
            }
            let Some(reason) = reason else {
                return confirmation(
                    &panel,
                    &staff,
                    &id,
                    Action::Cancel,
                    Some(
                        "Say why the order is canceled: the customer's request, a fraud check, …"
                            .into(),
                    ),
                )
                .await;
            };
            panel
                .app
                .orders
                .cancel(permit, Some(reason))
                .await
                .map(|_| "canceled")
        }
        _ => return unknown_action(),
    };
    policy
        .audit(
            &panel.accounts,
            &format!("panel {action}"),
            Some(&id),
            outcome.is_ok(),
        )
        .await;
    match outcome {
        Ok(done) => see(&format!("{back}?done={done}")),
        Err(orderly_core::AppError::Invalid(errors)) if Action::parse(&action).is_some() => {
            let words = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            match Action::parse(&action) {
                Some(a) => confirmation(&panel, &staff, &id, a, Some(words)).await,
                None => unknown_action(),
            }
        }
        Err(e) => app_error(&e),
    }
}
