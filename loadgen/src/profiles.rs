//! Load profiles by name: how shoppers arrive, and when.
//!
//! Each profile has two shapes. The open model's ([`Profile::rates`], the default for
//! `peak-sale` and `stress`) is arrivals per second, scaled by `--rate`: shoppers keep coming
//! whether or not order keeps up, as in a sale. The closed model's ([`Profile::plan`], the
//! default for the others) is a goose test plan (steps of "reach N users over T") scaled by
//! `--scale`: each user waits for its answer and thinks before the next request, so a slow
//! order is offered less. `--time-scale` multiplies the durations of both. The peak (where
//! built-in chaos timelines strike) is part of the profile, so a timeline lands on the spike
//! whatever the scale. `stress` is not one plan but a ladder of steady rungs, run one after
//! another until an SLO breaks.

use std::time::Duration;

use crate::arrivals::{RatePlan, RateStage};

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// Arrivals at a rate, each served by a free user or dropped: a sale as it comes.
    Open,
    /// A fixed number of users, each waiting for its answer and thinking: a slow target gets
    /// less load.
    Closed,
}

/// The profiles a user can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileName {
    /// A few seconds of light load: does everything answer?
    Smoke,
    /// Warm-up, a spike to 10x in 30 s, a plateau, a cool-down.
    PeakSale,
    /// A long steady load.
    Soak,
    /// Steps up until an SLO breaks (twice in a row on one rung); reports the knee.
    Stress,
    /// Only `GET /v1/products`, no think time, 10 s: the throughput benchmark against wrk.
    Catalogue,
}

impl ProfileName {
    /// The name as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileName::Smoke => "smoke",
            ProfileName::PeakSale => "peak-sale",
            ProfileName::Soak => "soak",
            ProfileName::Stress => "stress",
            ProfileName::Catalogue => "catalogue",
        }
    }
}

/// One step of a test plan: reach `users` over `over` (or hold them, if unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Users at the end of the step.
    pub users: usize,
    /// How long the step takes.
    pub over: Duration,
}

/// A scaled load shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Which profile this is.
    pub name: ProfileName,
    /// The plan of one goose run (for `stress`, the first rung of the ladder).
    pub plan: Vec<Step>,
    /// When the peak starts and ends, from the start of the run.
    pub peak: (Duration, Duration),
    /// Think time between a user's transactions: (min, max).
    pub think: (Duration, Duration),
    /// For `stress`: the user counts of the ladder's rungs, each held for `rung`.
    pub ladder: Vec<usize>,
    /// For `stress`: how long each rung is held.
    pub rung: Duration,
    /// The open model's arrivals per second (at `--rate` 1), durations already scaled.
    pub rates: RatePlan,
    /// For `stress` under the open model: the arrival rates of the ladder's rungs.
    pub rate_ladder: Vec<f64>,
}

impl Profile {
    /// The profile `name`, with users times `scale` (at least one) and durations times
    /// `time_scale`.
    pub fn new(name: ProfileName, scale: f64, time_scale: f64) -> Self {
        let users = |n: f64| ((n * scale).round() as usize).max(1);
        // goose's test plan counts whole seconds; a step that takes time takes at least one.
        let secs = |s: f64| {
            Duration::from_secs(if s == 0.0 {
                0
            } else {
                ((s * time_scale).round() as u64).max(1)
            })
        };
        let step = |users, over| Step { users, over };
        let stage = |target, over| RateStage { target, over };
        match name {
            ProfileName::Smoke => {
                let n = users(4.0);
                let plan = vec![step(n, secs(1.0)), step(n, secs(2.0)), step(0, secs(0.0))];
                Profile {
                    name,
                    peak: (secs(1.0), secs(3.0)),
                    plan,
                    think: (Duration::from_millis(50), Duration::from_millis(200)),
                    ladder: Vec::new(),
                    rung: Duration::ZERO,
                    rates: RatePlan {
                        start: 0.0,
                        stages: vec![stage(10.0, secs(1.0)), stage(10.0, secs(2.0))],
                    },
                    rate_ladder: Vec::new(),
                }
            }
            ProfileName::PeakSale => {
                let (base, peak) = (users(5.0), users(50.0));
                let plan = vec![
                    step(base, secs(30.0)),  // warm-up
                    step(base, secs(60.0)),  // normal trading
                    step(peak, secs(30.0)),  // the spike: 10x in 30 s
                    step(peak, secs(120.0)), // the plateau
                    step(0, secs(30.0)),     // cool-down
                ];
                // The same shape in arrivals: 4 shoppers a second, 40 at the peak.
                let (base, peak) = (4.0, 40.0);
                Profile {
                    name,
                    peak: (secs(120.0), secs(240.0)),
                    plan,
                    think: (Duration::from_millis(500), Duration::from_secs(2)),
                    ladder: Vec::new(),
                    rung: Duration::ZERO,
                    rates: RatePlan {
                        start: 0.0,
                        stages: vec![
                            stage(base, secs(30.0)),  // warm-up
                            stage(base, secs(60.0)),  // normal trading
                            stage(peak, secs(30.0)),  // the spike: 10x in 30 s
                            stage(peak, secs(120.0)), // the plateau
                            stage(0.0, secs(30.0)),   // cool-down
                        ],
                    },
                    rate_ladder: Vec::new(),
                }
            }
            ProfileName::Soak => {
                let n = users(10.0);
                let plan = vec![
                    step(n, secs(60.0)),
                    step(n, secs(1800.0)),
                    step(0, secs(30.0)),
                ];
                Profile {
                    name,
                    peak: (secs(60.0), secs(1860.0)),
                    plan,
                    think: (Duration::from_millis(500), Duration::from_secs(2)),
                    ladder: Vec::new(),
                    rung: Duration::ZERO,
                    rates: RatePlan {
                        start: 0.0,
                        stages: vec![
                            stage(8.0, secs(60.0)),
                            stage(8.0, secs(1800.0)),
                            stage(0.0, secs(30.0)),
                        ],
                    },
                    rate_ladder: Vec::new(),
                }
            }
            ProfileName::Catalogue => {
                let n = users(32.0);
                Profile {
                    name,
                    plan: vec![step(n, secs(1.0)), step(n, secs(10.0)), step(0, secs(0.0))],
                    peak: (secs(1.0), secs(11.0)),
                    think: (Duration::ZERO, Duration::ZERO),
                    ladder: Vec::new(),
                    rung: Duration::ZERO,
                    // A closed-model benchmark (as wrk is): no arrival rate.
                    rates: RatePlan {
                        start: 0.0,
                        stages: Vec::new(),
                    },
                    rate_ladder: Vec::new(),
                }
            }
            ProfileName::Stress => {
                // Doubling from 5 users, ten rungs (up to 2560 at scale 1): enough to break
                // a laptop stack; `--scale` moves the whole ladder for a cluster.
                let ladder: Vec<usize> = (0..10)
                    .map(|rung| users(5.0 * f64::from(1 << rung)))
                    .collect();
                let rung = secs(30.0);
                // Doubling from 10 arrivals a second, ten rungs (up to 5120/s); the runner
                // then narrows the knee between the last rung that held and the first that
                // broke.
                let rate_ladder: Vec<f64> =
                    (0..10).map(|rung| 10.0 * f64::from(1 << rung)).collect();
                Profile {
                    name,
                    plan: rung_plan(ladder[0], rung),
                    peak: (Duration::ZERO, rung),
                    think: (Duration::from_millis(100), Duration::from_millis(500)),
                    ladder,
                    rung,
                    rates: RatePlan::constant(rate_ladder[0], rung),
                    rate_ladder,
                }
            }
        }
    }

    /// The model a profile runs under unless `--model` says otherwise: open for the sale
    /// and the stress ladder, closed for the rest.
    pub fn default_model(&self) -> Model {
        match self.name {
            ProfileName::PeakSale | ProfileName::Stress => Model::Open,
            ProfileName::Smoke | ProfileName::Soak | ProfileName::Catalogue => Model::Closed,
        }
    }

    /// How long one goose run of [`plan`](Self::plan) takes.
    pub fn duration(&self) -> Duration {
        self.plan.iter().map(|step| step.over).sum()
    }
}

/// A steady rung of the stress ladder: `users` started over a second, held for `hold`.
pub fn rung_plan(users: usize, hold: Duration) -> Vec<Step> {
    vec![
        Step {
            users,
            over: Duration::from_secs(1),
        },
        Step { users, over: hold },
        Step {
            users: 0,
            over: Duration::ZERO,
        },
    ]
}

/// The plan as goose's `--test-plan` text, in whole seconds: "10,30s;10,60s;0,0s".
pub fn test_plan(plan: &[Step]) -> String {
    plan.iter()
        .map(|step| format!("{},{}s", step.users, step.over.as_secs()))
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_sale_spikes_to_ten_times_in_thirty_seconds() {
        let profile = Profile::new(ProfileName::PeakSale, 1.0, 1.0);
        assert_eq!(profile.plan[1].users * 10, profile.plan[2].users);
        assert_eq!(profile.plan[2].over, Duration::from_secs(30));
        assert_eq!(profile.plan.last().map(|step| step.users), Some(0));
    }

    #[test]
    fn scale_multiplies_users_and_time_scale_durations() {
        let profile = Profile::new(ProfileName::PeakSale, 0.2, 0.1);
        assert_eq!(profile.plan[0].users, 1);
        assert_eq!(profile.plan[2].users, 10);
        assert_eq!(profile.duration(), Duration::from_secs(27));
    }

    #[test]
    fn the_open_peak_sale_has_the_closed_ones_shape_and_peak() {
        let profile = Profile::new(ProfileName::PeakSale, 1.0, 1.0);
        assert_eq!(profile.default_model(), Model::Open);
        assert_eq!(profile.rates.duration(), profile.duration());
        assert_eq!(profile.rates.peak_rate(), 40.0);
        // The spike reaches its plateau where the peak (and the chaos) starts.
        let spike_ends: Duration = profile.rates.stages[..3].iter().map(|s| s.over).sum();
        assert_eq!(spike_ends, profile.peak.0);
        assert_eq!(
            profile.rates.stages[2].target,
            10.0 * profile.rates.stages[1].target
        );
        let half = Profile::new(ProfileName::PeakSale, 1.0, 0.5);
        assert_eq!(half.rates.duration(), Duration::from_secs(135));
    }

    #[test]
    fn smoke_lasts_a_few_seconds() {
        let profile = Profile::new(ProfileName::Smoke, 1.0, 1.0);
        assert!(profile.duration() <= Duration::from_secs(5));
        assert_eq!(test_plan(&profile.plan), "4,1s;4,2s;0,0s");
    }
}
