//! The HTTP/JSON API (axum): `/v1/orders` and `/v1/products`.
//!
//! Handlers only read the request, call the [`App`](crate::app::App) and write the answer;
//! errors leave as RFC 9457 problem details naming each bad field. `fn router` binds nothing.

mod json;
mod orders;
mod products;
mod serve;

use axum::{
    Router,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use resilience::limit::{LimitLayer, Shed};
use server::problem;
use telemetry::http::HttpServerLayer;

use crate::app::{App, AppError};

pub use serve::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS, MAX_HEADER_BYTES, MAX_HEADERS, serve};

/// The largest request body accepted; more is answered 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A request body must arrive whole within this long of the handler starting to read it;
/// a slower one (a slow-POST attack, or a client that stalled) is answered 408.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The API's routes over `app`, behind `limit` (shed requests are still traced and measured).
pub fn router(app: App, limit: LimitLayer) -> Router {
    Router::new()
        .route("/v1/orders", post(orders::place).get(orders::list))
        .route("/v1/orders/{order_id}", get(orders::get))
        .route("/v1/products", get(products::list))
        .fallback(not_found)
        .layer(limit)
        .layer(axum::middleware::map_response(explain_shed))
        .layer(HttpServerLayer::new())
        .with_state(app)
}

/// The limit sheds with a bare 503 and `Retry-After`; give it the API's problem body.
async fn explain_shed(response: Response) -> Response {
    let shed = response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::CONTENT_TYPE);
    if !shed {
        return response;
    }
    let mut explained = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the service is overloaded; retry after the Retry-After delay",
        &[] as &[()],
    );
    if let Some(retry_after) = response.headers().get(header::RETRY_AFTER) {
        explained
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after.clone());
    }
    explained
}

async fn not_found() -> Response {
    problem(StatusCode::NOT_FOUND, "no such resource", &[] as &[()])
}

/// A 503 problem with `Retry-After: 1`.
fn retry_later(detail: &str) -> Response {
    let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, detail, &[] as &[()]);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
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
            AppError::Busy => {
                let mut response = retry_later(
                    "order is overloaded: too many orders are waiting for the store; nothing was stored, retry after Retry-After",
                );
                // Shed by the store's own bound: the server-wide limit learns nothing from it.
                response.extensions_mut().insert(Shed);
                response
            }
            AppError::Store(error) => {
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    "order.store_failed"
                );
                retry_later("the order store is unavailable; retry with the same Idempotency-Key")
            }
        }
    }
}
