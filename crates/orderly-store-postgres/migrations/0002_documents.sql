-- Documents the use cases keep whole, by kind and key: carts and exchange rates. A write names
-- the version it read, so two concurrent changes of one cart cannot both win.
CREATE TABLE documents (
    kind        TEXT NOT NULL,
    key         TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
