//! Scenarios 2 and 3: `kill -9` of order, then of payment, in the middle of a steady load; each restarted
//! at once on its own database.

use std::time::Duration;

use serde_json::json;
use stormproof_e2e::{chaos::Cluster, reliability::Row};

use crate::{assert_rows, percent, secs, set_payment_faults};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Order,
    Payment,
}

const LATENCY_MS: u64 = 100;

/// Load for 20 s (`soak` × 0.01: 50 users), the victim killed 6 s in and restarted, then the
/// books checked once every order settled.
async fn kill_9_mid_load(victim: Victim) -> Vec<Row> {
    let (scenario, name) = match victim {
        Victim::Order => (2, "kill -9 of order mid-load"),
        Victim::Payment => (3, "kill -9 of payment mid-load"),
    };
    // A killed request leaves its order PENDING; the reconciler takes it once it is 2 s old
    // (30 s by default, longer than the test).
    let mut cluster = Cluster::start(&["--reconcile-stale-after", "2s"]).await;
    // Charges take 100 ms (under the breaker's 150 ms slow-call mark), so calls are in flight
    // when the kill lands.
    set_payment_faults(&cluster.payment_ops(), json!({ "latency_ms": LATENCY_MS })).await;

    let load = cluster
        .loadgen(
            &["--profile", "soak", "--scale", "5", "--time-scale", "0.01"],
            "backlog_drain_s_max = 0\n",
            Duration::from_secs(90),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let caught = cluster.in_flight_at_least(3, Duration::from_secs(5)).await;
    let before = cluster.acknowledged().0.len();
    let restart = tokio::time::Instant::now();
    match victim {
        Victim::Order => {
            let killed = cluster.orders.pop().expect("order runs");
            killed.signal("KILL").expect("kill -9 order");
            assert_eq!(killed.wait().await.expect("exit"), None, "ended by SIGKILL");
            let order = cluster.start_order().await;
            cluster.route_to(&order);
            cluster.orders.push(order);
        }
        Victim::Payment => {
            let killed = cluster.payment.take().expect("payment runs");
            killed.signal("KILL").expect("kill -9 payment");
            assert_eq!(killed.wait().await.expect("exit"), None, "ended by SIGKILL");
            cluster.start_payment().await;
            set_payment_faults(&cluster.payment_ops(), json!({ "latency_ms": LATENCY_MS })).await;
        }
    }
    let downtime = restart.elapsed();
    let left_unsettled = cluster.books().await.unsettled();
    let run = load.finish().await;
    let settled = cluster.settled_within(Duration::from_secs(60)).await;

    let (acknowledged, _) = cluster.acknowledged();
    let books = cluster.books().await;
    let audit = books.audit(acknowledged.iter().map(String::as_str));
    let sent = run.total("PlaceOrder");
    let answered = run.count("PlaceOrder", "201") + run.count("PlaceOrder", "202");
    println!("audit: {}", audit.describe());
    let mut rows = vec![
        Row::new(
            scenario,
            name,
            "every acknowledged order exists",
            format!(
                "{} lost of {} acknowledged ({} before the kill, which caught {} requests in flight and left {} orders unsettled; {} orders stored; restarted in {} ms)",
                audit.lost.len(),
                acknowledged.len(),
                before,
                caught,
                left_unsettled,
                audit.orders,
                downtime.as_millis()
            ),
            audit.lost.is_empty() && before > 0 && acknowledged.len() > before,
        ),
        Row::new(
            scenario,
            name,
            "each order charged exactly once (orders ⋈ ledger)",
            format!(
                "{} charges for {} orders: {} twice, {} wrong amount, {} uncharged, {} unsettled{}",
                audit.charges,
                audit.orders,
                audit.charged_twice.len(),
                audit.wrong_amount.len(),
                audit.uncharged.len(),
                audit.unsettled.len(),
                settled.map_or(" after 60 s".to_owned(), |took| format!(
                    ", settled {} after the load",
                    secs(took)
                ))
            ),
            audit.charged_twice.is_empty()
                && audit.wrong_amount.is_empty()
                && audit.uncharged.is_empty()
                && audit.unsettled.is_empty()
                && audit.charges == audit.orders,
        ),
        Row::new(
            scenario,
            name,
            "no charge without an order",
            format!("{} orphan charges", audit.orphans.len()),
            audit.orphans.is_empty(),
        ),
    ];
    if victim == Victim::Payment {
        // Order stayed up: its answers are the fallback's claim.
        let share = percent(answered, sent);
        rows.push(Row::new(
            scenario,
            name,
            "≥ 99.95 % of PlaceOrder answered 201/202 while payment was down",
            format!("{share:.2} % ({answered} of {sent})"),
            sent > 0 && share >= 99.95,
        ));
    } else {
        let failed = sent - answered;
        rows.push(Row::new(
            scenario,
            name,
            "requests cut by the kill (expected, reported)",
            format!(
                "{failed} of {sent} PlaceOrder unanswered or not 201/202 ({:.2} %); front refused {} connections while order was down",
                percent(failed, sent),
                cluster.front.refused()
            ),
            true,
        ));
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_order_loses_no_acknowledged_order_and_charges_each_once() {
    assert_rows(&kill_9_mid_load(Victim::Order).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_payment_loses_no_acknowledged_order_and_charges_each_once() {
    assert_rows(&kill_9_mid_load(Victim::Payment).await);
}
