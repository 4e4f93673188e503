//! Firing a timeline's steps through the admin APIs while the load runs.

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use tokio::time::Instant;

use super::{ChaosStep, Timeline};

/// Where the admin APIs are, and the token they want.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Order's ops base URL.
    pub order_ops_url: String,
    /// Payment's ops base URL.
    pub payment_ops_url: String,
    /// The bearer token.
    pub token: SecretString,
    /// The client.
    pub http: reqwest::Client,
}

/// What happened to one step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fired {
    /// The step's name.
    pub step: String,
    /// When it was planned, in seconds from the start.
    pub planned_s: f64,
    /// When it fired, in seconds from the start.
    pub fired_s: f64,
    /// Whether every admin call succeeded.
    pub ok: bool,
    /// What the admin APIs said, when something failed.
    pub error: Option<String>,
}

impl Admin {
    /// Applies `step`: payment's faults, then order's breaker.
    pub async fn apply(&self, step: &ChaosStep) -> Result<(), String> {
        if let Some(body) = &step.payment {
            self.put(
                &self.payment_ops_url,
                "/admin/faults",
                &Value::Object(body.clone()),
            )
            .await?;
        }
        if let Some(state) = &step.breaker {
            self.put(
                &self.order_ops_url,
                "/admin/breaker",
                &serde_json::json!({ "state": state }),
            )
            .await?;
        }
        Ok(())
    }

    async fn put(&self, base: &str, path: &str, body: &Value) -> Result<(), String> {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let response = self
            .http
            .put(&url)
            .bearer_auth(self.token.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|error| format!("PUT {url}: {error}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = response.text().await.unwrap_or_default();
            Err(format!("PUT {url}: {status}: {text}"))
        }
    }
}

/// Fires each step of `timeline` at its time from `start`, printing a line per step and
/// keeping `loadgen_chaos_step{step}` at 1 while the step is in force (until a later step
/// sets the same target).
///
/// Once `load_ended` turns true (goose stopped early, on ctrl-c say) the steps still due are
/// not waited for: heals fire at once, so payment is not left broken, and the others are
/// recorded as skipped.
pub async fn run(
    timeline: Timeline,
    admin: Admin,
    start: Instant,
    mut load_ended: tokio::sync::watch::Receiver<bool>,
) -> Vec<Fired> {
    let mut fired = Vec::with_capacity(timeline.steps.len());
    let mut payment_step: Option<String> = None;
    let mut breaker_step: Option<String> = None;
    for (index, step) in timeline.steps.iter().enumerate() {
        let early = tokio::select! {
            () = tokio::time::sleep_until(start + step.at) => false,
            ended = load_ended.wait_for(|ended| *ended) => ended.is_ok(),
        };
        if early && !step.is_heal() {
            println!(
                "chaos: step {} ({:?}) skipped: the load ended before it was due",
                index + 1,
                step.name
            );
            fired.push(Fired {
                step: step.name.clone(),
                planned_s: step.at.as_secs_f64(),
                fired_s: start.elapsed().as_secs_f64(),
                ok: false,
                error: Some("skipped: the load ended before it was due".into()),
            });
            continue;
        }
        let result = admin.apply(step).await;
        let elapsed = start.elapsed().as_secs_f64();
        for (sets, current) in [
            (step.payment.is_some(), &mut payment_step),
            (step.breaker.is_some(), &mut breaker_step),
        ] {
            if sets && let Some(previous) = current.replace(step.name.clone()) {
                crate::metrics::chaos_step(&previous, false);
            }
        }
        crate::metrics::chaos_step(&step.name, !step.is_heal());
        let what = describe(step);
        match &result {
            Ok(()) => println!(
                "chaos: t={elapsed:.1}s step {} ({:?}) fired: {what}",
                index + 1,
                step.name
            ),
            Err(error) => println!(
                "chaos: t={elapsed:.1}s step {} ({:?}) FAILED: {what}: {error}",
                index + 1,
                step.name
            ),
        }
        fired.push(Fired {
            step: step.name.clone(),
            planned_s: step.at.as_secs_f64(),
            fired_s: elapsed,
            ok: result.is_ok(),
            error: result.err(),
        });
    }
    fired
}

fn describe(step: &ChaosStep) -> String {
    let mut parts = Vec::new();
    if let Some(body) = &step.payment {
        parts.push(format!("payment faults {}", Value::Object(body.clone())));
    }
    if let Some(state) = &step.breaker {
        parts.push(format!("order breaker {state}"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod applying {
    use std::sync::{Arc, Mutex};

    use axum::{Json, Router, extract::State, http::HeaderMap, routing::put};

    use super::*;
    use std::time::Duration;

    type Seen = Arc<Mutex<Vec<(String, Value)>>>;

    /// A stand-in for both admin APIs that records what it was told, with the token it got.
    async fn admin_api() -> (String, Seen) {
        let seen: Seen = Arc::default();
        let record = |path: &'static str| {
            move |State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                if let Ok(mut seen) = seen.lock() {
                    seen.push((format!("{path} {auth}"), body));
                }
            }
        };
        let router = Router::new()
            .route("/admin/faults", put(record("faults")))
            .route("/admin/breaker", put(record("breaker")))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, router).await });
        (url, seen)
    }

    fn admin(url: &str) -> Admin {
        Admin {
            order_ops_url: url.to_owned(),
            payment_ops_url: url.to_owned(),
            token: SecretString::from("t0k".to_owned()),
            http: reqwest::Client::new(),
        }
    }

    #[tokio::test]
    async fn steps_fire_in_order_through_both_admin_apis() {
        let (url, seen) = admin_api().await;
        let timeline = Timeline::parse(
            "[[step]]\nname = \"down\"\nat = \"0s\"\npayment = { outage = true }\nbreaker = \"forced_open\"\n\
             [[step]]\nname = \"heal\"\nat = \"0s\"\npayment = {}\nbreaker = \"closed\"\n",
            "t.toml",
            Duration::from_secs(1),
        )
        .expect("valid");
        let (_ended, load_ended) = tokio::sync::watch::channel(false);
        let fired = run(timeline, admin(&url), Instant::now(), load_ended).await;
        assert!(fired.iter().all(|fired| fired.ok), "{fired:?}");
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            [
                (
                    "faults Bearer t0k".to_owned(),
                    serde_json::json!({ "outage": true })
                ),
                (
                    "breaker Bearer t0k".to_owned(),
                    serde_json::json!({ "state": "forced_open" })
                ),
                ("faults Bearer t0k".to_owned(), serde_json::json!({})),
                (
                    "breaker Bearer t0k".to_owned(),
                    serde_json::json!({ "state": "closed" })
                ),
            ]
        );
    }

    #[tokio::test]
    async fn when_the_load_ends_early_heals_fire_at_once_and_the_rest_are_skipped() {
        let (url, seen) = admin_api().await;
        let timeline = Timeline::parse(
            "[[step]]\nname = \"down\"\nat = \"60s\"\npayment = { outage = true }\n\
             [[step]]\nname = \"heal\"\nat = \"120s\"\npayment = {}\n",
            "t.toml",
            Duration::from_secs(300),
        )
        .expect("valid");
        let (ended, load_ended) = tokio::sync::watch::channel(false);
        let _ = ended.send(true);
        let fired = tokio::time::timeout(
            Duration::from_secs(10),
            run(timeline, admin(&url), Instant::now(), load_ended),
        )
        .await
        .expect("nothing is waited for once the load ended");
        assert!(
            !fired[0].ok
                && fired[0]
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("skipped"))
        );
        assert!(fired[1].ok);
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(
            seen,
            [("faults Bearer t0k".to_owned(), serde_json::json!({}))]
        );
    }
}
