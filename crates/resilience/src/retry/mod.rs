//! Retries with exponential backoff and full jitter, bounded by attempts, by the request's
//! deadline and by a retry budget.
//!
//! # Why a budget and not only a maximum of attempts?
//!
//! With three attempts per request, a dependency that fails every call receives three times
//! its normal load exactly when it can least take it, and every client layer that retries
//! multiplies that again. A budget bounds retries to a fraction of recent traffic
//! ([`budget_ratio`](RetryConfig::budget_ratio), plus a small floor per second so a quiet
//! client can still retry): under a total outage the extra load is at most that fraction,
//! whatever the attempt count. The attempt count still bounds each single request.
//!
//! # When a retry happens
//!
//! After a failed attempt the classifier ([`ClassifyRetry`](crate::ClassifyRetry)) decides
//! whether it is worth retrying; [`GrpcClassifier`](crate::GrpcClassifier) retries only
//! `UNAVAILABLE` and transport errors, never a breaker or bulkhead rejection, and honours the
//! server's `grpc-retry-pushback-ms` (wait exactly that long; a negative value means "do not
//! retry"). Otherwise the wait is drawn uniformly between zero and
//! [`backoff_ceiling`](RetryConfig::backoff_ceiling) ("full jitter", which spreads retries of
//! many clients apart better than equal or decorrelated jitter). The retry then only happens
//! if attempts remain, if the wait plus [`min_attempt_time`](RetryConfig::min_attempt_time)
//! (or plus as long as the failed attempt took, if longer: a dependency that failed after
//! 200 ms will likely take 200 ms again) ends before the request's deadline ([`RequestDeadline`](crate::deadline::RequestDeadline)),
//! and if the budget has a token, in that order. Otherwise the last attempt's result is
//! returned; when it was the budget that refused, its error is marked with
//! [`RetryBudgetExhausted`].
//!
//! # What is reused
//!
//! tower's [`Retry`](tower::retry::Retry) service and response future (a named state machine:
//! call, wait, poll the service ready, call again) and tower's
//! [`TpsBudget`] (exactly the ratio + floor + time-to-live
//! budget above, on tokio's clock) do the mechanics. This module adds only the decisions, as a
//! tower [`Policy`](tower::retry::Policy): classification, jitter, pushback, the deadline check
//! and the observer.

mod config;
mod error;
mod layer;
mod policy;

use std::{fmt, sync::Arc, time::Duration};

use tower::retry::budget::TpsBudget;

pub use self::{
    config::RetryConfig,
    error::{MarkBudgetExhausted, RetryBudgetExhausted},
    layer::RetryLayer,
    policy::RetryPolicy,
};

/// The retry service: tower's `Retry` driven by a [`RetryPolicy`].
pub type Retry<S, C> = tower::retry::Retry<RetryPolicy<C>, S>;

/// How an attempt ended, as the label values of `retry_attempts_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// The attempt succeeded.
    Success,
    /// It failed and another attempt follows.
    Retried,
    /// It failed in a way not worth retrying; its error is returned.
    NonRetryable,
    /// It failed and was the last attempt allowed.
    Exhausted,
    /// It failed and the retry budget had no token left (`retry_budget_exhausted_total`); the
    /// error returned is marked with [`RetryBudgetExhausted`].
    BudgetExhausted,
    /// It failed and no further attempt could finish before the deadline.
    DeadlineReached,
}

impl AttemptOutcome {
    /// `success`, `retried`, `non_retryable`, `exhausted`, `budget_exhausted` or `deadline`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Success => "success",
            AttemptOutcome::Retried => "retried",
            AttemptOutcome::NonRetryable => "non_retryable",
            AttemptOutcome::Exhausted => "exhausted",
            AttemptOutcome::BudgetExhausted => "budget_exhausted",
            AttemptOutcome::DeadlineReached => "deadline",
        }
    }
}

/// Sees every attempt, for `retry_attempts_total` and `retry_budget_exhausted_total`, and
/// for span events on the calling span (it runs inside the caller's future).
pub trait RetryObserver: Send + Sync + 'static {
    /// Attempt number `attempt` (1 for the first) ended with `outcome`; `backoff` is the wait
    /// before the next attempt when there is one.
    fn on_attempt(&self, attempt: u32, outcome: AttemptOutcome, backoff: Option<Duration>) {
        let _ = (attempt, outcome, backoff);
    }
}

/// The observer that observes nothing.
impl RetryObserver for () {}

struct Shared {
    config: RetryConfig,
    budget: TpsBudget,
    observer: Arc<dyn RetryObserver>,
}

impl Shared {
    /// `config` must be valid: `TpsBudget::new` panics otherwise.
    fn new(config: RetryConfig, observer: Arc<dyn RetryObserver>) -> Self {
        let budget = TpsBudget::new(
            config.budget_ttl,
            config.budget_min_per_sec,
            config.budget_ratio,
        );
        Self {
            config,
            budget,
            observer,
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
