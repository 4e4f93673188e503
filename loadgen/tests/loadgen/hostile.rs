//! Hostile chaos timelines: any text, and TOML near the real shape with any values, given
//! to the timeline reader (proptest, bounded cases; cargo-fuzz needs a nightly toolchain,
//! which this project does not use). It answers `Ok` or an error naming the step and the
//! field, and never panics; an accepted timeline only holds what the admin APIs take.

use std::time::Duration;

use proptest::prelude::*;
use stormproof_loadgen::chaos::{ChaosError, Timeline};

const RUN: Duration = Duration::from_secs(300);

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A TOML value of any type, as text.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "[a-z0-9 .:-]{0,12}".prop_map(|text| format!("{text:?}")),
        any::<i64>().prop_map(|number| number.to_string()),
        any::<f64>()
            .prop_filter("finite", |number| number.is_finite())
            .prop_map(|number| format!("{number:?}")),
        Just("nan".to_owned()),
        Just("inf".to_owned()),
        Just("-0.0".to_owned()),
        any::<bool>().prop_map(|flag| flag.to_string()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        prop_oneof![
            Just("\"30s\""),
            Just("\"0s\""),
            Just("\"5m\""),
            Just("\"18446744073709551615s\""),
            Just("\"99999999999999999999h\""),
            Just("\"1.5s\""),
            Just("\"\""),
        ]
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec((key(), inner), 0..4).prop_map(|pairs| {
                let fields: Vec<String> = pairs
                    .into_iter()
                    .map(|(key, value)| format!("{key} = {value}"))
                    .collect();
                format!("{{ {} }}", fields.join(", "))
            }),
        ]
    })
}

/// A key a step or payment table might hold: the real ones, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![
            Just("name"),
            Just("at"),
            Just("payment"),
            Just("breaker"),
            Just("latency_ms"),
            Just("jitter_ms"),
            Just("failure_rate"),
            Just("hang_rate"),
            Just("decline_rate"),
            Just("outage"),
            Just("preset"),
        ]
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ]
}

/// A payment table: real knobs with any values, or any value.
fn payment() -> impl Strategy<Value = String> {
    let knob = prop_oneof![
        (0_i64..5000).prop_map(|ms| ms.to_string()),
        (-1.0_f64..2.0).prop_map(|rate| format!("{rate:?}")),
        prop_oneof![
            Just("\"seed\""),
            Just("\"none\""),
            Just("\"outage\""),
            Just("\"brownout\"")
        ]
        .prop_map(str::to_owned),
        toml_value(),
    ];
    prop::collection::vec((key(), knob), 0..5).prop_map(|pairs| {
        let mut seen = std::collections::BTreeSet::new();
        let fields: Vec<String> = pairs
            .into_iter()
            .filter(|(key, _)| seen.insert(key.clone())) // TOML refuses a key twice; not our case
            .map(|(key, value)| format!("{key} = {value}"))
            .collect();
        format!("{{ {} }}", fields.join(", "))
    })
}

/// A timeline file near the real shape.
fn timeline() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        ".{0,10}".prop_map(|name| format!("name = {name:?}")),
        "[0-9]{1,4}(ms|s|m|h|x)?".prop_map(|at| format!("at = {at:?}")),
        payment().prop_map(|table| format!("payment = {table}")),
        prop_oneof![
            Just("closed"),
            Just("forced_open"),
            Just("disabled"),
            Just("reset"),
            Just("open")
        ]
        .prop_map(|state| format!("breaker = {state:?}")),
        (key(), toml_value()).prop_map(|(key, value)| format!("{key} = {value}")),
    ];
    let step = prop::collection::vec(field, 0..6).prop_map(|fields| {
        let mut seen = std::collections::BTreeSet::new();
        let fields: Vec<String> = fields
            .into_iter()
            .filter(|field| seen.insert(field.split(' ').next().unwrap_or_default().to_owned()))
            .collect();
        format!("[[step]]\n{}\n", fields.join("\n"))
    });
    (
        prop::collection::vec(step, 0..5),
        prop::option::of(toml_value().prop_map(|value| format!("extra = {value}\n"))),
    )
        .prop_map(|(steps, extra)| format!("{}{}", extra.unwrap_or_default(), steps.concat()))
}

/// The property: `Ok` with admissible steps, or an error that names where.
fn check(text: &str) -> Result<(), TestCaseError> {
    match Timeline::parse(text, "t.toml", RUN) {
        Ok(timeline) => {
            for step in &timeline.steps {
                prop_assert!(!step.name.is_empty());
                prop_assert!(step.at <= RUN);
                prop_assert!(step.payment.is_some() || step.breaker.is_some());
            }
            prop_assert!(
                timeline
                    .steps
                    .windows(2)
                    .all(|pair| pair[0].at <= pair[1].at)
            );
        }
        Err(error) => {
            let message = error.to_string();
            prop_assert!(message.starts_with("chaos file t.toml: "), "{message}");
            if let ChaosError::Step { .. } = error {
                prop_assert!(message.contains(": step "), "{message}");
                prop_assert!(message.contains("field \""), "{message}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_text_is_read_or_refused_without_a_panic(text in ".{0,400}") {
        check(&text)?;
    }

    #[test]
    fn any_timeline_is_read_or_refused_naming_step_and_field(text in timeline()) {
        check(&text)?;
    }
}

#[test]
fn the_shipped_timeline_still_reads() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/chaos-peak-sale.toml"),
    )
    .expect("the shipped timeline");
    check(&text).expect("reads");
    assert!(
        !Timeline::parse(&text, "t.toml", RUN)
            .expect("reads")
            .steps
            .is_empty()
    );
}
