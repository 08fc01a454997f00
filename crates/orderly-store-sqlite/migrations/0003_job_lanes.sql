-- Jobs wait in lanes: one order's jobs run in order within a lane (the saga's stock and payment
-- steps; its notifications), and the lanes are independent, so a notification retrying with
-- backoff never holds back the order's saga.
ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'saga';
UPDATE jobs SET lane = 'notify' WHERE consumer = 'notify';
DROP INDEX jobs_by_order;
CREATE INDEX jobs_by_order_lane ON jobs (order_id, lane, id);
