//! The HTTP/JSON API (axum): `/v1/orders` and `/v1/products`.
//!
//! Handlers only read the request, call the [`App`](crate::app::App) and write the answer;
//! errors leave as RFC 9457 problem details naming each bad field. `fn router` binds nothing.

mod json;
mod orders;
mod products;

use axum::{
    Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use telemetry::{http::HttpServerLayer, ops::problem};

use crate::app::{App, AppError};

/// The largest request body accepted; more is answered 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The API's routes over `app`.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/v1/orders", post(orders::place).get(orders::list))
        .route("/v1/orders/{order_id}", get(orders::get))
        .route("/v1/products", get(products::list))
        .fallback(not_found)
        .layer(HttpServerLayer::new())
        .with_state(app)
}

async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "no such resource", &[] as &[()])
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::Invalid(violations) => problem(
                StatusCode::BAD_REQUEST,
                "the request was refused; `errors` names each field and why",
                &violations,
            ),
            AppError::KeyReused { order_id } => problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!(
                    "the Idempotency-Key was already used for a different request (order {order_id}); use a new key for a new order"
                ),
                &[crate::domain::FieldViolation::new(
                    "Idempotency-Key",
                    "already used for a different request",
                )],
            ),
            AppError::NotFound(order_id) => problem(
                StatusCode::NOT_FOUND,
                &format!("no order `{order_id}`"),
                &[] as &[()],
            ),
            AppError::Store(error) => {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "order.store_failed"
                );
                let mut response = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the order store is unavailable; retry with the same Idempotency-Key",
                    &[] as &[()],
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
        }
    }
}
