//! The open model: arrivals on schedule, dropped (and counted) when no user is free, timed
//! from the schedule, and refused before anything is sent when the plan cannot work.

use std::time::Duration;

use axum::{Json, Router, routing::get};
use serde_json::{Value, json};
use stormproof_loadgen::{Config, Loadgen};
use testkit::sample;

use crate::helpers::{Stack, init_telemetry, loadgen_binary, report_dir};

fn summary(dir: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary.json"))
        .expect("summary.json parses")
}

fn total(summary: &Value, request: &str) -> u64 {
    summary["requests"][request]["total"].as_u64().unwrap_or(0)
}

/// 500 arrivals a second for 10 s against the real order (fast: its catalogue and a placed
/// order answer in milliseconds): 5 000 arrive, and within 1 % of them are sent, each as one
/// first request (a browse's GetProducts or a buy's PlaceOrder).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_arrivals_a_second_for_ten_seconds_send_five_thousand() {
    let stack = Stack::spawn(&[]).await;
    let reports = tempfile::tempdir().expect("dir");
    let exit = loadgen_binary(&stack.args(
        reports.path(),
        &[
            "--stages",
            "500:10s",
            "--arrivals",
            "uniform",
            "--seed",
            "7",
            "--quiet",
        ],
    ))
    .await;
    let summary = summary(&report_dir(reports.path()));
    let open = &summary["open"];
    assert_eq!(summary["model"], "open", "{}", exit.stdout);
    assert_eq!(open["offered"], 5000, "{open}");
    let per_second = open["offered_per_second"]
        .as_f64()
        .expect("offered per second");
    assert!((495.0..=505.0).contains(&per_second), "{open}");
    let sent = total(&summary, "GetProducts") + total(&summary, "PlaceOrder");
    let served = 5000 - open["dropped"].as_u64().expect("dropped");
    assert_eq!(
        sent, served,
        "one first request per served arrival: {summary}"
    );
    assert!(
        (4950..=5050).contains(&sent),
        "{sent} of 5000 sent (±1 %): {open}\n{}",
        exit.stdout
    );
    // About one in four buys (seeded), each answered and followed.
    let buys = total(&summary, "PlaceOrder");
    assert!((1100..1400).contains(&buys), "{buys} orders");
    assert!(summary["requests"]["PlaceOrder"]["response_p99_ms"].is_number());
}

/// `catalogue` under the open model (the bench's side of oha `-q`): every arrival is one
/// `GET /v1/products` at its scheduled moment, and nothing is bought.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_at_a_rate_only_browses() {
    let stack = Stack::spawn(&[]).await;
    let reports = tempfile::tempdir().expect("dir");
    let exit = loadgen_binary(&stack.args(
        reports.path(),
        &[
            "--profile",
            "catalogue",
            "--model",
            "open",
            "--stages",
            "100:2s",
            "--arrivals",
            "uniform",
            "--quiet",
        ],
    ))
    .await;
    let summary = summary(&report_dir(reports.path()));
    assert_eq!(summary["model"], "open", "{}", exit.stdout);
    assert_eq!(summary["open"]["offered"], 200, "{}", summary["open"]);
    let served = 200 - summary["open"]["dropped"].as_u64().expect("dropped");
    assert_eq!(total(&summary, "GetProducts"), served, "{summary}");
    assert_eq!(total(&summary, "PlaceOrder"), 0, "{summary}");
}

/// A target that answers in 500 ms, 40 arrivals a second and a pool of 12 users: a user serves
/// two arrivals a second, so about 40 % of the arrivals find no one free. They are dropped and
/// counted (summary.json, /metrics), the dropped-arrivals SLO fails, and the answers that were
/// sent are timed from their schedule, never under the target's 500 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_users_against_a_slow_target_drop_arrivals_and_fail_the_slo() {
    let guard = init_telemetry();
    let slow = Router::new()
        .route(
            "/v1/products",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Json(json!({"products": [{"sku": "SNEAKER-42"}]}))
            }),
        )
        .route(
            "/v1/orders",
            axum::routing::post(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                (
                    axum::http::StatusCode::CREATED,
                    Json(json!({"status": "CONFIRMED"})),
                )
            }),
        )
        // Stands in for order's ops port: no backlog.
        .route("/metrics", get(|| async { "order_payment_backlog 0\n" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, slow).await });

    let reports = tempfile::tempdir().expect("dir");
    let reports_dir = reports.path().display().to_string();
    let config = Config::from_args([
        "loadgen",
        "--target-url",
        &target,
        "--order-ops-url",
        &target,
        "--metrics-addr",
        "127.0.0.1:0",
        "--reports-dir",
        &reports_dir,
        "--running-metrics",
        "0",
        "--quiet",
        "--stages",
        "40:4s",
        "--arrivals",
        "uniform",
        "--max-users",
        "12",
        "--seed",
        "3",
    ])
    .expect("flags");
    let loadgen = Loadgen::build(config, guard.prometheus())
        .await
        .expect("builds");
    let outcome = loadgen.run().await.expect("runs");

    let summary = summary(&outcome.report_dir);
    let (offered, dropped) = (
        summary["open"]["offered"].as_u64().expect("offered"),
        summary["open"]["dropped"].as_u64().expect("dropped"),
    );
    assert_eq!(offered, 160);
    // 12 users × 2 a second × 4 s ≈ 96 served (a little more: the first answers come after
    // the first arrivals, a little less: the sent ones take over 500 ms).
    assert!((40..=80).contains(&dropped), "{dropped} of 160 dropped");
    assert!(!outcome.verdict.pass);
    let row = outcome
        .verdict
        .rows
        .iter()
        .find(|row| row.slo == "arrivals dropped")
        .expect("the dropped-arrivals row");
    assert!(!row.pass, "{}", outcome.verdict);

    let exposition = crate::helpers::scrape(loadgen.metrics_addr()).await;
    assert_eq!(
        sample(&exposition, "loadgen_dropped_arrivals_total", &[]),
        Some(dropped as f64)
    );
    assert_eq!(
        sample(&exposition, "loadgen_arrivals_total", &[]),
        Some(offered as f64)
    );
    for request in ["GetProducts", "PlaceOrder"] {
        let p50 = summary["requests"][request]["response_p50_ms"]
            .as_f64()
            .expect("response p50");
        assert!(p50 >= 500.0, "{request}: {p50} ms from the schedule");
    }
}

/// Plans that cannot work are refused with exit 64, naming the flag (and for too small a
/// pool, the estimate), before anything is sent: the target here does not exist, and a run
/// that tried it would end with exit 1 instead.
#[tokio::test]
async fn impossible_plans_exit_64_naming_the_flag_and_send_nothing() {
    for (flags, says) in [
        (
            vec!["--profile", "peak-sale", "--rate", "0"],
            "--rate must be greater than 0",
        ),
        (
            vec!["--profile", "peak-sale", "--rate=-2"],
            "--rate must be greater than 0",
        ),
        (
            vec!["--stages", "100:5s", "--max-users", "10"],
            "--max-users 10 is too few for 100.0 arrivals/s",
        ),
        (
            vec!["--stages", "100:5x"],
            "stage 1 (\"100:5x\"): the duration",
        ),
        (vec!["--stages", "0:5s"], "no arrival"),
        (vec!["--model", "sideways"], "--model"),
        (
            vec!["--profile", "catalogue", "--model", "open"],
            "catalogue has no arrival rates of its own",
        ),
        (
            vec!["--stages", "10:5s", "--model", "closed"],
            "--stages sets the open model",
        ),
    ] {
        let mut args: Vec<String> = [
            "loadgen",
            "--target-url",
            "http://127.0.0.1:9",
            "--metrics-addr",
            "127.0.0.1:0",
            "--reports-dir",
            "/nonexistent/reports",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(flags.iter().map(|flag| (*flag).to_owned()));
        let exit = loadgen_binary(&args).await;
        assert_eq!(
            exit.code,
            Some(64),
            "{flags:?}: {}\n{}",
            exit.stdout,
            exit.stderr
        );
        assert!(exit.stderr.contains(says), "{flags:?}: {}", exit.stderr);
        assert!(
            exit.stdout.is_empty(),
            "{flags:?} printed a run: {}",
            exit.stdout
        );
    }
}
