//! The harness of Stormproof's end-to-end tests: the workspace's own binaries started as
//! processes on 127.0.0.1, a real Prometheus and Alertmanager started with the repo's configs,
//! and enough PromQL reading to name what each dashboard panel and rule depends on.
//!
//! - [`binary`] finds `order`, `payment` and `loadgen` in the target directory
//!   (`cargo nextest run --workspace` builds them);
//! - [`Stack`] runs payment and order with their admin APIs on;
//! - [`monitoring::Prometheus`] and [`monitoring::Alertmanager`] run the Debian (or upstream)
//!   binaries against a copy of `prometheus/` whose targets point at the stack;
//! - [`promql::dependencies`] lists the selectors and grouping labels of an expression.

pub mod chaos;
pub mod ledger;
pub mod monitoring;
pub mod promql;
pub mod proxy;
pub mod reliability;

use std::path::{Path, PathBuf};

use testkit::{Process, ServiceArgs, sqlite_url};

/// The admin token the stack's processes are started with.
pub const ADMIN_TOKEN: &str = "e2e-admin-token";

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ is inside the repository")
        .to_owned()
}

/// One of the workspace's binaries, next to the running test in the target directory.
pub fn binary(name: &str) -> String {
    let dir = target_dir().join(if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    });
    existing(
        dir.join(name),
        "run the tests with `cargo nextest run --workspace`, which builds every binary",
    )
}

/// One of the workspace's binaries as built by `cargo build --release`: the chaos suite
/// measures throughput and latency, which the debug profile would distort.
pub fn release_binary(name: &str) -> String {
    existing(
        target_dir().join("release").join(name),
        "build them first: cargo build --release --bin order --bin payment --bin loadgen \
         (`task chaos:verify` and `task test` do)",
    )
}

/// The target directory the running test was built into.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("tests run from <target>/<profile>/deps/")
        .to_owned()
}

fn existing(path: PathBuf, hint: &str) -> String {
    assert!(path.exists(), "{} is missing: {hint}", path.display());
    path.display().to_string()
}

/// The first of `names` found on PATH.
pub fn tool(names: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "none of {names:?} is on PATH: install Debian's prometheus and \
                 prometheus-alertmanager (apt-get install prometheus prometheus-alertmanager; \
                 .ci/run and `task up` do it)"
            )
        })
}

/// Payment and order as processes on 127.0.0.1:0, with their admin APIs on, state in a
/// temporary directory and tracing off.
pub struct Stack {
    pub payment: Process,
    pub order: Process,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// Starts both; `order_flags` are added to order's command line.
    pub async fn start(order_flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = [("ADMIN_TOKEN", ADMIN_TOKEN)];
        let payment = ServiceArgs::payment(&sqlite_url(&dir.path().join("payment.db")));
        let payment = Process::start(&binary("payment"), &payment.as_strs(), &env)
            .await
            .expect("payment starts");
        let payment_url = format!("http://{}", payment.addr("grpc_addr"));
        let args = ServiceArgs::order(&payment_url, &sqlite_url(&dir.path().join("order.db")))
            .extend(order_flags);
        let order = Process::start(&binary("order"), &args.as_strs(), &env)
            .await
            .expect("order starts");
        Self {
            payment,
            order,
            _dir: dir,
        }
    }

    /// `http://host:port` of a bound address of order (`http_addr`, `ops_addr`, ...).
    pub fn order_url(&self, field: &str) -> String {
        format!("http://{}", self.order.addr(field))
    }

    /// `http://host:port` of a bound address of payment.
    pub fn payment_url(&self, field: &str) -> String {
        format!("http://{}", self.payment.addr(field))
    }
}
