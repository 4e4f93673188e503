//! The ledger on PostgreSQL, shared by two payment replicas.
//!
//! These need a PostgreSQL server: they read the standard `PG*` variables and make a fresh
//! database per test. They are ignored by a plain `cargo nextest run`; CI runs them under
//! Debian's `pg_virtualenv`, which starts a throwaway cluster:
//! `pg_virtualenv cargo nextest run --workspace --run-ignored only`.

use contracts::payment::v1 as pb;
use futures::future::join_all;
use stormproof_payment::ledger::{Backend, DatabaseUrl};
use tonic::Code;

use crate::helpers::{charge, spawn_app_at};

/// A fresh, empty database on the server the `PG*` variables name.
async fn fresh_database() -> DatabaseUrl {
    testkit::fresh_database()
        .await
        .parse()
        .expect("a PostgreSQL URL")
}

/// 50 calls at once for one order, spread over two replicas on one database: one row, one
/// charge, 50 identical answers; then a restarted replica replays it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: pg_virtualenv cargo nextest run --run-ignored only"]
async fn concurrent_duplicates_on_two_replicas_charge_once() {
    let url = fresh_database().await;
    let (one, two) = (
        spawn_app_at(&url, None).await,
        spawn_app_at(&url, None).await,
    );
    assert_eq!(one.ledger.backend(), Backend::Postgres);
    let (client_one, client_two) = (one.client().await, two.client().await);

    let order = "ord-pg-dup-1";
    let answers = join_all((0..50).map(|call| {
        let mut client = if call % 2 == 0 {
            client_one.clone()
        } else {
            client_two.clone()
        };
        async move {
            client
                .process_payment(charge(order, 1_000))
                .await
                .expect("charged or replayed")
                .into_inner()
        }
    }))
    .await;
    let reference = answers[0].payment.clone().expect("a payment");
    assert_eq!(
        answers.iter().filter(|answer| !answer.replayed).count(),
        1,
        "exactly one call charged"
    );
    for answer in &answers {
        assert_eq!(answer.payment.as_ref(), Some(&reference));
    }
    assert_eq!(one.ledger.count().await.expect("count"), 1);
    one.stop().await;
    two.stop().await;

    let restarted = spawn_app_at(&url, None).await;
    let mut client = restarted.client().await;
    let again = client
        .process_payment(charge(order, 1_000))
        .await
        .expect("replayed")
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.payment, Some(reference));
    restarted.stop().await;
}

/// The other ledger answers behave on PostgreSQL as on SQLite: other terms are refused, a
/// decline is recorded, a missing payment is NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: pg_virtualenv cargo nextest run --run-ignored only"]
async fn conflicts_and_reads_on_postgres() {
    let app = spawn_app_at(&fresh_database().await, None).await;
    let mut client = app.client().await;
    let charged = client
        .process_payment(charge("ord-pg-terms", 1_000))
        .await
        .expect("charged")
        .into_inner()
        .payment
        .expect("a payment");
    assert_eq!(charged.status(), pb::PaymentStatus::Captured);

    let refused = client
        .process_payment(charge("ord-pg-terms", 1_001))
        .await
        .expect_err("other terms");
    assert_eq!(refused.code(), Code::AlreadyExists);

    let read = client
        .get_payment(pb::GetPaymentRequest {
            order_id: "ord-pg-terms".to_owned(),
        })
        .await
        .expect("found")
        .into_inner()
        .payment;
    assert_eq!(read, Some(charged));
    let missing = client
        .get_payment(pb::GetPaymentRequest {
            order_id: "ord-pg-never".to_owned(),
        })
        .await
        .expect_err("no such payment");
    assert_eq!(missing.code(), Code::NotFound);
    app.stop().await;
}
