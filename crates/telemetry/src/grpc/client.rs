//! The client side: a span per attempt, its context injected as `traceparent`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{Call, ObservedBody, Side};

const CODE_UNAVAILABLE: i32 = tonic::Code::Unavailable as i32;

/// Traces and measures every attempt through a tonic channel. See the [module docs](super).
///
/// Put it innermost, right around the channel, so that each retry is its own span and
/// observation, all children of the caller's span.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcClientLayer {
    _private: (),
}

impl GrpcClientLayer {
    /// The layer; it has no settings.
    pub fn new() -> Self {
        super::describe();
        Self { _private: () }
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClient<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClient { inner }
    }
}

/// The service made by [`GrpcClientLayer`].
#[derive(Debug, Clone)]
pub struct GrpcClient<S> {
    inner: S,
}

// === impl GrpcClient ===

impl<S> GrpcClient<S> {
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

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcClient<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let (service, method) = super::parse_path(&path).unwrap_or((super::OTHER, super::OTHER));
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        crate::propagation::inject(&span.context(), request.headers_mut());
        let call = Call::new(Side::Client, &path, span);
        ClientFuture {
            inner: self.inner.call(request),
            call: Some(call),
        }
    }
}

pin_project! {
    /// The response future of [`GrpcClient`].
    #[derive(Debug)]
    pub struct ClientFuture<F> {
        #[pin]
        inner: F,
        call: Option<Call>,
    }
}

impl<F, B, E> Future for ClientFuture<F>
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
            .expect("ClientFuture polled after it completed");
        Poll::Ready(match result {
            Ok(response) => Ok(super::server::observe(response, call)),
            Err(error) => {
                // The transport failed (connection refused or reset, no answer at all): tonic
                // hands the caller UNAVAILABLE, and so the attempt is labelled.
                call.finish(CODE_UNAVAILABLE);
                Err(error)
            }
        })
    }
}
