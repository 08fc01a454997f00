//! The dispatcher: claims due jobs and runs them, one order's jobs strictly in order within
//! each lane, different orders and lanes at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use orderly_domain::Timestamp;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::Saga;

fn report(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "a saga step panicked; its job runs again when its lease ends");
    }
}

/// Tuning of the dispatcher loop.
#[derive(Clone, Copy, Debug)]
pub struct DispatcherSettings {
    /// Most steps in flight at once (each of a different order).
    pub batch: u32,
    /// How long a claimed job is ours before another worker may take it.
    pub lease: Duration,
    /// Longest sleep between looks at the queue when nothing signals new work.
    pub idle_poll: Duration,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        DispatcherSettings {
            batch: 64,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_secs(1),
        }
    }
}

/// Claims due jobs and runs them, one order's jobs strictly in order within each lane, different
/// orders and lanes at once.
pub struct Dispatcher {
    saga: Arc<Saga>,
    settings: DispatcherSettings,
    work: Arc<Notify>,
}

impl Dispatcher {
    /// A dispatcher woken by `work` (signalled when a commit queues jobs).
    pub fn new(saga: Arc<Saga>, settings: DispatcherSettings, work: Arc<Notify>) -> Self {
        Dispatcher {
            saga,
            settings,
            work,
        }
    }

    /// Runs until `shutdown` turns true; the jobs in flight then finish before it returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let lease_ms = i64::try_from(self.settings.lease.as_millis()).unwrap_or(60_000);
        let limit = self.settings.batch.max(1) as usize;
        let mut running: JoinSet<()> = JoinSet::new();
        // Claims that failed: the store may have taken their jobs all the same (the answer was
        // lost with the connection). Their leases are freed once the store answers again, so
        // the jobs run now rather than when the lease ends.
        let mut lost: Vec<Timestamp> = Vec::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(done) = running.try_join_next() {
                report(done);
            }
            self.release_lost(&mut lost).await;
            // Claim while steps run: a slow payment holds up its own order, never the others.
            // Claimed jobs are leased, so the next claim skips them and their orders.
            let room = limit.saturating_sub(running.len());
            if room > 0 {
                let now = self.saga.clock.now();
                let claim = u32::try_from(room).unwrap_or(u32::MAX);
                // Each claim's lease ends at a moment of its own (up to a second later than
                // the setting, never a moment a lost claim holds), so freeing a lost claim by
                // its end frees no live claim of this node, and another node's only by a
                // one-in-a-thousand coincidence of the same millisecond.
                let mut lease =
                    lease_ms + i64::from((uuid::Uuid::new_v4().as_u128() % 1000) as u16);
                while lost.contains(&now.plus_millis(lease)) {
                    lease += 1;
                }
                match self.saga.jobs.claim_jobs(now, claim, lease).await {
                    Ok(jobs) if !jobs.is_empty() => {
                        debug_assert_eq!(
                            jobs.iter()
                                .map(|j| (j.event.order_id, j.consumer.lane()))
                                .collect::<HashSet<_>>()
                                .len(),
                            jobs.len(),
                            "at most one job per order and lane per claim"
                        );
                        for job in jobs {
                            let saga = Arc::clone(&self.saga);
                            running.spawn(async move { saga.run(&job).await });
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim jobs; backing off");
                        lost.push(now.plus_millis(lease));
                    }
                }
            }
            let wait = self.idle_wait().await;
            tokio::select! {
                () = self.work.notified() => {}
                Some(done) = running.join_next(), if !running.is_empty() => report(done),
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        while let Some(done) = running.join_next().await {
            report(done);
        }
        tracing::info!("dispatcher stopped");
    }

    /// Frees the leases of the claims in `lost` whose leases have not ended yet, keeping the
    /// ones the store does not answer for.
    async fn release_lost(&self, lost: &mut Vec<Timestamp>) {
        let now = self.saga.clock.now();
        lost.retain(|lease| *lease > now);
        let mut kept = Vec::new();
        for lease in lost.drain(..) {
            match self.saga.jobs.release_claim(lease).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(jobs = n, "freed the jobs of a claim whose answer was lost");
                }
                Err(_) => kept.push(lease),
            }
        }
        *lost = kept;
    }

    /// How long to sleep when nothing is claimable: until the next job falls due, at most
    /// `idle_poll`.
    async fn idle_wait(&self) -> Duration {
        match self.saga.jobs.next_due().await {
            Ok(Some(due)) => {
                let ms = due
                    .millis()
                    .saturating_sub(self.saga.clock.now().millis())
                    .max(1);
                Duration::from_millis(u64::try_from(ms).unwrap_or(1)).min(self.settings.idle_poll)
            }
            _ => self.settings.idle_poll,
        }
    }
}
