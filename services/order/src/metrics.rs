//! The order service's own series, named and described in one place (docs/metrics.md lists
//! them with the shared ones).

use crate::{domain::OrderStatus, payment::FallbackReason};

/// `orders_total{status}`: PlaceOrder outcomes: `confirmed`, `payment_pending`, `rejected`,
/// `failed` (answered 5xx: the store failed).
pub const ORDERS: &str = "orders_total";
/// `fallback_total{dependency,reason}`: charges that fell back to PAYMENT_PENDING.
pub const FALLBACKS: &str = "fallback_total";
/// `order_payment_backlog`: orders not yet settled (PENDING or PAYMENT_PENDING).
pub const BACKLOG: &str = "order_payment_backlog";
/// `order_payment_oldest_pending_seconds`: age of the oldest unsettled order (0 when none).
pub const OLDEST_PENDING: &str = "order_payment_oldest_pending_seconds";
/// `order_reconcile_total{outcome}`: reconciler attempts: `confirmed`, `rejected`, `retry`
/// (payment failed; tried again later), `deferred` (the breaker is open).
pub const RECONCILE: &str = "order_reconcile_total";

/// `concurrency_limit{service}`: the adaptive limit now.
pub const CONCURRENCY_LIMIT: &str = "concurrency_limit";
/// `load_shed_total{service}`: requests shed by the limit, and new orders shed because the
/// store's writer is saturated.
pub const LOAD_SHED: &str = "load_shed_total";
/// The `service` label of the two above.
const SERVICE: &str = "order";

/// The limiter's observer.
#[derive(Debug)]
pub struct Limit;

impl resilience::limit::LimitObserver for Limit {
    fn on_limit(&self, limit: usize) {
        metrics::gauge!(CONCURRENCY_LIMIT, "service" => SERVICE).set(limit as f64);
    }

    fn on_shed(&self) {
        metrics::counter!(LOAD_SHED, "service" => SERVICE).increment(1);
        // Debug, not info: under overload a line per refusal would spend the CPU that
        // shedding saves. `load_shed_total` counts them all.
        tracing::debug!("request.shed");
    }
}

/// Describes every series and starts each label value at 0.
pub fn describe() {
    metrics::describe_counter!(ORDERS, "PlaceOrder outcomes by the order's status");
    metrics::describe_counter!(
        FALLBACKS,
        "Charges that fell back to PAYMENT_PENDING, by reason"
    );
    metrics::describe_gauge!(BACKLOG, "Orders whose payment is not settled yet");
    metrics::describe_gauge!(
        OLDEST_PENDING,
        "Age of the oldest unsettled order, in seconds"
    );
    metrics::describe_counter!(RECONCILE, "Reconciliation attempts by outcome");
    for status in ["confirmed", "payment_pending", "rejected", "failed"] {
        metrics::counter!(ORDERS, "status" => status).increment(0);
    }
    for reason in [
        "breaker_open",
        "deadline",
        "unavailable",
        "bulkhead_full",
        "budget_exhausted",
    ] {
        metrics::counter!(FALLBACKS, "dependency" => crate::payment::DEPENDENCY, "reason" => reason)
            .increment(0);
    }
    for outcome in ["confirmed", "rejected", "retry", "deferred"] {
        metrics::counter!(RECONCILE, "outcome" => outcome).increment(0);
    }
    metrics::describe_gauge!(CONCURRENCY_LIMIT, "The adaptive concurrency limit now");
    metrics::describe_counter!(
        LOAD_SHED,
        "Requests shed: by the concurrency limit, or new orders the store's writer could not take in time"
    );
    metrics::counter!(LOAD_SHED, "service" => SERVICE).increment(0);
    metrics::gauge!(BACKLOG).set(0.0);
    metrics::gauge!(OLDEST_PENDING).set(0.0);
    crate::payment::describe();
}

/// Counts a placed order.
pub fn order(status: OrderStatus) {
    metrics::counter!(ORDERS, "status" => status.label()).increment(1);
}

/// Counts a new order shed because the store's writer is saturated (`Store::with_write_wait`).
pub fn store_shed() {
    metrics::counter!(LOAD_SHED, "service" => SERVICE).increment(1);
    tracing::debug!(reason = "store_busy", "request.shed");
}

/// Counts a request that failed (5xx).
pub fn order_failed() {
    metrics::counter!(ORDERS, "status" => "failed").increment(1);
}

/// Counts a fallback.
pub fn fallback(reason: FallbackReason) {
    metrics::counter!(FALLBACKS, "dependency" => crate::payment::DEPENDENCY, "reason" => reason.as_str())
        .increment(1);
}

/// Counts a reconciliation attempt.
pub fn reconciled(outcome: &'static str) {
    metrics::counter!(RECONCILE, "outcome" => outcome).increment(1);
}

/// Sets the backlog gauges.
pub fn backlog(count: u64, oldest_age_seconds: f64) {
    metrics::gauge!(BACKLOG).set(count as f64);
    metrics::gauge!(OLDEST_PENDING).set(oldest_age_seconds);
}
