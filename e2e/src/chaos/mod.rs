//! The chaos suite's stage: payment and order as real processes on 127.0.0.1, with a
//! [`Proxy`] on each hop, so that either process can be killed and restarted (on a new port,
//! the same database) or the network between them broken, while the real `loadgen` binary
//! drives the load.
//!
//! ```text
//! loadgen ──► front (Proxy::http_front) ──► order ──► link (Proxy) ──► payment
//!             records every exchange          │                          │
//!                                         order.db                  payment.db
//! ```
//!
//! The front stands where a load balancer would: after a restart it sends new connections to
//! the new process, and it is where the suite reads what the client was told.
//!
//! - `cpu`: the CPUs split between the system and the generator, the system's CPU quota, and
//!   a process's peak memory.
//! - `load`: a loadgen run and what it left.
//! - `stats`: quantiles, and Prometheus histograms differenced between two readings.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use testkit::{Process, ServiceArgs, sqlite_url};

mod cpu;
mod load;
mod stats;

pub use cpu::{CpuQuota, CpuSplit, peak_rss_kib};
pub use load::{LoadRun, Loadgen};
pub use stats::{bucket_between, histogram, quantile, quantile_between};

use crate::{
    ADMIN_TOKEN,
    ledger::Books,
    proxy::{Exchange, Proxy},
    release_binary,
};

/// Payment, order(s), the two proxies and the state directory.
pub struct Cluster {
    /// loadgen → order.
    pub front: Proxy,
    /// order → payment.
    pub link: Proxy,
    /// The running payment, if any.
    pub payment: Option<Process>,
    /// The running order instances, oldest first.
    pub orders: Vec<Process>,
    order_flags: Vec<String>,
    cpus: Option<CpuSplit>,
    quota: Option<CpuQuota>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts payment, the link, one order with `order_flags` added to its command line, and
    /// the front.
    pub async fn start(order_flags: &[&str]) -> Self {
        Self::start_on(order_flags, None, None).await
    }

    /// [`start`](Self::start), with order and payment on `cpus.system` and loadgen, and this
    /// process with its proxies, on `cpus.generator`: what a load test on its own machine
    /// would measure, instead of a generator that takes the cores it is meant to load.
    /// With a `quota`, order and payment together get that CPU budget, as a Kubernetes CPU
    /// limit would give them.
    pub async fn start_on(
        order_flags: &[&str],
        cpus: Option<CpuSplit>,
        quota: Option<CpuQuota>,
    ) -> Self {
        if let Some(cpus) = &cpus {
            cpus.pin_this_process();
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let placeholder = "127.0.0.1:9".parse().expect("an address");
        let mut cluster = Self {
            front: Proxy::http_front(placeholder).await.expect("front proxy"),
            link: Proxy::start(placeholder).await.expect("link proxy"),
            payment: None,
            orders: Vec::new(),
            order_flags: order_flags.iter().map(|flag| (*flag).to_owned()).collect(),
            cpus,
            quota,
            dir,
        };
        cluster.start_payment().await;
        let order = cluster.start_order().await;
        cluster.route_to(&order);
        cluster.orders.push(order);
        cluster
    }

    /// Order's SQLite file.
    pub fn order_db(&self) -> PathBuf {
        self.dir.path().join("order.db")
    }

    /// Payment's ledger file.
    pub fn payment_db(&self) -> PathBuf {
        self.dir.path().join("payment.db")
    }

    /// The state directory (loadgen reports go under it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts payment on its ledger and points the link at it.
    pub async fn start_payment(&mut self) {
        let ledger = ServiceArgs::payment(&sqlite_url(&self.payment_db()));
        let payment = self
            .spawn(
                Side::System,
                "payment",
                &ledger.as_strs(),
                &[("ADMIN_TOKEN", ADMIN_TOKEN)],
            )
            .await
            .expect("payment starts");
        self.link.set_upstream(
            payment
                .addr("grpc_addr")
                .parse()
                .expect("payment's gRPC address"),
        );
        self.payment = Some(payment);
    }

    /// Starts an order instance on the shared store, calling payment through the link. The
    /// front is not pointed at it: see [`route_to`](Self::route_to).
    pub async fn start_order(&self) -> Process {
        let args = ServiceArgs::order(&self.link.url(), &sqlite_url(&self.order_db()))
            .extend(&self.order_flags);
        self.spawn(
            Side::System,
            "order",
            &args.as_strs(),
            &[("ADMIN_TOKEN", ADMIN_TOKEN)],
        )
        .await
        .expect("order starts")
    }

    /// Starts the release build of `program`, on its side's CPUs when they are split.
    async fn spawn(
        &self,
        side: Side,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> std::io::Result<Process> {
        let binary = release_binary(program);
        let process = match &self.cpus {
            None => Process::start(&binary, args, env).await?,
            Some(cpus) => {
                // taskset execs the program: the pid stays the program's (signals, /proc).
                let list = match side {
                    Side::System => &cpus.system,
                    Side::Generator => &cpus.generator,
                };
                let mut wrapped = vec!["-c", list.as_str(), binary.as_str()];
                wrapped.extend_from_slice(args);
                Process::start("taskset", &wrapped, env).await?
            }
        };
        if let (Side::System, Some(quota)) = (side, &self.quota) {
            quota.add(process.id())?;
        }
        Ok(process)
    }

    /// Sends the front's new connections to `order`.
    pub fn route_to(&self, order: &Process) {
        self.front.set_upstream(
            order
                .addr("http_addr")
                .parse()
                .expect("order's HTTP address"),
        );
    }

    /// The newest order instance.
    pub fn order(&self) -> &Process {
        self.orders.last().expect("an order instance runs")
    }

    /// `http://` + the newest order's ops address.
    pub fn order_ops(&self) -> String {
        format!("http://{}", self.order().addr("ops_addr"))
    }

    /// `http://` + payment's ops address (empty while payment is down).
    pub fn payment_ops(&self) -> String {
        self.payment
            .as_ref()
            .map(|payment| format!("http://{}", payment.addr("ops_addr")))
            .unwrap_or_default()
    }

    /// Order's `/metrics` now.
    pub async fn order_metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.order_ops()))
            .await
            .and_then(|response| response.error_for_status())
            .expect("order's /metrics")
            .text()
            .await
            .expect("exposition")
    }

    /// Both books, now.
    pub async fn books(&self) -> Books {
        Books::read(&self.order_db(), &self.payment_db())
            .await
            .expect("order's store and payment's ledger read")
    }

    /// Waits up to `limit` for every order in the store to be settled; returns how long it
    /// took, or `None` if some were still unsettled at the limit.
    pub async fn settled_within(&self, limit: Duration) -> Option<Duration> {
        let start = tokio::time::Instant::now();
        loop {
            if self.books().await.unsettled() == 0 {
                return Some(start.elapsed());
            }
            if start.elapsed() >= limit {
                return None;
            }
            // The store is another process's file: there is nothing to await but time.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits up to `limit` until at least `n` requests are in flight at the front (so that a
    /// fault lands mid-request); returns how many were.
    pub async fn in_flight_at_least(&self, n: i64, limit: Duration) -> i64 {
        let start = tokio::time::Instant::now();
        loop {
            let now = self.front.in_flight();
            if now >= n || start.elapsed() >= limit {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The order ids the front acknowledged (201, 202, 402), and every exchange.
    pub fn acknowledged(&self) -> (Vec<String>, Vec<Exchange>) {
        let exchanges = self.front.exchanges();
        let ids = exchanges
            .iter()
            .filter(|exchange| exchange.acknowledges_order())
            .filter_map(|exchange| exchange.order_id.clone())
            .collect();
        (ids, exchanges)
    }

    /// Starts `loadgen` against the front with `args` added (profile, scale, chaos…); the run
    /// is bounded by its profile, and by `limit` here. `slo` is written to an SLO file given
    /// with `--slo`.
    pub async fn loadgen(&self, args: &[&str], slo: &str, limit: Duration) -> Loadgen {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reports = self.dir.path().join(format!("reports-{run}"));
        let slo_file = self.dir.path().join(format!("slo-{run}.toml"));
        std::fs::write(&slo_file, slo).expect("SLO file");
        let (target, order_ops, payment_ops) =
            (self.front.url(), self.order_ops(), self.payment_ops());
        let (reports_arg, slo_arg) = (
            reports.display().to_string(),
            slo_file.display().to_string(),
        );
        let mut all = vec![
            "--target-url",
            &target,
            "--order-ops-url",
            &order_ops,
            "--payment-ops-url",
            &payment_ops,
            "--metrics-addr",
            "127.0.0.1:0",
            "--reports-dir",
            &reports_arg,
            "--slo",
            &slo_arg,
            "--quiet",
            "--running-metrics",
            "0",
        ];
        all.extend_from_slice(args);
        let process = self
            .spawn(
                Side::Generator,
                "loadgen",
                &all,
                &[("ADMIN_TOKEN", ADMIN_TOKEN)],
            )
            .await
            .expect("loadgen starts");
        let task = tokio::spawn(async move {
            tokio::time::timeout(limit, process.wait())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
        });
        Loadgen { task, reports }
    }

    /// One steady closed-model rung: `users` users of the `stress` profile (its think time)
    /// held for `hold`, run to its end. The ladder's first rung is all that runs: its p99
    /// bound of 0 ms cannot hold, so loadgen stops there.
    pub async fn closed_rung(&self, users: f64, hold: Duration) -> LoadRun {
        let scale = format!("{}", users / 5.0); // the ladder's first rung is 5 users
        let time_scale = format!("{}", hold.as_secs_f64() / 30.0); // of 30 s
        self.loadgen(
            &[
                "--profile",
                "stress",
                "--model",
                "closed",
                "--scale",
                &scale,
                "--time-scale",
                &time_scale,
            ],
            "place_order_p99_ms_max = 0\nbacklog_drain_s_max = 0\n",
            Duration::from_secs(120),
        )
        .await
        .finish()
        .await
    }
}

/// The two sides of a measurement.
#[derive(Debug, Clone, Copy)]
enum Side {
    System,
    Generator,
}
