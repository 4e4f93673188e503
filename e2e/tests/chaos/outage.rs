//! Scenario 1: payment down at the peak of a (time-scaled) peak sale.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use stormproof_e2e::{ADMIN_TOKEN, chaos::Cluster, reliability::Row};

use crate::{assert_rows, percent};

const NAME: &str = "payment outage at peak";
/// The peak sale at a quarter of its length: 67 s of load, payment down 15 s from the peak.
const TIME_SCALE: &str = "0.25";

/// Watches payment's `/admin/faults` and returns when (ms since the epoch) `outage` last went
/// from true to false.
async fn watch_heal(payment_ops: String, stop: Arc<Mutex<bool>>) -> Option<i64> {
    let http = reqwest::Client::new();
    let (mut down, mut healed) = (false, None);
    while !stop.lock().map(|stop| *stop).unwrap_or(true) {
        if let Ok(response) = http
            .get(format!("{payment_ops}/admin/faults"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            && let Ok(faults) = response.json::<Value>().await
        {
            let outage = faults["outage"].as_bool().unwrap_or(false);
            if down && !outage {
                healed = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .and_then(|now| i64::try_from(now.as_millis()).ok());
            }
            down = outage;
        }
        // The faults live in payment's memory: polling is the only way to see them change.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    healed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_outage_at_peak_answers_every_order_and_charges_each_once_after_recovery() {
    let cluster = Cluster::start(&[]).await;
    let stop = Arc::new(Mutex::new(false));
    let heal = tokio::spawn(watch_heal(cluster.payment_ops(), stop.clone()));

    let run = cluster
        .loadgen(
            &[
                "--profile",
                "peak-sale",
                "--chaos",
                "outage",
                "--time-scale",
                TIME_SCALE,
            ],
            "backlog_drain_s_max = 0\n",
            Duration::from_secs(180),
        )
        .await
        .finish()
        .await;
    let settled = cluster.settled_within(Duration::from_secs(60)).await;
    if let Ok(mut stop) = stop.lock() {
        *stop = true;
    }
    let healed_at_ms = heal
        .await
        .expect("watcher")
        .expect("the outage started and was healed");

    let (acknowledged, exchanges) = cluster.acknowledged();
    let sent = run.total("PlaceOrder");
    let answered = run.count("PlaceOrder", "201") + run.count("PlaceOrder", "202");
    let pending: BTreeSet<&str> = exchanges
        .iter()
        .filter(|exchange| exchange.is_place_order() && exchange.status == 202)
        .filter_map(|exchange| exchange.order_id.as_deref())
        .collect();
    let books = cluster.books().await;
    let audit = books.audit(acknowledged.iter().map(String::as_str));
    // The last PAYMENT_PENDING order's confirmation, after the heal.
    let confirmed_after_heal = books
        .orders
        .values()
        .filter(|order| pending.contains(order.order_id.as_str()))
        .map(|order| order.updated_at_ms - healed_at_ms)
        .max()
        .unwrap_or(0)
        .max(0);
    let all_confirmed = books
        .orders
        .values()
        .all(|order| order.status == "CONFIRMED");
    let share = percent(answered, sent);
    let others: Vec<String> = run.summary["requests"]["PlaceOrder"]["status"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(status, _)| !["201", "202"].contains(&status.as_str()))
        .map(|(status, count)| format!("{count} answered {status}"))
        .collect();

    let rows = [
        Row::new(
            1,
            NAME,
            "≥ 99.95 % of PlaceOrder answered 201/202",
            format!(
                "{share:.2} % ({answered} of {sent}; {} answered 202 during the outage{}; peak-sale × {TIME_SCALE}, outage 15 s)",
                pending.len(),
                if others.is_empty() {
                    String::new()
                } else {
                    format!("; {}", others.join(", "))
                }
            ),
            sent > 0 && share >= 99.95 && !pending.is_empty(),
        ),
        Row::new(
            1,
            NAME,
            "no acknowledged order lost",
            format!(
                "{} lost of {} acknowledged",
                audit.lost.len(),
                acknowledged.len()
            ),
            audit.lost.is_empty() && !acknowledged.is_empty(),
        ),
        Row::new(
            1,
            NAME,
            "every order CONFIRMED ≤ 60 s after recovery",
            format!(
                "{} of {} CONFIRMED; last PAYMENT_PENDING one {:.1} s after the heal{}",
                books
                    .orders
                    .values()
                    .filter(|order| order.status == "CONFIRMED")
                    .count(),
                books.orders.len(),
                confirmed_after_heal as f64 / 1000.0,
                if settled.is_some() {
                    ""
                } else {
                    " (still unsettled 60 s after the load)"
                }
            ),
            all_confirmed && settled.is_some() && confirmed_after_heal <= 60_000,
        ),
        Row::new(
            1,
            NAME,
            "exactly one charge per order, none without an order",
            format!(
                "{} charges for {} orders; {} twice, {} orphan, {} wrong amount, {} uncharged",
                audit.charges,
                audit.orders,
                audit.charged_twice.len(),
                audit.orphans.len(),
                audit.wrong_amount.len(),
                audit.uncharged.len()
            ),
            audit.clean() && audit.charges == audit.orders,
        ),
    ];
    println!("audit: {}", audit.describe());
    assert_rows(&rows);
}
