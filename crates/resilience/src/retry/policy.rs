//! [`RetryPolicy`]: the decisions, plugged into tower's `Retry`.

use std::{fmt, sync::Arc, time::Duration};

use rand::RngExt;
use tokio::time::{Instant, Sleep};
use tower::retry::{Policy, budget::Budget};

use super::{AttemptOutcome, MarkBudgetExhausted, Shared};
use crate::{ClassifyRetry, RetryDecision, deadline::RequestDeadline};

/// Decides, after each attempt, whether and when to try again. One clone per request carries
/// that request's attempt count.
pub struct RetryPolicy<C> {
    shared: Arc<Shared>,
    classifier: C,
    attempts: u32,
    /// When the attempt in flight started (tower clones the request right before each
    /// attempt): how long the last attempt took is the best guess of how long the next one
    /// will.
    attempt_started: Option<Instant>,
}

impl<C> RetryPolicy<C> {
    pub(super) fn new(shared: Arc<Shared>, classifier: C) -> Self {
        Self {
            shared,
            classifier,
            attempts: 0,
            attempt_started: None,
        }
    }

    /// Everything that can stop a retry the classifier wants, checked from the cheapest to
    /// the one that spends budget.
    fn admit(&self, delay: Duration, deadline: Option<Instant>) -> AttemptOutcome {
        let config = &self.shared.config;
        if self.attempts >= config.max_attempts {
            return AttemptOutcome::Exhausted;
        }
        let now = Instant::now();
        let last_attempt = self.attempt_started.map_or(Duration::ZERO, |started| {
            now.saturating_duration_since(started)
        });
        let needed = config.min_attempt_time.max(last_attempt);
        if deadline.is_some_and(|deadline| now + delay + needed > deadline) {
            return AttemptOutcome::DeadlineReached;
        }
        if !self.shared.budget.withdraw() {
            return AttemptOutcome::BudgetExhausted;
        }
        AttemptOutcome::Retried
    }
}

/// A duration drawn uniformly from `[0, ceiling]`.
pub(super) fn full_jitter(ceiling: Duration, rng: &mut impl rand::Rng) -> Duration {
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}

impl<C, Req, Res, E> Policy<Req, Res, E> for RetryPolicy<C>
where
    C: ClassifyRetry<Res, E> + Clone,
    Req: Clone + RequestDeadline,
    E: MarkBudgetExhausted,
{
    type Future = Sleep;

    fn retry(&mut self, request: &mut Req, result: &mut Result<Res, E>) -> Option<Sleep> {
        self.attempts += 1;
        if self.attempts == 1 {
            // Each request earns the budget once, when its first attempt completes.
            self.shared.budget.deposit();
        }
        let delay = match self.classifier.classify_retry(result) {
            RetryDecision::Stop => {
                let outcome = match result {
                    Ok(_) => AttemptOutcome::Success,
                    Err(_) => AttemptOutcome::NonRetryable,
                };
                self.shared
                    .observer
                    .on_attempt(self.attempts, outcome, None);
                return None;
            }
            RetryDecision::Retry => {
                let ceiling = self.shared.config.backoff_ceiling(self.attempts);
                full_jitter(ceiling, &mut rand::rng())
            }
            RetryDecision::RetryAfter(pushback) => pushback,
        };
        let outcome = self.admit(delay, request.deadline());
        if let (AttemptOutcome::BudgetExhausted, Err(error)) = (outcome, result.as_mut()) {
            error.mark_budget_exhausted();
        }
        let retried = outcome == AttemptOutcome::Retried;
        self.shared
            .observer
            .on_attempt(self.attempts, outcome, retried.then_some(delay));
        retried.then(|| tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        self.attempt_started = Some(Instant::now());
        Some(request.clone())
    }
}

impl<C: Clone> Clone for RetryPolicy<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            classifier: self.classifier.clone(),
            attempts: self.attempts,
            attempt_started: self.attempt_started,
        }
    }
}

impl<C> fmt::Debug for RetryPolicy<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("attempts", &self.attempts)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}
