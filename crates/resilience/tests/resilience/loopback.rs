//! A tonic client through the composed stack (deadline → retry → breaker → bulkhead) against
//! a real tonic server on loopback whose failures are scripted; and the adaptive limit in a
//! real tonic server, answering a real tonic client.
//!
//! These run on the real clock with short durations: tokio's paused clock auto-advances
//! while every task waits on socket I/O, which would fire deadlines early.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use resilience::{
    BoxError, GrpcClassifier,
    breaker::{BreakerConfig, BreakerLayer, BreakerOpen, SlidingWindow, State},
    bulkhead::{BulkheadConfig, BulkheadLayer},
    deadline::{DeadlineConfig, DeadlineLayer, WithDeadline},
    is_caused_by,
    limit::{LimitConfig, LimitLayer},
    retry::{RetryConfig, RetryLayer},
};
use tokio::{net::TcpListener, sync::Notify};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{
    Code, Request, Response, Status,
    transport::{Channel, Server},
};
use tonic_health::pb::{
    HealthCheckRequest, HealthCheckResponse,
    health_check_response::ServingStatus,
    health_client::HealthClient,
    health_server::{Health, HealthServer},
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// A health service that fails with `UNAVAILABLE` while `failing` is set, and otherwise
/// answers after waiting for `gate` (when given). Each call notifies `arrived`.
#[derive(Clone, Default)]
struct Scripted {
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    arrived: Arc<Notify>,
    gate: Option<Arc<Notify>>,
    /// The `grpc-timeout` of the last call, as received.
    timeout: Arc<std::sync::Mutex<Option<Duration>>>,
}

#[tonic::async_trait]
impl Health for Scripted {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let timeout = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|value| resilience::deadline::parse_grpc_timeout(value.to_str().ok()?).ok());
        *self.timeout.lock().expect("not poisoned") = timeout;
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_one();
        if self.failing.load(Ordering::SeqCst) {
            return Err(Status::unavailable("scripted outage"));
        }
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}

async fn listener() -> (TcpListenerStream, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    (TcpListenerStream::new(listener), addr)
}

async fn client(addr: SocketAddr) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connect to loopback");
    HealthClient::new(channel)
}

/// The composed client stack the order service builds around its payment client.
fn stack(
    client: HealthClient<Channel>,
    breaker: BreakerLayer<GrpcClassifier>,
) -> impl Service<
    WithDeadline<HealthCheckRequest>,
    Response = Response<HealthCheckResponse>,
    Error = BoxError,
> + Clone {
    let check = service_fn(move |request: WithDeadline<HealthCheckRequest>| {
        let mut client = client.clone();
        async move { client.check(request.into_tonic_request()).await }
    });
    let retry = RetryConfig::default().with_max_attempts(2).with_backoff(
        Duration::from_millis(1),
        2.0,
        Duration::from_millis(5),
    );
    ServiceBuilder::new()
        .layer(DeadlineLayer::try_new(DeadlineConfig::default()).expect("valid"))
        .layer(RetryLayer::try_new(retry, GrpcClassifier::new()).expect("valid"))
        .layer(breaker)
        .layer(BulkheadLayer::try_new(BulkheadConfig::default()).expect("valid"))
        .service(check)
}

async fn check<S>(stack: &S) -> Result<Response<HealthCheckResponse>, BoxError>
where
    S: Service<
            WithDeadline<HealthCheckRequest>,
            Response = Response<HealthCheckResponse>,
            Error = BoxError,
        > + Clone,
{
    let request = HealthCheckRequest {
        service: String::new(),
    };
    stack.clone().oneshot(WithDeadline::new(request)).await
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_closes_after_recovery() {
    let health = Scripted::default();
    let (incoming, addr) = listener().await;
    tokio::spawn(
        Server::builder()
            .add_service(HealthServer::new(health.clone()))
            .serve_with_incoming(incoming),
    );

    let wait = Duration::from_millis(300);
    let config = BreakerConfig::default()
        .with_window(SlidingWindow::Count(10))
        .with_minimum_calls(4)
        .with_failure_rate_threshold(0.5)
        .with_wait_duration(wait)
        .with_wait_jitter(0.0)
        .with_half_open_calls(2);
    let breaker = BreakerLayer::try_new(config, GrpcClassifier::new()).expect("valid config");
    let handle = breaker.handle();
    let stack = stack(client(addr).await, breaker);

    for _ in 0..4 {
        check(&stack).await.expect("the dependency is healthy");
    }
    assert_eq!(handle.state(), State::Closed);

    // Outage: each request is tried twice (retry) and every attempt counts in the breaker.
    health.failing.store(true, Ordering::SeqCst);
    let mut requests = 0;
    while handle.state() == State::Closed {
        let error = check(&stack).await.expect_err("outage");
        let status = resilience::find_cause::<Status>(&*error).expect("a gRPC status");
        assert_eq!(status.code(), Code::Unavailable);
        requests += 1;
        assert!(requests <= 4, "the breaker should have opened by now");
    }
    assert_eq!(handle.state(), State::Open);

    // Open: fail fast, without reaching the server and without retrying.
    let reached = health.calls.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    for _ in 0..20 {
        let error = check(&stack).await.expect_err("open");
        assert!(is_caused_by::<BreakerOpen>(&*error), "{error}");
        assert_eq!(
            Status::from(*resilience::find_cause::<BreakerOpen>(&*error).expect("open")).code(),
            Code::Unavailable
        );
    }
    assert_eq!(
        health.calls.load(Ordering::SeqCst),
        reached,
        "no call reached the server"
    );
    assert!(
        started.elapsed() < wait,
        "20 rejections took {:?}",
        started.elapsed()
    );

    // Recovery: after the wait, two trial calls succeed and the breaker closes.
    health.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(wait.saturating_sub(started.elapsed()) + Duration::from_millis(20)).await;
    check(&stack).await.expect("first trial");
    assert_eq!(handle.state(), State::HalfOpen);
    check(&stack).await.expect("second trial");
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(health.calls.load(Ordering::SeqCst), reached + 2);
}

#[tokio::test]
async fn a_deadline_reaches_the_server_as_grpc_timeout_and_bounds_the_call() {
    let gate = Arc::new(Notify::new());
    let health = Scripted {
        gate: Some(gate.clone()),
        ..Scripted::default()
    };
    let (incoming, addr) = listener().await;
    tokio::spawn(
        Server::builder()
            .add_service(HealthServer::new(health.clone()))
            .serve_with_incoming(incoming),
    );

    let breaker =
        BreakerLayer::try_new(BreakerConfig::default(), GrpcClassifier::new()).expect("valid");
    let stack = stack(client(addr).await, breaker);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    let request = WithDeadline::due_by(
        HealthCheckRequest {
            service: String::new(),
        },
        deadline,
    );
    let error = stack
        .oneshot(request)
        .await
        .expect_err("the server never answers");
    // The deadline layer's timer or tonic's channel (enforcing the grpc-timeout the layer
    // wrote on the request) gave up; either way the caller sees DeadlineExceeded.
    assert!(
        is_caused_by::<resilience::deadline::DeadlineExceeded>(&*error),
        "{error}"
    );
    assert!(
        tokio::time::Instant::now() < deadline + Duration::from_secs(1),
        "bounded by the deadline"
    );
    let received = *health.timeout.lock().expect("not poisoned");
    let received = received.expect("the server received a grpc-timeout");
    assert!(
        received > Duration::from_millis(50) && received <= Duration::from_millis(100),
        "the server was given the time remaining, got {received:?}"
    );
}

#[tokio::test]
async fn the_adaptive_limit_sheds_with_resource_exhausted_in_a_tonic_server() {
    let gate = Arc::new(Notify::new());
    let health = Scripted {
        gate: Some(gate.clone()),
        ..Scripted::default()
    };
    let limit = LimitLayer::try_new(
        LimitConfig::default()
            .with_initial_limit(1)
            .with_bounds(1, 1),
    )
    .expect("valid config");
    let (incoming, addr) = listener().await;
    let server = Server::builder()
        .layer(limit.clone())
        .add_service(HealthServer::new(health.clone()));
    tokio::spawn(server.serve_with_incoming(incoming));

    let mut first_client = client(addr).await;
    let first = tokio::spawn(async move {
        first_client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
    });
    health.arrived.notified().await; // the first call holds the only slot
    assert_eq!(limit.in_flight(), 1);

    let status = client(addr)
        .await
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect_err("shed");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status
            .metadata()
            .get("grpc-retry-pushback-ms")
            .map(|v| v.to_str().ok()),
        Some(Some("1000"))
    );
    assert_eq!(
        health.calls.load(Ordering::SeqCst),
        1,
        "the shed call never reached the handler"
    );

    gate.notify_one();
    first
        .await
        .expect("no panic")
        .expect("the admitted call is served");
}
