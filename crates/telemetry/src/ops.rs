//! What operators talk to: the ops listener's router (`/metrics`, `/healthz`, `/readyz`), the
//! guard of an admin API, the error body every HTTP edge answers with, the signal that starts
//! a drain, and [`Servers`], which runs a process's servers and drains them.
//!
//! Liveness says only that the process serves; readiness says it should get traffic, and never
//! depends on a downstream being healthy (that is how one failing service takes its callers out
//! of rotation and cascades). A service merges its own routes (an admin API behind
//! [`bearer_auth`]) into this router.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::json;

/// Whether the service should receive traffic: false until it is up, false again once it
/// drains. Cheap to clone; every clone shares the flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A latch that starts not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the service ready (after its listeners and store are up) or not (while draining).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Debug, Clone)]
struct OpsState {
    prometheus: PrometheusHandle,
    readiness: Readiness,
}

/// `/metrics` (Prometheus text), `/healthz` (always 200 while serving) and `/readyz` (200 or
/// 503 from `readiness`).
pub fn router(prometheus: PrometheusHandle, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(OpsState {
            prometheus,
            readiness,
        })
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&state.prometheus),
    )
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready" })),
        )
    }
}

/// Guards every route of `router` with `Authorization: Bearer <token>`: anything else is 401
/// with a problem body and `WWW-Authenticate: Bearer`. The comparison takes the same time
/// wherever the tokens differ, and whatever their lengths. An empty `token` (an `ADMIN_TOKEN=`
/// left blank) authorizes nothing: the routes exist and answer 401 to everyone.
pub fn bearer_auth(router: Router, token: SecretString) -> Router {
    router.route_layer(middleware::from_fn_with_state(Arc::new(token), authorize))
}

async fn authorize(
    State(token): State<Arc<SecretString>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(presented)
            if !token.expose_secret().is_empty()
                && constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes()) =>
        {
            next.run(request).await
        }
        _ => {
            let mut response = problem(
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer <ADMIN_TOKEN>` header is required",
                &[] as &[()],
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Compares `presented` with the `expected` token without an early exit, so the time taken
/// says nothing about the token: not where the first difference is, nor how long the token is.
/// The loop always walks the expected token's length (fixed for the process) and reads the
/// presented bytes it has, zero past its end; a length difference is folded in at the end
/// rather than checked first (a first check would tell a caller the token's length). The
/// accumulator goes through `black_box` so the optimiser cannot turn the fold into an early
/// return. No crate needed: `subtle`'s slice comparison returns early on a length mismatch.
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(presented.len() != expected.len());
    for (index, byte) in expected.iter().enumerate() {
        let other = presented.get(index).copied().unwrap_or(0);
        difference = std::hint::black_box(difference | (byte ^ other));
    }
    difference == 0
}

/// An RFC 9457 problem details response (`application/problem+json`): `type`, `title`,
/// `status`, `detail`, and `errors` (one entry per refused field) when there are any.
pub fn problem<E: Serialize>(status: StatusCode, detail: &str, errors: &[E]) -> Response {
    let mut body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The largest body an admin change may have: settings are a few dozen bytes.
pub const ADMIN_BODY_LIMIT: usize = 16 * 1024;

/// The body of an admin change, as an extractor: one rule for every admin API. The request
/// must say `Content-Type: application/json` (parameters such as `; charset=utf-8` allowed;
/// `application/jsonp` or no type at all is refused, 415) and carry at most
/// [`ADMIN_BODY_LIMIT`] bytes (413). Both refusals are problem details, like every other
/// refusal of the API, so a client reads one error shape.
#[derive(Debug, Clone)]
pub struct AdminJson(pub bytes::Bytes);

/// Whether `headers` declare a JSON body: the media type `application/json`, whatever its
/// parameters, compared case-insensitively as RFC 9110 says.
pub fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for AdminJson {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Response> {
        let none: &[serde_json::Value] = &[];
        if !is_json(request.headers()) {
            return Err(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be `application/json` (Content-Type: application/json)",
                none,
            ));
        }
        let too_large = || {
            problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body must be at most {ADMIN_BODY_LIMIT} bytes"),
                none,
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > ADMIN_BODY_LIMIT as u64) {
            return Err(too_large());
        }
        match axum::body::to_bytes(request.into_body(), ADMIN_BODY_LIMIT).await {
            Ok(body) => Ok(Self(body)),
            // Past the limit (a chunked body that declared no length), or cut short: either
            // way nothing was changed, and a length error is by far the likelier.
            Err(_) => Err(too_large()),
        }
    }
}

/// `error` and each of its sources, joined by `: `: tonic's and rustls's errors say little at
/// the top and what was refused further down.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// EX_USAGE (sysexits.h): the command line or environment is wrong; nothing was started.
pub const EXIT_USAGE: u8 = 64;

/// Parses the command line and environment into `C`. `--help` and `--version` print and end
/// with 0; a bad flag or value prints why and ends with [`EXIT_USAGE`], before anything has
/// started. A `main` returns the `Err` as its exit code.
pub fn parse_args<C: clap::Parser>() -> Result<C, std::process::ExitCode> {
    C::try_parse().map_err(|error| {
        let _ = error.print(); // help and version go to stdout, errors to stderr
        if error.use_stderr() {
            std::process::ExitCode::from(EXIT_USAGE)
        } else {
            std::process::ExitCode::SUCCESS
        }
    })
}

/// An error a server or background task ended with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server (or background task) that stopped by itself, or failed while draining.
#[derive(Debug, thiserror::Error)]
#[error("the {server} server failed")]
pub struct ServeError {
    server: &'static str,
    #[source]
    source: BoxError,
}

/// The servers and background tasks of one process, and their graceful shutdown.
///
/// Each is spawned with a name and told to stop through [`stopping`](Self::stopping) (for
/// `with_graceful_shutdown` / `serve_with_incoming_shutdown`) or [`token`](Self::token). Then
/// [`run_until`](Self::run_until) waits for the shutdown signal, or for any of them to stop
/// by itself (which is a failure), and drains: out of rotation first, then every server stops
/// accepting and finishes what it has in flight, within the grace period; past it, what is
/// left is cut.
#[derive(Debug, Default)]
pub struct Servers {
    tasks: tokio::task::JoinSet<(&'static str, Result<(), BoxError>)>,
    stop: tokio_util::sync::CancellationToken,
}

impl Servers {
    /// No servers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves when the drain begins: the shutdown future to give each server.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    /// Cancelled when the drain begins, for background tasks.
    pub fn token(&self) -> tokio_util::sync::CancellationToken {
        self.stop.clone()
    }

    /// Runs `server` as `name` until it returns.
    pub fn spawn<F, E>(&mut self, name: &'static str, server: F)
    where
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.tasks
            .spawn(async move { (name, server.await.map_err(Into::into)) });
    }

    /// Serves until `shutdown` resolves or a server stops by itself, then drains: awaits
    /// `leave_rotation` (readiness and health say "not serving"), stops every server and
    /// task, and waits for them up to `grace`. Returns the first failure, if any.
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
        grace: std::time::Duration,
        leave_rotation: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let mut failure = None;
        tokio::select! {
            () = shutdown => tracing::info!("server.shutdown_requested"),
            Some(stopped) = self.tasks.join_next() => {
                failure = failed(stopped);
                tracing::error!("server.stopped_early");
            }
        }
        leave_rotation.await;
        self.stop.cancel();
        let drained = tokio::time::timeout(grace, async {
            while let Some(stopped) = self.tasks.join_next().await {
                if failure.is_none() {
                    failure = failed(stopped);
                }
            }
        })
        .await
        .is_ok();
        if drained {
            tracing::info!("server.drained");
        } else {
            tracing::warn!(grace_seconds = grace.as_secs_f64(), "server.drain_forced");
            self.tasks.abort_all();
        }
        failure.map_or(Ok(()), Err)
    }
}

fn failed(
    stopped: Result<(&'static str, Result<(), BoxError>), tokio::task::JoinError>,
) -> Option<ServeError> {
    match stopped {
        Ok((_, Ok(()))) => None,
        Ok((server, Err(source))) => Some(ServeError { server, source }),
        Err(join) => Some(ServeError {
            server: "a",
            source: Box::new(join),
        }),
    }
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes sends before it kills a pod). Call it
/// before the server reports ready: the handlers are installed by the call.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    // The handlers are installed now, not when the future is first polled: a SIGTERM that
    // arrives between "ready" and the first poll must drain the server, not kill it.
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| {
            signal(kind)
                .inspect_err(|error| {
                    tracing::warn!(
                        error = error as &dyn std::error::Error,
                        "signal.handler_unavailable"
                    );
                })
                .ok()
        };
        (
            install(SignalKind::terminate()),
            install(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut terminate, mut interrupt) = signals;
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(terminate.take()) => {}
                () = wait(interrupt.take()) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::Request, routing::get};
    use secrecy::SecretString;
    use tower::ServiceExt as _;

    use super::{ADMIN_BODY_LIMIT, AdminJson, bearer_auth, constant_time_eq};

    async fn status(token: &str, authorization: &str) -> u16 {
        let router = bearer_auth(
            Router::new().route("/admin", get(|| async { "ok" })),
            SecretString::from(token.to_owned()),
        );
        let request = Request::get("/admin")
            .header("authorization", authorization)
            .body(Body::empty())
            .expect("request");
        router
            .oneshot(request)
            .await
            .expect("answered")
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn only_the_exact_bearer_token_passes_and_an_empty_one_never_does() {
        assert_eq!(status("s3cret", "Bearer s3cret").await, 200);
        assert_eq!(status("s3cret", "Bearer s3cre").await, 401);
        assert_eq!(status("s3cret", "bearer s3cret").await, 401);
        assert_eq!(status("s3cret", "Basic s3cret").await, 401);
        assert_eq!(status("", "Bearer ").await, 401);
    }

    /// One admin body rule: `application/json` with any parameters and any case, else 415;
    /// at most ADMIN_BODY_LIMIT bytes, declared or not, else 413; both as problem details.
    #[tokio::test]
    async fn the_admin_body_rule_takes_json_only_and_bounds_its_size() {
        async fn answer(content_type: Option<&str>, body: Vec<u8>, chunked: bool) -> (u16, String) {
            let router = Router::new().route(
                "/admin",
                axum::routing::put(
                    |AdminJson(body): AdminJson| async move { body.len().to_string() },
                ),
            );
            let mut request = Request::put("/admin");
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let body = if chunked {
                Body::from_stream(futures_stream(body))
            } else {
                Body::from(body)
            };
            let response = router
                .oneshot(request.body(body).expect("request"))
                .await
                .expect("answered");
            let kind = response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (response.status().as_u16(), kind)
        }
        fn futures_stream(
            body: Vec<u8>,
        ) -> impl tokio_stream::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
            tokio_stream::iter(
                body.chunks(1024)
                    .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            )
        }
        let json = br#"{"state": "closed"}"#.to_vec();
        let problem = "application/problem+json".to_owned();
        for refused in [
            None,
            Some("application/jsonp"),
            Some("text/plain"),
            Some("json"),
        ] {
            assert_eq!(
                answer(refused, json.clone(), false).await,
                (415, problem.clone()),
                "{refused:?}"
            );
        }
        let large = vec![b' '; ADMIN_BODY_LIMIT + 1];
        for chunked in [false, true] {
            assert_eq!(
                answer(Some("application/json"), large.clone(), chunked).await,
                (413, problem.clone()),
                "chunked: {chunked}"
            );
        }
        for taken in ["application/json", "Application/JSON; charset=utf-8"] {
            assert_eq!(
                answer(Some(taken), json.clone(), false).await.0,
                200,
                "{taken}"
            );
        }
        let fits = vec![b' '; ADMIN_BODY_LIMIT];
        assert_eq!(answer(Some("application/json"), fits, true).await.0, 200);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"S3cret"));
        // Longer, shorter, a prefix, an extension, padded with zero bytes, empty.
        assert!(!constant_time_eq(b"s3cret!", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret\0", b"s3cret"));
        assert!(!constant_time_eq(b"s3cre\0", b"s3cret\0"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
