//! A store opened on a real SQLite file: the folder made, the migrations applied, and every
//! connection with the same settings.

use sqlx::Row as _;
use stormproof_store::{Backend, Database, DatabaseUrl, Migrations};

static THINGS: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations");

#[tokio::test]
async fn sqlite_is_opened_in_wal_with_full_sync_on_every_connection_and_one_writer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = DatabaseUrl::Sqlite(dir.path().join("nested/folder/things.db"));
    let database = Database::open(
        &url,
        Migrations {
            sqlite: &THINGS,
            postgres: &THINGS,
        },
    )
    .await
    .expect("opens");
    assert_eq!(database.backend(), Backend::Sqlite);
    assert_eq!(database.writer().options().get_max_connections(), 1);

    sqlx::query("INSERT INTO things (id) VALUES (1)")
        .execute(database.writer())
        .await
        .expect("the migration made the table");
    for pool in [database.reader(), database.writer()] {
        let setting = |pragma: &'static str| async move {
            let row = sqlx::query(pragma).fetch_one(pool).await.expect(pragma);
            match row.try_get::<String, _>(0) {
                Ok(text) => text,
                Err(_) => row.try_get::<i64, _>(0).expect(pragma).to_string(),
            }
        };
        assert_eq!(setting("PRAGMA journal_mode").await, "wal");
        assert_eq!(setting("PRAGMA synchronous").await, "2", "FULL");
        assert_eq!(setting("PRAGMA foreign_keys").await, "1");
        assert_eq!(setting("PRAGMA busy_timeout").await, "5000");
    }
    database.close().await;
}
