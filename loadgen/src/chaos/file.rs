//! Reading and checking a timeline file (TOML), and the built-in timelines.

use std::{fmt, path::Path, time::Duration};

use serde_json::{Map, Value};

use super::{ChaosStep, Timeline};
use crate::profiles::Profile;

/// Why a timeline was refused; `Display` names the step and field.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The file could not be read.
    #[error("chaos file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not TOML, or not a list of steps.
    #[error("chaos file {path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// A step is wrong.
    #[error("chaos file {path}: {step}: field \"{field}\": {detail}")]
    Step {
        /// The file.
        path: String,
        /// `step 3 ("heal")`.
        step: StepName,
        /// The field at fault.
        field: String,
        /// Why.
        detail: String,
    },
}

/// How an error names a step: its 1-based position and its name, if it has one.
#[derive(Debug, Clone)]
pub struct StepName {
    index: usize,
    name: Option<String>,
}

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "step {} ({name:?})", self.index),
            None => write!(f, "step {}", self.index),
        }
    }
}

const PAYMENT_KNOBS: &[&str] = &[
    "latency_ms",
    "jitter_ms",
    "failure_rate",
    "hang_rate",
    "decline_rate",
    "outage",
    "preset",
];
const PRESETS: &[&str] = &["none", "seed", "brownout", "outage"];
const BREAKER_STATES: &[&str] = &["closed", "forced_open", "disabled", "reset"];

impl Timeline {
    /// `spec` is "none", a built-in name, or the path of a timeline file. Steps must fire
    /// within `profile`'s run.
    pub fn resolve(spec: &str, profile: &Profile, time_scale: f64) -> Result<Self, ChaosError> {
        match spec {
            "none" | "" => Ok(Self::default()),
            "seed" | "outage" | "brownout" => Ok(Self::builtin(spec, profile, time_scale)),
            path => Self::load(Path::new(path), profile.duration()),
        }
    }

    /// The built-in timelines, placed on `profile`'s peak: `seed` (200 ms + 25 % failures
    /// over the peak), `outage` (payment down for 60 s × `time_scale` from the start of the
    /// peak, no longer than the peak), `brownout` (2 s latency over the peak).
    pub fn builtin(name: &str, profile: &Profile, time_scale: f64) -> Self {
        let (start, end) = profile.peak;
        let (faults, until) = match name {
            "seed" => (
                serde_json::json!({ "latency_ms": 200, "failure_rate": 0.25 }),
                end,
            ),
            "brownout" => (serde_json::json!({ "latency_ms": 2000 }), end),
            _ => (
                serde_json::json!({ "outage": true }),
                (start + Duration::from_secs_f64(60.0 * time_scale)).min(end),
            ),
        };
        let payment = |value: Value| match value {
            Value::Object(map) => Some(map),
            _ => None,
        };
        Self {
            steps: vec![
                ChaosStep {
                    name: name.to_owned(),
                    at: start,
                    payment: payment(faults),
                    breaker: None,
                },
                ChaosStep {
                    name: "heal".to_owned(),
                    at: until,
                    payment: Some(Map::new()),
                    breaker: None,
                },
            ],
        }
    }

    /// Reads and checks a timeline file; every step must fire within `run`.
    pub fn load(path: &Path, run: Duration) -> Result<Self, ChaosError> {
        let text = std::fs::read_to_string(path).map_err(|source| ChaosError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string(), run)
    }

    /// Checks a timeline's text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str, run: Duration) -> Result<Self, ChaosError> {
        let file_error = |detail: String| ChaosError::File {
            path: origin.to_owned(),
            detail,
        };
        let document: toml::Table = text
            .parse()
            .map_err(|error: toml::de::Error| file_error(error.to_string()))?;
        if let Some(key) = document.keys().find(|key| *key != "step") {
            return Err(file_error(format!(
                "unknown key {key:?}: a timeline is a list of [[step]] tables"
            )));
        }
        let Some(raw_steps) = document.get("step") else {
            return Ok(Self::default());
        };
        let raw_steps = raw_steps
            .as_array()
            .ok_or_else(|| file_error("\"step\" must be a list of [[step]] tables".to_owned()))?;
        let mut steps = Vec::with_capacity(raw_steps.len());
        for (index, raw) in raw_steps.iter().enumerate() {
            steps.push(
                parse_step(index + 1, raw, run).map_err(|(step, field, detail)| {
                    ChaosError::Step {
                        path: origin.to_owned(),
                        step,
                        field,
                        detail,
                    }
                })?,
            );
        }
        steps.sort_by_key(|step| step.at);
        Ok(Self { steps })
    }
}

type StepError = (StepName, String, String);

fn parse_step(index: usize, raw: &toml::Value, run: Duration) -> Result<ChaosStep, StepError> {
    let unnamed = StepName { index, name: None };
    let table = raw.as_table().ok_or_else(|| {
        (
            unnamed.clone(),
            "step".to_owned(),
            "must be a table".to_owned(),
        )
    })?;
    let name = match table.get("name") {
        Some(toml::Value::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err((unnamed, "name".into(), "must be a non-empty string".into())),
        None => return Err((unnamed, "name".into(), "is required".into())),
    };
    let step = StepName {
        index,
        name: Some(name.clone()),
    };
    let fail = |field: &str, detail: String| (step.clone(), field.to_owned(), detail);
    if let Some(key) = table
        .keys()
        .find(|key| !["name", "at", "payment", "breaker"].contains(&key.as_str()))
    {
        return Err(fail(
            key,
            "unknown field (expected name, at, payment, breaker)".into(),
        ));
    }
    let at = match table.get("at") {
        Some(toml::Value::String(text)) => humantime::parse_duration(text)
            .map_err(|error| fail("at", format!("{text:?} is not a duration ({error})")))?,
        Some(_) => return Err(fail("at", "must be a duration such as \"30s\"".into())),
        None => return Err(fail("at", "is required".into())),
    };
    if at > run {
        return Err(fail(
            "at",
            format!(
                "{} is after the end of the run ({})",
                humantime::format_duration(at),
                humantime::format_duration(run)
            ),
        ));
    }
    let payment = match table.get("payment") {
        None => None,
        Some(toml::Value::Table(knobs)) => Some(payment_body(knobs, &fail)?),
        Some(_) => return Err(fail("payment", "must be a table of fault knobs".into())),
    };
    let breaker = match table.get("breaker") {
        None => None,
        Some(toml::Value::String(state)) if BREAKER_STATES.contains(&state.as_str()) => {
            Some(state.clone())
        }
        Some(_) => {
            return Err(fail(
                "breaker",
                format!("must be one of {}", BREAKER_STATES.join(", ")),
            ));
        }
    };
    if payment.is_none() && breaker.is_none() {
        return Err(fail(
            "payment",
            "a step sets payment, breaker or both".into(),
        ));
    }
    Ok(ChaosStep {
        name,
        at,
        payment,
        breaker,
    })
}

fn payment_body(
    knobs: &toml::Table,
    fail: &impl Fn(&str, String) -> StepError,
) -> Result<Map<String, Value>, StepError> {
    let mut body = Map::new();
    for (knob, value) in knobs {
        let field = format!("payment.{knob}");
        let json = match (knob.as_str(), value) {
            ("latency_ms" | "jitter_ms", toml::Value::Integer(ms)) if *ms >= 0 => Value::from(*ms),
            ("latency_ms" | "jitter_ms", _) => {
                return Err(fail(
                    &field,
                    "must be a whole number of milliseconds, >= 0".into(),
                ));
            }
            ("failure_rate" | "hang_rate" | "decline_rate", value) => {
                let rate = match value {
                    toml::Value::Float(rate) => *rate,
                    toml::Value::Integer(rate) => *rate as f64,
                    _ => f64::NAN,
                };
                if !(0.0..=1.0).contains(&rate) {
                    return Err(fail(&field, "must be a number from 0 to 1".into()));
                }
                Value::from(rate)
            }
            ("outage", toml::Value::Boolean(down)) => Value::from(*down),
            ("outage", _) => return Err(fail(&field, "must be true or false".into())),
            ("preset", toml::Value::String(preset)) if PRESETS.contains(&preset.as_str()) => {
                Value::from(preset.as_str())
            }
            ("preset", _) => {
                return Err(fail(
                    &field,
                    format!("must be one of {}", PRESETS.join(", ")),
                ));
            }
            _ => {
                return Err(fail(
                    &field,
                    format!("unknown knob (expected {})", PAYMENT_KNOBS.join(", ")),
                ));
            }
        };
        body.insert(knob.clone(), json);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::ProfileName;

    const RUN: Duration = Duration::from_secs(300);

    fn error(text: &str) -> String {
        Timeline::parse(text, "t.toml", RUN)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_documented_timeline_parses_in_time_order() {
        let timeline = Timeline::parse(
            r#"
            [[step]]
            name = "heal"
            at = "90s"
            payment = {}
            breaker = "closed"
            [[step]]
            name = "outage"
            at = "30s"
            payment = { outage = true, latency_ms = 5 }
            "#,
            "t.toml",
            RUN,
        )
        .expect("valid");
        assert_eq!(timeline.steps[0].name, "outage");
        assert!(!timeline.steps[0].is_heal());
        assert!(timeline.steps[1].is_heal());
        assert_eq!(timeline.last_heal(), Some(Duration::from_secs(90)));
    }

    #[test]
    fn errors_name_the_step_and_the_field() {
        let text = r#"
            [[step]]
            name = "down"
            at = "1s"
            payment = { outage = true }
            [[step]]
            name = "slow"
            at = "2s"
            payment = { latency_ms = 10 }
            [[step]]
            name = "heal"
            at = "soon"
            payment = {}
        "#;
        assert_eq!(
            error(text),
            "chaos file t.toml: step 3 (\"heal\"): field \"at\": \"soon\" is not a duration (expected number at 0)"
        );
        assert!(
            error("[[step]]\nname = \"x\"\nat = \"1s\"\npayment = { failure_rate = 2.0 }")
                .contains(
                    "step 1 (\"x\"): field \"payment.failure_rate\": must be a number from 0 to 1"
                )
        );
        assert!(
            error("[[step]]\nname = \"x\"\nat = \"1s\"\nbreaker = \"ajar\"")
                .contains("field \"breaker\"")
        );
        assert!(error("[[step]]\nat = \"1s\"").contains("step 1: field \"name\": is required"));
        assert!(
            error("[[step]]\nname = \"x\"\nat = \"1h\"\npayment = {}").contains("after the end")
        );
        assert!(error("[[step]]\nname = \"x\"\nat = \"1s\"").contains("sets payment, breaker"));
        assert!(error("[[step]\n").starts_with("chaos file t.toml: "));
    }

    #[test]
    fn built_in_outage_strikes_at_the_peak_for_sixty_scaled_seconds() {
        let profile = Profile::new(ProfileName::PeakSale, 1.0, 0.5);
        let timeline = Timeline::builtin("outage", &profile, 0.5);
        assert_eq!(timeline.steps[0].at, profile.peak.0);
        assert_eq!(
            timeline.steps[1].at - timeline.steps[0].at,
            Duration::from_secs(30)
        );
        assert!(timeline.steps[1].is_heal());
    }
}

#[cfg(test)]
mod example {
    use super::*;
    use crate::profiles::ProfileName;

    /// The documented example timeline parses and fits the peak-sale profile.
    #[test]
    fn the_shipped_example_fits_peak_sale() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/chaos-peak-sale.toml");
        let profile = Profile::new(ProfileName::PeakSale, 1.0, 1.0);
        let timeline = Timeline::load(&path, profile.duration()).expect("the example is valid");
        assert_eq!(timeline.steps.len(), 4);
        assert_eq!(timeline.last_heal(), Some(Duration::from_secs(185)));
    }
}
