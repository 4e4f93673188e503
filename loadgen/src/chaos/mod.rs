//! The chaos timeline: timed steps applied through the admin APIs while load runs.
//!
//! A timeline file is TOML, one `[[step]]` per step:
//!
//! ```toml
//! [[step]]
//! name = "outage"            # shown in the progress line and in loadgen_chaos_step{step}
//! at = "30s"                 # from the start of the load
//! payment = { outage = true }
//!
//! [[step]]
//! name = "force-breaker"
//! at = "40s"
//! breaker = "forced_open"    # closed | forced_open | disabled | reset
//!
//! [[step]]
//! name = "heal"
//! at = "90s"
//! payment = {}               # every knob back to healthy
//! breaker = "closed"
//! ```
//!
//! A `payment` table replaces payment's whole fault setting (`PUT /admin/faults`); its knobs
//! are latency_ms, jitter_ms, failure_rate, hang_rate, decline_rate, outage and preset
//! (none | seed | brownout | outage). A `breaker` sets order's breaker (`PUT
//! /admin/breaker`). Every step is checked before any load is sent, and an error names the
//! step and the field: `step 3 ("heal"): field "at": ...`.
//!
//! A step that leaves payment healthy (an empty `payment` table or preset "none") or the
//! breaker "closed"/"reset" is a heal: the backlog SLO counts from the last one.

//!
//! - `file`: reading and checking a timeline, and the built-ins.
//! - `apply`: firing the steps through the admin APIs while the load runs.

mod apply;
mod file;

use std::time::Duration;

use serde_json::{Map, Value};

pub use apply::{Admin, Fired, run};
pub use file::{ChaosError, StepName};

/// One validated step.
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosStep {
    /// The step's name.
    pub name: String,
    /// When it fires, from the start of the load.
    pub at: Duration,
    /// The body for payment's `PUT /admin/faults`, if the step sets payment.
    pub payment: Option<Map<String, Value>>,
    /// The state for order's `PUT /admin/breaker`, if the step sets the breaker.
    pub breaker: Option<String>,
}

impl ChaosStep {
    /// Whether this step brings the system back to healthy.
    pub fn is_heal(&self) -> bool {
        let payment_heals = self.payment.as_ref().is_some_and(|body| {
            body.is_empty() || body.get("preset").and_then(Value::as_str) == Some("none")
        });
        let breaker_heals = self
            .breaker
            .as_deref()
            .is_some_and(|state| state == "closed" || state == "reset");
        (payment_heals || self.payment.is_none()) && (breaker_heals || self.breaker.is_none())
    }
}

/// A timeline, sorted by time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// The steps, in firing order.
    pub steps: Vec<ChaosStep>,
}

impl Timeline {
    /// When the last heal fires, if any step heals.
    pub fn last_heal(&self) -> Option<Duration> {
        self.steps
            .iter()
            .filter(|step| step.is_heal())
            .map(|step| step.at)
            .max()
    }
}
