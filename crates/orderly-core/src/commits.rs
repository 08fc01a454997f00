//! The shapes of [`Commit`] the use cases and the saga's steps share, and who consumes each
//! event: what turns a domain change into one atomic write.

use std::collections::BTreeMap;
use std::sync::Arc;

use orderly_domain::{
    Actor, Event, EventKind, Order, OrderId, ProductId, Stamp, StockEffect, Timestamp,
};
use tokio::sync::Notify;

use crate::error::AppError;

use crate::ports::{
    Clock, Commit, CommitError, Consumer, IdGenerator, OrderWrite, Outgoing, StockMove, UnitOfWork,
};

/// What every use case that changes something needs: the atomic commit, the clock and ids for
/// the change's stamp, and the signal that wakes the saga's dispatcher when a commit queues
/// work.
#[derive(Clone)]
pub struct Changes {
    commits: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    work: Arc<Notify>,
}

impl Changes {
    /// Commits through `commits`, stamped by `clock` and `ids`, signalling `work`.
    pub(crate) fn new(
        commits: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        work: Arc<Notify>,
    ) -> Self {
        Changes {
            commits,
            clock,
            ids,
            work,
        }
    }

    /// The time now.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A new order's id.
    #[must_use]
    pub fn order_id(&self) -> OrderId {
        self.ids.order_id()
    }

    /// The stamp of a change made now by `actor`.
    #[must_use]
    pub fn stamp(&self, actor: Actor) -> Stamp {
        Stamp {
            event_id: self.ids.event_id(),
            at: self.clock.now(),
            actor,
        }
    }

    /// Wakes the dispatcher: work fell due that no commit queued (a job hurried by staff).
    pub fn wake(&self) {
        self.work.notify_one();
    }

    /// Commits `commit`, and wakes the dispatcher if it queued saga work.
    ///
    /// # Errors
    /// What the store refuses ([`CommitError`]).
    pub async fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let queues = commit.queues_jobs();
        self.commits.commit(commit).await?;
        if queues {
            self.work.notify_one();
        }
        Ok(())
    }

    /// Runs `attempt` — read, decide, build the commit — and commits what it built; when a
    /// concurrent writer changed the order or one of the commit's documents first, reads and
    /// decides again, up to [`CONFLICT_RETRIES`] times; an attempt that finds nothing to write
    /// (the change was made already) answers without committing. The one loop of every use
    /// case that changes an order.
    ///
    /// # Errors
    /// What `attempt` answers; [`AppError::Unavailable`] if order `id` kept changing; what the
    /// store refuses.
    pub(crate) async fn retrying<T, F, A>(&self, id: OrderId, attempt: F) -> Result<T, AppError>
    where
        F: Fn() -> A,
        A: Future<Output = Result<(Commit, T), AppError>>,
    {
        for _ in 0..CONFLICT_RETRIES {
            let (commit, value) = attempt().await?;
            if commit.is_empty() {
                return Ok(value);
            }
            match self.commit(commit).await {
                Ok(()) => return Ok(value),
                Err(CommitError::VersionConflict(_) | CommitError::DocumentChanged(..)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Unavailable(format!(
            "order {id} kept changing; try again"
        )))
    }
}

/// Longest reason of a change (a cancellation, a stock adjustment), in characters.
pub const MAX_REASON: usize = 500;

/// How many times a change is read and applied again after a concurrent writer changed the
/// same order or document first, before the caller is told to try again.
pub const CONFLICT_RETRIES: usize = 8;

/// Which consumers handle which events: the saga's steps, and the notifier for every event
/// that produces a message (the templates of its kind, in `notify`).
#[must_use]
pub fn consumers_of(kind: EventKind) -> &'static [Consumer] {
    match kind {
        EventKind::OrderPlaced => &[Consumer::Inventory, Consumer::Notify],
        EventKind::InventoryReserved | EventKind::RefundRequested => &[Consumer::Payment],
        EventKind::OrderCanceled => &[Consumer::Payment, Consumer::Notify],
        EventKind::PaymentFailed
        | EventKind::OrderShipped
        | EventKind::OrderDelivered
        | EventKind::RefundIssued
        | EventKind::OrderNeedsAttention
        | EventKind::CustomerContacted => &[Consumer::Notify],
        EventKind::InventoryRejected | EventKind::PaymentCaptured => &[],
        // A retry names the step it re-queues itself (see `Support::retry`).
        EventKind::RetryRequested => &[],
        // Recorded in the history; no step and no message follows from it (a declined try is
        // tried again by its own job's wait).
        EventKind::ShippingAddressChanged | EventKind::PaymentDeclined => &[],
    }
}

/// A commit that writes `order` (read at `expected_version`), moves `stock` and publishes
/// `event`: the shape of almost every step.
#[must_use]
pub fn order_change(
    order: Order,
    expected_version: u32,
    event: Event,
    stock: Vec<StockMove>,
) -> Commit {
    Commit {
        order: Some(OrderWrite::Update {
            order,
            expected_version,
        }),
        stock,
        events: vec![outgoing(event)],
        ..Commit::default()
    }
}

/// An event with the consumers subscribed to its kind.
#[must_use]
pub fn outgoing(event: Event) -> Outgoing {
    Outgoing {
        consumers: consumers_of(event.kind).to_vec(),
        event,
    }
}

/// The stock moves a transition's effect implies for an order's lines, one per product.
#[must_use]
pub fn stock_moves(order: &Order, effect: StockEffect) -> Vec<StockMove> {
    let (available, reserved): (i64, i64) = match effect {
        StockEffect::Reserve => (-1, 1),
        StockEffect::Release => (1, -1),
        StockEffect::Consume => (0, -1),
        StockEffect::None => return Vec::new(),
    };
    let mut per_product: BTreeMap<&ProductId, i64> = BTreeMap::new();
    for line in &order.lines {
        *per_product.entry(&line.product_id).or_default() += i64::from(line.quantity.get());
    }
    per_product
        .into_iter()
        .map(|(product_id, n)| StockMove {
            product_id: product_id.clone(),
            available: available * n,
            reserved: reserved * n,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Template;

    #[test]
    fn every_event_with_a_message_queues_a_notify_job_and_no_other_does() {
        for kind in EventKind::ALL {
            let notifies = consumers_of(kind).contains(&Consumer::Notify);
            // A message staff send names its template in the event.
            let has_message =
                !Template::for_event(kind).is_empty() || kind == EventKind::CustomerContacted;
            assert_eq!(notifies, has_message, "{kind}");
        }
    }
}
