//! What support staff do for a customer: notes on an order, correcting its shipping address
//! before it ships, and running a stuck step again.

use orderly_domain::{Actor, Address, OrderId, OrderStatus, Timestamp, ValueError};
use serde::{Deserialize, Serialize};

use crate::app::Orderly;
use crate::error::AppError;
use crate::ports::{
    Commit, CommitError, Consumer, DocKind, Document, OrderWrite, Outgoing, StoreError,
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
}

#[derive(Default, Serialize, Deserialize)]
struct NotesDoc {
    notes: Vec<Note>,
}

const ATTEMPTS: usize = 5;

impl Orderly {
    /// The notes on an order, oldest first.
    ///
    /// # Errors
    /// [`AppError::NotFound`] for an unknown order.
    pub async fn notes(&self, id: OrderId) -> Result<Vec<Note>, AppError> {
        self.order(id).await?;
        Ok(self
            .notes_doc(id)
            .await?
            .map(|(d, _)| d.notes)
            .unwrap_or_default())
    }

    async fn notes_doc(&self, id: OrderId) -> Result<Option<(NotesDoc, u32)>, AppError> {
        let Some(doc) = self.store.document(DocKind::Notes, &id.to_string()).await? else {
            return Ok(None);
        };
        let notes = serde_json::from_str(&doc.body)
            .map_err(|e| AppError::Internal(format!("notes of {id}: {e}")))?;
        Ok(Some((notes, doc.version)))
    }

    /// Adds a note to an order.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for an empty or too long note, or too many; [`AppError::NotFound`]
    /// for an unknown order.
    pub async fn add_note(&self, id: OrderId, author: &str, text: &str) -> Result<Note, AppError> {
        let chars = text.chars().count();
        if text.trim().is_empty() || chars > MAX_NOTE {
            return Err(AppError::invalid(
                "text",
                format!("must be 1 to {MAX_NOTE} characters, got {chars}"),
            ));
        }
        self.order(id).await?;
        self.append_note(id, author, text).await
    }

    async fn append_note(&self, id: OrderId, author: &str, text: &str) -> Result<Note, AppError> {
        let note = Note {
            at: self.now(),
            author: author.to_owned(),
            text: text.to_owned(),
        };
        for _ in 0..ATTEMPTS {
            let (mut doc, version) = self
                .notes_doc(id)
                .await?
                .map_or((NotesDoc::default(), None), |(d, v)| (d, Some(v)));
            if doc.notes.len() >= MAX_NOTES {
                return Err(AppError::invalid(
                    "text",
                    format!("an order holds at most {MAX_NOTES} notes"),
                ));
            }
            doc.notes.push(note.clone());
            let body =
                serde_json::to_string(&doc).map_err(|e| AppError::Internal(e.to_string()))?;
            let write = Document {
                kind: DocKind::Notes,
                key: id.to_string(),
                version: version.map_or(1, |v| v + 1),
                body,
            };
            match self.store.put_document(&write, version).await {
                Ok(()) => return Ok(note),
                Err(StoreError::Conflict | StoreError::AlreadyExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(
            "the notes are being changed; try again".into(),
        ))
    }

    /// Corrects the shipping address of an order that has not shipped. The change is kept as a
    /// note with the old address.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a bad address; [`AppError::NotFound`]; an illegal transition
    /// once the order has shipped or ended.
    pub async fn change_shipping_address(
        &self,
        id: OrderId,
        address: Address,
        actor: &Actor,
    ) -> Result<orderly_domain::Order, AppError> {
        address.validate().map_err(|errors| {
            AppError::Invalid(
                errors
                    .into_iter()
                    .map(|e| ValueError::new(&format!("shippingAddress.{}", e.field), e.message))
                    .collect(),
            )
        })?;
        for _ in 0..ATTEMPTS {
            let mut order = self.order(id).await?;
            if !matches!(
                order.status,
                OrderStatus::Placed | OrderStatus::Reserved | OrderStatus::Paid
            ) {
                return Err(AppError::NotNow(format!(
                    "order {id} is {}; its address can change only until it ships",
                    order.status.as_str()
                )));
            }
            let before = order.shipping_address.replace(address.clone());
            let expected_version = order.version;
            order.version += 1;
            order.updated_at = self.now();
            let commit = Commit {
                order: Some(OrderWrite::Update {
                    order: order.clone(),
                    expected_version,
                }),
                ..Commit::default()
            };
            match self.store.commit(commit).await {
                Ok(()) => {
                    let was = before.map_or_else(|| "none".to_owned(), |a| describe(&a));
                    self.append_note(
                        id,
                        actor.as_str(),
                        &format!(
                            "shipping address changed from {was} to {}",
                            describe(&address)
                        ),
                    )
                    .await?;
                    return Ok(order);
                }
                Err(CommitError::VersionConflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(
            "the order kept changing; try again".into(),
        ))
    }
}

impl Orderly {
    /// Runs the saga step that gave up on an order once more, with a fresh set of retries. The
    /// step keeps its idempotency keys, so a payment that did go through is not taken twice.
    ///
    /// # Errors
    /// [`AppError::NotNow`] if the order does not need attention; [`AppError::NotFound`].
    pub async fn retry(
        &self,
        id: OrderId,
        actor: Actor,
    ) -> Result<orderly_domain::Order, AppError> {
        for _ in 0..ATTEMPTS {
            let mut order = self.order(id).await?;
            let expected_version = order.version;
            let stamp = self.stamp(actor.clone());
            let Some((step, event)) = order.request_retry(&stamp) else {
                return Err(AppError::NotNow(format!(
                    "order {id} does not need attention; there is nothing to retry"
                )));
            };
            let consumer = Consumer::parse(&step).ok_or_else(|| {
                AppError::Internal(format!("order {id} names an unknown step {step:?}"))
            })?;
            let commit = Commit {
                order: Some(OrderWrite::Update {
                    order: order.clone(),
                    expected_version,
                }),
                events: vec![Outgoing {
                    event,
                    consumers: vec![consumer],
                }],
                ..Commit::default()
            };
            match self.commit(commit).await {
                Ok(()) => {
                    self.resolve_escalation(id, &actor).await;
                    return Ok(order);
                }
                Err(CommitError::VersionConflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(
            "the order kept changing; try again".into(),
        ))
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

/// Writes or rewrites the escalation of `order`, which was just flagged. Kept beside the order
/// (which is the truth: its `needsAttention`); a failure here is logged, and the flagged order
/// is still found by reading it.
pub(crate) async fn record_escalation(
    store: &dyn crate::ports::Store,
    order: &orderly_domain::Order,
) {
    let Some(attention) = &order.needs_attention else {
        return;
    };
    let entry = Escalation {
        order_id: order.id,
        customer_id: order.customer_id.clone(),
        status: order.status,
        step: attention.step.clone(),
        error: attention.error.clone(),
        attempts: attention.attempts,
        since: attention.since,
        resolved_at: None,
        resolved_by: None,
    };
    if let Err(e) = put_escalation(store, &entry).await {
        tracing::error!(order_id = %order.id, error = %e, "could not record the escalation");
    }
}

async fn put_escalation(
    store: &dyn crate::ports::Store,
    entry: &Escalation,
) -> Result<(), AppError> {
    let key = entry.order_id.to_string();
    let body = serde_json::to_string(entry).map_err(|e| AppError::Internal(e.to_string()))?;
    for _ in 0..ATTEMPTS {
        let current = store.document(DocKind::Escalation, &key).await?;
        let expected = current.as_ref().map(|d| d.version);
        let doc = Document {
            kind: DocKind::Escalation,
            key: key.clone(),
            version: expected.map_or(1, |v| v + 1),
            body: body.clone(),
        };
        match store.put_document(&doc, expected).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict | StoreError::AlreadyExists) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Unavailable("the escalation kept changing".into()))
}

impl Orderly {
    /// The staff's "needs attention" queue: orders a saga step gave up on, oldest first; with
    /// `open_only`, those not yet retried.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn escalations(&self, open_only: bool) -> Result<Vec<Escalation>, AppError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .documents(DocKind::Escalation, after.as_deref(), 100)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.key.clone());
            for doc in &page {
                let entry: Escalation = serde_json::from_str(&doc.body)
                    .map_err(|e| AppError::Internal(format!("escalation {}: {e}", doc.key)))?;
                if !open_only || entry.resolved_at.is_none() {
                    out.push(entry);
                }
            }
        }
        out.sort_by_key(|e| e.since);
        Ok(out)
    }

    async fn resolve_escalation(&self, id: OrderId, actor: &Actor) {
        let key = id.to_string();
        let found = match self.store.document(DocKind::Escalation, &key).await {
            Ok(Some(doc)) => serde_json::from_str::<Escalation>(&doc.body).ok(),
            _ => None,
        };
        if let Some(mut entry) = found {
            entry.resolved_at = Some(self.now());
            entry.resolved_by = Some(actor.as_str().to_owned());
            if let Err(e) = put_escalation(self.store.as_ref(), &entry).await {
                tracing::error!(order_id = %id, error = %e, "could not mark the escalation resolved");
            }
        }
    }
}

fn describe(a: &Address) -> String {
    let mut parts = vec![a.name.as_str(), a.line1.as_str()];
    parts.extend(a.line2.as_deref());
    parts.push(a.city.as_str());
    parts.extend(a.region.as_deref());
    parts.extend(a.postal_code.as_deref());
    parts.push(a.country.as_str());
    parts.join(", ")
}
