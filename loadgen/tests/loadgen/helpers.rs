//! A real payment and order on 127.0.0.1:0 (the same `Application::build` as their mains),
//! and ways to run loadgen against them.

use std::{net::SocketAddr, path::Path};

use secrecy::SecretString;
use server::Service as _;
use stormproof_order::Application as OrderApplication;
use stormproof_payment::Application as PaymentApplication;
use telemetry::{ServiceInfo, TelemetryGuard};
use testkit::{ServiceArgs, sqlite_url};
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "loadgen-test-token";

pub fn init_telemetry() -> &'static TelemetryGuard {
    telemetry::testing::init(
        ServiceInfo {
            name: "loadgen",
            version: env!("CARGO_PKG_VERSION"),
        },
        None,
    )
}

/// A server running on this runtime; it stops when dropped.
pub struct Running(Option<oneshot::Sender<()>>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

/// Payment and order, both with the admin API on.
pub struct Stack {
    pub order_http: SocketAddr,
    pub order_ops: SocketAddr,
    pub payment_ops: SocketAddr,
    order_server: Running,
    _payment_server: Running,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// `order_flags` are added to order's command line.
    pub async fn spawn(order_flags: &[&str]) -> Self {
        let guard = init_telemetry();
        let dir = tempfile::tempdir().expect("temp dir");

        let args = ServiceArgs::payment(&sqlite_url(&dir.path().join("payment.db")));
        let mut config =
            <stormproof_payment::Config as clap::Parser>::try_parse_from(args.argv("payment"))
                .expect("payment flags");
        config.admin_token = Some(SecretString::from(ADMIN_TOKEN.to_owned()));
        let payment = PaymentApplication::build(config, guard.prometheus())
            .await
            .expect("payment starts");
        let (payment_grpc, payment_ops) = (payment.grpc_addr(), payment.ops_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(payment.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let payment_running = Running(Some(stop));

        let payment_url = format!("http://{payment_grpc}");
        let args = ServiceArgs::order(&payment_url, &sqlite_url(&dir.path().join("order.db")))
            .extend(&["--reconcile-interval", "100ms"])
            .extend(order_flags);
        let mut config =
            <stormproof_order::Config as clap::Parser>::try_parse_from(args.argv("order"))
                .expect("order flags");
        config.admin_token = Some(SecretString::from(ADMIN_TOKEN.to_owned()));
        let order = OrderApplication::build(config, guard.prometheus())
            .await
            .expect("order starts");
        let (order_http, order_ops) = (order.http_addr(), order.ops_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(order.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Self {
            order_http,
            order_ops,
            payment_ops,
            _payment_server: payment_running,
            order_server: Running(Some(stop)),
            _dir: dir,
        }
    }

    /// Stops order: its ports refuse connections from then on (payment keeps running).
    pub fn stop_order(&mut self) {
        if let Some(stop) = self.order_server.0.take() {
            let _ = stop.send(());
        }
    }

    /// loadgen's command line against this stack, writing reports under `reports`.
    pub fn args(&self, reports: &Path, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "loadgen",
            "--target-url",
            &format!("http://{}", self.order_http),
            "--order-ops-url",
            &format!("http://{}", self.order_ops),
            "--payment-ops-url",
            &format!("http://{}", self.payment_ops),
            "--metrics-addr",
            "127.0.0.1:0",
            "--reports-dir",
            &reports.display().to_string(),
            "--running-metrics",
            "0",
            // Nothing listens there: the server's view is unavailable, and says so.
            "--prometheus-url",
            "http://127.0.0.1:9",
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args
    }
}

/// What the `loadgen` binary did.
#[derive(Debug)]
pub struct Exit {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `loadgen` binary with `args` (program name first) and `ADMIN_TOKEN` set, bounded
/// at two minutes.
pub async fn loadgen_binary(args: &[String]) -> Exit {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"));
    command.args(&args[1..]);
    run_bounded(command).await
}

/// Runs the `loadgen` binary with `args` on a pseudo-terminal (util-linux `script`), bounded
/// at two minutes: what a user at a terminal sees, as `stdout`.
pub async fn loadgen_on_a_terminal(args: &[String]) -> Exit {
    let line = std::iter::once(env!("CARGO_BIN_EXE_loadgen").to_owned())
        .chain(args[1..].iter().map(|arg| format!("'{arg}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut command = tokio::process::Command::new("script");
    command.args(["-qfec", &line, "/dev/null"]);
    run_bounded(command).await
}

async fn run_bounded(mut command: tokio::process::Command) -> Exit {
    command
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("OTEL_SDK_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), command.output())
        .await
        .expect("loadgen ends within two minutes")
        .expect("loadgen runs");
    Exit {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The exposition loadgen serves on `addr`'s /metrics.
pub async fn scrape(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}

/// The one report directory loadgen made under `reports`.
pub fn report_dir(reports: &Path) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(reports)
        .expect("reports dir")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "one run, one report directory: {dirs:?}");
    dirs.into_iter().next().expect("one")
}
