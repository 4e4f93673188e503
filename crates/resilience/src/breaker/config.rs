//! [`BreakerConfig`]: every knob of the circuit breaker, with its default.

use std::time::Duration;

use crate::error::{ConfigError, ensure};

/// The window of recent calls whose failure and slow-call rates decide a trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` finished calls.
    Count(u32),
    /// The calls that finished within the last duration, kept in ten buckets of a tenth of
    /// it each: a call leaves the window between 0.9× and 1× the duration after it finished.
    Time(Duration),
}

/// How a half-open breaker judges its trial calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfOpenRule {
    /// Every trial must succeed: the first failed or slow one reopens at once (gobreaker's
    /// `MaxRequests` consecutive successes). A dependency that fails a steady share of calls
    /// passes only `(1 − share)^half_open_calls` of the time: a quarter at 25 % failures and
    /// five trials, though the closed breaker tolerates that share.
    AllSucceed,
    /// Once every trial has finished, close unless their failure or slow-call rate reaches
    /// the thresholds that trip a closed breaker (resilience4j's rule): the breaker judges a
    /// dependency the same way in both states, so what it tolerates closed it lets back in.
    UnderThresholds,
}

/// Configuration of a [`CircuitBreaker`](super::CircuitBreaker).
///
/// The defaults follow resilience4j's where they are sensible for an RPC client, and differ
/// where a smaller service needs them to (window and minimum calls).
///
/// # gobreaker, side by side
///
/// [`BreakerConfig::gobreaker_seed`] expresses the setting "trip when ≥ 5 requests and ≥ 50 %
/// failures in a 60 s interval, 5 trial requests in half-open":
///
/// | gobreaker `Settings` | meaning there | here |
/// |---|---|---|
/// | `ReadyToTrip: counts.Requests >= 5 && ratio >= 0.5` | evaluated on each failure in closed | `minimum_calls = 5`, `failure_rate_threshold = 0.5` (evaluated on each recorded call) |
/// | `Interval: 60s` | counts reset every 60 s in closed (a tumbling window) | `window = Time(60 s)` (sliding, ten 6 s buckets) |
/// | `Timeout: 60s` (its default) | open lasts 60 s, then half-open | `wait_duration = 60 s`, `wait_multiplier = 1`, `wait_jitter = 0` |
/// | `MaxRequests: 5` | half-open admits 5; 5 consecutive successes close it, any failure reopens | `half_open_calls = 5`, `half_open_rule = AllSucceed` (same rule) |
/// | no slow-call notion | | `slow_call_duration = None` |
///
/// Two honest differences: gobreaker counts a request when it starts, this breaker when it
/// finishes; and a sliding window does not forget everything at an interval boundary, so right
/// after a boundary this breaker still sees the last ~54 s where gobreaker sees nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// The window of calls the rates are computed over. Default: `Count(100)`.
    pub window: SlidingWindow,
    /// No trip is decided before the window holds this many calls. Default: 20.
    pub minimum_calls: u32,
    /// Trip when failures / calls ≥ this, in (0, 1]. Default: 0.5.
    pub failure_rate_threshold: f64,
    /// A successful call that took at least this long counts as slow; `None` disables
    /// slow-call detection (and the timing of calls it needs). Calls are timed on a clock that
    /// a small task refreshes every hundredth of this duration (at least every millisecond),
    /// so the verdict is exact to within that tick; a stall of the caller's own runtime is not
    /// counted. Default: 2 s.
    pub slow_call_duration: Option<Duration>,
    /// Trip when slow calls / calls ≥ this, in (0, 1]. Default: 1.0 (every call slow).
    pub slow_call_rate_threshold: f64,
    /// How long the breaker stays open after a trip. Default: 30 s.
    pub wait_duration: Duration,
    /// Each consecutive trip (re-opening from half-open without closing in between) multiplies
    /// the wait by this, ≥ 1. Default: 1.0 (constant wait).
    pub wait_multiplier: f64,
    /// The wait never grows beyond this. Default: 5 min.
    pub max_wait_duration: Duration,
    /// Each open wait is drawn uniformly from `[(1 − jitter) × wait, wait]`, in [0, 1): a
    /// breaker whose wait matches the period of a flapping dependency would otherwise send
    /// every trial into an outage and stay open for good. `0` waits exactly. Default: 0.5.
    pub wait_jitter: f64,
    /// Half-open admits exactly this many trial calls. Default: 10.
    pub half_open_calls: u32,
    /// How the trials decide between closed and open. Default:
    /// [`HalfOpenRule::UnderThresholds`] (resilience4j's).
    pub half_open_rule: HalfOpenRule,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: SlidingWindow::Count(100),
            minimum_calls: 20,
            failure_rate_threshold: 0.5,
            slow_call_duration: Some(Duration::from_secs(2)),
            slow_call_rate_threshold: 1.0,
            wait_duration: Duration::from_secs(30),
            wait_multiplier: 1.0,
            max_wait_duration: Duration::from_secs(300),
            wait_jitter: 0.5,
            half_open_calls: 10,
            half_open_rule: HalfOpenRule::UnderThresholds,
        }
    }
}

impl BreakerConfig {
    /// The seeds' gobreaker setting (see the table on [`BreakerConfig`]).
    pub fn gobreaker_seed() -> Self {
        Self {
            window: SlidingWindow::Time(Duration::from_secs(60)),
            minimum_calls: 5,
            failure_rate_threshold: 0.5,
            slow_call_duration: None,
            slow_call_rate_threshold: 1.0,
            wait_duration: Duration::from_secs(60),
            wait_multiplier: 1.0,
            max_wait_duration: Duration::from_secs(60),
            wait_jitter: 0.0,
            half_open_calls: 5,
            half_open_rule: HalfOpenRule::AllSucceed,
        }
    }

    /// Sets [`window`](Self::window).
    pub fn with_window(mut self, window: SlidingWindow) -> Self {
        self.window = window;
        self
    }

    /// Sets [`minimum_calls`](Self::minimum_calls).
    pub fn with_minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// Sets [`failure_rate_threshold`](Self::failure_rate_threshold).
    pub fn with_failure_rate_threshold(mut self, rate: f64) -> Self {
        self.failure_rate_threshold = rate;
        self
    }

    /// Sets [`slow_call_duration`](Self::slow_call_duration).
    pub fn with_slow_call_duration(mut self, duration: Option<Duration>) -> Self {
        self.slow_call_duration = duration;
        self
    }

    /// Sets [`slow_call_rate_threshold`](Self::slow_call_rate_threshold).
    pub fn with_slow_call_rate_threshold(mut self, rate: f64) -> Self {
        self.slow_call_rate_threshold = rate;
        self
    }

    /// Sets [`wait_duration`](Self::wait_duration).
    pub fn with_wait_duration(mut self, wait: Duration) -> Self {
        self.wait_duration = wait;
        self
    }

    /// Sets [`wait_multiplier`](Self::wait_multiplier) and
    /// [`max_wait_duration`](Self::max_wait_duration).
    pub fn with_growing_wait(mut self, multiplier: f64, max: Duration) -> Self {
        self.wait_multiplier = multiplier;
        self.max_wait_duration = max;
        self
    }

    /// Sets [`wait_jitter`](Self::wait_jitter).
    pub fn with_wait_jitter(mut self, jitter: f64) -> Self {
        self.wait_jitter = jitter;
        self
    }

    /// Sets [`half_open_calls`](Self::half_open_calls).
    pub fn with_half_open_calls(mut self, calls: u32) -> Self {
        self.half_open_calls = calls;
        self
    }

    /// Sets [`half_open_rule`](Self::half_open_rule).
    pub fn with_half_open_rule(mut self, rule: HalfOpenRule) -> Self {
        self.half_open_rule = rule;
        self
    }

    /// Checks every field; the layer calls this in `try_new`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.window {
            SlidingWindow::Count(size) => {
                ensure(size > 0, "window", "a count window holds at least one call")?;
                ensure(
                    self.minimum_calls <= size,
                    "minimum_calls",
                    "must not exceed the count window, or the breaker could never trip",
                )?;
            }
            SlidingWindow::Time(span) => ensure(
                span >= Duration::from_millis(10),
                "window",
                "a time window spans at least 10 ms",
            )?,
        }
        ensure(
            self.minimum_calls > 0,
            "minimum_calls",
            "must be at least 1",
        )?;
        ensure(
            self.failure_rate_threshold > 0.0 && self.failure_rate_threshold <= 1.0,
            "failure_rate_threshold",
            "must be in (0, 1]",
        )?;
        ensure(
            self.slow_call_rate_threshold > 0.0 && self.slow_call_rate_threshold <= 1.0,
            "slow_call_rate_threshold",
            "must be in (0, 1]",
        )?;
        ensure(
            self.slow_call_duration.is_none_or(|slow| !slow.is_zero()),
            "slow_call_duration",
            "must be positive (use None to disable)",
        )?;
        ensure(
            !self.wait_duration.is_zero(),
            "wait_duration",
            "must be positive",
        )?;
        ensure(
            self.wait_multiplier >= 1.0 && self.wait_multiplier.is_finite(),
            "wait_multiplier",
            "must be a finite number ≥ 1",
        )?;
        ensure(
            self.max_wait_duration >= self.wait_duration,
            "max_wait_duration",
            "must be at least wait_duration",
        )?;
        ensure(
            (0.0..1.0).contains(&self.wait_jitter),
            "wait_jitter",
            "must be in [0, 1)",
        )?;
        ensure(
            self.half_open_calls > 0,
            "half_open_calls",
            "must be at least 1",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_gobreaker_seed_are_valid() {
        assert_eq!(BreakerConfig::default().validate(), Ok(()));
        assert_eq!(BreakerConfig::gobreaker_seed().validate(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_field() {
        let field = |config: BreakerConfig| config.validate().map_err(|e| e.field());
        let base = BreakerConfig::default;
        assert_eq!(
            field(base().with_failure_rate_threshold(0.0)),
            Err("failure_rate_threshold")
        );
        assert_eq!(
            field(base().with_failure_rate_threshold(1.5)),
            Err("failure_rate_threshold")
        );
        assert_eq!(field(base().with_minimum_calls(101)), Err("minimum_calls"));
        assert_eq!(
            field(base().with_half_open_calls(0)),
            Err("half_open_calls")
        );
        assert_eq!(
            field(base().with_growing_wait(2.0, Duration::from_secs(1))),
            Err("max_wait_duration")
        );
        assert_eq!(
            field(base().with_wait_duration(Duration::ZERO)),
            Err("wait_duration")
        );
        assert_eq!(field(base().with_wait_jitter(1.0)), Err("wait_jitter"));
        assert_eq!(field(base().with_wait_jitter(-0.1)), Err("wait_jitter"));
    }
}
