//! Scenario 5: a rolling restart of order under load: a new instance on the same store takes the new
//! connections, the old one gets SIGTERM with requests in flight, twice over.
//!
//! What the client sees, precisely: loadgen's users (goose over reqwest: keep-alive
//! connections, no retries) talk to the front proxy, which stands where a Service would: new
//! connections go to the newest ready instance; open connections stay with the instance they
//! reached, which must finish what it accepted and close them. A failed request is any
//! request loadgen sent that got no HTTP answer (a reset, a closed connection: goose's
//! "error") or a 5xx; the target is none, and every acknowledged order stored and charged
//! once.

use std::time::Duration;

use serde_json::json;
use stormproof_e2e::{chaos::Cluster, reliability::Row};

use crate::{assert_rows, set_payment_faults};

const NAME: &str = "SIGTERM under load (rolling restart)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_request() {
    let mut cluster = Cluster::start(&["--reconcile-stale-after", "2s"]).await;
    // 100 ms per charge: every instance has orders in flight when its SIGTERM lands.
    set_payment_faults(&cluster.payment_ops(), json!({ "latency_ms": 100 })).await;
    let load = cluster
        .loadgen(
            &["--profile", "soak", "--scale", "4", "--time-scale", "0.01"],
            "backlog_drain_s_max = 0\n",
            Duration::from_secs(90),
        )
        .await;

    let mut rolls = Vec::new();
    for at in [5, 6] {
        tokio::time::sleep(Duration::from_secs(at)).await;
        let next = cluster.start_order().await;
        cluster.route_to(&next);
        let caught = cluster.in_flight_at_least(3, Duration::from_secs(5)).await;
        let old = cluster.orders.pop().expect("an order runs");
        old.signal("TERM").expect("SIGTERM");
        cluster.orders.push(next);
        let exit = tokio::time::timeout(Duration::from_secs(20), old.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        rolls.push((caught, exit));
    }
    let run = load.finish().await;
    let settled = cluster.settled_within(Duration::from_secs(30)).await;

    let (acknowledged, exchanges) = cluster.acknowledged();
    let audit = cluster
        .books()
        .await
        .audit(acknowledged.iter().map(String::as_str));
    let sent = run.all_requests();
    let errors: u64 = ["GetProducts", "PlaceOrder", "GetOrder"]
        .iter()
        .map(|request| run.count(request, "error"))
        .sum();
    let server_errors = exchanges
        .iter()
        .filter(|exchange| exchange.status >= 500)
        .count();
    let loadgen_5xx = run.answered(|code| (500..600).contains(&code));
    println!("audit: {}", audit.describe());
    let rows = [
        Row::new(
            5,
            NAME,
            "0 failed requests (no transport error, no 5xx) across 2 rolls",
            format!(
                "{} failed of {sent} ({errors} without an answer, {loadgen_5xx} 5xx; the front saw {server_errors} 5xx); SIGTERM caught {} and {} requests in flight",
                errors + loadgen_5xx,
                rolls[0].0,
                rolls[1].0
            ),
            sent > 0 && errors == 0 && loadgen_5xx == 0 && server_errors == 0,
        ),
        Row::new(
            5,
            NAME,
            "each old instance drains and exits 0",
            format!(
                "exit codes {:?}",
                rolls.iter().map(|roll| roll.1).collect::<Vec<_>>()
            ),
            rolls.iter().all(|roll| roll.1 == Some(0) && roll.0 > 0),
        ),
        Row::new(
            5,
            NAME,
            "every acknowledged order stored and charged once",
            format!(
                "{} acknowledged, {} lost; {} charges for {} orders, {} unsettled",
                acknowledged.len(),
                audit.lost.len(),
                audit.charges,
                audit.orders,
                audit.unsettled.len()
            ),
            audit.clean() && audit.charges == audit.orders && settled.is_some(),
        ),
    ];
    assert_rows(&rows);
}
