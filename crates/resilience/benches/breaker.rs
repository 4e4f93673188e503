//! The breaker's cost per call, against tower-resilience's and failsafe's, in one run.
//!
//! Every case makes the same call on a ready inner service that answers at once: `Ok` when
//! the breaker is closed, and, open, a call the breaker rejects. Tower services are driven as
//! a client drives them (`ready().await`, then `call(()).await`); failsafe, which is not a
//! tower service, as `breaker.call(future).await`. Each thread runs its loop on its own
//! current-thread tokio runtime. The 2-thread cases run the same loop on two threads sharing
//! one breaker and report the time per call of one thread. Every breaker trips on a failure
//! rate over the last 100 calls (failsafe: over a 60 s window), after at least 100 calls.
//!
//! After criterion's own report, the run prints a table computed from the same measured samples
//! (median ns/call) with the ratio of ours to the best peer, for docs/performance.md.

use std::{
    collections::BTreeMap,
    future::{Ready, ready},
    hint::black_box,
    sync::{Barrier, Mutex},
    time::{Duration, Instant},
};

use criterion::Criterion;
use resilience::{
    BoxError, GrpcClassifier,
    breaker::{BreakerConfig, BreakerLayer, SlidingWindow, State},
};
use tower::{Layer, Service, ServiceExt, service_fn};

/// One call through the thing under test.
trait Caller: Send {
    fn call_once(&mut self) -> impl Future<Output = ()>;
}

/// A tower service called as a client calls it.
struct Tower<S>(S);

impl<S> Caller for Tower<S>
where
    S: Service<()> + Send,
{
    async fn call_once(&mut self) {
        if let Ok(service) = self.0.ready().await {
            let _ = black_box(service.call(()).await.is_ok());
        }
    }
}

/// A failsafe breaker wrapping a future that is ready at once.
struct Failsafe<B> {
    breaker: B,
    fail: bool,
}

impl<B: failsafe::futures::CircuitBreaker + Send> Caller for Failsafe<B> {
    async fn call_once(&mut self) {
        let reply = if self.fail { Err(()) } else { Ok(()) };
        let _ = black_box(self.breaker.call(ready(reply)).await.is_ok());
    }
}

fn answering()
-> impl Service<(), Response = (), Error = BoxError, Future = Ready<Result<(), BoxError>>> + Clone + Send
{
    service_fn(|()| ready(Ok(())))
}

fn failing()
-> impl Service<(), Response = (), Error = BoxError, Future = Ready<Result<(), BoxError>>> + Clone + Send
{
    service_fn(|()| ready(Err::<(), BoxError>("down".into())))
}

/// Runs `iters` calls on each of `threads` threads, each with its own caller from `make`,
/// and returns the longest thread's time.
fn measure<C: Caller>(threads: usize, iters: u64, make: &(impl Fn() -> C + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (mut caller, barrier) = (make(), &barrier);
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_time()
                        .build()
                        .expect("a runtime");
                    runtime.block_on(async {
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            caller.call_once().await;
                        }
                        start.elapsed()
                    })
                })
            })
            .collect();
        let times = handles
            .into_iter()
            .map(|handle| handle.join().expect("no panic"));
        times.max().expect("at least one thread")
    })
}

/// Per-call times (ns) of every sample, keyed by (scenario, implementation).
static SAMPLES: Mutex<BTreeMap<(&str, &str), Vec<f64>>> = Mutex::new(BTreeMap::new());

fn bench<C: Caller>(
    criterion: &mut Criterion,
    scenario: &'static str,
    implementation: &'static str,
    make: impl Fn() -> C + Sync,
) {
    let threads = if scenario.contains("2 threads") { 2 } else { 1 };
    criterion.bench_function(&format!("{scenario}/{implementation}"), |b| {
        b.iter_custom(|iters| {
            let elapsed = measure(threads, iters, &make);
            if iters >= 1_000 {
                let per_call = elapsed.as_nanos() as f64 / iters as f64;
                let mut samples = SAMPLES.lock().expect("not poisoned");
                samples
                    .entry((scenario, implementation))
                    .or_default()
                    .push(per_call);
            }
            elapsed
        });
    });
}

fn ours(config: BreakerConfig) -> BreakerLayer<GrpcClassifier> {
    BreakerLayer::try_new(config, GrpcClassifier::new()).expect("valid config")
}

fn our_config() -> BreakerConfig {
    BreakerConfig::default()
        .with_window(SlidingWindow::Count(100))
        .with_minimum_calls(100)
        .with_failure_rate_threshold(0.5)
        .with_wait_duration(Duration::from_secs(3600))
        .with_growing_wait(1.0, Duration::from_secs(3600))
}

fn tower_resilience<S>(inner: S) -> impl Service<()> + Clone + Send
where
    S: Service<(), Response = ()> + Clone + Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_size(100)
        .minimum_number_of_calls(100)
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .expect("valid config")
        .layer(inner)
}

fn failsafe_breaker() -> impl failsafe::futures::CircuitBreaker + Clone + Send {
    let backoff = failsafe::backoff::constant(Duration::from_secs(3600));
    let policy = failsafe::failure_policy::success_rate_over_time_window(
        0.5,
        100,
        Duration::from_secs(60),
        backoff,
    );
    failsafe::Config::new().failure_policy(policy).build()
}

/// Trips a tower breaker by calling its failing inner service until it rejects.
fn trip<S: Service<()> + Clone + Send>(service: &S) -> &S {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("rt");
    runtime.block_on(async {
        for _ in 0..200 {
            let mut caller = Tower(service.clone());
            caller.call_once().await;
        }
    });
    service
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(SAMPLE_SIZE)
        .configure_from_args();

    for scenario in ["closed, 1 thread", "closed, 2 threads"] {
        bench(&mut criterion, scenario, "passthrough", || {
            Tower(answering())
        });
        let layer = ours(our_config());
        bench(&mut criterion, scenario, "ours", || {
            Tower(layer.layer(answering()))
        });
        let untimed = ours(our_config().with_slow_call_duration(None));
        bench(&mut criterion, scenario, "ours, slow calls off", || {
            Tower(untimed.layer(answering()))
        });
        let peer = tower_resilience(answering());
        bench(&mut criterion, scenario, "tower-resilience", || {
            Tower(peer.clone())
        });
        let peer = failsafe_breaker();
        bench(&mut criterion, scenario, "failsafe", || Failsafe {
            breaker: peer.clone(),
            fail: false,
        });
    }

    let scenario = "open (rejection), 1 thread";
    let layer = ours(our_config());
    let tripped = layer.layer(failing());
    trip(&tripped);
    assert_eq!(layer.handle().state(), State::Open);
    bench(&mut criterion, scenario, "ours", || Tower(tripped.clone()));
    let peer = tower_resilience(failing());
    trip(&peer);
    bench(&mut criterion, scenario, "tower-resilience", || {
        Tower(peer.clone())
    });
    // failsafe's rate policy is an exponential moving average over time, which does not move
    // while the clock stands still; a consecutive-failures policy trips it at once, and the
    // rejection path does not depend on the policy.
    let backoff = failsafe::backoff::constant(Duration::from_secs(3600));
    let peer = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(1, backoff))
        .build();
    let mut tripping = Failsafe {
        breaker: peer.clone(),
        fail: true,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    runtime.block_on(async {
        for _ in 0..200 {
            tripping.call_once().await;
        }
    });
    assert!(!peer.is_call_permitted(), "failsafe tripped");
    bench(&mut criterion, scenario, "failsafe", || Failsafe {
        breaker: peer.clone(),
        fail: false,
    });

    criterion.final_summary();
    print_table();
}

/// Samples criterion measures per case, after its warm-up.
const SAMPLE_SIZE: usize = 20;

/// The median of the measured samples (the last [`SAMPLE_SIZE`]; the ones before are
/// criterion's warm-up).
fn median(samples: &[f64]) -> Option<f64> {
    let measured = &samples[samples.len().saturating_sub(SAMPLE_SIZE)..];
    let mut sorted = measured.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

fn print_table() {
    let samples = SAMPLES.lock().expect("not poisoned");
    let ns = |scenario: &str, implementation: &str| {
        samples
            .get(&(scenario, implementation))
            .and_then(|s| median(s))
    };
    let cell = |value: Option<f64>, precision: usize| {
        value.map_or_else(|| "–".to_owned(), |v| format!("{v:.precision$}"))
    };
    println!();
    println!(
        "| scenario | passthrough | ours | ours, slow calls off | tower-resilience | failsafe \
         | ours / best peer | ours, slow calls off / best peer | ours − passthrough |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for scenario in [
        "closed, 1 thread",
        "closed, 2 threads",
        "open (rejection), 1 thread",
    ] {
        let best_peer = [ns(scenario, "tower-resilience"), ns(scenario, "failsafe")]
            .into_iter()
            .flatten()
            .min_by(f64::total_cmp);
        let ratio = |implementation| {
            ns(scenario, implementation)
                .zip(best_peer)
                .map(|(a, b)| a / b)
        };
        let ours = ns(scenario, "ours");
        let overhead = ours
            .zip(ns(scenario, "passthrough"))
            .map(|(ours, base)| ours - base);
        println!(
            "| {scenario} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(ns(scenario, "passthrough"), 1),
            cell(ours, 1),
            cell(ns(scenario, "ours, slow calls off"), 1),
            cell(ns(scenario, "tower-resilience"), 1),
            cell(ns(scenario, "failsafe"), 1),
            cell(ratio("ours"), 2),
            cell(ratio("ours, slow calls off"), 2),
            cell(overhead, 1),
        );
    }
}
