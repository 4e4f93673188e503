//! The sliding windows that hold recent outcomes: a ring of the last `n` outcomes, or ten
//! time buckets. Both keep running totals, so recording and reading are O(1) (O(buckets) to
//! expire old time buckets). Time is in nanoseconds since the breaker's origin; a count
//! window never reads it.
//!
//! A time window's clock only moves forward: results arrive stamped with the time their
//! caller read, and a caller that held its permit for long can report a time older than the
//! newest bucket. Such a result is placed in its own bucket while that bucket is still in the
//! window, and dropped once it is older than the window: it can never take the ring slot of
//! a live bucket, so the running totals always equal the sum of the live buckets.

use super::{Outcome, SlidingWindow};

/// Totals over the current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Finished calls in the window.
    pub calls: u32,
    /// Of which failed.
    pub failures: u32,
    /// Of which succeeded but slowly.
    pub slow: u32,
}

impl WindowStats {
    /// failures / calls, or 0 for an empty window.
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }

    /// slow / calls, or 0 for an empty window.
    pub fn slow_call_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }

    fn absorb(&mut self, other: WindowStats) {
        self.calls += other.calls;
        self.failures += other.failures;
        self.slow += other.slow;
    }

    fn subtract(&mut self, other: WindowStats) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }

    pub(super) fn add(&mut self, outcome: Outcome, sign: i8) {
        let apply = |n: &mut u32| {
            *n = if sign > 0 { *n + 1 } else { *n - 1 };
        };
        apply(&mut self.calls);
        match outcome {
            Outcome::Success => {}
            Outcome::Failure => apply(&mut self.failures),
            Outcome::Slow => apply(&mut self.slow),
        }
    }
}

fn ratio(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

#[derive(Debug)]
pub(super) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(super) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count(size) => Self::Count(CountWindow {
                ring: vec![Outcome::Success; size as usize].into_boxed_slice(),
                next: 0,
                stats: WindowStats::default(),
            }),
            SlidingWindow::Time(span) => Self::Time(TimeWindow {
                buckets: vec![Bucket::default(); BUCKETS].into_boxed_slice(),
                width: (span / BUCKETS as u32).as_nanos() as u64,
                head: 0,
                stats: WindowStats::default(),
            }),
        }
    }

    pub(super) fn record(&mut self, outcome: Outcome, now: u64) -> WindowStats {
        match self {
            Self::Count(window) => window.record(outcome),
            Self::Time(window) => window.record(outcome, now),
        }
    }

    pub(super) fn stats(&self, now: u64) -> WindowStats {
        match self {
            Self::Count(window) => window.stats,
            Self::Time(window) => window.stats_at(now),
        }
    }

    pub(super) fn clear(&mut self) {
        match self {
            Self::Count(window) => {
                window.next = 0;
                window.stats = WindowStats::default();
            }
            Self::Time(window) => {
                window.buckets.fill(Bucket::default());
                window.stats = WindowStats::default();
                // `head` stays: time does not go back when the window is emptied.
            }
        }
    }
}

#[derive(Debug)]
pub(super) struct CountWindow {
    /// The outcomes, oldest overwritten first; only the first `stats.calls` slots are live
    /// until the ring has filled once.
    ring: Box<[Outcome]>,
    next: usize,
    stats: WindowStats,
}

impl CountWindow {
    fn record(&mut self, outcome: Outcome) -> WindowStats {
        if self.stats.calls as usize == self.ring.len() {
            let evicted = self.ring[self.next];
            self.stats.add(evicted, -1);
        }
        self.ring[self.next] = outcome;
        self.stats.add(outcome, 1);
        // A branch, not `%`: a division costs more than the rest of this function.
        self.next += 1;
        if self.next == self.ring.len() {
            self.next = 0;
        }
        self.stats
    }
}

/// Number of buckets a time window is cut into.
const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket-width period since the origin this bucket holds.
    period: u64,
    stats: WindowStats,
}

#[derive(Debug)]
pub(super) struct TimeWindow {
    buckets: Box<[Bucket]>,
    /// A bucket's span, in nanoseconds.
    width: u64,
    /// The newest period any result was recorded in: the window ends there, whatever time
    /// a late result carries.
    head: u64,
    /// Totals of the live buckets, as of the last `record`.
    stats: WindowStats,
}

impl TimeWindow {
    fn period(&self, now: u64) -> u64 {
        now / self.width
    }

    /// Whether a bucket of `period` still counts at `current`.
    fn is_live(period: u64, current: u64) -> bool {
        period + BUCKETS as u64 > current
    }

    fn record(&mut self, outcome: Outcome, now: u64) -> WindowStats {
        let at = self.period(now);
        self.head = self.head.max(at);
        let head = self.head;
        if !Self::is_live(at, head) {
            // Older than the window already: it says nothing about the dependency now.
            return self.stats;
        }
        for bucket in self.buckets.iter_mut() {
            if bucket.stats.calls > 0 && !Self::is_live(bucket.period, head) {
                self.stats.subtract(bucket.stats);
                *bucket = Bucket::default();
            }
        }
        let slot = &mut self.buckets[(at % BUCKETS as u64) as usize];
        if slot.period != at {
            // Two live periods never share a slot, so this one is expired (and was emptied
            // above) or was never used; subtract it anyway, so the totals cannot drift.
            self.stats.subtract(slot.stats);
            *slot = Bucket {
                period: at,
                stats: WindowStats::default(),
            };
        }
        slot.stats.add(outcome, 1);
        self.stats.add(outcome, 1);
        self.stats
    }

    fn stats_at(&self, now: u64) -> WindowStats {
        let current = self.period(now).max(self.head);
        let mut stats = WindowStats::default();
        for bucket in self
            .buckets
            .iter()
            .filter(|b| Self::is_live(b.period, current))
        {
            stats.absorb(bucket.stats);
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(ms: u64) -> u64 {
        Duration::from_millis(ms).as_nanos() as u64
    }

    #[test]
    fn count_window_forgets_the_oldest_call() {
        let now = 0;
        let mut window = Window::new(SlidingWindow::Count(3));
        window.record(Outcome::Failure, now);
        window.record(Outcome::Slow, now);
        window.record(Outcome::Success, now);
        let stats = window.record(Outcome::Success, now);
        assert_eq!(
            stats,
            WindowStats {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
    }

    #[test]
    fn time_window_forgets_calls_older_than_its_span() {
        let origin = 0;
        let mut window = Window::new(SlidingWindow::Time(Duration::from_secs(10)));
        window.record(Outcome::Failure, origin);
        let later = origin + ms(9_999);
        assert_eq!(window.record(Outcome::Success, later).calls, 2);
        let expired = origin + ms(10_000);
        assert_eq!(
            window.stats(expired),
            WindowStats {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(window.record(Outcome::Slow, expired).failures, 0);
        assert_eq!(window.stats(origin + ms(30_000)).calls, 0);
    }

    /// Results arrive in any order of time; the window must agree with a model that keeps
    /// every result younger than the window (measured from the newest time seen) and drops
    /// the rest, and its running totals must equal the sum of its live buckets.
    mod out_of_order {
        use proptest::prelude::*;

        use super::*;

        const WIDTH_MS: u64 = 100; // a 1 s window: ten 100 ms buckets

        fn outcome() -> impl Strategy<Value = Outcome> {
            prop_oneof![
                Just(Outcome::Success),
                Just(Outcome::Failure),
                Just(Outcome::Slow)
            ]
        }

        fn model(kept: &[(u64, Outcome)], head: u64) -> WindowStats {
            let mut stats = WindowStats::default();
            for &(period, outcome) in kept {
                if period + BUCKETS as u64 > head {
                    stats.add(outcome, 1);
                }
            }
            stats
        }

        proptest! {
            #[test]
            fn totals_match_a_model_whatever_the_order_of_times(
                results in proptest::collection::vec((0u64..5_000, outcome()), 1..300),
            ) {
                let mut window = Window::new(SlidingWindow::Time(Duration::from_secs(1)));
                let mut kept: Vec<(u64, Outcome)> = Vec::new();
                let mut head = 0;
                for (at_ms, outcome) in results {
                    let period = at_ms / WIDTH_MS;
                    head = head.max(period);
                    if period + BUCKETS as u64 > head {
                        kept.push((period, outcome));
                    }
                    let recorded = window.record(outcome, ms(at_ms));
                    prop_assert_eq!(recorded, model(&kept, head));
                    prop_assert_eq!(window.stats(ms(at_ms)), model(&kept, head));
                }
                let much_later = (head + 3) * WIDTH_MS;
                prop_assert_eq!(window.stats(ms(much_later)), model(&kept, head + 3));
            }
        }
    }
}
