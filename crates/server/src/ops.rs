//! The ops listener's router: `/metrics`, `/healthz` and `/readyz`.
//!
//! Liveness says only that the process serves; readiness says it should get traffic, and never
//! depends on a downstream being healthy (that is how one failing service takes its callers out
//! of rotation and cascades). A service merges its own routes (an admin API behind
//! [`bearer_auth`](crate::admin::bearer_auth)) into this router.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
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
        telemetry::metrics::render(&state.prometheus),
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
