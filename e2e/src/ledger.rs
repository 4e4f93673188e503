//! The books after a chaos run: order's store and payment's ledger (both SQLite files, read
//! while their processes may still run: WAL lets a reader in beside the writer), joined.
//!
//! [`Books::audit`] answers the questions every scenario asks: does each acknowledged order
//! exist, is each order charged exactly once and for its total, is there a charge without
//! an order, is anything still unsettled.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use sqlx::Row as _;

/// An order as order's store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// `ord-…`.
    pub order_id: String,
    /// PENDING, CONFIRMED, PAYMENT_PENDING or REJECTED.
    pub status: String,
    /// The order's total, minor units.
    pub total_minor: i64,
    /// Last change, milliseconds since the epoch.
    pub updated_at_ms: i64,
}

/// A row of payment's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The order charged.
    pub order_id: String,
    /// Minor units.
    pub amount_minor: i64,
    /// When the ledger wrote it, milliseconds since the epoch.
    pub created_at_ms: i64,
}

/// Both sides.
#[derive(Debug, Clone, Default)]
pub struct Books {
    /// Every order, by id.
    pub orders: BTreeMap<String, StoredOrder>,
    /// Every ledger row (the ledger's `UNIQUE(order_id)` allows one per order; they are read
    /// as a list so that a second one would show).
    pub charges: Vec<Charge>,
}

/// What the join found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Audit {
    /// Orders in the store.
    pub orders: usize,
    /// Rows in the ledger.
    pub charges: usize,
    /// Acknowledged order ids absent from the store.
    pub lost: Vec<String>,
    /// Orders not CONFIRMED or REJECTED (still PENDING or PAYMENT_PENDING).
    pub unsettled: Vec<String>,
    /// CONFIRMED orders with no charge.
    pub uncharged: Vec<String>,
    /// Order ids charged more than once.
    pub charged_twice: Vec<String>,
    /// Charges whose order the store does not hold.
    pub orphans: Vec<String>,
    /// Charges whose amount is not the order's total.
    pub wrong_amount: Vec<String>,
}

impl Audit {
    /// Nothing lost, nothing unsettled, exactly one right charge per confirmed order and none
    /// without an order.
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.unsettled.is_empty()
            && self.uncharged.is_empty()
            && self.charged_twice.is_empty()
            && self.orphans.is_empty()
            && self.wrong_amount.is_empty()
    }

    /// One line for a failure message.
    pub fn describe(&self) -> String {
        fn some(ids: &[String]) -> String {
            let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
            format!("{} {:?}", ids.len(), shown)
        }
        format!(
            "{} orders, {} charges; lost {}, unsettled {}, uncharged {}, charged twice {}, \
             orphan charges {}, wrong amount {}",
            self.orders,
            self.charges,
            some(&self.lost),
            some(&self.unsettled),
            some(&self.uncharged),
            some(&self.charged_twice),
            some(&self.orphans),
            some(&self.wrong_amount)
        )
    }
}

async fn open(path: &Path) -> Result<sqlx::SqlitePool, sqlx::Error> {
    sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display())).await
}

impl Books {
    /// Reads order's store at `order_db` and payment's ledger at `payment_db`.
    pub async fn read(order_db: &Path, payment_db: &Path) -> Result<Self, sqlx::Error> {
        let orders = open(order_db).await?;
        let order_rows =
            sqlx::query("SELECT order_id, status, total_minor, updated_at_ms FROM orders")
                .fetch_all(&orders)
                .await?;
        orders.close().await;
        let ledger = open(payment_db).await?;
        let charge_rows = sqlx::query("SELECT order_id, amount_minor, created_at_ms FROM payments")
            .fetch_all(&ledger)
            .await?;
        ledger.close().await;
        Ok(Self {
            orders: order_rows
                .iter()
                .map(|row| {
                    let order = StoredOrder {
                        order_id: row.get(0),
                        status: row.get(1),
                        total_minor: row.get(2),
                        updated_at_ms: row.get(3),
                    };
                    (order.order_id.clone(), order)
                })
                .collect(),
            charges: charge_rows
                .iter()
                .map(|row| Charge {
                    order_id: row.get(0),
                    amount_minor: row.get(1),
                    created_at_ms: row.get(2),
                })
                .collect(),
        })
    }

    /// Orders neither CONFIRMED nor REJECTED.
    pub fn unsettled(&self) -> usize {
        self.orders
            .values()
            .filter(|order| !matches!(order.status.as_str(), "CONFIRMED" | "REJECTED"))
            .count()
    }

    /// The join, against the order ids the clients were acknowledged.
    pub fn audit<'a>(&self, acknowledged: impl IntoIterator<Item = &'a str>) -> Audit {
        let mut per_order: BTreeMap<&str, Vec<&Charge>> = BTreeMap::new();
        for charge in &self.charges {
            per_order
                .entry(charge.order_id.as_str())
                .or_default()
                .push(charge);
        }
        let acknowledged: BTreeSet<&str> = acknowledged.into_iter().collect();
        Audit {
            orders: self.orders.len(),
            charges: self.charges.len(),
            lost: acknowledged
                .iter()
                .filter(|id| !self.orders.contains_key(**id))
                .map(|id| (*id).to_owned())
                .collect(),
            unsettled: self
                .orders
                .values()
                .filter(|order| !matches!(order.status.as_str(), "CONFIRMED" | "REJECTED"))
                .map(|order| order.order_id.clone())
                .collect(),
            uncharged: self
                .orders
                .values()
                .filter(|order| order.status == "CONFIRMED")
                .filter(|order| !per_order.contains_key(order.order_id.as_str()))
                .map(|order| order.order_id.clone())
                .collect(),
            charged_twice: per_order
                .iter()
                .filter(|(_, charges)| charges.len() > 1)
                .map(|(id, _)| (*id).to_owned())
                .collect(),
            orphans: per_order
                .keys()
                .filter(|id| !self.orders.contains_key(**id))
                .map(|id| (*id).to_owned())
                .collect(),
            wrong_amount: self
                .charges
                .iter()
                .filter(|charge| {
                    self.orders
                        .get(&charge.order_id)
                        .is_some_and(|order| order.total_minor != charge.amount_minor)
                })
                .map(|charge| charge.order_id.clone())
                .collect(),
        }
    }
}
