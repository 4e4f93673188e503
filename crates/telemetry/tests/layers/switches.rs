//! The standard switches: `OTEL_SDK_DISABLED` and `OTEL_TRACES_SAMPLER` do what they say.

use stormproof_telemetry::{SamplerKind, TelemetryArgs, testing::OtlpReceiver};
use tracing::Instrument as _;

/// The names of the spans exported while `args` are in force (pointed at a live receiver) and a
/// traced piece of work runs. The work's span is made after init: a span made before any
/// subscriber exists is disabled for good.
async fn exported_with(mut args: TelemetryArgs) -> Vec<String> {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    args.otel_exporter_otlp_endpoint = receiver.endpoint();
    let mut guard = stormproof_telemetry::init_with_writer(&args, super::SERVICE, || {
        stormproof_telemetry::testing::LogSink
    })
    .expect("init");
    async {
        tracing::info!("inside.span");
    }
    .instrument(tracing::info_span!("work"))
    .await;
    guard.shutdown(); // returns once the receiver has acknowledged the export
    receiver.spans().into_iter().map(|span| span.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_sdk_exports_nothing_and_logs_no_trace_ids() {
    let args = TelemetryArgs {
        otel_sdk_disabled: true,
        ..TelemetryArgs::default()
    };
    let exported = exported_with(args).await;
    assert!(exported.is_empty(), "{exported:?}");
    let line = super::logged()
        .into_iter()
        .find(|line| line["message"] == "inside.span")
        .expect("the line is still logged");
    assert!(line.get("trace_id").is_none(), "{line}");
    assert_eq!(line["spans"][0]["name"], "work", "spans still give context");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sampler_follows_otel_traces_sampler() {
    let args = TelemetryArgs {
        otel_traces_sampler: SamplerKind::AlwaysOff,
        ..TelemetryArgs::default()
    };
    let exported = exported_with(args).await;
    assert!(
        exported.is_empty(),
        "always_off records nothing: {exported:?}"
    );
    let line = super::logged()
        .into_iter()
        .find(|line| line["message"] == "inside.span")
        .expect("logged");
    assert_eq!(
        line["trace_id"].as_str().map(str::len),
        Some(32),
        "an unsampled trace still has an id to correlate logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_sampler_records_new_traces() {
    let exported = exported_with(TelemetryArgs::default()).await;
    assert_eq!(
        exported,
        ["work"],
        "parentbased_always_on records a root span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_installs_no_recorder_and_metrics_says_so() {
    use server::ops;
    use stormproof_telemetry::{MetricsExporter, metrics::OFF_EXPOSITION};
    use tower::ServiceExt as _;

    let args = TelemetryArgs {
        otel_sdk_disabled: true,
        otel_metrics_exporter: MetricsExporter::None,
        ..TelemetryArgs::default()
    };
    let guard = stormproof_telemetry::init_with_writer(&args, super::SERVICE, || {
        stormproof_telemetry::testing::LogSink
    })
    .expect("init");
    metrics::counter!("recorded_nowhere_total").increment(1);

    let response = ops::router(guard.prometheus(), ops::Readiness::new())
        .oneshot(
            http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("the router answers");
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    assert_eq!(
        body,
        OFF_EXPOSITION.as_bytes(),
        "no series, and a comment why"
    );
    assert!(
        metrics::set_global_recorder(metrics::NoopRecorder).is_ok(),
        "no recorder was installed: every metric call was a no-op"
    );
}
