//! Stage 1 as staff see it: the steps waiting for their next automatic try, with what went
//! wrong in plain words and when the try comes, and "retry now".

use orderly_domain::{Order, Timestamp};

use super::{Note, Support};
use crate::access::{Action, Permit, Retry};
use crate::commits::MAX_REASON;
use crate::error::AppError;
use crate::ports::{Commit, Consumer, WaitingJob};
use crate::retry::FailureClass;
use orderly_domain::text::check_text;

/// Most waiting steps the dashboard lists.
pub const MAX_LISTED: u32 = 50;

/// A step waiting for its next automatic try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// The order.
    pub order_id: orderly_domain::OrderId,
    /// The job (what "retry now" names).
    pub job_id: i64,
    /// The step: `inventory`, `payment` or `notify`.
    pub step: Consumer,
    /// What went wrong, by class (`None` for an error stored before classes were).
    pub class: Option<FailureClass>,
    /// Tries failed so far.
    pub attempts: u32,
    /// When the next try falls due.
    pub due: Timestamp,
    /// True while a try is running.
    pub running: bool,
    /// The last error, as the step said it (internal: show it to those who may read errors).
    pub error: Option<String>,
}

impl Waiting {
    fn of(w: WaitingJob) -> Self {
        let (class, error) = match w.job.last_error.as_deref().map(FailureClass::untag) {
            Some((class, error)) => (class, Some(error.to_owned())),
            None => (None, None),
        };
        Waiting {
            order_id: w.job.event.order_id,
            job_id: w.job.id,
            step: w.job.consumer,
            class,
            attempts: w.job.attempts,
            due: w.due,
            running: w.running,
            error,
        }
    }

    /// What happened, in plain words for staff.
    #[must_use]
    pub fn describe(&self) -> &'static str {
        match (self.class, self.step) {
            (Some(class), _) => class.describe(),
            (None, Consumer::Payment) => FailureClass::PaymentUnavailable.describe(),
            (None, Consumer::Notify) => FailureClass::MailUnavailable.describe(),
            (None, Consumer::Inventory) => FailureClass::Storage.describe(),
        }
    }

    /// "automatic retry in 4:12", or that the try is running, at `now`.
    #[must_use]
    pub fn when(&self, now: Timestamp) -> String {
        match self.seconds_left(now) {
            _ if self.running => "being tried right now".to_owned(),
            0 => "automatic retry due now".to_owned(),
            s => format!("automatic retry in {}", clock_face(s)),
        }
    }

    /// Whole seconds until the next try at `now` (0 when due or running).
    #[must_use]
    pub fn seconds_left(&self, now: Timestamp) -> u64 {
        u64::try_from((self.due.millis() - now.millis()).max(0) / 1_000).unwrap_or(0)
    }
}

/// `mm:ss` (or `h:mm:ss` from an hour on) for a wait of `seconds`.
#[must_use]
pub fn clock_face(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3_600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

impl Support {
    /// The steps of an order waiting for their next automatic try, soonest first.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn waiting<A: Action>(&self, permit: &Permit<A>) -> Result<Vec<Waiting>, AppError> {
        Ok(self
            .jobs
            .waiting_jobs(Some(permit.id()), 10)
            .await?
            .into_iter()
            .map(Waiting::of)
            .collect())
    }

    /// Stage 1 at work across the shop, soonest first, at most [`MAX_LISTED`].
    ///
    /// # Errors
    /// A storage failure.
    pub async fn all_waiting(&self) -> Result<Vec<Waiting>, AppError> {
        Ok(self
            .jobs
            .waiting_jobs(None, MAX_LISTED)
            .await?
            .into_iter()
            .map(Waiting::of)
            .collect())
    }

    /// "Retry now" on an order whose step waits for an automatic try: the try runs at once
    /// instead of when it falls due, and a note on the order says who asked (and why, with a
    /// `reason`). A step being tried right now is left to finish.
    ///
    /// # Errors
    /// [`AppError::Invalid`] for a reason over [`MAX_REASON`] characters; [`AppError::NotNow`]
    /// when nothing waits (or it is being tried right now); [`AppError::Changed`] if the permit
    /// expects a version the order has left.
    pub(super) async fn retry_now(
        &self,
        permit: &Permit<Retry>,
        order: Order,
        reason: Option<&str>,
    ) -> Result<Order, AppError> {
        if let Some(r) = reason {
            check_text("reason", r, MAX_REASON)?;
        }
        permit.check_current(&order)?;
        let id = order.id;
        let waiting = self.jobs.waiting_jobs(Some(id), 10).await?;
        if waiting.is_empty() {
            return Err(AppError::NotNow(format!(
                "order {id} does not need attention and no step waits for an automatic retry; there is nothing to retry"
            )));
        }
        let now = self.changes.now();
        let mut hurried = Vec::new();
        for w in &waiting {
            if self.jobs.hurry_job(id, w.job.id, now).await? {
                hurried.push(w.job.consumer.as_str());
            }
        }
        if hurried.is_empty() {
            return Err(AppError::NotNow(format!(
                "the {} step of order {id} is being tried right now; wait for its outcome",
                waiting[0].job.consumer.as_str()
            )));
        }
        let mut text = format!(
            "Retry now: the {} step runs at once instead of waiting for its automatic try",
            hurried.join(" and ")
        );
        if let Some(r) = reason.filter(|r| !r.trim().is_empty()) {
            text.push_str(" — ");
            text.push_str(r);
        }
        let note = Note {
            at: now,
            author: permit.actor().as_str().to_owned(),
            text,
            request: None,
        };
        // The note is the timeline's record of who asked; a full list of notes never blocks it.
        if let Some(write) = self.note_write(&id.to_string(), note).await? {
            self.changes
                .commit(Commit {
                    documents: vec![write],
                    ..Commit::default()
                })
                .await
                .map_err(AppError::from)?;
        }
        self.changes.wake();
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_a_clock() {
        assert_eq!(clock_face(0), "0:00");
        assert_eq!(clock_face(252), "4:12");
        assert_eq!(clock_face(1_800), "30:00");
        assert_eq!(clock_face(21_600), "6:00:00");
    }
}
