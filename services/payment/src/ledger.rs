//! The ledger: a SQLite table with one row per order id, ever.
//!
//! Idempotency lives in the schema, not in memory: `order_id` is UNIQUE, a charge is an
//! `INSERT … ON CONFLICT (order_id) DO NOTHING` followed by a read of the row, so 50 concurrent
//! calls, a retry after a lost answer, or a reconcile after a restart all find the first payment
//! and none charges again. SQLite runs in WAL mode with `synchronous = FULL`: a payment that was
//! answered survives a crash of the process and of the machine.

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use contracts::payment::v1 as pb;
use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

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
    /// SQLite failed.
    #[error("ledger database error")]
    Database(#[from] sqlx::Error),
}

/// Opening the ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The folder of the database file could not be made.
    #[error("cannot create the folder of {path}")]
    Folder {
        /// The database file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite would not open the file.
    #[error("cannot open the ledger database")]
    Connect(#[from] sqlx::Error),
    /// A migration failed.
    #[error("cannot migrate the ledger database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The ledger. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: SqlitePool,
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
    /// Opens (or creates) the database file and applies the embedded migrations.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|source| OpenError::Folder {
                path: path.display().to_string(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Records `charge` with `verdict`, unless the order has a payment already: then returns
    /// that one (same terms) or a [`LedgerError::Conflict`] (different terms).
    pub async fn record(&self, charge: &Charge, verdict: Verdict) -> Result<Recorded, LedgerError> {
        let (status, reason) = match verdict {
            Verdict::Capture => (pb::PaymentStatus::Captured, String::new()),
            Verdict::Decline(reason) => (pb::PaymentStatus::Declined, reason),
        };
        let payment_id = format!("pay_{:032x}", rand::random::<u128>());
        let inserted = sqlx::query(
            "INSERT INTO payments (payment_id, order_id, amount_minor, currency_code, method, \
             status, decline_reason, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(&payment_id)
        .bind(charge.order_id.as_str())
        .bind(charge.amount_minor)
        .bind(charge.currency.code())
        .bind(charge.method as i32)
        .bind(status as i32)
        .bind(&reason)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;

        let payment = self
            .get(&charge.order_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        if inserted {
            Ok(Recorded::New(payment))
        } else if payment.same_terms(charge) {
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
             decline_reason, created_at_ms FROM payments WHERE order_id = ?",
        )
        .bind(order_id.as_str())
        .fetch_optional(&self.pool)
        .await
    }

    /// How many payments the ledger holds (for tests and the ledger gauge).
    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM payments")
            .fetch_one(&self.pool)
            .await
    }

    /// Waits for queries in flight, then closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
