//! Scenario 6: the network between order and payment breaks, through the link proxy: added latency,
//! connection resets, a blackhole, each healed in turn, under a steady load.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use stormproof_e2e::{
    chaos::{Cluster, quantile},
    proxy::Fault,
    reliability::Row,
};
use testkit::sample;
use tokio::time::Instant;

use crate::{assert_rows, percent};

const NAME: &str = "network faults order ↔ payment";
/// order's `--payment-timeout` default: no PlaceOrder may wait much longer.
const DEADLINE: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_millis(500);

/// Samples the breaker's state from order's /metrics every 100 ms: (since start, state).
async fn watch_breaker(
    ops: String,
    start: Instant,
    seen: Arc<Mutex<Vec<(Duration, &'static str)>>>,
) {
    let http = reqwest::Client::new();
    loop {
        if let Ok(response) = http.get(format!("{ops}/metrics")).send().await
            && let Ok(text) = response.text().await
        {
            let state = ["closed", "open", "half_open", "forced_open", "disabled"]
                .into_iter()
                .find(|state| {
                    sample(
                        &text,
                        "circuit_breaker_state",
                        &[("dependency", "payment"), ("state", state)],
                    ) == Some(1.0)
                });
            if let (Some(state), Ok(mut seen)) = (state, seen.lock()) {
                seen.push((start.elapsed(), state));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_faults_open_the_breaker_and_no_request_outlives_its_deadline() {
    // The breaker's clock, scaled like the load: it counts calls over 5 s (60 s by default)
    // and waits 3 s before its trials (10 s), so that three 6 s faults and their heals fit in
    // 44 s. With the default window a 6 s fault is a tenth of what the breaker weighs, and
    // never trips it: that is its design, not a finding.
    let cluster = Cluster::start(&["--breaker-window", "5s", "--breaker-wait", "3s"]).await;
    let load = cluster
        .loadgen(
            &[
                "--profile",
                "soak",
                "--scale",
                "3",
                "--time-scale",
                "0.0233",
            ],
            "backlog_drain_s_max = 0\n",
            Duration::from_secs(120),
        )
        .await;
    let start = Instant::now();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watcher = tokio::spawn(watch_breaker(cluster.order_ops(), start, seen.clone()));

    let phases = [
        (
            "latency 400 ms each way",
            Fault::Latency(Duration::from_millis(400)),
        ),
        ("connection resets", Fault::Reset),
        ("blackhole", Fault::Blackhole),
    ];
    let mut windows = Vec::new();
    for (index, (_, fault)) in phases.iter().enumerate() {
        let from = Duration::from_secs(4 + 12 * index as u64);
        tokio::time::sleep_until(start + from).await;
        cluster.link.set_fault(*fault);
        tokio::time::sleep_until(start + from + Duration::from_secs(6)).await;
        cluster.link.set_fault(Fault::None);
        windows.push((from, from + Duration::from_secs(6)));
    }
    let run = load.finish().await;
    let settled = cluster.settled_within(Duration::from_secs(30)).await;
    watcher.abort();

    let seen = seen.lock().map(|seen| seen.clone()).unwrap_or_default();
    let metrics = cluster.order_metrics().await;
    for line in metrics.lines().filter(|line| {
        [
            "circuit_breaker_transitions_total",
            "fallback_total",
            "circuit_breaker_calls_total",
            "retry_attempts_total",
        ]
        .iter()
        .any(|name| line.starts_with(name))
    }) {
        println!("order: {line}");
    }
    println!(
        "breaker samples: {:?}",
        seen.iter().step_by(10).collect::<Vec<_>>()
    );
    let state_at = |at: Duration| {
        seen.iter()
            .rev()
            .find(|(when, _)| *when <= at)
            .map_or("unknown", |(_, state)| *state)
    };
    let mut rows = Vec::new();
    for ((name, _), (from, to)) in phases.iter().zip(&windows) {
        let opened = seen
            .iter()
            .filter(|(when, _)| *when >= *from && *when <= *to + Duration::from_millis(500))
            .find(|(_, state)| *state == "open")
            .map(|(when, _)| *when - *from);
        let heal_end = *to + Duration::from_secs(6);
        let after = state_at(heal_end);
        rows.push(Row::new(
            6,
            NAME,
            format!("{name}: breaker opens during the fault, closed again ≤ 6 s after the heal"),
            format!(
                "{}; {} 6 s after the heal",
                opened.map_or("never opened".to_owned(), |took| format!(
                    "opened {:.1} s into it",
                    took.as_secs_f64()
                )),
                after
            ),
            opened.is_some() && after == "closed",
        ));
    }

    let (acknowledged, exchanges) = cluster.acknowledged();
    let mut place: Vec<Duration> = exchanges
        .iter()
        .filter(|exchange| exchange.is_place_order())
        .map(|exchange| exchange.latency)
        .collect();
    let slowest_any = exchanges
        .iter()
        .map(|exchange| exchange.latency)
        .max()
        .unwrap_or_default();
    let p99 = quantile(&mut place, 0.99);
    let slowest = place.last().copied().unwrap_or_default();
    rows.push(Row::new(
        6,
        NAME,
        format!(
            "no request outlives payment's deadline: every PlaceOrder ≤ {} ms + {} ms",
            DEADLINE.as_millis(),
            MARGIN.as_millis()
        ),
        format!(
            "slowest PlaceOrder {} ms, p99 {} ms, slowest request of any kind {} ms ({} requests)",
            slowest.as_millis(),
            p99.as_millis(),
            slowest_any.as_millis(),
            exchanges.len()
        ),
        !place.is_empty() && slowest <= DEADLINE + MARGIN && slowest_any <= DEADLINE + MARGIN,
    ));
    let sent = run.total("PlaceOrder");
    let answered = run.count("PlaceOrder", "201") + run.count("PlaceOrder", "202");
    let share = percent(answered, sent);
    rows.push(Row::new(
        6,
        NAME,
        "≥ 99.95 % of PlaceOrder answered 201/202 through the faults",
        format!(
            "{share:.2} % ({answered} of {sent}; {} answered 202)",
            run.count("PlaceOrder", "202")
        ),
        sent > 0 && share >= 99.95,
    ));
    let audit = cluster
        .books()
        .await
        .audit(acknowledged.iter().map(String::as_str));
    println!("audit: {}", audit.describe());
    rows.push(Row::new(
        6,
        NAME,
        "after the heal every order CONFIRMED and charged once",
        format!(
            "{} charges for {} orders, {} unsettled, {} lost",
            audit.charges,
            audit.orders,
            audit.unsettled.len(),
            audit.lost.len()
        ),
        audit.clean() && audit.charges == audit.orders && settled.is_some(),
    ));
    assert_rows(&rows);
}
