//! The reconciler: charges orders that were accepted without an answer from payment.
//!
//! Each pass claims the due unsettled orders with a lease and charges them through the same
//! payment client as requests, so through the same breaker, bulkhead and retry budget.
//! Payment is idempotent by order id, so a charge that already happened (an answer lost to a
//! deadline, a crash after payment answered) is found rather than repeated. A failed attempt
//! gives the order back with a capped, jittered exponential backoff. The lease makes claims
//! exclusive across replicas and lets a crashed reconciler's claims expire.
//!
//! # As fast as payment takes it
//!
//! While the breaker is closed, charges run concurrently under an adaptive limit: the
//! resilience crate's [`Aimd`], the same algorithm as the servers' load shedding. It starts at
//! one charge in flight, adds one per limit's worth of fast answers, and halves on a slow
//! answer (over the breaker's slow-call duration) or a failed one, at most once per round
//! trip; it never exceeds `max_concurrency`, which startup keeps within the bulkhead so live
//! orders always have room. Nothing sleeps between charges; `max_rate` is only a ceiling on
//! starts per second. A backlog of thousands therefore drains at whatever rate payment and
//! the store sustain, and a slow or failing payment is met with fewer charges at once, not
//! more.
//!
//! # A recovering payment is probed, not stampeded
//!
//! While the breaker is not closed, orders go one at a time: each is a probe the breaker
//! rejects at once while it waits, or admits as a half-open trial (the breaker moves from open
//! to half_open only when a call asks, so someone has to ask). The reconciler's probe costs no
//! shopper any latency; live orders may also take a trial, bounded by their payment budget.
//! Once the trials close the breaker the limit starts again from one.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use resilience::{
    breaker::State,
    limit::{Aimd, LimitConfig},
};
use store::now_ms;
use tokio::{task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::{
    domain::{Order, OrderStatus},
    metrics,
    payment::{Charge, FallbackReason, PaymentClient},
    store::{Store, StoreError},
};

/// How long a claim lasts: longer than any charge takes (the default payment timeout is
/// 1 s), and claims are taken at most a limit's worth ahead of their charge.
const LEASE: Duration = Duration::from_secs(30);
/// The first retry's backoff ceiling; it doubles per attempt up to `max_backoff`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// How often the backlog gauges are read from the store: within a second of any change,
/// whatever the reconciler's interval, and on every replica sharing the store.
const BACKLOG_REFRESH: Duration = Duration::from_millis(500);

/// The reconciler's settings.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// How long it rests when there is nothing (more) it can do.
    pub interval: Duration,
    /// At most this many charges started per second: a ceiling, not a pace.
    pub max_rate: u32,
    /// At most this many charges in flight at once (the adaptive limit's ceiling).
    pub max_concurrency: usize,
    /// A charge slower than this shrinks the limit.
    pub latency_threshold: Duration,
    /// A PENDING order older than this was left by a request that died.
    pub stale_after: Duration,
    /// The longest wait between two attempts at one order.
    pub max_backoff: Duration,
}

impl ReconcilerConfig {
    /// The adaptive limit's config: from one charge in flight up to `max_concurrency`,
    /// halving on a slow or failed charge.
    pub fn limit(&self) -> LimitConfig {
        LimitConfig::default()
            .with_initial_limit(1)
            .with_bounds(1, self.max_concurrency.max(1))
            .with_backoff_ratio(0.5)
            .with_latency_threshold(self.latency_threshold)
    }
}

/// The reconciler of one replica: it owns what it works with (the store, the payment client,
/// its settings and adaptive limit) and a name of its own for the leases it takes. Cheap to
/// clone: each charge in flight holds a clone.
#[derive(Debug, Clone)]
pub struct Reconciler {
    store: Store,
    payment: PaymentClient,
    config: ReconcilerConfig,
    limit: Arc<Aimd>,
    owner: Arc<str>,
}

impl Reconciler {
    /// A reconciler charging through `payment`, its concurrency adapted by `limit` (built from
    /// [`ReconcilerConfig::limit`] at start-up, so a bad setting fails there).
    pub fn new(
        store: Store,
        payment: PaymentClient,
        config: ReconcilerConfig,
        limit: Aimd,
    ) -> Self {
        let owner = format!("order-{}-{:08x}", std::process::id(), rand::random::<u32>());
        Self {
            store,
            payment,
            config,
            limit: Arc::new(limit),
            owner: owner.into(),
        }
    }

    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(owner = %self.owner, "reconciler.started");
        let mut pace = Pace::new(self.config.max_rate);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.config.interval) => {}
            }
            if let Err(error) = self.pass(&mut pace, &stop).await {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "reconciler.pass_failed"
                );
            }
        }
        tracing::info!(owner = %self.owner, "reconciler.stopped");
    }

    /// One pass: probe while the breaker is not closed, then drain under the adaptive limit
    /// until nothing is due, the breaker opens, or shutdown.
    async fn pass(&self, pace: &mut Pace, stop: &CancellationToken) -> Result<(), StoreError> {
        // Probes: one order at a time until the breaker closes (or refuses).
        while self.payment.breaker().state() != State::Closed {
            if stop.is_cancelled() {
                return Ok(());
            }
            let Some(order) = self.claim(1).await?.pop() else {
                return Ok(());
            };
            pace.wait().await;
            match self.settle(order).await? {
                Settled::Refused => return Ok(()), // still open: rest until the next pass
                Settled::Done | Settled::Failed => {}
            }
        }
        self.drain(pace, stop).await
    }

    /// Charges due orders concurrently under the limit while the breaker stays closed.
    async fn drain(&self, pace: &mut Pace, stop: &CancellationToken) -> Result<(), StoreError> {
        let mut claimed: VecDeque<Order> = VecDeque::new();
        let mut in_flight: JoinSet<Result<Settled, StoreError>> = JoinSet::new();
        let mut exhausted = false; // nothing more is due
        let mut halted = false; // the breaker opened, or shutdown: start nothing more
        let mut result = Ok(());
        loop {
            halted |= stop.is_cancelled() || self.payment.breaker().state() != State::Closed;
            if !halted {
                if claimed.is_empty() && !exhausted {
                    let want = u32::try_from(self.limit.limit()).unwrap_or(u32::MAX);
                    match self.claim(want).await {
                        Ok(orders) => {
                            exhausted = orders.is_empty();
                            claimed.extend(orders);
                        }
                        Err(error) => {
                            result = Err(error);
                            halted = true;
                        }
                    }
                }
                while !halted && !claimed.is_empty() {
                    let Some(admitted) = self.limit.try_admit() else {
                        break;
                    };
                    let Some(order) = claimed.pop_front() else {
                        self.limit.release();
                        break;
                    };
                    pace.wait().await;
                    let reconciler = self.clone();
                    in_flight.spawn(async move {
                        let started = Instant::now();
                        let settled = reconciler.settle(order).await;
                        reconciler.limit.release();
                        let overloaded = !matches!(settled, Ok(Settled::Done));
                        reconciler.limit.sample(admitted, started, overloaded);
                        settled
                    });
                }
            }
            if in_flight.is_empty() && (halted || (exhausted && claimed.is_empty())) {
                break;
            }
            match in_flight.join_next().await {
                Some(Ok(Ok(Settled::Refused))) => halted = true,
                Some(Ok(Ok(Settled::Done | Settled::Failed))) => {}
                Some(Ok(Err(error))) => {
                    result = Err(error);
                    halted = true;
                }
                Some(Err(panicked)) => {
                    tracing::error!(error = %panicked, "reconciler.charge_panicked");
                    halted = true;
                }
                None => {} // nothing in flight: claim more above
            }
        }
        // Orders claimed but not started go back unchanged.
        for order in claimed {
            self.store
                .release(&order.order_id, &self.owner, now_ms(), false)
                .await?;
        }
        result
    }

    async fn claim(&self, limit: u32) -> Result<Vec<Order>, StoreError> {
        self.store
            .claim(&self.owner, limit, LEASE, self.config.stale_after, now_ms())
            .await
    }

    /// Charges one claimed `order` and stores how that went.
    async fn settle(&self, order: Order) -> Result<Settled, StoreError> {
        let span = tracing::info_span!("order.reconcile", order_id = %order.order_id);
        let charge = self
            .payment
            .charge(&order, None)
            .instrument(span.clone())
            .await;
        match charge {
            Charge::Captured | Charge::Declined(_) => {
                let (status, outcome) = if charge == Charge::Captured {
                    (OrderStatus::Confirmed, "confirmed")
                } else {
                    (OrderStatus::Rejected, "rejected")
                };
                let settled = self.store.transition(order, status, now_ms()).await?;
                metrics::reconciled(outcome);
                tracing::info!(parent: &span, status = settled.status.as_str(), "order.reconciled");
                Ok(Settled::Done)
            }
            Charge::Deferred(FallbackReason::BreakerOpen) => {
                self.store
                    .release(&order.order_id, &self.owner, now_ms(), false)
                    .await?;
                metrics::reconciled("deferred");
                Ok(Settled::Refused)
            }
            Charge::Deferred(reason) => {
                let attempts = self.store.attempts(&order.order_id).await?;
                let wait = backoff(attempts, self.config.max_backoff);
                let next =
                    now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                self.store
                    .release(&order.order_id, &self.owner, next, true)
                    .await?;
                metrics::reconciled("retry");
                tracing::info!(parent: &span, reason = reason.as_str(), retry_in_ms = wait.as_millis() as u64, "order.reconcile_failed");
                Ok(Settled::Failed)
            }
        }
    }
}

/// Keeps the backlog gauges fresh from `store` until `stop` is cancelled.
pub async fn watch_backlog(store: Store, stop: CancellationToken) {
    let mut tick = tokio::time::interval(BACKLOG_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        match store.backlog().await {
            Ok((count, oldest)) => {
                let age = oldest.map_or(0.0, |created| (now_ms() - created).max(0) as f64 / 1000.0);
                metrics::backlog(count, age);
            }
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "reconciler.backlog_failed"
            ),
        }
    }
}

/// How one charge ended, for the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// Confirmed or rejected: the order is settled.
    Done,
    /// Payment failed; the order is given back with a backoff.
    Failed,
    /// The breaker refused; the order is given back as it was.
    Refused,
}

/// A ceiling on charges started per second: a start waits only when it would exceed it.
#[derive(Debug)]
struct Pace {
    gap: Duration,
    next: Instant,
}

impl Pace {
    fn new(max_rate: u32) -> Self {
        Self {
            gap: Duration::from_secs(1) / max_rate.max(1),
            next: Instant::now(),
        }
    }

    async fn wait(&mut self) {
        let now = Instant::now();
        // Up to a second's worth of starts may go at once after a rest.
        let floor = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        self.next = self.next.max(floor);
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        self.next += self.gap;
    }
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

    #[tokio::test(start_paused = true)]
    async fn the_rate_ceiling_lets_a_burst_through_then_spaces_starts() {
        let mut pace = Pace::new(10);
        tokio::time::advance(Duration::from_secs(5)).await;
        let start = Instant::now();
        for _ in 0..10 {
            pace.wait().await;
        }
        assert!(
            Instant::now() - start < Duration::from_millis(10),
            "a rested reconciler starts a second's worth at once"
        );
        for _ in 0..10 {
            pace.wait().await;
        }
        assert!(
            Instant::now() - start >= Duration::from_millis(900),
            "then no more than 10 per second"
        );
    }
}
