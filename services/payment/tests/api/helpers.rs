//! `spawn_app()`: the same `Application::build` as `main`, on 127.0.0.1:0, with a fresh ledger.

use std::{net::SocketAddr, path::Path, sync::Arc};

use contracts::payment::v1::{self as pb, payment_service_client::PaymentServiceClient};
use secrecy::SecretString;
use server::Service as _;
use stormproof_payment::{
    Application, Config,
    config::TlsArgs,
    faults::{FaultSettings, Faults},
    ledger::{DatabaseUrl, Ledger},
};
use telemetry::TelemetryGuard;
use tokio::sync::oneshot;
use tonic::transport::Channel;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Installs telemetry once per process (see `telemetry::testing::init`).
pub fn init_telemetry(otlp_endpoint: Option<String>) -> &'static TelemetryGuard {
    telemetry::testing::init(<Application as server::Service>::INFO, otlp_endpoint)
}

pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub faults: Arc<Faults>,
    pub ledger: Ledger,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), stormproof_payment::StartupError>>,
    _dir: Option<Arc<tempfile::TempDir>>,
}

/// A healthy payment service with an admin token, on a fresh ledger.
pub async fn spawn_app() -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let database = dir.path().join("payment.db");
    let mut app = spawn_app_on(&database, Some(ADMIN_TOKEN)).await;
    app._dir = Some(dir);
    app
}

/// A payment service on the ledger file `database`.
pub async fn spawn_app_on(database: &Path, admin_token: Option<&str>) -> TestApp {
    spawn_app_at(&DatabaseUrl::Sqlite(database.to_owned()), admin_token).await
}

/// A payment service on the ledger at `url` (a SQLite file or a PostgreSQL database).
pub async fn spawn_app_at(url: &DatabaseUrl, admin_token: Option<&str>) -> TestApp {
    spawn(url, admin_token, None).await
}

/// A payment service whose gRPC listener speaks TLS as `tls` says, on a fresh ledger.
pub async fn spawn_app_with_tls(tls: TlsArgs) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let url = DatabaseUrl::Sqlite(dir.path().join("payment.db"));
    let mut app = spawn(&url, Some(ADMIN_TOKEN), Some(tls)).await;
    app._dir = Some(dir);
    app
}

async fn spawn(url: &DatabaseUrl, admin_token: Option<&str>, tls: Option<TlsArgs>) -> TestApp {
    let guard = init_telemetry(None);
    let mut config =
        <Config as clap::Parser>::try_parse_from(["payment"]).expect("the defaults parse");
    config.grpc_addr = "127.0.0.1:0".parse().expect("address");
    config.ops_addr = "127.0.0.1:0".parse().expect("address");
    config.database_url = url.clone();
    config.admin_token = admin_token.map(|token| SecretString::from(token.to_owned()));
    if let Some(tls) = tls {
        config.tls = tls;
    }
    let app = Application::build(config, guard.prometheus())
        .await
        .expect("payment starts");
    let (grpc_addr, ops_addr) = (app.grpc_addr(), app.ops_addr());
    let (faults, ledger) = (app.faults(), app.ledger());
    let (stop, stopped) = oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        grpc_addr,
        ops_addr,
        faults,
        ledger,
        http: reqwest::Client::new(),
        stop: Some(stop),
        server,
        _dir: None,
    }
}

impl TestApp {
    pub async fn client(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .expect("payment accepts connections")
    }

    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ops_addr)
    }

    pub async fn metrics(&self) -> String {
        testkit::metrics::scrape(&self.http, &self.ops_url("/metrics")).await
    }

    /// Stops the server (graceful drain) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.server)
            .await
            .expect("server task")
            .expect("server stops cleanly");
    }

    pub fn set_faults(&self, settings: FaultSettings) {
        self.faults.set(settings);
    }
}

/// A valid charge of `amount` EUR cents by card.
pub fn charge(order_id: &str, amount: i64) -> pb::ProcessPaymentRequest {
    pb::ProcessPaymentRequest {
        order_id: order_id.to_owned(),
        amount: Some(pb::Money {
            amount_minor: amount,
            currency_code: "EUR".to_owned(),
        }),
        method: pb::PaymentMethod::Card as i32,
    }
}

pub use testkit::sample;
