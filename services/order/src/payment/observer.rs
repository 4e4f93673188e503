//! The resilience layers' observers, exporting the agreed series for the `payment` dependency
//! and adding span events to the calling span (tracing events inside a span become OTel span
//! events).

use std::time::Duration;

use resilience::{
    breaker::{BreakerObserver, CallOutcome, State, WindowStats},
    bulkhead::BulkheadObserver,
    retry::{AttemptOutcome, RetryObserver},
};

/// The `dependency` label of every series here.
pub const DEPENDENCY: &str = "payment";

/// Describes the series and sets the breaker's state gauges to closed, so that dashboards
/// see every series from the first scrape.
pub fn describe() {
    metrics::describe_gauge!(
        "circuit_breaker_state",
        "1 for the breaker's current state, 0 for the others"
    );
    metrics::describe_counter!("circuit_breaker_transitions_total", "Breaker state changes");
    metrics::describe_counter!(
        "circuit_breaker_calls_total",
        "Calls through the breaker by outcome"
    );
    metrics::describe_gauge!(
        "circuit_breaker_failure_rate",
        "Failure rate (0..1) over the breaker's current window"
    );
    metrics::describe_gauge!(
        "circuit_breaker_failure_rate_threshold",
        "The failure rate (0..1) at which the breaker trips, as configured"
    );
    metrics::describe_counter!("retry_attempts_total", "Attempts by outcome");
    metrics::describe_counter!(
        "retry_budget_exhausted_total",
        "Retries refused because the retry budget was spent"
    );
    metrics::describe_gauge!("bulkhead_in_flight", "Calls in flight through the bulkhead");
    metrics::describe_counter!(
        "bulkhead_rejected_total",
        "Calls refused by a full bulkhead"
    );
    set_state(State::Closed);
    metrics::gauge!("circuit_breaker_failure_rate", "dependency" => DEPENDENCY).set(0.0);
    metrics::gauge!("bulkhead_in_flight", "dependency" => DEPENDENCY).set(0.0);
    for outcome in ["success", "failure", "slow", "rejected"] {
        metrics::counter!("circuit_breaker_calls_total", "dependency" => DEPENDENCY, "outcome" => outcome)
            .increment(0);
    }
    metrics::counter!("retry_budget_exhausted_total", "dependency" => DEPENDENCY).increment(0);
    metrics::counter!("bulkhead_rejected_total", "dependency" => DEPENDENCY).increment(0);
}

/// Exports the configured trip threshold, so that dashboards draw the failure rate against the
/// value in force rather than a copy of the default.
pub fn thresholds(config: &resilience::breaker::BreakerConfig) {
    metrics::gauge!("circuit_breaker_failure_rate_threshold", "dependency" => DEPENDENCY)
        .set(config.failure_rate_threshold);
}

fn set_state(current: State) {
    for state in State::ALL {
        metrics::gauge!("circuit_breaker_state", "dependency" => DEPENDENCY, "state" => state.as_str())
            .set(if state == current { 1.0 } else { 0.0 });
    }
}

/// The breaker's observer.
#[derive(Debug)]
pub(super) struct Breaker;

impl Breaker {
    pub(super) fn new() -> Self {
        Self
    }
}

impl BreakerObserver for Breaker {
    fn on_call(&self, outcome: CallOutcome) {
        metrics::counter!(
            "circuit_breaker_calls_total",
            "dependency" => DEPENDENCY,
            "outcome" => outcome.as_str()
        )
        .increment(1);
        if outcome == CallOutcome::Rejected {
            tracing::info!(dependency = DEPENDENCY, "breaker.rejected");
        }
    }

    fn on_window(&self, stats: WindowStats) {
        metrics::gauge!("circuit_breaker_failure_rate", "dependency" => DEPENDENCY)
            .set(stats.failure_rate());
    }

    fn on_transition(&self, from: State, to: State) {
        metrics::counter!(
            "circuit_breaker_transitions_total",
            "dependency" => DEPENDENCY,
            "from" => from.as_str(),
            "to" => to.as_str()
        )
        .increment(1);
        set_state(to);
        if to == State::Closed || to == State::Disabled {
            metrics::gauge!("circuit_breaker_failure_rate", "dependency" => DEPENDENCY).set(0.0);
        }
        tracing::warn!(
            dependency = DEPENDENCY,
            from = from.as_str(),
            to = to.as_str(),
            "breaker.transition"
        );
    }
}

/// The retry layer's observer.
#[derive(Debug)]
pub(super) struct Retry;

impl RetryObserver for Retry {
    fn on_attempt(&self, attempt: u32, outcome: AttemptOutcome, backoff: Option<Duration>) {
        metrics::counter!(
            "retry_attempts_total",
            "dependency" => DEPENDENCY,
            "outcome" => outcome.as_str()
        )
        .increment(1);
        match outcome {
            AttemptOutcome::BudgetExhausted => {
                metrics::counter!("retry_budget_exhausted_total", "dependency" => DEPENDENCY)
                    .increment(1);
                tracing::info!(dependency = DEPENDENCY, attempt, "retry.budget_exhausted");
            }
            AttemptOutcome::Retried => tracing::info!(
                dependency = DEPENDENCY,
                attempt,
                backoff_ms = backoff.map_or(0, |backoff| backoff.as_millis() as u64),
                "retry.scheduled"
            ),
            _ => {}
        }
    }
}

/// The bulkhead's observer.
#[derive(Debug)]
pub(super) struct Bulkhead;

impl BulkheadObserver for Bulkhead {
    fn on_in_flight(&self, in_flight: usize) {
        metrics::gauge!("bulkhead_in_flight", "dependency" => DEPENDENCY).set(in_flight as f64);
    }

    fn on_rejected(&self) {
        metrics::counter!("bulkhead_rejected_total", "dependency" => DEPENDENCY).increment(1);
    }
}
