//! Payment misbehaving: the seeds' scenario, payment down, the breaker overridden by hand.

use std::time::{Duration, Instant};

use futures::future::join_all;
use resilience::breaker::State;
use serde_json::{Value, json};
use stormproof_payment::{domain::OrderId, faults::Preset, ledger::Ledger};

use testkit::Process;

use crate::helpers::{ADMIN_TOKEN, Order, one_cap, sample, spawn_order, spawn_payment};

/// Every order of `ids` is CONFIRMED, and `ledger` holds exactly one charge for each, of the
/// order's total.
pub(crate) async fn each_charged_once(order: &Order, ledger: &Ledger, ids: &[String]) {
    assert_eq!(
        ledger.count().await.expect("count"),
        i64::try_from(ids.len()).expect("few"),
        "one charge per order, no more"
    );
    for id in ids {
        let stored = order.app.get_order(id).await.expect("the order exists");
        assert_eq!(stored.status.as_str(), "CONFIRMED", "{id}");
        let payment = ledger
            .get(&OrderId::parse(id).expect("valid id"))
            .await
            .expect("ledger")
            .unwrap_or_else(|| panic!("{id} charged"));
        assert_eq!(
            payment.amount_minor, stored.total.amount_minor,
            "{id}: the right amount"
        );
    }
}

/// The seeds' scenario: payment at 200 ms and 25 % failures, 200 orders from 8 clients. Every
/// order is answered 201 or 202, none 5xx; the breaker opens; after the heal the backlog
/// drains and every order is charged exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_scenario_answers_every_order_and_drains_after_the_heal() {
    let payment = spawn_payment().await;
    payment.set_faults(Preset::Seed.settings());
    let order = spawn_order(
        &payment.url(),
        &["--breaker-wait", "1s", "--reconcile-max-rate", "200"],
    )
    .await;

    let skus = ["CAP-RED", "SNEAKER-42", "MUG-LOGO", "HOODIE-GRY-M"];
    let clients = (0..8).map(|client| {
        let order = &order;
        async move {
            let mut answers = Vec::new();
            for n in 0..25 {
                let sku = skus[(client + n) % skus.len()];
                answers.push(
                    order
                        .place(&format!("cust-{client}"), &[(sku, 1 + n as u32 % 3)], None)
                        .await,
                );
            }
            answers
        }
    });
    let answers: Vec<(u16, Value)> = join_all(clients).await.into_iter().flatten().collect();
    assert_eq!(answers.len(), 200);
    let count = |code| answers.iter().filter(|(status, _)| *status == code).count();
    assert_eq!(
        count(201) + count(202),
        200,
        "every order 201 or 202: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(count(202) > 0, "some fell back");

    let metrics = order.metrics().await;
    let opened = sample(
        &metrics,
        "circuit_breaker_transitions_total",
        &[
            ("dependency", "payment"),
            ("from", "closed"),
            ("to", "open"),
        ],
    );
    assert!(
        opened.is_some_and(|times| times >= 1.0),
        "the breaker opened: {opened:?}"
    );
    let fallbacks: f64 = [
        "breaker_open",
        "deadline",
        "unavailable",
        "bulkhead_full",
        "budget_exhausted",
    ]
    .iter()
    .filter_map(|reason| {
        sample(
            &metrics,
            "fallback_total",
            &[("dependency", "payment"), ("reason", reason)],
        )
    })
    .sum();
    assert_eq!(
        fallbacks as usize,
        count(202),
        "each 202 is a counted fallback"
    );

    payment.set_faults(Preset::None.settings());
    assert!(
        order.drained(Duration::from_secs(30)).await,
        "the backlog drains after the heal"
    );
    let ids: Vec<String> = answers
        .iter()
        .map(|(_, body)| body["order_id"].as_str().expect("an id").to_owned())
        .collect();
    each_charged_once(&order, &payment.ledger, &ids).await;
    assert!(
        order
            .backlog_gauge_reads(0.0, Duration::from_secs(1))
            .await
            .is_some(),
        "the backlog gauge follows the store within a second"
    );
    order.stop().await;
    payment.stop().await;
}

/// Payment's process killed (SIGKILL): orders are still accepted (202), fast once the breaker
/// is open; when payment is back, each order is charged exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_payment_killed_orders_are_accepted_fast_and_charged_once_it_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ledger_file = dir.path().join("payment.db");
    let payment = payment_process(&ledger_file, "127.0.0.1:0").await;
    let addr = payment.addr("grpc_addr");
    let order = spawn_order(&format!("http://{addr}"), &["--breaker-wait", "500ms"]).await;
    let (status, body) = order.place("cust-down", &[("CAP-RED", 1)], None).await;
    assert_eq!(status, 201, "payment up: confirmed");
    let mut ids = vec![body["order_id"].as_str().expect("id").to_owned()];

    payment.signal("KILL").expect("kill -9 payment");
    assert_eq!(payment.wait().await.expect("exit"), None, "killed");
    let mut fast = Vec::new();
    for n in 0..20 {
        let started = Instant::now();
        let (status, body) = order
            .place("cust-down", &[("BOTTLE-750", 1 + n % 2)], None)
            .await;
        let elapsed = started.elapsed();
        assert_eq!(status, 202, "accepted while payment is down: {body}");
        assert_eq!(body["status"], "PAYMENT_PENDING");
        ids.push(body["order_id"].as_str().expect("id").to_owned());
        if order.breaker.state() == State::Open {
            fast.push(elapsed);
        }
    }
    assert!(!fast.is_empty(), "the breaker opened");
    let slowest = fast.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(250),
        "fast while open: {slowest:?}"
    );
    let metrics = order.metrics().await;
    let breaker_open = sample(
        &metrics,
        "fallback_total",
        &[("dependency", "payment"), ("reason", "breaker_open")],
    );
    assert!(
        breaker_open.is_some_and(|count| count >= 1.0),
        "{breaker_open:?}"
    );

    // Payment back on the same address and ledger.
    let _payment = payment_process(&ledger_file, &addr).await;
    assert!(
        order.drained(Duration::from_secs(30)).await,
        "the backlog drains once payment is back"
    );
    let ledger = Ledger::open(&ledger_file).await.expect("the ledger file");
    each_charged_once(&order, &ledger, &ids).await;
    order.stop().await;
}

/// The payment binary (built beside order's by a workspace build), on `addr` and `ledger`.
async fn payment_process(ledger: &std::path::Path, addr: &str) -> Process {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_order")).with_file_name("payment");
    assert!(
        binary.exists(),
        "{} is missing: build the workspace (cargo nextest run --workspace builds it)",
        binary.display()
    );
    Process::start(
        binary.to_str().expect("utf-8 path"),
        &[
            "--grpc-addr",
            addr,
            "--ops-addr",
            "127.0.0.1:0",
            "--database-url",
            &format!("sqlite://{}", ledger.to_str().expect("utf-8 path")),
        ],
        &[],
    )
    .await
    .expect("payment starts")
}

#[tokio::test]
async fn an_operator_can_force_the_breaker_open_and_close_it() {
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &[]).await;
    let url = order.ops_url("/admin/breaker");
    let put = |state: &str| {
        order
            .http
            .put(&url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "state": state }))
            .send()
    };

    let refused = order
        .http
        .put(&url)
        .json(&json!({ "state": "forced_open" }))
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 401);

    let forced: Value = put("forced_open")
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(forced["state"], "forced_open");
    let (status, body) = order.place("cust-op", &[("CAP-RED", 1)], None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("PAYMENT_PENDING"))
    );
    let metrics = order.metrics().await;
    assert_eq!(
        sample(
            &metrics,
            "circuit_breaker_state",
            &[("dependency", "payment"), ("state", "forced_open")]
        ),
        Some(1.0)
    );

    let bad = put("sideways").await.expect("answered");
    assert_eq!(bad.status(), 400);

    let closed: Value = put("closed")
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(closed["state"], "closed");
    let (status, _) = order.place("cust-op", &[("CAP-RED", 1)], None).await;
    assert_eq!(status, 201);
    assert!(
        order.drained(Duration::from_secs(10)).await,
        "the forced-open order is charged too"
    );
    order.stop().await;
    payment.stop().await;
}

/// Beyond the concurrency limit requests are shed at once: 503 with `Retry-After` and a
/// problem body over HTTP, RESOURCE_EXHAUSTED over gRPC, counted in `load_shed_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_at_once_with_retry_after() {
    use contracts::order::v1::order_service_client::OrderServiceClient;
    use stormproof_payment::faults::FaultSettings;

    let payment = spawn_payment().await;
    payment.set_faults(FaultSettings {
        latency_ms: 100,
        ..FaultSettings::default()
    });
    let limit = [
        "--limit-initial",
        "2",
        "--limit-min",
        "1",
        "--limit-max",
        "2",
        "--breaker-slow-call",
        "0",
        // Admitted orders wait out payment's 100 ms: the budget must not cut them short on a
        // busy machine (this is about the limit, not the budget).
        "--payment-budget",
        "1s",
    ];
    let order = spawn_order(&payment.url(), &limit).await;

    let burst = join_all((0..12).map(|n| {
        let order = &order;
        async move {
            let started = Instant::now();
            let response = order
                .http
                .post(order.url("/v1/orders"))
                .json(&json!({ "customer_id": format!("cust-{n}"), "lines": [{ "sku": "CAP-RED", "quantity": 1 }] }))
                .send()
                .await
                .expect("answered");
            (response.status().as_u16(), response.headers().get("retry-after").cloned(), started.elapsed(), response.text().await.unwrap_or_default())
        }
    }))
    .await;
    let shed: Vec<_> = burst.iter().filter(|(status, ..)| *status == 503).collect();
    let served = burst.iter().filter(|(status, ..)| *status == 201).count();
    assert_eq!(
        shed.len() + served,
        12,
        "only 201 or 503: {:?}",
        burst.iter().map(|b| b.0).collect::<Vec<_>>()
    );
    assert!(
        served >= 2 && !shed.is_empty(),
        "{served} served, {} shed",
        shed.len()
    );
    for (_, retry_after, elapsed, body) in &shed {
        assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert!(
            *elapsed < Duration::from_millis(90),
            "shed at once, not queued: {elapsed:?}"
        );
        assert!(body.contains("overloaded"), "a problem body: {body}");
    }

    let client = OrderServiceClient::connect(format!("http://{}", order.grpc_addr))
        .await
        .expect("connect");
    let grpc = join_all((0..8).map(|n| {
        let mut client = client.clone();
        async move { client.place_order(one_cap(format!("grpc-{n}"))).await }
    }))
    .await;
    let exhausted = grpc
        .iter()
        .filter(|result| {
            result
                .as_ref()
                .err()
                .is_some_and(|status| status.code() == tonic::Code::ResourceExhausted)
        })
        .count();
    assert!(exhausted > 0, "gRPC callers are shed too");
    assert!(grpc.iter().all(|result| result.as_ref().map_or_else(
        |status| status.code() == tonic::Code::ResourceExhausted,
        |_| true
    )));

    let metrics = order.metrics().await;
    let counted = sample(&metrics, "load_shed_total", &[("service", "order")]).unwrap_or_default();
    assert_eq!(
        counted as usize,
        shed.len() + exhausted,
        "every shed request counted"
    );
    assert_eq!(
        sample(&metrics, "concurrency_limit", &[("service", "order")]),
        Some(2.0)
    );
    order.stop().await;
    payment.stop().await;
}

/// A new order that cannot get the store's writer within `--store-write-wait` is shed before
/// anything is stored: 503 with `Retry-After` and a problem body over HTTP, RESOURCE_EXHAUSTED
/// with `grpc-retry-pushback-ms` over gRPC, counted in `load_shed_total`; reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_order_the_writer_cannot_take_in_time_is_shed_with_retry_after() {
    use contracts::order::v1::order_service_client::OrderServiceClient;
    use sqlx::{Connection, Executor};

    let payment = spawn_payment().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("sqlite://{}", dir.path().join("order.db").display());
    let order = spawn_order(
        &payment.url(),
        &["--database-url", &database, "--store-write-wait", "50ms"],
    )
    .await;
    let place = |customer: &'static str| {
        order
            .http
            .post(order.url("/v1/orders"))
            .json(
                &json!({ "customer_id": customer, "lines": [{ "sku": "CAP-RED", "quantity": 1 }] }),
            )
            .send()
    };

    // Another process holds SQLite's write lock: the first order takes order's writer and
    // waits for the lock in SQLite's busy handler (5 s), so the writer stays taken.
    let mut other = sqlx::SqliteConnection::connect(&database)
        .await
        .expect("a second connection to order's database");
    other
        .execute("BEGIN EXCLUSIVE")
        .await
        .expect("the write lock");
    let first = tokio::spawn(place("cust-first"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let shed = place("cust-shed").await.expect("answered");
    let elapsed = started.elapsed();
    assert_eq!(shed.status().as_u16(), 503);
    assert_eq!(
        shed.headers()
            .get("retry-after")
            .map(|value| value.as_bytes()),
        Some(&b"1"[..])
    );
    assert!(
        elapsed < Duration::from_millis(1000),
        "shed after the 50 ms wait, not after the lock: {elapsed:?}"
    );
    let body: Value = shed.json().await.expect("a JSON problem body");
    assert_eq!(body["status"], 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("nothing was stored")),
        "{body}"
    );

    let mut client = OrderServiceClient::connect(format!("http://{}", order.grpc_addr))
        .await
        .expect("connect");
    let refused = client
        .place_order(one_cap("grpc-shed"))
        .await
        .expect_err("shed");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    assert_eq!(
        refused
            .metadata()
            .get("grpc-retry-pushback-ms")
            .and_then(|value| value.to_str().ok()),
        Some("1000")
    );
    let read = order
        .http
        .get(order.url("/v1/products"))
        .send()
        .await
        .expect("answered");
    assert_eq!(read.status().as_u16(), 200, "reads are not shed");

    other.execute("ROLLBACK").await.expect("lock released");
    let first = first
        .await
        .expect("the first order's task")
        .expect("answered");
    // 202: it waited for the writer longer than its payment budget (150 ms from arrival),
    // so it was kept PAYMENT_PENDING without calling payment, rather than made to wait more.
    assert_eq!(
        first.status().as_u16(),
        202,
        "the order that held the writer is taken"
    );
    assert_eq!(
        order.store.count().await.expect("count"),
        1,
        "only the first order is stored"
    );
    let metrics = order.metrics().await;
    assert_eq!(
        sample(&metrics, "load_shed_total", &[("service", "order")]),
        Some(2.0),
        "both sheds counted"
    );
    order.stop().await;
    payment.stop().await;
}
