//! [`CallClock`]: the clock that times calls for slow-call detection, for the price of a load.
//!
//! # Why not `Instant::now()`
//!
//! Slow-call detection needs the time at the start and at the end of every call. Reading the
//! clock (`tokio::time::Instant::now()`, a vDSO `clock_gettime`) costs 20–25 ns on a virtual
//! machine, so the two reads were 40 % of the breaker's cost per call. Yet the verdict they
//! feed only compares a duration with a threshold of at least a millisecond (two seconds by
//! default): a reading that is a tick old is as good.
//!
//! So each breaker that times calls keeps its own reading of tokio's clock in an atomic, and a
//! small task, the ticker, refreshes it every tick (a hundredth of the slow-call duration, at
//! least 1 ms): a call reads the time with one load. The ticker reads
//! `tokio::time::Instant::now()`, so `tokio::time::pause`, `advance` and auto-advance drive this
//! clock as they drive tokio's, and a missed tick never makes it drift.
//!
//! A coarse OS clock (`CLOCK_MONOTONIC_COARSE`, about 5 ns) was the other candidate; it was not
//! chosen because it is real time: tests drive the breaker with tokio's paused clock, which it
//! cannot follow.
//!
//! # The ticker's life
//!
//! - It is spawned by the first reading that finds none running, on that reading's runtime
//!   (a breaker is built outside any runtime, so it cannot be spawned earlier). That reading,
//!   and every reading made outside a runtime, is taken from `Instant::now()` itself.
//! - It stops after [`IDLE_TICKS`] ticks in which nobody read the clock: an idle breaker costs
//!   no wakeups, and a paused-clock test is not auto-advanced tick by tick while nothing
//!   happens. The next reading starts a new one.
//! - It stops when the breaker is dropped, and it dies with its runtime (the tests run one
//!   runtime each, a benchmark one per thread): either way the next reading, on whatever
//!   runtime it runs, starts a new one. There is one ticker per breaker, not one per process,
//!   because a paused clock belongs to one runtime. A breaker shared by several runtimes is
//!   timed by the timers of the one its ticker runs on: share it only between runtimes that
//!   are all driven (not a current-thread runtime that sits between two `block_on`s).
//! - On a runtime without timers it cannot run (tokio panics in the ticker task, once); the
//!   breaker then reads `Instant::now()` on every call, as it did before this clock existed.
//!
//! # What a reading means
//!
//! A reading is a past instant: the time of the last tick, at most one tick old while the
//! runtime runs its timers on time. When the runtime does not (it was blocked, or starved, or
//! a test called `tokio::time::advance`), the clock stands still until the ticker runs again.
//! A call that read the time just before such a gap may have started anywhere in it: its
//! duration is counted from the end of the gap, so that a stall of our own runtime is never
//! taken for a slow dependency. A call is therefore counted slow when it took at least the
//! slow-call duration give or take one tick, not counting a stall of the runtime it ran on.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    runtime::Handle,
    time::{Instant, MissedTickBehavior},
};

/// A [`CallClock::reading`] that is no time: no ticker runs, the next reading starts one.
const STOPPED: u64 = u64::MAX;
/// A [`CallClock::reading`] that is no time: the ticker cannot run (no timers on its runtime).
const NO_TIMERS: u64 = u64::MAX - 1;

/// Ticks without a reading after which the ticker stops.
pub(super) const IDLE_TICKS: u32 = 100;

/// A breaker's clock for timing calls: nanoseconds since `origin`, refreshed by a ticker.
#[derive(Debug)]
pub(super) struct CallClock {
    /// The time of the last tick, or [`STOPPED`] or [`NO_TIMERS`].
    reading: AtomicU64,
    /// Whether the clock was read since the last tick (the ticker stops when it is not).
    read_since_tick: AtomicBool,
    /// The last gap: a tick that came more than two ticks after the one before it. A reading
    /// equal to `gap_from` may have been taken anywhere up to `gap_to`.
    gap_from: AtomicU64,
    gap_to: AtomicU64,
    origin: Instant,
    /// The slow-call duration, in nanoseconds.
    slow: u64,
    /// How often the ticker refreshes the reading.
    tick: Duration,
}

// === impl CallClock ===

impl CallClock {
    /// A clock precise enough to tell a call of `slow` from a faster one.
    pub(super) fn new(origin: Instant, slow: Duration) -> Self {
        Self {
            reading: AtomicU64::new(STOPPED),
            read_since_tick: AtomicBool::new(false),
            gap_from: AtomicU64::new(STOPPED),
            gap_to: AtomicU64::new(0),
            origin,
            slow: slow.as_nanos() as u64,
            tick: (slow / 100).max(Duration::from_millis(1)),
        }
    }

    /// The time, in nanoseconds since the origin: the last tick's, or `Instant::now()` if no
    /// ticker runs (starting one if it can).
    pub(super) fn now(self: &Arc<Self>) -> u64 {
        let reading = self.reading.load(Ordering::Acquire);
        if reading < NO_TIMERS {
            // Written once per tick, not once per call: the line stays shared between cores.
            if !self.read_since_tick.load(Ordering::Relaxed) {
                self.read_since_tick.store(true, Ordering::Relaxed);
            }
            return reading;
        }
        self.now_without_ticker(reading)
    }

    #[cold]
    fn now_without_ticker(self: &Arc<Self>, reading: u64) -> u64 {
        let now = self.precise();
        if reading == STOPPED
            && let Ok(runtime) = Handle::try_current()
            && self
                .reading
                .compare_exchange(STOPPED, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let stop = Stop {
                clock: Arc::downgrade(self),
                leaves: STOPPED,
            };
            drop(runtime.spawn(run(Arc::downgrade(self), self.tick, stop)));
        }
        now
    }

    /// Whether a call whose start and end read `started` and `ended` took at least the
    /// slow-call duration.
    pub(super) fn took_slow(&self, started: u64, ended: u64) -> bool {
        let slow = self.slow;
        if ended.saturating_sub(started) < slow {
            return false; // the common case: one subtraction
        }
        let started = if self.gap_from.load(Ordering::Acquire) == started {
            started.max(self.gap_to.load(Ordering::Relaxed))
        } else {
            started
        };
        ended.saturating_sub(started) >= slow
    }

    fn precise(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos() as u64
    }

    /// The ticker's work: a fresh reading, and the gap if the tick came late.
    fn refresh(&self) {
        let now = self.precise();
        let last = self.reading.load(Ordering::Relaxed);
        if now.saturating_sub(last) > 2 * self.tick.as_nanos() as u64 {
            self.gap_to.store(now, Ordering::Relaxed);
            self.gap_from.store(last, Ordering::Release);
        }
        self.reading.store(now, Ordering::Release);
    }
}

/// The ticker. `stop` marks the clock as stopped when the task ends or is dropped, polled or
/// not (a runtime shutting down drops its tasks).
async fn run(clock: Weak<CallClock>, tick: Duration, mut stop: Stop) {
    stop.leaves = NO_TIMERS; // if the next line panics
    let mut interval = tokio::time::interval(tick);
    stop.leaves = STOPPED;
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut idle = 0;
    loop {
        interval.tick().await;
        let Some(clock) = clock.upgrade() else {
            return; // the breaker is gone
        };
        if clock.read_since_tick.swap(false, Ordering::Relaxed) {
            idle = 0;
        } else {
            idle += 1;
            if idle == IDLE_TICKS {
                return;
            }
        }
        clock.refresh();
    }
}

/// Leaves the clock's reading at `leaves` when the ticker ends.
struct Stop {
    clock: Weak<CallClock>,
    leaves: u64,
}

impl Drop for Stop {
    fn drop(&mut self) {
        if let Some(clock) = self.clock.upgrade() {
            clock.reading.store(self.leaves, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn clock() -> Arc<CallClock> {
        Arc::new(CallClock::new(Instant::now(), 100 * MS))
    }

    #[test]
    fn outside_a_runtime_every_reading_is_precise() {
        let clock = clock();
        let first = clock.now();
        std::thread::sleep(2 * MS);
        assert!(clock.now() >= first + 2_000_000);
        assert_eq!(clock.reading.load(Ordering::Relaxed), STOPPED);
    }

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock_within_a_tick() {
        let clock = clock();
        assert_eq!(clock.tick, MS);
        let start = clock.now();
        tokio::time::sleep(50 * MS).await;
        let elapsed = clock.now() - start;
        assert!((49_000_000..=50_000_000).contains(&elapsed), "{elapsed} ns");
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_idle_and_restarts_on_the_next_reading() {
        let clock = clock();
        let start = clock.now();
        tokio::time::sleep(2 * IDLE_TICKS * MS).await;
        assert_eq!(clock.reading.load(Ordering::Relaxed), STOPPED, "idle");
        let now = clock.now();
        assert_eq!(now - start, 200_000_000, "precise while stopped");
        assert_ne!(clock.reading.load(Ordering::Relaxed), STOPPED, "restarted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_started_before_a_gap_is_timed_from_its_end() {
        // The ticker is played by hand, so that the runtime can be "stalled": tokio's clock
        // moves on while the reading does not.
        let clock = clock(); // slow: 100 ms
        tokio::time::sleep(5 * MS).await;
        clock.refresh();
        tokio::time::advance(Duration::from_secs(1)).await;
        let started = clock.now();
        assert_eq!(started, 5_000_000, "a second old: the ticker did not run");
        clock.refresh(); // late: a gap from 5 ms to 1.005 s
        ticks(&clock, 10).await;
        assert!(!clock.took_slow(started, clock.now()), "10 ms");
        ticks(&clock, 90).await;
        assert!(clock.took_slow(started, clock.now()), "100 ms");

        // A reading that is not the start of the gap is counted as it is.
        let before = clock.now();
        ticks(&clock, 100).await;
        assert!(clock.took_slow(before, clock.now()));
    }

    /// Plays `n` ticks of a punctual ticker.
    async fn ticks(clock: &CallClock, n: u32) {
        for _ in 0..n {
            tokio::time::advance(clock.tick).await;
            clock.refresh();
        }
    }

    #[tokio::test]
    async fn the_ticker_ends_with_its_runtime_and_the_next_one_restarts_it() {
        let clock = clock();
        let other = clock.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                other.now();
                tokio::time::sleep(5 * MS).await;
            });
        })
        .join()
        .expect("no panic");
        assert_eq!(clock.reading.load(Ordering::Relaxed), STOPPED);
        clock.now();
        assert_ne!(clock.reading.load(Ordering::Relaxed), STOPPED);
    }

    #[test]
    fn a_runtime_without_timers_falls_back_to_precise_readings() {
        let clock = clock();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            clock.now();
            tokio::task::yield_now().await; // the ticker runs, and panics
        });
        assert_eq!(clock.reading.load(Ordering::Relaxed), NO_TIMERS);
        let first = clock.now();
        std::thread::sleep(2 * MS);
        assert!(clock.now() >= first + 2_000_000);
    }
}
