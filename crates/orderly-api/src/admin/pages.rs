//! The pages that show: the needs-attention queue, an order with its whole timeline, a
//! customer with their orders, and the search box's answers.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use orderly_auth::Permission;
use orderly_core::access::{Read, ReadNotes};
use orderly_core::notify::Notifications;
use orderly_core::ports::{Clock, OrderFilter, SystemClock};
use orderly_core::support::Escalation;
use orderly_core::support::stage_one::Waiting;
use orderly_core::{AppError, page_request};
use orderly_domain::{
    CustomerId, Order, OrderId, OrderStatus, Timestamp, Transition, UNDELIVERABLE,
    error_is_internal,
};

use super::session::{Me, Staff};
use super::{Panel, Segments, app_error, error_page, query_value, render, see};

/// One case of the queue, in the words a support agent uses.
pub(crate) struct Case {
    pub(crate) order_id: String,
    pub(crate) customer_id: String,
    pub(crate) status: &'static str,
    pub(crate) what: String,
    pub(crate) age: String,
    pub(crate) attempts: u32,
    pub(crate) raw_error: Option<String>,
    pub(crate) can_retry: bool,
    pub(crate) can_correct: bool,
    pub(crate) can_cancel: bool,
    pub(crate) can_hand_over: bool,
    pub(crate) can_message: bool,
    /// While engineering has it: since when, from whom, why.
    pub(crate) with_engineering: Option<String>,
    /// What engineering said when it sent the case back.
    pub(crate) engineering_note: Option<String>,
}

/// One row of the dashboard's counts: a period and how many of its orders are in each status.
pub(crate) struct Counts {
    pub(crate) period: &'static str,
    pub(crate) total: u64,
    pub(crate) by_status: Vec<(&'static str, u64)>,
}

#[derive(Template)]
#[template(path = "admin/queue.html")]
struct QueuePage {
    me: Me,
    cases: Vec<Case>,
    stage_one: Vec<Retrying>,
    counts: Vec<Counts>,
    statuses: Vec<&'static str>,
    failed_messages: Option<usize>,
}

/// A step waiting for its automatic try, as the panel says it.
pub(crate) struct Retrying {
    pub(crate) order_id: String,
    pub(crate) what: String,
    pub(crate) when: String,
    /// When the try falls due (RFC 3339), for `<time>`.
    pub(crate) due: String,
    pub(crate) raw_error: Option<String>,
}

impl Retrying {
    pub(crate) fn of(w: &Waiting, raw: bool, now: Timestamp) -> Self {
        Retrying {
            order_id: w.order_id.to_string(),
            what: format!(
                "{} ({} {} so far, {} step).",
                w.describe(),
                w.attempts,
                if w.attempts == 1 { "try" } else { "tries" },
                w.step.as_str()
            ),
            when: w.when(now),
            due: w.due.to_rfc3339(),
            raw_error: w.error.clone().filter(|_| raw),
        }
    }
}

/// The start of the day `now` is in (UTC): the dashboard's "today".
fn start_of_day(now: Timestamp) -> Timestamp {
    Timestamp::from_millis(now.millis() - now.millis().rem_euclid(86_400_000))
}

/// The dashboard's counts, today (UTC) and the last 7 days; empty for a role that may not read
/// orders, or when the store does not answer (the queue still shows).
async fn counts(panel: &Panel, staff: &Staff, now: Timestamp) -> Vec<Counts> {
    if staff.policy().require(Permission::OrdersRead).is_err() {
        return Vec::new();
    }
    let periods = [
        ("Today (UTC)", start_of_day(now)),
        (
            "Last 7 days",
            Timestamp::from_millis(now.millis() - 7 * 86_400_000),
        ),
    ];
    let mut rows = Vec::new();
    for (period, since) in periods {
        match panel.app.orders.count_orders(since).await {
            Ok(found) => rows.push(Counts {
                period,
                total: found.iter().map(|(_, n)| n).sum(),
                by_status: OrderStatus::ALL
                    .into_iter()
                    .map(|st| {
                        let n = found.iter().find(|(s, _)| *s == st).map_or(0, |(_, n)| *n);
                        (st.as_str(), n)
                    })
                    .collect(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "the dashboard's counts did not read");
                return Vec::new();
            }
        }
    }
    rows
}

/// What went wrong, in plain words, for a step that gave up.
pub(crate) fn explain(step: &str, error: &str, attempts: u32) -> String {
    if step == UNDELIVERABLE {
        return format!(
            "The carrier cannot deliver to the shipping address: “{error}”. Check it with the customer and correct it."
        );
    }
    let error = error.to_lowercase();
    match step {
        "payment" if error.contains("declin") => {
            "The customer's card was declined when the payment was taken.".to_owned()
        }
        "payment" => format!(
            "The payment could not be taken: the payment provider did not answer ({attempts} tries)."
        ),
        "inventory" => format!(
            "The stock for this order could not be reserved: the system failed {attempts} times."
        ),
        other => format!("The {other} step failed {attempts} times and stopped trying."),
    }
}

/// How long ago `since` was, the way people say it: `4 min`, `3 h 12 min`, `2 d 5 h`.
pub(crate) fn age(since: Timestamp, now: Timestamp) -> String {
    let minutes = (now.millis() - since.millis()).max(0) / 60_000;
    match minutes {
        0 => "just now".to_owned(),
        m if m < 60 => format!("{m} min"),
        m if m < 24 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} d {} h", m / (24 * 60), m % (24 * 60) / 60),
    }
}

fn case(e: &Escalation, who: &orderly_auth::Principal, now: Timestamp) -> Case {
    let staff_may = !e.with_engineering();
    Case {
        order_id: e.order_id.to_string(),
        customer_id: e.customer_id.to_string(),
        status: e.status.as_str(),
        what: explain(&e.step, &e.error, e.attempts),
        age: age(e.since, now),
        attempts: e.attempts,
        raw_error: (who.can(Permission::RawErrors) && error_is_internal(&e.step))
            .then(|| e.error.clone()),
        can_retry: staff_may && !e.awaits_address() && who.can(Permission::OrdersRetry),
        can_correct: staff_may && e.awaits_address() && who.can(Permission::OrdersEdit),
        // A paid order refunds when canceled: a manager's call.
        can_cancel: staff_may
            && who.can(Permission::OrdersCancel)
            && e.status.after(Transition::Cancel).is_ok()
            && (e.status != OrderStatus::Paid || who.can(Permission::OrdersCancelPaid)),
        can_hand_over: staff_may && who.can(Permission::OrdersRetry),
        can_message: who.can(Permission::OrdersNote),
        with_engineering: e.engineering.as_ref().map(|h| {
            format!(
                "With engineering for {}, handed over by {}: “{}”",
                age(h.at, now),
                h.by,
                h.note
            )
        }),
        engineering_note: e.engineering_note.clone(),
    }
}

/// The start page: the orders of today and the week by status, every order that needs a
/// person, oldest first, and how many messages did not go out.
pub(crate) async fn queue(
    State(panel): State<Panel>,
    staff: Staff,
    notes: Option<Extension<Arc<Notifications>>>,
) -> Response {
    if let Err(e) = staff.policy().require(Permission::Escalations) {
        return app_error(&e);
    }
    let now = SystemClock.now();
    let found = match panel.app.support.escalations(true).await {
        Ok(mut found) => {
            found.sort_by_key(|e| e.since);
            found
        }
        Err(e) => return app_error(&e),
    };
    // Stage 1 at work; the queue still shows when it does not read.
    let raw = staff.session.principal.can(Permission::RawErrors);
    let stage_one = match panel.app.support.all_waiting().await {
        Ok(found) => found.iter().map(|w| Retrying::of(w, raw, now)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "the steps waiting for a retry did not read");
            Vec::new()
        }
    };
    // How many messages did not go out, up to a hundred (the page lists them).
    let failed_messages = match &notes {
        Some(Extension(n)) => n.failed(None, 100).await.ok().map(|f| f.len()),
        None => None,
    };
    render(&QueuePage {
        me: staff.me(),
        cases: found
            .iter()
            .map(|e| case(e, &staff.session.principal, now))
            .collect(),
        stage_one,
        counts: counts(&panel, &staff, now).await,
        statuses: OrderStatus::ALL.iter().map(|s| s.as_str()).collect(),
        failed_messages,
    })
}

/// One line of an order's timeline: a change of the order or a note.
pub(crate) struct Moment {
    pub(crate) at: String,
    pub(crate) who: String,
    pub(crate) what: String,
    pub(crate) detail: Option<String>,
    pub(crate) note: bool,
}

/// What an order page shows of the order.
pub(crate) struct OrderView {
    pub(crate) id: String,
    pub(crate) customer_id: String,
    pub(crate) status: &'static str,
    pub(crate) total: String,
    pub(crate) placed: String,
    pub(crate) address: Option<String>,
    pub(crate) lines: Vec<(String, u32, String, String)>,
    pub(crate) payment: Option<String>,
    pub(crate) shipment: Option<String>,
    pub(crate) attention: Option<String>,
    pub(crate) raw_error: Option<String>,
    pub(crate) version: u32,
}

impl OrderView {
    pub(crate) fn of(order: &Order, raw: bool) -> Self {
        OrderView {
            id: order.id.to_string(),
            customer_id: order.customer_id.to_string(),
            status: order.status.as_str(),
            total: order.total.to_string(),
            placed: order.created_at.to_rfc3339(),
            address: order.shipping_address.as_ref().map(|a| a.one_line()),
            lines: order
                .lines
                .iter()
                .map(|l| {
                    (
                        l.name.as_str().to_owned(),
                        l.quantity.get(),
                        l.unit_price.to_string(),
                        l.line_total.to_string(),
                    )
                })
                .collect(),
            payment: order.payment.as_ref().map(|p| {
                let refunded = p.amount.minor() - p.refundable().minor();
                if refunded > 0 {
                    format!("{} captured, {} left to refund", p.amount, p.refundable())
                } else {
                    format!("{} captured", p.amount)
                }
            }),
            shipment: order
                .shipment
                .as_ref()
                .map(|s| format!("{}, tracking {}", s.carrier, s.tracking_number)),
            attention: order
                .needs_attention
                .as_ref()
                .map(|a| explain(&a.step, &a.error, a.attempts)),
            raw_error: order
                .needs_attention
                .as_ref()
                .filter(|a| raw && a.error_is_internal())
                .map(|a| a.error.clone()),
            version: order.version,
        }
    }
}

/// What the viewer's role lets them do to this order now.
pub(crate) struct Allowed {
    pub(crate) retry: bool,
    pub(crate) cancel: bool,
    pub(crate) refund: bool,
    pub(crate) address: bool,
    pub(crate) note: bool,
}

#[derive(Template)]
#[template(path = "admin/order.html")]
struct OrderPage {
    me: Me,
    order: OrderView,
    timeline: Vec<Moment>,
    allowed: Allowed,
    done: Option<&'static str>,
    note_request: String,
    notes_missing: bool,
    max_note: usize,
    with_engineering: Option<String>,
    stage_one: Vec<Retrying>,
}

/// What a `?done=` after a change says (fixed words: nothing of the query is echoed).
fn done_message(query: Option<&str>) -> Option<&'static str> {
    Some(match query_value(query, "done")?.as_str() {
        "retried" => "Done: the step runs again now. This page shows the result once it is back.",
        "canceled" => "Done: the order is canceled; a captured payment is refunded.",
        "messaged" => "Done: the message is on its way to the customer; the timeline shows it.",
        "refunded" => {
            "Done: the refund is on its way to the customer's payment method; the timeline shows it once the provider has made it."
        }
        "noted" => "Done: your note is on the timeline.",
        "address" => "Done: the order ships to the new address; the old one is on the timeline.",
        "handed" => "Done: engineering has the case. It comes back to the queue with their note.",
        "changed" => {
            "Nothing was done: the order changed since you opened the form. Check it below and try again."
        }
        _ => return None,
    })
}

/// An order: what it is, where it stands, its whole timeline, and what may be done.
pub(crate) async fn order(
    State(panel): State<Panel>,
    staff: Staff,
    Segments(id): Segments<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let policy = staff.policy();
    let permit = match policy.order::<Read>(&panel.app.orders, &id).await {
        Ok(p) => p,
        Err(e) => return app_error(&e),
    };
    // A role without notes:read sees the timeline without notes; notes that do not read are
    // said to be missing rather than shown as none.
    let (notes, notes_missing) = match policy.order::<ReadNotes>(&panel.app.orders, &id).await {
        Ok(notes) => match panel.app.support.notes(&notes).await {
            Ok(notes) => (notes, false),
            Err(e) => {
                tracing::warn!(order_id = %id, error = %e, "an order's notes did not read");
                (Vec::new(), true)
            }
        },
        Err(_) => (Vec::new(), false),
    };
    let order = permit.order();
    let principal = &staff.session.principal;
    let raw = principal.can(Permission::RawErrors);
    let mut timeline: Vec<(Timestamp, Moment)> = order
        .history
        .iter()
        .map(|h| {
            (
                h.at,
                Moment {
                    at: h.at.to_rfc3339(),
                    who: h.actor.as_str().to_owned(),
                    what: format!("{} → {}", h.event.as_str(), h.to.as_str()),
                    detail: h.detail_for(raw).map(str::to_owned),
                    note: false,
                },
            )
        })
        .chain(notes.iter().map(|n| {
            (
                n.at,
                Moment {
                    at: n.at.to_rfc3339(),
                    who: n.author.clone(),
                    what: "Note".to_owned(),
                    detail: Some(n.text.clone()),
                    note: true,
                },
            )
        }))
        .collect();
    timeline.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    // While engineering has the case, it is theirs to send back before anyone retries.
    let with_engineering = match panel.app.support.case_of(&permit).await {
        Ok(case) => case.filter(Escalation::with_engineering).and_then(|c| {
            c.engineering.map(|h| {
                format!(
                    "Engineering has this case, handed over by {}: “{}”",
                    h.by, h.note
                )
            })
        }),
        Err(e) => return app_error(&e),
    };
    let now = SystemClock.now();
    let waiting = match panel.app.support.waiting(&permit).await {
        Ok(w) => w,
        Err(e) => return app_error(&e),
    };
    let allowed = Allowed {
        retry: with_engineering.is_none()
            && (order
                .needs_attention
                .as_ref()
                .is_some_and(|a| !a.awaits_address())
                || waiting.iter().any(|w| !w.running))
            && principal.can(Permission::OrdersRetry),
        cancel: order.status.after(Transition::Cancel).is_ok()
            && principal.can(Permission::OrdersCancel)
            && (!order.has_unrefunded_payment() || principal.can(Permission::OrdersCancelPaid)),
        refund: order.status != OrderStatus::Canceled
            && order.refund_left().is_some_and(|m| m.minor() > 0)
            && principal.can(Permission::OrdersRefund),
        address: order.status.accepts_address_change() && principal.can(Permission::OrdersEdit),
        note: principal.can(Permission::OrdersNote),
    };
    // Without a request id (the generator failed) a note is simply not deduplicated.
    let note_request = orderly_auth::token::random_secret(16).unwrap_or_default();
    render(&OrderPage {
        me: staff.me(),
        order: OrderView::of(order, raw),
        timeline: timeline.into_iter().map(|(_, m)| m).collect(),
        allowed,
        done: done_message(query.as_deref()),
        note_request,
        notes_missing,
        max_note: orderly_core::support::MAX_NOTE,
        with_engineering,
        stage_one: waiting.iter().map(|w| Retrying::of(w, raw, now)).collect(),
    })
}

/// One order in a list.
pub(crate) struct OrderRow {
    pub(crate) id: String,
    pub(crate) status: &'static str,
    pub(crate) total: String,
    pub(crate) placed: String,
    pub(crate) attention: bool,
}

impl OrderRow {
    pub(crate) fn of(o: &Order) -> Self {
        OrderRow {
            id: o.id.to_string(),
            status: o.status.as_str(),
            total: o.total.to_string(),
            placed: o.created_at.to_rfc3339(),
            attention: o.needs_attention.is_some() && o.status != OrderStatus::Canceled,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/customer.html")]
struct CustomerPage {
    me: Me,
    id: String,
    name: String,
    email: String,
    since: String,
    /// Their text-message number, if they gave one.
    phone: Option<String>,
    /// The addresses their latest orders went to, newest first, each once.
    addresses: Vec<String>,
    orders: Vec<OrderRow>,
    more: bool,
}

/// A customer and their latest orders.
pub(crate) async fn customer(
    State(panel): State<Panel>,
    staff: Staff,
    Segments(id): Segments<String>,
) -> Response {
    let policy = staff.policy();
    let missing = || {
        app_error(&AppError::NotFound {
            what: "customer",
            id: id.clone(),
        })
    };
    if let Err(e) = policy.require(Permission::CustomersRead) {
        return app_error(&e);
    }
    let Ok(customer_id) = CustomerId::parse(&id) else {
        return missing();
    };
    let customer = match panel.app.catalog.customer(&customer_id).await {
        Ok(c) => c,
        Err(e) => return app_error(&e),
    };
    let filter = match policy.orders_of(Some(customer_id)) {
        Ok(customer_id) => OrderFilter {
            status: None,
            customer_id,
        },
        Err(e) => return app_error(&e),
    };
    let page = match page_request(Some(50), None) {
        Ok(p) => p,
        Err(e) => return app_error(&e.into()),
    };
    let found = match panel.app.orders.list_orders(&filter, &page).await {
        Ok(f) => f,
        Err(e) => return app_error(&e),
    };
    let mut addresses: Vec<String> = Vec::new();
    for a in found
        .items
        .iter()
        .filter_map(|o| o.shipping_address.as_ref())
    {
        let line = a.one_line();
        if !addresses.contains(&line) {
            addresses.push(line);
        }
    }
    // The number is a detail of the page: one that does not read leaves it out.
    let phone = match panel.app.preferences.of(&customer.id).await {
        Ok(p) => p.sms_phone,
        Err(e) => {
            tracing::warn!(customer_id = %customer.id, error = %e, "a customer's preferences did not read");
            None
        }
    };
    render(&CustomerPage {
        me: staff.me(),
        id: customer.id.to_string(),
        name: customer.name.as_str().to_owned(),
        email: customer.email.as_str().to_owned(),
        since: customer.created_at.to_rfc3339(),
        phone,
        addresses,
        orders: found.items.iter().map(OrderRow::of).collect(),
        more: found.next_cursor.is_some(),
    })
}

#[derive(Template)]
#[template(path = "admin/orders.html")]
struct OrdersPage {
    me: Me,
    statuses: Vec<&'static str>,
    status: Option<&'static str>,
    orders: Vec<OrderRow>,
    /// The next page's link, if there is one.
    next: Option<String>,
}

/// Every order, newest first, a page at a time (keyset: the same time for the millionth page as
/// for the first), filtered by status.
pub(crate) async fn orders(
    State(panel): State<Panel>,
    staff: Staff,
    RawQuery(query): RawQuery,
) -> Response {
    let policy = staff.policy();
    if let Err(e) = policy.require(Permission::OrdersRead) {
        return app_error(&e);
    }
    let status = match query_value(query.as_deref(), "status").filter(|s| !s.is_empty()) {
        Some(s) => match OrderStatus::ALL.into_iter().find(|st| st.as_str() == s) {
            Some(st) => Some(st),
            None => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "There is no such status",
                    "Choose one of the statuses the list offers.",
                );
            }
        },
        None => None,
    };
    let cursor = query_value(query.as_deref(), "cursor").filter(|c| !c.is_empty());
    let page = match page_request(Some(50), cursor) {
        Ok(p) => p,
        Err(e) => return app_error(&e.into()),
    };
    let filter = OrderFilter {
        status,
        customer_id: None,
    };
    let found = match panel.app.orders.list_orders(&filter, &page).await {
        Ok(f) => f,
        // A cursor this server did not give: the list from its start.
        Err(AppError::InvalidCursor) => return see("/admin/orders"),
        Err(e) => return app_error(&e),
    };
    let next = found.next_cursor.map(|c| {
        let mut link = format!("/admin/orders?cursor={}", urlencoded(&c));
        if let Some(st) = status {
            link.push_str("&status=");
            link.push_str(st.as_str());
        }
        link
    });
    render(&OrdersPage {
        me: staff.me(),
        statuses: OrderStatus::ALL.iter().map(|s| s.as_str()).collect(),
        status: status.map(OrderStatus::as_str),
        orders: found.items.iter().map(OrderRow::of).collect(),
        next,
    })
}

/// `text` for a query string.
fn urlencoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One customer in the search's answer.
pub(crate) struct CustomerRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) email: String,
}

#[derive(Template)]
#[template(path = "admin/search.html")]
struct SearchPage {
    me: Me,
    q: String,
    orders: Vec<OrderRow>,
    customers: Vec<CustomerRow>,
    /// What the viewer's role does not let them see (orders, customers).
    hidden: Vec<&'static str>,
}

/// The search box: an order id, or its start, opens or lists orders; a customer id, a name or
/// a word of it, an e-mail or a phone number lists customers — in any script, accents aside.
/// One order, or one customer, found by a full id opens at once.
pub(crate) async fn search(
    State(panel): State<Panel>,
    staff: Staff,
    RawQuery(query): RawQuery,
) -> Response {
    let q = query_value(query.as_deref(), "q")
        .map(|q| q.trim().chars().take(200).collect::<String>())
        .unwrap_or_default();
    if let Ok(id) = OrderId::parse(&q)
        && staff
            .policy()
            .order::<Read>(&panel.app.orders, &id.to_string())
            .await
            .is_ok()
    {
        return see(&format!("/admin/orders/{id}"));
    }
    let principal = &staff.session.principal;
    let (see_orders, see_customers) = (
        principal.can(Permission::OrdersRead),
        principal.can(Permission::CustomersRead),
    );
    let found = match panel.app.support.search(&q).await {
        Ok(f) => f,
        Err(e) => return app_error(&e),
    };
    if let [only] = found.customers.as_slice()
        && found.orders.is_empty()
        && see_customers
        && only.id.as_str() == q
    {
        return see(&format!("/admin/customers/{}", only.id));
    }
    let mut hidden = Vec::new();
    if !see_orders && !found.orders.is_empty() {
        hidden.push("orders");
    }
    if !see_customers && !found.customers.is_empty() {
        hidden.push("customers");
    }
    let mut page = render(&SearchPage {
        me: staff.me(),
        orders: if see_orders {
            found.orders.iter().map(OrderRow::of).collect()
        } else {
            Vec::new()
        },
        customers: if see_customers {
            found
                .customers
                .iter()
                .map(|c| CustomerRow {
                    id: c.id.to_string(),
                    name: c.name.as_str().to_owned(),
                    email: c.email.as_str().to_owned(),
                })
                .collect()
        } else {
            Vec::new()
        },
        hidden,
        q,
    });
    if !page.status().is_server_error() {
        *page.status_mut() = StatusCode::OK;
    }
    page
}

/// A page for an action the viewer's role does not allow.
pub(crate) fn not_allowed(what: &str) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Your role does not allow this",
        &format!("{what} needs another role; ask a manager."),
    )
}
