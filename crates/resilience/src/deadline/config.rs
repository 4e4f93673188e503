//! [`DeadlineConfig`].

use std::time::Duration;

use crate::error::{ConfigError, ensure};

/// Configuration of a [`DeadlineService`](super::DeadlineService).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineConfig {
    /// A caller's deadline further away than this is brought in to it, so one caller cannot
    /// hold resources for an hour. Default: 30 s.
    pub max_timeout: Duration,
    /// The budget of a request whose caller set none. Default: 5 s.
    pub default_timeout: Duration,
}

impl Default for DeadlineConfig {
    fn default() -> Self {
        Self {
            max_timeout: Duration::from_secs(30),
            default_timeout: Duration::from_secs(5),
        }
    }
}

impl DeadlineConfig {
    /// Sets [`max_timeout`](Self::max_timeout).
    pub fn with_max_timeout(mut self, max: Duration) -> Self {
        self.max_timeout = max;
        self
    }

    /// Sets [`default_timeout`](Self::default_timeout).
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Checks every field; the layer calls this in `try_new`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ensure(
            !self.max_timeout.is_zero(),
            "max_timeout",
            "must be positive",
        )?;
        ensure(
            !self.default_timeout.is_zero(),
            "default_timeout",
            "must be positive",
        )?;
        ensure(
            self.default_timeout <= self.max_timeout,
            "default_timeout",
            "must not exceed max_timeout",
        )
    }
}
