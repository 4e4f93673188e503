//! loadgen's own series, served on its ops port (9466) so dashboards can draw the load and
//! mark chaos phases. Names are DESIGN.md's.

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// Requests sent, by request name and HTTP status ("error" when no response came back).
pub const REQUESTS_TOTAL: &str = "loadgen_requests_total";
/// Time to a response, by request name.
pub const REQUEST_DURATION: &str = "loadgen_request_duration_seconds";
/// Users running now.
pub const USERS: &str = "loadgen_users";
/// 1 while a chaos step is in force, by step name.
pub const CHAOS_STEP: &str = "loadgen_chaos_step";
/// Arrivals that came due under the open model (the offered load).
pub const ARRIVALS_TOTAL: &str = "loadgen_arrivals_total";
/// Arrivals dropped because no user was free when they came due.
pub const DROPPED_ARRIVALS_TOTAL: &str = "loadgen_dropped_arrivals_total";

/// Registers help text (once per process is enough; repeating is harmless).
pub fn describe() {
    describe_counter!(
        REQUESTS_TOTAL,
        "Requests loadgen sent, by request and HTTP status"
    );
    describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from sending a request to its response, by request"
    );
    describe_gauge!(USERS, "Simulated users running");
    describe_gauge!(CHAOS_STEP, "1 while the chaos step is in force, else 0");
    describe_counter!(
        ARRIVALS_TOTAL,
        "Arrivals that came due under the open model: the offered load"
    );
    describe_counter!(
        DROPPED_ARRIVALS_TOTAL,
        "Arrivals dropped because no simulated user was free when they came due"
    );
}

/// Registers the open model's counters at 0, so that a run with no drop still shows it.
pub fn open_model() {
    counter!(ARRIVALS_TOTAL).increment(0);
    counter!(DROPPED_ARRIVALS_TOTAL).increment(0);
}

/// Counts an arrival that came due.
pub fn arrival() {
    counter!(ARRIVALS_TOTAL).increment(1);
}

/// Counts an arrival dropped for want of a free user.
pub fn dropped_arrival() {
    counter!(DROPPED_ARRIVALS_TOTAL).increment(1);
}

/// Records one request.
pub fn request(request: &'static str, status: Option<u16>, seconds: f64) {
    let status = status.map_or_else(|| "error".to_owned(), |code| code.to_string());
    counter!(REQUESTS_TOTAL, "request" => request, "status" => status).increment(1);
    histogram!(REQUEST_DURATION, "request" => request).record(seconds);
}

/// Sets the number of running users.
pub fn users(count: usize) {
    gauge!(USERS).set(count as f64);
}

/// Marks a chaos step in force or not.
pub fn chaos_step(step: &str, in_force: bool) {
    gauge!(CHAOS_STEP, "step" => step.to_owned()).set(if in_force { 1.0 } else { 0.0 });
}
