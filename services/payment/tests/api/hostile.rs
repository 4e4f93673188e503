//! Hostile admin bodies: generated `PUT` and `PATCH /admin/faults` bodies against a real
//! payment (proptest, a bounded number of cases; cargo-fuzz needs a nightly toolchain, which
//! this project does not use). No answer is a 5xx; a refusal is problem+json naming each
//! knob at fault and changes nothing; an accepted body leaves settings the service can run.

use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, spawn_app};

const CASES: u32 = 256;

const KNOBS: &[&str] = &[
    "latency_ms",
    "jitter_ms",
    "failure_rate",
    "hang_rate",
    "decline_rate",
    "outage",
    "preset",
];

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|number| json!(number)),
        (-1.0_f64..2.0).prop_map(|number| json!(number)),
        ".{0,16}".prop_map(Value::from),
        prop_oneof![Just("seed"), Just("none"), Just("outage"), Just("brownout")]
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Bodies: any bytes, any JSON, or objects of real knobs (and others) with any values.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    let knob = prop_oneof![
        prop::sample::select(KNOBS).prop_map(str::to_owned),
        "[a-z_]{1,10}"
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128),
        any_json().prop_map(|value| value.to_string().into_bytes()),
        prop::collection::btree_map(knob, any_json(), 0..5).prop_map(|knobs| {
            Value::Object(knobs.into_iter().collect())
                .to_string()
                .into_bytes()
        }),
    ]
}

/// Settings the service can run with.
fn admissible(settings: &Value) -> bool {
    let rate = |knob: &str| {
        settings[knob]
            .as_f64()
            .is_some_and(|rate| (0.0..=1.0).contains(&rate))
    };
    settings["latency_ms"].is_u64()
        && settings["jitter_ms"].is_u64()
        && rate("failure_rate")
        && rate("hang_rate")
        && rate("decline_rate")
        && settings["outage"].is_boolean()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_faults_body_is_refused_naming_the_knob_or_applied_whole() {
    let app = spawn_app().await;
    let (http, url) = (app.http.clone(), app.ops_url("/admin/faults"));
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(ProptestConfig {
            cases: CASES,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&(any_body(), any::<bool>()), |(body, patch)| {
                handle
                    .block_on(one_case(&http, &url, &body, patch))
                    .map_err(TestCaseError::fail)
            })
            .map_err(|error| error.to_string())
    })
    .await
    .expect("the property runs");
    if let Err(error) = outcome {
        panic!("{error}");
    }
}

async fn one_case(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    patch: bool,
) -> Result<(), String> {
    let current = || async {
        http.get(url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .map_err(|error| error.to_string())?
            .json::<Value>()
            .await
            .map_err(|error| error.to_string())
    };
    let before = current().await?;
    let request = if patch {
        http.patch(url)
    } else {
        http.put(url)
    };
    let response = request
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await;
    let (status, content_type, answer) = testkit::http::answer(response).await?;
    let answer: Value = serde_json::from_slice(&answer).map_err(|error| error.to_string())?;
    let after = current().await?;
    let sent = String::from_utf8_lossy(body);
    match status {
        200 => {
            if answer != after || !admissible(&after) {
                return Err(format!("{sent} set {answer}, now {after}"));
            }
        }
        400 => {
            if content_type != "application/problem+json" {
                return Err(format!("400 as {content_type:?}"));
            }
            if after != before {
                return Err(format!(
                    "{sent} was refused yet changed {before} to {after}"
                ));
            }
            let errors = answer["errors"]
                .as_array()
                .filter(|errors| !errors.is_empty())
                .ok_or_else(|| format!("a refusal naming nothing: {answer}"))?;
            // A refused object is refused for its keys: each error names one of them.
            let keys: Option<Vec<String>> =
                serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|value| {
                        value
                            .as_object()
                            .map(|object| object.keys().cloned().collect())
                    });
            for error in errors {
                let field = error["field"].as_str().unwrap_or_default();
                if let Some(keys) = &keys
                    && !keys.iter().any(|key| key == field)
                {
                    return Err(format!("a refusal naming no key of {sent}: {answer}"));
                }
                if error["message"].as_str().is_none_or(str::is_empty) {
                    return Err(format!("a refusal without a reason: {answer}"));
                }
            }
        }
        other => return Err(format!("{other} for {sent}: {answer}")),
    }
    Ok(())
}
