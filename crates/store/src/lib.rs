//! The database plumbing both services share, written once: where a store lives
//! ([`DatabaseUrl`], password never shown), and [`Database`]: a read pool and one writer, with
//! the same settings for both services, and the service's migrations applied.
//!
//! SQLite (a file, the default) runs in WAL mode, so readers run beside the writer, with
//! `synchronous = FULL`, so that every commit survives a power cut and not only a crash.
//! SQLite has one writer at a time: writers on several connections would wait for each other in
//! its busy handler, which sleeps (milliseconds at a time) instead of queueing, so writes go
//! through a pool of one connection, which queues them in order without sleeping. PostgreSQL
//! (what several replicas share) has one pool for both.
//!
//! Each service keeps its own schema, queries and migrations (one folder per dialect); the
//! queries use `$N` placeholders, which both dialects read through sqlx's `Any` driver.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod url;

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AnyPool, Executor as _, any::AnyPoolOptions, migrate::Migrator};

pub use url::{Backend, DatabaseUrl, DatabaseUrlParser, redact};

/// Every SQLite connection's settings: WAL (readers beside the writer), FULL (a commit
/// survives a power cut), foreign keys enforced, and a writer that finds the file locked (a
/// second process on it) waits up to 5 s rather than failing at once.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                              PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000";
/// SQLite's readers: WAL lets them all run beside the one writer.
const SQLITE_READERS: u32 = 8;
/// PostgreSQL's pool, reads and writes alike.
const POSTGRES_CONNECTIONS: u32 = 16;

/// Opening a store failed.
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
    #[error("cannot open the database {url}")]
    Connect {
        /// Where (without a password).
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("cannot migrate the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A service's migrations, one set per dialect: [`migrations!`] makes them from the service's
/// `migrations/sqlite` and `migrations/postgres` folders.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// For a SQLite file.
    pub sqlite: &'static Migrator,
    /// For a PostgreSQL database.
    pub postgres: &'static Migrator,
}

/// The [`Migrations`] of the crate that names it, embedded at build time from its
/// `./migrations/sqlite` and `./migrations/postgres` folders (the crate needs `sqlx`).
#[macro_export]
macro_rules! migrations {
    () => {{
        static SQLITE: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/sqlite");
        static POSTGRES: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/postgres");
        $crate::Migrations {
            sqlite: &SQLITE,
            postgres: &POSTGRES,
        }
    }};
}

/// A store's connections: reads on [`reader`](Self::reader), writes on
/// [`writer`](Self::writer). Cheap to clone (pool handles).
#[derive(Debug, Clone)]
pub struct Database {
    reader: AnyPool,
    writer: AnyPool,
    backend: Backend,
}

impl Database {
    /// Opens the database at `url` (creating a SQLite file and its folder if missing) and
    /// applies `migrations` of its dialect.
    pub async fn open(url: &DatabaseUrl, migrations: Migrations) -> Result<Self, OpenError> {
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
        let connect = |connections| async move {
            AnyPoolOptions::new()
                .max_connections(connections)
                .after_connect(move |connection, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            connection.execute(SQLITE_PRAGMAS).await?;
                        }
                        Ok(())
                    })
                })
                .connect(&url.connect_url())
                .await
                .map_err(|source| OpenError::Connect {
                    url: url.to_string(),
                    source,
                })
        };
        let (reader, writer) = match backend {
            Backend::Sqlite => {
                let writer = connect(1).await?;
                migrations.sqlite.run(&writer).await?;
                (connect(SQLITE_READERS).await?, writer)
            }
            Backend::Postgres => {
                let pool = connect(POSTGRES_CONNECTIONS).await?;
                migrations.postgres.run(&pool).await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            reader,
            writer,
            backend,
        })
    }

    /// The pool for reads (on PostgreSQL, the one pool).
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// The pool for writes: on SQLite one connection, which queues writers in order.
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Waits for queries in flight, then closes every connection.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Now, in milliseconds since the Unix epoch: how both services stamp rows.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
