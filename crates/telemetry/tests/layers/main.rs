//! The layers end to end: real tonic and axum servers on loopback, spans exported over real
//! OTLP to an in-process receiver. nextest runs each test in its own process, so each installs
//! its own telemetry.

mod grpc;
mod http;
mod quiet;
mod switches;

use std::{
    io::Write,
    sync::{Mutex, OnceLock},
};

use serde_json::Value;
use stormproof_telemetry::{ServiceInfo, TelemetryArgs, TelemetryGuard};

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
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
        stormproof_telemetry::init_with_writer(&args, SERVICE, || Sink)
            .expect("telemetry installs once per test process")
    })
}

/// The JSON log lines written so far.
fn logged() -> Vec<Value> {
    let bytes = LOGS.lock().map(|logs| logs.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
        .collect()
}

struct Sink;

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = LOGS.lock() {
            logs.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
