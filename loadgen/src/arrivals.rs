//! Open-model load: shoppers arrive at a rate, whether or not order keeps up.
//!
//! A [`RatePlan`] is a start rate and stages, each ramping linearly to a target rate over a
//! duration (k6's `ramping-arrival-rate`; one stage at a fixed rate is its
//! `constant-arrival-rate`). [`RatePlan::schedule`] turns it into arrival times: evenly spaced
//! ([`Spacing::Uniform`]) or a Poisson process ([`Spacing::Poisson`], seeded, so a run can be
//! repeated). Both draw arrivals in the plan's cumulative intensity Λ(t) = ∫ rate, where a
//! unit step is one arrival, and map each back to a time by solving the stage's quadratic, so
//! a ramp gets exactly the arrivals its rate implies.
//!
//! [`Dispatcher`] hands each arrival, at its time, to a user that is free; when none is, the
//! arrival is dropped and counted, never delayed (a delayed arrival would hide the overload
//! the test is there to show). A user measures its answer from the arrival's scheduled time,
//! so time spent waiting to be sent counts (no coordinated omission).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use rand::{RngExt, SeedableRng, rngs::StdRng};
use tokio::{
    sync::{Mutex, mpsc, watch},
    time::Instant,
};

/// How arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    /// Evenly: at a fixed rate r, one every 1/r seconds.
    Uniform,
    /// A Poisson process: independent arrivals, as shoppers come (the default).
    Poisson,
}

/// One stage: the rate goes linearly from the previous stage's target to `target` (arrivals
/// per second) over `over`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStage {
    /// Arrivals per second at the end of the stage.
    pub target: f64,
    /// How long the stage lasts.
    pub over: Duration,
}

/// A start rate and its stages.
#[derive(Debug, Clone, PartialEq)]
pub struct RatePlan {
    /// Arrivals per second at the start.
    pub start: f64,
    /// The stages, in order.
    pub stages: Vec<RateStage>,
}

/// One scheduled arrival: when, from the start of the load, and what the shopper does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// When it arrives, from the start of the schedule.
    pub at: Duration,
    /// Buys (places an order and follows it) rather than browses the catalogue.
    pub buys: bool,
}

/// One shopper in four buys, as in the closed model's scenario weights (browse 3, buy 1).
const BUY_SHARE: f64 = 0.25;

impl RatePlan {
    /// A fixed `rate` for `over`.
    pub fn constant(rate: f64, over: Duration) -> Self {
        Self {
            start: rate,
            stages: vec![RateStage { target: rate, over }],
        }
    }

    /// Reads `--stages`: comma-separated `RATE:DURATION` stages (`50:30s,50:2m,0:30s`; a
    /// rate may end in `/s`). Each stage ramps linearly from the previous stage's rate; the
    /// plan starts at the first stage's rate (`0:0s,50:30s` ramps from 0).
    pub fn parse_stages(text: &str) -> Result<Self, String> {
        let mut stages = Vec::new();
        for (index, item) in text.split(',').map(str::trim).enumerate() {
            let place = format!("stage {} ({item:?})", index + 1);
            let (rate, over) = item
                .split_once(':')
                .ok_or_else(|| format!("{place}: expected RATE:DURATION, as in 50:30s"))?;
            let rate = rate.trim();
            let target: f64 = rate
                .strip_suffix("/s")
                .unwrap_or(rate)
                .trim()
                .parse()
                .map_err(|_| {
                    format!("{place}: the rate {rate:?} is not a number of arrivals per second")
                })?;
            if !(target.is_finite() && target >= 0.0) {
                return Err(format!(
                    "{place}: the rate must be 0 or more arrivals per second"
                ));
            }
            let over = humantime::parse_duration(over.trim())
                .map_err(|error| format!("{place}: the duration {:?}: {error}", over.trim()))?;
            stages.push(RateStage { target, over });
        }
        let plan = Self {
            start: stages.first().map_or(0.0, |stage| stage.target),
            stages,
        };
        plan.check()?;
        Ok(plan)
    }

    /// When the plan is at its highest rate: from the first moment it reaches it to the last.
    pub fn peak(&self) -> (Duration, Duration) {
        let peak = self.peak_rate();
        let mut at = Duration::ZERO;
        let (mut first, mut last) = (None, Duration::ZERO);
        let mut from = self.start;
        for stage in &self.stages {
            if from >= peak {
                first.get_or_insert(at);
            }
            at += stage.over;
            if stage.target >= peak {
                first.get_or_insert(at);
                last = at;
            }
            from = stage.target;
        }
        (
            first.unwrap_or(Duration::ZERO),
            last.max(first.unwrap_or(Duration::ZERO)),
        )
    }

    /// Rates times `rate`, durations times `time_scale`.
    pub fn scaled(&self, rate: f64, time_scale: f64) -> Self {
        Self {
            start: self.start * rate,
            stages: self
                .stages
                .iter()
                .map(|stage| RateStage {
                    target: stage.target * rate,
                    over: stage.over.mul_f64(time_scale),
                })
                .collect(),
        }
    }

    /// How long the plan lasts.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|stage| stage.over).sum()
    }

    /// The highest rate the plan reaches.
    pub fn peak_rate(&self) -> f64 {
        self.stages
            .iter()
            .map(|stage| stage.target)
            .fold(self.start, f64::max)
    }

    /// The arrivals the plan implies: the integral of its rate.
    pub fn expected_arrivals(&self) -> f64 {
        self.segments()
            .map(|(from, to, over)| (from + to) / 2.0 * over)
            .sum()
    }

    /// Every rate finite and at least 0, and some arrivals: what a run needs.
    pub fn check(&self) -> Result<(), String> {
        let rates = std::iter::once(self.start).chain(self.stages.iter().map(|s| s.target));
        if let Some(bad) = rates
            .into_iter()
            .find(|rate| !(rate.is_finite() && *rate >= 0.0))
        {
            return Err(format!(
                "a rate must be a number of arrivals per second ≥ 0, not {bad}"
            ));
        }
        if self.expected_arrivals() < 1.0 {
            return Err("the rate plan brings no arrival: give a rate above 0".into());
        }
        Ok(())
    }

    /// (rate at start, rate at end, seconds) of each stage.
    fn segments(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        let mut from = self.start;
        self.stages.iter().map(move |stage| {
            let segment = (from, stage.target, stage.over.as_secs_f64());
            from = stage.target;
            segment
        })
    }

    /// The arrivals of the plan, in order. With `Uniform` spacing the n-th arrival is where
    /// Λ(t) = n + ½; with `Poisson`, Λ advances by an exponential draw of mean 1 each time.
    /// `seed` also decides which shoppers buy.
    pub fn schedule(&self, spacing: Spacing, seed: u64) -> Vec<Arrival> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut arrivals = Vec::with_capacity(self.expected_arrivals().ceil() as usize + 16);
        let mut next = match spacing {
            Spacing::Uniform => 0.5,
            Spacing::Poisson => exponential(&mut rng),
        };
        let mut offset = 0.0; // seconds at the start of the stage
        let mut before = 0.0; // Λ at the start of the stage
        for (from, to, over) in self.segments() {
            let within = (from + to) / 2.0 * over;
            while next < before + within {
                let x = next - before;
                // from·t + (to − from)·t²/(2·over) = x, solved in the form that stays stable
                // when the rate falls (to < from) or starts at 0.
                let a = if over > 0.0 {
                    (to - from) / (2.0 * over)
                } else {
                    0.0
                };
                let t = 2.0 * x / (from + (from * from + 4.0 * a * x).max(0.0).sqrt());
                arrivals.push(Arrival {
                    at: Duration::from_secs_f64(offset + t.clamp(0.0, over)),
                    buys: rng.random_bool(BUY_SHARE),
                });
                next += match spacing {
                    Spacing::Uniform => 1.0,
                    Spacing::Poisson => exponential(&mut rng),
                };
            }
            offset += over;
            before += within;
        }
        arrivals
    }
}

fn exponential(rng: &mut StdRng) -> f64 {
    // 1 − U is in (0, 1]: its logarithm is finite.
    -(1.0 - rng.random::<f64>()).ln()
}

/// An arrival handed to a user: what to do, and when it was due. The user counts as busy
/// until it drops this.
#[derive(Debug)]
pub struct Due {
    /// The shopper buys rather than browses.
    pub buys: bool,
    /// When it was scheduled: answers are timed from here.
    pub at: Instant,
    _busy: Busy,
}

#[derive(Debug)]
struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts of a dispatch, for the report.
#[derive(Debug, Default)]
pub struct Counts {
    offered: AtomicU64,
    dropped: AtomicU64,
}

impl Counts {
    /// Arrivals that came due.
    pub fn offered(&self) -> u64 {
        self.offered.load(Ordering::Relaxed)
    }

    /// Arrivals dropped because no user was free.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// How long the dispatcher waits for the whole pool to be waiting before it starts anyway.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Hands arrivals to free users at their scheduled times; see the module's documentation.
#[derive(Debug)]
pub struct Dispatcher {
    free: AtomicUsize,
    busy: Arc<AtomicUsize>,
    queue: Mutex<mpsc::UnboundedReceiver<Due>>,
    counts: Counts,
    /// When the first arrival's clock started (`None` until then).
    started: watch::Receiver<Option<Instant>>,
    /// True once the last arrival is dispatched and every answer in flight is back (or
    /// `settle` has passed).
    finished: watch::Receiver<bool>,
}

impl Dispatcher {
    /// Dispatches `schedule` to a pool of `pool` users. The clock starts once every user of
    /// the pool waits for an arrival (at most 30 s after this call), so that starting the pool
    /// drops nothing. After the last arrival the dispatcher waits for the answers in flight,
    /// at most `settle`, and then says it has finished; users then get `None`.
    pub fn start(schedule: Vec<Arrival>, pool: usize, settle: Duration) -> Arc<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (started_tx, started) = watch::channel(None);
        let (finished_tx, finished) = watch::channel(false);
        let dispatcher = Arc::new(Self {
            free: AtomicUsize::new(0),
            busy: Arc::new(AtomicUsize::new(0)),
            queue: Mutex::new(receiver),
            counts: Counts::default(),
            started,
            finished,
        });
        let feeding = dispatcher.clone();
        crate::metrics::open_model();
        tokio::spawn(async move {
            // Waiting on a counter the users move: no event to await, so poll.
            let ready_by = Instant::now() + READY_WITHIN;
            while feeding.free.load(Ordering::Acquire) < pool && Instant::now() < ready_by {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let start = Instant::now();
            let _ = started_tx.send(Some(start));
            for arrival in schedule {
                let at = start + arrival.at;
                tokio::time::sleep_until(at).await;
                feeding.counts.offered.fetch_add(1, Ordering::Relaxed);
                crate::metrics::arrival();
                // Take one free user, if there is one; it is waiting on the queue.
                let taken = feeding
                    .free
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                        free.checked_sub(1)
                    })
                    .is_ok();
                if taken {
                    feeding.busy.fetch_add(1, Ordering::AcqRel);
                    let _ = sender.send(Due {
                        buys: arrival.buys,
                        at,
                        _busy: Busy(feeding.busy.clone()),
                    });
                } else {
                    feeding.counts.dropped.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::dropped_arrival();
                }
            }
            drop(sender);
            let settled_by = Instant::now() + settle;
            while feeding.busy.load(Ordering::Acquire) > 0 && Instant::now() < settled_by {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let _ = finished_tx.send(true);
        });
        dispatcher
    }

    /// Waits, as a free user, for the next arrival; `None` once the schedule is over.
    pub async fn next(&self) -> Option<Due> {
        self.free.fetch_add(1, Ordering::AcqRel);
        self.queue.lock().await.recv().await
    }

    /// The offered and dropped counts so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// When the first arrival's clock started; waits for it.
    pub async fn started(&self) -> Instant {
        let mut started = self.started.clone();
        match started.wait_for(Option::is_some).await {
            Ok(start) => start.unwrap_or_else(Instant::now),
            // The dispatching task is gone without starting: it cannot be, but say now.
            Err(_) => Instant::now(),
        }
    }

    /// Waits until the last arrival is dispatched and its answers are back.
    pub async fn finished(&self) {
        let mut finished = self.finished.clone();
        let _ = finished.wait_for(|done| *done).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seconds(arrivals: &[Arrival]) -> Vec<f64> {
        arrivals.iter().map(|a| a.at.as_secs_f64()).collect()
    }

    #[test]
    fn a_constant_rate_spaced_evenly_is_exact() {
        let plan = RatePlan::constant(500.0, Duration::from_secs(10));
        let arrivals = plan.schedule(Spacing::Uniform, 1);
        assert_eq!(arrivals.len(), 5000);
        let at = seconds(&arrivals);
        assert!((at[0] - 0.001).abs() < 1e-9, "{}", at[0]);
        assert!((at[1] - at[0] - 0.002).abs() < 1e-9);
        let buys = arrivals.iter().filter(|a| a.buys).count();
        assert!((1100..1400).contains(&buys), "{buys} of 5000 buy");
    }

    #[test]
    fn a_ramp_gets_the_arrivals_of_its_area_and_more_of_them_late() {
        // 0 → 100/s over 10 s: 500 arrivals, three quarters in the second half.
        let ramp = |start, target| RatePlan {
            start,
            stages: vec![RateStage {
                target,
                over: Duration::from_secs(10),
            }],
        };
        let at = seconds(&ramp(0.0, 100.0).schedule(Spacing::Uniform, 1));
        assert_eq!(at.len(), 500);
        let late = at.iter().filter(|t| **t >= 5.0).count();
        assert_eq!(late, 375);
        // The rate falls back to 0 over a second stage: as many again, mirrored.
        let at = seconds(&ramp(100.0, 0.0).schedule(Spacing::Uniform, 1));
        assert_eq!(at.len(), 500);
        assert_eq!(at.iter().filter(|t| **t < 5.0).count(), 375);
    }

    #[test]
    fn poisson_arrivals_are_repeatable_by_seed_and_near_the_rate() {
        let plan = RatePlan::constant(200.0, Duration::from_secs(50));
        let one = plan.schedule(Spacing::Poisson, 7);
        assert_eq!(one, plan.schedule(Spacing::Poisson, 7));
        assert_ne!(one, plan.schedule(Spacing::Poisson, 8));
        // 10 000 expected; the standard deviation is 100.
        assert!((9_600..10_400).contains(&one.len()), "{}", one.len());
        // Gaps are exponential: their coefficient of variation is 1 (uniform gaps: 0).
        let at = seconds(&one);
        let gaps: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((0.95..1.05).contains(&cv), "cv {cv}");
    }

    #[test]
    fn stages_read_as_written_and_name_what_is_wrong() {
        let plan = RatePlan::parse_stages("0:0s, 50/s:30s,50:2m,0:30s").expect("reads");
        assert_eq!(plan.start, 0.0);
        assert_eq!(plan.stages.len(), 4);
        assert_eq!(plan.stages[2].over, Duration::from_secs(120));
        assert_eq!(plan.duration(), Duration::from_secs(180));
        assert_eq!(
            plan.peak(),
            (Duration::from_secs(30), Duration::from_secs(150))
        );
        let constant = RatePlan::parse_stages("500:10s").expect("reads");
        assert_eq!(constant, RatePlan::constant(500.0, Duration::from_secs(10)));
        assert_eq!(constant.peak(), (Duration::ZERO, Duration::from_secs(10)));
        for (text, says) in [
            ("50", "stage 1 (\"50\"): expected RATE:DURATION"),
            ("50:30s,fast:1m", "stage 2 (\"fast:1m\"): the rate \"fast\""),
            ("50:3x", "stage 1 (\"50:3x\"): the duration \"3x\""),
            ("-5:10s", "stage 1 (\"-5:10s\"): the rate must be 0 or more"),
            ("0:10s", "no arrival"),
        ] {
            let error = RatePlan::parse_stages(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn bad_rates_are_refused() {
        assert!(
            RatePlan::constant(0.0, Duration::from_secs(5))
                .check()
                .is_err()
        );
        assert!(
            RatePlan::constant(-1.0, Duration::from_secs(5))
                .check()
                .is_err()
        );
        assert!(
            RatePlan::constant(f64::NAN, Duration::from_secs(5))
                .check()
                .is_err()
        );
        assert!(
            RatePlan::constant(1.0, Duration::from_secs(5))
                .check()
                .is_ok()
        );
    }

    proptest! {
        /// Whatever the stages, arrivals are in order, inside the plan, and as many as its
        /// area (uniform spacing: within one).
        #[test]
        fn arrivals_follow_the_plan(
            start in 0.0f64..300.0,
            stages in proptest::collection::vec((0.0f64..300.0, 0u64..5_000), 1..6),
        ) {
            let plan = RatePlan {
                start,
                stages: stages
                    .iter()
                    .map(|(target, ms)| RateStage { target: *target, over: Duration::from_millis(*ms) })
                    .collect(),
            };
            let at = seconds(&plan.schedule(Spacing::Uniform, 3));
            prop_assert!(at.windows(2).all(|w| w[0] <= w[1] + 1e-9));
            prop_assert!(at.iter().all(|t| *t >= 0.0 && *t <= plan.duration().as_secs_f64() + 1e-9));
            let expected = plan.expected_arrivals();
            prop_assert!((at.len() as f64 - expected).abs() <= 1.0, "{} vs {}", at.len(), expected);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_arrival_with_no_free_user_is_dropped_not_delayed() {
        let plan = RatePlan::constant(10.0, Duration::from_secs(1));
        let dispatcher = Dispatcher::start(
            plan.schedule(Spacing::Uniform, 1),
            1,
            Duration::from_secs(5),
        );
        // One user, busy for 250 ms with each arrival: it takes the 1st, 4th, 7th and 10th
        // (due at 50, 350, 650 and 950 ms); the six in between find no one free.
        let mut taken = Vec::new();
        while let Some(due) = dispatcher.next().await {
            taken.push(due.at);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let start = dispatcher.started().await;
        let ms: Vec<u128> = taken.iter().map(|at| (*at - start).as_millis()).collect();
        assert_eq!(ms, [50, 350, 650, 950]);
        assert_eq!(dispatcher.counts().offered(), 10);
        assert_eq!(dispatcher.counts().dropped(), 6);
        dispatcher.finished().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_waits_for_the_pool_and_the_end_waits_for_answers_in_flight() {
        let plan = RatePlan::constant(10.0, Duration::from_secs(1));
        let began = Instant::now();
        let dispatcher = Dispatcher::start(
            plan.schedule(Spacing::Uniform, 1),
            2,
            Duration::from_secs(5),
        );
        let serve = |delay_ms: u64| {
            let dispatcher = dispatcher.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                let mut served = 0;
                while let Some(_due) = dispatcher.next().await {
                    served += 1;
                    tokio::time::sleep(Duration::from_millis(2_000)).await;
                }
                served
            })
        };
        // The second user joins 400 ms late: the clock starts then, and drops nothing early.
        let (first, second) = (serve(0), serve(400));
        assert!(dispatcher.started().await - began >= Duration::from_millis(400));
        dispatcher.finished().await;
        // Each took one arrival and held it 2 s: the end waited for both answers.
        assert!(began.elapsed() >= Duration::from_millis(2_400));
        assert_eq!(dispatcher.counts().dropped(), 8);
        let served = first.await.expect("first") + second.await.expect("second");
        assert_eq!(served, 2);
    }
}
