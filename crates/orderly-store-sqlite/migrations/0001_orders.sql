-- Orderly embedded schema. Documents (orders, products, customers) are JSON text, stored
-- byte-exact; the columns beside them exist for the queries the API makes, each with its index.

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    version     INTEGER NOT NULL DEFAULT 1,
    doc         TEXT NOT NULL
) STRICT;

CREATE TABLE stock (
    product_id  TEXT PRIMARY KEY REFERENCES products (id),
    available   INTEGER NOT NULL CHECK (available >= 0),
    reserved    INTEGER NOT NULL CHECK (reserved >= 0)
) STRICT;

CREATE TABLE stock_adjustments (
    id          INTEGER PRIMARY KEY,
    product_id  TEXT NOT NULL REFERENCES products (id),
    delta       INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX stock_adjustments_by_product ON stock_adjustments (product_id, id);

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    doc         TEXT NOT NULL
) STRICT;

-- seq orders the list newest first and is the pagination cursor.
CREATE TABLE orders (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    doc         TEXT NOT NULL
) STRICT;
CREATE INDEX orders_by_customer ON orders (customer_id, seq);
CREATE INDEX orders_by_status ON orders (status, seq);
CREATE INDEX orders_by_customer_status ON orders (customer_id, status, seq);

-- The transactional outbox: every event, written in the transaction that made it.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    order_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    at           INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    published_at INTEGER
) STRICT;
CREATE INDEX events_by_order ON events (order_id, seq);

-- Saga work: one row per (event, consumer) until the consumer commits its effect.
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id    TEXT NOT NULL,
    consumer    TEXT NOT NULL,
    event_seq   INTEGER NOT NULL REFERENCES events (seq),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    lease_until INTEGER,
    last_error  TEXT
) STRICT;
CREATE INDEX jobs_by_order ON jobs (order_id, id);
CREATE INDEX jobs_by_due ON jobs (next_at, id);

-- What each consumer has handled: a redelivered event is recognised and ignored.
CREATE TABLE handled_events (
    consumer    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
