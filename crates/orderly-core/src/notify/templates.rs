//! What a message says: the templates, who each is for, and the view of an order they are
//! rendered from; rendering itself is the [`Templates`] port, implemented in `orderly-notify`.

use orderly_domain::{Customer, Event, EventKind, Order};
use serde::{Deserialize, Serialize};

use crate::ports::Category;

/// The messages Orderly sends, one template each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    /// To the customer: we have your order.
    OrderConfirmation,
    /// To staff: a new order came in.
    NewOrder,
    /// To the customer: the payment did not go through.
    PaymentFailed,
    /// To the customer: handed to the carrier, with the tracking number (e-mail and SMS).
    Shipped,
    /// To the customer: delivered (e-mail and SMS).
    Delivered,
    /// To the customer: the order was canceled.
    Canceled,
    /// To the customer: money was refunded.
    Refunded,
    /// To staff: an order ran out of retries and needs a person.
    NeedsAttention,
    /// To the customer, marketing: after delivery, an invitation to review the purchase.
    ReviewRequest,
    /// To the customer, sent by staff: the card was declined, we hold the items and try again.
    ContactPayment,
    /// To the customer, sent by staff: the carrier cannot deliver; please send the address.
    ContactAddress,
    /// To the customer, sent by staff: the order is late and someone is on it.
    ContactDelay,
}

/// Who a template is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The order's customer.
    Customer,
    /// The shop's staff (admin e-mail, admin topic).
    Staff,
}

impl Template {
    /// Every template.
    pub const ALL: [Template; 12] = [
        Template::OrderConfirmation,
        Template::NewOrder,
        Template::PaymentFailed,
        Template::Shipped,
        Template::Delivered,
        Template::Canceled,
        Template::Refunded,
        Template::NeedsAttention,
        Template::ReviewRequest,
        Template::ContactPayment,
        Template::ContactAddress,
        Template::ContactDelay,
    ];

    /// The messages staff send a customer by hand, from the order or the queue.
    pub const BY_STAFF: [Template; 3] = [
        Template::ContactPayment,
        Template::ContactAddress,
        Template::ContactDelay,
    ];

    /// A message staff send by hand, by its name.
    #[must_use]
    pub fn by_staff(name: &str) -> Option<Template> {
        Template::BY_STAFF.into_iter().find(|t| t.as_str() == name)
    }

    /// The file name stem (`templates/{name}.txt`, `.html`, `.sms.txt`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Template::OrderConfirmation => "order_confirmation",
            Template::NewOrder => "new_order",
            Template::PaymentFailed => "payment_failed",
            Template::Shipped => "shipped",
            Template::Delivered => "delivered",
            Template::Canceled => "canceled",
            Template::Refunded => "refunded",
            Template::NeedsAttention => "needs_attention",
            Template::ReviewRequest => "review_request",
            Template::ContactPayment => "contact_payment",
            Template::ContactAddress => "contact_address",
            Template::ContactDelay => "contact_delay",
        }
    }

    /// Transactional, or marketing (which customers may refuse).
    #[must_use]
    pub fn category(self) -> Category {
        match self {
            Template::ReviewRequest => Category::Marketing,
            _ => Category::Transactional,
        }
    }

    /// Who it is for.
    #[must_use]
    pub fn audience(self) -> Audience {
        match self {
            Template::NewOrder | Template::NeedsAttention => Audience::Staff,
            _ => Audience::Customer,
        }
    }

    /// True if it also goes by SMS to a customer who gave a number.
    #[must_use]
    pub fn has_sms(self) -> bool {
        matches!(self, Template::Shipped | Template::Delivered)
    }

    /// The templates `event` produces: its kind's, or for a message staff sent, the one the
    /// event names.
    #[must_use]
    pub fn of_event(event: &Event) -> Vec<Template> {
        if event.kind == EventKind::CustomerContacted {
            return event
                .detail
                .as_deref()
                .and_then(|d| Template::by_staff(d.split(':').next().unwrap_or_default()))
                .into_iter()
                .collect();
        }
        Template::for_event(event.kind).to_vec()
    }

    /// The templates an event kind produces (a message staff send: see [`Template::of_event`]).
    #[must_use]
    pub fn for_event(kind: EventKind) -> &'static [Template] {
        match kind {
            EventKind::OrderPlaced => &[Template::OrderConfirmation, Template::NewOrder],
            EventKind::PaymentFailed => &[Template::PaymentFailed],
            EventKind::OrderShipped => &[Template::Shipped],
            EventKind::OrderDelivered => &[Template::Delivered, Template::ReviewRequest],
            EventKind::OrderCanceled => &[Template::Canceled],
            EventKind::RefundIssued => &[Template::Refunded],
            EventKind::OrderNeedsAttention => &[Template::NeedsAttention],
            _ => &[],
        }
    }
}

/// Which form of a template to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Subject, plain text and HTML (e-mail; topics use subject and text).
    Mail,
    /// One short plain text.
    Sms,
}

/// What a template sees: the order as the customer knows it, every value ready to print.
#[derive(Clone, Debug, Serialize)]
pub struct View {
    /// The shop's name, as configured.
    pub shop_name: String,
    /// The order's id.
    pub order_id: String,
    /// Its status now (`shipped`, …).
    pub status: String,
    /// The event's type (`OrderShipped`, …).
    pub event: String,
    /// The customer's id.
    pub customer_id: String,
    /// The customer's name, exactly as entered (empty if the customer is unknown).
    pub customer_name: String,
    /// The customer's e-mail address.
    pub customer_email: String,
    /// The lines ordered.
    pub lines: Vec<ViewLine>,
    /// The total in the order's currency (`¥1,000`, `$279.98`).
    pub total: String,
    /// ISO 4217 code of the order's currency.
    pub currency: String,
    /// Where it ships to, if given.
    pub address: Option<ViewAddress>,
    /// The carrier, once shipped.
    pub carrier: Option<String>,
    /// The tracking number, once shipped.
    pub tracking_number: Option<String>,
    /// The event's detail (why rejected, why it needs attention).
    pub detail: Option<String>,
    /// The amount of the refund the event is about (for an event no refund matches, all
    /// refunded so far).
    pub refunded: Option<String>,
}

/// A line of [`View`].
#[derive(Clone, Debug, Serialize)]
pub struct ViewLine {
    /// The product's name at the time of the order.
    pub name: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, formatted.
    pub unit_price: String,
    /// Price of the line, formatted.
    pub line_total: String,
}

/// A shipping address in [`View`], every part as entered.
#[derive(Clone, Debug, Serialize)]
pub struct ViewAddress {
    /// Who receives it.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// Flat, floor.
    pub line2: Option<String>,
    /// City.
    pub city: String,
    /// Region.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Country code.
    pub country: String,
}

impl View {
    /// The view of `order` after `event`.
    #[must_use]
    pub fn of(shop_name: &str, event: &Event, order: &Order, customer: Option<&Customer>) -> View {
        View {
            shop_name: shop_name.to_owned(),
            order_id: order.id.to_string(),
            status: order.status.as_str().to_owned(),
            event: event.kind.as_str().to_owned(),
            customer_id: order.customer_id.to_string(),
            customer_name: customer
                .map(|c| c.name.as_str().to_owned())
                .unwrap_or_default(),
            customer_email: customer
                .map(|c| c.email.as_str().to_owned())
                .unwrap_or_default(),
            lines: order
                .lines
                .iter()
                .map(|l| ViewLine {
                    name: l.name.as_str().to_owned(),
                    quantity: l.quantity.get(),
                    unit_price: l.unit_price.to_display_string(),
                    line_total: l.line_total.to_display_string(),
                })
                .collect(),
            total: order.total.to_display_string(),
            currency: order.currency.code().to_owned(),
            address: order.shipping_address.as_ref().map(|a| ViewAddress {
                name: a.name.clone(),
                line1: a.line1.clone(),
                line2: a.line2.clone(),
                city: a.city.clone(),
                region: a.region.clone(),
                postal_code: a.postal_code.clone(),
                country: a.country.clone(),
            }),
            carrier: order.shipment.as_ref().map(|s| s.carrier.clone()),
            tracking_number: order.shipment.as_ref().map(|s| s.tracking_number.clone()),
            detail: event.detail.clone(),
            // The refund this event is about (it was recorded at the event's moment), not all
            // refunds so far: a second part refunded says its own amount.
            refunded: order.payment.as_ref().and_then(|p| {
                p.refunds
                    .iter()
                    .find(|r| r.at == event.time)
                    .map(|r| r.amount)
                    .or_else(|| (!p.refunds.is_empty()).then(|| p.refunded()))
                    .map(orderly_domain::Money::to_display_string)
            }),
        }
    }
}

/// A rendered template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The plain text.
    pub text: String,
    /// The HTML (empty for [`Form::Sms`]).
    pub html: String,
}

/// Renders templates: the port `orderly-notify` implements with the files kept in the repo.
pub trait Templates: Send + Sync {
    /// Renders `template` in `form` for `view`.
    ///
    /// # Errors
    /// A message naming the template and what went wrong (a bug; not worth retrying).
    fn render(&self, template: Template, form: Form, view: &View) -> Result<Rendered, String>;
}
