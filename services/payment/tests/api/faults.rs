//! Fault injection, set live: failures, their rate, latency, hangs, outages.

use std::time::{Duration, Instant};

use contracts::payment::v1 as pb;
use futures::future::join_all;
use stormproof_payment::faults::{FaultSettings, Preset};
use tonic::Code;

use crate::helpers::{charge, sample, spawn_app};

#[tokio::test]
async fn a_failure_rate_of_one_fails_every_call_and_charges_nothing() {
    let app = spawn_app().await;
    let mut client = app.client().await;
    app.set_faults(FaultSettings {
        failure_rate: 1.0,
        ..FaultSettings::default()
    });
    for call in 0..20 {
        let status = client
            .process_payment(charge(&format!("ord-fail-{call}"), 100))
            .await
            .expect_err("every call fails");
        assert_eq!(status.code(), Code::Unavailable);
    }
    assert_eq!(app.ledger.count().await.expect("count"), 0);
    app.stop().await;
}

/// 400 calls at 25 %: the count of failures is Binomial(400, 0.25), mean 100, σ ≈ 8.66; the
/// test accepts mean ± 4σ (a false alarm about once in 16,000 runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_rate_fails_its_share_of_calls() {
    let app = spawn_app().await;
    let client = app.client().await;
    app.set_faults(FaultSettings {
        failure_rate: 0.25,
        ..FaultSettings::default()
    });
    let (calls, rate) = (400_u32, 0.25_f64);
    let mut failures = 0_u32;
    for batch in 0..(calls / 50) {
        let results = join_all((0..50).map(|call| {
            let mut client = client.clone();
            let request = charge(&format!("ord-rate-{batch}-{call}"), 100);
            async move { client.process_payment(request).await }
        }))
        .await;
        for result in results {
            match result {
                Ok(_) => {}
                Err(status) if status.code() == Code::Unavailable => failures += 1,
                Err(status) => panic!("unexpected {status:?}"),
            }
        }
    }
    let mean = f64::from(calls) * rate;
    let sigma = (f64::from(calls) * rate * (1.0 - rate)).sqrt();
    let (low, high) = (mean - 4.0 * sigma, mean + 4.0 * sigma);
    assert!(
        (low..=high).contains(&f64::from(failures)),
        "{failures} failures of {calls}, expected {low:.0}..={high:.0}"
    );
    let charged = app.ledger.count().await.expect("count");
    assert_eq!(
        charged,
        i64::from(calls - failures),
        "only answered calls charged"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_every_call() {
    let app = spawn_app().await;
    let client = app.client().await;
    app.set_faults(FaultSettings {
        latency_ms: 200,
        ..FaultSettings::default()
    });
    let durations = join_all((0..10).map(|call| {
        let mut client = client.clone();
        async move {
            let started = Instant::now();
            client
                .process_payment(charge(&format!("ord-slow-{call}"), 100))
                .await
                .expect("slow but answered");
            started.elapsed()
        }
    }))
    .await;
    for elapsed in durations {
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    }
    app.stop().await;
}

/// A hung call is ended by the caller's deadline, not earlier and not much later. tonic reports
/// its own expired deadline as CANCELLED "Timeout expired" (on the client and the server side
/// alike) where the gRPC spec says DEADLINE_EXCEEDED; the resilience crate's deadline layer,
/// which the order service calls through, reports DEADLINE_EXCEEDED.
#[tokio::test]
async fn a_hang_is_ended_by_the_callers_deadline() {
    let app = spawn_app().await;
    let mut client = app.client().await;
    app.set_faults(FaultSettings {
        hang_rate: 1.0,
        ..FaultSettings::default()
    });
    let deadline = Duration::from_millis(300);
    let mut request = tonic::Request::new(charge("ord-hang-1", 100));
    request.set_timeout(deadline);
    let started = Instant::now();
    let status = client
        .process_payment(request)
        .await
        .expect_err("a hang never answers");
    let elapsed = started.elapsed();
    assert!(
        status.code() == Code::DeadlineExceeded
            || (status.code() == Code::Cancelled && status.message() == "Timeout expired"),
        "ended by the deadline: {status:?}"
    );
    assert!(elapsed >= deadline, "not before the deadline: {elapsed:?}");
    assert!(
        elapsed < deadline + Duration::from_millis(500),
        "promptly at the deadline: {elapsed:?}"
    );
    assert_eq!(app.ledger.count().await.expect("count"), 0);
    let metrics = app.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "payment_fault_injected_total",
            &[("kind", "hang")]
        ),
        Some(1.0)
    );
    app.stop().await;
}

/// The same hang through the resilience crate's deadline layer, the way the order service calls
/// payment: the caller gets DEADLINE_EXCEEDED at its deadline.
#[tokio::test]
async fn a_hang_gives_a_deadline_bound_caller_deadline_exceeded() {
    use resilience::deadline::{DeadlineConfig, DeadlineExceeded, DeadlineLayer};
    use tower::{ServiceBuilder, ServiceExt as _, service_fn};

    let app = spawn_app().await;
    let client = app.client().await;
    app.set_faults(FaultSettings {
        hang_rate: 1.0,
        ..FaultSettings::default()
    });
    let deadline = Duration::from_millis(300);
    let payment = ServiceBuilder::new()
        .layer(
            DeadlineLayer::try_new(DeadlineConfig::default().with_default_timeout(deadline))
                .expect("valid config"),
        )
        .service(service_fn(
            move |request: tonic::Request<pb::ProcessPaymentRequest>| {
                let mut client = client.clone();
                async move { client.process_payment(request).await }
            },
        ));

    let started = Instant::now();
    let error = payment
        .oneshot(tonic::Request::new(charge("ord-hang-2", 100)))
        .await
        .expect_err("a hang never answers");
    let elapsed = started.elapsed();
    let status = resilience::find_cause::<DeadlineExceeded>(&*error)
        .map(|exceeded| tonic::Status::from(*exceeded))
        .unwrap_or_else(|| panic!("ended by the deadline: {error}"));
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(elapsed >= deadline, "not before the deadline: {elapsed:?}");
    assert!(
        elapsed < deadline + Duration::from_millis(500),
        "promptly at the deadline: {elapsed:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_outage_fails_fast_and_healing_restores_service() {
    let app = spawn_app().await;
    let mut client = app.client().await;
    app.set_faults(Preset::Outage.settings());
    let started = Instant::now();
    let status = client
        .process_payment(charge("ord-out-1", 100))
        .await
        .expect_err("down");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(started.elapsed() < Duration::from_millis(500), "fails fast");
    let status = client
        .get_payment(pb::GetPaymentRequest {
            order_id: "ord-out-1".to_owned(),
        })
        .await
        .expect_err("reads are down too");
    assert_eq!(status.code(), Code::Unavailable);

    app.set_faults(FaultSettings::default());
    let healed = client
        .process_payment(charge("ord-out-1", 100))
        .await
        .expect("healed")
        .into_inner();
    assert!(!healed.replayed, "the failed call had charged nothing");
    app.stop().await;
}

#[tokio::test]
async fn a_decline_is_an_answer_and_is_kept() {
    let app = spawn_app().await;
    let mut client = app.client().await;
    app.set_faults(FaultSettings {
        decline_rate: 1.0,
        ..FaultSettings::default()
    });
    let declined = client
        .process_payment(charge("ord-decl-1", 100))
        .await
        .expect("a decline is not an error")
        .into_inner()
        .payment
        .expect("a payment");
    assert_eq!(declined.status(), pb::PaymentStatus::Declined);
    assert!(!declined.decline_reason.is_empty());

    app.set_faults(FaultSettings::default());
    let again = client
        .process_payment(charge("ord-decl-1", 100))
        .await
        .expect("replayed")
        .into_inner();
    assert!(again.replayed);
    assert_eq!(
        again.payment.map(|payment| payment.status()),
        Some(pb::PaymentStatus::Declined),
        "the first answer stands"
    );
    app.stop().await;
}
