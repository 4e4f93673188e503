//! Scenario 4: overload: capacity measured first (the knee of loadgen's `stress` ladder), then one
//! steady rung with three times the knee's users.

use std::time::Duration;

use stormproof_e2e::{
    chaos::{
        Cluster, CpuQuota, CpuSplit, LoadRun, histogram, peak_rss_kib, quantile, quantile_between,
    },
    reliability::Row,
};

use crate::assert_rows;

const NAME: &str = "overload at 3× capacity";
/// Twice order's `--limit-latency-threshold` default (250 ms): the limit cuts when answers
/// pass the threshold, so admitted answers overshoot it by up to a round trip's queue.
const ADMITTED_P99_MAX: Duration = Duration::from_millis(500);
const RSS_MAX_MIB: u64 = 256;
/// Order and payment's CPU budget: small enough that loadgen, on the other core, can offer
/// three times what they serve.
const SYSTEM_CORES: f64 = 0.4;
/// Order's `--store-write-wait` (off by default): new orders are shed where they queue.
const STORE_WRITE_WAIT: &str = "50ms";
/// The overload's users, as a multiple of the knee's.
const OVERLOAD_USERS: u64 = 5;

/// The knee's users, from the verdict row "x req/s (N users)".
fn knee_users(run: &LoadRun) -> Option<u64> {
    run.summary["verdict"]["rows"]
        .as_array()?
        .iter()
        .find(|row| {
            row["slo"]
                .as_str()
                .is_some_and(|slo| slo.starts_with("knee"))
        })?["measured"]
        .as_str()?
        .rsplit_once('(')?
        .1
        .split(' ')
        .find_map(|word| word.parse().ok())
}

/// What broke the ladder above its knee ("PlaceOrder p99 ≤ 300 ms: 412 ms; …").
fn broke_above(run: &LoadRun) -> String {
    let rows = run.summary["verdict"]["rows"].as_array().cloned();
    let broke: Vec<String> = rows
        .unwrap_or_default()
        .iter()
        .filter_map(|row| {
            let slo = row["slo"]
                .as_str()?
                .strip_prefix("broke above the knee: ")?;
            Some(format!(
                "{slo}: {}",
                row["measured"].as_str().unwrap_or("?")
            ))
        })
        .collect();
    if broke.is_empty() {
        "nothing broke".into()
    } else {
        broke.join("; ")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_three_times_capacity_goodput_holds_and_the_rest_is_shed_with_retry_after() {
    // Order and payment get half the CPUs, loadgen and the proxies the other half: a
    // generator sharing the system's cores takes the capacity it is meant to exceed.
    let cpus = CpuSplit::halves();
    let quota = CpuQuota::new(SYSTEM_CORES);
    // Without both, loadgen competes with what it loads and cannot offer 3× on two cores.
    let isolated = cpus.is_some() && quota.is_some();
    let cluster = Cluster::start_on(
        &["--store-write-wait", STORE_WRITE_WAIT],
        cpus.clone(),
        quota,
    )
    .await;

    // Capacity: the stress ladder (5, 10, 20, … users, 6 s a rung) up to the first rung where
    // an SLO breaks twice in a row (a 5xx, a shed request, PlaceOrder p99 over 300 ms).
    let ladder = cluster
        .loadgen(
            // This scenario measures capacity and overload in users (the closed model).
            &[
                "--profile",
                "stress",
                "--model",
                "closed",
                "--time-scale",
                "0.2",
            ],
            "backlog_drain_s_max = 0\n",
            Duration::from_secs(150),
        )
        .await
        .finish()
        .await;
    let capacity = ladder.summary["knee_rps"].as_f64().unwrap_or(0.0);
    let users = knee_users(&ladder).unwrap_or(0);
    assert!(
        capacity > 0.0 && users > 0,
        "the ladder found a knee: {:?}",
        ladder.summary["verdict"]
    );

    // The overload: one steady rung of 5× the knee's users, same think time, 15 s: users of
    // a closed loop wait for their answers, so 3× the users would offer less than 3× the
    // rate once answers slow down. An
    // impossible p99 makes loadgen stop after that first rung.
    let before = cluster.front.exchanges().len();
    let admitted_orders = |labels: &[(&str, &str)]| {
        labels.contains(&("http_route", "/v1/orders"))
            && labels.contains(&("http_request_method", "POST"))
            && labels.iter().any(|(key, value)| {
                *key == "http_response_status_code" && ["201", "202", "402"].contains(value)
            })
    };
    const SERIES: &str = "http_server_request_duration_seconds";
    let served_before = histogram(&cluster.order_metrics().await, SERIES, admitted_orders);
    let overload = cluster
        .closed_rung((OVERLOAD_USERS * users) as f64, Duration::from_secs(15))
        .await;
    let peak_rss_mib = peak_rss_kib(cluster.order().id()).unwrap_or(0) / 1024;
    let served_after = histogram(&cluster.order_metrics().await, SERIES, admitted_orders);
    let (p99_served, served) = quantile_between(&served_before, &served_after, 0.99);

    let seconds = overload.seconds().max(0.001);
    let offered = overload.all_requests() as f64 / seconds;
    let good = overload.answered(|code| (200..300).contains(&code) || code == 402);
    let goodput = good as f64 / seconds;
    let shed_codes = |code: u16| code == 503 || code == 429;
    let shed = overload.answered(shed_codes);
    let other_failures = overload.all_requests() - good - shed;

    let exchanges: Vec<_> = cluster.front.exchanges().into_iter().skip(before).collect();
    let shed_seen: Vec<_> = exchanges
        .iter()
        .filter(|exchange| shed_codes(exchange.status))
        .collect();
    let without_retry_after = shed_seen
        .iter()
        .filter(|exchange| exchange.retry_after.is_none())
        .count();
    let mut admitted_place: Vec<Duration> = exchanges
        .iter()
        .filter(|exchange| exchange.is_place_order() && !shed_codes(exchange.status))
        .map(|exchange| exchange.latency)
        .collect();
    let mut admitted_all: Vec<Duration> = exchanges
        .iter()
        .filter(|exchange| !shed_codes(exchange.status))
        .map(|exchange| exchange.latency)
        .collect();
    let p99_place = quantile(&mut admitted_place, 0.99);
    let p99_all = quantile(&mut admitted_all, 0.99);

    let rows = [
        Row::new(
            4,
            NAME,
            "capacity measured, then 3× its load offered",
            format!(
                "capacity {capacity:.0} req/s (knee of the stress ladder at {users} users; above it {}); overload {} users offered {offered:.0} req/s ({:.1}× capacity)",
                broke_above(&ladder),
                OVERLOAD_USERS * users,
                offered / capacity
            ),
            offered >= 3.0 * capacity,
        )
        .machine_limited_if(!isolated),
        Row::new(
            4,
            NAME,
            "goodput ≥ 80 % of capacity",
            format!(
                "{goodput:.0} req/s answered 2xx/402 = {:.0} % of capacity",
                goodput * 100.0 / capacity
            ),
            goodput >= 0.8 * capacity,
        ),
        Row::new(
            4,
            NAME,
            format!(
                "p99 of admitted PlaceOrder, as order serves it, ≤ {} ms (twice its limit's latency threshold)",
                ADMITTED_P99_MAX.as_millis()
            ),
            format!(
                "≤ {:.0} ms (histogram bucket; {served:.0} admitted PlaceOrder); as the client saw it: p99 {} ms for PlaceOrder, {} ms for every admitted request",
                p99_served * 1000.0,
                p99_place.as_millis(),
                p99_all.as_millis()
            ),
            served > 0.0 && p99_served <= ADMITTED_P99_MAX.as_secs_f64(),
        ),
        Row::new(
            4,
            NAME,
            "shed requests get 503/429 with Retry-After; nothing else fails",
            format!(
                "{shed} shed ({:.0} % of requests), {without_retry_after} of {} seen without Retry-After; {other_failures} other failures",
                shed as f64 * 100.0 / overload.all_requests().max(1) as f64,
                shed_seen.len()
            ),
            shed > 0 && without_retry_after == 0 && other_failures == 0,
        ),
        Row::new(
            4,
            NAME,
            format!("peak RSS of order reported, ≤ {RSS_MAX_MIB} MiB"),
            format!("{peak_rss_mib} MiB (VmHWM)"),
            peak_rss_mib > 0 && peak_rss_mib <= RSS_MAX_MIB,
        ),
    ];
    assert_rows(&rows);
}
