//! The ledger: one row per order id, ever, in SQLite (a file, the default) or PostgreSQL
//! (what several replicas share).
//!
//! Idempotency lives in the schema, not in memory: `order_id` is UNIQUE, a charge is an
//! `INSERT … ON CONFLICT (order_id) DO NOTHING` followed by a read of the row, so 50 concurrent
//! calls, a retry after a lost answer, or a reconcile after a restart all find the first payment
//! and none charges again. On PostgreSQL that holds across replicas too: a second insert of one
//! order id waits for the first to commit, then does nothing, and the read that follows (a new
//! statement, so a new snapshot under READ COMMITTED) sees the committed row.
//!
//! One set of queries serves both databases through sqlx's `Any` driver (`$N` placeholders,
//! which both understand), with one migration folder per dialect, as in the order service.
//! SQLite runs in WAL mode with `synchronous = FULL`: a payment that was answered survives a
//! crash of the process and of the machine.

use std::path::Path;

use contracts::payment::v1 as pb;
pub use store::{Backend, DatabaseUrl, OpenError};
use store::{Database, now_ms};

use crate::domain::{Charge, OrderId};

/// A recorded payment, as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Payment {
    /// `pay_` and 32 hex digits.
    pub payment_id: String,
    /// The idempotency key.
    pub order_id: String,
    /// Minor units of `currency_code`.
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency_code: String,
    /// `PaymentMethod` as its protobuf number.
    pub method: i32,
    /// `PaymentStatus` as its protobuf number.
    pub status: i32,
    /// Why a charge was declined; empty otherwise.
    pub decline_reason: String,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// The verdict a new charge gets (a replay keeps the first one's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Charge it.
    Capture,
    /// Refuse it for a business reason.
    Decline(String),
}

/// What [`Ledger::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// This call wrote the row.
    New(Payment),
    /// A row for the order existed with the same terms; nothing was written.
    Replayed(Payment),
}

/// Why a charge could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The order was charged before with another amount, currency or method.
    #[error(
        "order `{}` was already charged {} {} by method {}; the same order id cannot be charged with different terms",
        existing.order_id, existing.amount_minor, existing.currency_code, existing.method
    )]
    Conflict {
        /// The payment on record.
        existing: Box<Payment>,
    },
    /// The database failed.
    #[error("ledger database error")]
    Database(#[from] sqlx::Error),
}

/// The ledger. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Ledger {
    db: Database,
}

// === impl Payment ===

impl Payment {
    /// The protobuf message.
    pub fn to_proto(&self) -> pb::Payment {
        pb::Payment {
            payment_id: self.payment_id.clone(),
            order_id: self.order_id.clone(),
            amount: Some(pb::Money {
                amount_minor: self.amount_minor,
                currency_code: self.currency_code.clone(),
            }),
            method: self.method,
            status: self.status,
            decline_reason: self.decline_reason.clone(),
            create_time: Some(prost_types::Timestamp {
                seconds: self.created_at_ms.div_euclid(1000),
                nanos: i32::try_from(self.created_at_ms.rem_euclid(1000) * 1_000_000)
                    .unwrap_or_default(),
            }),
        }
    }

    fn same_terms(&self, charge: &Charge) -> bool {
        self.amount_minor == charge.amount_minor
            && self.currency_code == charge.currency.code()
            && self.method == charge.method as i32
    }
}

// === impl Ledger ===

impl Ledger {
    /// Opens the ledger at `url` (creating a SQLite file and its folder if missing) and
    /// applies the embedded migrations of its dialect.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, OpenError> {
        Ok(Self {
            db: Database::open(url, store::migrations!()).await?,
        })
    }

    /// Opens (or creates) the SQLite ledger file at `path`.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        Self::connect(&DatabaseUrl::Sqlite(path.to_owned())).await
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Records `charge` with `verdict`, unless the order has a payment already: then returns
    /// that one (same terms) or a [`LedgerError::Conflict`] (different terms).
    pub async fn record(&self, charge: &Charge, verdict: Verdict) -> Result<Recorded, LedgerError> {
        let (status, reason) = match verdict {
            Verdict::Capture => (pb::PaymentStatus::Captured, String::new()),
            Verdict::Decline(reason) => (pb::PaymentStatus::Declined, reason),
        };
        let payment = Payment {
            payment_id: format!("pay_{:032x}", rand::random::<u128>()),
            order_id: charge.order_id.as_str().to_owned(),
            amount_minor: charge.amount_minor,
            currency_code: charge.currency.code().to_owned(),
            method: charge.method as i32,
            status: status as i32,
            decline_reason: reason,
            created_at_ms: now_ms(),
        };
        let inserted = sqlx::query(
            "INSERT INTO payments (payment_id, order_id, amount_minor, currency_code, method, \
             status, decline_reason, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(&payment.payment_id)
        .bind(&payment.order_id)
        .bind(payment.amount_minor)
        .bind(&payment.currency_code)
        .bind(payment.method)
        .bind(payment.status)
        .bind(&payment.decline_reason)
        .bind(payment.created_at_ms)
        .execute(self.db.writer())
        .await?
        .rows_affected()
            == 1;
        // A new row is exactly what was bound: only a replay reads the one already there.
        if inserted {
            return Ok(Recorded::New(payment));
        }
        let payment = self
            .get(&charge.order_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        if payment.same_terms(charge) {
            Ok(Recorded::Replayed(payment))
        } else {
            Err(LedgerError::Conflict {
                existing: Box::new(payment),
            })
        }
    }

    /// The payment of `order_id`, if any.
    pub async fn get(&self, order_id: &OrderId) -> Result<Option<Payment>, sqlx::Error> {
        sqlx::query_as(
            "SELECT payment_id, order_id, amount_minor, currency_code, method, status, \
             decline_reason, created_at_ms FROM payments WHERE order_id = $1",
        )
        .bind(order_id.as_str())
        .fetch_optional(self.db.reader())
        .await
    }

    /// How many payments the ledger holds (for tests and the ledger gauge).
    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM payments")
            .fetch_one(self.db.reader())
            .await
    }

    /// Waits for queries in flight, then closes every connection.
    pub async fn close(&self) {
        self.db.close().await;
    }
}
