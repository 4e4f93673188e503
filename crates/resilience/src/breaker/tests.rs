//! State-machine tests on [`Circuit`] with explicit time, and service tests under tokio's
//! paused clock.

use std::{
    sync::{
        Arc, Barrier, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

use super::*;
use crate::{GrpcClassifier, Verdict, is_caused_by};

const MS: Duration = Duration::from_millis(1);

fn circuit(config: BreakerConfig) -> (Arc<Circuit>, Instant) {
    config.validate().expect("valid test config");
    let now = Instant::now();
    (Arc::new(Circuit::new(&config, Arc::new(()), now)), now)
}

/// One call at `now`: acquire, then record `outcome` at once.
fn call(circuit: &Arc<Circuit>, outcome: Outcome, now: Instant) -> Result<(), BreakerOpen> {
    circuit.try_acquire(now)?.record(outcome, now);
    Ok(())
}

fn calls(circuit: &Arc<Circuit>, outcome: Outcome, n: usize, now: Instant) {
    for _ in 0..n {
        call(circuit, outcome, now).expect("admitted");
    }
}

fn count_window(size: u32, minimum: u32, failure_rate: f64) -> BreakerConfig {
    BreakerConfig::default()
        .with_window(SlidingWindow::Count(size))
        .with_minimum_calls(minimum)
        .with_failure_rate_threshold(failure_rate)
        .with_slow_call_duration(None)
        .with_wait_duration(Duration::from_secs(10))
        .with_wait_jitter(0.0)
        .with_half_open_calls(3)
}

#[test]
fn does_not_trip_below_the_minimum_number_of_calls() {
    let (circuit, now) = circuit(count_window(20, 10, 0.5));
    calls(&circuit, Outcome::Failure, 9, now);
    assert_eq!(
        circuit.state(),
        State::Closed,
        "9 failures are fewer than 10 calls"
    );
    call(&circuit, Outcome::Success, now).expect("admitted");
    assert_eq!(circuit.state(), State::Open, "9 of 10 failed");
}

#[test]
fn trips_at_exactly_the_failure_rate_threshold() {
    let (circuit, now) = circuit(count_window(10, 10, 0.5));
    calls(&circuit, Outcome::Success, 6, now);
    calls(&circuit, Outcome::Failure, 4, now);
    assert_eq!(circuit.state(), State::Closed, "4 of 10 is below 50 %");
    call(&circuit, Outcome::Failure, now).expect("admitted"); // the oldest success slides out
    assert_eq!(circuit.state(), State::Open, "5 of 10 is exactly 50 %");
}

#[test]
fn a_fractional_threshold_trips_exactly_at_it() {
    // 3 / 10 >= 0.3 is false in floating point; the breaker decides in integers.
    let (circuit, now) = circuit(count_window(10, 10, 0.3));
    calls(&circuit, Outcome::Success, 7, now);
    calls(&circuit, Outcome::Failure, 2, now);
    assert_eq!(circuit.state(), State::Closed);
    call(&circuit, Outcome::Failure, now).expect("admitted");
    assert_eq!(circuit.state(), State::Open);
}

#[test]
fn slow_calls_trip_on_the_slow_call_rate() {
    let config = count_window(10, 4, 1.0)
        .with_slow_call_duration(Some(100 * MS))
        .with_slow_call_rate_threshold(0.75);
    let (circuit, now) = circuit(config);
    call(&circuit, Outcome::Success, now).expect("admitted");
    calls(&circuit, Outcome::Slow, 2, now);
    assert_eq!(
        circuit.state(),
        State::Closed,
        "3 calls are below the minimum"
    );
    call(&circuit, Outcome::Slow, now).expect("admitted");
    assert_eq!(circuit.state(), State::Open, "3 of 4 slow");
}

#[test]
fn open_rejects_until_the_wait_ends_then_admits_exactly_the_trials() {
    let (circuit, start) = circuit(count_window(4, 4, 0.5));
    calls(&circuit, Outcome::Failure, 4, start);
    assert_eq!(circuit.state(), State::Open);

    let almost = start + Duration::from_secs(10) - Duration::from_nanos(1);
    let rejected = circuit.try_acquire(almost).expect_err("still open");
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(rejected.to_string(), "circuit breaker is open");

    let after = start + Duration::from_secs(10);
    let trials: Vec<_> = (0..3)
        .map(|_| circuit.try_acquire(after).expect("a trial"))
        .collect();
    assert_eq!(circuit.state(), State::HalfOpen);
    assert!(trials.iter().all(Permit::is_trial));
    assert_eq!(
        circuit
            .try_acquire(after)
            .expect_err("trials taken")
            .state(),
        State::HalfOpen
    );

    for trial in trials {
        assert_eq!(
            circuit.state(),
            State::HalfOpen,
            "closes only after every trial succeeds"
        );
        trial.record(Outcome::Success, after);
    }
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(
        circuit.stats(after),
        WindowStats::default(),
        "closed starts with a fresh window"
    );
}

#[test]
fn any_bad_trial_reopens_and_the_wait_grows_up_to_its_cap() {
    let config = count_window(2, 2, 0.5)
        .with_half_open_rule(HalfOpenRule::AllSucceed)
        .with_wait_duration(Duration::from_secs(1))
        .with_wait_jitter(0.0)
        .with_growing_wait(2.0, Duration::from_secs(3))
        .with_half_open_calls(2);
    let (circuit, mut now) = circuit(config);
    calls(&circuit, Outcome::Failure, 2, now);

    for expected_wait in [1, 2, 3, 3] {
        let wait = Duration::from_secs(expected_wait);
        assert!(
            circuit.try_acquire(now + wait - MS).is_err(),
            "open for {expected_wait} s"
        );
        now += wait;
        let good = circuit.try_acquire(now).expect("trial");
        let bad = circuit.try_acquire(now).expect("trial");
        good.record(Outcome::Success, now);
        bad.record(Outcome::Slow, now);
        assert_eq!(circuit.state(), State::Open);
    }

    // A successful probe closes it and forgets the trips: the next wait is the base again.
    now += Duration::from_secs(3);
    calls(&circuit, Outcome::Success, 2, now);
    assert_eq!(circuit.state(), State::Closed);
    calls(&circuit, Outcome::Failure, 2, now);
    assert!(circuit.try_acquire(now + Duration::from_secs(1)).is_ok());
}

#[test]
fn half_open_admits_exactly_n_among_a_thousand_concurrent_callers() {
    const CALLERS: usize = 1_000;
    const THREADS: usize = 8;
    let (circuit, start) = circuit(count_window(4, 4, 0.5).with_half_open_calls(5));
    calls(&circuit, Outcome::Failure, 4, start);
    let after = start + Duration::from_secs(10);

    let barrier = Arc::new(Barrier::new(THREADS));
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (circuit, barrier, admitted) = (circuit.clone(), barrier.clone(), admitted.clone());
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..CALLERS / THREADS {
                    if let Ok(permit) = circuit.try_acquire(after) {
                        admitted.lock().expect("not poisoned").push(permit);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no panic");
    }
    let admitted = std::mem::take(&mut *admitted.lock().expect("not poisoned"));
    assert_eq!(admitted.len(), 5);
    assert_eq!(circuit.state(), State::HalfOpen);
}

#[test]
fn a_trial_given_up_without_an_outcome_frees_its_slot() {
    let (circuit, start) = circuit(count_window(4, 4, 0.5).with_half_open_calls(1));
    calls(&circuit, Outcome::Failure, 4, start);
    let after = start + Duration::from_secs(10);
    let trial = circuit.try_acquire(after).expect("the one trial");
    assert!(circuit.try_acquire(after).is_err());
    trial.release();
    call(&circuit, Outcome::Success, after).expect("the slot is free again");
    assert_eq!(circuit.state(), State::Closed);
}

#[test]
fn an_outcome_from_an_earlier_state_is_not_counted() {
    let (circuit, start) = circuit(count_window(2, 2, 0.5).with_half_open_calls(1));
    let straggler = circuit.try_acquire(start).expect("closed");
    calls(&circuit, Outcome::Failure, 2, start);
    let after = start + Duration::from_secs(10);
    let trial = circuit.try_acquire(after).expect("trial");
    straggler.record(Outcome::Failure, after); // admitted while closed: ignored now
    assert_eq!(circuit.state(), State::HalfOpen);
    trial.record(Outcome::Success, after);
    assert_eq!(circuit.state(), State::Closed);
}

/// resilience4j's rule: the trials are judged together by the closed state's thresholds.
/// One failure in four trials (25 %, under a 50 % threshold) closes; two in four reopen; and
/// nothing is decided before the last trial ends.
#[test]
fn under_thresholds_the_trials_are_judged_together_once_all_have_ended() {
    let config = count_window(4, 4, 0.5)
        .with_wait_duration(Duration::from_secs(1))
        .with_wait_jitter(0.0)
        .with_half_open_calls(4)
        .with_half_open_rule(HalfOpenRule::UnderThresholds);
    for (failures, ends_in) in [(1, State::Closed), (2, State::Open)] {
        let (circuit, mut now) = circuit(config.clone());
        calls(&circuit, Outcome::Failure, 4, now);
        now += Duration::from_secs(1);
        let trials: Vec<Permit> = (0..4)
            .map(|_| circuit.try_acquire(now).expect("a trial"))
            .collect();
        assert!(circuit.try_acquire(now).is_err(), "exactly four trials");
        for (n, trial) in trials.into_iter().enumerate() {
            let outcome = if n < failures {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(
                circuit.state(),
                State::HalfOpen,
                "undecided before the last"
            );
            trial.record(outcome, now);
        }
        assert_eq!(circuit.state(), ends_in, "{failures} failures in 4 trials");
    }
}

/// The open wait is drawn from `[(1 − jitter) × wait, wait]`: never longer than the wait,
/// never shorter than its floor, and not the same for every trip (a fixed wait phase-locks
/// with a dependency that flaps at that period).
#[test]
fn the_open_wait_is_jittered_within_its_bounds() {
    let wait = Duration::from_secs(10);
    let config = count_window(4, 4, 0.5)
        .with_wait_duration(wait)
        .with_wait_jitter(0.5);
    let mut admitted_early = 0;
    for _ in 0..200 {
        let (circuit, now) = circuit(config.clone());
        calls(&circuit, Outcome::Failure, 4, now);
        assert_eq!(circuit.state(), State::Open);
        assert!(
            circuit.try_acquire(now + wait / 2 - MS).is_err(),
            "never shorter than (1 - jitter) x wait"
        );
        if circuit.try_acquire(now + wait * 3 / 4).is_ok() {
            admitted_early += 1;
        } else {
            assert!(
                circuit.try_acquire(now + wait).is_ok(),
                "never longer than the wait"
            );
        }
    }
    assert!(
        (50..150).contains(&admitted_early),
        "about half the waits end in their first half: {admitted_early} of 200"
    );
}

/// A result stamped a window span or more before the newest bucket used to land in a live
/// bucket's ring slot and overwrite it without subtracting it: the totals that decide trips
/// and `stats()` then disagreed for good, and this breaker opened on a window of one failure
/// in three calls.
#[test]
fn a_result_older_than_the_time_window_is_dropped_not_counted() {
    let (circuit, origin) = circuit(
        BreakerConfig::default()
            .with_window(SlidingWindow::Time(Duration::from_secs(1)))
            .with_minimum_calls(3)
            .with_failure_rate_threshold(0.5)
            .with_slow_call_duration(None),
    );
    let held = circuit.try_acquire(origin).expect("closed");
    call(&circuit, Outcome::Failure, origin + 1000 * MS).expect("closed");
    held.record(Outcome::Success, origin);
    let later = origin + 5000 * MS;
    calls(&circuit, Outcome::Success, 2, later);
    call(&circuit, Outcome::Failure, later).expect("closed");
    assert_eq!(
        circuit.stats(later),
        WindowStats {
            calls: 3,
            failures: 1,
            slow: 0
        }
    );
    assert_eq!(
        circuit.state(),
        State::Closed,
        "1 failure in 3 calls is 33 %"
    );
}

#[test]
fn forced_open_rejects_and_disabled_passes_uncounted_until_reset() {
    let (circuit, now) = circuit(count_window(4, 4, 0.5));
    circuit.force_open(now);
    let rejected = call(&circuit, Outcome::Success, now + Duration::from_secs(3600))
        .expect_err("forced open never times out");
    assert_eq!(rejected.state(), State::ForcedOpen);
    assert_eq!(rejected.to_string(), "circuit breaker is forced_open");

    circuit.disable(now);
    calls(&circuit, Outcome::Failure, 100, now);
    assert_eq!(
        circuit.state(),
        State::Disabled,
        "failures while disabled never trip"
    );

    circuit.reset(now);
    assert_eq!(circuit.state(), State::Closed);
    assert_eq!(circuit.stats(now).calls, 0);
}

/// Reproduces what gobreaker's documentation says of its settings, with the seeds' values:
/// `ReadyToTrip: Requests >= 5 && failure ratio >= 0.5`, `Interval: 60s`, `Timeout: 60s`,
/// `MaxRequests: 5`.
#[test]
fn the_gobreaker_seed_config_behaves_as_gobreaker_documents() {
    let (circuit, start) = circuit(BreakerConfig::gobreaker_seed());
    // ReadyToTrip is not satisfied by fewer than 5 requests, whatever they are.
    calls(&circuit, Outcome::Failure, 4, start);
    assert_eq!(circuit.state(), State::Closed);
    // Interval: counts older than the interval are cleared.
    let later = start + Duration::from_secs(61);
    call(&circuit, Outcome::Failure, later).expect("closed");
    assert_eq!(circuit.stats(later).calls, 1);
    assert_eq!(circuit.state(), State::Closed);
    // 5 requests, 2 failures (40 %): stays closed; a third failure in 6 (50 %) trips.
    calls(&circuit, Outcome::Success, 3, later);
    call(&circuit, Outcome::Failure, later).expect("closed");
    assert_eq!(circuit.state(), State::Closed, "2 of 5 is 40 %");
    call(&circuit, Outcome::Failure, later).expect("closed");
    assert_eq!(circuit.state(), State::Open, "3 of 6 is 50 %");
    // Timeout: open for 60 s, then half-open.
    assert!(
        circuit
            .try_acquire(later + Duration::from_secs(59))
            .is_err()
    );
    let probe = later + Duration::from_secs(60);
    // MaxRequests: half-open lets 5 through, the 6th gets ErrTooManyRequests...
    let trials: Vec<_> = (0..5)
        .map(|_| circuit.try_acquire(probe).expect("trial"))
        .collect();
    assert_eq!(
        circuit.try_acquire(probe).expect_err("too many").state(),
        State::HalfOpen
    );
    // ...and 5 consecutive successes close it.
    trials
        .into_iter()
        .for_each(|trial| trial.record(Outcome::Success, probe));
    assert_eq!(circuit.state(), State::Closed);
    // Any failure in half-open reopens it.
    calls(&circuit, Outcome::Failure, 5, probe);
    let probe = probe + Duration::from_secs(60);
    call(&circuit, Outcome::Failure, probe).expect("trial");
    assert_eq!(circuit.state(), State::Open);
}

// === the service, under tokio's paused clock ===

/// Records transitions and call outcomes as label strings.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl BreakerObserver for Arc<Recorder> {
    fn on_call(&self, outcome: CallOutcome) {
        self.0
            .lock()
            .expect("not poisoned")
            .push(outcome.as_str().to_owned());
    }
    fn on_transition(&self, from: State, to: State) {
        self.0
            .lock()
            .expect("not poisoned")
            .push(format!("{from}->{to}"));
    }
}

type Reply = Result<(), tonic::Status>;

/// A service answering each call with the next scripted reply after its delay.
fn scripted(
    script: Arc<Mutex<Vec<(Duration, Reply)>>>,
    calls: Arc<AtomicUsize>,
) -> impl Service<(), Response = (), Error = tonic::Status> + Clone {
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::SeqCst);
        let (delay, reply) = script.lock().expect("not poisoned").remove(0);
        async move {
            tokio::time::sleep(delay).await;
            reply
        }
    })
}

#[tokio::test(start_paused = true)]
async fn the_service_trips_on_slow_calls_fails_fast_and_recovers() {
    let config = count_window(4, 4, 0.5)
        .with_slow_call_duration(Some(100 * MS))
        .with_slow_call_rate_threshold(0.5)
        .with_wait_duration(Duration::from_secs(1))
        .with_wait_jitter(0.0)
        .with_half_open_calls(1);
    let recorder = Arc::new(Recorder::default());
    let layer = BreakerLayer::try_with_observer(config, GrpcClassifier::new(), recorder.clone())
        .expect("valid config");
    let handle = layer.handle();
    let slow: (Duration, Reply) = (150 * MS, Ok(()));
    let fast: (Duration, Reply) = (10 * MS, Ok(()));
    let script = Arc::new(Mutex::new(vec![
        fast.clone(),
        fast.clone(),
        slow.clone(),
        slow,
        fast,
    ]));
    let calls = Arc::new(AtomicUsize::new(0));
    let service = layer.layer(scripted(script, calls.clone()));

    for _ in 0..4 {
        service
            .clone()
            .oneshot(())
            .await
            .expect("every call succeeds");
    }
    assert_eq!(handle.state(), State::Open, "2 of 4 calls were slow");

    let start = Instant::now();
    let error = service.clone().oneshot(()).await.expect_err("open");
    assert!(is_caused_by::<BreakerOpen>(&*error));
    assert_eq!(Instant::now(), start, "the rejection did not wait");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "the dependency was not called"
    );

    tokio::time::advance(Duration::from_secs(1)).await;
    service
        .clone()
        .oneshot(())
        .await
        .expect("the trial succeeds");
    assert_eq!(handle.state(), State::Closed);
    let seen = recorder.0.lock().expect("not poisoned").clone();
    assert_eq!(
        seen,
        [
            "success",
            "success",
            "slow",
            "slow",
            "closed->open",
            "rejected",
            "open->half_open",
            "success",
            "half_open->closed"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_answers_without_waiting_for_an_unready_dependency() {
    let layer = BreakerLayer::try_new(count_window(4, 4, 0.5), GrpcClassifier::new())
        .expect("valid config");
    layer.handle().force_open();
    // A dependency that never becomes ready (a channel that cannot connect).
    let never_ready = tower::util::service_fn(|()| async { Ok::<_, tonic::Status>(()) })
        .map_future(|f| f)
        .and_then(|()| std::future::pending::<Result<(), tonic::Status>>());
    let mut service = layer.layer(NeverReady(never_ready));
    let error = service
        .ready()
        .await
        .expect("ready to reject")
        .call(())
        .await
        .expect_err("open");
    assert_eq!(
        error.downcast_ref::<BreakerOpen>().map(BreakerOpen::state),
        Some(State::ForcedOpen)
    );
}

/// Wraps a service and is never ready.
#[derive(Clone)]
struct NeverReady<S>(S);

impl<S: Service<()>> Service<()> for NeverReady<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        std::task::Poll::Pending
    }

    fn call(&mut self, request: ()) -> S::Future {
        self.0.call(request)
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_abandoned_after_the_slow_threshold_counts_as_slow() {
    let config = count_window(1, 1, 1.0)
        .with_slow_call_duration(Some(100 * MS))
        .with_slow_call_rate_threshold(1.0);
    let layer = BreakerLayer::try_new(config, GrpcClassifier::new()).expect("valid config");
    let hanging = service_fn(|()| std::future::pending::<Result<(), tonic::Status>>());
    let service = layer.layer(hanging);
    let abandoned = tokio::time::timeout(50 * MS, service.clone().oneshot(())).await;
    assert!(abandoned.is_err());
    assert_eq!(
        layer.handle().state(),
        State::Closed,
        "given up before it was slow: not counted"
    );
    let abandoned = tokio::time::timeout(150 * MS, service.oneshot(())).await;
    assert!(abandoned.is_err());
    assert_eq!(
        layer.handle().state(),
        State::Open,
        "a hang teaches the breaker"
    );
}

#[tokio::test(start_paused = true)]
async fn a_breaker_that_trips_late_in_its_life_still_waits() {
    // Count window, no slow-call timing: nothing is timed, but the trip must still be placed
    // in time, or the wait would be counted from the breaker's creation.
    let layer = BreakerLayer::try_new(count_window(2, 2, 0.5), GrpcClassifier::new())
        .expect("valid config");
    let failing = service_fn(|()| async { Err::<(), _>(tonic::Status::unavailable("down")) });
    let service = layer.layer(failing);
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..2 {
        service.clone().oneshot(()).await.expect_err("fails");
    }
    assert_eq!(layer.handle().state(), State::Open);
    tokio::time::advance(Duration::from_secs(9)).await;
    let error = service.clone().oneshot(()).await.expect_err("rejected");
    assert!(
        is_caused_by::<BreakerOpen>(&*error),
        "open for the 10 s wait: {error}"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let error = service.oneshot(()).await.expect_err("the trial fails");
    assert!(
        !is_caused_by::<BreakerOpen>(&*error),
        "a trial after the wait"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_after_a_time_jump_is_timed_from_its_own_start() {
    // A trial call made right after time jumps (as after a stall of the runtime) must not be
    // counted slow for the time that passed before it started.
    let config = count_window(2, 2, 0.5)
        .with_slow_call_duration(Some(100 * MS))
        .with_wait_duration(Duration::from_secs(10))
        .with_wait_jitter(0.0)
        .with_half_open_calls(1);
    let layer = BreakerLayer::try_new(config, GrpcClassifier::new()).expect("valid config");
    let script = Arc::new(Mutex::new(vec![
        (10 * MS, Err(tonic::Status::unavailable("down"))),
        (10 * MS, Err(tonic::Status::unavailable("down"))),
        (10 * MS, Ok(())),
    ]));
    let service = layer.layer(scripted(script, Arc::new(AtomicUsize::new(0))));
    for _ in 0..2 {
        service.clone().oneshot(()).await.expect_err("fails");
    }
    assert_eq!(layer.handle().state(), State::Open);
    tokio::time::advance(Duration::from_secs(10)).await;
    service.oneshot(()).await.expect("the trial succeeds");
    assert_eq!(layer.handle().state(), State::Closed, "10 ms is not slow");
}

#[tokio::test(start_paused = true)]
async fn ignored_results_are_not_counted() {
    let ignore_all = |_: &Result<(), tonic::Status>| Verdict::Ignore;
    let layer = BreakerLayer::try_new(count_window(2, 2, 0.5), ignore_all).expect("valid config");
    let failing = service_fn(|()| async { Err::<(), _>(tonic::Status::unavailable("down")) });
    let service = layer.layer(failing);
    for _ in 0..10 {
        service.clone().oneshot(()).await.expect_err("fails");
    }
    assert_eq!(layer.handle().state(), State::Closed);
    assert_eq!(layer.handle().stats().calls, 0);
}
