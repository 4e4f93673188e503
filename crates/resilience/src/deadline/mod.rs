//! Deadlines: take the caller's, cap it, pass the remaining time on, give up when it passes.
//!
//! A request's deadline comes from the caller: the `grpc-timeout` header of a gRPC call, the
//! `x-request-timeout-ms` header of a REST call, or a [`Deadline`] extension an earlier layer
//! set. [`DeadlineService`] brings it in to
//! [`max_timeout`](DeadlineConfig::max_timeout) (or uses
//! [`default_timeout`](DeadlineConfig::default_timeout) when there is none), writes it back
//! onto the request through [`RequestDeadline`] (the `grpc-timeout` of an outgoing gRPC call
//! becomes the time remaining, so the server stops when the caller does), and fails with
//! [`DeadlineExceeded`] when it passes. A request whose deadline has already passed is not
//! sent at all.
//!
//! The same layer serves both sides. On a server (over `http::Request`, in tonic's
//! `Server::builder().layer()` or an axum router) it stores the capped [`Deadline`] in the
//! request extensions for the handler. On a client, outermost, it bounds the whole call,
//! retries included, and retry reads the same deadline to avoid sleeping past it.
//!
//! tower's `Timeout` applies one fixed duration to every request; it cannot take the caller's
//! budget or tell the layers below it, which is the point here.

mod carrier;
mod config;
mod error;
pub mod future;
mod layer;
mod timeout_header;

use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::Service;

pub use self::{
    carrier::{Deadline, RequestDeadline, WithDeadline},
    config::DeadlineConfig,
    error::DeadlineExceeded,
    layer::DeadlineLayer,
    timeout_header::{
        GRPC_TIMEOUT_HEADER, HTTP_TIMEOUT_HEADER, InvalidTimeout, format_grpc_timeout,
        parse_grpc_timeout, parse_http_timeout,
    },
};
use crate::BoxError;

/// Enforces each request's (capped) deadline; built by [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct DeadlineService<S> {
    inner: S,
    config: DeadlineConfig,
}

// === impl DeadlineService ===

impl<S> DeadlineService<S> {
    /// Wraps `inner`; `config` must be valid ([`DeadlineConfig::validate`]).
    pub fn new(inner: S, config: DeadlineConfig) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for DeadlineService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    Req: RequestDeadline,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Req) -> Self::Future {
        let now = Instant::now();
        let cap = now + self.config.max_timeout;
        let deadline = request
            .deadline()
            .map_or(now + self.config.default_timeout, |d| d.min(cap));
        let inner = (deadline > now).then(|| {
            request.set_deadline(deadline);
            self.inner.call(request)
        });
        future::ResponseFuture::new(inner, tokio::time::sleep_until(deadline))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::is_caused_by;

    fn config() -> DeadlineConfig {
        DeadlineConfig::default()
            .with_max_timeout(Duration::from_secs(2))
            .with_default_timeout(Duration::from_secs(1))
    }

    /// A service that answers after `delay` with the deadline it was given.
    fn slow(
        delay: Duration,
    ) -> impl Service<WithDeadline<()>, Response = Option<Instant>, Error = BoxError> + Clone {
        service_fn(move |request: WithDeadline<()>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, BoxError>(request.deadline())
        })
    }

    #[tokio::test(start_paused = true)]
    async fn caps_a_far_deadline_and_hands_it_down() {
        let now = Instant::now();
        let service = DeadlineService::new(slow(Duration::ZERO), config());
        let far = WithDeadline::due_by((), now + Duration::from_secs(60));
        let seen = service.clone().oneshot(far).await.expect("in time");
        assert_eq!(seen, Some(now + Duration::from_secs(2)));
        let near = WithDeadline::due_by((), now + Duration::from_millis(300));
        assert_eq!(
            service.clone().oneshot(near).await.expect("in time"),
            Some(now + Duration::from_millis(300))
        );
        let none = WithDeadline::new(());
        assert_eq!(
            service.oneshot(none).await.expect("in time"),
            Some(now + Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fails_when_the_deadline_passes() {
        let start = Instant::now();
        let service = DeadlineService::new(slow(Duration::from_secs(10)), config());
        let error = service
            .oneshot(WithDeadline::due_by((), start + Duration::from_millis(500)))
            .await
            .expect_err("too slow");
        assert!(is_caused_by::<DeadlineExceeded>(&*error));
        assert_eq!(Instant::now() - start, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tonic_channel_timeout_is_reported_as_deadline_exceeded() {
        let inner = service_fn(|_: WithDeadline<()>| async {
            Err::<(), _>(tonic::Status::from_error(Box::new(tonic::TimeoutExpired(
                (),
            ))))
        });
        let error = DeadlineService::new(inner, config())
            .oneshot(WithDeadline::new(()))
            .await
            .expect_err("timed out");
        assert!(is_caused_by::<DeadlineExceeded>(&*error), "{error}");
        let other = service_fn(|_: WithDeadline<()>| async {
            Err::<(), _>(tonic::Status::unavailable("down"))
        });
        let error = DeadlineService::new(other, config())
            .oneshot(WithDeadline::new(()))
            .await
            .expect_err("fails");
        assert!(
            !is_caused_by::<DeadlineExceeded>(&*error),
            "other errors pass through"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_request_is_not_sent() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let inner = service_fn(move |_: WithDeadline<()>| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, BoxError>(()) }
        });
        let past = Instant::now();
        tokio::time::advance(Duration::from_millis(1)).await;
        let error = DeadlineService::new(inner, config())
            .oneshot(WithDeadline::due_by((), past))
            .await
            .expect_err("expired");
        assert!(is_caused_by::<DeadlineExceeded>(&*error));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_request_gets_the_capped_deadline_as_an_extension() {
        let now = Instant::now();
        let inner = service_fn(|request: http::Request<()>| async move {
            Ok::<_, BoxError>(request.extensions().get::<Deadline>().copied())
        });
        let request = http::Request::builder()
            .header(GRPC_TIMEOUT_HEADER, "1H")
            .body(())
            .expect("valid request");
        let seen = DeadlineService::new(inner, config())
            .oneshot(request)
            .await
            .expect("in time");
        assert_eq!(seen, Some(Deadline(now + Duration::from_secs(2))));
    }
}
