//! `POST /v1/orders`, `GET /v1/orders/{order_id}`, `GET /v1/orders?customer_id=…`.

use std::collections::HashMap;

use axum::{
    Json,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use resilience::deadline::{HTTP_TIMEOUT_HEADER, parse_http_timeout};
use serde_json::{Value, json};
use server::problem;
use tokio::time::Instant;

use super::{BODY_LIMIT, BODY_READ_TIMEOUT, json};
use crate::{
    app::{App, AppError, Placed},
    domain::{FieldViolation, OrderStatus},
};

/// The header that makes a retried POST return the original order.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// 201 CONFIRMED, 202 PENDING or PAYMENT_PENDING, 402 REJECTED; `Location` names the order.
pub(super) async fn place(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be `application/json`",
            &[] as &[()],
        );
    }
    let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, read_limited(body)).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body must be at most {} KiB", BODY_LIMIT / 1024),
                &[] as &[()],
            );
        }
        Err(_) => {
            return problem(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the body did not arrive within {} s",
                    BODY_READ_TIMEOUT.as_secs()
                ),
                &[] as &[()],
            );
        }
    };
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(error) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "the body is not valid JSON",
                &[FieldViolation::new("", error.to_string())],
            );
        }
    };
    let key = match headers.get(IDEMPOTENCY_KEY).map(|value| value.to_str()) {
        None => None,
        Some(Ok(key)) => Some(key.to_owned()),
        Some(Err(_)) => {
            return AppError::Invalid(vec![FieldViolation::new(
                "Idempotency-Key",
                "may hold only visible ASCII characters",
            )])
            .into_response();
        }
    };
    let timeout = headers.get(HTTP_TIMEOUT_HEADER).map(|value| {
        value
            .to_str()
            .ok()
            .and_then(|value| parse_http_timeout(value).ok())
            .ok_or_else(|| "must be a whole number of milliseconds, such as 250".to_owned())
    });
    let deadline = match timeout {
        None => None,
        Some(Ok(timeout)) => Some(Instant::now() + timeout),
        Some(Err(message)) => {
            return AppError::Invalid(vec![FieldViolation::new(HTTP_TIMEOUT_HEADER, message)])
                .into_response();
        }
    };
    let input = match json::place_order(&value, key) {
        Ok(input) => input,
        Err(violations) => return AppError::Invalid(violations).into_response(),
    };
    match app.place_order(input, deadline).await {
        Ok(placed) => placed_response(&placed),
        Err(error) => error.into_response(),
    }
}

/// How much of a too-large body is read on and thrown away before answering 413.
const DRAIN_LIMIT: usize = 2 * 1024 * 1024;

/// The body if it is at most [`BODY_LIMIT`] bytes. A larger one is read on, and thrown away,
/// up to [`DRAIN_LIMIT`]: a client still sending it then reads the 413 instead of a reset
/// connection (HTTP/1.1 has no way to stop a body mid-flight but closing); past the drain
/// limit, or when the body fails, the connection is given up.
async fn read_limited(body: Body) -> Option<bytes::Bytes> {
    use http_body_util::BodyExt as _;

    let mut body = body;
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0_usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen > BODY_LIMIT + DRAIN_LIMIT {
            return None;
        }
        if seen <= BODY_LIMIT {
            kept.extend_from_slice(&data);
        }
    }
    (seen <= BODY_LIMIT).then(|| kept.freeze())
}

fn placed_response(placed: &Placed) -> Response {
    let order = &placed.order;
    let body = json::order(order);
    let mut response = match order.status {
        OrderStatus::Confirmed => (StatusCode::CREATED, Json(body)).into_response(),
        OrderStatus::Pending | OrderStatus::PaymentPending => {
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        // RFC 9457, with the rejected order as an extension member.
        OrderStatus::Rejected => (
            StatusCode::PAYMENT_REQUIRED,
            [(header::CONTENT_TYPE, "application/problem+json")],
            json!({
                "type": "about:blank",
                "title": "Payment Required",
                "status": 402,
                "detail": "payment declined the charge; the order is REJECTED",
                "order": body,
            })
            .to_string(),
        )
            .into_response(),
    };
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/orders/{}", order.order_id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if placed.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

pub(super) async fn get(State(app): State<App>, Path(order_id): Path<String>) -> Response {
    match app.get_order(&order_id).await {
        Ok(order) => Json(json::order(&order)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `?customer_id=…&page_size=…&page_token=…`; other parameters are refused.
pub(super) async fn list(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut violations: Vec<FieldViolation> = query
        .keys()
        .filter(|key| !["customer_id", "page_size", "page_token"].contains(&key.as_str()))
        .map(|key| {
            FieldViolation::new(
                key.clone(),
                "is not a known parameter (customer_id, page_size, page_token)",
            )
        })
        .collect();
    let page_size = match query.get("page_size").map(|size| size.parse::<u32>()) {
        None => None,
        Some(Ok(size)) => Some(size),
        Some(Err(_)) => {
            violations.push(FieldViolation::new("page_size", "must be a whole number"));
            None
        }
    };
    if !violations.is_empty() {
        return AppError::Invalid(violations).into_response();
    }
    let customer_id = query.get("customer_id").map_or("", String::as_str);
    match app
        .list_orders(
            customer_id,
            page_size,
            query.get("page_token").map(String::as_str),
        )
        .await
    {
        Ok((orders, next)) => Json(json!({
            "orders": orders.iter().map(json::order).collect::<Vec<_>>(),
            "next_page_token": next.unwrap_or_default(),
        }))
        .into_response(),
        Err(error) => error.into_response(),
    }
}
