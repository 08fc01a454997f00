-- One row, rewritten by every readiness check: a real write (a page to the WAL and an fsync)
-- proves the file can still take writes.
CREATE TABLE health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
