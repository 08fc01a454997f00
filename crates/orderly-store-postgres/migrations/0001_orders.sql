-- Orderly cluster schema. Documents (orders, products, customers) are JSON text, stored
-- byte-exact; the columns beside them exist for the queries the API makes, each with its index.

-- "C" collation: ids sort by their bytes, as in every other backend, and page by index.
CREATE TABLE products (
    id          TEXT COLLATE "C" PRIMARY KEY,
    version     INTEGER NOT NULL DEFAULT 1,
    doc         TEXT NOT NULL
);

CREATE TABLE stock (
    product_id  TEXT PRIMARY KEY REFERENCES products (id),
    available   BIGINT NOT NULL CHECK (available >= 0),
    reserved    BIGINT NOT NULL CHECK (reserved >= 0)
);

CREATE TABLE stock_adjustments (
    id          BIGSERIAL PRIMARY KEY,
    product_id  TEXT NOT NULL REFERENCES products (id),
    delta       BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX stock_adjustments_by_product ON stock_adjustments (product_id, id);

CREATE TABLE customers (
    id          TEXT PRIMARY KEY,
    doc         TEXT NOT NULL
);

-- seq orders the list newest first and is the pagination cursor.
CREATE TABLE orders (
    seq         BIGSERIAL PRIMARY KEY,
    id          UUID NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer_id, seq);
CREATE INDEX orders_by_status ON orders (status, seq);
CREATE INDEX orders_by_customer_status ON orders (customer_id, status, seq);

-- The transactional outbox: every event, written in the transaction that made it.
CREATE TABLE events (
    seq          BIGSERIAL PRIMARY KEY,
    id           UUID NOT NULL UNIQUE,
    order_id     UUID NOT NULL,
    kind         TEXT NOT NULL,
    at           BIGINT NOT NULL,
    payload      TEXT NOT NULL,
    published_at BIGINT
);
CREATE INDEX events_by_order ON events (order_id, seq);

-- Saga work: one row per (event, consumer) until the consumer commits its effect. Nodes claim
-- rows with FOR UPDATE SKIP LOCKED and a lease; a dead node's lease runs out.
CREATE TABLE jobs (
    id          BIGSERIAL PRIMARY KEY,
    order_id    UUID NOT NULL,
    consumer    TEXT NOT NULL,
    event_seq   BIGINT NOT NULL REFERENCES events (seq),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    lease_until BIGINT,
    last_error  TEXT
);
CREATE INDEX jobs_by_order ON jobs (order_id, id);
CREATE INDEX jobs_by_due ON jobs (next_at, id);

-- What each consumer has handled: a redelivered event is recognised and ignored.
CREATE TABLE handled_events (
    consumer    TEXT NOT NULL,
    event_id    UUID NOT NULL,
    at          BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE idempotency_keys (
    key          TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    order_id     UUID NOT NULL,
    created_at   BIGINT NOT NULL
);
