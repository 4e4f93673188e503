//! Where a store lives, parsed once at start-up and never shown with its password.

use std::{fmt, path::PathBuf, str::FromStr};

use sqlx::{ConnectOptions as _, postgres::PgConnectOptions, sqlite::SqliteConnectOptions};

/// Where a store lives: a SQLite file or a PostgreSQL database.
///
/// Parsed from `sqlite://path/to/file.db` (a relative path after `sqlite://`;
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

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl DatabaseUrl {
    /// Which database this names.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL sqlx connects to.
    pub(crate) fn connect_url(&self) -> String {
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
                "unsupported database URL `{}`: use sqlite://path/to/file.db or \
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
            // An in-memory store forgets everything at restart, and with it idempotency.
            return Err(format!(
                "`{url}` does not name a database file: use sqlite://path/to/file.db"
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

/// Parses a `--database-url` flag without echoing it: clap's own message would repeat the
/// value, password included, on stderr. The message names the flag and its variable.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseUrlParser;

impl clap::builder::TypedValueParser for DatabaseUrlParser {
    type Value = DatabaseUrl;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<DatabaseUrl, clap::Error> {
        let flag = arg.and_then(clap::Arg::get_long).unwrap_or("database-url");
        let variable = arg
            .and_then(clap::Arg::get_env)
            .map(|env| format!(" ({})", env.to_string_lossy()))
            .unwrap_or_default();
        let invalid = |message: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid --{flag}{variable}: {message}\n"),
            )
            .with_cmd(cmd)
        };
        value
            .to_str()
            .ok_or_else(|| invalid("not UTF-8".to_owned()))?
            .parse()
            .map_err(invalid)
    }
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
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
        assert_eq!(
            redact("postgres://u:secret@db:5432/orders"),
            "postgres://…@db:5432/orders"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
