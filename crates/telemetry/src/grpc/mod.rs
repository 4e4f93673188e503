//! Tower layers that trace and measure gRPC calls, for tonic servers and clients.
//!
//! - [`GrpcServerLayer`] goes in `tonic::transport::Server::builder().layer(..)`: for each call it
//!   extracts the caller's W3C `traceparent`, opens a server span named `package.Service/Method`
//!   with `rpc.system`, `rpc.service`, `rpc.method` and, once known, `rpc.grpc.status_code`, and
//!   records `rpc_server_call_duration_seconds`.
//! - [`GrpcClientLayer`] wraps a `tonic::transport::Channel`: a client span per attempt, its
//!   context injected as `traceparent`, and `rpc_client_call_duration_seconds`.
//!
//! A gRPC status travels in the response headers when the call fails before any message
//! ("trailers-only") and in the trailers otherwise, so the response body is wrapped
//! ([`ObservedBody`]) to catch the trailers; the call is measured until the last frame, and a
//! body dropped before it (the client went away) counts as `CANCELLED`.
//!
//! Label values are bounded: a path that is not `/package.Service/Method`, or a call answered
//! `UNIMPLEMENTED`, is labelled `_OTHER`, so a client cannot mint series by calling made-up
//! methods.

mod body;
mod client;
mod server;

use std::time::Instant;

use tracing::Span;

pub use body::ObservedBody;
pub use client::{ClientFuture, GrpcClient, GrpcClientLayer};
pub use server::{GrpcServer, GrpcServerLayer, ResponseFuture};

/// The label value for a service or method outside the bounded set.
const OTHER: &str = "_OTHER";

const CODE_CANCELLED: i32 = tonic::Code::Cancelled as i32;
const CODE_UNKNOWN: i32 = tonic::Code::Unknown as i32;
const CODE_UNIMPLEMENTED: i32 = tonic::Code::Unimplemented as i32;

/// Which end of a call is observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

impl Side {
    const fn metric(self) -> &'static str {
        match self {
            Side::Server => "rpc_server_call_duration_seconds",
            Side::Client => "rpc_client_call_duration_seconds",
        }
    }

    /// Whether `code` marks the span as an error, per the OTel RPC conventions: every non-OK
    /// code for a client; for a server only the codes that mean the server failed.
    fn is_error(self, code: i32) -> bool {
        use tonic::Code;
        match self {
            Side::Client => code != Code::Ok as i32,
            Side::Server => [
                Code::Unknown,
                Code::DeadlineExceeded,
                Code::Unimplemented,
                Code::Internal,
                Code::Unavailable,
                Code::DataLoss,
            ]
            .iter()
            .any(|error| *error as i32 == code),
        }
    }
}

/// Describes the two histograms, once, for `# HELP` lines.
pub(crate) fn describe() {
    metrics::describe_histogram!(
        Side::Server.metric(),
        metrics::Unit::Seconds,
        "Duration of gRPC calls served, until the last response frame"
    );
    metrics::describe_histogram!(
        Side::Client.metric(),
        metrics::Unit::Seconds,
        "Duration of gRPC calls made, one observation per attempt"
    );
}

/// `/package.Service/Method` → (`package.Service`, `Method`).
fn parse_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'_')
    };
    (valid(service) && valid(method)).then_some((service, method))
}

/// The status code in a header map (response headers of a trailers-only answer, or trailers).
fn status_code(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// One call being observed: finished once, when its status is known or it is abandoned.
#[derive(Debug)]
struct Call {
    side: Side,
    service: String,
    method: String,
    span: Span,
    start: Instant,
    finished: bool,
}

impl Call {
    fn new(side: Side, path: &str, span: Span) -> Self {
        let (service, method) = parse_path(path).unwrap_or((OTHER, OTHER));
        Self {
            side,
            service: service.to_owned(),
            method: method.to_owned(),
            span,
            start: Instant::now(),
            finished: false,
        }
    }

    fn finish(&mut self, code: i32) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let (service, method) = if code == CODE_UNIMPLEMENTED {
            (OTHER.to_owned(), OTHER.to_owned())
        } else {
            (
                std::mem::take(&mut self.service),
                std::mem::take(&mut self.method),
            )
        };
        metrics::histogram!(
            self.side.metric(),
            "rpc_service" => service,
            "rpc_method" => method,
            "rpc_grpc_status_code" => code.to_string(),
        )
        .record(self.start.elapsed());
        self.span.record("rpc.grpc.status_code", code);
        if self.side.is_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish(CODE_CANCELLED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_into_bounded_names() {
        assert_eq!(
            parse_path("/stormproof.payment.v1.PaymentService/ProcessPayment"),
            Some(("stormproof.payment.v1.PaymentService", "ProcessPayment"))
        );
        for bad in [
            "",
            "/",
            "/svc",
            "/svc/",
            "//m",
            "/svc/m/x",
            "/svc/m?x=1",
            "svc/m",
        ] {
            assert_eq!(parse_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn error_codes_follow_the_conventions() {
        assert!(!Side::Server.is_error(tonic::Code::InvalidArgument as i32));
        assert!(Side::Client.is_error(tonic::Code::InvalidArgument as i32));
        assert!(Side::Server.is_error(tonic::Code::Unavailable as i32));
        assert!(!Side::Server.is_error(tonic::Code::Ok as i32));
        assert!(!Side::Client.is_error(tonic::Code::Ok as i32));
    }
}
