//! [`LimitConfig`].

use std::time::Duration;

use crate::error::{ConfigError, ensure};

/// Configuration of an [`AdaptiveLimit`](super::AdaptiveLimit) (AIMD, after Netflix's
/// concurrency-limits `AIMDLimit`).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitConfig {
    /// The limit at startup. Default: 20.
    pub initial_limit: usize,
    /// The limit never falls below this. Default: 1.
    pub min_limit: usize,
    /// The limit never rises above this. Default: 1000.
    pub max_limit: usize,
    /// On a drop (a response slower than `latency_threshold`, or one that itself signals
    /// overload), the limit is multiplied by this, in [0.5, 1). Default: 0.9.
    pub backoff_ratio: f64,
    /// A response slower than this counts as a drop. Default: 1 s.
    pub latency_threshold: Duration,
    /// What a shed HTTP response tells the client in `Retry-After` (whole seconds, at least
    /// one) and a shed gRPC response in `grpc-retry-pushback-ms`. Default: 1 s.
    pub retry_after: Duration,
}

impl Default for LimitConfig {
    fn default() -> Self {
        Self {
            initial_limit: 20,
            min_limit: 1,
            max_limit: 1000,
            backoff_ratio: 0.9,
            latency_threshold: Duration::from_secs(1),
            retry_after: Duration::from_secs(1),
        }
    }
}

impl LimitConfig {
    /// Sets [`initial_limit`](Self::initial_limit).
    pub fn with_initial_limit(mut self, limit: usize) -> Self {
        self.initial_limit = limit;
        self
    }

    /// Sets [`min_limit`](Self::min_limit) and [`max_limit`](Self::max_limit).
    pub fn with_bounds(mut self, min: usize, max: usize) -> Self {
        self.min_limit = min;
        self.max_limit = max;
        self
    }

    /// Sets [`backoff_ratio`](Self::backoff_ratio).
    pub fn with_backoff_ratio(mut self, ratio: f64) -> Self {
        self.backoff_ratio = ratio;
        self
    }

    /// Sets [`latency_threshold`](Self::latency_threshold).
    pub fn with_latency_threshold(mut self, threshold: Duration) -> Self {
        self.latency_threshold = threshold;
        self
    }

    /// Sets [`retry_after`](Self::retry_after).
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Checks every field; the layer calls this in `try_new`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.min_limit >= 1, "min_limit", "must be at least 1")?;
        ensure(
            self.max_limit >= self.min_limit,
            "max_limit",
            "must be at least min_limit",
        )?;
        ensure(
            (self.min_limit..=self.max_limit).contains(&self.initial_limit),
            "initial_limit",
            "must be between min_limit and max_limit",
        )?;
        ensure(
            (0.5..1.0).contains(&self.backoff_ratio),
            "backoff_ratio",
            "must be in [0.5, 1)",
        )?;
        ensure(
            !self.latency_threshold.is_zero(),
            "latency_threshold",
            "must be positive",
        )
    }
}
