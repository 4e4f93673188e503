//! [`BreakerOpen`]: the error of a call the breaker did not let through.

use super::State;

/// The breaker rejected the call without calling the dependency.
///
/// Its [`state`](Self::state) says why: `open` (tripped, waiting), `half_open` (all trial
/// slots taken) or `forced_open` (an operator override).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker is {state}")]
pub struct BreakerOpen {
    state: State,
}

impl BreakerOpen {
    pub(crate) const fn new(state: State) -> Self {
        Self { state }
    }

    /// The state that rejected the call.
    pub fn state(&self) -> State {
        self.state
    }
}

/// `UNAVAILABLE`: the dependency is treated as down, and the caller may try another replica
/// or later.
impl From<BreakerOpen> for tonic::Status {
    fn from(error: BreakerOpen) -> Self {
        tonic::Status::unavailable(error.to_string())
    }
}
