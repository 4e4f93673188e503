//! No collector listening: spans are dropped quietly and stopping is not held up.

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_collector_is_quiet_and_harmless() {
    // Bind then drop a listener: a loopback port where nothing listens.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let args = stormproof_telemetry::TelemetryArgs {
        otel_exporter_otlp_endpoint: format!("http://{closed}"),
        ..stormproof_telemetry::TelemetryArgs::default()
    };
    let mut guard = stormproof_telemetry::init_with_writer(&args, super::SERVICE, || {
        stormproof_telemetry::testing::LogSink
    })
    .expect("init");

    for call in 0..100 {
        let span = tracing::info_span!("work", call);
        let _entered = span.enter();
        tracing::info!("work.done");
    }
    // Let the batch processor try (and fail) to export at least once.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let started = Instant::now();
    guard.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopping is bounded: {:?}",
        started.elapsed()
    );

    let lines = super::logged();
    assert_eq!(
        lines
            .iter()
            .filter(|line| line["message"] == "work.done")
            .count(),
        100,
        "our own lines are all there"
    );
    let noisy: Vec<_> = lines
        .iter()
        .filter(|line| line["message"] != "work.done")
        .collect();
    assert!(
        noisy.is_empty(),
        "nothing about the missing collector: {noisy:?}"
    );
}
