//! The layers end to end: real tonic and axum servers on loopback, spans exported over real
//! OTLP to an in-process receiver. nextest runs each test in its own process, so each installs
//! its own telemetry.

mod grpc;
mod http;
mod quiet;
mod switches;

use std::sync::OnceLock;

use serde_json::Value;
use stormproof_telemetry::{ServiceInfo, TelemetryArgs, TelemetryGuard, testing::LogSink};

static GUARD: OnceLock<TelemetryGuard> = OnceLock::new();

const SERVICE: ServiceInfo = ServiceInfo {
    name: "layers-test",
    version: "1.2.3",
};

/// Installs telemetry exporting to `endpoint`; log lines are kept for [`logged`].
fn init(endpoint: String) -> &'static TelemetryGuard {
    GUARD.get_or_init(|| {
        let args = TelemetryArgs {
            otel_exporter_otlp_endpoint: endpoint,
            ..TelemetryArgs::default()
        };
        stormproof_telemetry::init_with_writer(&args, SERVICE, || LogSink)
            .expect("telemetry installs once per test process")
    })
}

/// The JSON log lines written so far.
fn logged() -> Vec<Value> {
    stormproof_telemetry::testing::logged()
}
