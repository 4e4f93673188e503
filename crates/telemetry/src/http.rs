//! A tower layer that traces and measures an axum HTTP server.
//!
//! For each request: the caller's W3C `traceparent` is extracted, a server span named
//! `METHOD /route` is opened with `http.request.method`, `http.route` and, once answered,
//! `http.response.status_code`, and `http_server_request_duration_seconds` is recorded with the
//! same three labels. The route is axum's [`MatchedPath`] (the template, `/v1/orders/{id}`),
//! never the raw path, so label values stay bounded; add the layer with `Router::layer` so the
//! path is matched before it runs. Unrouted requests are labelled `_OTHER`, as are methods
//! outside the standard ones.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Instant,
};

use axum::extract::MatchedPath;
use http::Method;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::{Instrument as _, Span, instrument::Instrumented};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const METRIC: &str = "http_server_request_duration_seconds";
const OTHER: &str = "_OTHER";

/// Traces and measures every request of an axum router. See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpServerLayer {
    _private: (),
}

impl HttpServerLayer {
    /// The layer; it has no settings.
    pub fn new() -> Self {
        metrics::describe_histogram!(
            METRIC,
            metrics::Unit::Seconds,
            "Duration of HTTP requests served, until the response head"
        );
        Self { _private: () }
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServer { inner }
    }
}

/// The service made by [`HttpServerLayer`].
#[derive(Debug, Clone)]
pub struct HttpServer<S> {
    inner: S,
}

// === impl HttpServer ===

impl<S> HttpServer<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => OTHER,
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for HttpServer<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = method_label(request.method());
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(OTHER, MatchedPath::as_str)
            .to_owned();
        let span = tracing::info_span!(
            "http.server",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
        );
        let _ = span.set_parent(crate::propagation::extract(request.headers()));
        let inner = span.in_scope(|| self.inner.call(request));
        ResponseFuture {
            inner: inner.instrument(span.clone()),
            observation: Some(Observation {
                method,
                route,
                span,
                start: Instant::now(),
            }),
        }
    }
}

#[derive(Debug)]
struct Observation {
    method: &'static str,
    route: String,
    span: Span,
    start: Instant,
}

pin_project! {
    /// The response future of [`HttpServer`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        observation: Option<Observation>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(observation) = this.observation.take() {
            // An axum service never fails (its error type is Infallible); a tower service that
            // can would leave the request unanswered, which counts as a 500.
            let status = result
                .as_ref()
                .map_or(500, |response| response.status().as_u16());
            metrics::histogram!(
                METRIC,
                "http_route" => observation.route,
                "http_request_method" => observation.method,
                "http_response_status_code" => status.to_string(),
            )
            .record(observation.start.elapsed());
            // As i64: tracing-opentelemetry has no u64 visitor and would record text.
            observation
                .span
                .record("http.response.status_code", i64::from(status));
            if status >= 500 {
                observation.span.record("otel.status_code", "ERROR");
            }
        }
        Poll::Ready(result)
    }
}
