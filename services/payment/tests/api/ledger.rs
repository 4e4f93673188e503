//! Charging: the happy path, idempotency under concurrency and across restarts, bad input.

use contracts::payment::v1 as pb;
use futures::future::join_all;
use stormproof_payment::domain::OrderId;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::helpers::{charge, spawn_app, spawn_app_on};

#[tokio::test]
async fn a_charge_is_captured_and_can_be_read_back() {
    let app = spawn_app().await;
    let mut client = app.client().await;

    let processed = client
        .process_payment(charge("ord-happy-1", 4_250))
        .await
        .expect("charged")
        .into_inner();
    let payment = processed.payment.expect("a payment");
    assert!(!processed.replayed);
    assert_eq!(payment.status(), pb::PaymentStatus::Captured);
    assert_eq!(payment.order_id, "ord-happy-1");
    assert!(payment.payment_id.starts_with("pay_"));

    let read = client
        .get_payment(pb::GetPaymentRequest {
            order_id: "ord-happy-1".to_owned(),
        })
        .await
        .expect("found")
        .into_inner()
        .payment
        .expect("a payment");
    assert_eq!(read, payment, "GetPayment returns exactly what was charged");
    assert_eq!(
        read.amount,
        Some(pb::Money {
            amount_minor: 4_250,
            currency_code: "EUR".to_owned()
        })
    );

    let missing = client
        .get_payment(pb::GetPaymentRequest {
            order_id: "ord-never".to_owned(),
        })
        .await
        .expect_err("no such payment");
    assert_eq!(missing.code(), Code::NotFound);
    app.stop().await;
}

/// 50 calls at once for one order, then 50 more after a restart on the same file: one row,
/// 100 identical payments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_and_restarted_duplicates_charge_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("payment.db");
    let order = "ord-dup-1";

    let app = spawn_app_on(&database, None).await;
    let first_round = concurrent_charges(&app, order, 50).await;
    let reference = first_round[0].payment.clone().expect("a payment");
    assert_eq!(
        first_round
            .iter()
            .filter(|response| !response.replayed)
            .count(),
        1,
        "exactly one call charged"
    );
    for response in &first_round {
        assert_eq!(response.payment.as_ref(), Some(&reference));
    }
    assert_eq!(app.ledger.count().await.expect("count"), 1);
    app.stop().await;

    let restarted = spawn_app_on(&database, None).await;
    let second_round = concurrent_charges(&restarted, order, 50).await;
    for response in &second_round {
        assert!(response.replayed, "every call after the restart replays");
        assert_eq!(response.payment.as_ref(), Some(&reference));
    }
    assert_eq!(restarted.ledger.count().await.expect("count"), 1);
    restarted.stop().await;
}

async fn concurrent_charges(
    app: &crate::helpers::TestApp,
    order: &str,
    calls: usize,
) -> Vec<pb::ProcessPaymentResponse> {
    let client = app.client().await;
    join_all((0..calls).map(|_| {
        let mut client = client.clone();
        let request = charge(order, 1_000);
        async move {
            client
                .process_payment(request)
                .await
                .expect("charged or replayed")
                .into_inner()
        }
    }))
    .await
}

#[tokio::test]
async fn other_terms_for_a_charged_order_are_refused() {
    let app = spawn_app().await;
    let mut client = app.client().await;
    client
        .process_payment(charge("ord-terms-1", 1_000))
        .await
        .expect("charged");

    let refused = client
        .process_payment(charge("ord-terms-1", 1_001))
        .await
        .expect_err("another amount");
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert!(
        refused.message().contains("already charged 1000 EUR"),
        "the message says so: {}",
        refused.message()
    );
    let order = OrderId::parse("ord-terms-1").expect("valid id");
    let stored = app.ledger.get(&order).await.expect("read").expect("row");
    assert_eq!(stored.amount_minor, 1_000, "the first charge stands");
    app.stop().await;
}

#[tokio::test]
async fn invalid_requests_are_refused_field_by_field_and_write_nothing() {
    let app = spawn_app().await;
    let mut client = app.client().await;

    let cases = [
        (charge("", 1_000), "order_id"),
        (charge("ord-bad-1", 0), "amount.amount_minor"),
        (charge("ord-bad-2", -5), "amount.amount_minor"),
        (
            pb::ProcessPaymentRequest {
                amount: Some(pb::Money {
                    amount_minor: 100,
                    currency_code: "XYZ".to_owned(),
                }),
                ..charge("ord-bad-3", 100)
            },
            "amount.currency_code",
        ),
        (
            pb::ProcessPaymentRequest {
                method: 0,
                ..charge("ord-bad-4", 100)
            },
            "method",
        ),
    ];
    for (request, field) in cases {
        let status = client
            .process_payment(request)
            .await
            .expect_err("invalid input is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        let violations = status
            .get_details_bad_request()
            .expect("google.rpc.BadRequest details")
            .field_violations;
        assert!(
            violations.iter().any(|violation| violation.field == field),
            "{field} named in {violations:?}"
        );
        assert!(status.message().contains(field), "{}", status.message());
    }
    assert_eq!(
        app.ledger.count().await.expect("count"),
        0,
        "nothing written"
    );
    app.stop().await;
}
