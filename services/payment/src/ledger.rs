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

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    time::{SystemTime, UNIX_EPOCH},
};

use contracts::payment::v1 as pb;
use sqlx::{
    AnyPool, ConnectOptions as _, Executor as _, any::AnyPoolOptions, postgres::PgConnectOptions,
    sqlite::SqliteConnectOptions,
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
    /// The database failed.
    #[error("ledger database error")]
    Database(#[from] sqlx::Error),
}

/// Where the ledger lives: a SQLite file or a PostgreSQL database.
///
/// Parsed from `sqlite://path/to/payment.db` (a relative path after `sqlite://`;
/// `sqlite:///abs/path` for an absolute one), a bare file path, or
/// `postgres://user:password@host:port/database` (also `postgresql://`). Its `Debug` and
/// `Display` never show a password, so a logged config cannot leak one.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file, created with its folder if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

/// The database behind the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
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
    /// The database would not open.
    #[error("cannot open the ledger database {url}")]
    Connect {
        /// Where (without a password).
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot migrate the ledger database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The ledger. Cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Reads (and, on PostgreSQL, writes too).
    pool: AnyPool,
    /// Writes. On SQLite one connection: SQLite has one writer at a time, and writers on
    /// several connections would wait for each other in SQLite's busy handler, which sleeps
    /// instead of queueing; one writer connection queues them in the pool. On PostgreSQL the
    /// same pool as reads.
    writer: AnyPool,
    backend: Backend,
}

// === impl DatabaseUrl ===

impl DatabaseUrl {
    /// Which database this names.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL sqlx connects to.
    fn connect_url(&self) -> String {
        match self {
            // sqlx builds the URL, percent-encoding what a path may hold (`?`, `#`, spaces).
            Self::Sqlite(path) => SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .to_url_lossy()
                .to_string(),
            Self::Postgres(url) => url.clone(),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let unsupported = || {
            format!(
                "unsupported database URL `{}`: use sqlite://path/to/payment.db or \
                 postgres://user:password@host:5432/database",
                redact(url)
            )
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Checked now, so a malformed URL is a usage error at start, not a failed connect.
            PgConnectOptions::from_str(url)
                .map_err(|_| format!("malformed PostgreSQL URL `{}`", redact(url)))?;
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .or_else(|| (!url.contains("://")).then_some(url))
            .ok_or_else(unsupported)?;
        if path.is_empty() || path.contains(":memory:") || path.contains('?') {
            // An in-memory ledger forgets every payment at restart, and with it idempotency.
            return Err(format!(
                "`{url}` does not name a ledger file: use sqlite://path/to/payment.db"
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
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
        sqlx::any::install_default_drivers();
        if let DatabaseUrl::Sqlite(path) = url
            && let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|source| OpenError::Folder {
                path: path.display().to_string(),
                source,
            })?;
        }
        let backend = url.backend();
        let options = |connections| {
            AnyPoolOptions::new()
                .max_connections(connections)
                .after_connect(move |connection, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL lets readers run beside the writer; FULL makes every commit
                            // survive a power cut, not only a crash; writers wait up to 5 s for
                            // the lock instead of failing at once.
                            connection
                                .execute(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA busy_timeout = 5000",
                                )
                                .await?;
                        }
                        Ok(())
                    })
                })
        };
        let connect = |connections| async move {
            options(connections)
                .connect(&url.connect_url())
                .await
                .map_err(|source| OpenError::Connect {
                    url: url.to_string(),
                    source,
                })
        };
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let writer = connect(1).await?;
                sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
                (connect(8).await?, writer)
            }
            Backend::Postgres => {
                let pool = connect(16).await?;
                sqlx::migrate!("./migrations/postgres").run(&pool).await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            pool,
            writer,
            backend,
        })
    }

    /// Opens (or creates) the SQLite ledger file at `path`.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        Self::connect(&DatabaseUrl::Sqlite(path.to_owned())).await
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
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
        .execute(&self.writer)
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
        self.writer.close().await;
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

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file_or_a_server() {
        assert_eq!(
            "sqlite://.stormproof/payment.db".parse(),
            Ok(DatabaseUrl::Sqlite(".stormproof/payment.db".into()))
        );
        assert_eq!(
            "sqlite:///var/lib/payment/ledger.db".parse(),
            Ok(DatabaseUrl::Sqlite("/var/lib/payment/ledger.db".into()))
        );
        assert_eq!(
            "ledger.db".parse(),
            Ok(DatabaseUrl::Sqlite("ledger.db".into()))
        );
        let pg: DatabaseUrl = "postgres://pay:secret@db:5432/payments"
            .parse()
            .expect("a PostgreSQL URL");
        assert_eq!(pg.backend(), Backend::Postgres);
        for bad in [
            "mysql://db/x",
            "sqlite://",
            "sqlite::memory:",
            "sqlite://x.db?mode=ro",
        ] {
            assert!(bad.parse::<DatabaseUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        let pg: DatabaseUrl = "postgres://pay:secret@db:5432/payments"
            .parse()
            .expect("a PostgreSQL URL");
        assert_eq!(pg.to_string(), "postgres://…@db:5432/payments");
        assert!(!format!("{pg:?}").contains("secret"));
        let error = "postgres://pay:secret@db:notaport/payments"
            .parse::<DatabaseUrl>()
            .expect_err("malformed");
        assert!(!error.contains("secret"), "{error}");
    }
}
