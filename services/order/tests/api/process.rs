//! The real binaries: order killed with SIGKILL in the middle of a load, and stopped with
//! SIGTERM under load.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::Row as _;
use stormproof_payment::faults::FaultSettings;
use testkit::{Process, ServiceArgs, sqlite_url};

use crate::helpers::{Payment, spawn_payment};

const ORDER: &str = env!("CARGO_BIN_EXE_order");

/// Payment in this process (it stays up), answering after `latency_ms`.
async fn start_payment(latency_ms: u64) -> Payment {
    let payment = spawn_payment().await;
    payment.set_faults(FaultSettings {
        latency_ms,
        ..FaultSettings::default()
    });
    payment
}

/// The order binary, on `dir`'s database.
async fn start_order(dir: &std::path::Path, payment: &Payment) -> Process {
    let args = ServiceArgs::order(&payment.url(), &sqlite_url(&dir.join("order.db"))).extend(&[
        "--reconcile-interval",
        "100ms",
        "--reconcile-stale-after",
        "1s",
    ]);
    Process::start(ORDER, &args.as_strs(), &[])
        .await
        .expect("order starts")
}

/// Orders acknowledged so far: order id → the status it was acknowledged with.
type Acknowledged = Arc<Mutex<BTreeMap<String, i64>>>;

/// [`load`] on its own task: the flag that stops it, what it acknowledged, and the task.
fn spawn_load(
    http_addr: String,
    clients: usize,
) -> (
    Arc<AtomicBool>,
    Acknowledged,
    tokio::task::JoinHandle<Vec<u16>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Acknowledged = Arc::default();
    let running = tokio::spawn(load(http_addr, clients, stop.clone(), acknowledged.clone()));
    (stop, acknowledged, running)
}

/// `clients` loops placing orders until `stop`; every acknowledged order (201/202) is kept.
async fn load(
    http_addr: String,
    clients: usize,
    stop: Arc<AtomicBool>,
    acknowledged: Acknowledged,
) -> Vec<u16> {
    let http = reqwest::Client::new();
    let statuses = join_all((0..clients).map(|client| {
        let (http, stop, acknowledged, url) = (http.clone(), stop.clone(), acknowledged.clone(), format!("http://{http_addr}/v1/orders"));
        async move {
            let mut statuses = Vec::new();
            let mut n = 0_u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({ "customer_id": format!("cust-{client}"), "lines": [{ "sku": "CAP-RED", "quantity": 1 + n % 3 }] });
                let Ok(response) = http.post(&url).json(&body).send().await else {
                    break; // the process is gone
                };
                let status = response.status().as_u16();
                statuses.push(status);
                if let Ok(order) = response.json::<Value>().await
                    && matches!(status, 201 | 202)
                    && let (Some(id), Some(total)) = (order["order_id"].as_str(), order["total"]["amount_minor"].as_i64())
                    && let Ok(mut acknowledged) = acknowledged.lock()
                {
                    acknowledged.insert(id.to_owned(), total);
                }
            }
            statuses
        }
    }))
    .await;
    statuses.into_iter().flatten().collect()
}

/// Reads a SQLite file of the other process (WAL: readers do not block it).
async fn rows(path: &std::path::Path, sql: &'static str) -> Vec<(String, String, i64)> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .expect("open");
    let rows = sqlx::query(sql)
        .fetch_all(&pool)
        .await
        .expect("query")
        .into_iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_every_acknowledged_order_exists_and_is_charged_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let payment = start_payment(30).await;
    let order = start_order(dir.path(), &payment).await;

    let (stop, acknowledged, running) = spawn_load(order.addr("http_addr"), 6);
    tokio::time::sleep(Duration::from_millis(800)).await;
    order.signal("KILL").expect("kill -9");
    assert_eq!(
        order.wait().await.expect("exit"),
        None,
        "ended by the signal"
    );
    stop.store(true, Ordering::Relaxed);
    let statuses = running.await.expect("load task");
    assert!(
        statuses.iter().all(|status| matches!(status, 201 | 202)),
        "no error before the kill: {statuses:?}"
    );
    let acknowledged = acknowledged.lock().expect("acknowledged").clone();
    assert!(
        acknowledged.len() >= 10,
        "load ran: {} orders",
        acknowledged.len()
    );

    let left = rows(
        &dir.path().join("order.db"),
        "SELECT order_id, status, total_minor FROM orders WHERE status = 'PENDING'",
    )
    .await;
    assert!(
        !left.is_empty(),
        "the kill caught orders mid-payment (the case under test)"
    );

    // Restart on the same database; the reconciler settles what the kill left behind.
    let order = start_order(dir.path(), &payment).await;
    let http = reqwest::Client::new();
    let settled = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let open = rows(&dir.path().join("order.db"), "SELECT order_id, status, total_minor FROM orders WHERE status IN ('PENDING', 'PAYMENT_PENDING')").await;
            if open.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(settled.is_ok(), "every order settles after the restart");

    for (id, total) in &acknowledged {
        let stored: Value = http
            .get(format!("http://{}/v1/orders/{id}", order.addr("http_addr")))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        assert_eq!(
            stored["status"], "CONFIRMED",
            "{id} acknowledged, so it exists and is paid"
        );
        assert_eq!(stored["total"]["amount_minor"], *total);
    }
    let orders = rows(
        &dir.path().join("order.db"),
        "SELECT order_id, status, total_minor FROM orders",
    )
    .await;
    let charges = rows(
        &payment.database,
        "SELECT order_id, currency_code, amount_minor FROM payments",
    )
    .await;
    let order_totals: BTreeMap<_, _> = orders
        .iter()
        .map(|(id, _, total)| (id.clone(), *total))
        .collect();
    let charged: BTreeSet<_> = charges.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(
        charged.len(),
        charges.len(),
        "at most one charge per order id"
    );
    for (id, _, amount) in &charges {
        assert_eq!(
            order_totals.get(id),
            Some(amount),
            "no charge without its order, of its total: {id}"
        );
    }
    assert_eq!(
        charged,
        order_totals.keys().cloned().collect(),
        "every order charged, exactly once"
    );
    drop(order);
    payment.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_request_in_flight() {
    let dir = tempfile::tempdir().expect("temp dir");
    let payment = start_payment(100).await;
    let mut order = start_order(dir.path(), &payment).await;

    let (stop, _acknowledged, running) = spawn_load(order.addr("http_addr"), 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    order.signal("TERM").expect("SIGTERM");
    assert!(
        order
            .logged("\"server.drained\"", Duration::from_secs(15))
            .await,
        "drained in time"
    );
    stop.store(true, Ordering::Relaxed);
    let statuses = running.await.expect("load task");
    assert!(!statuses.is_empty());
    assert!(
        statuses.iter().all(|status| matches!(status, 201 | 202)),
        "every request that got an answer got a good one: {statuses:?}"
    );
    assert_eq!(order.wait().await.expect("exit"), Some(0));
}
