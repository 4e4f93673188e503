//! Durable orders: sqlx over SQLite (a file, the default: WAL, `synchronous = FULL`) or
//! PostgreSQL (`DATABASE_URL=postgres://…`, what several replicas share), migrations embedded
//! for each.
//!
//! One set of queries serves both through sqlx's `Any` driver (`$N` placeholders, which both
//! understand); only the reconciler's claim differs: on PostgreSQL it locks the rows it picks
//! with `FOR UPDATE SKIP LOCKED`, so two replicas claiming at once never pick the same order;
//! SQLite has one writer at a time, which gives the same guarantee.
//!
//! Every state an order passes through is written before anyone is told about it: PENDING
//! before payment is called, then CONFIRMED, REJECTED or PAYMENT_PENDING before the client is
//! answered. The reconciler finds unsettled orders here: PAYMENT_PENDING ones, and PENDING
//! ones old enough that the request that wrote them must have died. It claims them with a
//! lease (`lease_owner`, `lease_until_ms`), so that a crashed reconciler's claims expire and
//! two never work on one order at once.

use std::{collections::HashMap, time::Duration};

use store::Database;
pub use store::{Backend, DatabaseUrl, OpenError};

use crate::domain::{Line, Money, Order, OrderStatus, ValidOrder};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The idempotency key was used before, for a different request.
    #[error("the idempotency key was already used for a different order request")]
    KeyReused {
        /// The order the key belongs to.
        order_id: String,
    },
    /// A new order waited this long for the writer and was not taken: the store is
    /// saturated.
    #[error("the order store's writer is saturated (waited {0:?})")]
    Busy(Duration),
    /// The database failed.
    #[error("order database error")]
    Database(#[from] sqlx::Error),
    /// A stored row does not read back (a bug or a hand-edited database).
    #[error("corrupt order row: {0}")]
    Corrupt(String),
}

/// What [`Store::insert_pending`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// A new order, PENDING.
    New(Order),
    /// The idempotency key's order, as it is now.
    Existing(Order),
}

/// The order store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads on its reader, writes on its writer (on SQLite one connection).
    db: Database,
    /// How long a new order may wait for the writer, if bounded: see
    /// [`Store::with_write_wait`].
    write_wait: Option<Duration>,
}

const ORDER_COLUMNS: &str = "order_id, customer_id, status, total_minor, currency_code, \
                             created_at_ms, updated_at_ms";

/// An `orders` row, as [`ORDER_COLUMNS`] reads it.
#[derive(Debug, sqlx::FromRow)]
struct OrderRow {
    order_id: String,
    customer_id: String,
    status: String,
    total_minor: i64,
    currency_code: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

/// An `order_lines` row.
#[derive(Debug, sqlx::FromRow)]
struct LineRow {
    order_id: String,
    sku: String,
    quantity: i64,
    unit_price_minor: i64,
}

impl Store {
    /// Opens the database at `url` and applies its migrations.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, OpenError> {
        Ok(Self {
            db: Database::open(url, store::migrations!()).await?,
            write_wait: None,
        })
    }

    /// Sheds a new order that waits longer than `wait` for the writer
    /// ([`StoreError::Busy`]). The writer serves one order at a time: when orders arrive
    /// faster than it commits them, a queue in front of it grows without bound, and every
    /// order in it answers late. Bounding the wait bounds that queue to what the writer
    /// drains in `wait`, measured where the work queues, whatever the cause. Writes of
    /// orders already taken (their settlement) are never shed.
    /// `None` (the default) waits as long as it takes.
    pub fn with_write_wait(mut self, wait: Option<Duration>) -> Self {
        self.write_wait = wait;
        self
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Stores a new PENDING order, or returns the order its idempotency key already names.
    pub async fn insert_pending(
        &self,
        order_id: &str,
        order: &ValidOrder,
        now_ms: i64,
    ) -> Result<Inserted, StoreError> {
        let fingerprint = order.fingerprint();
        let mut tx = match self.write_wait {
            Some(wait) => tokio::time::timeout(wait, self.db.writer().begin())
                .await
                .map_err(|_| StoreError::Busy(wait))??,
            None => self.db.writer().begin().await?,
        };
        let inserted = sqlx::query(
            "INSERT INTO orders (order_id, customer_id, idempotency_key, fingerprint, status, \
             total_minor, currency_code, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, 'PENDING', $5, $6, $7, $8) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(order_id)
        .bind(&order.customer_id)
        .bind(order.idempotency_key.as_deref())
        .bind(&fingerprint)
        .bind(order.total_minor)
        .bind(&order.currency_code)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;

        if !inserted {
            tx.rollback().await?;
            let key = order.idempotency_key.as_deref().unwrap_or_default();
            let (existing_id, existing_fingerprint): (String, String) = sqlx::query_as(
                "SELECT order_id, fingerprint FROM orders WHERE idempotency_key = $1",
            )
            .bind(key)
            .fetch_one(self.db.reader())
            .await?;
            if existing_fingerprint != fingerprint {
                return Err(StoreError::KeyReused {
                    order_id: existing_id,
                });
            }
            let existing = self
                .get(&existing_id)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("{existing_id} vanished")))?;
            return Ok(Inserted::Existing(existing));
        }

        for (line_no, line) in order.lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(order_id)
            .bind(i64::try_from(line_no).unwrap_or(i64::MAX))
            .bind(&line.sku)
            .bind(i64::from(line.quantity))
            .bind(line.unit_price_minor)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Inserted::New(Order {
            order_id: order_id.to_owned(),
            customer_id: order.customer_id.clone(),
            lines: order
                .lines
                .iter()
                .map(|line| Line {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                    unit_price_minor: line.unit_price_minor,
                })
                .collect(),
            total: Money {
                amount_minor: order.total_minor,
                currency_code: order.currency_code.clone(),
            },
            status: OrderStatus::Pending,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }))
    }

    /// Moves an unsettled `order` to `to` and returns it as it then is. An order settled
    /// meanwhile (by the reconciler, say) keeps its status: the first settlement wins.
    pub async fn transition(
        &self,
        mut order: Order,
        to: OrderStatus,
        now_ms: i64,
    ) -> Result<Order, StoreError> {
        let moved = sqlx::query(
            "UPDATE orders SET status = $1, updated_at_ms = $2, lease_owner = NULL, lease_until_ms = 0 \
             WHERE order_id = $3 AND status IN ('PENDING', 'PAYMENT_PENDING')",
        )
        .bind(to.as_str())
        .bind(now_ms)
        .bind(&order.order_id)
        .execute(self.db.writer())
        .await?
        .rows_affected()
            == 1;
        // Only the status and its time changed (lines, total and customer never do): the
        // order is read back only when another settlement came first.
        if moved {
            order.status = to;
            order.updated_at_ms = now_ms;
            return Ok(order);
        }
        let order_id = order.order_id;
        self.get(&order_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("{order_id} vanished")))
    }

    /// The order `order_id`, with its lines.
    pub async fn get(&self, order_id: &str) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1"
        )))
        .bind(order_id)
        .fetch_optional(self.db.reader())
        .await?;
        match row {
            Some(row) => Ok(self.with_lines(vec![row]).await?.pop()),
            None => Ok(None),
        }
    }

    /// A customer's orders, newest first, after the cursor `(created_at_ms, order_id)`.
    pub async fn list(
        &self,
        customer_id: &str,
        limit: u32,
        after: Option<(i64, String)>,
    ) -> Result<Vec<Order>, StoreError> {
        let (after_ms, after_id) = after.unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE customer_id = $1 \
             AND (created_at_ms < $2 OR (created_at_ms = $2 AND order_id < $3) OR $3 = '') \
             ORDER BY created_at_ms DESC, order_id DESC LIMIT $4"
        )))
        .bind(customer_id)
        .bind(after_ms)
        .bind(&after_id)
        .bind(i64::from(limit))
        .fetch_all(self.db.reader())
        .await?;
        self.with_lines(rows).await
    }

    /// Claims up to `limit` unsettled orders that are due, for `lease`: PAYMENT_PENDING ones
    /// whose next attempt is due, and PENDING ones older than `stale_after` (their request
    /// died before settling them). Claimed orders are skipped by every other claimer until the
    /// lease ends or [`release`](Self::release) is called.
    pub async fn claim(
        &self,
        owner: &str,
        limit: u32,
        lease: Duration,
        stale_after: Duration,
        now_ms: i64,
    ) -> Result<Vec<Order>, StoreError> {
        let lease_until = now_ms.saturating_add(millis(lease));
        let stale_before = now_ms.saturating_sub(millis(stale_after));
        // PostgreSQL: rows another claimer has locked are skipped, not waited for. The outer
        // lease check is re-evaluated on the newest row version by a claimer that did wait
        // for a lock, so a row leased meanwhile is never claimed twice even then.
        let lock = match self.db.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE orders SET lease_owner = $1, lease_until_ms = $2 \
             WHERE lease_until_ms <= $3 AND order_id IN ( \
               SELECT order_id FROM orders \
               WHERE lease_until_ms <= $3 AND next_attempt_ms <= $3 \
                 AND (status = 'PAYMENT_PENDING' OR (status = 'PENDING' AND created_at_ms <= $4)) \
               ORDER BY created_at_ms LIMIT $5 {lock}) \
             RETURNING {ORDER_COLUMNS}"
        )))
        .bind(owner)
        .bind(lease_until)
        .bind(now_ms)
        .bind(stale_before)
        .bind(i64::from(limit))
        .fetch_all(self.db.writer())
        .await?;
        let mut orders = self.with_lines(rows).await?;
        orders.sort_by_key(|order| order.created_at_ms);
        Ok(orders)
    }

    /// Gives a claimed order back, to be tried again from `next_attempt_ms`; `attempted` says
    /// whether payment was tried (and the attempt counts).
    pub async fn release(
        &self,
        order_id: &str,
        owner: &str,
        next_attempt_ms: i64,
        attempted: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE orders SET attempts = attempts + $1, next_attempt_ms = $2, lease_owner = NULL, \
             lease_until_ms = 0 WHERE order_id = $3 AND lease_owner = $4",
        )
        .bind(i64::from(attempted))
        .bind(next_attempt_ms)
        .bind(order_id)
        .bind(owner)
        .execute(self.db.writer())
        .await?;
        Ok(())
    }

    /// How many attempts the reconciler has made for `order_id`.
    pub async fn attempts(&self, order_id: &str) -> Result<u32, StoreError> {
        let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM orders WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(self.db.reader())
            .await?;
        Ok(u32::try_from(attempts).unwrap_or(u32::MAX))
    }

    /// Unsettled orders: how many, and when the oldest was created (ms since the epoch).
    pub async fn backlog(&self) -> Result<(u64, Option<i64>), StoreError> {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*) AS backlog, MIN(created_at_ms) AS oldest FROM orders \
             WHERE status IN ('PENDING', 'PAYMENT_PENDING')",
        )
        .fetch_one(self.db.reader())
        .await?;
        Ok((u64::try_from(count).unwrap_or_default(), oldest))
    }

    /// How many orders are stored, whatever their status.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM orders")
            .fetch_one(self.db.reader())
            .await?)
    }

    /// Waits for queries in flight, then closes every connection.
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// The orders of `rows`, in order, each with its lines: one query for all the lines.
    async fn with_lines(&self, rows: Vec<OrderRow>) -> Result<Vec<Order>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=rows.len()).map(|n| format!("${n}")).collect();
        let mut query = sqlx::query_as::<_, LineRow>(sqlx::AssertSqlSafe(format!(
            "SELECT order_id, sku, quantity, unit_price_minor FROM order_lines \
             WHERE order_id IN ({}) ORDER BY order_id, line_no",
            placeholders.join(", ")
        )));
        for row in &rows {
            query = query.bind(&row.order_id);
        }
        let mut lines: HashMap<String, Vec<Line>> = HashMap::with_capacity(rows.len());
        for line in query.fetch_all(self.db.reader()).await? {
            lines.entry(line.order_id).or_default().push(Line {
                sku: line.sku,
                quantity: u32::try_from(line.quantity).unwrap_or_default(),
                unit_price_minor: line.unit_price_minor,
            });
        }
        rows.into_iter()
            .map(|row| {
                let status = OrderStatus::parse(&row.status).ok_or_else(|| {
                    StoreError::Corrupt(format!("{}: status `{}`", row.order_id, row.status))
                })?;
                Ok(Order {
                    customer_id: row.customer_id,
                    lines: lines.remove(&row.order_id).unwrap_or_default(),
                    total: Money {
                        amount_minor: row.total_minor,
                        currency_code: row.currency_code,
                    },
                    status,
                    created_at_ms: row.created_at_ms,
                    updated_at_ms: row.updated_at_ms,
                    order_id: row.order_id,
                })
            })
            .collect()
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ValidLine;

    fn order(key: &str) -> ValidOrder {
        ValidOrder {
            customer_id: "cus_1".to_owned(),
            lines: vec![ValidLine {
                sku: "sku_1".to_owned(),
                quantity: 1,
                unit_price_minor: 100,
            }],
            total_minor: 100,
            currency_code: "EUR".to_owned(),
            idempotency_key: Some(key.to_owned()),
        }
    }

    #[tokio::test]
    async fn a_new_order_that_cannot_get_the_writer_in_time_is_shed_and_nothing_is_stored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = DatabaseUrl::Sqlite(dir.path().join("order.db"));
        let store = Store::connect(&url)
            .await
            .expect("store opens")
            .with_write_wait(Some(Duration::from_millis(50)));

        // Another write holds the writer for longer than the wait.
        let held = store.db.writer().begin().await.expect("the writer");
        let shed = store.insert_pending("ord_shed", &order("k1"), 1).await;
        assert!(
            matches!(shed, Err(StoreError::Busy(wait)) if wait == Duration::from_millis(50)),
            "{shed:?}"
        );
        drop(held);

        assert_eq!(store.count().await.expect("count"), 0, "nothing stored");
        let taken = store.insert_pending("ord_taken", &order("k1"), 2).await;
        assert!(matches!(taken, Ok(Inserted::New(_))), "{taken:?}");
        assert_eq!(store.count().await.expect("count"), 1);
    }
}
