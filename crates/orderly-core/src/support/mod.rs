//! What support staff do for a customer: notes on an order, correcting its shipping address
//! before it ships, and running a stuck step again.

use std::sync::Arc;

use orderly_domain::text::check_text;
use orderly_domain::{Address, AddressLocked, OrderId, OrderStatus, Timestamp, ValueError};
use serde::{Deserialize, Serialize};

use crate::access::{AddNote, Edit, Permit, ReadNotes, Retry};
use crate::commits::{Changes, MAX_REASON, order_change};
use crate::documents::{Change, DocumentType, Documents};
use crate::error::AppError;
use crate::orders::Orders;
use crate::ports::{
    Commit, Consumer, DocKind, DocumentStore, DocumentWrite, OrderWrite, Outgoing, StoreError,
};

/// Longest note, in characters.
pub const MAX_NOTE: usize = 4000;
/// Most notes on one order.
pub const MAX_NOTES: usize = 500;

/// A note staff left on an order: internal, never shown to the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// When.
    pub at: Timestamp,
    /// Who (`staff:…`, `key:…`, or `system` for changes recorded automatically).
    pub author: String,
    /// What, in any script, byte-exact.
    pub text: String,
    /// The form or request that wrote it, when it said: the same one again adds nothing (a
    /// double click, a retried post).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct NotesDoc {
    notes: Vec<Note>,
}

impl DocumentType for NotesDoc {
    const KIND: DocKind = DocKind::Notes;
}

/// Staff work on orders: notes, address corrections, retries of a step that gave up, and the
/// "needs attention" queue.
#[derive(Clone)]
pub struct Support {
    orders: Orders,
    changes: Changes,
    notes: Documents<NotesDoc>,
    escalations: Documents<Escalation>,
}

impl Support {
    /// Support over its ports (see [`crate::Application`]).
    pub(crate) fn new(orders: Orders, changes: Changes, documents: Arc<dyn DocumentStore>) -> Self {
        Support {
            orders,
            changes,
            notes: Documents::new(Arc::clone(&documents)),
            escalations: Documents::new(documents),
        }
    }

    /// The notes on an order, oldest first.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn notes(&self, permit: &Permit<ReadNotes>) -> Result<Vec<Note>, AppError> {
        Ok(self
            .notes
            .value(&permit.id().to_string())
            .await?
            .map(|d| d.notes)
            .unwrap_or_default())
    }

    /// Adds a note to an order, signed by the permit's actor. With a `request` id, a note of
    /// the same request already there is answered instead of adding another.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for an empty or too long note, or too many.
    pub async fn add_note(
        &self,
        permit: Permit<AddNote>,
        text: &str,
        request: Option<&str>,
    ) -> Result<Note, AppError> {
        let chars = text.chars().count();
        if text.trim().is_empty() || chars > MAX_NOTE {
            return Err(AppError::invalid(
                "text",
                format!("must be 1 to {MAX_NOTE} characters, got {chars}"),
            ));
        }
        let note = Note {
            at: self.changes.now(),
            author: permit.actor().as_str().to_owned(),
            text: text.to_owned(),
            request: request.map(str::to_owned),
        };
        self.notes
            .modify(&permit.id().to_string(), |read| {
                let mut doc = read.unwrap_or_default();
                if let Some(done) = doc
                    .notes
                    .iter()
                    .find(|n| n.request.is_some() && n.request == note.request)
                {
                    return Ok(Change::Keep(done.clone()));
                }
                if doc.notes.len() >= MAX_NOTES {
                    return Err(AppError::invalid(
                        "text",
                        format!("an order holds at most {MAX_NOTES} notes"),
                    ));
                }
                doc.notes.push(note.clone());
                Ok(Change::Write(doc, note.clone()))
            })
            .await
    }

    /// Corrects the shipping address of an order that has not shipped. The order's history
    /// gets a `ShippingAddressChanged` entry with the old and the new address, and the same
    /// words become a note by the permit's actor, in the same commit.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a bad address; [`AppError::NotNow`] once the order has
    /// shipped or ended.
    pub async fn change_shipping_address(
        &self,
        permit: Permit<Edit>,
        address: Address,
    ) -> Result<orderly_domain::Order, AppError> {
        address.validate().map_err(|errors| {
            AppError::Invalid(
                errors
                    .into_iter()
                    .map(|e| ValueError::new(&format!("shippingAddress.{}", e.field), e.message))
                    .collect(),
            )
        })?;
        let (id, actor) = (permit.id(), permit.actor());
        let (key, address) = (&id.to_string(), &address);
        self.changes
            .retrying(id, || async move {
                let mut order = self.orders.order(id).await?;
                let expected_version = order.version;
                let stamp = self.changes.stamp(actor.clone());
                let event = order
                    .change_shipping_address(address.clone(), &stamp)
                    .map_err(|AddressLocked(status)| {
                        AppError::NotNow(format!(
                            "order {id} is {}; its address can change only until it ships",
                            status.as_str()
                        ))
                    })?;
                let mut commit = order_change(order.clone(), expected_version, event, Vec::new());
                let notes = self.notes.get(key).await?;
                let version = notes.as_ref().map(|n| n.version);
                let mut doc = notes.map(|n| n.value).unwrap_or_default();
                // A full notes list never blocks the correction: the history holds it anyway.
                if doc.notes.len() < MAX_NOTES {
                    let said = order
                        .history
                        .last()
                        .and_then(|h| h.detail.clone())
                        .unwrap_or_default();
                    doc.notes.push(Note {
                        at: stamp.at,
                        author: actor.as_str().to_owned(),
                        text: said,
                        request: None,
                    });
                    commit
                        .documents
                        .push(Documents::write(key, &doc, version)?);
                } else {
                    tracing::info!(order_id = %id, "the order's notes are full; the address correction is in its history only");
                }
                Ok((commit, order))
            })
            .await
    }

    /// Runs the saga step that gave up on an order once more, with a fresh set of retries. The
    /// step keeps its idempotency keys, so a payment that did go through is not taken twice.
    /// The order's escalation is marked resolved by the permit's actor in the same commit; the
    /// `reason`, if given, is in the history entry.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a reason over [`MAX_REASON`] characters; [`AppError::NotNow`]
    /// if the order does not need attention.
    pub async fn retry(
        &self,
        permit: Permit<Retry>,
        reason: Option<&str>,
    ) -> Result<orderly_domain::Order, AppError> {
        if let Some(r) = reason {
            check_text("reason", r, MAX_REASON)?;
        }
        let (id, actor) = (permit.id(), permit.actor());
        let key = &id.to_string();
        self.changes
            .retrying(id, || async move {
                let mut order = self.orders.order(id).await?;
                let expected_version = order.version;
                let stamp = self.changes.stamp(actor.clone());
                let Some((step, event)) = order.request_retry(&stamp, reason) else {
                    return Err(AppError::NotNow(format!(
                        "order {id} does not need attention; there is nothing to retry"
                    )));
                };
                let consumer = Consumer::parse(&step).ok_or_else(|| {
                    AppError::Internal(format!("order {id} names an unknown step {step:?}"))
                })?;
                let mut documents = Vec::new();
                match self.escalations.get(key).await {
                    Ok(Some(mut entry)) => {
                        entry.value.resolved_at = Some(stamp.at);
                        entry.value.resolved_by = Some(actor.as_str().to_owned());
                        documents.push(Documents::write(key, &entry.value, Some(entry.version))?);
                    }
                    Ok(None) => {}
                    // The order is the truth; a queue entry that no longer reads must not
                    // block the retry. It is rewritten the next time a step gives up.
                    Err(StoreError::Corrupt(e)) => {
                        tracing::error!(order_id = %id, error = %e, "the escalation does not read; retrying without resolving it");
                    }
                    Err(e) => return Err(e.into()),
                }
                let commit = Commit {
                    order: Some(OrderWrite::Update {
                        order: order.clone(),
                        expected_version,
                    }),
                    events: vec![Outgoing {
                        event,
                        consumers: vec![consumer],
                    }],
                    documents,
                    ..Commit::default()
                };
                Ok((commit, order))
            })
            .await
    }
}

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
    /// The step (`inventory`, `payment`).
    pub step: String,
    /// The step's last error (raw: shown only with `errors:read`).
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was flagged.
    pub since: Timestamp,
    /// When staff had it retried, if they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// Who had it retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
}

impl DocumentType for Escalation {
    const KIND: DocKind = DocKind::Escalation;
}

impl Escalation {
    /// The open escalation of an order a step just flagged (`None` if it is not flagged).
    #[must_use]
    pub fn of(order: &orderly_domain::Order) -> Option<Self> {
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
        })
    }
}

/// The write of `order`'s escalation, for the commit that flags it: over the order's earlier
/// escalation if it had one.
///
/// # Errors
/// A storage failure.
pub(crate) async fn escalation_write(
    escalations: &Documents<Escalation>,
    order: &orderly_domain::Order,
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

impl Support {
    /// The staff's "needs attention" queue: orders a saga step gave up on, oldest first; with
    /// `open_only`, those not yet retried.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn escalations(&self, open_only: bool) -> Result<Vec<Escalation>, AppError> {
        let mut out: Vec<Escalation> = self
            .escalations
            .all()
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| !open_only || e.resolved_at.is_none())
            .collect();
        out.sort_by_key(|e| e.since);
        Ok(out)
    }
}
