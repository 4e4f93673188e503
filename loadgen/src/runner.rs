//! The run loop: check everything, bind `/metrics`, send the load with the chaos timeline
//! beside it, wait for the backlog, judge, and write the reports.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use goose::{config::GooseConfiguration, prelude::*};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::Value;
use tokio::time::Instant;

use crate::{
    Config, Error, chaos,
    chaos::{Admin, Timeline},
    metrics, profiles,
    profiles::{Profile, ProfileName},
    report,
    report::{RequestSummary, Summary},
    scenarios, slo,
    slo::{Measured, Slo, Verdict},
};

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
        let profile = Profile::new(config.profile, config.scale, config.time_scale);
        let timeline = Timeline::resolve(&config.chaos, &profile, config.time_scale)
            .map_err(|error| Error::Usage(error.to_string()))?;
        let slo =
            Slo::load(config.slo.as_deref()).map_err(|error| Error::Usage(error.to_string()))?;
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
        let readiness = telemetry::ops::Readiness::new();
        readiness.set(true);
        let router = telemetry::ops::router(prometheus, readiness);
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
        let shared = scenarios::Shared::new(skus, stamp.clone());
        println!(
            "loadgen: profile {} (scale {}, time scale {}) against {}; chaos: {}; reports in {}",
            self.config.profile.as_str(),
            self.config.scale,
            self.config.time_scale,
            self.config.target_url,
            if self.timeline.steps.is_empty() {
                "none"
            } else {
                &self.config.chaos
            },
            report_dir.display()
        );

        let start = Instant::now();
        let (load_ended, ended) = tokio::sync::watch::channel(false);
        let chaos = self
            .admin
            .clone()
            .map(|admin| tokio::spawn(chaos::run(self.timeline.clone(), admin, start, ended)));

        let mut requests = BTreeMap::new();
        let mut knee_rps = None;
        let mut knee_users = 0;
        let mut stress_rows = Vec::new();
        if self.profile.name == ProfileName::Stress {
            for (rung, users) in self.profile.ladder.iter().enumerate() {
                let plan = profiles::rung_plan(*users, self.profile.rung);
                let html = report_dir.join(format!("report-rung-{}.html", rung + 1));
                let rung_start = Instant::now();
                let goose = self.attack(&plan, &shared, &html).await?;
                let seconds = rung_start.elapsed().as_secs_f64();
                let mut rung_requests = BTreeMap::new();
                report::requests(&goose, &mut rung_requests);
                let total: u64 = rung_requests.values().map(|r| r.total).sum();
                let rps = total as f64 / seconds.max(0.001);
                let measured = Measured {
                    backlog_drain_s: Some(0.0), // judged once, after the last rung
                    ..measure(&rung_requests)
                };
                let verdict = slo::evaluate(&self.slo, &measured);
                println!(
                    "stress: rung {} ({users} users): {rps:.1} requests/s: {}",
                    rung + 1,
                    if verdict.pass {
                        "every SLO held"
                    } else {
                        "an SLO broke"
                    }
                );
                merge(&mut requests, rung_requests);
                if !verdict.pass {
                    stress_rows = verdict.rows.into_iter().filter(|row| !row.pass).collect();
                    break;
                }
                knee_rps = Some(rps);
                knee_users = *users;
            }
        } else {
            let html = report_dir.join("report.html");
            let goose = self.attack(&self.profile.plan, &shared, &html).await?;
            report::requests(&goose, &mut requests);
        }
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
            verdict.rows.push(slo::Row {
                slo: "knee (highest rate with every SLO held)".into(),
                target: "found".into(),
                measured: match (knee_rps, stress_rows.is_empty()) {
                    (None, _) => "none: the first rung broke".into(),
                    (Some(rps), false) => format!("{rps:.1} req/s ({knee_users} users)"),
                    (Some(rps), true) => {
                        format!("> {rps:.1} req/s (no SLO broke up to {knee_users} users)")
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

        let total: u64 = requests.values().map(|r| r.total).sum();
        let summary = Summary {
            profile: self.config.profile,
            scale: self.config.scale,
            time_scale: self.config.time_scale,
            started_at: humantime::format_rfc3339_seconds(started).to_string(),
            duration_s: load_seconds,
            requests_per_second: total as f64 / load_seconds.max(0.001),
            requests,
            chaos: fired,
            knee_rps,
            measured,
            verdict: verdict.clone(),
        };
        report::write(&report_dir, &summary).map_err(|source| Error::Io {
            context: format!("cannot write {}", report_dir.join("summary.json").display()),
            source,
        })?;
        println!("\n{verdict}\nreports: {}", report_dir.display());
        Ok(Outcome {
            verdict,
            report_dir,
            summary,
        })
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

    /// One goose run of `plan`, writing goose's HTML report to `html`.
    async fn attack(
        &self,
        plan: &[profiles::Step],
        shared: &Arc<scenarios::Shared>,
        html: &std::path::Path,
    ) -> Result<goose::metrics::GooseMetrics, Error> {
        let mut goose = GooseConfiguration::default();
        goose.host = Some(self.config.target_url.clone());
        goose.report_file = vec![html.display().to_string()];
        goose.running_metrics = (self.config.running_metrics > 0 && !self.config.quiet)
            .then_some(self.config.running_metrics);
        goose.no_print_metrics = self.config.quiet;
        goose.quiet = u8::from(self.config.quiet);
        goose.no_telnet = true;
        goose.timeout = Some(format!("{:.3}", self.config.request_timeout.as_secs_f64()));
        let mut attack = GooseAttack::initialize_with_config(goose).map_err(Box::new)?;
        let browse_only = self.profile.name == ProfileName::Catalogue;
        for scenario in
            scenarios::scenarios(shared, self.profile.think, browse_only).map_err(Box::new)?
        {
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

fn measure(requests: &BTreeMap<String, RequestSummary>) -> Measured {
    let place = report::place_order(requests);
    Measured {
        orders: place.total,
        confirmed: report::count(requests, scenarios::PLACE_ORDER, "201"),
        pending: report::count(requests, scenarios::PLACE_ORDER, "202"),
        rejected: report::count(requests, scenarios::PLACE_ORDER, "402"),
        shed: report::count(requests, scenarios::PLACE_ORDER, "503"),
        server_errors: report::server_errors(requests),
        place_order_p99_ms: place.p99_ms,
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
fn backlog(exposition: &str) -> Option<f64> {
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
