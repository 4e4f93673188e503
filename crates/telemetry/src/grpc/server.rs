//! The server side: extract `traceparent`, open the server span, measure until the trailers.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::{Instrument as _, instrument::Instrumented};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{CODE_UNKNOWN, Call, ObservedBody, Side, status_code};

/// The health service, whose calls are measured but (by default) not traced.
const HEALTH: &str = "grpc.health.v1.Health";

/// Traces and measures every call a tonic server answers. See the [module docs](super).
///
/// `grpc.health.v1.Health` calls are measured but not traced unless
/// [`trace_health_checks`](Self::trace_health_checks) says so: orchestrator probes every few
/// seconds per pod would otherwise fill the trace store with spans nobody reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcServerLayer {
    trace_health: bool,
}

impl GrpcServerLayer {
    /// The layer, not tracing health checks.
    pub fn new() -> Self {
        super::describe();
        Self {
            trace_health: false,
        }
    }

    /// Whether health checks get spans too.
    pub fn trace_health_checks(mut self, trace: bool) -> Self {
        self.trace_health = trace;
        self
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServer {
            inner,
            trace_health: self.trace_health,
        }
    }
}

/// The service made by [`GrpcServerLayer`].
#[derive(Debug, Clone)]
pub struct GrpcServer<S> {
    inner: S,
    trace_health: bool,
}

// === impl GrpcServer ===

impl<S> GrpcServer<S> {
    /// Wraps `inner` (health checks not traced).
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            trace_health: false,
        }
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

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcServer<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let (service, method) = super::parse_path(path).unwrap_or((super::OTHER, super::OTHER));
        let span = if service == HEALTH && !self.trace_health {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                "grpc.server",
                otel.name = %format_args!("{service}/{method}"),
                otel.kind = "server",
                otel.status_code = tracing::field::Empty,
                rpc.system = "grpc",
                rpc.service = %service,
                rpc.method = %method,
                rpc.grpc.status_code = tracing::field::Empty,
            )
        };
        // A malformed traceparent is ignored: the call starts a new trace.
        let _ = span.set_parent(crate::propagation::extract(request.headers()));
        let call = Call::new(Side::Server, path, span.clone());
        let inner = span.in_scope(|| self.inner.call(request));
        ResponseFuture {
            inner: inner.instrument(span),
            call: Some(call),
        }
    }
}

pin_project! {
    /// The response future of [`GrpcServer`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        call: Option<Call>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<ObservedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut call = this
            .call
            .take()
            .expect("ResponseFuture polled after it completed");
        Poll::Ready(match result {
            Ok(response) => Ok(observe(response, call)),
            Err(error) => {
                call.finish(CODE_UNKNOWN);
                Err(error)
            }
        })
    }
}

/// Finishes `call` now if the answer is trailers-only, and wraps the body either way.
pub(super) fn observe<B>(
    response: http::Response<B>,
    mut call: Call,
) -> http::Response<ObservedBody<B>> {
    if let Some(code) = status_code(response.headers()) {
        call.finish(code);
    }
    response.map(|body| ObservedBody::new(body, call))
}
