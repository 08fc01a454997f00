-- Stage 1 at work: the jobs waiting for their next try after a failure, soonest first, for the
-- staff panel — a small index over the few jobs that failed, not a scan of the queue.
CREATE INDEX jobs_waiting ON jobs (next_at, id) WHERE attempts > 0;
