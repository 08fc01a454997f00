//! What support staff do for a customer: notes on an order, correcting its shipping address
//! before it ships, and running a stuck step again.
//!
//! # Layout
//! - this module: [`Support`], notes, address corrections, undeliverable reports, retries and
//!   the needs-attention queue;
//! - [`stage_one`]: the steps waiting for their next automatic try, and "retry now";
//! - [`search`]: the customer care search box — orders by id or its start, customers by name,
//!   e-mail or phone;
//! - [`engineering`]: stage 3 — handing a case to engineering with a frozen [`CaseBundle`], and
//!   engineering sending it back.

pub mod engineering;
pub mod search;
pub mod stage_one;

use std::sync::Arc;

use orderly_domain::text::check_text;
use orderly_domain::{Address, AddressLocked, Attention, Timestamp, ValueError};
use serde::{Deserialize, Serialize};

pub use self::engineering::CaseBundle;
use crate::access::{AddNote, Edit, Fulfil, Permit, Read, ReadNotes, Retry};
use crate::commits::{Changes, MAX_REASON, order_change};
use crate::documents::{Change, DocumentType, Documents};
use crate::error::AppError;
pub use crate::escalations::{Escalation, HandOver, Resolution};
use crate::escalations::{flag_write, resolve_write};
use crate::orders::Orders;
use crate::ports::{Commit, Consumer, DocKind, DocumentStore, JobQueue, OrderWrite, Outgoing};

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
    bundles: Documents<CaseBundle>,
    jobs: Arc<dyn JobQueue>,
    customers: Arc<dyn crate::ports::CatalogStore>,
    index: crate::search_index::SearchIndex,
}

impl Support {
    /// Support over its ports (see [`crate::Application`]).
    pub(crate) fn new(
        orders: Orders,
        changes: Changes,
        documents: Arc<dyn DocumentStore>,
        jobs: Arc<dyn JobQueue>,
        (customers, index): (
            Arc<dyn crate::ports::CatalogStore>,
            crate::search_index::SearchIndex,
        ),
    ) -> Self {
        Support {
            orders,
            changes,
            jobs,
            customers,
            index,
            notes: Documents::new(Arc::clone(&documents)),
            escalations: Documents::new(Arc::clone(&documents)),
            bundles: Documents::new(documents),
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
    /// words (and the `reason`, if given) become a note by the permit's actor, in the same
    /// commit.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a bad address; [`AppError::NotNow`] once the order has
    /// shipped or ended.
    pub async fn change_shipping_address(
        &self,
        permit: Permit<Edit>,
        address: Address,
        reason: Option<&str>,
    ) -> Result<orderly_domain::Order, AppError> {
        if let Some(r) = reason {
            check_text("reason", r, MAX_REASON)?;
        }
        address.validate().map_err(|errors| {
            AppError::Invalid(
                errors
                    .into_iter()
                    .map(|e| ValueError::new(&format!("shippingAddress.{}", e.field), e.message))
                    .collect(),
            )
        })?;
        let (id, actor, permit) = (permit.id(), permit.actor(), &permit);
        let (key, address) = (&id.to_string(), &address);
        self.changes
            .retrying(id, || async move {
                let mut order = self.orders.order(id).await?;
                permit.check_current(&order)?;
                let expected_version = order.version;
                let stamp = self.changes.stamp(actor.clone());
                let settles = order
                    .needs_attention
                    .as_ref()
                    .is_some_and(Attention::awaits_address);
                let event = order
                    .change_shipping_address(address.clone(), &stamp)
                    .map_err(|AddressLocked(status)| {
                        AppError::NotNow(format!(
                            "order {id} is {}; its address can change only until it ships",
                            status.as_str()
                        ))
                    })?;
                let mut commit = order_change(order.clone(), expected_version, event, Vec::new());
                if settles {
                    commit.documents.extend(
                        resolve_write(&self.escalations, id, &stamp, Resolution::AddressCorrected)
                            .await?,
                    );
                }
                let mut said = order
                    .history
                    .last()
                    .and_then(|h| h.detail.clone())
                    .unwrap_or_default();
                if let Some(reason) = reason {
                    said = format!("{said}: {reason}");
                }
                let note = Note {
                    at: stamp.at,
                    author: actor.as_str().to_owned(),
                    text: said,
                    request: None,
                };
                commit.documents.extend(self.note_write(key, note).await?);
                Ok((commit, order))
            })
            .await
    }

    /// Runs the saga step that gave up on an order once more, with a fresh set of retries; on
    /// an order that does not need attention but has a step waiting for its automatic try,
    /// runs that try now (see [`stage_one`]). The step keeps its idempotency
    /// keys, so a payment that did go through is not taken twice.
    /// The order's escalation is marked resolved by the permit's actor in the same commit; the
    /// `reason`, if given, is in the history entry.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a reason over [`MAX_REASON`] characters; [`AppError::NotNow`]
    /// if the order does not need attention and nothing waits for a try, or while engineering
    /// has its case;
    /// [`AppError::Changed`] if the permit expects a version the order has left.
    pub async fn retry(
        &self,
        permit: Permit<Retry>,
        reason: Option<&str>,
    ) -> Result<orderly_domain::Order, AppError> {
        if let Some(r) = reason {
            check_text("reason", r, MAX_REASON)?;
        }
        let current = self.orders.order(permit.id()).await?;
        if current.needs_attention.is_none() {
            return self.retry_now(&permit, current, reason).await;
        }
        let (id, actor, permit) = (permit.id(), permit.actor(), &permit);
        self.changes
            .retrying(id, || async move {
                let mut order = self.orders.order(id).await?;
                let expected_version = order.version;
                let stamp = self.changes.stamp(actor.clone());
                permit.check_current(&order)?;
                if let Some(h) = self
                    .escalations
                    .value(&id.to_string())
                    .await?
                    .filter(Escalation::with_engineering)
                    .and_then(|e| e.engineering)
                {
                    return Err(AppError::NotNow(format!(
                        "engineering has the case of order {id} (handed over by {}); it comes back to the queue with their note",
                        h.by
                    )));
                }
                if order
                    .needs_attention
                    .as_ref()
                    .is_some_and(Attention::awaits_address)
                {
                    return Err(AppError::NotNow(format!(
                        "the carrier cannot deliver order {id} to its address; correct the address instead of retrying"
                    )));
                }
                let Some((step, event)) = order.request_retry(&stamp, reason) else {
                    return Err(AppError::NotNow(format!(
                        "order {id} does not need attention; there is nothing to retry"
                    )));
                };
                let consumer = Consumer::parse(&step).ok_or_else(|| {
                    AppError::Internal(format!("order {id} names an unknown step {step:?}"))
                })?;
                let documents =
                    resolve_write(&self.escalations, id, &stamp, Resolution::Retried)
                        .await?
                        .into_iter()
                        .collect();
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

impl Support {
    /// The write that adds `note` to the notes of order `key`, for the commit of the change it
    /// records; `None` when the order's notes are full (the change's history entry holds it
    /// anyway, so a full list never blocks a change).
    pub(crate) async fn note_write(
        &self,
        key: &str,
        note: Note,
    ) -> Result<Option<crate::ports::DocumentWrite>, AppError> {
        let notes = self.notes.get(key).await?;
        let version = notes.as_ref().map(|n| n.version);
        let mut doc = notes.map(|n| n.value).unwrap_or_default();
        if doc.notes.len() >= MAX_NOTES {
            tracing::info!(
                order = key,
                "the order's notes are full; the change is in its history only"
            );
            return Ok(None);
        }
        doc.notes.push(note);
        Ok(Some(Documents::write(key, &doc, version)?))
    }

    /// Records that the carrier cannot deliver to the order's shipping address (`why`, in the
    /// carrier's or the warehouse's words): the order needs attention until staff correct the
    /// address, and enters the staff's queue in the same commit. Staff are alerted as for a
    /// step that gave up.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for an empty or too long `why`; [`AppError::NotNow`] unless the
    /// order is paid and not waiting for staff about another step. The same report again
    /// answers the order unchanged.
    pub async fn report_undeliverable(
        &self,
        permit: Permit<Fulfil>,
        why: &str,
    ) -> Result<orderly_domain::Order, AppError> {
        check_text("reason", why, MAX_REASON)?;
        let (id, permit) = (permit.id(), &permit);
        self.changes
            .retrying(id, || async move {
                let mut order = self.orders.order(id).await?;
                permit.check_current(&order)?;
                let expected_version = order.version;
                let stamp = self.changes.stamp(permit.actor().clone());
                let event = match order.report_undeliverable(why.trim(), &stamp) {
                    Ok(Some(event)) => event,
                    // Reported already: the same answer, nothing written.
                    Ok(None) => return Ok((Commit::default(), order)),
                    Err(refused) => {
                        return Err(AppError::NotNow(format!("order {id}: {refused}")));
                    }
                };
                let mut commit = order_change(order.clone(), expected_version, event, Vec::new());
                commit
                    .documents
                    .extend(flag_write(&self.escalations, &order).await?);
                Ok((commit, order))
            })
            .await
    }

    /// The order's case in the staff's queue, open or settled, if it ever had one.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn case_of(&self, permit: &Permit<Read>) -> Result<Option<Escalation>, AppError> {
        Ok(self.escalations.value(&permit.id().to_string()).await?)
    }

    /// The staff's "needs attention" queue: orders a saga step gave up on, oldest first; with
    /// `open_only`, those staff have not settled (retried or canceled).
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
            .filter(|e| !open_only || e.is_open())
            .collect();
        out.sort_by_key(|e| e.since);
        Ok(out)
    }
}

impl Support {
    /// Sends the order's customer `message`, one of the messages written for staff to send
    /// ([`crate::notify::Template::BY_STAFF`]), through the notifier like every other message:
    /// a `CustomerContacted` history entry names it, who sent it and why, and the notifier sends
    /// it once (a failed one is listed for staff to send again).
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a message that is not one of them, or a reason over
    /// [`MAX_REASON`] characters; [`AppError::Changed`] if the permit expects a version the
    /// order has left.
    pub async fn contact_customer(
        &self,
        permit: Permit<AddNote>,
        message: &str,
        reason: Option<&str>,
    ) -> Result<orderly_domain::Order, AppError> {
        let Some(template) = crate::notify::Template::by_staff(message) else {
            let names: Vec<&str> = crate::notify::Template::BY_STAFF
                .iter()
                .map(|t| t.as_str())
                .collect();
            return Err(AppError::invalid(
                "message",
                format!("one of {}", names.join(", ")),
            ));
        };
        if let Some(r) = reason {
            check_text("reason", r, MAX_REASON)?;
        }
        let (id, permit) = (permit.id(), &permit);
        self.changes
            .retrying(id, || async move {
                let mut order = self.orders.order(id).await?;
                permit.check_current(&order)?;
                let expected_version = order.version;
                let stamp = self.changes.stamp(permit.actor().clone());
                let event = order.record_contact(template.as_str(), reason, &stamp);
                Ok((
                    order_change(order.clone(), expected_version, event, Vec::new()),
                    order,
                ))
            })
            .await
    }
}
