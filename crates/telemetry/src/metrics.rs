//! The Prometheus recorder, with histogram buckets chosen for RPC latencies.
//!
//! Services record through the `metrics` facade (`counter!`, `histogram!`, ...) and describe
//! their own series; this module installs the recorder once per process, names the buckets every
//! `*_seconds` histogram shares, and exports `build_info` and the `process_*` series.
//!
//! With `OTEL_METRICS_EXPORTER=none` no recorder is installed: the facade's macros then reach
//! its no-op recorder, which is what "metrics off" costs (label values are still built), and
//! [`render`] says that metrics are off instead of serving an exposition that looks empty by
//! accident.

use std::{
    sync::{
        LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets of every `*_seconds` series, in seconds: 1 ms to 10 s. They resolve a
/// healthy sub-millisecond to few-millisecond call, a 200 ms injected latency, a 1 s deadline and
/// a hang cut at 10 s; a 300 ms SLO threshold falls between 0.25 and 0.5 (p99 is interpolated).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histograms are compacted when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// `process_*` series (CPU, memory, file descriptors, start time), refreshed at each scrape.
static PROCESS: LazyLock<metrics_process::Collector> = LazyLock::new(|| {
    let collector = metrics_process::Collector::default();
    collector.describe();
    collector
});

/// Set once when this process runs without a recorder (one recorder per process, so one flag).
static OFF: AtomicBool = AtomicBool::new(false);

/// What `/metrics` answers while metrics are off: a valid, empty exposition that says why.
pub const OFF_EXPOSITION: &str = "# metrics are off in this process (OTEL_METRICS_EXPORTER=none)\n";

/// A handle on a recorder that is never installed, so nothing is recorded, and marks this
/// process as having metrics off.
pub(crate) fn disabled() -> PrometheusHandle {
    OFF.store(true, Ordering::Relaxed);
    PrometheusBuilder::new().build_recorder().handle()
}

pub(crate) fn install(version: &'static str) -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)?
        .install_recorder()?;
    metrics::describe_gauge!(
        "build_info",
        "Always 1; the `version` label is the running build's version"
    );
    metrics::gauge!("build_info", "version" => version).set(1.0);
    LazyLock::force(&PROCESS);
    Ok(handle)
}

/// The Prometheus text exposition of every series, with `process_*` refreshed first; with
/// metrics off, [`OFF_EXPOSITION`].
pub fn render(handle: &PrometheusHandle) -> String {
    if OFF.load(Ordering::Relaxed) {
        return OFF_EXPOSITION.to_owned();
    }
    PROCESS.collect();
    handle.render()
}

pub(crate) fn spawn_upkeep(handle: PrometheusHandle) -> Option<tokio::task::JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(runtime.spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    }))
}
