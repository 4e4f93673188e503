//! The payment service's own series, named and described in one place (docs/metrics.md lists
//! them with the shared ones).

/// `payments_total{outcome}`: ProcessPayment calls by what they did: `captured`, `declined`,
/// `replayed` (the order was charged before), `invalid` (INVALID_ARGUMENT), `conflict`
/// (ALREADY_EXISTS), `failed` (UNAVAILABLE: injected or a database error).
pub const PAYMENTS: &str = "payments_total";
/// `payment_fault_injected_total{kind}`: faults applied: `latency`, `failure`, `hang`,
/// `outage`, `decline`.
pub const FAULT_INJECTED: &str = "payment_fault_injected_total";
/// `payment_fault_setting{knob}`: the knobs in force: `latency_ms`, `jitter_ms`,
/// `failure_rate`, `hang_rate`, `decline_rate`, `outage` (0 or 1).
pub const FAULT_SETTING: &str = "payment_fault_setting";

/// Describes every series (HELP lines) and makes the counters appear at 0 before traffic, so
/// that `rate()` and dashboards see them from the first scrape.
pub fn describe() {
    metrics::describe_counter!(PAYMENTS, "ProcessPayment calls by outcome");
    metrics::describe_counter!(FAULT_INJECTED, "Faults applied to calls, by kind");
    metrics::describe_gauge!(FAULT_SETTING, "Fault injection knobs in force");
    for outcome in [
        "captured", "declined", "replayed", "invalid", "conflict", "failed",
    ] {
        metrics::counter!(PAYMENTS, "outcome" => outcome).increment(0);
    }
    for kind in ["latency", "failure", "hang", "outage", "decline"] {
        metrics::counter!(FAULT_INJECTED, "kind" => kind).increment(0);
    }
}

/// Counts one ProcessPayment call.
pub fn payment(outcome: &'static str) {
    metrics::counter!(PAYMENTS, "outcome" => outcome).increment(1);
}
