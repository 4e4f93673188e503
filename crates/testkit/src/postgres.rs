//! A fresh PostgreSQL database per test, on the server the standard `PG*` variables name
//! (Debian's `pg_virtualenv` sets them for a throwaway cluster).

use sqlx::Executor as _;

/// A fresh, empty database; its URL. Panics with how to run such tests when a `PG*` variable
/// is missing.
pub async fn fresh_database() -> String {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run PostgreSQL tests under pg_virtualenv")
        })
    };
    let server = format!(
        "postgres://{}:{}@{}:{}",
        var("PGUSER"),
        var("PGPASSWORD"),
        var("PGHOST"),
        var("PGPORT")
    );
    let name = format!("stormproof_{:016x}", rand::random::<u64>());
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres"))
        .await
        .expect("PostgreSQL answers");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    admin.close().await;
    format!("{server}/{name}")
}
