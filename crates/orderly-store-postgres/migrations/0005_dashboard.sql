-- The staff dashboard counts the orders of each status placed since a moment: an index range
-- per status, not a scan of every order.
CREATE INDEX orders_by_status_placed ON orders (status, created_at);
