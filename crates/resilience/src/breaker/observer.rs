//! [`BreakerObserver`]: how a service sees what the breaker does, to export metrics and add
//! span events, without this crate depending on a metrics backend.

use super::{CallOutcome, State, WindowStats};

/// Sees every call outcome and every state transition of one breaker.
///
/// A service creates one observer per dependency, holding that dependency's label, and maps
/// these calls onto its metrics, e.g. `circuit_breaker_calls_total{outcome}` from
/// [`on_call`](Self::on_call), `circuit_breaker_transitions_total{from,to}` and the
/// `circuit_breaker_state{state}` gauge from [`on_transition`](Self::on_transition),
/// `circuit_breaker_failure_rate` from [`on_window`](Self::on_window).
///
/// `on_window` and `on_transition` run while the breaker holds its lock, so that transitions
/// are seen in the order they happened: keep them short (a counter increment, a span event),
/// and do not call back into the breaker's handle from them.
pub trait BreakerObserver: Send + Sync + 'static {
    /// A call finished (success, failure, slow) or was rejected. Calls the classifier ignored
    /// are not reported.
    fn on_call(&self, outcome: CallOutcome) {
        let _ = outcome;
    }

    /// The window after a call was recorded in it (closed state only).
    fn on_window(&self, stats: WindowStats) {
        let _ = stats;
    }

    /// The breaker moved from one state to another.
    fn on_transition(&self, from: State, to: State) {
        let _ = (from, to);
    }
}

/// The observer that observes nothing.
impl BreakerObserver for () {}
