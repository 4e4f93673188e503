-- The ledger (PostgreSQL; the SQLite schema in ../sqlite is the same in its dialect): one row
-- per order, ever. The UNIQUE order_id is what makes a retried, reconciled or concurrent
-- ProcessPayment safe, from any number of replicas: a second insert waits for the first to
-- commit, then does nothing.
CREATE TABLE payments (
    payment_id     TEXT    PRIMARY KEY NOT NULL,
    order_id       TEXT    NOT NULL UNIQUE,
    amount_minor   BIGINT  NOT NULL CHECK (amount_minor > 0),
    currency_code  TEXT    NOT NULL,
    method         INTEGER NOT NULL,
    status         INTEGER NOT NULL,
    decline_reason TEXT    NOT NULL DEFAULT '',
    created_at_ms  BIGINT  NOT NULL
);
