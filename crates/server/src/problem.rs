//! RFC 9457 problem details: the one error body every HTTP edge answers with.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

/// An RFC 9457 problem details response (`application/problem+json`): `type`, `title`,
/// `status`, `detail`, and `errors` (one entry per refused field) when there are any.
pub fn problem<E: Serialize>(status: StatusCode, detail: &str, errors: &[E]) -> Response {
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
