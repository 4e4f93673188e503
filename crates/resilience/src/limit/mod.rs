//! An adaptive concurrency limit for servers: shed early rather than queue.
//!
//! A server that queues every request it cannot serve yet answers all of them late, and its
//! callers time out on answers it still works to produce. [`AdaptiveLimit`] instead admits
//! requests only while the work in flight is within a limit, and answers the rest at once:
//! `RESOURCE_EXHAUSTED` (a gRPC trailers-only response, with `grpc-retry-pushback-ms`) to a
//! gRPC caller, HTTP 503 with `Retry-After` to anyone else. The shed answer is a response, not
//! an error, so the layer keeps its inner service's error type and sits in tonic's
//! `Server::builder().layer()` and in an axum router alike.
//!
//! The limit adapts by AIMD, as Netflix's concurrency-limits `AIMDLimit`, paced by the round
//! trip as TCP's congestion window is: while the limit is at least half used, responses
//! faster than [`latency_threshold`](LimitConfig::latency_threshold) add one per limit's worth
//! of them; a slower one, or one that says the server is overloaded (503, 429, gRPC
//! `RESOURCE_EXHAUSTED`/`UNAVAILABLE` in the headers), multiplies it by
//! [`backoff_ratio`](LimitConfig::backoff_ratio), once: the other slow answers to requests
//! admitted before that cut do not cut again. (Netflix adds one per response, and cuts on
//! every slow one; under thousands of answers a second that swings the limit between its
//! bounds several times a second, admitting a queue on every upswing.) AIMD was chosen over the gradient limiters
//! because it needs no estimate of the no-load latency, which a service with a fault-injected
//! dependency does not have. Latency is measured to the response head; a streaming body's
//! duration is not seen.
//!
//! tower's `ConcurrencyLimit` has a fixed limit and waits for capacity; `LoadShed` sheds only
//! what its inner service reports not ready, and answers with an error.

mod aimd;
mod config;
pub mod future;
mod layer;
mod response;

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::time::Instant;
use tower::Service;

pub use self::{aimd::Aimd, config::LimitConfig, layer::LimitLayer};

/// Sees the limit move and the requests shed, for `concurrency_limit` and `load_shed_total`.
pub trait LimitObserver: Send + Sync + 'static {
    /// The whole-number limit changed to `limit`.
    fn on_limit(&self, limit: usize) {
        let _ = limit;
    }

    /// A request was shed.
    fn on_shed(&self) {}
}

/// Marks a response (in its extensions) as a shed answer: the limit's own, or one a handler
/// gives when a resource of its own is saturated (a writer queue, a pool). An
/// [`AdaptiveLimit`] that sees it on an admitted request's response takes no sample from it:
/// the saturation of one narrower resource must not shrink the limit of a whole server whose
/// other requests are keeping up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shed;

/// The observer that observes nothing.
impl LimitObserver for () {}

struct Shared {
    aimd: aimd::Aimd,
    observer: Arc<dyn LimitObserver>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("aimd", &self.aimd)
            .finish_non_exhaustive()
    }
}

/// Sheds requests beyond the adaptive limit; built by [`LimitLayer`].
pub struct AdaptiveLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

// === impl AdaptiveLimit ===

impl<S> AdaptiveLimit<S> {
    fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
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

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AdaptiveLimit<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = future::ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let Some(in_flight) = self.shared.aimd.try_admit() else {
            self.shared.observer.on_shed();
            let retry_after = self.shared.aimd.config().retry_after;
            return future::ResponseFuture::shed(response::overloaded(
                response::is_grpc(&request),
                retry_after,
            ));
        };
        let admitted = future::Admitted {
            shared: Arc::clone(&self.shared),
            in_flight,
            start: Instant::now(),
        };
        future::ResponseFuture::admitted(self.inner.call(request), admitted)
    }
}

impl<S: Clone> Clone for AdaptiveLimit<S> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.shared))
    }
}

/// A limited gRPC service keeps its name, so that tonic's router still finds it.
impl<S: tonic::server::NamedService> tonic::server::NamedService for AdaptiveLimit<S> {
    const NAME: &'static str = S::NAME;
}

impl<S: fmt::Debug> fmt::Debug for AdaptiveLimit<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimit")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use http::{Request, Response, StatusCode};
    use tokio::sync::Notify;
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;

    #[test]
    fn a_limited_grpc_service_keeps_its_name() {
        struct Named;
        impl tonic::server::NamedService for Named {
            const NAME: &'static str = "stormproof.order.v1.OrderService";
        }
        assert_eq!(
            <AdaptiveLimit<Named> as tonic::server::NamedService>::NAME,
            "stormproof.order.v1.OrderService"
        );
    }

    #[derive(Default)]
    struct Counts {
        shed: AtomicUsize,
        limit: AtomicUsize,
    }

    impl LimitObserver for Arc<Counts> {
        fn on_limit(&self, limit: usize) {
            self.limit.store(limit, Ordering::SeqCst);
        }
        fn on_shed(&self) {
            self.shed.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn request(content_type: &str) -> Request<()> {
        Request::builder()
            .header(http::header::CONTENT_TYPE, content_type)
            .body(())
            .expect("valid request")
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_held_to_the_limit_and_the_rest_is_shed_at_once() {
        let release = Arc::new(Notify::new());
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let inner = {
            let (release, now, peak) = (release.clone(), now.clone(), peak.clone());
            service_fn(move |_: Request<()>| {
                let (release, now, peak) = (release.clone(), now.clone(), peak.clone());
                async move {
                    peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    release.notified().await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Infallible>(Response::new(String::from("served")))
                }
            })
        };
        let counts = Arc::new(Counts::default());
        let layer = LimitLayer::try_with_observer(
            LimitConfig::default().with_initial_limit(10),
            counts.clone(),
        )
        .expect("valid config");
        let service = layer.layer(inner);

        // Poll every request once: a shed one is answered at once, an admitted one waits in
        // the inner service.
        let (mut grpc_shed, mut http_shed, mut admitted) = (0, 0, Vec::new());
        for i in 0..100 {
            let content_type = if i % 2 == 0 {
                "application/grpc"
            } else {
                "application/json"
            };
            let mut call = Box::pin(service.clone().oneshot(request(content_type)));
            let response = match futures::poll!(&mut call) {
                Poll::Ready(response) => response.expect("infallible"),
                Poll::Pending => {
                    admitted.push(call);
                    continue;
                }
            };
            if response.headers().get("grpc-status").is_some() {
                assert_eq!(response.status(), StatusCode::OK);
                assert_eq!(response.headers()["grpc-status"], "8");
                assert_eq!(response.headers()["grpc-retry-pushback-ms"], "1000");
                grpc_shed += 1;
            } else {
                assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
                http_shed += 1;
            }
        }
        assert_eq!(layer.in_flight(), 10);
        assert_eq!(grpc_shed + http_shed, 90);
        assert!(grpc_shed > 0 && http_shed > 0);
        assert_eq!(counts.shed.load(Ordering::SeqCst), 90);

        release.notify_waiters();
        for call in admitted {
            assert_eq!(call.await.expect("infallible").body(), "served");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 10);
        assert_eq!(layer.in_flight(), 0);
        // Fast responses from a well-used limit grow it by one a round trip: ten answers to a
        // limit of ten are not quite one round trip of growth (1/10 + 1/10.1 + …), so the
        // whole limit holds.
        assert_eq!(layer.limit(), 10);
        assert_eq!(
            counts.limit.load(Ordering::SeqCst),
            0,
            "no change to report"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_responses_shrink_the_limit() {
        let inner = service_fn(|_: Request<()>| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok::<_, Infallible>(Response::new(String::new()))
        });
        let counts = Arc::new(Counts::default());
        let layer = LimitLayer::try_with_observer(
            LimitConfig::default().with_initial_limit(10),
            counts.clone(),
        )
        .expect("valid");
        let service = layer.layer(inner);
        service
            .clone()
            .oneshot(request("application/grpc"))
            .await
            .expect("infallible");
        assert_eq!(layer.limit(), 9);
        service
            .oneshot(request("application/grpc"))
            .await
            .expect("infallible");
        assert_eq!(layer.limit(), 8);
        assert_eq!(
            counts.limit.load(Ordering::SeqCst),
            8,
            "the observer saw the change"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_shed_by_a_narrower_limit_does_not_shrink_this_one() {
        let inner = service_fn(|request: Request<()>| async move {
            let mut response = Response::new(String::new());
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            if request.headers().contains_key("x-shed") {
                response.extensions_mut().insert(Shed);
            }
            Ok::<_, Infallible>(response)
        });
        let layer =
            LimitLayer::try_new(LimitConfig::default().with_initial_limit(10)).expect("valid");
        let service = layer.layer(inner);
        let call = |shed: bool| {
            let mut request = request("application/json");
            if shed {
                request
                    .headers_mut()
                    .insert("x-shed", http::HeaderValue::from_static("1"));
            }
            service.clone().oneshot(request)
        };
        for _ in 0..5 {
            call(true).await.expect("infallible");
        }
        assert_eq!(layer.limit(), 10, "marked answers are no sample");
        assert_eq!(layer.in_flight(), 0, "their places were freed");
        call(false).await.expect("infallible");
        assert_eq!(
            layer.limit(),
            9,
            "an unmarked 503 says the server is overloaded"
        );
    }
}
