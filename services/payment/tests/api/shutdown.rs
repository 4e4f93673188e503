//! The real binary, stopped by a real SIGTERM while calls are in flight.

use std::time::Duration;

use contracts::payment::v1::payment_service_client::PaymentServiceClient;
use futures::future::join_all;
use testkit::Process;

use crate::helpers::{charge, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_twenty_slow_calls_finish_then_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("payment.db");
    let database = format!("sqlite://{}", database.to_str().expect("utf-8 path"));
    let mut process = Process::start(
        env!("CARGO_BIN_EXE_payment"),
        &[
            "--grpc-addr",
            "127.0.0.1:0",
            "--ops-addr",
            "127.0.0.1:0",
            "--database-url",
            &database,
            "--latency-ms",
            "1500",
            "--shutdown-grace",
            "10s",
        ],
        &[],
    )
    .await
    .expect("the payment binary starts");
    let (grpc_addr, ops_addr) = (process.addr("grpc_addr"), process.addr("ops_addr"));

    let client = PaymentServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .expect("connect");
    let calls = tokio::spawn(join_all((0..20).map(|call| {
        let mut client = client.clone();
        async move {
            client
                .process_payment(charge(&format!("ord-drain-{call}"), 100))
                .await
        }
    })));

    // All 20 are in flight once each has had its latency applied.
    let http = reqwest::Client::new();
    let in_flight = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let url = format!("http://{ops_addr}/metrics");
            let metrics = testkit::metrics::scrape(&http, &url).await;
            if sample(
                &metrics,
                "payment_fault_injected_total",
                &[("kind", "latency")],
            ) == Some(20.0)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(in_flight.is_ok(), "20 calls reached the server");

    process.signal("TERM").expect("SIGTERM sent");
    let results = calls.await.expect("calls task");
    let failed: Vec<_> = results
        .iter()
        .filter_map(|result| result.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "every in-flight call completes: {failed:?}"
    );
    assert!(
        process
            .logged("\"server.drained\"", Duration::from_secs(5))
            .await,
        "the drain finished within the grace period"
    );
    assert_eq!(
        process.wait().await.expect("exit status"),
        Some(0),
        "a graceful stop exits 0"
    );
}
