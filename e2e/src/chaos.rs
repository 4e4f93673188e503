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

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;
use telemetry::testing::Process;

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
        let ledger = format!("sqlite://{}", self.payment_db().display());
        let payment = self
            .spawn(
                Side::System,
                "payment",
                &["--grpc-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"],
                &[
                    ("ADMIN_TOKEN", ADMIN_TOKEN),
                    ("PAYMENT_DATABASE_URL", &ledger),
                ],
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
        let database = format!("sqlite://{}", self.order_db().display());
        let payment_url = self.link.url();
        let mut args = vec![
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--ops-addr",
            "127.0.0.1:0",
            "--payment-url",
            &payment_url,
            "--database-url",
            &database,
        ];
        args.extend(self.order_flags.iter().map(String::as_str));
        self.spawn(
            Side::System,
            "order",
            &args,
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
}

/// The two sides of a measurement.
#[derive(Debug, Clone, Copy)]
enum Side {
    System,
    Generator,
}

/// The CPUs this process may use, split in two: the first half for the system under test,
/// the rest for the load generator. `taskset` lists (`0`, `1-3`, `0,2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSplit {
    pub system: String,
    pub generator: String,
}

impl CpuSplit {
    /// Halves the CPUs this process is allowed (`Cpus_allowed_list` in `/proc/self/status`);
    /// `None` with fewer than two, or where Linux does not say.
    pub fn halves() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let list = status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?;
        Self::of(&cpus(list.trim())?)
    }

    fn of(cpus: &[usize]) -> Option<Self> {
        if cpus.len() < 2 {
            return None;
        }
        let (system, generator) = cpus.split_at(cpus.len() / 2);
        let join = |cpus: &[usize]| {
            cpus.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        Some(Self {
            system: join(system),
            generator: join(generator),
        })
    }

    /// Moves every thread of this process (the test, its proxies) onto the generator's CPUs.
    fn pin_this_process(&self) {
        let status = std::process::Command::new("taskset")
            .args(["--all-tasks", "--pid", "--cpu-list", &self.generator])
            .arg(std::process::id().to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .expect("taskset runs (util-linux)");
        assert!(
            status.success(),
            "taskset pinned the test process: {status}"
        );
    }
}

/// A CPU budget for a group of processes: a cgroup of its own with a CFS quota (v1's
/// `cpu.cfs_quota_us` or v2's `cpu.max`), removed when dropped.
#[derive(Debug)]
pub struct CpuQuota {
    dir: PathBuf,
}

impl CpuQuota {
    /// A quota of `cores` CPUs (0.5: half of one) per 20 ms, or `None` where no writable
    /// cgroup CPU controller is mounted (not root, no delegation).
    pub fn new(cores: f64) -> Option<Self> {
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        let (root, v2) = mounts.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (path, kind, options) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            let path = Path::new(path);
            match *kind {
                "cgroup" if options.split(',').any(|option| option == "cpu") => {
                    Some((path.to_owned(), false))
                }
                "cgroup2"
                    if std::fs::read_to_string(path.join("cgroup.subtree_control")).is_ok_and(
                        |controllers| controllers.split_whitespace().any(|c| c == "cpu"),
                    ) =>
                {
                    Some((path.to_owned(), true))
                }
                _ => None,
            }
        })?;
        let dir = root.join(format!("stormproof-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let period_us = 20_000u64;
        let quota_us = (cores * period_us as f64) as u64;
        let written = if v2 {
            std::fs::write(dir.join("cpu.max"), format!("{quota_us} {period_us}"))
        } else {
            std::fs::write(dir.join("cpu.cfs_period_us"), period_us.to_string())
                .and_then(|()| std::fs::write(dir.join("cpu.cfs_quota_us"), quota_us.to_string()))
        };
        let quota = Self { dir };
        written.ok().map(|()| quota)
    }

    /// Moves process `pid`, every thread of it, into the group.
    fn add(&self, pid: u32) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // Only an empty group can go: by now the processes have been killed, or they leave
        // an empty directory behind for the next boot.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A CPU list (`0-3,8`) as CPU numbers; `None` if it does not parse.
fn cpus(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(first.parse::<usize>().ok()?..=last.parse().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// A loadgen run under way.
pub struct Loadgen {
    task: tokio::task::JoinHandle<Option<i32>>,
    reports: PathBuf,
}

/// What a finished loadgen run left.
#[derive(Debug, Clone)]
pub struct LoadRun {
    /// loadgen's exit code (0: every SLO held, 1: one broke), `None` if it did not finish in
    /// time.
    pub exit: Option<i32>,
    /// `summary.json`.
    pub summary: Value,
}

impl LoadRun {
    /// Requests named `request` (PlaceOrder, GetProducts, GetOrder) answered `status`
    /// ("201", "error", …).
    pub fn count(&self, request: &str, status: &str) -> u64 {
        self.summary["requests"][request]["status"][status]
            .as_u64()
            .unwrap_or(0)
    }

    /// Requests named `request` sent.
    pub fn total(&self, request: &str) -> u64 {
        self.summary["requests"][request]["total"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Every request sent.
    pub fn all_requests(&self) -> u64 {
        self.summary["requests"]
            .as_object()
            .map(|requests| {
                requests
                    .values()
                    .filter_map(|request| request["total"].as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// How long the load ran, seconds.
    pub fn seconds(&self) -> f64 {
        self.summary["duration_s"].as_f64().unwrap_or(0.0)
    }
}

impl Loadgen {
    /// Waits for the run to end and reads its summary.
    pub async fn finish(self) -> LoadRun {
        let exit = self.task.await.expect("loadgen task");
        let summary = std::fs::read_dir(&self.reports)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .and_then(|entry| std::fs::read(entry.path().join("summary.json")).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_else(|| panic!("loadgen left no summary.json (exit {exit:?})"));
        LoadRun { exit, summary }
    }
}

/// Peak resident memory of process `pid` so far, in KiB (`VmHWM`), if Linux says.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Value of the `q` quantile (0..1) of `values` (nearest rank), 0 for none.
pub fn quantile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// The cumulative buckets `(le, count)` of histogram `name` in a Prometheus exposition,
/// summed over the series whose labels satisfy `keep`; `le` of `+Inf` is `f64::INFINITY`.
pub fn histogram(
    exposition: &str,
    name: &str,
    keep: impl Fn(&[(&str, &str)]) -> bool,
) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket{{");
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(&bucket) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let labels: Vec<(&str, &str)> = labels
            .split("\",")
            .filter_map(|pair| pair.split_once("=\""))
            .map(|(key, value)| (key, value.trim_end_matches('"')))
            .collect();
        let Some(le) = labels.iter().find(|(key, _)| *key == "le").map(|(_, le)| {
            if *le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            }
        }) else {
            continue;
        };
        if !keep(&labels) {
            continue;
        }
        let count: f64 = value.trim().parse().unwrap_or(0.0);
        match sums.iter_mut().find(|(bound, _)| *bound == le) {
            Some((_, sum)) => *sum += count,
            None => sums.push((le, count)),
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

/// The upper bound (seconds) of the bucket holding the `q` quantile of the observations made
/// between two readings of one histogram, `before` and `after` (from [`histogram`]), and
/// how many observations that was.
pub fn quantile_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let (_, upper, total) = bucket_between(before, after, q);
    (upper, total)
}

/// The bounds `(lower, upper]` (seconds) of the bucket holding the `q` quantile of the
/// observations made between `before` and `after`, and how many observations that was: the
/// quantile is known to lie between the two.
pub fn bucket_between(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64, f64) {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, count)| {
            let earlier = before
                .iter()
                .find(|(bound, _)| bound == le)
                .map_or(0.0, |(_, count)| *count);
            (*le, count - earlier)
        })
        .collect();
    let total = delta.last().map_or(0.0, |(_, count)| *count);
    let at = delta.iter().position(|(_, count)| *count >= q * total);
    let upper = at.map_or(f64::INFINITY, |at| delta[at].0);
    let lower = at
        .and_then(|at| at.checked_sub(1))
        .map_or(0.0, |below| delta[below].0);
    (lower, upper, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quantile_bucket_is_read_from_the_difference_of_two_readings() {
        let before = [(0.1, 10.0), (0.5, 10.0), (f64::INFINITY, 10.0)];
        let after = [(0.1, 60.0), (0.5, 108.0), (f64::INFINITY, 110.0)];
        // 100 observations in between: 50 under 0.1 s, 48 more under 0.5 s, 2 above.
        assert_eq!(bucket_between(&before, &after, 0.5), (0.0, 0.1, 100.0));
        assert_eq!(bucket_between(&before, &after, 0.98), (0.1, 0.5, 100.0));
        assert_eq!(
            bucket_between(&before, &after, 0.99),
            (0.5, f64::INFINITY, 100.0)
        );
        assert_eq!(quantile_between(&before, &after, 0.98), (0.5, 100.0));
    }

    #[test]
    fn a_cpu_list_is_split_into_halves() {
        assert_eq!(cpus("0-3,8"), Some(vec![0, 1, 2, 3, 8]));
        assert_eq!(cpus("0-x"), None);
        assert_eq!(CpuSplit::of(&[0]), None);
        let split = |system: &str, generator: &str| {
            Some(CpuSplit {
                system: system.to_owned(),
                generator: generator.to_owned(),
            })
        };
        assert_eq!(CpuSplit::of(&[0, 1]), split("0", "1"));
        assert_eq!(CpuSplit::of(&[0, 1, 2, 3, 8]), split("0,1", "2,3,8"));
    }
}
