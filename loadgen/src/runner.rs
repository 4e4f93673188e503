//! The run loop: check everything, bind `/metrics`, send the load with the chaos timeline
//! beside it, wait for the backlog, judge, and write the reports.

use std::{
    collections::BTreeMap,
    io::IsTerminal as _,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use goose::{config::GooseConfiguration, prelude::*};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::Value;
use tokio::time::Instant;

use crate::{
    Config, Error,
    arrivals::{Dispatcher, RatePlan, Spacing},
    chaos,
    chaos::{Admin, Timeline},
    knee::{Judged, KneeSearch},
    latency::ResponseTimes,
    live,
    live::Live,
    metrics, profiles,
    profiles::{Model, Profile, ProfileName},
    report,
    report::{OpenLoad, RequestSummary, Summary},
    scenarios, server,
    server::Server,
    slo,
    slo::{Measured, Slo, Verdict},
};

/// Open model: after the last arrival, answers in flight are awaited at most this long
/// beyond the request timeout.
const SETTLE_MARGIN: Duration = Duration::from_secs(1);
/// Open model: the default pool holds the peak rate's arrivals of this long, plus 10 users.
const DEFAULT_POOL_SECONDS: f64 = 1.0;

/// The open model's settings, checked.
#[derive(Debug, Clone)]
struct Open {
    /// The profile's arrival rates times `--rate`.
    rates: RatePlan,
    /// For `stress`: the rungs' rates times `--rate`.
    ladder: Vec<f64>,
    max_users: Option<usize>,
    spacing: Spacing,
    seed: u64,
}

impl Open {
    fn new(config: &Config, profile: &Profile, slo: &Slo) -> Result<Self, Error> {
        if profile.name == ProfileName::Catalogue && profile.rates.stages.is_empty() {
            return Err(Error::Usage(
                "--model open: catalogue has no arrival rates of its own; give them with \
                 --stages (GET /v1/products at a fixed rate, as oha -q offers it)"
                    .into(),
            ));
        }
        if !(config.rate.is_finite() && config.rate > 0.0) {
            return Err(Error::Usage(format!(
                "--rate must be greater than 0 (arrivals per second are the profile's times it), not {}",
                config.rate
            )));
        }
        let rates = profile.rates.scaled(config.rate, 1.0);
        rates
            .check()
            .map_err(|error| Error::Usage(format!("--rate: {error}")))?;
        let ladder: Vec<f64> = profile
            .rate_ladder
            .iter()
            .map(|rate| rate * config.rate)
            .collect();
        let peak = ladder.first().copied().unwrap_or_else(|| rates.peak_rate());
        if let Some(max_users) = config.max_users {
            // Little's law: at the SLO's latency, rate × latency users are busy at once.
            let latency_s = slo.place_order_p99_ms_max / 1000.0;
            let needed = (peak * latency_s).ceil() as usize;
            if max_users < needed.max(1) {
                return Err(Error::Usage(format!(
                    "--max-users {max_users} is too few for {peak:.1} arrivals/s: answering in the \
                     SLO's {:.0} ms keeps about {needed} users busy at once (rate × latency); \
                     give at least {needed}",
                    slo.place_order_p99_ms_max
                )));
            }
        }
        Ok(Self {
            rates,
            ladder,
            max_users: config.max_users,
            spacing: config.arrivals,
            seed: config.seed.unwrap_or_else(rand::random),
        })
    }

    /// The pool for arrivals at `rate` a second.
    fn pool(&self, rate: f64) -> usize {
        self.max_users
            .unwrap_or_else(|| (rate * DEFAULT_POOL_SECONDS).ceil() as usize + 10)
    }
}

/// What one open-model goose run produced.
struct OpenRun {
    goose: goose::metrics::GooseMetrics,
    times: Arc<ResponseTimes>,
    offered: u64,
    dropped: u64,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Each SLO and whether it held.
    pub verdict: Verdict,
    /// Where summary.json and report.html were written.
    pub report_dir: PathBuf,
    /// The summary written to summary.json.
    pub summary: Summary,
}

/// A checked, ready-to-run load test with its `/metrics` listener bound.
#[derive(Debug)]
pub struct Loadgen {
    config: Config,
    profile: Profile,
    timeline: Timeline,
    slo: Slo,
    model: Model,
    open: Option<Open>,
    admin: Option<Admin>,
    http: reqwest::Client,
    metrics_addr: SocketAddr,
    metrics_server: tokio::task::JoinHandle<()>,
}

impl Drop for Loadgen {
    fn drop(&mut self) {
        self.metrics_server.abort();
    }
}

impl Loadgen {
    /// Checks the profile, chaos timeline and SLO file, then binds `/metrics` on
    /// `config.metrics_addr`. Nothing is sent to the targets yet.
    pub async fn build(config: Config, prometheus: PrometheusHandle) -> Result<Self, Error> {
        if !(config.scale > 0.0 && config.time_scale > 0.0) {
            return Err(Error::Usage(
                "--scale and --time-scale must be greater than 0".into(),
            ));
        }
        let mut profile = Profile::new(config.profile, config.scale, config.time_scale);
        let model = match (config.model, &config.stages) {
            (Some(model), _) => model,
            (None, Some(_)) => Model::Open,
            (None, None) => profile.default_model(),
        };
        if let Some(stages) = &config.stages {
            if model == Model::Closed || profile.name == ProfileName::Stress {
                return Err(Error::Usage(
                    "--stages sets the open model's arrival rates: it does not apply to \
                     --model closed or to stress (which climbs its own ladder)"
                        .into(),
                ));
            }
            profile.rates = stages.scaled(1.0, config.time_scale);
            profile.peak = profile.rates.peak();
        }
        let timeline = Timeline::resolve(&config.chaos, &profile, config.time_scale)
            .map_err(|error| Error::Usage(error.to_string()))?;
        let slo =
            Slo::load(config.slo.as_deref()).map_err(|error| Error::Usage(error.to_string()))?;
        let open = match model {
            Model::Open => Some(Open::new(&config, &profile, &slo)?),
            Model::Closed => None,
        };
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|error| Error::Usage(format!("HTTP client: {error}")))?;
        let admin = match (&config.admin_token, timeline.steps.is_empty()) {
            (_, true) => None,
            (Some(token), false) => Some(Admin {
                order_ops_url: config.order_ops_url.clone(),
                payment_ops_url: config.payment_ops_url.clone(),
                token: token.clone(),
                http: http.clone(),
            }),
            (None, false) => {
                return Err(Error::Usage(
                    "a chaos timeline needs the admin token (--admin-token or ADMIN_TOKEN)".into(),
                ));
            }
        };
        metrics::describe();
        let listener = tokio::net::TcpListener::bind(config.metrics_addr)
            .await
            .map_err(|source| Error::Io {
                context: format!("cannot listen on {}", config.metrics_addr),
                source,
            })?;
        let metrics_addr = listener.local_addr().map_err(|source| Error::Io {
            context: "metrics listener".into(),
            source,
        })?;
        let readiness = ::server::Readiness::new();
        readiness.set(true);
        let router = ::server::ops::router(prometheus, readiness);
        tracing::info!(%metrics_addr, "loadgen.listening");
        let metrics_server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(error = %error, "loadgen.metrics_failed");
            }
        });
        Ok(Self {
            config,
            profile,
            timeline,
            slo,
            model,
            open,
            admin,
            http,
            metrics_addr,
            metrics_server,
        })
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Sends the load, fires the chaos steps, waits for the backlog, judges, and writes the
    /// reports.
    pub async fn run(&self) -> Result<Outcome, Error> {
        let started = SystemTime::now();
        let stamp = report::timestamp(started);
        let skus = self.catalogue().await?;
        let report_dir = unique_dir(&self.config.reports_dir, &stamp)?;
        let live = Arc::new(Live::default());
        let shared = scenarios::Shared::new(skus, stamp.clone(), live.clone());
        let load = match &self.open {
            Some(open) => format!(
                "open model, rate {} (peak {:.1} arrivals/s, {:?} spacing, seed {})",
                self.config.rate,
                open.ladder
                    .first()
                    .copied()
                    .unwrap_or_else(|| open.rates.peak_rate()),
                open.spacing,
                open.seed
            ),
            None => format!("closed model, scale {}", self.config.scale),
        };
        println!(
            "loadgen: profile {} ({load}, time scale {}) against {}; chaos: {}; reports in {}",
            self.config.profile.as_str(),
            self.config.time_scale,
            self.config.target_url,
            if self.timeline.steps.is_empty() {
                "none"
            } else {
                &self.config.chaos
            },
            report_dir.display()
        );

        // Under the open model the schedule (and the chaos timeline with it) starts once goose
        // has started the pool of users: the first dispatcher says when.
        let began = Instant::now();
        let first = self.open.as_ref().map(|open| {
            let rates = match open.ladder.first() {
                Some(rate) => RatePlan::constant(*rate, self.profile.rung),
                None => open.rates.clone(),
            };
            let pool = open.pool(rates.peak_rate());
            (self.dispatch(open, &rates, pool), rates, pool)
        });
        let current = self.open.is_some().then(|| {
            Arc::new(Mutex::new(
                first.as_ref().map(|(dispatcher, ..)| dispatcher.clone()),
            ))
        });
        let (view_ended, view_until) = tokio::sync::watch::channel(false);
        let view = {
            let first = first.as_ref().map(|(dispatcher, ..)| dispatcher.clone());
            let mut context = live::Context {
                title: format!("{} · {:?} model", self.config.profile.as_str(), self.model)
                    .to_lowercase(),
                start: began,
                total: match (&self.open, self.profile.name) {
                    (_, ProfileName::Stress) => None,
                    (Some(open), _) => Some(open.rates.duration()),
                    (None, _) => Some(self.profile.duration()),
                },
                dispatcher: current.clone(),
                timeline: self.timeline.clone(),
                slo: self.slo.clone(),
                order_ops_url: self.config.order_ops_url.clone(),
                interval: self.config.progress_interval,
            };
            let (live, http) = (live.clone(), self.http.clone());
            tokio::spawn(async move {
                if let Some(first) = first {
                    context.start = first.started().await;
                }
                live::show(live, context, http, view_until).await;
            })
        };
        let (load_ended, ended) = tokio::sync::watch::channel(false);
        let chaos = self.admin.clone().map(|admin| {
            let timeline = self.timeline.clone();
            let dispatcher = first.as_ref().map(|(dispatcher, ..)| dispatcher.clone());
            tokio::spawn(async move {
                let start = match dispatcher {
                    Some(dispatcher) => dispatcher.started().await,
                    None => began,
                };
                chaos::run(timeline, admin, start, ended).await
            })
        });

        let mut requests = BTreeMap::new();
        let mut knee_rps = None;
        let mut knee_users = 0;
        let mut knee_rate = None;
        let mut stress_rows = Vec::new();
        let mut rungs = Vec::new();
        let times = Arc::new(ResponseTimes::default());
        let (mut offered, mut dropped, mut pool) = (0, 0, 0);
        let mut scheduled_seconds = 0.0;
        if let (ProfileName::Stress, Some(open)) = (self.profile.name, &self.open) {
            let mut search = KneeSearch::new(open.ladder.clone(), true);
            let mut ladder = Ladder::default();
            let mut held_rps = None;
            let mut rung = 0;
            let mut next = first.clone();
            while let Some(rate) = search.next_rung() {
                rung += 1;
                let html = report_dir.join(format!("report-rung-{rung}.html"));
                // The first rung's dispatcher is already waiting for its pool.
                let (dispatcher, plan, pool_size) = match next.take() {
                    Some(first) => first,
                    None => {
                        let plan = RatePlan::constant(rate, self.profile.rung);
                        let pool = open.pool(rate);
                        (self.dispatch(open, &plan, pool), plan, pool)
                    }
                };
                if let Some(current) = &current {
                    *crate::lock(current) = Some(dispatcher.clone());
                }
                let run = self
                    .attack_open(dispatcher, &plan, pool_size, &shared, &html)
                    .await?;
                let mut rung_requests = BTreeMap::new();
                report::requests(&run.goose, &mut rung_requests);
                report::response_times(&run.times, &mut rung_requests);
                let (judged, rps) = self.judge_rung(
                    &mut search,
                    &mut ladder,
                    StressRung {
                        label: format!("rung {rung} ({} users at most)", open.pool(rate)),
                        arrivals_per_second: Some(rate),
                        users: None,
                        seconds: self.profile.rung.as_secs_f64(),
                        arrivals: Some((run.offered, run.dropped)),
                        requests: rung_requests,
                    },
                );
                times.merge(&run.times);
                scheduled_seconds += plan.duration().as_secs_f64();
                (offered, dropped, pool) = (
                    offered + run.offered,
                    dropped + run.dropped,
                    open.pool(rate),
                );
                if judged == Judged::Held {
                    held_rps = Some(rps);
                }
            }
            knee_rate = search.knee();
            knee_rps = knee_rate.and(held_rps);
            (requests, rungs, stress_rows) = (ladder.requests, ladder.rungs, ladder.broke);
            report::response_times(&times, &mut requests);
        } else if let Some((dispatcher, rates, pool_size)) = first.clone() {
            let html = report_dir.join("report.html");
            let run = self
                .attack_open(dispatcher, &rates, pool_size, &shared, &html)
                .await?;
            report::requests(&run.goose, &mut requests);
            report::response_times(&run.times, &mut requests);
            (offered, dropped, pool) = (run.offered, run.dropped, pool_size);
            scheduled_seconds = rates.duration().as_secs_f64();
        } else if self.profile.name == ProfileName::Stress {
            let ladder = self.profile.ladder.iter().map(|&users| users as f64);
            let mut search = KneeSearch::new(ladder.collect(), false);
            let mut ladder = Ladder::default();
            let mut rung = 0;
            while let Some(users) = search.next_rung() {
                let users = users as usize;
                rung += 1;
                let plan = profiles::rung_plan(users, self.profile.rung);
                let html = report_dir.join(format!("report-rung-{rung}.html"));
                let rung_start = Instant::now();
                let goose = self.attack(&plan, &shared, &html).await?;
                let mut rung_requests = BTreeMap::new();
                report::requests(&goose, &mut rung_requests);
                let (judged, rps) = self.judge_rung(
                    &mut search,
                    &mut ladder,
                    StressRung {
                        label: format!("rung {rung}"),
                        arrivals_per_second: None,
                        users: Some(users),
                        seconds: rung_start.elapsed().as_secs_f64(),
                        arrivals: None,
                        requests: rung_requests,
                    },
                );
                if judged == Judged::Held {
                    knee_rps = Some(rps);
                    knee_users = users;
                }
            }
            (requests, rungs, stress_rows) = (ladder.requests, ladder.rungs, ladder.broke);
        } else {
            let html = report_dir.join("report.html");
            let goose = self.attack(&self.profile.plan, &shared, &html).await?;
            report::requests(&goose, &mut requests);
        }
        let start = match &first {
            Some((dispatcher, ..)) => dispatcher.started().await,
            None => began,
        };
        let load_seconds = start.elapsed().as_secs_f64();
        metrics::users(0);
        let _ = load_ended.send(true);

        let fired = match chaos {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let heal_at = self
            .timeline
            .last_heal()
            .map_or(start + Duration::from_secs_f64(load_seconds), |at| {
                start + at
            });
        let mut measured = measure(&requests);
        if self.open.is_some() {
            measured.arrivals_offered = Some(offered);
            measured.arrivals_dropped = dropped;
        }
        measured.backlog_drain_s = self.backlog_drained(heal_at).await;
        measured.chaos_steps = self.timeline.steps.len();
        measured.chaos_failures = fired.iter().filter(|fired| !fired.ok).count();
        let mut verdict = slo::evaluate(&self.slo, &measured);
        if self.profile.name == ProfileName::Catalogue {
            // No orders are placed: only the SLOs over every request apply.
            verdict
                .rows
                .retain(|row| !row.slo.starts_with("orders") && !row.slo.starts_with("PlaceOrder"));
            verdict.pass = verdict.rows.iter().all(|row| row.pass);
        }
        if self.profile.name == ProfileName::Stress {
            let at = match knee_rate {
                Some(rate) => format!("{rate:.1} arrivals/s"),
                None => format!("{knee_users} users"),
            };
            verdict.rows.push(slo::Row {
                slo: "knee (highest rate with every SLO held)".into(),
                target: "found".into(),
                measured: match (knee_rps, stress_rows.is_empty()) {
                    (None, _) => "none: the first rung broke".into(),
                    (Some(rps), false) => format!("{rps:.1} req/s ({at})"),
                    (Some(rps), true) => {
                        format!("> {rps:.1} req/s (no SLO broke up to {at})")
                    }
                },
                pass: knee_rps.is_some(),
            });
            for mut row in stress_rows {
                row.slo = format!("broke above the knee: {}", row.slo);
                row.pass = true; // expected: that is how the knee is found
                verdict.rows.push(row);
            }
            verdict.pass = verdict.rows.iter().all(|row| row.pass);
        }
        let server = self.server_view(start.elapsed()).await;
        if let Some(view) = &server.view {
            if let Some(availability) = view.availability {
                verdict.server.insert(
                    "orders answered 201/202".into(),
                    format!("{:.2} %", availability * 100.0),
                );
            }
            if let Some(p99) = view.place_order_p99_ms {
                verdict
                    .server
                    .insert("PlaceOrder p99".into(), format!("{p99:.0} ms"));
            }
            let answered = measured.confirmed + measured.pending;
            let client_availability = answered as f64 / measured.orders.max(1) as f64;
            verdict.findings =
                server::findings(client_availability, measured.place_order_p99_ms, view);
        }

        let total: u64 = requests.values().map(|r| r.total).sum();
        let open = self.open.as_ref().map(|open| OpenLoad {
            rate: self.config.rate,
            spacing: open.spacing,
            seed: open.seed,
            max_users: pool,
            offered,
            dropped,
            // Over the schedule's own length (the load also waits for its last answers).
            offered_per_second: offered as f64 / scheduled_seconds.max(0.001),
            achieved_per_second: offered.saturating_sub(dropped) as f64
                / scheduled_seconds.max(0.001),
        });
        let summary = Summary {
            schema_version: report::SCHEMA_VERSION,
            profile: self.config.profile,
            model: self.model,
            open,
            scale: self.config.scale,
            time_scale: self.config.time_scale,
            started_at: humantime::format_rfc3339_seconds(started).to_string(),
            duration_s: load_seconds,
            requests_per_second: total as f64 / load_seconds.max(0.001),
            requests,
            chaos: fired,
            knee_rps,
            knee_arrivals_per_second: knee_rate,
            rungs,
            measured,
            server: server.clone(),
            verdict: verdict.clone(),
        };
        report::write(&report_dir, &summary).map_err(|source| Error::Io {
            context: format!("cannot write {}", report_dir.join("summary.json").display()),
            source,
        })?;
        let _ = view_ended.send(true);
        let _ = view.await;
        println!("\n{verdict}");
        for line in report::server_lines(&server) {
            println!("{line}");
        }
        println!("reports: {}", report_dir.display());
        Ok(Outcome {
            verdict,
            report_dir,
            summary,
        })
    }

    /// The server's view of the last `window` from `--prometheus-url` (`none`: not asked).
    async fn server_view(&self, window: Duration) -> Server {
        match self.config.prometheus_url.as_str() {
            "none" => Server::unavailable("not asked (--prometheus-url none)"),
            url => server::view(&self.http, url, window).await,
        }
    }

    /// Reads the catalogue once: the SKUs buyers order, and proof the target serves.
    async fn catalogue(&self) -> Result<Vec<String>, Error> {
        let url = format!(
            "{}/v1/products",
            self.config.target_url.trim_end_matches('/')
        );
        let target = |detail: String| Error::Target {
            url: url.clone(),
            detail,
        };
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|error| target(error.to_string()))?;
        if !response.status().is_success() {
            return Err(target(format!("status {}", response.status())));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|error| target(error.to_string()))?;
        let skus: Vec<String> = body["products"]
            .as_array()
            .map(|products| {
                products
                    .iter()
                    .filter_map(|product| product["sku"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if skus.is_empty() {
            return Err(target("the catalogue lists no products".into()));
        }
        Ok(skus)
    }

    /// Starts dispatching `rates` (a schedule from the run's seed) to a pool of `pool`.
    fn dispatch(&self, open: &Open, rates: &RatePlan, pool: usize) -> Arc<Dispatcher> {
        Dispatcher::start(
            rates.schedule(open.spacing, open.seed),
            pool,
            self.config.request_timeout + SETTLE_MARGIN,
        )
    }

    /// One open-model goose run: a pool of `pool` users serving `dispatcher`'s arrivals of
    /// `rates`. goose's plan starts the pool over a second and holds it past any wait the
    /// dispatcher may make; the run ends when the dispatcher has finished (goose's killswitch).
    async fn attack_open(
        &self,
        dispatcher: Arc<Dispatcher>,
        rates: &RatePlan,
        pool: usize,
        shared: &Arc<scenarios::Shared>,
        html: &std::path::Path,
    ) -> Result<OpenRun, Error> {
        let times = Arc::new(ResponseTimes::default());
        let longest = rates.duration() + Duration::from_secs(30) + self.config.request_timeout * 2;
        let plan = [
            profiles::Step {
                users: pool,
                over: Duration::from_secs(1),
            },
            profiles::Step {
                users: pool,
                over: Duration::from_secs(longest.as_secs() + 1),
            },
            profiles::Step {
                users: 0,
                over: Duration::ZERO,
            },
        ];
        let ending = dispatcher.clone();
        let stopper = tokio::spawn(async move {
            ending.finished().await;
            goose::trigger_killswitch("the arrival schedule is over");
        });
        let browse_only = self.profile.name == ProfileName::Catalogue;
        let scenario = scenarios::open(shared, dispatcher.clone(), times.clone(), browse_only);
        let goose = self.attack_with(&plan, vec![scenario], true, html).await;
        stopper.abort();
        Ok(OpenRun {
            goose: goose?,
            times,
            offered: dispatcher.counts().offered(),
            dropped: dispatcher.counts().dropped(),
        })
    }

    /// One closed-model goose run of `plan`, writing goose's HTML report to `html`.
    async fn attack(
        &self,
        plan: &[profiles::Step],
        shared: &Arc<scenarios::Shared>,
        html: &std::path::Path,
    ) -> Result<goose::metrics::GooseMetrics, Error> {
        let browse_only = self.profile.name == ProfileName::Catalogue;
        let scenarios =
            scenarios::scenarios(shared, self.profile.think, browse_only).map_err(Box::new)?;
        self.attack_with(plan, scenarios, false, html).await
    }

    /// One goose run of `plan` with `scenarios`, writing goose's HTML report to `html`. With
    /// `shared_client` every user sends through one HTTP client (the open model: a pool of
    /// users serves arrivals, not shoppers keeping their own connections, so the connections
    /// to order follow the answers in flight rather than the pool's size, and a large pool
    /// starts at once).
    async fn attack_with(
        &self,
        plan: &[profiles::Step],
        scenarios: Vec<Scenario>,
        shared_client: bool,
        html: &std::path::Path,
    ) -> Result<goose::metrics::GooseMetrics, Error> {
        let mut goose = GooseConfiguration::default();
        goose.host = Some(self.config.target_url.clone());
        goose.report_file = vec![html.display().to_string()];
        // On a terminal the live panel shows the run, and goose's own lines would break it:
        // goose prints nothing there (its report.html has every table).
        let quiet = self.config.quiet || std::io::stdout().is_terminal();
        goose.running_metrics =
            (self.config.running_metrics > 0 && !quiet).then_some(self.config.running_metrics);
        goose.no_print_metrics = quiet;
        goose.quiet = u8::from(quiet);
        goose.no_telnet = true;
        goose.timeout = Some(format!("{:.3}", self.config.request_timeout.as_secs_f64()));
        let mut attack = GooseAttack::initialize_with_config(goose).map_err(Box::new)?;
        if shared_client {
            attack = attack
                .set_client_builder_without_cookies(
                    goose::client::GooseClientBuilder::new().without_cookies(),
                )
                .map_err(Box::new)?;
        }
        for scenario in scenarios {
            attack = attack.register_scenario(scenario);
        }
        let attack = attack
            .set_default(GooseDefault::TestPlan, profiles::test_plan(plan).as_str())
            .map_err(Box::new)?;
        attack
            .execute()
            .await
            .map_err(Box::new)
            .map_err(Error::from)
    }

    /// Seconds from `heal_at` until order's `order_payment_backlog` reads 0, polling order's
    /// `/metrics`; `None` if it is still above 0 when the SLO's limit has passed (or cannot
    /// be read).
    async fn backlog_drained(&self, heal_at: Instant) -> Option<f64> {
        let url = format!(
            "{}/metrics",
            self.config.order_ops_url.trim_end_matches('/')
        );
        let limit = Duration::from_secs_f64(self.slo.backlog_drain_s_max.max(0.0));
        loop {
            let backlog = match self.http.get(&url).send().await {
                Ok(response) => response.text().await.ok().and_then(|text| backlog(&text)),
                Err(_) => None,
            };
            let since_heal = Instant::now().saturating_duration_since(heal_at);
            match backlog {
                Some(0.0) => return Some(since_heal.as_secs_f64()),
                Some(_) if since_heal < limit => {}
                Some(_) => return None,
                None => {
                    println!("loadgen: cannot read order_payment_backlog from {url}");
                    return None;
                }
            }
            // The backlog is a gauge on order's /metrics: there is no event to await, so poll.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Checks `config`, binds `/metrics` and runs: [`Loadgen::build`] then [`Loadgen::run`].
pub async fn run(config: Config, prometheus: PrometheusHandle) -> Result<Outcome, Error> {
    Loadgen::build(config, prometheus).await?.run().await
}

/// One rung of a stress ladder, run: where it stood and what it got.
struct StressRung {
    /// How the console names it (`rung 3 (40 users at most)`).
    label: String,
    arrivals_per_second: Option<f64>,
    users: Option<usize>,
    seconds: f64,
    /// Open model: arrivals offered and dropped.
    arrivals: Option<(u64, u64)>,
    requests: BTreeMap<String, RequestSummary>,
}

/// What a stress ladder has gathered so far, in either model.
#[derive(Default)]
struct Ladder {
    rungs: Vec<report::Rung>,
    requests: BTreeMap<String, RequestSummary>,
    /// The SLO rows that broke at the rung above the knee.
    broke: Vec<slo::Row>,
}

impl Loadgen {
    /// Judges `rung` against the SLOs, prints it, adds it to `ladder` and records it in
    /// `search`; what the search made of it, and the rung's requests per second.
    fn judge_rung(
        &self,
        search: &mut KneeSearch,
        ladder: &mut Ladder,
        rung: StressRung,
    ) -> (Judged, f64) {
        let total: u64 = rung.requests.values().map(|r| r.total).sum();
        let rps = total as f64 / rung.seconds.max(0.001);
        let (offered, dropped) = rung.arrivals.unzip();
        let measured = Measured {
            backlog_drain_s: Some(0.0), // judged once, after the last rung
            arrivals_offered: offered,
            arrivals_dropped: dropped.unwrap_or(0),
            ..measure(&rung.requests)
        };
        let verdict = slo::evaluate(&self.slo, &measured);
        let ran = report::Rung {
            arrivals_per_second: rung.arrivals_per_second,
            users: rung.users,
            requests_per_second: rps,
            held: verdict.pass,
            verdict: verdict.headline(),
        };
        println!(
            "stress: {}{}: {ran}",
            rung.label,
            if search.repeating() { ", again" } else { "" }
        );
        ladder.rungs.push(ran);
        merge(&mut ladder.requests, rung.requests);
        let point = rung
            .arrivals_per_second
            .or(rung.users.map(|users| users as f64))
            .unwrap_or_default();
        let judged = search.record(point, verdict.pass);
        if judged == Judged::Broke {
            ladder.broke = verdict.rows.into_iter().filter(|row| !row.pass).collect();
        }
        (judged, rps)
    }
}

fn measure(requests: &BTreeMap<String, RequestSummary>) -> Measured {
    let place = report::place_order(requests);
    Measured {
        orders: place.total,
        confirmed: report::count(requests, scenarios::PLACE_ORDER, "201"),
        pending: report::count(requests, scenarios::PLACE_ORDER, "202"),
        rejected: report::count(requests, scenarios::PLACE_ORDER, "402"),
        shed: report::count(requests, scenarios::PLACE_ORDER, "503"),
        server_errors: report::server_errors(requests),
        // Open model: from the schedule (waiting to be sent counts); closed: from the send.
        place_order_p99_ms: place.response_p99_ms.unwrap_or(place.p99_ms),
        ..Measured::default()
    }
}

fn merge(into: &mut BTreeMap<String, RequestSummary>, from: BTreeMap<String, RequestSummary>) {
    for (name, summary) in from {
        let entry = into.entry(name).or_default();
        entry.total += summary.total;
        for (status, count) in summary.status {
            *entry.status.entry(status).or_default() += count;
        }
        entry.p50_ms = entry.p50_ms.max(summary.p50_ms);
        entry.p99_ms = entry.p99_ms.max(summary.p99_ms);
    }
}

/// The `order_payment_backlog` sample of a Prometheus exposition.
pub(crate) fn backlog(exposition: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix("order_payment_backlog")?;
        let value = rest.strip_prefix(' ').or_else(|| {
            rest.strip_prefix('{')
                .and_then(|labels| labels.split_once("} ").map(|(_, value)| value))
        })?;
        value.trim().parse().ok()
    })
}

fn unique_dir(base: &std::path::Path, stamp: &str) -> Result<PathBuf, Error> {
    let io = |dir: &std::path::Path, source| Error::Io {
        context: format!("cannot create {}", dir.display()),
        source,
    };
    std::fs::create_dir_all(base).map_err(|source| io(base, source))?;
    for attempt in 1.. {
        let name = if attempt == 1 {
            stamp.to_owned()
        } else {
            format!("{stamp}-{attempt}")
        };
        let dir = base.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(io(&dir, source)),
        }
    }
    unreachable!("an unbounded range always yields")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_backlog_is_read_from_an_exposition() {
        let text =
            "# HELP order_payment_backlog x\norder_payment_backlog 3\norder_payment_backlog_x 9\n";
        assert_eq!(super::backlog(text), Some(3.0));
        assert_eq!(
            super::backlog("order_payment_backlog{a=\"b\"} 0\n"),
            Some(0.0)
        );
        assert_eq!(super::backlog("nothing 1\n"), None);
    }
}
