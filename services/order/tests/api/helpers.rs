//! `spawn_payment()` and `spawn_order()`: the same `Application::build` as each `main`, on
//! 127.0.0.1:0 with fresh databases, and the clients tests need.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secrecy::SecretString;
use serde_json::{Value, json};
use server::Service as _;
use stormproof_order::Application as OrderApplication;
use stormproof_payment::{
    Application as PaymentApplication,
    faults::{FaultSettings, Faults},
    ledger::Ledger,
};
use telemetry::TelemetryGuard;
use tokio::sync::oneshot;

pub use testkit::sample;
use testkit::{ServiceArgs, sqlite_url};

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub fn init_telemetry(otlp_endpoint: Option<String>) -> &'static TelemetryGuard {
    telemetry::testing::init(<OrderApplication as server::Service>::INFO, otlp_endpoint)
}

/// A running server and the way to stop it.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<bool>,
}

impl Running {
    fn spawn<F>(serve: impl FnOnce(oneshot::Receiver<()>) -> F) -> Self
    where
        F: Future<Output = bool> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        Self {
            stop: Some(stop),
            task: tokio::spawn(serve(stopped)),
        }
    }

    fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    async fn stop(&mut self) {
        self.begin_stop();
        assert!(
            (&mut self.task).await.expect("server task"),
            "stops cleanly"
        );
    }
}

pub struct Payment {
    pub addr: SocketAddr,
    pub database: std::path::PathBuf,
    pub faults: Arc<Faults>,
    pub ledger: Ledger,
    running: Running,
    _dir: tempfile::TempDir,
}

/// A healthy payment service on a fresh ledger.
pub async fn spawn_payment() -> Payment {
    spawn_payment_at("127.0.0.1:0".parse().expect("addr")).await
}

/// A healthy payment service on `addr` (to bring one back where a stopped one was).
pub async fn spawn_payment_at(addr: SocketAddr) -> Payment {
    start_payment(addr, None).await
}

/// A healthy payment service whose gRPC listener speaks TLS as `tls` says.
pub async fn spawn_payment_with_tls(tls: stormproof_payment::config::TlsArgs) -> Payment {
    start_payment("127.0.0.1:0".parse().expect("addr"), Some(tls)).await
}

async fn start_payment(
    addr: SocketAddr,
    tls: Option<stormproof_payment::config::TlsArgs>,
) -> Payment {
    let guard = init_telemetry(None);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = <stormproof_payment::Config as clap::Parser>::try_parse_from(["payment"])
        .expect("defaults");
    config.grpc_addr = addr;
    config.ops_addr = "127.0.0.1:0".parse().expect("addr");
    config.database_url =
        stormproof_payment::ledger::DatabaseUrl::Sqlite(dir.path().join("payment.db"));
    if let Some(tls) = tls {
        config.tls = tls;
    }
    let app = PaymentApplication::build(config, guard.prometheus())
        .await
        .expect("payment starts");
    let (addr, faults, ledger) = (app.grpc_addr(), app.faults(), app.ledger());
    let running = Running::spawn(|stopped| async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .is_ok()
    });
    Payment {
        addr,
        database: dir.path().join("payment.db"),
        faults,
        ledger,
        running,
        _dir: dir,
    }
}

impl Payment {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of a payment started with TLS.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn set_faults(&self, faults: FaultSettings) {
        self.faults.set(faults);
    }

    /// Stops payment: its port refuses connections from then on.
    pub async fn stop(mut self) -> Ledger {
        self.running.stop().await;
        self.ledger.clone()
    }
}

pub struct Order {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub app: stormproof_order::app::App,
    pub store: stormproof_order::store::Store,
    pub breaker: resilience::breaker::BreakerHandle,
    pub http: reqwest::Client,
    running: Running,
    _dir: tempfile::TempDir,
}

/// An order service calling `payment_url`, with `flags` added to its command line (tests
/// shorten the breaker's wait and the reconciler's interval this way).
pub async fn spawn_order(payment_url: &str, flags: &[&str]) -> Order {
    let guard = init_telemetry(None);
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ServiceArgs::order(payment_url, &sqlite_url(&dir.path().join("order.db")))
        .extend(&["--reconcile-interval", "100ms"])
        .extend(flags);
    let mut config = <stormproof_order::Config as clap::Parser>::try_parse_from(args.argv("order"))
        .expect("flags");
    config.admin_token = Some(SecretString::from(ADMIN_TOKEN.to_owned()));
    let app = OrderApplication::build(config, guard.prometheus())
        .await
        .expect("order starts");
    let (http_addr, grpc_addr, ops_addr) = (app.http_addr(), app.grpc_addr(), app.ops_addr());
    let (state, store, breaker) = (
        app.app().clone(),
        app.store().clone(),
        app.breaker().clone(),
    );
    let running = Running::spawn(|stopped| async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .is_ok()
    });
    Order {
        http_addr,
        grpc_addr,
        ops_addr,
        app: state,
        store,
        breaker,
        http: reqwest::Client::new(),
        running,
        _dir: dir,
    }
}

impl Order {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ops_addr)
    }

    /// POSTs an order of `lines` for `customer`; returns the status and the JSON body.
    pub async fn place(
        &self,
        customer: &str,
        lines: &[(&str, u32)],
        key: Option<&str>,
    ) -> (u16, Value) {
        let body = json!({
            "customer_id": customer,
            "lines": lines.iter().map(|(sku, quantity)| json!({ "sku": sku, "quantity": quantity })).collect::<Vec<_>>(),
        });
        let mut request = self.http.post(self.url("/v1/orders")).json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.expect("order answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        testkit::metrics::scrape(&self.http, &self.ops_url("/metrics")).await
    }

    /// Waits until no order is left unsettled, or `timeout` passes.
    pub async fn drained(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            loop {
                let (backlog, _) = self.store.backlog().await.expect("backlog");
                if backlog == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .is_ok()
    }

    /// How long `order_payment_backlog` took to read `expected` on /metrics, polled every
    /// 50 ms for at most `timeout`; `None` if it never did.
    pub async fn backlog_gauge_reads(&self, expected: f64, timeout: Duration) -> Option<Duration> {
        let started = tokio::time::Instant::now();
        while started.elapsed() < timeout {
            if sample(&self.metrics().await, "order_payment_backlog", &[]) == Some(expected) {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub async fn stop(mut self) {
        self.running.stop().await;
    }

    /// Starts the shutdown (as SIGTERM does) without waiting for it.
    pub fn begin_stop(&mut self) {
        self.running.begin_stop();
    }
}

/// A gRPC PlaceOrder of one red cap for `customer`, without an idempotency key.
pub fn one_cap(customer: impl Into<String>) -> contracts::order::v1::PlaceOrderRequest {
    use contracts::order::v1 as pb;
    pb::PlaceOrderRequest {
        customer_id: customer.into(),
        lines: vec![pb::OrderLine {
            sku: "CAP-RED".to_owned(),
            quantity: 1,
            unit_price: None,
        }],
        idempotency_key: String::new(),
    }
}
