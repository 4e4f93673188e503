//! Live fault injection: latency, failures, hangs, outages and business declines.
//!
//! [`FaultSettings`] is what an operator sets (at start through flags, live through
//! `PUT /admin/faults`); [`Faults`] holds the current settings and rolls the dice for each call,
//! returning a [`Plan`] the gRPC handler carries out. Each knob is exported as
//! `payment_fault_setting{knob}` whenever it changes, so dashboards draw chaos as it happens, and
//! each fault applied counts in `payment_fault_injected_total{kind}`.

mod settings;

use std::{
    sync::{PoisonError, RwLock},
    time::Duration,
};

pub use settings::{
    FaultSettings, FieldError, MILLIS_RANGE, Preset, RATE_RANGE, in_millis_range, in_rate_range,
};

use crate::metrics;

/// What to do to one call, decided when it arrives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Answer UNAVAILABLE at once (payment is down).
    pub outage: bool,
    /// Wait this long first.
    pub delay: Duration,
    /// Then never answer.
    pub hang: bool,
    /// Then answer UNAVAILABLE.
    pub fail: bool,
    /// A charge is declined (ProcessPayment only).
    pub decline: bool,
}

/// The settings in force. Reads take a read lock for a few nanoseconds, never across `.await`.
#[derive(Debug)]
pub struct Faults {
    settings: RwLock<FaultSettings>,
}

impl Faults {
    /// Starts with `settings` and exports them.
    pub fn new(settings: FaultSettings) -> Self {
        settings.export();
        Self {
            settings: RwLock::new(settings),
        }
    }

    /// The settings in force.
    pub fn get(&self) -> FaultSettings {
        *self.settings.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the settings (already validated) and exports them.
    pub fn set(&self, settings: FaultSettings) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
        settings.export();
        tracing::info!(
            target: "payment.faults",
            latency_ms = settings.latency_ms,
            jitter_ms = settings.jitter_ms,
            failure_rate = settings.failure_rate,
            hang_rate = settings.hang_rate,
            decline_rate = settings.decline_rate,
            outage = settings.outage,
            "faults.changed"
        );
    }

    /// Rolls the dice for one call.
    pub fn plan(&self) -> Plan {
        let settings = self.get();
        let jitter = if settings.jitter_ms == 0 {
            0
        } else {
            rand::random_range(0..=settings.jitter_ms)
        };
        Plan {
            outage: settings.outage,
            delay: Duration::from_millis(settings.latency_ms.saturating_add(jitter)),
            hang: roll(settings.hang_rate),
            fail: roll(settings.failure_rate),
            decline: roll(settings.decline_rate),
        }
    }
}

fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::random_bool(rate.clamp(0.0, 1.0))
}

/// Records a fault that was applied.
pub fn injected(kind: &'static str) {
    ::metrics::counter!(metrics::FAULT_INJECTED, "kind" => kind).increment(1);
}
