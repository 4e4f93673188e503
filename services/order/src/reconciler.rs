//! The reconciler: charges orders that were accepted without an answer from payment.
//!
//! Every `interval` it refreshes the backlog gauges, claims the due unsettled orders with a
//! lease and charges them one by one through the same payment client as requests, so through
//! the same breaker, at most `max_rate` per second. While the breaker is open it claims one
//! order only, as a probe: payment known to be down is not sent a batch. Payment is idempotent by order id, so a
//! charge that already happened (an answer lost to a deadline, a crash after payment answered)
//! is found rather than repeated. A failed attempt gives the order back with a capped,
//! jittered exponential backoff. The lease makes claims exclusive across replicas and lets a
//! crashed reconciler's claims expire.

use std::time::Duration;

use resilience::breaker::State;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    app::{App, now_ms},
    domain::OrderStatus,
    metrics,
    payment::{Charge, FallbackReason},
};

/// How long a claim lasts: longer than any charge takes.
const LEASE: Duration = Duration::from_secs(30);
/// The first retry's backoff ceiling; it doubles per attempt up to `max_backoff`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);

/// The reconciler's settings.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// How often it looks for work.
    pub interval: Duration,
    /// At most this many charges per second.
    pub max_rate: u32,
    /// A PENDING order older than this was left by a request that died.
    pub stale_after: Duration,
    /// The longest wait between two attempts at one order.
    pub max_backoff: Duration,
}

/// Runs until `stop` is cancelled.
pub async fn run(app: App, config: ReconcilerConfig, stop: CancellationToken) {
    let owner = format!("order-{}-{:08x}", std::process::id(), rand::random::<u32>());
    let pace = Duration::from_secs(1) / config.max_rate;
    let batch = config
        .max_rate
        .saturating_mul(u32::try_from(config.interval.as_secs().max(1)).unwrap_or(u32::MAX));
    tracing::info!(owner, "reconciler.started");
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(config.interval) => {}
        }
        if let Err(error) = pass(&app, &config, &owner, batch, pace, &stop).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "reconciler.pass_failed"
            );
        }
    }
    tracing::info!(owner, "reconciler.stopped");
}

async fn pass(
    app: &App,
    config: &ReconcilerConfig,
    owner: &str,
    batch: u32,
    pace: Duration,
    stop: &CancellationToken,
) -> Result<(), crate::store::StoreError> {
    let now = now_ms();
    let (count, oldest) = app.store().backlog().await?;
    let age = oldest.map_or(0.0, |created| (now - created).max(0) as f64 / 1000.0);
    metrics::backlog(count, age);
    if count == 0 {
        return Ok(());
    }
    // While the breaker is not closed, orders go one at a time: each is a probe the breaker
    // rejects at once while it waits, or admits as a half-open trial (the breaker moves from
    // open to half_open only when a call asks, so someone has to ask). Payment known to be
    // down is never sent a batch; once the trials close the breaker, the rest of the batch
    // follows in the same pass.
    let mut budget = batch;
    while budget > 0 && !stop.is_cancelled() {
        let limit = if app.payment().breaker().state() == State::Closed {
            budget
        } else {
            1
        };
        let orders = app
            .store()
            .claim(owner, limit, LEASE, config.stale_after, now_ms())
            .await?;
        if orders.is_empty() {
            break;
        }
        budget = budget.saturating_sub(u32::try_from(orders.len()).unwrap_or(u32::MAX));
        if settle(app, config, owner, orders, pace, stop).await? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// Whether a pass goes on after a batch.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Charges claimed `orders` one by one; the breaker opening, or shutdown, gives the rest back.
async fn settle(
    app: &App,
    config: &ReconcilerConfig,
    owner: &str,
    orders: Vec<crate::domain::Order>,
    pace: Duration,
    stop: &CancellationToken,
) -> Result<Flow, crate::store::StoreError> {
    let mut orders = orders.into_iter();
    let mut flow = Flow::Continue;
    for order in orders.by_ref() {
        if stop.is_cancelled() {
            app.store()
                .release(&order.order_id, owner, now_ms(), false)
                .await?;
            flow = Flow::Stop;
            break;
        }
        let span = tracing::info_span!("order.reconcile", order_id = %order.order_id);
        let charge = app
            .payment()
            .charge(&order, None)
            .instrument(span.clone())
            .await;
        match charge {
            Charge::Captured | Charge::Declined(_) => {
                let status = if charge == Charge::Captured {
                    OrderStatus::Confirmed
                } else {
                    OrderStatus::Rejected
                };
                let settled = app.store().transition(order, status, now_ms()).await?;
                metrics::reconciled(if status == OrderStatus::Confirmed {
                    "confirmed"
                } else {
                    "rejected"
                });
                tracing::info!(parent: &span, status = settled.status.as_str(), "order.reconciled");
            }
            Charge::Deferred(FallbackReason::BreakerOpen) => {
                app.store()
                    .release(&order.order_id, owner, now_ms(), false)
                    .await?;
                metrics::reconciled("deferred");
                flow = Flow::Stop;
                break;
            }
            Charge::Deferred(reason) => {
                let attempts = app.store().attempts(&order.order_id).await?;
                let wait = backoff(attempts, config.max_backoff);
                let next =
                    now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                app.store()
                    .release(&order.order_id, owner, next, true)
                    .await?;
                metrics::reconciled("retry");
                tracing::info!(parent: &span, reason = reason.as_str(), retry_in_ms = wait.as_millis() as u64, "order.reconcile_failed");
            }
        }
        tokio::time::sleep(pace).await;
    }
    // Orders left in the batch go back unchanged.
    for order in orders {
        app.store()
            .release(&order.order_id, owner, now_ms(), false)
            .await?;
    }
    Ok(flow)
}

/// Full jitter: a random wait up to `INITIAL_BACKOFF × 2^attempts`, capped at `max`.
fn backoff(attempts: u32, max: Duration) -> Duration {
    let ceiling = INITIAL_BACKOFF
        .saturating_mul(2_u32.saturating_pow(attempts.min(16)))
        .min(max);
    ceiling.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let max = Duration::from_secs(30);
        for attempts in 0..40 {
            let ceiling = (INITIAL_BACKOFF * 2_u32.pow(attempts.min(16))).min(max);
            for _ in 0..50 {
                assert!(backoff(attempts, max) <= ceiling);
            }
        }
        assert!(
            (0..200).any(|_| backoff(10, max) > Duration::from_secs(15)),
            "reaches the cap's range"
        );
    }
}
