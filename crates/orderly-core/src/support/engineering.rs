//! Stage 3: what staff cannot fix goes to engineering. Handing a case over freezes a bundle —
//! the order's saga trace, its events, the step's raw error, the provider's references and the
//! inputs with personal data masked, at the order's version then — in the same commit that
//! marks the case as engineering's and notes who handed it over and why. Engineers read the
//! bundle (as JSON too) and send the case back to the staff's queue with a resolution note.

use orderly_domain::text::check_text;
use orderly_domain::{
    Address, Attention, EventKind, Order, OrderId, OrderStatus, Stamp, Timestamp,
    UNDELIVERABLE_DETAIL,
};
use serde::{Deserialize, Serialize};

use super::{MAX_NOTE, Note, Support};
use crate::access::{Engineer, HandOver as HandOverAction, Permit};
use crate::commits::MAX_REASON;
use crate::documents::Versioned;
use crate::documents::{DocumentType, Documents};
use crate::error::AppError;
use crate::escalations::{Escalation, HandOver};
use crate::ports::{Commit, DocKind};

/// A case as it stood when staff handed it to engineering; it does not change afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseBundle {
    /// The order.
    pub order_id: OrderId,
    /// Its version when the case was handed over.
    pub order_version: u32,
    /// Its status then.
    pub status: OrderStatus,
    /// Who handed it over, when, and why.
    pub handed_over: HandOver,
    /// What the order waited for: the step, its raw error, the attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<Attention>,
    /// The saga trace: every change of the order, oldest first, with its raw detail.
    pub trace: Vec<TraceEntry>,
    /// The events published for the order, oldest first.
    pub events: Vec<EventEntry>,
    /// The payment provider's references: the authorization, the capture, each refund.
    pub provider_refs: Vec<String>,
    /// What the order was placed with, personal data masked.
    pub inputs: MaskedInputs,
    /// How many staff notes the order has (their words stay in the panel).
    pub notes: usize,
}

impl DocumentType for CaseBundle {
    const KIND: DocKind = DocKind::CaseBundle;
}

/// One change of the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceEntry {
    /// When.
    pub at: Timestamp,
    /// The event recorded.
    pub event: EventKind,
    /// Status before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<OrderStatus>,
    /// Status after.
    pub to: OrderStatus,
    /// Who or what (`system:payment`, `staff:…`).
    pub actor: String,
    /// The raw detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One event published for the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEntry {
    /// Its id (consumers record it).
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub time: Timestamp,
    /// The order's version after it.
    pub order_version: u32,
    /// Its detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The order's inputs with personal data masked: enough to reproduce, nothing to identify.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaskedInputs {
    /// The customer's id (not their name or e-mail).
    pub customer_id: String,
    /// The currency and exact total (`279.98 USD`).
    pub total: String,
    /// Each line: product id, quantity, unit price.
    pub lines: Vec<(String, u32, String)>,
    /// The shipping address with the recipient and street masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<String>,
    /// The payment method token, masked but for its kind and last four characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
}

/// `text` with all but its first character masked: `Z…`.
fn initial(text: &str) -> String {
    text.chars()
        .next()
        .map(|c| format!("{c}…"))
        .unwrap_or_default()
}

fn masked_address(a: &Address) -> String {
    let mut parts = vec![initial(&a.name), "…".to_owned()];
    parts.push(a.city.clone());
    parts.extend(a.region.clone());
    parts.extend(a.postal_code.clone());
    parts.push(a.country.clone());
    parts.join(", ")
}

/// A payment method token with only its kind (a short lowercase prefix such as `pm_`, when it
/// has one) and its last four characters left: `pm_…4242`.
fn masked_method(method: &str) -> String {
    let chars: Vec<char> = method.chars().collect();
    let last: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    match method.split_once('_') {
        Some((kind, _))
            if (1..=4).contains(&kind.len()) && kind.bytes().all(|b| b.is_ascii_lowercase()) =>
        {
            format!("{kind}_…{last}")
        }
        _ => format!("…{last}"),
    }
}

/// A history or event detail as the bundle keeps it: the words of the system and of staff,
/// but never an address — an address change says only that it happened, and what a carrier
/// said about an undeliverable address (which often quotes it) is left out.
fn masked_detail(event: EventKind, detail: Option<&str>) -> Option<String> {
    let detail = detail?;
    match event {
        EventKind::ShippingAddressChanged => Some("shipping address changed".to_owned()),
        EventKind::OrderNeedsAttention if detail.starts_with(UNDELIVERABLE_DETAIL) => Some(
            format!("{UNDELIVERABLE_DETAIL} (the carrier's words are masked)"),
        ),
        _ => Some(detail.to_owned()),
    }
}

impl MaskedInputs {
    fn of(order: &Order) -> Self {
        MaskedInputs {
            customer_id: order.customer_id.to_string(),
            total: order.total.to_string(),
            lines: order
                .lines
                .iter()
                .map(|l| {
                    (
                        l.product_id.to_string(),
                        l.quantity.get(),
                        l.unit_price.to_string(),
                    )
                })
                .collect(),
            shipping_address: order.shipping_address.as_ref().map(masked_address),
            payment_method: order.payment_method.as_deref().map(masked_method),
        }
    }
}

impl Support {
    /// Hands the order's open case to engineering (stage 3), saying why: freezes its
    /// [`CaseBundle`], marks the case as engineering's and adds a note by the permit's actor,
    /// all in one commit. Handing it over again while engineering has it changes nothing.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for an empty or too long `why`; [`AppError::NotNow`] if the order
    /// has no open case.
    pub async fn hand_to_engineering(
        &self,
        permit: Permit<HandOverAction>,
        why: &str,
    ) -> Result<CaseBundle, AppError> {
        check_text("reason", why, MAX_REASON)?;
        let (id, permit) = (permit.id(), &permit);
        let key = &id.to_string();
        self.changes
            .retrying(id, || async move {
                let order = self.orders.order(id).await?;
                permit.check_current(&order)?;
                let case = self.escalations.get(key).await?;
                let Some(mut case) = case.filter(|c| c.value.is_open()) else {
                    return Err(AppError::NotNow(format!(
                        "order {id} has no open case to hand to engineering"
                    )));
                };
                if case.value.with_engineering()
                    && let Some(bundle) = self.bundles.value(key).await?
                {
                    return Ok((Commit::default(), bundle));
                }
                let stamp = self.changes.stamp(permit.actor().clone());
                let handed = HandOver {
                    at: stamp.at,
                    by: stamp.actor.as_str().to_owned(),
                    note: why.trim().to_owned(),
                };
                let events = self.orders.events_of(id).await?;
                let notes = self.notes.value(key).await?.map_or(0, |n| n.notes.len());
                let bundle = bundle_of(&order, handed.clone(), events, notes);
                case.value.engineering = Some(handed);
                let said = format!("handed to engineering: {}", why.trim());
                let mut commit = self.case_commit(key, &case, &stamp, said).await?;
                let read = self.bundles.version(key).await?;
                commit.documents.push(Documents::write(key, &bundle, read)?);
                Ok((commit, bundle))
            })
            .await
    }

    /// The bundle frozen when the order's case was last handed to engineering.
    ///
    /// # Errors
    /// [`AppError::NotFound`] if it was never handed over; a storage failure.
    pub async fn case_bundle(&self, permit: &Permit<Engineer>) -> Result<CaseBundle, AppError> {
        self.bundles
            .value(&permit.id().to_string())
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "case bundle",
                id: permit.id().to_string(),
            })
    }

    /// Sends the case engineering has back to the staff's queue with a resolution note (what
    /// was found, what to do now); the note is on the case and the order's notes, by the
    /// permit's actor, in one commit. The case stays open for staff to settle.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for an empty note or one over [`MAX_NOTE`] characters;
    /// [`AppError::NotNow`] unless engineering has the case.
    pub async fn send_back(
        &self,
        permit: Permit<Engineer>,
        resolution: &str,
    ) -> Result<Escalation, AppError> {
        check_text("note", resolution, MAX_NOTE)?;
        let (id, permit) = (permit.id(), &permit);
        let key = &id.to_string();
        self.changes
            .retrying(id, || async move {
                let Some(mut case) = self.escalations.get(key).await? else {
                    return Err(AppError::NotNow(format!("order {id} has no case")));
                };
                if !case.value.with_engineering() {
                    return Err(AppError::NotNow(format!(
                        "engineering does not have the case of order {id}"
                    )));
                }
                let stamp = self.changes.stamp(permit.actor().clone());
                case.value.engineering = None;
                case.value.engineering_note = Some(resolution.trim().to_owned());
                let said = format!("engineering sent the case back: {}", resolution.trim());
                let commit = self.case_commit(key, &case, &stamp, said).await?;
                Ok((commit, case.value))
            })
            .await
    }
}

impl Support {
    /// The commit of a change to order `key`'s case: the case over the version read, and the
    /// note that says so by `stamp`'s actor.
    async fn case_commit(
        &self,
        key: &str,
        case: &Versioned<Escalation>,
        stamp: &Stamp,
        said: String,
    ) -> Result<Commit, AppError> {
        let mut commit = Commit::default();
        commit
            .documents
            .push(Documents::write(key, &case.value, Some(case.version))?);
        let note = Note {
            at: stamp.at,
            author: stamp.actor.as_str().to_owned(),
            text: said,
            request: None,
        };
        commit.documents.extend(self.note_write(key, note).await?);
        Ok(commit)
    }
}

fn bundle_of(
    order: &Order,
    handed_over: HandOver,
    events: Vec<orderly_domain::Event>,
    notes: usize,
) -> CaseBundle {
    let mut provider_refs = Vec::new();
    if let Some(p) = &order.payment {
        provider_refs.extend(p.authorization.clone());
        provider_refs.push(p.provider_ref.clone());
        provider_refs.extend(p.refunds.iter().map(|r| r.provider_ref.clone()));
    }
    CaseBundle {
        order_id: order.id,
        order_version: order.version,
        status: order.status,
        handed_over,
        attention: order.needs_attention.clone().map(|mut a| {
            if a.awaits_address() {
                a.error = "(the carrier's words are masked: they may quote the address)".to_owned();
            }
            a
        }),
        trace: order
            .history
            .iter()
            .map(|h| TraceEntry {
                at: h.at,
                event: h.event,
                from: h.from,
                to: h.to,
                actor: h.actor.as_str().to_owned(),
                detail: masked_detail(h.event, h.detail.as_deref()),
            })
            .collect(),
        events: events
            .into_iter()
            .map(|e| EventEntry {
                id: e.id.to_string(),
                kind: e.kind,
                time: e.time,
                order_version: e.order_version,
                detail: masked_detail(e.kind, e.detail.as_deref()),
            })
            .collect(),
        provider_refs,
        inputs: MaskedInputs::of(order),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_their_kind_and_last_four_only() {
        assert_eq!(masked_method("pm_1QabcdEFGH4242"), "pm_…4242");
        assert_eq!(masked_method("sim_unavailable_4"), "sim_…le_4");
        assert_eq!(
            masked_method("tok123secret"),
            "…cret",
            "no kind: nothing but the end"
        );
        assert_eq!(masked_method("Visa_4242424242424242"), "…4242");
        assert_eq!(masked_method("ab"), "…ab");
        assert_eq!(masked_method(""), "…");
        assert_eq!(initial("Zoé Ñúñez 🌻"), "Z…");
        assert_eq!(initial("山田 太郎"), "山…");
        assert_eq!(initial(""), "");
    }

    #[test]
    fn details_never_carry_an_address() {
        let changed = Some("shipping address changed from Zoé, Rua das Flores 12, Lisboa, PT to …");
        assert_eq!(
            masked_detail(EventKind::ShippingAddressChanged, changed).as_deref(),
            Some("shipping address changed")
        );
        let carrier =
            Some("the carrier cannot deliver to the shipping address: no Rua das Flroes 12");
        let masked = masked_detail(EventKind::OrderNeedsAttention, carrier).unwrap();
        assert!(!masked.contains("Rua"), "{masked}");
        let gave_up = Some("payment gave up after 4 attempts: provider down");
        assert_eq!(
            masked_detail(EventKind::OrderNeedsAttention, gave_up).as_deref(),
            gave_up,
            "a step's raw error is what engineering needs"
        );
        assert_eq!(masked_detail(EventKind::OrderPlaced, None), None);
    }
}
