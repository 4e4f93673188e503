//! The AIMD limit itself: additive increase while the server keeps up, multiplicative
//! decrease when it does not.

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use super::LimitConfig;

/// The current limit and the work in flight. Lock-free: the limit is an `f64` in an
/// `AtomicU64`, updated once per finished request by compare-and-swap.
#[derive(Debug)]
pub(super) struct Aimd {
    limit: AtomicU64,
    in_flight: AtomicUsize,
    config: LimitConfig,
}

impl Aimd {
    pub(super) fn new(config: LimitConfig) -> Self {
        Self {
            limit: AtomicU64::new((config.initial_limit as f64).to_bits()),
            in_flight: AtomicUsize::new(0),
            config,
        }
    }

    pub(super) fn config(&self) -> &LimitConfig {
        &self.config
    }

    /// The whole-number limit admission uses.
    pub(super) fn limit(&self) -> usize {
        f64::from_bits(self.limit.load(Ordering::Acquire)) as usize
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Admits a request if in-flight work stays within the limit; returns the in-flight
    /// count including it.
    pub(super) fn try_admit(&self) -> Option<usize> {
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
    pub(super) fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Adjusts the limit for a request admitted with `in_flight` requests in flight and
    /// answered after `latency`. Returns the new whole limit if it changed.
    pub(super) fn sample(
        &self,
        in_flight: usize,
        latency: Duration,
        overloaded: bool,
    ) -> Option<usize> {
        let config = &self.config;
        let dropped = overloaded || latency >= config.latency_threshold;
        let update = |bits: u64| {
            let limit = f64::from_bits(bits);
            let next = if dropped {
                (limit * config.backoff_ratio).max(config.min_limit as f64)
            } else if in_flight * 2 >= limit as usize {
                // Only grow when the limit is actually being used (Netflix's rule).
                (limit + 1.0).min(config.max_limit as f64)
            } else {
                return None;
            };
            (next != limit).then_some(next.to_bits())
        };
        let previous = self
            .limit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, update)
            .ok()?;
        let (before, after) = (f64::from_bits(previous) as usize, self.limit());
        (before != after).then_some(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aimd(initial: usize) -> Aimd {
        Aimd::new(
            LimitConfig::default()
                .with_initial_limit(initial)
                .with_bounds(2, 12),
        )
    }

    #[test]
    fn grows_by_one_while_used_and_not_beyond_max() {
        let aimd = aimd(10);
        let fast = Duration::from_millis(1);
        assert_eq!(
            aimd.sample(1, fast, false),
            None,
            "a mostly idle limit does not grow"
        );
        for expected in [11, 12] {
            assert_eq!(aimd.sample(10, fast, false), Some(expected));
        }
        assert_eq!(aimd.sample(12, fast, false), None, "capped at max_limit");
    }

    #[test]
    fn backs_off_on_slow_or_overloaded_responses_down_to_min() {
        let aimd = aimd(10);
        assert_eq!(aimd.sample(1, Duration::from_secs(1), false), Some(9));
        assert_eq!(aimd.sample(1, Duration::ZERO, true), Some(8)); // 9 × 0.9 = 8.1
        for _ in 0..50 {
            aimd.sample(1, Duration::ZERO, true);
        }
        assert_eq!(aimd.limit(), 2);
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
