//! [`BulkheadConfig`].

use std::time::Duration;

use crate::error::{ConfigError, ensure};

/// Configuration of a [`Bulkhead`](super::Bulkhead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Calls allowed in flight at once. Default: 64.
    pub max_concurrent: usize,
    /// How long a call may wait for a free slot before it is rejected; zero rejects at once.
    /// Default: zero (a caller behind a bulkhead usually has a fallback, and waiting only
    /// spends its deadline).
    pub max_wait: Duration,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 64,
            max_wait: Duration::ZERO,
        }
    }
}

impl BulkheadConfig {
    /// Sets [`max_concurrent`](Self::max_concurrent).
    pub fn with_max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// Sets [`max_wait`](Self::max_wait).
    pub fn with_max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = wait;
        self
    }

    /// Checks every field; the layer calls this in `try_new`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            self.max_concurrent > 0 && self.max_concurrent <= tokio::sync::Semaphore::MAX_PERMITS,
            "max_concurrent",
            "must be at least 1",
        )
    }
}
