//! W3C trace-context in and out of HTTP headers (gRPC metadata are HTTP/2 headers).

use opentelemetry::{Context, global};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};

/// The caller's context from `traceparent`/`tracestate`, or an empty one.
pub(crate) fn extract(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

/// Writes `context` as `traceparent`/`tracestate` into `headers`.
pub(crate) fn inject(context: &Context, headers: &mut http::HeaderMap) {
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(context, &mut HeaderInjector(headers));
    });
}
