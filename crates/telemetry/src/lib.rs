//! Telemetry for Stormproof's services, in one call: [`init`].
//!
//! - [`config`]: [`TelemetryArgs`], the flags and standard `OTEL_*` variables a binary flattens
//!   into its own clap `Config`.
//! - [`metrics`]: the Prometheus recorder (RPC latency buckets 1 ms … 10 s), `build_info` and
//!   `process_*`; none at all with `OTEL_METRICS_EXPORTER=none`.
//! - `logs` (private): JSON log lines that carry the OpenTelemetry `trace_id` and `span_id`.
//! - `traces` (private): the OTLP/gRPC span exporter and sampler, from the standard variables.
//! - [`grpc`]: tower layers for tonic servers and clients: a span per call with the OTel RPC
//!   attributes, W3C `traceparent` extracted or injected, and the `rpc_*_call_duration_seconds`
//!   histograms.
//! - [`http`]: the same for an axum HTTP server (`http_server_request_duration_seconds`).
//! - `testing` (feature `testing`): an in-process OTLP receiver for tests.
//!
//! The crate knows nothing of orders or payments: span and metric names follow OpenTelemetry's
//! semantic conventions, spelled the Prometheus way for metrics.
//!
//! Why these pieces and not a ready-made middleware: `tower-http`'s `TraceLayer` makes spans but
//! neither propagates W3C context nor reads a gRPC status from trailers, and no maintained crate
//! for tonic 0.14 records the OTel RPC attributes and histograms together; the layers here are
//! small (one body wrapper shared by server and client) and tested end to end.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod config;
pub mod grpc;
pub mod http;
mod logs;
pub mod metrics;
mod propagation;
#[cfg(feature = "testing")]
pub mod testing;
mod traces;

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{Layer as _, fmt::MakeWriter, layer::SubscriberExt as _};

pub use config::{LogFormat, MetricsExporter, SamplerKind, TelemetryArgs};

/// What a service says about itself: its name (the default `service.name`) and version (the
/// `build_info{version}` label and `service.version` resource attribute).
#[derive(Debug, Clone, Copy)]
pub struct ServiceInfo {
    /// Default `service.name`; `OTEL_SERVICE_NAME` overrides it.
    pub name: &'static str,
    /// Usually `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
}

/// Why [`init`] failed. Each is a start-up failure: the binary logs it and exits.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The Prometheus recorder could not be built or installed (one per process).
    #[error("cannot install the metrics recorder")]
    Metrics(#[source] metrics_exporter_prometheus::BuildError),
    /// The OTLP exporter could not be built (a malformed endpoint, say).
    #[error("cannot build the OTLP span exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The log filter does not parse.
    #[error("invalid log filter")]
    LogFilter(#[source] tracing_subscriber::filter::ParseError),
    /// A global tracing subscriber was already set (one per process).
    #[error("cannot install the tracing subscriber")]
    Subscriber(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs metrics, logs and traces for this process and returns the guard that flushes them.
///
/// Call it once, early in `main`, from inside the tokio runtime (the OTLP exporter's channel
/// and the metrics upkeep task live on it). Log lines go to stdout.
pub fn init(args: &TelemetryArgs, service: ServiceInfo) -> Result<TelemetryGuard, InitError> {
    init_with_writer(args, service, std::io::stdout)
}

/// [`init`] for a `main`: a failure is printed to stderr with its cause, and comes back as
/// the exit code to return (there is no logger to report it through yet).
pub fn init_or_report(
    args: &TelemetryArgs,
    service: ServiceInfo,
) -> Result<TelemetryGuard, std::process::ExitCode> {
    init(args, service).map_err(|error| {
        let cause = std::error::Error::source(&error).map(ToString::to_string);
        eprintln!("error: {error}: {}", cause.unwrap_or_default());
        std::process::ExitCode::FAILURE
    })
}

/// [`init`] with the log sink injected, so that tests can stay quiet or read what was logged.
pub fn init_with_writer<W>(
    args: &TelemetryArgs,
    service: ServiceInfo,
    writer: W,
) -> Result<TelemetryGuard, InitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (prometheus, upkeep) = match args.otel_metrics_exporter {
        MetricsExporter::Prometheus => {
            let prometheus = metrics::install(service.version).map_err(InitError::Metrics)?;
            let upkeep = metrics::spawn_upkeep(prometheus.clone());
            (prometheus, upkeep)
        }
        MetricsExporter::None => (metrics::disabled(), None),
    };

    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer_provider = traces::provider(args, service).map_err(InitError::Exporter)?;
    let otel_layer = tracer_provider
        .as_ref()
        .map(|provider| traces::layer(provider, service).with_filter(traces::span_filter()));

    let log_filter = logs::filter(&args.log_filter).map_err(InitError::LogFilter)?;
    let log_layer = logs::layer(args.log_format, writer).with_filter(log_filter);
    let subscriber = tracing_subscriber::registry()
        .with(otel_layer)
        .with(log_layer);
    tracing_subscriber::util::SubscriberInitExt::try_init(subscriber)
        .map_err(InitError::Subscriber)?;

    Ok(TelemetryGuard {
        prometheus,
        tracer_provider,
        upkeep,
    })
}

/// Keeps telemetry running; flushes and stops it on [`shutdown`](Self::shutdown) or drop.
#[derive(Debug)]
pub struct TelemetryGuard {
    prometheus: PrometheusHandle,
    tracer_provider: Option<SdkTracerProvider>,
    upkeep: Option<tokio::task::JoinHandle<()>>,
}

/// How long the final flush of spans may take. With no collector listening the exporter would
/// otherwise wait out its own timeout on every retry and hold up the process exit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

impl TelemetryGuard {
    /// The handle that renders the Prometheus text exposition, for the ops router.
    pub fn prometheus(&self) -> PrometheusHandle {
        self.prometheus.clone()
    }

    /// Flushes pending spans (bounded by a few seconds) and stops the exporters. Idempotent.
    pub fn shutdown(&mut self) {
        if let Some(upkeep) = self.upkeep.take() {
            upkeep.abort();
        }
        if let Some(provider) = self.tracer_provider.take() {
            // The batch processor exports from its own thread through a tonic channel that runs
            // on this runtime: on a current-thread runtime, blocking here would starve it.
            let flush = move || {
                if let Err(error) = provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
                    eprintln!("telemetry: trace export shutdown: {error}");
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(handle)
                    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
                {
                    tokio::task::block_in_place(flush);
                }
                _ => {
                    let _ = std::thread::spawn(flush).join();
                }
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}
