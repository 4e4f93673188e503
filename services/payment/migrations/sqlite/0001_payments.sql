-- The ledger: one row per order, ever. The UNIQUE order_id is what makes a retried,
-- reconciled or concurrent ProcessPayment safe: the second insert does nothing.
CREATE TABLE payments (
    payment_id     TEXT    PRIMARY KEY NOT NULL,
    order_id       TEXT    NOT NULL UNIQUE,
    amount_minor   INTEGER NOT NULL CHECK (amount_minor > 0),
    currency_code  TEXT    NOT NULL,
    method         INTEGER NOT NULL,
    status         INTEGER NOT NULL,
    decline_reason TEXT    NOT NULL DEFAULT '',
    created_at_ms  INTEGER NOT NULL
) STRICT;
