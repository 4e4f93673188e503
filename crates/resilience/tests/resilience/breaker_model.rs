//! Property test: for any configuration, sequence of calls, abandoned calls, operator
//! overrides and clock steps, the breaker agrees with a small reference model written here
//! from the documented rules, on every admission decision and every state.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use proptest::prelude::*;
use resilience::breaker::{
    BreakerConfig, Circuit, HalfOpenRule, Outcome, Permit, SlidingWindow, State,
};
use tokio::time::Instant;

#[derive(Debug, Clone)]
struct Params {
    /// `Ok(size)` for a count window, `Err(span_ms)` for a time window.
    window: Result<u32, u64>,
    minimum_calls: u32,
    failure_pct: u64,
    slow_pct: Option<u64>,
    wait_ms: u64,
    multiplier: u32,
    max_wait_ms: u64,
    half_open_calls: u32,
    /// resilience4j's rule (judge the trials by the thresholds) rather than gobreaker's.
    under_thresholds: bool,
}

impl Params {
    fn config(&self) -> BreakerConfig {
        let window = match self.window {
            Ok(size) => SlidingWindow::Count(size),
            Err(span) => SlidingWindow::Time(Duration::from_millis(span)),
        };
        BreakerConfig::default()
            .with_window(window)
            .with_minimum_calls(self.minimum_calls)
            .with_failure_rate_threshold(self.failure_pct as f64 / 100.0)
            .with_slow_call_duration(self.slow_pct.map(|_| Duration::from_millis(100)))
            .with_slow_call_rate_threshold(self.slow_pct.unwrap_or(100) as f64 / 100.0)
            .with_wait_duration(Duration::from_millis(self.wait_ms))
            .with_wait_jitter(0.0)
            .with_growing_wait(
                f64::from(self.multiplier),
                Duration::from_millis(self.max_wait_ms),
            )
            .with_half_open_calls(self.half_open_calls)
            .with_half_open_rule(if self.under_thresholds {
                HalfOpenRule::UnderThresholds
            } else {
                HalfOpenRule::AllSucceed
            })
    }
}

fn params() -> impl Strategy<Value = Params> {
    let window = prop_oneof![
        (1u32..=10).prop_map(Ok),
        (10u64..=200).prop_map(|s| Err(s * 10))
    ];
    (
        window,
        1u32..=10,
        1u64..=100,
        proptest::option::of(1u64..=100),
        1u64..=300,
        1u32..=3,
        1u64..=4,
        (1u32..=4, any::<bool>()),
    )
        .prop_map(
            |(
                window,
                min,
                failure_pct,
                slow_pct,
                wait_ms,
                multiplier,
                max_factor,
                (half_open, under_thresholds),
            )| {
                let minimum_calls = match window {
                    Ok(size) => min.min(size),
                    Err(_) => min,
                };
                Params {
                    window,
                    minimum_calls,
                    failure_pct,
                    slow_pct,
                    wait_ms,
                    multiplier,
                    max_wait_ms: wait_ms * max_factor,
                    half_open_calls: half_open,
                    under_thresholds,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    /// Acquire and record at once.
    Call(Outcome),
    /// Acquire and hold the permit.
    Begin,
    /// Record the held permit at this index (modulo the number held).
    End(usize, Outcome),
    /// Drop the held permit at this index without an outcome.
    Abandon(usize),
    Advance(u64),
    ForceOpen,
    Disable,
    Reset,
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Failure),
        Just(Outcome::Slow)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => outcome().prop_map(Op::Call),
        3 => Just(Op::Begin),
        3 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::End(i, o)),
        1 => any::<usize>().prop_map(Op::Abandon),
        4 => (1u64..=400).prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
        1 => Just(Op::Reset),
    ]
}

/// The rules of the breaker's docs, written plainly.
struct Model {
    params: Params,
    origin: Instant,
    state: State,
    generation: u64,
    /// (finished at, outcome), newest last.
    window: VecDeque<(Instant, Outcome)>,
    trips: u32,
    open_until: Instant,
    trials_left: u32,
    trials: Vec<Outcome>,
}

#[derive(Debug, Clone, Copy)]
struct ModelPermit {
    generation: u64,
    trial: bool,
}

impl Model {
    fn new(params: Params, origin: Instant) -> Self {
        Self {
            params,
            origin,
            state: State::Closed,
            generation: 0,
            window: VecDeque::new(),
            trips: 0,
            open_until: origin,
            trials_left: 0,
            trials: Vec::new(),
        }
    }

    fn enter(&mut self, to: State, now: Instant) {
        self.state = to;
        self.generation += 1;
        match to {
            State::Open => {
                self.trips += 1;
                let wait =
                    self.params.wait_ms * u64::from(self.params.multiplier).pow(self.trips - 1);
                self.open_until = now + Duration::from_millis(wait.min(self.params.max_wait_ms));
            }
            State::HalfOpen => {
                self.trials_left = self.params.half_open_calls;
                self.trials.clear();
            }
            State::Closed => {
                self.window.clear();
                self.trips = 0;
            }
            State::ForcedOpen | State::Disabled => self.window.clear(),
        }
    }

    fn acquire(&mut self, now: Instant) -> Result<ModelPermit, State> {
        if self.state == State::Open && now >= self.open_until {
            self.enter(State::HalfOpen, now);
        }
        let generation = self.generation;
        match self.state {
            State::Closed | State::Disabled => Ok(ModelPermit {
                generation,
                trial: false,
            }),
            State::HalfOpen if self.trials_left > 0 => {
                self.trials_left -= 1;
                Ok(ModelPermit {
                    generation,
                    trial: true,
                })
            }
            state => Err(state),
        }
    }

    /// The calls in the window at `now`: the last `size`, or those whose ten-bucket period
    /// is still live.
    fn live(&self, now: Instant) -> Vec<Outcome> {
        match self.params.window {
            Ok(size) => self
                .window
                .iter()
                .rev()
                .take(size as usize)
                .map(|(_, o)| *o)
                .collect(),
            Err(span_ms) => {
                let width = Duration::from_millis(span_ms).as_nanos() / 10;
                let period = |t: Instant| (t - self.origin).as_nanos() / width;
                self.window
                    .iter()
                    .filter(|(t, _)| period(*t) + 10 > period(now))
                    .map(|(_, o)| *o)
                    .collect()
            }
        }
    }

    /// Whether the failure or slow share of `calls` reaches its threshold.
    fn over_thresholds(&self, calls: &[Outcome]) -> bool {
        let total = calls.len() as u64;
        let count = |o| calls.iter().filter(|x| **x == o).count() as u64;
        count(Outcome::Failure) * 100 >= self.params.failure_pct * total
            || self
                .params
                .slow_pct
                .is_some_and(|pct| count(Outcome::Slow) * 100 >= pct * total)
    }

    fn record(&mut self, permit: ModelPermit, outcome: Outcome, now: Instant) {
        if permit.generation != self.generation {
            return;
        }
        match self.state {
            State::Closed => {
                self.window.push_back((now, outcome));
                let live = self.live(now);
                if live.len() as u64 >= u64::from(self.params.minimum_calls)
                    && self.over_thresholds(&live)
                {
                    self.enter(State::Open, now);
                }
            }
            State::HalfOpen => {
                self.trials.push(outcome);
                let done = self.trials.len() as u32 == self.params.half_open_calls;
                let failed = if self.params.under_thresholds {
                    done && self.over_thresholds(&self.trials)
                } else {
                    outcome != Outcome::Success
                };
                if failed {
                    self.enter(State::Open, now);
                } else if done {
                    self.enter(State::Closed, now);
                }
            }
            _ => {}
        }
    }

    fn abandon(&mut self, permit: ModelPermit) {
        if permit.trial && permit.generation == self.generation && self.state == State::HalfOpen {
            self.trials_left += 1;
        }
    }

    fn set(&mut self, to: State, now: Instant) {
        if to == State::Closed && self.state == State::Closed {
            self.window.clear();
            self.trips = 0;
        } else if self.state != to {
            self.enter(to, now);
        }
    }
}

/// Asks both for a permit; they must agree on admission and on the rejecting state.
fn acquire(
    circuit: &Arc<Circuit>,
    model: &mut Model,
    now: Instant,
    step: usize,
) -> Result<Option<(Permit, ModelPermit)>, TestCaseError> {
    match (circuit.try_acquire(now), model.acquire(now)) {
        (Ok(permit), Ok(model_permit)) => Ok(Some((permit, model_permit))),
        (Err(rejected), Err(state)) => {
            prop_assert_eq!(rejected.state(), state, "step {}: rejecting state", step);
            Ok(None)
        }
        (real, expected) => Err(TestCaseError::fail(format!(
            "step {step}: breaker admitted: {}, model admitted: {}",
            real.is_ok(),
            expected.is_ok()
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_breaker_agrees_with_the_model(params in params(), ops in proptest::collection::vec(op(), 1..200)) {
        let origin = Instant::now();
        let circuit = Arc::new(Circuit::new(&params.config(), Arc::new(()), origin));
        let mut model = Model::new(params, origin);
        let mut now = origin;
        let mut held: Vec<(Permit, ModelPermit)> = Vec::new();

        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Call(outcome) => {
                    if let Some((permit, model_permit)) = acquire(&circuit, &mut model, now, step)? {
                        permit.record(outcome, now);
                        model.record(model_permit, outcome, now);
                    }
                }
                Op::Begin => {
                    if let Some(both) = acquire(&circuit, &mut model, now, step)? {
                        held.push(both);
                    }
                }
                Op::End(index, outcome) if !held.is_empty() => {
                    let (permit, model_permit) = held.swap_remove(index % held.len());
                    permit.record(outcome, now);
                    model.record(model_permit, outcome, now);
                }
                Op::Abandon(index) if !held.is_empty() => {
                    let (permit, model_permit) = held.swap_remove(index % held.len());
                    drop(permit); // never started: no slow-call accounting, just released
                    model.abandon(model_permit);
                }
                Op::End(..) | Op::Abandon(_) => {}
                Op::Advance(ms) => now += Duration::from_millis(ms),
                Op::ForceOpen => {
                    circuit.force_open(now);
                    model.set(State::ForcedOpen, now);
                }
                Op::Disable => {
                    circuit.disable(now);
                    model.set(State::Disabled, now);
                }
                Op::Reset => {
                    circuit.reset(now);
                    model.set(State::Closed, now);
                }
            }
            prop_assert_eq!(circuit.state(), model.state, "step {}: state", step);
            if model.state == State::Closed {
                let live = model.live(now);
                prop_assert_eq!(circuit.stats(now).calls as usize, live.len(), "step {}: window", step);
            }
        }
    }
}
