//! The reconciler and the breaker with every default: a big backlog drains as fast as payment
//! takes it, the backlog gauge follows the store, and a flapping payment is tracked.

use std::time::Duration;

use futures::future::join_all;
use resilience::breaker::State;
use stormproof_payment::faults::FaultSettings;
use tokio::time::Instant;

use crate::{
    helpers::{Order, Payment, sample, spawn_order, spawn_payment},
    resilience::each_charged_once,
};

fn outage() -> FaultSettings {
    FaultSettings {
        outage: true,
        ..FaultSettings::default()
    }
}

fn transitions(metrics: &str, from: &str, to: &str) -> f64 {
    sample(
        metrics,
        "circuit_breaker_transitions_total",
        &[("dependency", "payment"), ("from", from), ("to", to)],
    )
    .unwrap_or(0.0)
}

/// `n` orders from 16 clients while payment is down: every one 202, PAYMENT_PENDING.
async fn pending_orders(order: &Order, n: usize) -> Vec<String> {
    let clients = 16;
    let answers = join_all((0..clients).map(|client| async move {
        let mut ids = Vec::new();
        for _ in (client..n).step_by(clients) {
            let (status, body) = order
                .place(&format!("cust-{client}"), &[("CAP-RED", 1)], None)
                .await;
            assert_eq!(status, 202, "payment is down: accepted as pending ({body})");
            ids.push(body["order_id"].as_str().expect("an id").to_owned());
        }
        ids
    }))
    .await;
    answers.into_iter().flatten().collect()
}

/// Heals `payment` to `faults` and waits for the store's backlog to reach 0; returns how long
/// that took.
async fn drain(
    order: &Order,
    payment: &Payment,
    faults: FaultSettings,
    within: Duration,
) -> Duration {
    let healed = Instant::now();
    payment.set_faults(faults);
    assert!(
        order.drained(within).await,
        "the backlog drains within {within:?}"
    );
    healed.elapsed()
}

/// 2 000 PAYMENT_PENDING orders, payment healed: with every default the reconciler drains
/// them within 20 s (the old fixed pace, 20 ms after each charge and 1 s after every 50,
/// took 80 s), and each is charged exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_pending_orders_drain_within_20_s_each_charged_once() {
    let payment = spawn_payment().await;
    payment.set_faults(outage());
    let order = spawn_order(&payment.url(), &["--reconcile-interval", "1s"]).await;
    let ids = pending_orders(&order, 2_000).await;

    let took = drain(
        &order,
        &payment,
        FaultSettings::default(),
        Duration::from_secs(20),
    )
    .await;
    eprintln!(
        "drained 2000 orders in {took:?}: {:.0} orders/s",
        2_000.0 / took.as_secs_f64()
    );
    each_charged_once(&order, &payment.ledger, &ids).await;
    order.stop().await;
    payment.stop().await;
}

/// The same backlog while payment still fails a quarter of its calls: retries absorb most
/// failures, the reconciler's limit backs off on the rest, and the breaker, which tolerates
/// 25 % closed, is open only briefly (a window of five calls just after a close can still
/// hold three failures, and then a half-open round closes it again): the backlog drains, each
/// order charged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drains_through_a_payment_that_fails_a_quarter_of_calls() {
    let payment = spawn_payment().await;
    payment.set_faults(outage());
    let order = spawn_order(&payment.url(), &["--reconcile-interval", "1s"]).await;
    let ids = pending_orders(&order, 2_000).await;
    let before = order.metrics().await;

    let flaky = FaultSettings {
        failure_rate: 0.25,
        ..FaultSettings::default()
    };
    // The breaker's state every 50 ms, from its first close after the heal (before it, the
    // outage's grown wait is running out) until the backlog is drained: the longest spell
    // it spent not closed.
    let breaker = &order.breaker;
    let tick = Duration::from_millis(50);
    let (mut let_in, mut spell, mut longest) = (false, Duration::ZERO, Duration::ZERO);
    let watch = async {
        loop {
            let closed = breaker.state() == State::Closed;
            let_in |= closed;
            spell = if closed || !let_in {
                Duration::ZERO
            } else {
                spell + tick
            };
            longest = longest.max(spell);
            tokio::time::sleep(tick).await;
        }
    };
    let took = tokio::select! {
        took = drain(&order, &payment, flaky, Duration::from_secs(40)) => took,
        () = watch => unreachable!("the watch never ends"),
    };
    let after = order.metrics().await;
    let tripped = transitions(&after, "closed", "open") - transitions(&before, "closed", "open");
    eprintln!(
        "drained 2000 orders at 25 % failures in {took:?} ({:.0} orders/s); the breaker tripped \
         {tripped} times, the longest for {longest:?}",
        2_000.0 / took.as_secs_f64()
    );
    // A trip after a close waits 1 s at most (the wait starts again from --breaker-wait), then
    // the reconciler's next pass (after its 1 s rest) probes five trials, which close it nine
    // times in ten at 25 % failures; a second round adds a 1.5 s wait and another rest.
    assert!(
        longest <= Duration::from_secs(5),
        "a trip held payment off for {longest:?}"
    );
    each_charged_once(&order, &payment.ledger, &ids).await;
    order.stop().await;
    payment.stop().await;
}

/// With the reconciler resting 30 s between passes, the backlog gauge still shows a new
/// PAYMENT_PENDING order within a second (it used to change only when a pass started).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_gauge_shows_a_new_pending_order_within_a_second() {
    let payment = spawn_payment().await;
    payment.set_faults(outage());
    let order = spawn_order(&payment.url(), &["--reconcile-interval", "30s"]).await;
    assert!(
        order
            .backlog_gauge_reads(0.0, Duration::from_secs(1))
            .await
            .is_some(),
        "empty at first"
    );
    let (status, _) = order.place("cust-gauge", &[("CAP-RED", 1)], None).await;
    assert_eq!(status, 202);
    let seen = order.backlog_gauge_reads(1.0, Duration::from_secs(1)).await;
    assert!(seen.is_some(), "the gauge reads 1 within a second");
    eprintln!("the gauge showed the order after {seen:?}");
    order.stop().await;
    payment.stop().await;
}

/// Payment down 5 s, healthy 5 s, six times, 20 orders a second, every default: the breaker's
/// jittered, growing wait cannot phase-lock with the flapping. It closes in (almost) every
/// healthy half and orders are charged inline (201) there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_payment_is_tracked_by_the_breaker() {
    const CYCLES: usize = 6;
    const HALF: Duration = Duration::from_secs(5);
    let payment = spawn_payment().await;
    let order = spawn_order(&payment.url(), &["--reconcile-interval", "1s"]).await;
    let start = Instant::now();
    let load = async {
        // (since start, status), one order every 50 ms for the whole run.
        let mut answers = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while start.elapsed() < HALF * 2 * CYCLES as u32 {
            tick.tick().await;
            let (status, _) = order.place("cust-flap", &[("CAP-RED", 1)], None).await;
            answers.push((start.elapsed(), status));
        }
        answers
    };
    let flap = async {
        for _ in 0..CYCLES {
            payment.set_faults(outage());
            tokio::time::sleep(HALF).await;
            payment.set_faults(FaultSettings::default());
            tokio::time::sleep(HALF).await;
        }
    };
    let (answers, ()) = tokio::join!(load, flap);

    let metrics = order.metrics().await;
    let closed = transitions(&metrics, "half_open", "closed");
    let opened = transitions(&metrics, "closed", "open");
    let healthy_halves_with_inline_charges = (0..CYCLES)
        .filter(|cycle| {
            let healthy = HALF * (2 * *cycle as u32 + 1)..HALF * (2 * *cycle as u32 + 2);
            answers
                .iter()
                .any(|(at, status)| healthy.contains(at) && *status == 201)
        })
        .count();
    let inline = answers.iter().filter(|(_, status)| *status == 201).count();
    eprintln!(
        "{} orders, {inline} charged inline; breaker opened {opened}, closed {closed} times; \
         healthy halves with inline charges: {healthy_halves_with_inline_charges} of {CYCLES}",
        answers.len()
    );
    assert!(
        answers
            .iter()
            .all(|(_, status)| matches!(status, 201 | 202)),
        "every order accepted"
    );
    assert!(
        closed >= (CYCLES - 2) as f64,
        "the breaker closed {closed} times in {CYCLES} cycles"
    );
    assert!(
        healthy_halves_with_inline_charges >= CYCLES - 2,
        "inline charges in {healthy_halves_with_inline_charges} of {CYCLES} healthy halves"
    );
    order.stop().await;
    payment.stop().await;
}
