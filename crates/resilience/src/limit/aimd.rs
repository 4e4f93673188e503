//! The AIMD limit itself: additive increase while the server keeps up, multiplicative
//! decrease when it does not, each at most about once per round trip. Public so that work
//! which is not a tower service (a background worker sizing its own concurrency against a
//! dependency) can use the same algorithm as the layer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::time::Instant;

use super::LimitConfig;
use crate::error::ConfigError;

/// The current limit and the work in flight. Lock-free: the limit is an `f64` in an
/// `AtomicU64`, updated once per finished request by compare-and-swap.
///
/// Both moves are paced by the round trip, as TCP paces its congestion window, because a
/// busy server answers thousands of requests per round trip and a per-answer step would
/// swing the limit by thousands:
/// - a fast answer adds `1 / limit`, so a limit's worth of them (one round trip) adds one;
/// - a slow answer cuts the limit only if its request was admitted after the last cut: the
///   answers to requests admitted before it report a queue the cut has already dealt with.
#[derive(Debug)]
pub struct Aimd {
    limit: AtomicU64,
    in_flight: AtomicUsize,
    /// When the limit was last cut, in nanoseconds after `epoch` (0: never).
    last_cut: AtomicU64,
    epoch: Instant,
    config: LimitConfig,
}

impl Aimd {
    /// A limit starting at `config.initial_limit`; a bad config names its field.
    pub fn try_new(config: LimitConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::new(config))
    }

    pub(super) fn new(config: LimitConfig) -> Self {
        Self {
            limit: AtomicU64::new((config.initial_limit as f64).to_bits()),
            in_flight: AtomicUsize::new(0),
            last_cut: AtomicU64::new(0),
            epoch: Instant::now(),
            config,
        }
    }

    pub(super) fn config(&self) -> &LimitConfig {
        &self.config
    }

    /// The whole-number limit admission uses.
    pub fn limit(&self) -> usize {
        f64::from_bits(self.limit.load(Ordering::Acquire)) as usize
    }

    /// Admitted work not yet released.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Admits a request if in-flight work stays within the limit; returns the in-flight
    /// count including it.
    pub fn try_admit(&self) -> Option<usize> {
        let limit = self.limit();
        let in_flight = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        if in_flight > limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            None
        } else {
            Some(in_flight)
        }
    }

    /// Ends an admitted request.
    pub fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Adjusts the limit for a request admitted at `start` with `in_flight` requests in
    /// flight and answered now; `overloaded` counts the answer as a drop whatever its
    /// latency. Returns the new whole limit if it changed.
    pub fn sample(&self, in_flight: usize, start: Instant, overloaded: bool) -> Option<usize> {
        let config = &self.config;
        let now = Instant::now();
        let dropped = overloaded || now.duration_since(start) >= config.latency_threshold;
        let next: &dyn Fn(f64) -> Option<f64> = if dropped {
            if !self.claim_cut(start, now) {
                return None;
            }
            &|limit| Some((limit * config.backoff_ratio).max(config.min_limit as f64))
        } else if in_flight * 2 >= self.limit() {
            // Only grow when the limit is actually being used (Netflix's rule).
            &|limit| Some((limit + 1.0 / limit).min(config.max_limit as f64))
        } else {
            return None;
        };
        let previous = self
            .limit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                let limit = f64::from_bits(bits);
                next(limit).filter(|next| *next != limit).map(f64::to_bits)
            })
            .ok()?;
        let (before, after) = (f64::from_bits(previous) as usize, self.limit());
        (before != after).then_some(after)
    }

    /// Takes the right to cut for a request admitted at `start`: only one cut per round
    /// trip, and only for a request admitted after the last one.
    fn claim_cut(&self, start: Instant, now: Instant) -> bool {
        let nanos = |at: Instant| {
            u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
        };
        let (start, now) = (nanos(start), nanos(now).max(1));
        self.last_cut
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                (last == 0 || start >= last).then_some(now)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn aimd(initial: usize) -> Aimd {
        Aimd::new(
            LimitConfig::default()
                .with_initial_limit(initial)
                .with_bounds(2, 12),
        )
    }

    fn slow() -> Duration {
        LimitConfig::default().latency_threshold
    }

    #[tokio::test(start_paused = true)]
    async fn grows_by_one_per_limit_of_fast_answers_while_used_and_not_beyond_max() {
        let aimd = aimd(10);
        let now = Instant::now();
        assert_eq!(
            aimd.sample(1, now, false),
            None,
            "a mostly idle limit does not grow"
        );
        assert_eq!(aimd.limit(), 10);
        // 1/10 + 1/10.1 + … : the eleventh fast answer of a well-used limit takes it to 11.
        let grew_at = (1..=20).find(|_| aimd.sample(10, now, false).is_some());
        assert_eq!(grew_at, Some(11));
        assert_eq!(aimd.limit(), 11);
        for _ in 0..100 {
            aimd.sample(12, now, false);
        }
        assert_eq!(aimd.limit(), 12, "capped at max_limit");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_answers_of_one_round_trip_cut_the_limit_once() {
        let aimd = aimd(10);
        let admitted = Instant::now();
        tokio::time::advance(slow()).await;
        assert_eq!(aimd.sample(10, admitted, false), Some(9));
        for _ in 0..9 {
            assert_eq!(
                aimd.sample(10, admitted, false),
                None,
                "admitted before the cut: already dealt with"
            );
        }
        // A request admitted after the cut and still slow cuts again; an overloaded answer
        // counts as slow.
        let after_cut = Instant::now();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(aimd.sample(9, after_cut, true), Some(8)); // 9 × 0.9 = 8.1
        for _ in 0..50 {
            let admitted = Instant::now();
            tokio::time::advance(slow()).await;
            aimd.sample(1, admitted, false);
        }
        assert_eq!(aimd.limit(), 2, "floored at min_limit");
    }

    #[test]
    fn admits_up_to_the_limit_only() {
        let aimd = aimd(3);
        assert_eq!(
            (0..5).map(|_| aimd.try_admit()).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3), None, None]
        );
        assert_eq!(aimd.in_flight(), 3);
        aimd.release();
        assert_eq!(aimd.try_admit(), Some(3));
    }
}
