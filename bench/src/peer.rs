//! loadgen's open model beside a peer: `oha -q RATE --latency-correction` and
//! `loadgen --profile catalogue --stages RATE:10s` offer the same fixed rate of
//! `GET /v1/products` to the same slowed endpoint, one after the other, and their achieved rates
//! and p99s (both timed from each request's scheduled moment) are set side by side.
//!
//! The endpoint is a stub with a known capacity rather than order: a fixed number of workers,
//! each holding a request for a fixed service time, with a first-come queue in front of them.
//! Order's capacity moves with the machine's noise, and the comparison is about the two load
//! generators, not about order. Below its capacity the queue stays short; above it the queue
//! grows for the whole run, and only a generator that times from the schedule sees the wait.

use std::{
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::sync::Semaphore;

/// The stub's workers and the time each request holds one: a nominal capacity of
/// `WORKERS / SERVICE` = 400 requests/s, less in fact (tokio's timer wakes on the millisecond
/// after the deadline), so the stub measures how long it really held each request.
const WORKERS: usize = 4;
const SERVICE: Duration = Duration::from_millis(10);
/// The offered rates, as shares of the nominal capacity: one where the queue stays short, one
/// where it grows for the whole run.
const LOADS: [f64; 2] = [0.8, 1.1];
/// How long each generator offers each rate.
const HOLD: Duration = Duration::from_secs(10);
/// Each generator's most requests in flight at once (loadgen's pool, oha's connections):
/// more than the queue above capacity ever holds, so that neither drops nor delays an arrival.
const IN_FLIGHT: usize = 1500;
/// Rounds, alternating the generators, to show the run-to-run spread.
const ROUNDS: usize = 2;

/// One generator's figures at one rate.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Requests sent per second of the schedule (loadgen: arrivals not dropped; oha: requests
    /// it counted, answered or failed, over its `-z`).
    pub achieved_per_second: f64,
    /// Response time from the scheduled moment, of the requests answered.
    pub p99_ms: f64,
    /// The share of requests sent that were answered 200.
    pub answered: f64,
}

/// Both generators at one offered rate, in one round.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    pub rate: f64,
    pub loadgen: Figures,
    pub oha: Figures,
}

/// Every round at every rate, and the stub's capacity as measured.
#[derive(Debug, Clone)]
pub struct Peer {
    pub workers: usize,
    /// The mean time the stub held a request, milliseconds.
    pub held_ms: f64,
    pub sides: Vec<Side>,
}

impl Peer {
    /// The stub's capacity in requests per second: its workers over the mean hold.
    pub fn capacity(&self) -> f64 {
        self.workers as f64 * 1000.0 / self.held_ms.max(f64::EPSILON)
    }
}

/// Runs both generators against the stub; `Err` says why it could not (oha missing, a
/// generator failing).
pub fn measure(loadgen: &Path) -> anyhow::Result<Peer> {
    let oha = crate::stack::which("oha")
        .context("`oha` is not installed (`scripts/install-deps bench` installs it)")?;
    if !loadgen.exists() {
        bail!("{} is not built", loadgen.display());
    }
    let stub = Stub::start()?;
    let reports = tempfile::tempdir()?;
    let mut sides = Vec::new();
    let nominal = WORKERS as f64 / SERVICE.as_secs_f64();
    for round in 0..ROUNDS {
        for load in LOADS {
            let rate = load * nominal;
            eprintln!("bench: peer round {}: {rate:.0} requests/s", round + 1);
            let loadgen = run_loadgen(loadgen, &stub.url, rate, reports.path(), round)?;
            let oha = run_oha(&oha, &stub.url, rate)?;
            sides.push(Side { rate, loadgen, oha });
        }
    }
    Ok(Peer {
        workers: WORKERS,
        held_ms: stub.held_ms(),
        sides,
    })
}

fn run_loadgen(
    loadgen: &Path,
    url: &str,
    rate: f64,
    reports: &Path,
    round: usize,
) -> anyhow::Result<Figures> {
    let dir = reports.join(format!("{rate:.0}-{round}"));
    let output = Command::new(loadgen)
        .args(["--profile", "catalogue", "--model", "open", "--quiet"])
        // Evenly spaced, as oha spaces `-q`: Poisson arrivals queue more below capacity.
        .args(["--arrivals", "uniform"])
        .args(["--stages", &format!("{rate:.1}:{}s", HOLD.as_secs())])
        .args(["--max-users", &IN_FLIGHT.to_string()])
        .args(["--seed", &(round + 1).to_string()])
        .args(["--target-url", url, "--order-ops-url", url])
        .args(["--prometheus-url", "none", "--metrics-addr", "127.0.0.1:0"])
        .arg("--reports-dir")
        .arg(&dir)
        .env("OTEL_SDK_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .output()
        .context("cannot run loadgen")?;
    let summary = std::fs::read_dir(&dir)
        .ok()
        .and_then(|mut runs| runs.next())
        .and_then(Result::ok)
        .map(|run| run.path().join("summary.json"))
        .and_then(|path| std::fs::read_to_string(path).ok())
        .with_context(|| {
            format!(
                "loadgen wrote no summary ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })?;
    let summary: Value = serde_json::from_str(&summary).context("loadgen's summary.json")?;
    let sent = summary["open"]["offered"].as_u64().unwrap_or(0) as f64
        - summary["open"]["dropped"].as_u64().unwrap_or(0) as f64;
    let ok = summary["requests"]["GetProducts"]["status"]["200"]
        .as_u64()
        .unwrap_or(0) as f64;
    figures(
        summary["open"]["achieved_per_second"].as_f64(),
        summary["requests"]["GetProducts"]["response_p99_ms"].as_f64(),
        Some(ok / sent.max(1.0)),
    )
    .context("loadgen's summary has no achieved rate or GetProducts p99")
}

fn run_oha(oha: &Path, url: &str, rate: f64) -> anyhow::Result<Figures> {
    let output = Command::new(oha)
        .args([
            "-q",
            &format!("{rate:.1}"),
            "-z",
            &format!("{}s", HOLD.as_secs()),
        ])
        .args(["-c", &IN_FLIGHT.to_string(), "--latency-correction"])
        // Wait for the answers in flight when `-z` ends, as loadgen does: by default oha
        // abandons them, and they are the ones that waited longest.
        .arg("--wait-ongoing-requests-after-deadline")
        .args(["--no-tui", "--output-format", "json"])
        .arg(format!("{url}/v1/products"))
        .output()
        .context("cannot run oha")?;
    if !output.status.success() {
        bail!(
            "oha failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let report: Value = serde_json::from_slice(&output.stdout).context("oha's JSON output")?;
    let sum = |key: &str| {
        report[key].as_object().map_or(0, |counts| {
            counts.values().filter_map(Value::as_u64).sum::<u64>()
        })
    };
    let counted = (sum("statusCodeDistribution") + sum("errorDistribution")) as f64;
    let ok = report["statusCodeDistribution"]["200"]
        .as_u64()
        .unwrap_or(0) as f64;
    figures(
        (counted > 0.0).then(|| counted / HOLD.as_secs_f64()),
        report["latencyPercentiles"]["p99"]
            .as_f64()
            .map(|seconds| seconds * 1000.0),
        Some(ok / counted.max(1.0)),
    )
    .context("oha's JSON has no answers or no p99")
}

fn figures(
    achieved_per_second: Option<f64>,
    p99_ms: Option<f64>,
    answered: Option<f64>,
) -> Option<Figures> {
    Some(Figures {
        achieved_per_second: achieved_per_second?,
        p99_ms: p99_ms?,
        answered: answered?,
    })
}

/// The slowed endpoint: `GET /v1/products` answered by one of [`WORKERS`] after
/// [`SERVICE`], first come first served, on a runtime and thread of its own.
struct Stub {
    url: String,
    /// Requests served, and the nanoseconds they held a worker in all.
    held: Arc<(AtomicU64, AtomicU64)>,
}

impl Stub {
    /// The mean time a request held a worker, milliseconds.
    fn held_ms(&self) -> f64 {
        let (served, nanos) = (&self.held.0, &self.held.1);
        nanos.load(Ordering::Relaxed) as f64 / 1e6 / served.load(Ordering::Relaxed).max(1) as f64
    }

    fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let held = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let holding = held.clone();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let workers = Arc::new(Semaphore::new(WORKERS));
                let app = axum::Router::new().route(
                    "/v1/products",
                    axum::routing::get(move || {
                        let (workers, holding) = (workers.clone(), holding.clone());
                        async move {
                            let _worker = workers.acquire().await;
                            let start = Instant::now();
                            tokio::time::sleep(SERVICE).await;
                            let nanos =
                                u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                            holding.0.fetch_add(1, Ordering::Relaxed);
                            holding.1.fetch_add(nanos, Ordering::Relaxed);
                            axum::Json(serde_json::json!({
                                "products": [{"sku": "SKU-1", "name": "stub", "price_cents": 100}]
                            }))
                        }
                    }),
                );
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        if let Err(error) = axum::serve(listener, app).await {
                            eprintln!("bench: the peer stub stopped: {error}");
                        }
                    }
                    Err(error) => eprintln!("bench: the peer stub cannot listen: {error}"),
                }
            });
        });
        Ok(Self { url, held })
    }
}
