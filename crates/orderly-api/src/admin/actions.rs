//! What staff do to an order from the panel. An action that changes the order is shown first
//! with its effect, asks for a reason, and is confirmed with the order's version: a second
//! post of the same form (a double click, a reload) finds a newer version and does nothing. A
//! note carries the form's request id, so the same form adds one note however often it is sent.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use orderly_core::access::{
    Action as Allowed, AddNote, Cancel, Edit, Engineer, HandOver, Permit, Refund, Retry,
};
use orderly_core::orders::MAX_REASON;
use orderly_domain::Address;

use super::pages::{OrderView, explain, not_allowed};
use super::session::{Me, Staff};
use super::{Fields, Panel, Segments, app_error, refused_if, render, see};

/// The actions that go through a confirmation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Retry,
    Cancel,
    HandOver,
    Refund,
    Message,
}

impl Action {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "retry" => Some(Action::Retry),
            "cancel" => Some(Action::Cancel),
            "handover" => Some(Action::HandOver),
            "refund" => Some(Action::Refund),
            "message" => Some(Action::Message),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Cancel => "cancel",
            Action::HandOver => "handover",
            Action::Refund => "refund",
            Action::Message => "message",
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
    button: String,
    reason_required: bool,
    max_reason: usize,
    error: Option<String>,
    /// The amount field, labelled, with what was typed.
    amount: Option<(String, String)>,
    /// What the form carries from its first step to its second.
    hidden: Vec<(&'static str, String)>,
    /// What was typed as the reason.
    reason: String,
    /// A choice to make, as radio buttons: its legend, and each option's value and words.
    choices: Option<(String, Vec<(&'static str, String)>)>,
}

/// What a confirmation page says and asks.
struct Confirmation {
    order: orderly_domain::Order,
    title: String,
    effect: Vec<String>,
    button: String,
    reason_required: bool,
    amount: Option<(String, String)>,
    hidden: Vec<(&'static str, String)>,
    reason: String,
    choices: Option<(String, Vec<(&'static str, String)>)>,
}

impl Confirmation {
    fn of(
        order: orderly_domain::Order,
        title: String,
        effect: Vec<String>,
        button: &str,
        reason_required: bool,
    ) -> Self {
        Confirmation {
            order,
            title,
            effect,
            button: button.to_owned(),
            reason_required,
            amount: None,
            hidden: Vec::new(),
            reason: String::new(),
            choices: None,
        }
    }
}

/// Leave to do `A` to order `id`, or the page that says why not (`what` names the action to a
/// role that may not do it). With `audited`, the name of a change being posted: a refusal of
/// it is in the audit log like any other attempt.
async fn permit<A: Allowed>(
    panel: &Panel,
    staff: &Staff,
    id: &str,
    what: &str,
    audited: Option<&str>,
) -> Result<Permit<A>, Box<Response>> {
    let policy = staff.policy();
    let refused = match policy.order::<A>(&panel.app.orders, id).await {
        Ok(p) => return Ok(p),
        Err(orderly_core::AppError::Forbidden(_)) => not_allowed(what),
        Err(e) => app_error(&e),
    };
    if let Some(action) = audited {
        policy
            .audit(&panel.accounts, &format!("panel {action}"), Some(id), false)
            .await;
    }
    Err(Box::new(refused))
}

/// Leave to do `A` on condition that the order is still at the version the form was made from
/// (see [`Permit::expecting`]); a form without one is answered as made from an older version.
async fn versioned<A: Allowed>(
    panel: &Panel,
    staff: &Staff,
    (id, what, audited): (&str, &str, &str),
    form: &Fields,
) -> Result<Permit<A>, Box<Response>> {
    let permit = permit::<A>(panel, staff, id, what, Some(audited)).await?;
    match form.get("version").and_then(|v| v.parse::<u32>().ok()) {
        Some(version) => Ok(permit.expecting(version)),
        None => Err(Box::new(see(&format!("/admin/orders/{id}?done=changed")))),
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
    confirmation_with(panel, staff, id, action, error, None).await
}

/// The confirmation, with what was typed the first time (the refund's amount and reason).
async fn confirmation_with(
    panel: &Panel,
    staff: &Staff,
    id: &str,
    action: Action,
    error: Option<String>,
    typed: Option<(&str, &str)>,
) -> Response {
    let raw = staff
        .session
        .principal
        .can(orderly_auth::Permission::RawErrors);
    let page = match action {
        Action::Retry => {
            let permit =
                or_page!(permit::<Retry>(panel, staff, id, "Running a step again", None).await);
            if let Some(attention) = permit.order().needs_attention.clone() {
                let mut effect = vec![
                    explain(&attention.step, &attention.error, attention.attempts),
                    format!(
                        "The {} step runs again now, with a fresh set of automatic retries.",
                        attention.step
                    ),
                ];
                if attention.step == "payment" {
                    effect.push(
                        "A payment that did go through earlier is not taken twice.".to_owned(),
                    );
                }
                Confirmation::of(
                    permit.into_order(),
                    "Run it again".to_owned(),
                    effect,
                    "Retry now",
                    false,
                )
            } else {
                // A step waiting for its automatic try runs now instead.
                let waiting = match panel.app.support.waiting(&permit).await {
                    Ok(w) => w,
                    Err(e) => return app_error(&e),
                };
                let Some(w) = waiting.iter().find(|w| !w.running) else {
                    return app_error(&orderly_core::AppError::NotNow(format!(
                        "order {id} does not need attention and no step waits for an automatic retry; there is nothing to retry"
                    )));
                };
                let now = orderly_core::ports::Clock::now(&orderly_core::ports::SystemClock);
                let mut effect = vec![
                    format!("{} ({} tries so far).", w.describe(), w.attempts),
                    format!(
                        "The {} step runs now instead of waiting for its {}.",
                        w.step.as_str(),
                        w.when(now)
                    ),
                ];
                if w.step == orderly_core::ports::Consumer::Payment {
                    effect.push(
                        "A payment that did go through earlier is not taken twice.".to_owned(),
                    );
                }
                if w.class
                    .is_some_and(orderly_core::retry::FailureClass::is_refusal)
                {
                    effect.push(
                        "This try counts like the automatic ones: if it is refused again and it was the last, the order is rejected and its stock goes back on sale.".to_owned(),
                    );
                }
                Confirmation::of(
                    permit.into_order(),
                    "Try it now".to_owned(),
                    effect,
                    "Retry now",
                    false,
                )
            }
        }
        Action::Cancel => {
            let permit =
                or_page!(permit::<Cancel>(panel, staff, id, "Canceling an order", None).await);
            if !permit.unlimited() && permit.order().has_unrefunded_payment() {
                return super::error_page(
                    axum::http::StatusCode::FORBIDDEN,
                    "A manager cancels a paid order",
                    "Canceling it refunds what the customer paid, which your role does not do. Ask a manager, or refund part of it within your limit from the order page.",
                );
            }
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
            Confirmation::of(
                order,
                "Cancel the order".to_owned(),
                effect,
                "Cancel order",
                true,
            )
        }
        Action::HandOver => {
            let permit = or_page!(
                permit::<HandOver>(panel, staff, id, "Handing a case to engineering", None).await
            );
            let order = permit.into_order();
            let effect = vec![
                "Engineering gets the case with a frozen copy of the order as it is now: every step it went through, the raw errors, the payment provider's references. The customer's name and street are masked.".to_owned(),
                "The case stays in the queue, marked as engineering's, and nobody retries it until engineering sends it back with a note; nothing about the order itself changes.".to_owned(),
                "Say what you tried and what you saw, so that nobody has to ask.".to_owned(),
            ];
            Confirmation::of(
                order,
                "Hand to engineering".to_owned(),
                effect,
                "Hand to engineering",
                true,
            )
        }
        Action::Message => {
            let permit = or_page!(
                permit::<AddNote>(panel, staff, id, "Writing to the customer", None).await
            );
            let order = permit.into_order();
            let effect = vec![
                "The customer gets the message you choose by e-mail, in the shop's words; it is on the order's timeline with your name and reason.".to_owned(),
                "If the mail server does not take it, it is listed under Messages not sent, to send again.".to_owned(),
            ];
            Confirmation {
                choices: Some((
                    "Which message".to_owned(),
                    STAFF_MESSAGES
                        .iter()
                        .map(|(name, words)| (*name, (*words).to_owned()))
                        .collect(),
                )),
                ..Confirmation::of(
                    order,
                    "Send the customer a message".to_owned(),
                    effect,
                    "Send the message",
                    false,
                )
            }
        }
        Action::Refund => {
            let permit = or_page!(
                permit::<Refund>(panel, staff, id, "Refunding part of a payment", None).await
            );
            or_page!(refund_form(panel, permit, typed))
        }
    };
    let rendered = render(&ConfirmPage {
        me: staff.me(),
        order: OrderView::of(&page.order, raw),
        action: action.as_str(),
        title: page.title,
        effect: page.effect,
        button: page.button,
        reason_required: page.reason_required,
        max_reason: MAX_REASON,
        error: error.clone(),
        amount: page.amount,
        hidden: page.hidden,
        reason: page.reason,
        choices: page.choices,
    });
    refused_if(rendered, error.is_some())
}

/// What a refused change says, for a form shown again.
fn refusal_words(e: &orderly_core::AppError) -> String {
    match e {
        orderly_core::AppError::Invalid(errors) => errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// The messages staff send by hand, and what each says, in the panel's words.
const STAFF_MESSAGES: [(&str, &str); 3] = [
    (
        "contact_payment",
        "The card was declined: we hold the items, will try again, and can help pay another way.",
    ),
    (
        "contact_address",
        "The carrier cannot deliver: please reply with the right address and a phone number.",
    ),
    (
        "contact_delay",
        "The order is taking longer than it should: someone is on it, nothing is needed from them.",
    ),
];

/// The refund's first step: how much, and why, with what is left to refund and the caller's
/// limit; or, once an amount reads, its second: exactly what goes back, to confirm.
fn refund_form(
    panel: &Panel,
    permit: Permit<Refund>,
    typed: Option<(&str, &str)>,
) -> Result<Confirmation, Box<Response>> {
    let unlimited = permit.unlimited();
    let order = permit.into_order();
    let Some(payment) = order.payment.clone() else {
        return Err(Box::new(app_error(&orderly_core::AppError::NotNow(
            format!(
                "nothing was captured for order {}, so there is nothing to refund",
                order.id
            ),
        ))));
    };
    let left = order.refund_left().unwrap_or(payment.refundable());
    let mut effect = vec![format!(
        "{} was captured; {} is left to refund.",
        payment.amount, left
    )];
    if payment.refund_pending.is_some() {
        effect
            .push("A refund asked for earlier is still being made; it counts already.".to_owned());
    }
    if !unlimited {
        effect.push(match panel.app.orders.refund_limit(order.currency) {
            Some(limit) => format!("Your role refunds up to {limit} of one order in all."),
            None => format!(
                "Your role has no refund limit in {}: a manager refunds this order.",
                order.currency.code()
            ),
        });
    }
    let (amount_text, reason) = typed.unwrap_or(("", ""));
    let amount = orderly_domain::Money::parse(amount_text.trim(), order.currency).ok();
    match amount.filter(|m| m.minor() > 0 && !reason.trim().is_empty()) {
        // The second step: the exact amount, confirmed with one more click.
        Some(amount) => {
            let effect = vec![
                format!("{amount} goes back to the payment method the order was paid with."),
                format!(
                    "{} is left to refund afterwards.",
                    orderly_domain::Money::from_minor(left.minor() - amount.minor(), left.currency())
                ),
                "The customer is told by e-mail; the refund is on the order's timeline with your name and reason.".to_owned(),
            ];
            let button = format!("Refund {amount}");
            Ok(Confirmation {
                hidden: vec![
                    ("amount", amount.to_decimal_string()),
                    ("confirmed", "yes".to_owned()),
                ],
                reason: reason.to_owned(),
                ..Confirmation::of(order, format!("Refund {amount}"), effect, &button, true)
            })
        }
        None => {
            let label = format!("Amount to refund, in {}", order.currency.code());
            Ok(Confirmation {
                amount: Some((label, amount_text.to_owned())),
                reason: reason.to_owned(),
                ..Confirmation::of(
                    order,
                    "Refund part of the payment".to_owned(),
                    effect,
                    "Review the refund",
                    true,
                )
            })
        }
    }
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
    let policy = staff.policy();
    let audited = Some(action.as_str());
    let outcome = match action.as_str() {
        "note" => {
            let permit =
                or_page!(permit::<AddNote>(&panel, &staff, &id, "Writing a note", audited).await);
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
            let permit = or_page!(
                versioned::<Retry>(
                    &panel,
                    &staff,
                    (&id, "Running a step again", &action),
                    &form
                )
                .await
            );
            panel
                .app
                .support
                .retry(permit, reason.as_deref())
                .await
                .map(|_| "retried")
        }
        "cancel" => {
            let permit = or_page!(
                versioned::<Cancel>(&panel, &staff, (&id, "Canceling an order", &action), &form)
                    .await
            );
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
        "refund" => {
            let permit = or_page!(
                versioned::<Refund>(
                    &panel,
                    &staff,
                    (&id, "Refunding part of a payment", &action),
                    &form
                )
                .await
            );
            let amount = form.get("amount").unwrap_or_default();
            let typed = Some((amount, reason.as_deref().unwrap_or_default()));
            // The first post shows exactly what goes back; only the second refunds.
            let parsed = orderly_domain::Money::parse(amount.trim(), permit.order().currency);
            let order = permit.order();
            // A form made from an older version (a double click) did its refund already.
            if form.get("version").and_then(|v| v.parse::<u32>().ok()) != Some(order.version) {
                return see(&format!("{back}?done=changed"));
            }
            // The use case's own rules, checked before the review shows what goes back.
            let checked = parsed
                .as_ref()
                .map_err(|e| format!("The amount: {e}. Write it like 12.50."))
                .and_then(|m| {
                    panel
                        .app
                        .orders
                        .check_refund(&permit, *m)
                        .map_err(|e| refusal_words(&e))
                });
            let problem = match (checked, &reason) {
                (Err(words), _) => Some(words),
                (Ok(()), None) => {
                    Some("Say why the money goes back: a missing item, a late parcel, …".to_owned())
                }
                (Ok(()), Some(_)) => None,
            };
            if problem.is_some() || form.get("confirmed") != Some("yes") {
                return confirmation_with(&panel, &staff, &id, Action::Refund, problem, typed)
                    .await;
            }
            let (Ok(amount), Some(reason)) = (parsed, reason) else {
                return unknown_action();
            };
            panel
                .app
                .orders
                .refund(permit, amount, &reason)
                .await
                .map(|_| "refunded")
        }
        "message" => {
            let permit = or_page!(
                versioned::<AddNote>(
                    &panel,
                    &staff,
                    (&id, "Writing to the customer", &action),
                    &form
                )
                .await
            );
            let Some(message) = form
                .get("message")
                .filter(|m| STAFF_MESSAGES.iter().any(|(name, _)| name == m))
            else {
                return confirmation(
                    &panel,
                    &staff,
                    &id,
                    Action::Message,
                    Some("Choose the message to send.".into()),
                )
                .await;
            };
            panel
                .app
                .support
                .contact_customer(permit, message, reason.as_deref())
                .await
                .map(|_| "messaged")
        }
        "handover" => {
            let permit = or_page!(
                versioned::<HandOver>(
                    &panel,
                    &staff,
                    (&id, "Handing a case to engineering", &action),
                    &form
                )
                .await
            );
            let Some(reason) = reason else {
                return confirmation(
                    &panel,
                    &staff,
                    &id,
                    Action::HandOver,
                    Some("Say what you tried and what you saw.".into()),
                )
                .await;
            };
            panel
                .app
                .support
                .hand_to_engineering(permit, &reason)
                .await
                .map(|_| "handed")
        }
        "sendback" => {
            let permit = or_page!(
                permit::<Engineer>(
                    &panel,
                    &staff,
                    &id,
                    "Sending a case back from engineering",
                    audited,
                )
                .await
            );
            let note = form.get("note").map(str::trim).unwrap_or_default();
            match panel.app.support.send_back(permit, note).await {
                Ok(_) => Ok("sent-back"),
                Err(orderly_core::AppError::Invalid(_)) => {
                    return super::error_page(
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                        "Please write a resolution note",
                        "Say what engineering found and what support should do now (at most 4000 characters), then send the case back.",
                    );
                }
                Err(e) => Err(e),
            }
        }
        _ => return unknown_action(),
    };
    // A form made from an older version changed nothing: not an attempt worth a line.
    if !matches!(outcome, Err(orderly_core::AppError::Changed(_))) {
        policy
            .audit(
                &panel.accounts,
                &format!("panel {action}"),
                Some(&id),
                outcome.is_ok(),
            )
            .await;
    }
    match outcome {
        Ok("sent-back") => see("/admin/engineering?done=sent-back"),
        Ok(done) => see(&format!("{back}?done={done}")),
        // A second post of the same form, or someone else was quicker: nothing was done.
        Err(orderly_core::AppError::Changed(_)) => see(&format!("{back}?done=changed")),
        Err(e @ orderly_core::AppError::Invalid(_)) if Action::parse(&action).is_some() => {
            let words = refusal_words(&e);
            match Action::parse(&action) {
                Some(a) => confirmation(&panel, &staff, &id, a, Some(words)).await,
                None => unknown_action(),
            }
        }
        Err(e) => app_error(&e),
    }
}

/// One field of the address form.
struct AddressField {
    name: &'static str,
    label: &'static str,
    value: String,
    required: bool,
    max: usize,
    hint: Option<&'static str>,
    autocomplete: &'static str,
}

#[derive(Template)]
#[template(path = "admin/address.html")]
struct AddressPage {
    me: Me,
    order: OrderView,
    fields: Vec<AddressField>,
    max_reason: usize,
    error: Option<String>,
}

/// The form's fields, filled from `address` (what the order has, or what was just sent).
fn address_fields(address: Option<&Address>) -> Vec<AddressField> {
    let value = |f: fn(&Address) -> Option<&str>| {
        address.and_then(f).map(str::to_owned).unwrap_or_default()
    };
    let field = |name, label, value, required, autocomplete| AddressField {
        name,
        label,
        value,
        required,
        max: Address::MAX_LINE,
        hint: None,
        autocomplete,
    };
    vec![
        field("name", "Recipient", value(|a| Some(&a.name)), true, "name"),
        field(
            "line1",
            "Street and number",
            value(|a| Some(&a.line1)),
            true,
            "address-line1",
        ),
        field(
            "line2",
            "Flat, floor, building",
            value(|a| a.line2.as_deref()),
            false,
            "address-line2",
        ),
        field(
            "city",
            "City or town",
            value(|a| Some(&a.city)),
            true,
            "address-level2",
        ),
        field(
            "region",
            "State, prefecture or province",
            value(|a| a.region.as_deref()),
            false,
            "address-level1",
        ),
        field(
            "postalCode",
            "Postal code",
            value(|a| a.postal_code.as_deref()),
            false,
            "postal-code",
        ),
        AddressField {
            max: 2,
            hint: Some("Two capital letters: JP, DE, BR, SA…"),
            ..field(
                "country",
                "Country code",
                value(|a| Some(&a.country)),
                true,
                "country",
            )
        },
    ]
}

/// The address as the form sent it: optional parts left empty are absent.
fn sent_address(form: &Fields) -> Address {
    let text = |name| form.get(name).unwrap_or_default().trim().to_owned();
    let optional = |name| Some(text(name)).filter(|v: &String| !v.is_empty());
    Address {
        name: text("name"),
        line1: text("line1"),
        line2: optional("line2"),
        city: text("city"),
        region: optional("region"),
        postal_code: optional("postalCode"),
        country: text("country").to_uppercase(),
    }
}

async fn address_page(
    panel: &Panel,
    staff: &Staff,
    id: &str,
    sent: Option<(&Address, String)>,
) -> Response {
    let permit = or_page!(permit::<Edit>(panel, staff, id, "Correcting an address", None).await);
    let raw = staff
        .session
        .principal
        .can(orderly_auth::Permission::RawErrors);
    let order = permit.into_order();
    if !order.status.accepts_address_change() {
        return app_error(&orderly_core::AppError::NotNow(format!(
            "order {id} is {}; its address can change only until it ships",
            order.status.as_str()
        )));
    }
    let (shown, error) = match sent {
        Some((address, error)) => (Some(address), Some(error)),
        None => (order.shipping_address.as_ref(), None),
    };
    let page = render(&AddressPage {
        me: staff.me(),
        fields: address_fields(shown),
        order: OrderView::of(&order, raw),
        max_reason: MAX_REASON,
        error: error.clone(),
    });
    refused_if(page, error.is_some())
}

/// The address correction form, filled with the order's address.
pub(crate) async fn address_form(
    State(panel): State<Panel>,
    staff: Staff,
    Segments(id): Segments<String>,
) -> Response {
    address_page(&panel, &staff, &id, None).await
}

/// The corrected address, posted: the same use case as `PUT /v1/orders/{id}/shipping-address`,
/// on the version the form was made from; a field that does not pass shows the form again
/// with what was typed and what to fix.
pub(crate) async fn correct_address(
    State(panel): State<Panel>,
    staff: Staff,
    Segments(id): Segments<String>,
    form: Fields,
) -> Response {
    if !staff.sent(&form) {
        return super::session::stale_form();
    }
    let back = format!("/admin/orders/{id}");
    let permit = or_page!(
        versioned::<Edit>(
            &panel,
            &staff,
            (&id, "Correcting an address", "address"),
            &form
        )
        .await
    );
    let address = sent_address(&form);
    let reason = form.get("reason").map(str::trim).filter(|r| !r.is_empty());
    let outcome = panel
        .app
        .support
        .change_shipping_address(permit, address.clone(), reason)
        .await;
    if !matches!(outcome, Err(orderly_core::AppError::Changed(_))) {
        staff
            .policy()
            .audit(&panel.accounts, "panel address", Some(&id), outcome.is_ok())
            .await;
    }
    match outcome {
        Ok(_) => see(&format!("{back}?done=address")),
        Err(orderly_core::AppError::Changed(_)) => see(&format!("{back}?done=changed")),
        Err(orderly_core::AppError::Invalid(errors)) => {
            let words = errors
                .iter()
                .map(|e| format!("{}: {}", field_label(&e.field), e.message))
                .collect::<Vec<_>>()
                .join("; ");
            address_page(&panel, &staff, &id, Some((&address, words))).await
        }
        Err(e) => app_error(&e),
    }
}

/// The form's label for a field an error names (`shippingAddress.postalCode`).
fn field_label(field: &str) -> &'static str {
    let name = field.rsplit('.').next().unwrap_or(field);
    address_fields(None)
        .into_iter()
        .find(|f| f.name == name)
        .map_or("Reason", |f| f.label)
}
