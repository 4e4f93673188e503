//! `bench`: what resilience and telemetry cost, as ratios measured in one run.
//!
//! It starts the release `order` and `payment` binaries that sit next to it in the target
//! directory (and its own bare tonic echo server, as a child process like them) on 127.0.0.1,
//! drives `PlaceOrder` from one tonic client at fixed concurrency for a fixed time, and prints
//! each figure beside a baseline measured in the same run:
//!
//! - order (healthy payment, full telemetry) against the echo server, and against a relay
//!   (a tonic server that calls echo: two hops, as order makes, and no work);
//! - order with metrics and tracing on against the same build with both off;
//! - fail-fast: payment down with the breaker open, against the breaker disabled;
//! - throughput and resident memory at 1, 8, 64 and 256 concurrent calls;
//! - the breaker's cost per call against its peers, read from criterion's latest output;
//! - loadgen against wrk (closed, flat out) and its open model against oha (same fixed rates,
//!   latency from the schedule) against a slowed stub (`bench peer` runs only that).
//!
//! Subjects that are compared run in interleaved rounds, so that drift on a shared machine
//! falls on both. Nothing here asserts a timing: the figures are for a human to read, and
//! `--write docs/performance.md` regenerates the generated section of that file.
//!
//! - `stack`: the child processes, their admin APIs, `/proc` memory readings.
//! - `load`: the closed-loop driver and what a run measured.
//! - `echo`: the baseline servers (echo, relay). `generators`: loadgen against wrk. `peer`:
//!   loadgen's open model against oha. `sink`: an OTLP collector that counts spans.
//! - `report`: the machine, criterion's figures, and the Markdown report.

#![forbid(unsafe_code)]

mod echo;
mod generators;
mod load;
mod peer;
mod report;
mod sink;
mod stack;

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use serde_json::{Value, json};
use testkit::ServiceArgs;

use crate::{
    load::{Clients, Outcome},
    report::{FailFast, Report, Scale, Throughput},
    sink::Sink,
    stack::{Admin, Binaries, Service},
};

/// Measures what the order service's resilience and telemetry cost, as ratios against
/// baselines measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "bench", version, about)]
struct Args {
    /// Length of each fail-fast case and scaling step.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,

    // Each round runs echo, relay, order, order without telemetry and order on disk in turn.
    // Seven short rounds rather than three long ones: each ratio is stated as the median of
    // its per-round ratios with their range, and a goal inside that range is reported as
    // inside the noise (on this shared machine three rounds of one ratio spread 2–20 %).
    /// Interleaved rounds of the throughput comparison.
    #[arg(long, default_value_t = 7)]
    rounds: usize,

    /// Length of each throughput round.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    round: Duration,

    /// Concurrent calls of the throughput comparison.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,

    // Below the payment bulkhead's 64, so that every call reaches the breaker.
    /// Concurrent calls of the fail-fast cases.
    #[arg(long, default_value_t = 32)]
    fail_fast_concurrency: usize,

    /// Replace the generated section of this Markdown file (docs/performance.md).
    #[arg(long)]
    write: Option<PathBuf>,

    // DWARF call graphs, one more run of order at --concurrency.
    /// Record order under load with `perf record` into this file.
    #[arg(long)]
    perf_record: Option<PathBuf>,

    // Then `order` and `payment` are built first, in the bench's own profile.
    /// Cargo, which sets this when it runs the bench.
    #[arg(long, env = "CARGO", hide = true)]
    cargo: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Serve the bare tonic echo baseline (the bench starts it as a child process).
    #[command(hide = true)]
    EchoServer,
    /// Serve the two-hop baseline: PlaceOrder answered by calling the echo server.
    #[command(hide = true)]
    RelayServer {
        /// The echo server, `http://host:port`.
        #[arg(long)]
        upstream: String,
    },
    /// Only loadgen's open model beside oha at fixed rates against a slowed stub (also part of
    /// the full run).
    Peer,
}

/// The scaling ladder of issue 11.
const SCALING: [usize; 4] = [1, 8, 64, 256];

/// Warm-up before the first measured run of each subject.
const WARM_UP: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Some(Command::EchoServer) => echo::serve().await,
        Some(Command::RelayServer { ref upstream }) => echo::serve_relay(upstream.clone()).await,
        Some(Command::Peer) => {
            let binaries = Binaries::locate(args.cargo.as_deref())?;
            let peer =
                tokio::task::spawn_blocking(move || peer::measure(&binaries.loadgen)).await??;
            println!("{}", report::peer_markdown(&peer)?);
            Ok(())
        }
        None => run(&args).await,
    }
}

/// How a stack's telemetry is set.
#[derive(Debug, Clone, Copy)]
enum Telemetry<'a> {
    /// Metrics on `/metrics`, spans exported to `endpoint`, JSON logs.
    Full { endpoint: &'a str },
    /// `OTEL_SDK_DISABLED=true` and `OTEL_METRICS_EXPORTER=none`; logs unchanged.
    Off,
}

/// One payment and one order process, each in its own directory (their SQLite files).
struct Stack {
    order: Service,
    payment: Service,
    order_admin: Admin,
    payment_admin: Admin,
    clients: Clients,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn start(
        binaries: &Binaries,
        token: &str,
        parent: &std::path::Path,
        telemetry: Telemetry<'_>,
        order_env: &[(&str, String)],
        concurrency: usize,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir_in(parent)
            .with_context(|| format!("cannot make a directory in {}", parent.display()))?;
        let mut env = vec![("ADMIN_TOKEN", token.to_owned())];
        match telemetry {
            Telemetry::Full { endpoint } => env.extend([
                ("OTEL_SDK_DISABLED", "false".to_owned()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
                ("OTEL_METRICS_EXPORTER", "prometheus".to_owned()),
            ]),
            Telemetry::Off => env.extend([
                ("OTEL_SDK_DISABLED", "true".to_owned()),
                ("OTEL_METRICS_EXPORTER", "none".to_owned()),
            ]),
        }
        // The services keep their SQLite files under `.stormproof/` of their working directory
        // (tmpfs or disk, as the case asks).
        let payment_args = ServiceArgs::payment("sqlite://.stormproof/payment.db");
        let payment = Service::start(
            "payment",
            &binaries.payment,
            &payment_args.as_strs(),
            &env,
            dir.path(),
        )
        .await?;
        let payment_url = format!("http://{}", payment.addr("grpc_addr")?);
        let order_args = ServiceArgs::order(&payment_url, "sqlite://.stormproof/order.db");
        env.extend(order_env.iter().cloned());
        let order_args = order_args.as_strs();
        let order = Service::start("order", &binaries.order, &order_args, &env, dir.path()).await?;
        let clients = Clients::connect(
            &order.addr("grpc_addr")?,
            concurrency,
            vec![order.pid(), payment.pid()],
        )
        .await?;
        Ok(Self {
            order_admin: Admin::new(&order.addr("ops_addr")?, token),
            payment_admin: Admin::new(&payment.addr("ops_addr")?, token),
            order,
            payment,
            clients,
            _dir: dir,
        })
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        self.payment.check_alive()?;
        self.order.check_alive()
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let binaries = Binaries::locate(args.cargo.as_deref())?;
    let machine_before = report::Machine::read();
    let duration = args.duration;
    let token = format!(
        "bench-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or_default()
    );
    let sink = Sink::start().context("cannot start the OTLP sink")?;
    // Stores on tmpfs, so that the throughput figures are the services' and not the disk's
    // (both stores write with synchronous=FULL); one stack keeps its store on the disk that
    // holds the target directory, to show what durability costs.
    let tmpfs = PathBuf::from("/dev/shm");
    let fast_dir = if tmpfs.is_dir() {
        tmpfs
    } else {
        std::env::temp_dir()
    };
    let disk_dir = binaries
        .target_dir()
        .context("cannot find the target directory")?
        .to_path_buf();

    eprintln!("bench: starting echo, three order + payment stacks and an OTLP sink");
    let echo = Service::start("echo", &binaries.bench, &["echo-server"], &[], &fast_dir).await?;
    let echo_clients =
        Clients::connect(&echo.addr("grpc_addr")?, args.concurrency, vec![echo.pid()]).await?;
    let relay = Service::start(
        "relay",
        &binaries.bench,
        &[
            "relay-server",
            "--upstream",
            &format!("http://{}", echo.addr("grpc_addr")?),
        ],
        &[],
        &fast_dir,
    )
    .await?;
    let relay_clients = Clients::connect(
        &relay.addr("grpc_addr")?,
        args.concurrency,
        vec![relay.pid(), echo.pid()],
    )
    .await?;
    let full = Telemetry::Full {
        endpoint: sink.endpoint(),
    };
    let mut on = Stack::start(&binaries, &token, &fast_dir, full, &[], args.concurrency).await?;
    let mut off = Stack::start(
        &binaries,
        &token,
        &fast_dir,
        Telemetry::Off,
        &[],
        args.concurrency,
    )
    .await?;
    let mut disk = Stack::start(&binaries, &token, &disk_dir, full, &[], args.concurrency).await?;

    // 1, 2: throughput, interleaved.
    let subjects: [(&str, &Clients); 5] = [
        ("echo", &echo_clients),
        ("relay", &relay_clients),
        ("on", &on.clients),
        ("off", &off.clients),
        ("disk", &disk.clients),
    ];
    for (name, clients) in subjects {
        eprintln!("bench: warming up {name}");
        load::drive(clients, args.concurrency, WARM_UP).await;
    }
    let spans_before = sink.spans();
    let mut rounds: [Vec<Outcome>; 5] = Default::default();
    for round in 0..args.rounds {
        for offset in 0..subjects.len() {
            let index = (round + offset) % subjects.len();
            let (name, clients) = subjects[index];
            eprintln!(
                "bench: throughput round {}/{} {name}",
                round + 1,
                args.rounds
            );
            rounds[index].push(load::drive(clients, args.concurrency, args.round).await);
        }
    }
    on.check_alive()?;
    off.check_alive()?;
    disk.check_alive()?;
    let spans = sink
        .spans()
        .into_iter()
        .map(|(name, count)| {
            let before = spans_before.get(&name).copied().unwrap_or_default();
            (name, count - before)
        })
        .filter(|(_, count)| *count > 0)
        .collect();
    let [echo_runs, relay_runs, on_runs, off_runs, disk_runs] = rounds;
    drop(relay_clients);
    drop(relay);
    let throughput = Throughput {
        concurrency: args.concurrency,
        duration: args.round,
        echo: echo_runs,
        relay: relay_runs,
        on: on_runs,
        off: off_runs,
        disk: disk_runs,
        spans,
    };

    if let Some(path) = &args.perf_record {
        eprintln!("bench: perf record of order at {}", args.concurrency);
        perf_record(
            path,
            on.order.pid(),
            &on.clients,
            args.concurrency,
            duration,
        )
        .await?;
    }
    drop(off);
    drop(disk);

    // 5: scaling, order against echo at each step, and order's memory.
    let mut scaling = Vec::new();
    for concurrency in SCALING {
        let order_clients = Clients::connect(
            &on.order.addr("grpc_addr")?,
            concurrency,
            vec![on.order.pid(), on.payment.pid()],
        )
        .await?;
        let echo_clients =
            Clients::connect(&echo.addr("grpc_addr")?, concurrency, vec![echo.pid()]).await?;
        eprintln!("bench: scaling at {concurrency}");
        let echo_run = load::drive(&echo_clients, concurrency, duration).await;
        let order_run = load::drive(&order_clients, concurrency, duration).await;
        let (rss_kib, peak_kib) = stack::memory_kib(on.order.pid())?;
        scaling.push(Scale {
            concurrency,
            echo: echo_run,
            order: order_run,
            rss_kib,
            peak_kib,
        });
    }
    on.check_alive()?;
    drop(on);
    drop(echo);

    // 3: fail-fast.
    let fail_fast = fail_fast(&binaries, &token, &fast_dir, full, args).await?;

    // 4: the breaker's cost per call, from criterion's latest output; loadgen against wrk.
    let breaker = report::read_criterion(binaries.target_dir());
    eprintln!("bench: loadgen against wrk (loadgen/bench/catalogue.sh)");
    let generators = generators::measure(binaries.target_dir());
    eprintln!("bench: loadgen's open model against oha");
    let loadgen = binaries.loadgen.clone();
    let peer = tokio::task::spawn_blocking(move || peer::measure(&loadgen))
        .await?
        .map_err(|error| format!("{error:#}"));

    let report = Report {
        profile: binaries.profile(),
        machine_before,
        machine_after: report::Machine::read(),
        throughput,
        case_duration: args.duration,
        scaling,
        fail_fast,
        breaker,
        generators,
        peer,
    };
    let markdown = report.markdown();
    println!("{markdown}");
    if let Some(path) = &args.write {
        report::write_section(path, &markdown)?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

/// Payment down (hanging, then refusing) with the breaker disabled, then with it open.
async fn fail_fast(
    binaries: &Binaries,
    token: &str,
    dir: &std::path::Path,
    telemetry: Telemetry<'_>,
    args: &Args,
) -> anyhow::Result<FailFast> {
    let concurrency = args.fail_fast_concurrency;
    // An open breaker that stays open for the run (a wait of 60 s, and a maximum as long: order
    // refuses a wait above its maximum); a hanging payment costs the 1 s deadline (order's
    // 150 ms budget for payment would end it first); the adaptive limit kept out of the way of
    // 1 s answers, and no reconciler competing for the bulkhead: the comparison is the
    // breaker's alone.
    let order_env = [
        ("PAYMENT_TIMEOUT", "1s".to_owned()),
        ("PAYMENT_BUDGET", "1s".to_owned()),
        ("BREAKER_WAIT", "60s".to_owned()),
        ("BREAKER_MAX_WAIT", "60s".to_owned()),
        ("LIMIT_LATENCY_THRESHOLD", "1h".to_owned()),
        ("RECONCILE_INTERVAL", "1h".to_owned()),
    ];
    let mut stack = Stack::start(binaries, token, dir, telemetry, &order_env, concurrency).await?;
    load::drive(&stack.clients, concurrency, WARM_UP).await;
    let (payment_admin, order_admin) = (&stack.payment_admin, &stack.order_admin);
    let faults = move |body: Value| async move { payment_admin.put("/admin/faults", &body).await };
    let breaker = "/admin/breaker";
    let set_breaker = move |state: &'static str| async move {
        order_admin.put(breaker, &json!({ "state": state })).await
    };

    eprintln!("bench: fail-fast, payment hanging, breaker disabled");
    faults(json!({ "hang_rate": 1.0 })).await?;
    set_breaker("disabled").await?;
    let hanging_alone = load::drive(&stack.clients, 1, args.duration).await;
    let hanging = load::drive(&stack.clients, concurrency, args.duration).await;

    eprintln!("bench: fail-fast, payment refusing, breaker disabled");
    faults(json!({ "outage": true })).await?;
    let refusing = load::drive(&stack.clients, concurrency, args.duration).await;

    eprintln!("bench: fail-fast, payment hanging, breaker tripped");
    faults(json!({ "hang_rate": 1.0 })).await?;
    set_breaker("reset").await?;
    let mut state = String::new();
    for _ in 0..5 {
        load::drive(&stack.clients, 8, Duration::from_secs(2)).await;
        state = stack.order_admin.get(breaker).await?["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if state == "open" {
            break;
        }
    }
    anyhow::ensure!(
        state == "open",
        "the breaker did not open with payment hanging (state {state})"
    );
    let open_alone = load::drive(&stack.clients, 1, args.duration).await;
    let open = load::drive(&stack.clients, concurrency, args.duration).await;
    let still = stack.order_admin.get(breaker).await?["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        still == "open",
        "the breaker left open during the run ({still})"
    );
    stack.check_alive()?;
    Ok(FailFast {
        concurrency,
        open_alone,
        open,
        hanging_alone,
        hanging,
        refusing,
    })
}

/// `perf record` of `pid` while order is under load.
async fn perf_record(
    path: &std::path::Path,
    pid: u32,
    clients: &Clients,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let mut perf = tokio::process::Command::new("perf")
        // The release profile keeps no frame pointers: unwind from DWARF (line tables are on).
        .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(path)
        .args(["--", "sleep", &duration.as_secs().max(1).to_string()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cannot run perf (apt-get install linux-perf)")?;
    let run = load::drive(clients, concurrency, duration).await;
    let status = perf.wait().await?;
    anyhow::ensure!(status.success(), "perf record failed: {status}");
    eprintln!(
        "bench: profiled {} calls/s into {}",
        run.rate().round(),
        path.display()
    );
    Ok(())
}
