//! The admin API on the ops listener: `GET`, `PUT` and `PATCH /admin/faults`.
//!
//! It needs `Authorization: Bearer <ADMIN_TOKEN>`; with no token configured the routes do not
//! exist (404), so an unconfigured deployment cannot be broken from outside. Refusals are RFC
//! 9457 problem details (`application/problem+json`) naming each bad field, and a refused
//! change leaves the settings as they were.
//!
//! - `GET` answers the knobs in force.
//! - `PUT` sets every knob: those not named go back to healthy (or to the named `preset`).
//! - `PATCH` changes only the knobs named.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use secrecy::SecretString;
use serde_json::Value;
use server::{
    admin::{AdminJson, bearer_auth},
    problem,
};

use crate::faults::{FaultSettings, Faults, FieldError};

/// The admin routes, guarded by `token`.
pub fn router(faults: Arc<Faults>, token: SecretString) -> Router {
    let routes = Router::new()
        .route("/admin/faults", get(show).put(replace).patch(update))
        .with_state(faults);
    bearer_auth(routes, token)
}

async fn show(State(faults): State<Arc<Faults>>) -> Json<FaultSettings> {
    Json(faults.get())
}

async fn replace(State(faults): State<Arc<Faults>>, AdminJson(body): AdminJson) -> Response {
    apply(&faults, FaultSettings::default(), &body)
}

async fn update(State(faults): State<Arc<Faults>>, AdminJson(body): AdminJson) -> Response {
    apply(&faults, faults.get(), &body)
}

fn apply(faults: &Faults, base: FaultSettings, body: &[u8]) -> Response {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(error) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "the body is not valid JSON",
                &[FieldError {
                    field: String::new(),
                    message: error.to_string(),
                }],
            );
        }
    };
    match base.apply_json(&value) {
        Ok(settings) => {
            faults.set(settings);
            Json(settings).into_response()
        }
        Err(errors) => problem(
            StatusCode::BAD_REQUEST,
            "some fault knobs were refused; nothing was changed",
            &errors,
        ),
    }
}
