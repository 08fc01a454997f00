//! The staff's "needs attention" queue, one entry per order a saga step gave up on: written in
//! the commit that flags the order, and resolved in the commit that settles it (a retry, a
//! cancellation), so the queue never disagrees with the orders it names.

use orderly_domain::{Order, OrderId, OrderStatus, Stamp, Timestamp};
use serde::{Deserialize, Serialize};

use crate::documents::{DocumentType, Documents};
use crate::ports::{DocKind, DocumentWrite, StoreError};

/// An order a saga step gave up on: an entry of the staff's "needs attention" queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Escalation {
    /// The order.
    pub order_id: OrderId,
    /// Its buyer.
    pub customer_id: orderly_domain::CustomerId,
    /// Its status when the step gave up.
    pub status: OrderStatus,
    /// The step (`inventory`, `payment`), or [`orderly_domain::UNDELIVERABLE`].
    pub step: String,
    /// The step's last error (raw: shown only with `errors:read`).
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was flagged.
    pub since: Timestamp,
    /// When staff settled it, if they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// Who settled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// How it was settled (absent in entries resolved before it was recorded: those were
    /// retried).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// Stage 3: when staff handed it to engineering, who, and why; cleared when engineering
    /// sends it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engineering: Option<HandOver>,
    /// What engineering said when it sent the case back (the last time it did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engineering_note: Option<String>,
}

/// A case handed to engineering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandOver {
    /// When.
    pub at: Timestamp,
    /// Who (`staff:…`).
    pub by: String,
    /// Why, in the words of the one who handed it over.
    pub note: String,
}

/// How staff settled an escalation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resolution {
    /// The step that gave up was run again.
    Retried,
    /// The order was canceled (its stock released, a captured payment refunded).
    Canceled,
    /// The shipping address the carrier could not deliver to was corrected.
    AddressCorrected,
}

impl Resolution {
    /// The word the API and the panel show.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Retried => "retried",
            Resolution::Canceled => "canceled",
            Resolution::AddressCorrected => "addressCorrected",
        }
    }
}

impl DocumentType for Escalation {
    const KIND: DocKind = DocKind::Escalation;
}

impl Escalation {
    /// The open escalation of an order a step just flagged (`None` if it is not flagged).
    #[must_use]
    pub fn of(order: &Order) -> Option<Self> {
        let attention = order.needs_attention.as_ref()?;
        Some(Escalation {
            order_id: order.id,
            customer_id: order.customer_id.clone(),
            status: order.status,
            step: attention.step.clone(),
            error: attention.error.clone(),
            attempts: attention.attempts,
            since: attention.since,
            resolved_at: None,
            resolved_by: None,
            resolution: None,
            engineering: None,
            engineering_note: None,
        })
    }

    /// True if it waits for a corrected address, not for a step to run again.
    #[must_use]
    pub fn awaits_address(&self) -> bool {
        self.step == orderly_domain::UNDELIVERABLE
    }

    /// True while engineering has it (stage 3).
    #[must_use]
    pub fn with_engineering(&self) -> bool {
        self.is_open() && self.engineering.is_some()
    }

    /// True until staff settle it.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.resolved_at.is_none()
    }
}

/// The write of `order`'s escalation, for the commit that flags it: over the order's earlier
/// escalation if it had one.
///
/// # Errors
/// A storage failure.
pub(crate) async fn flag_write(
    escalations: &Documents<Escalation>,
    order: &Order,
) -> Result<Option<DocumentWrite>, StoreError> {
    let Some(entry) = Escalation::of(order) else {
        return Ok(None);
    };
    let key = order.id.to_string();
    // Only the version is needed: an earlier entry that no longer reads is written over, and
    // never keeps the order from being flagged.
    let read = escalations.version(&key).await?;
    Documents::write(&key, &entry, read).map(Some)
}

/// The write that marks order `id`'s open escalation settled by `stamp`'s actor, for the commit
/// that settles it; `None` when it has no open one.
///
/// # Errors
/// A storage failure. An entry that no longer reads is left alone (and logged): the order is
/// the truth, and the entry is written over the next time a step gives up.
pub(crate) async fn resolve_write(
    escalations: &Documents<Escalation>,
    id: OrderId,
    stamp: &Stamp,
    how: Resolution,
) -> Result<Option<DocumentWrite>, StoreError> {
    let key = id.to_string();
    match escalations.get(&key).await {
        Ok(Some(mut entry)) if entry.value.is_open() => {
            entry.value.resolved_at = Some(stamp.at);
            entry.value.resolved_by = Some(stamp.actor.as_str().to_owned());
            entry.value.resolution = Some(how);
            Documents::write(&key, &entry.value, Some(entry.version)).map(Some)
        }
        Ok(_) => Ok(None),
        Err(StoreError::Corrupt(e)) => {
            tracing::error!(order_id = %id, error = %e, "the escalation does not read; settling the order without resolving it");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
