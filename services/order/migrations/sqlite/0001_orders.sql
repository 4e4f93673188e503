-- Orders and their lines. An order is written PENDING before payment is called, so a crash
-- at any point leaves a row the reconciler will finish.
CREATE TABLE orders (
    order_id        TEXT    PRIMARY KEY NOT NULL,
    customer_id     TEXT    NOT NULL,
    -- A client's retry key; the same key always returns this order.
    idempotency_key TEXT    UNIQUE,
    -- What the key was used for: a different request with the same key is refused.
    fingerprint     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'PAYMENT_PENDING', 'REJECTED')),
    total_minor     INTEGER NOT NULL CHECK (total_minor > 0),
    currency_code   TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    -- Reconciliation: attempts so far, when the next may start, and who holds it until when.
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until_ms  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX orders_by_customer ON orders (customer_id, created_at_ms DESC, order_id DESC);
CREATE INDEX orders_unsettled ON orders (status, next_attempt_ms)
    WHERE status IN ('PENDING', 'PAYMENT_PENDING');

CREATE TABLE order_lines (
    order_id         TEXT    NOT NULL REFERENCES orders (order_id),
    line_no          INTEGER NOT NULL,
    sku              TEXT    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor > 0),
    PRIMARY KEY (order_id, line_no)
) STRICT;
