//! The admin API on the ops listener: `GET` and `PUT /admin/breaker`, behind the same bearer
//! token rule as payment (no token configured: the routes do not exist).
//!
//! `PUT {"state": "forced_open"}` rejects every call until changed; `"disabled"` lets every
//! call through uncounted; `"closed"` (or `"reset"`) closes it with a fresh window.

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use resilience::breaker::BreakerHandle;
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{
    admin::{AdminJson, bearer_auth},
    problem,
};

use crate::{domain::FieldViolation, payment::DEPENDENCY};

/// The admin routes over the payment breaker, guarded by `token`.
pub fn router(breaker: BreakerHandle, token: SecretString) -> Router {
    let routes = Router::new()
        .route("/admin/breaker", get(show).put(set))
        .with_state(breaker);
    bearer_auth(routes, token)
}

fn view(breaker: &BreakerHandle) -> Value {
    let stats = breaker.stats();
    json!({
        "dependency": DEPENDENCY,
        "state": breaker.state().as_str(),
        "failure_rate": stats.failure_rate(),
        "calls": stats.calls,
    })
}

async fn show(State(breaker): State<BreakerHandle>) -> Json<Value> {
    Json(view(&breaker))
}

async fn set(State(breaker): State<BreakerHandle>, AdminJson(body): AdminJson) -> Response {
    let refuse = |message: &str| {
        problem(
            StatusCode::BAD_REQUEST,
            "the breaker was not changed",
            &[FieldViolation::new("state", message)],
        )
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => return refuse(&format!("the body is not valid JSON: {error}")),
    };
    let Some(object) = value
        .as_object()
        .filter(|object| object.keys().all(|key| key == "state"))
    else {
        return refuse(
            "the body must be {\"state\": \"forced_open\" | \"disabled\" | \"closed\" | \"reset\"}",
        );
    };
    match object.get("state").and_then(Value::as_str) {
        Some("forced_open") => breaker.force_open(),
        Some("disabled") => breaker.disable(),
        Some("closed" | "reset") => breaker.reset(),
        _ => return refuse("must be one of forced_open, disabled, closed, reset"),
    }
    tracing::warn!(state = breaker.state().as_str(), "breaker.overridden");
    Json(view(&breaker)).into_response()
}
