//! The real binary, stopped by a real SIGTERM while calls are in flight.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use contracts::payment::v1::payment_service_client::PaymentServiceClient;
use futures::future::join_all;
use serde_json::Value;

use crate::helpers::{charge, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_twenty_slow_calls_finish_then_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_payment"))
        .args(["--grpc-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"])
        .arg("--database-path")
        .arg(dir.path().join("payment.db"))
        .args(["--latency-ms", "1500", "--shutdown-grace", "10s"])
        .env("OTEL_SDK_DISABLED", "true")
        .env("RUST_LOG", "info")
        .env_remove("ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the payment binary starts");

    // The binary logs its bound addresses as one JSON line.
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.recv().await {
            let line: Value = serde_json::from_str(&line).unwrap_or_default();
            if line["message"] == "payment.listening" {
                return line;
            }
        }
        Value::Null
    })
    .await
    .expect("payment logs its addresses");
    let address = |field: &str| {
        listening["fields"][field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {listening}"))
            .to_owned()
    };
    let (grpc_addr, ops_addr) = (address("grpc_addr"), address("ops_addr"));

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
            let metrics = http
                .get(format!("http://{ops_addr}/metrics"))
                .send()
                .await
                .expect("scrape")
                .text()
                .await
                .expect("text");
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

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());

    let results = calls.await.expect("calls task");
    let failed: Vec<_> = results
        .iter()
        .filter_map(|result| result.as_ref().err())
        .collect();
    assert!(
        failed.is_empty(),
        "every in-flight call completes: {failed:?}"
    );

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("wait task")
        .expect("exit status");
    assert_eq!(status.code(), Some(0), "a graceful stop exits 0");

    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(line) = lines.recv().await {
            if line.contains("\"payment.drained\"") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        drained,
        Ok(true),
        "the drain finished within the grace period"
    );
}
