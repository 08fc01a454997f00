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
                Ok(()) => return Ok(order),
                Err(CommitError::VersionConflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(
            "the order kept changing; try again".into(),
        ))
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
