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
    body::Bytes,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::faults::{FaultSettings, Faults, FieldError};

/// Fault bodies are a few dozen bytes.
const BODY_LIMIT: usize = 16 * 1024;

/// The admin routes, guarded by `token`.
pub fn router(faults: Arc<Faults>, token: SecretString) -> Router {
    Router::new()
        .route("/admin/faults", get(show).put(replace).patch(update))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(Arc::new(token), authorize))
        .with_state(faults)
}

async fn authorize(
    State(token): State<Arc<SecretString>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(presented)
            if constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes()) =>
        {
            next.run(request).await
        }
        _ => {
            let mut response = problem(
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer <ADMIN_TOKEN>` header is required",
                &[],
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

async fn show(State(faults): State<Arc<Faults>>) -> Json<FaultSettings> {
    Json(faults.get())
}

async fn replace(State(faults): State<Arc<Faults>>, headers: HeaderMap, body: Bytes) -> Response {
    apply(&faults, FaultSettings::default(), &headers, &body)
}

async fn update(State(faults): State<Arc<Faults>>, headers: HeaderMap, body: Bytes) -> Response {
    apply(&faults, faults.get(), &headers, &body)
}

fn apply(faults: &Faults, base: FaultSettings, headers: &HeaderMap, body: &[u8]) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|value| value.starts_with("application/json"));
    if !is_json {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be `application/json`",
            &[],
        );
    }
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

/// An RFC 9457 problem details response.
fn problem(status: StatusCode, detail: &str, errors: &[FieldError]) -> Response {
    let mut body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret!"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
