-- Orders and their lines (PostgreSQL; the SQLite schema in ../sqlite is the same in its
-- dialect). An order is written PENDING before payment is called, so a crash at any point
-- leaves a row the reconciler will finish.
CREATE TABLE orders (
    order_id        TEXT    PRIMARY KEY NOT NULL,
    customer_id     TEXT    NOT NULL,
    -- A client's retry key; the same key always returns this order.
    idempotency_key TEXT    UNIQUE,
    -- What the key was used for: a different request with the same key is refused.
    fingerprint     TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'PAYMENT_PENDING', 'REJECTED')),
    total_minor     BIGINT  NOT NULL CHECK (total_minor > 0),
    currency_code   TEXT    NOT NULL,
    created_at_ms   BIGINT  NOT NULL,
    updated_at_ms   BIGINT  NOT NULL,
    -- Reconciliation: attempts so far, when the next may start, and who holds it until when.
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT  NOT NULL DEFAULT 0,
    lease_owner     TEXT,
    lease_until_ms  BIGINT  NOT NULL DEFAULT 0
);

CREATE INDEX orders_by_customer ON orders (customer_id, created_at_ms DESC, order_id DESC);
CREATE INDEX orders_unsettled ON orders (status, next_attempt_ms)
    WHERE status IN ('PENDING', 'PAYMENT_PENDING');

CREATE TABLE order_lines (
    order_id         TEXT    NOT NULL REFERENCES orders (order_id),
    line_no          BIGINT  NOT NULL,
    sku              TEXT    NOT NULL,
    quantity         BIGINT  NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    unit_price_minor BIGINT  NOT NULL CHECK (unit_price_minor > 0),
    PRIMARY KEY (order_id, line_no)
);
