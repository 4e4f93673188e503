//! [`Circuit`]: the breaker's state machine, shared by every clone of the service and by the
//! operator's [`BreakerHandle`](super::BreakerHandle).
//!
//! # Why this shape
//!
//! The request path in the closed state is one atomic load to admit the call and one short,
//! uncontended lock to record its outcome; the lock is never held across an `.await` and
//! guards nothing slower than a ring-buffer write. State and generation are packed in one
//! `AtomicU64` so that admission reads both consistently. The open state rejects with two
//! atomic loads and a clock read, without the lock, so a storm of callers against an open
//! breaker does not queue on it. Half-open admission takes the lock: it must count exactly
//! `half_open_calls` trials however many callers race, and it is rare.
//!
//! Every transition bumps the generation. A [`Permit`] remembers the generation it was taken
//! in, and its outcome is dropped if the breaker has moved on (as gobreaker does): a slow call
//! admitted while closed must not count against a later half-open trial.
//!
//! linkerd runs its breaker in a task fed by a channel and gates requests on a `watch`; that
//! costs a channel send per response and lets the task fall behind the traffic, which this
//! design does not need to afford.
//!
//! Time is passed in as `now` ([`tokio::time::Instant`], so `tokio::time::pause` drives it),
//! which keeps the state machine deterministic under test; inside, it is nanoseconds since the
//! breaker's origin. The service reads `Instant::now()` only when it needs it: at the start and
//! end of a call when slow calls are counted, for the bucket of a time window, and for the end
//! of the open wait when the breaker trips.

use std::{
    fmt,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::Verdict;

use super::{
    BreakerConfig, BreakerObserver, BreakerOpen, CallOutcome, HalfOpenRule, Outcome, SlidingWindow,
    State,
    window::{Window, WindowStats},
};

/// The breaker's shared state machine. Built by the layer; reachable through
/// [`BreakerHandle`](super::BreakerHandle) and usable directly, without tower.
pub struct Circuit {
    /// `generation << 8 | state`, the only thing the closed-state fast path reads.
    packed: AtomicU64,
    /// While open: nanoseconds since `origin` at which the breaker may go half-open.
    open_until: AtomicU64,
    origin: Instant,
    settings: Settings,
    inner: Mutex<Inner>,
    observer: Arc<dyn BreakerObserver>,
}

/// The config, precomputed for the request path.
#[derive(Debug)]
struct Settings {
    minimum_calls: u32,
    /// Thresholds in parts per million, so that trips are decided in integers: 3 failures in 10
    /// calls trip a 0.3 threshold, which `3.0 / 10.0 >= 0.3` would not.
    failure_ppm: u64,
    slow_ppm: u64,
    slow_call_duration: Option<Duration>,
    wait: Duration,
    wait_multiplier: f64,
    max_wait: Duration,
    wait_jitter: f64,
    half_open_calls: u32,
    half_open_rule: HalfOpenRule,
    /// Whether recording a call needs the time (to choose its bucket).
    time_window: bool,
}

struct Inner {
    state: State,
    generation: u64,
    window: Window,
    /// Trips since the breaker last closed; the open wait grows with it.
    trips: u32,
    trials_left: u32,
    /// Outcomes of the finished trials of this half-open period.
    trials: WindowStats,
}

/// Leave to make one call, taken from [`Circuit::try_acquire`].
///
/// Report the call with [`record`](Self::record). Dropping it unrecorded gives a half-open
/// trial slot back, unless the call had already run longer than the slow-call duration (see
/// [`start`](Self::start)): a caller that gives up on a hanging call still tells the breaker
/// that the dependency hangs.
#[must_use = "a permit must be recorded or dropped"]
pub struct Permit {
    circuit: Arc<Circuit>,
    generation: u64,
    trial: bool,
    started: Started,
    done: bool,
}

/// When a permit's call started, if it is timed.
#[derive(Debug, Clone, Copy)]
enum Started {
    Untimed,
    /// In nanoseconds since the origin: given by the caller ([`Permit::start`]) or read by
    /// the service.
    At(u64),
}

fn pack(state: State, generation: u64) -> u64 {
    generation << 8 | state as u64
}

fn unpack(packed: u64) -> (State, u64) {
    (State::from_u8((packed & 0xff) as u8), packed >> 8)
}

fn ppm(rate: f64) -> u64 {
    (rate * 1_000_000.0).round() as u64
}

// === impl Circuit ===

impl Circuit {
    /// A closed breaker. `config` must be valid ([`BreakerConfig::validate`]).
    pub fn new(config: &BreakerConfig, observer: Arc<dyn BreakerObserver>, now: Instant) -> Self {
        let settings = Settings {
            minimum_calls: config.minimum_calls,
            failure_ppm: ppm(config.failure_rate_threshold),
            slow_ppm: ppm(config.slow_call_rate_threshold),
            slow_call_duration: config.slow_call_duration,
            wait: config.wait_duration,
            wait_multiplier: config.wait_multiplier,
            max_wait: config.max_wait_duration,
            wait_jitter: config.wait_jitter,
            half_open_calls: config.half_open_calls,
            half_open_rule: config.half_open_rule,
            time_window: matches!(config.window, SlidingWindow::Time(_)),
        };
        Self {
            packed: AtomicU64::new(pack(State::Closed, 0)),
            open_until: AtomicU64::new(0),
            origin: now,
            settings,
            inner: Mutex::new(Inner {
                state: State::Closed,
                generation: 0,
                window: Window::new(config.window),
                trips: 0,
                trials_left: 0,
                trials: WindowStats::default(),
            }),
            observer,
        }
    }

    /// The current state. An open breaker whose wait has passed still reads `open` until the
    /// next call asks to pass and moves it to `half_open`, as resilience4j's does. (gobreaker's
    /// `State()` makes that move itself when the wait has passed; here reading the state never
    /// changes it, so a dashboard or a log line cannot start a half-open period.)
    pub fn state(&self) -> State {
        unpack(self.packed.load(Ordering::Acquire)).0
    }

    /// Totals of the window at `now`. While open or half-open, this is the window that
    /// tripped the breaker; it starts empty when the breaker closes again.
    pub fn stats(&self, now: Instant) -> WindowStats {
        self.lock().window.stats(self.nanos(now))
    }

    /// Asks to make a call at `now`.
    pub fn try_acquire(self: &Arc<Self>, now: Instant) -> Result<Permit, BreakerOpen> {
        self.try_acquire_with(|| now)
    }

    /// [`try_acquire`](Self::try_acquire), reading the clock only if the state needs it.
    pub(crate) fn try_acquire_with(
        self: &Arc<Self>,
        now: impl FnOnce() -> Instant,
    ) -> Result<Permit, BreakerOpen> {
        let (state, generation) = unpack(self.packed.load(Ordering::Acquire));
        match state {
            State::Closed | State::Disabled => Ok(self.permit(generation, false)),
            State::ForcedOpen => Err(self.reject(State::ForcedOpen)),
            State::Open => {
                let now = self.nanos(now());
                if now < self.open_until.load(Ordering::Acquire) {
                    Err(self.reject(State::Open))
                } else {
                    self.acquire_locked(now)
                }
            }
            State::HalfOpen => self.acquire_locked(self.nanos(now())),
        }
    }

    fn acquire_locked(self: &Arc<Self>, now: u64) -> Result<Permit, BreakerOpen> {
        let mut inner = self.lock();
        if inner.state == State::Open && now >= self.open_until.load(Ordering::Acquire) {
            self.transition(&mut inner, State::HalfOpen, now);
        }
        let admitted = match inner.state {
            State::Closed | State::Disabled => Some(false),
            State::HalfOpen if inner.trials_left > 0 => {
                inner.trials_left -= 1;
                Some(true)
            }
            State::HalfOpen | State::Open | State::ForcedOpen => None,
        };
        let (state, generation) = (inner.state, inner.generation);
        drop(inner);
        match admitted {
            Some(trial) => Ok(self.permit(generation, trial)),
            None => Err(self.reject(state)),
        }
    }

    fn permit(self: &Arc<Self>, generation: u64, trial: bool) -> Permit {
        Permit {
            circuit: Arc::clone(self),
            generation,
            trial,
            started: Started::Untimed,
            done: false,
        }
    }

    fn reject(&self, state: State) -> BreakerOpen {
        self.observer.on_call(CallOutcome::Rejected);
        BreakerOpen::new(state)
    }

    /// Whether a call that took `elapsed` and succeeded counts as slow.
    pub fn is_slow(&self, elapsed: Duration) -> bool {
        self.settings
            .slow_call_duration
            .is_some_and(|slow| elapsed >= slow)
    }

    /// Forces the breaker open: every call is rejected until [`reset`](Self::reset).
    pub fn force_open(&self, now: Instant) {
        self.override_to(State::ForcedOpen, now);
    }

    /// Disables the breaker: every call passes and none is counted until
    /// [`reset`](Self::reset).
    pub fn disable(&self, now: Instant) {
        self.override_to(State::Disabled, now);
    }

    /// Closes the breaker with an empty window and forgets past trips.
    pub fn reset(&self, now: Instant) {
        let mut inner = self.lock();
        if inner.state == State::Closed {
            inner.window.clear();
            inner.trips = 0;
        } else {
            self.transition(&mut inner, State::Closed, self.nanos(now));
        }
    }

    fn override_to(&self, to: State, now: Instant) {
        let mut inner = self.lock();
        if inner.state != to {
            self.transition(&mut inner, to, self.nanos(now));
        }
    }

    /// Records `outcome`; `now` is read only if the outcome must be placed in time (a time
    /// window, or a trip).
    fn record(&self, permit: &Permit, outcome: Outcome, now: impl Fn() -> u64) {
        self.observer.on_call(outcome.into());
        let mut inner = self.lock();
        if inner.generation != permit.generation {
            return; // admitted in an earlier state: its outcome belongs to no current decision
        }
        match inner.state {
            State::Closed => {
                let at = self.settings.time_window.then(&now);
                let stats = inner.window.record(outcome, at.unwrap_or_default());
                self.observer.on_window(stats);
                if self.should_trip(&stats) {
                    self.transition(&mut inner, State::Open, at.unwrap_or_else(now));
                }
            }
            State::HalfOpen => {
                inner.trials.add(outcome, 1);
                let trials = inner.trials;
                let settings = &self.settings;
                let next = match settings.half_open_rule {
                    HalfOpenRule::AllSucceed if outcome != Outcome::Success => Some(State::Open),
                    _ if trials.calls < settings.half_open_calls => None,
                    HalfOpenRule::UnderThresholds if self.over_thresholds(&trials) => {
                        Some(State::Open)
                    }
                    _ => Some(State::Closed),
                };
                if let Some(next) = next {
                    self.transition(&mut inner, next, now());
                }
            }
            State::Open | State::ForcedOpen | State::Disabled => {}
        }
    }

    fn release(&self, permit: &Permit) {
        if !permit.trial {
            return;
        }
        let mut inner = self.lock();
        if inner.generation == permit.generation && inner.state == State::HalfOpen {
            inner.trials_left += 1;
        }
    }

    fn should_trip(&self, stats: &WindowStats) -> bool {
        stats.calls >= self.settings.minimum_calls && self.over_thresholds(stats)
    }

    /// Whether the failure or slow-call rate of `stats` reaches its threshold.
    fn over_thresholds(&self, stats: &WindowStats) -> bool {
        let settings = &self.settings;
        let over = |count: u32, threshold_ppm: u64| {
            u64::from(count) * 1_000_000 >= threshold_ppm * u64::from(stats.calls)
        };
        over(stats.failures, settings.failure_ppm)
            || (settings.slow_call_duration.is_some() && over(stats.slow, settings.slow_ppm))
    }

    /// Moves to `to` at `now` (nanoseconds since the origin); the caller holds the lock (so
    /// observers see transitions in order).
    fn transition(&self, inner: &mut Inner, to: State, now: u64) {
        let from = inner.state;
        inner.state = to;
        inner.generation += 1;
        match to {
            State::Open => {
                inner.trips += 1;
                let wait = self.open_wait(inner.trips);
                let until = now.saturating_add(wait.as_nanos() as u64);
                // Stored before the state below, so a reader that sees `open` sees its end.
                self.open_until.store(until, Ordering::Release);
            }
            State::HalfOpen => {
                inner.trials_left = self.settings.half_open_calls;
                inner.trials = WindowStats::default();
            }
            State::Closed => {
                inner.window.clear();
                inner.trips = 0;
            }
            State::ForcedOpen | State::Disabled => inner.window.clear(),
        }
        self.packed
            .store(pack(to, inner.generation), Ordering::Release);
        self.observer.on_transition(from, to);
    }

    /// `wait × multiplier^(trips − 1)`, capped, then jittered down by up to `wait_jitter` of
    /// itself; computed in whole nanoseconds so that a wait of whole milliseconds doubles
    /// exactly.
    fn open_wait(&self, trips: u32) -> Duration {
        let settings = &self.settings;
        let factor = settings
            .wait_multiplier
            .powi(trips.saturating_sub(1).min(64) as i32);
        let nanos = (settings.wait.as_nanos() as f64 * factor).round();
        let ceiling = if nanos >= settings.max_wait.as_nanos() as f64 {
            settings.max_wait
        } else {
            Duration::from_nanos(nanos as u64)
        };
        if settings.wait_jitter == 0.0 {
            return ceiling;
        }
        let cut = settings.wait_jitter * rand::random::<f64>();
        ceiling.mul_f64(1.0 - cut)
    }

    fn nanos(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// `Instant::now()`, in nanoseconds since the origin.
    fn precise_now(&self) -> u64 {
        self.nanos(Instant::now())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock can only come from an observer; the state it guards
        // is updated before observers run, so it is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for Circuit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Circuit")
            .field("state", &self.state())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

// === impl Permit ===

impl Permit {
    /// Notes that the call starts at `now`, for slow-call detection on cancellation.
    pub fn start(&mut self, now: Instant) {
        self.started = Started::At(self.circuit.nanos(now));
    }

    /// Notes that the call starts now, if slow calls are counted.
    pub(crate) fn start_timing(&mut self) {
        if self.circuit.settings.slow_call_duration.is_some() {
            self.started = Started::At(self.circuit.precise_now());
        }
    }

    /// Records how the call ended, at `now`.
    pub fn record(mut self, outcome: Outcome, now: Instant) {
        self.done = true;
        let now = self.circuit.nanos(now);
        self.circuit.record(&self, outcome, || now);
    }

    /// Whether this permit is one of the half-open trial calls.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// Gives the permit back without an outcome (the call says nothing about the
    /// dependency): a half-open trial slot becomes free again.
    pub fn release(mut self) {
        self.done = true;
        self.circuit.release(&self);
    }

    /// Records the call the way the service does, reading the clocks only as far as needed.
    pub(crate) fn finish(mut self, verdict: Verdict) {
        let outcome = match verdict {
            Verdict::Ignore => return self.release(),
            Verdict::Failure => Outcome::Failure,
            Verdict::Success if self.took_slow() => Outcome::Slow,
            Verdict::Success => Outcome::Success,
        };
        self.done = true;
        let circuit = &self.circuit;
        circuit.record(&self, outcome, || circuit.precise_now());
    }

    /// Whether the call, if timed, has run for at least the slow-call duration by now.
    fn took_slow(&self) -> bool {
        let circuit = &self.circuit;
        match self.started {
            Started::Untimed => false,
            Started::At(started) => circuit.settings.slow_call_duration.is_some_and(|slow| {
                circuit.precise_now().saturating_sub(started) >= slow.as_nanos() as u64
            }),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let circuit = &self.circuit;
        if self.took_slow() {
            circuit.record(self, Outcome::Slow, || circuit.precise_now());
        } else {
            circuit.release(self);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("generation", &self.generation)
            .field("trial", &self.trial)
            .finish_non_exhaustive()
    }
}
