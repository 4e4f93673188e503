//! [`RetryConfig`].

use std::time::Duration;

use crate::error::{ConfigError, ensure};

/// Configuration of [`Retry`](super::Retry).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts in all, the first included; 1 disables retries. Default: 3.
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry. Default: 25 ms.
    pub initial_backoff: Duration,
    /// The ceiling grows by this factor per retry, ≥ 1. Default: 2.
    pub multiplier: f64,
    /// The ceiling never exceeds this. Default: 1 s.
    pub max_backoff: Duration,
    /// A retry is only started if at least this much time, or as long as the failed attempt
    /// took if that is longer, would remain before the deadline after the backoff: an attempt
    /// that cannot finish is not worth its load, nor the caller's wait. Default: 20 ms.
    pub min_attempt_time: Duration,
    /// Retries allowed per request, over the budget's window, on top of the floor: 0.2 allows
    /// one retry per five requests. Default: 0.2.
    pub budget_ratio: f32,
    /// Retries allowed per second regardless of traffic, so a quiet client can still retry.
    /// Default: 10.
    pub budget_min_per_sec: u32,
    /// How long a request counts toward the budget, 1 to 60 s. Default: 10 s.
    pub budget_ttl: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(25),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(1),
            min_attempt_time: Duration::from_millis(20),
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
            budget_ttl: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets [`initial_backoff`](Self::initial_backoff), [`multiplier`](Self::multiplier) and
    /// [`max_backoff`](Self::max_backoff).
    pub fn with_backoff(mut self, initial: Duration, multiplier: f64, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.multiplier = multiplier;
        self.max_backoff = max;
        self
    }

    /// Sets [`min_attempt_time`](Self::min_attempt_time).
    pub fn with_min_attempt_time(mut self, time: Duration) -> Self {
        self.min_attempt_time = time;
        self
    }

    /// Sets the budget: [`budget_ratio`](Self::budget_ratio),
    /// [`budget_min_per_sec`](Self::budget_min_per_sec), [`budget_ttl`](Self::budget_ttl).
    pub fn with_budget(mut self, ratio: f32, min_per_sec: u32, ttl: Duration) -> Self {
        self.budget_ratio = ratio;
        self.budget_min_per_sec = min_per_sec;
        self.budget_ttl = ttl;
        self
    }

    /// The backoff ceiling before retry number `retry` (1 for the first retry):
    /// `min(max_backoff, initial_backoff × multiplier^(retry − 1))`. The actual sleep is drawn
    /// uniformly from zero to it ("full jitter").
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(1_000) as i32;
        let ceiling = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        if ceiling >= self.max_backoff.as_secs_f64() {
            self.max_backoff
        } else {
            Duration::from_secs_f64(ceiling)
        }
    }

    /// Checks every field; the layer calls this in `try_new` (tower's `TpsBudget` would
    /// panic on a budget outside its bounds).
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.max_attempts >= 1, "max_attempts", "must be at least 1")?;
        ensure(
            !self.initial_backoff.is_zero(),
            "initial_backoff",
            "must be positive",
        )?;
        ensure(
            self.multiplier >= 1.0 && self.multiplier.is_finite(),
            "multiplier",
            "must be a finite number ≥ 1",
        )?;
        ensure(
            self.max_backoff >= self.initial_backoff,
            "max_backoff",
            "must be at least initial_backoff",
        )?;
        ensure(
            (0.0..=1000.0).contains(&self.budget_ratio),
            "budget_ratio",
            "must be in [0, 1000]",
        )?;
        ensure(
            self.budget_min_per_sec < i32::MAX as u32,
            "budget_min_per_sec",
            "must be below 2^31",
        )?;
        ensure(
            (Duration::from_secs(1)..=Duration::from_secs(60)).contains(&self.budget_ttl),
            "budget_ttl",
            "must be between 1 and 60 s",
        )
    }
}
