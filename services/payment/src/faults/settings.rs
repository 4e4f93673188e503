//! The fault knobs, their presets and their JSON form.
//!
//! The JSON is read field by field rather than through serde's derive, so that every refusal
//! names its field (`failure_rate: must be a number within 0..=1`) and a body with several
//! mistakes reports them all; serde's messages give a line and column instead.

use serde::Serialize;
use serde_json::Value;

use crate::metrics;

/// Every knob. The default is a healthy service.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct FaultSettings {
    /// Added to every call, in milliseconds.
    pub latency_ms: u64,
    /// Up to this many milliseconds more, uniformly at random.
    pub jitter_ms: u64,
    /// Share of calls answered UNAVAILABLE.
    pub failure_rate: f64,
    /// Share of calls never answered.
    pub hang_rate: f64,
    /// Share of charges declined for a business reason.
    pub decline_rate: f64,
    /// Every call answered UNAVAILABLE at once.
    pub outage: bool,
}

/// Named fault sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Healthy.
    None,
    /// The scenario shown first: 200 ms latency and 25 % failures.
    Seed,
    /// Slow but answering: 2 s latency.
    Brownout,
    /// Down: every call UNAVAILABLE.
    Outage,
}

/// A refused field of a fault body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The JSON field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

const RATES: [&str; 3] = ["failure_rate", "hang_rate", "decline_rate"];
const MILLIS: [&str; 2] = ["latency_ms", "jitter_ms"];
/// Ten minutes: longer than any caller waits; larger values are surely a unit mistake.
const MAX_MILLIS: u64 = 600_000;

/// `rate` if it is a share (0..=1): the range of every rate knob, in JSON and as a flag.
pub fn in_rate_range(rate: f64) -> Option<f64> {
    (0.0..=1.0).contains(&rate).then_some(rate)
}

/// `millis` if it is at most ten minutes: the range of the latency knobs.
pub fn in_millis_range(millis: u64) -> Option<u64> {
    (millis <= MAX_MILLIS).then_some(millis)
}

/// What a knob out of range is told.
pub const RATE_RANGE: &str = "must be a number within 0..=1";
/// What a latency knob out of range is told.
pub const MILLIS_RANGE: &str = "must be a whole number of milliseconds within 0..=600000";

// === impl Preset ===

impl Preset {
    /// The settings this preset stands for.
    pub fn settings(self) -> FaultSettings {
        match self {
            Preset::None => FaultSettings::default(),
            Preset::Seed => FaultSettings {
                latency_ms: 200,
                failure_rate: 0.25,
                ..FaultSettings::default()
            },
            Preset::Brownout => FaultSettings {
                latency_ms: 2000,
                ..FaultSettings::default()
            },
            Preset::Outage => FaultSettings {
                outage: true,
                ..FaultSettings::default()
            },
        }
    }

    fn parse(name: &str) -> Option<Self> {
        <Self as clap::ValueEnum>::from_str(name, false).ok()
    }
}

// === impl FaultSettings ===

impl FaultSettings {
    /// Applies a JSON object of knobs onto `self`: every field named is set, every other keeps
    /// its value. `"preset": "seed"` first resets all knobs to that preset. Unknown fields,
    /// wrong types and out-of-range values are refused, all of them at once, and then nothing
    /// is applied.
    pub fn apply_json(self, body: &Value) -> Result<Self, Vec<FieldError>> {
        let Some(object) = body.as_object() else {
            return Err(vec![FieldError {
                field: String::new(),
                message: "the body must be a JSON object of fault knobs".to_owned(),
            }]);
        };
        let mut errors = Vec::new();
        let mut refuse = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_owned(),
                message,
            });
        };

        let mut settings = match object.get("preset") {
            None => self,
            Some(value) => match value.as_str().and_then(Preset::parse) {
                Some(preset) => preset.settings(),
                None => {
                    refuse(
                        "preset",
                        "must be one of none, seed, brownout, outage".to_owned(),
                    );
                    self
                }
            },
        };

        for (field, value) in object {
            match field.as_str() {
                "preset" => {}
                "outage" => match value.as_bool() {
                    Some(outage) => settings.outage = outage,
                    None => refuse(field, "must be true or false".to_owned()),
                },
                name if MILLIS.contains(&name) => match value.as_u64().and_then(in_millis_range) {
                    Some(millis) if name == "latency_ms" => settings.latency_ms = millis,
                    Some(millis) => settings.jitter_ms = millis,
                    None => refuse(field, MILLIS_RANGE.to_owned()),
                },
                name if RATES.contains(&name) => match value.as_f64().and_then(in_rate_range) {
                    Some(rate) => *settings.rate_mut(name) = rate,
                    None => refuse(field, RATE_RANGE.to_owned()),
                },
                _ => refuse(
                    field,
                    "is not a fault knob (latency_ms, jitter_ms, failure_rate, hang_rate, \
                     decline_rate, outage, preset)"
                        .to_owned(),
                ),
            }
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }

    fn rate_mut(&mut self, name: &str) -> &mut f64 {
        match name {
            "failure_rate" => &mut self.failure_rate,
            "hang_rate" => &mut self.hang_rate,
            _ => &mut self.decline_rate,
        }
    }

    /// Sets `payment_fault_setting{knob}` to each knob's value.
    pub(super) fn export(&self) {
        let knobs = [
            ("latency_ms", self.latency_ms as f64),
            ("jitter_ms", self.jitter_ms as f64),
            ("failure_rate", self.failure_rate),
            ("hang_rate", self.hang_rate),
            ("decline_rate", self.decline_rate),
            ("outage", if self.outage { 1.0 } else { 0.0 }),
        ];
        for (knob, value) in knobs {
            ::metrics::gauge!(metrics::FAULT_SETTING, "knob" => knob).set(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn presets_are_what_the_docs_say() {
        let seed = Preset::Seed.settings();
        assert_eq!((seed.latency_ms, seed.failure_rate), (200, 0.25));
        assert!(Preset::Outage.settings().outage);
        assert_eq!(Preset::None.settings(), FaultSettings::default());
    }

    #[test]
    fn json_sets_only_the_fields_it_names() {
        let current = Preset::Seed.settings();
        let next = current
            .apply_json(&json!({ "failure_rate": 1.0 }))
            .expect("valid");
        assert_eq!(next.failure_rate, 1.0);
        assert_eq!(next.latency_ms, 200, "untouched knob keeps its value");

        let from_preset = FaultSettings::default()
            .apply_json(&json!({ "preset": "brownout", "jitter_ms": 100 }))
            .expect("valid");
        assert_eq!((from_preset.latency_ms, from_preset.jitter_ms), (2000, 100));
    }

    #[test]
    fn every_bad_field_is_named_and_nothing_applies() {
        let errors = FaultSettings::default()
            .apply_json(&json!({
                "failure_rate": 1.5,
                "latency_ms": -5,
                "outage": "yes",
                "hang_rat": 0.1,
                "preset": "storm",
            }))
            .expect_err("all bad");
        let mut fields: Vec<_> = errors.iter().map(|error| error.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["failure_rate", "hang_rat", "latency_ms", "outage", "preset"]
        );
        assert!(FaultSettings::default().apply_json(&json!([1, 2])).is_err());
    }

    #[test]
    fn every_preset_is_within_the_ranges_the_flags_and_the_admin_api_check() {
        for preset in [Preset::None, Preset::Seed, Preset::Brownout, Preset::Outage] {
            let settings = preset.settings();
            for millis in [settings.latency_ms, settings.jitter_ms] {
                assert_eq!(in_millis_range(millis), Some(millis), "{preset:?}");
            }
            for rate in [
                settings.failure_rate,
                settings.hang_rate,
                settings.decline_rate,
            ] {
                assert_eq!(in_rate_range(rate), Some(rate), "{preset:?}");
            }
        }
        assert!(MILLIS_RANGE.ends_with(&MAX_MILLIS.to_string()));
    }
}
