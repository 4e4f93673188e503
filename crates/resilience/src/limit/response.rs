//! The answer to a shed request, in the caller's protocol.

use http::{HeaderValue, Response, StatusCode, header};

use crate::classify::RETRY_PUSHBACK_HEADER;

/// `RESOURCE_EXHAUSTED`, as gRPC encodes it.
const GRPC_RESOURCE_EXHAUSTED: &str = "8";

pub(super) fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// A gRPC "trailers-only" response with status `RESOURCE_EXHAUSTED` and a pushback, or an
/// HTTP 503 with `Retry-After`.
pub(super) fn overloaded<B: Default>(grpc: bool, retry_after: std::time::Duration) -> Response<B> {
    let mut response = Response::new(B::default());
    response.extensions_mut().insert(super::Shed);
    if !grpc {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    let headers = response.headers_mut();
    if grpc {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert(
            "grpc-status",
            HeaderValue::from_static(GRPC_RESOURCE_EXHAUSTED),
        );
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("server is overloaded"),
        );
        headers.insert(
            RETRY_PUSHBACK_HEADER,
            HeaderValue::from(retry_after.as_millis() as u64),
        );
    } else {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Whether a response is a shed answer from a narrower limit inside this one, which says
/// nothing about the server as a whole.
pub(super) fn was_shed<B>(response: &Response<B>) -> bool {
    response.extensions().get::<super::Shed>().is_some()
}

/// Whether a response says the server behind the limit is itself overloaded.
pub(super) fn signals_overload<B>(response: &Response<B>) -> bool {
    let status = response.status();
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .map(HeaderValue::as_bytes);
    status == StatusCode::SERVICE_UNAVAILABLE
        || status == StatusCode::TOO_MANY_REQUESTS
        || matches!(grpc_status, Some(b"8" | b"14"))
}
