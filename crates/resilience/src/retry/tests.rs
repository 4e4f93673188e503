use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;
use tonic::Status;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::{policy::full_jitter, *};
use crate::{GrpcClassifier, RetryDecision, deadline::WithDeadline};

/// Records every attempt outcome.
#[derive(Default)]
struct Recorder(Mutex<Vec<AttemptOutcome>>);

impl RetryObserver for Arc<Recorder> {
    fn on_attempt(&self, _: u32, outcome: AttemptOutcome, _: Option<Duration>) {
        self.0.lock().expect("not poisoned").push(outcome);
    }
}

impl Recorder {
    fn count(&self, outcome: AttemptOutcome) -> usize {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|o| **o == outcome)
            .count()
    }
}

/// An inner service that fails every call with `status()` after `latency`, counting calls.
fn failing(
    calls: Arc<AtomicU32>,
    latency: Duration,
    status: fn() -> Status,
) -> impl Service<WithDeadline<()>, Response = (), Error = Status, Future: Send> + Clone {
    service_fn(move |_: WithDeadline<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(latency).await;
            Err::<(), _>(status())
        }
    })
}

fn unavailable() -> Status {
    Status::unavailable("down")
}

/// A budget so large it never decides anything.
fn unbudgeted() -> RetryConfig {
    RetryConfig::default().with_budget(1000.0, 1000, Duration::from_secs(1))
}

#[tokio::test(start_paused = true)]
async fn never_exceeds_max_attempts() {
    for max_attempts in 1..=5 {
        let calls = Arc::new(AtomicU32::new(0));
        let recorder = Arc::new(Recorder::default());
        let config = unbudgeted().with_max_attempts(max_attempts);
        let layer = RetryLayer::try_with_observer(config, GrpcClassifier::new(), recorder.clone())
            .expect("valid config");
        let service = layer.layer(failing(
            calls.clone(),
            Duration::from_millis(1),
            unavailable,
        ));
        let status = service
            .oneshot(WithDeadline::new(()))
            .await
            .expect_err("always fails");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(calls.load(Ordering::SeqCst), max_attempts);
        assert_eq!(
            recorder.count(AttemptOutcome::Retried),
            max_attempts as usize - 1
        );
        assert_eq!(recorder.count(AttemptOutcome::Exhausted), 1);
    }
}

/// An attempt that failed after 150 ms is expected to take 150 ms again: with 50 ms left
/// before the deadline, the caller gets the failure now instead of a retry that the deadline
/// would cut (min_attempt_time alone, 20 ms, would have allowed it).
#[tokio::test(start_paused = true)]
async fn a_retry_is_not_started_when_the_last_attempt_would_not_fit_again() {
    let config = unbudgeted().with_backoff(Duration::from_millis(1), 2.0, Duration::from_millis(1));
    let calls = Arc::new(AtomicU32::new(0));
    let recorder = Arc::new(Recorder::default());
    let layer = RetryLayer::try_with_observer(config, GrpcClassifier::new(), recorder.clone())
        .expect("valid config");
    let service = layer.layer(failing(
        calls.clone(),
        Duration::from_millis(150),
        unavailable,
    ));
    let start = Instant::now();
    service
        .oneshot(WithDeadline::due_by((), start + Duration::from_millis(200)))
        .await
        .expect_err("always fails");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no retry was started");
    assert_eq!(recorder.count(AttemptOutcome::DeadlineReached), 1);
    assert_eq!(
        Instant::now() - start,
        Duration::from_millis(150),
        "answered at once"
    );
}

#[tokio::test(start_paused = true)]
async fn never_sleeps_past_the_deadline_nor_starts_an_attempt_that_cannot_finish() {
    let config = unbudgeted()
        .with_max_attempts(100)
        .with_backoff(Duration::from_millis(10), 2.0, Duration::from_millis(200))
        .with_min_attempt_time(Duration::from_millis(30));
    let latency = Duration::from_millis(5);
    for _ in 0..200 {
        let calls = Arc::new(AtomicU32::new(0));
        let recorder = Arc::new(Recorder::default());
        let layer =
            RetryLayer::try_with_observer(config.clone(), GrpcClassifier::new(), recorder.clone())
                .expect("valid config");
        let service = layer.layer(failing(calls.clone(), latency, unavailable));
        let start = Instant::now();
        let deadline = start + Duration::from_millis(300);
        service
            .oneshot(WithDeadline::due_by((), deadline))
            .await
            .expect_err("always fails");
        let end = Instant::now();
        // The last attempt started at least min_attempt_time before the deadline and took
        // `latency`; the retry layer itself never slept past it.
        assert!(
            end <= deadline,
            "ended {:?} after the deadline",
            end - deadline
        );
        assert!(end + config.min_attempt_time - latency <= deadline);
        assert_eq!(recorder.count(AttemptOutcome::DeadlineReached), 1);
        assert!(
            calls.load(Ordering::SeqCst) >= 2,
            "the deadline allowed at least one retry"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_caps_retries_under_a_total_outage() {
    const REQUESTS: u32 = 1_000;
    let calls = Arc::new(AtomicU32::new(0));
    let recorder = Arc::new(Recorder::default());
    // One retry per ten requests, a floor of one per second over a one-second window.
    let config =
        RetryConfig::default()
            .with_max_attempts(3)
            .with_budget(0.1, 1, Duration::from_secs(1));
    // Retry at once (pushback of zero), so the whole stream falls in one budget window.
    let retry_now = |result: &Result<(), Status>| match result {
        Ok(()) => RetryDecision::Stop,
        Err(_) => RetryDecision::RetryAfter(Duration::ZERO),
    };
    let layer =
        RetryLayer::try_with_observer(config, retry_now, recorder.clone()).expect("valid config");
    let service = layer.layer(failing(calls.clone(), Duration::ZERO, unavailable));
    let start = Instant::now();
    let mut marked = 0;
    for _ in 0..REQUESTS {
        let status = service
            .clone()
            .oneshot(WithDeadline::new(()))
            .await
            .expect_err("always fails");
        assert_eq!(
            status.code(),
            tonic::Code::Unavailable,
            "the last error is returned"
        );
        if crate::is_caused_by::<RetryBudgetExhausted>(&status) {
            marked += 1;
        }
    }
    assert_eq!(
        Instant::now(),
        start,
        "the stream stayed within one budget window"
    );
    let retries = calls.load(Ordering::SeqCst) - REQUESTS;
    // 10 % of 1,000 requests plus a floor of 1 per second for the 1 s window.
    assert!(retries <= 101, "{retries} retries exceed the budget");
    assert!(retries >= 95, "{retries} retries: the budget was not used");
    let ended_by_budget = recorder.count(AttemptOutcome::BudgetExhausted);
    let ended_by_attempts = recorder.count(AttemptOutcome::Exhausted);
    assert_eq!(ended_by_budget + ended_by_attempts, REQUESTS as usize);
    assert_eq!(
        marked, ended_by_budget,
        "exactly the budget-refused errors are marked"
    );
    assert!(
        ended_by_budget >= 800,
        "most requests were denied their retry"
    );
}

#[tokio::test(start_paused = true)]
async fn honours_server_pushback() {
    let calls = Arc::new(AtomicU32::new(0));
    let layer = RetryLayer::try_new(unbudgeted().with_max_attempts(2), GrpcClassifier::new())
        .expect("valid config");
    let pushback = || {
        let mut status = Status::unavailable("busy");
        status.metadata_mut().insert(
            crate::classify::RETRY_PUSHBACK_HEADER,
            "750".parse().expect("ascii"),
        );
        status
    };
    let start = Instant::now();
    layer
        .layer(failing(calls.clone(), Duration::ZERO, pushback))
        .oneshot(WithDeadline::new(()))
        .await
        .expect_err("always fails");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_millis(750));
}

#[tokio::test(start_paused = true)]
async fn does_not_retry_what_the_classifier_calls_final() {
    let calls = Arc::new(AtomicU32::new(0));
    let recorder = Arc::new(Recorder::default());
    let layer =
        RetryLayer::try_with_observer(unbudgeted(), GrpcClassifier::new(), recorder.clone())
            .expect("valid config");
    let service = layer.layer(failing(calls.clone(), Duration::ZERO, || {
        Status::invalid_argument("no")
    }));
    service
        .oneshot(WithDeadline::new(()))
        .await
        .expect_err("fails");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(recorder.count(AttemptOutcome::NonRetryable), 1);
}

#[test]
fn jitter_stays_within_zero_and_the_ceiling() {
    let config = RetryConfig::default().with_backoff(
        Duration::from_millis(10),
        2.0,
        Duration::from_millis(500),
    );
    let ceilings: Vec<_> = (1..=8).map(|retry| config.backoff_ceiling(retry)).collect();
    assert_eq!(ceilings[0], Duration::from_millis(10));
    assert_eq!(ceilings[3], Duration::from_millis(80));
    assert_eq!(ceilings[7], Duration::from_millis(500), "capped");

    let mut rng = rand::rng();
    let ceiling = Duration::from_millis(80);
    let samples: Vec<_> = (0..10_000)
        .map(|_| full_jitter(ceiling, &mut rng))
        .collect();
    assert!(samples.iter().all(|d| *d <= ceiling));
    // Spread over the whole range, not bunched at one end.
    assert!(samples.iter().any(|d| *d < ceiling / 10));
    assert!(samples.iter().any(|d| *d > ceiling * 9 / 10));
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    assert!(
        mean > ceiling * 4 / 10 && mean < ceiling * 6 / 10,
        "mean {mean:?}"
    );
}

#[test]
fn bad_budgets_are_config_errors_not_panics() {
    let field = |config: RetryConfig| config.validate().map_err(|e| e.field());
    assert_eq!(
        field(RetryConfig::default().with_budget(0.2, 10, Duration::ZERO)),
        Err("budget_ttl")
    );
    assert_eq!(
        field(RetryConfig::default().with_budget(-1.0, 10, Duration::from_secs(10))),
        Err("budget_ratio")
    );
    assert_eq!(
        field(RetryConfig::default().with_max_attempts(0)),
        Err("max_attempts")
    );
    assert_eq!(RetryConfig::default().validate(), Ok(()));
}
