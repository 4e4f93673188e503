//! What a run leaves behind: `reports/<timestamp>/summary.json` (request counts, latency,
//! chaos steps fired, the verdict) next to goose's own `report.html`.

use std::{collections::BTreeMap, path::Path};

use goose::metrics::GooseMetrics;
use serde::Serialize;

use crate::{chaos::Fired, scenarios, slo::Verdict};

/// Counts and latency of one request name.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct RequestSummary {
    /// Requests sent.
    pub total: u64,
    /// By HTTP status ("error" when no response came back).
    pub status: BTreeMap<String, u64>,
    /// Median service time (from sending the request), milliseconds.
    pub p50_ms: f64,
    /// 99th percentile of the service time, milliseconds.
    pub p99_ms: f64,
    /// Open model: median response time, from the arrival's scheduled moment, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_p50_ms: Option<f64>,
    /// Open model: 99th percentile of the response time from the schedule, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_p99_ms: Option<f64>,
}

/// How the open model offered its load.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoad {
    /// `--rate`.
    pub rate: f64,
    /// How arrivals were spaced.
    pub spacing: crate::arrivals::Spacing,
    /// The seed of the arrival times (give it as `--seed` to repeat the run).
    pub seed: u64,
    /// The most users serving arrivals at once (for `stress`, on the last rung).
    pub max_users: usize,
    /// Arrivals that came due.
    pub offered: u64,
    /// Arrivals dropped for want of a free user.
    pub dropped: u64,
    /// Arrivals per second offered over the schedule's length.
    pub offered_per_second: f64,
    /// Arrivals per second served (offered less dropped).
    pub achieved_per_second: f64,
}

/// The version of summary.json's layout; loadgen/README.md documents each.
pub const SCHEMA_VERSION: u32 = 2;

/// The JSON summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The profile run.
    pub profile: crate::profiles::ProfileName,
    /// The load model.
    pub model: crate::profiles::Model,
    /// Open model: the offered and achieved arrivals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenLoad>,
    /// `--scale`.
    pub scale: f64,
    /// `--time-scale`.
    pub time_scale: f64,
    /// When the load started (RFC 3339).
    pub started_at: String,
    /// How long the load ran, seconds.
    pub duration_s: f64,
    /// Requests per second over the whole load.
    pub requests_per_second: f64,
    /// By request name: GetProducts, PlaceOrder, GetOrder.
    pub requests: BTreeMap<String, RequestSummary>,
    /// The chaos steps as they fired.
    pub chaos: Vec<Fired>,
    /// For `stress`: the highest request rate at which every SLO held.
    pub knee_rps: Option<f64>,
    /// For `stress` under the open model: the highest arrival rate at which every SLO held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knee_arrivals_per_second: Option<f64>,
    /// For `stress`: each rung as it ran, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rungs: Vec<Rung>,
    /// What the SLOs were judged on: orders by answer, p99, 5xx, backlog drain.
    pub measured: crate::slo::Measured,
    /// The server's view from Prometheus, or why there is none.
    pub server: crate::server::Server,
    /// The verdict.
    pub verdict: Verdict,
}

/// One rung of the `stress` ladder.
#[derive(Debug, Clone, Serialize)]
pub struct Rung {
    /// Open model: the arrivals per second the rung offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrivals_per_second: Option<f64>,
    /// Closed model: the rung's users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<usize>,
    /// Requests answered per second.
    pub requests_per_second: f64,
    /// Every SLO held.
    pub held: bool,
    /// "every SLO held", or the SLOs that broke with their figures.
    pub verdict: String,
}

impl std::fmt::Display for Rung {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.arrivals_per_second, self.users) {
            (Some(rate), _) => write!(f, "{rate:.1} arrivals/s")?,
            (None, Some(users)) => write!(f, "{users} users")?,
            (None, None) => write!(f, "?")?,
        }
        write!(
            f,
            ": {:.1} requests/s: {}",
            self.requests_per_second, self.verdict
        )
    }
}

/// Adds goose's per-request counts from `metrics` into `into`.
pub fn requests(metrics: &GooseMetrics, into: &mut BTreeMap<String, RequestSummary>) {
    for (key, aggregate) in &metrics.requests {
        // goose keys requests "METHOD name".
        let name = key.split_once(' ').map_or(key.as_str(), |(_, name)| name);
        let entry = into.entry(name.to_owned()).or_default();
        for (status, count) in &aggregate.status_code_counts {
            let label = if *status == 0 {
                "error".to_owned()
            } else {
                status.to_string()
            };
            *entry.status.entry(label).or_default() += *count as u64;
            entry.total += *count as u64;
        }
        let data = &aggregate.raw_data;
        entry.p50_ms = entry.p50_ms.max(data.percentile_us(0.5) as f64 / 1000.0);
        entry.p99_ms = entry.p99_ms.max(data.percentile_us(0.99) as f64 / 1000.0);
    }
}

/// Sets each request's response-time percentiles from `times` (the open model).
pub fn response_times(
    times: &crate::latency::ResponseTimes,
    into: &mut BTreeMap<String, RequestSummary>,
) {
    for request in times.requests() {
        let entry = into.entry(request.to_owned()).or_default();
        entry.response_p50_ms = times.quantile_ms(request, 0.5);
        entry.response_p99_ms = times.quantile_ms(request, 0.99);
    }
}

/// How many requests of `name` were answered `status`.
pub fn count(requests: &BTreeMap<String, RequestSummary>, name: &str, status: &str) -> u64 {
    requests
        .get(name)
        .and_then(|summary| summary.status.get(status))
        .copied()
        .unwrap_or(0)
}

/// 5xx answers over every request.
pub fn server_errors(requests: &BTreeMap<String, RequestSummary>) -> u64 {
    requests
        .values()
        .flat_map(|summary| &summary.status)
        .filter(|(status, _)| status.starts_with('5'))
        .map(|(_, count)| count)
        .sum()
}

/// PlaceOrder's totals, for the SLOs.
pub fn place_order(requests: &BTreeMap<String, RequestSummary>) -> RequestSummary {
    requests
        .get(scenarios::PLACE_ORDER)
        .cloned()
        .unwrap_or_default()
}

/// Writes `summary.json` and `summary.md` into `dir`.
pub fn write(dir: &Path, summary: &Summary) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(summary).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json)?;
    std::fs::write(dir.join("summary.md"), markdown(summary))
}

/// The server's view in a few lines, for the terminal and summary.md.
pub fn server_lines(server: &crate::server::Server) -> Vec<String> {
    let Some(view) = &server.view else {
        return vec![format!(
            "server view unavailable: {}",
            server.reason.as_deref().unwrap_or("no reason given")
        )];
    };
    let or_none = |value: Option<f64>, show: &dyn Fn(f64) -> String| {
        value.map_or_else(|| "no data".to_owned(), show)
    };
    let percent = |v: f64| format!("{:.2} %", v * 100.0);
    vec![
        format!(
            "server view (Prometheus, last {} s): availability {}, within 300 ms {}, PlaceOrder p99 {}",
            view.window_s,
            or_none(view.availability, &percent),
            or_none(view.latency_within_300ms, &percent),
            or_none(view.place_order_p99_ms, &|v| format!("{v:.0} ms")),
        ),
        format!(
            "error budget burned (of 30 days): availability {}, latency {}",
            or_none(view.availability_budget_burned, &|v| format!(
                "{:.4} %",
                v * 100.0
            )),
            or_none(view.latency_budget_burned, &|v| format!(
                "{:.4} %",
                v * 100.0
            )),
        ),
        format!(
            "alerts fired: {}",
            if view.alerts_fired.is_empty() {
                "none".to_owned()
            } else {
                view.alerts_fired.join(", ")
            }
        ),
        format!(
            "breaker open {}; fallbacks {}; peak backlog {}; shed {}",
            or_none(view.breaker_open_s, &|v| format!("{v:.0} s")),
            if view.fallbacks.is_empty() {
                "none".to_owned()
            } else {
                view.fallbacks
                    .iter()
                    .map(|(reason, count)| format!("{reason} {count:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            or_none(view.peak_backlog, &|v| format!("{v:.0}")),
            or_none(view.shed, &|v| format!("{v:.0}")),
        ),
    ]
}

/// summary.md: the run, the verdict table and the server's view, to paste into a review.
fn markdown(summary: &Summary) -> String {
    let mut text = format!(
        "# loadgen: {} ({:?} model), {}\n\n{:.0} s, {:.1} requests/s\n\n",
        summary.profile.as_str(),
        summary.model,
        summary.started_at,
        summary.duration_s,
        summary.requests_per_second
    );
    if let Some(open) = &summary.open {
        text.push_str(&format!(
            "Arrivals: {} offered ({:.1}/s), {} dropped, {:.1}/s achieved; seed {}\n\n",
            open.offered,
            open.offered_per_second,
            open.dropped,
            open.achieved_per_second,
            open.seed
        ));
    }
    text.push_str(&summary.verdict.to_string());
    text.push_str("\n\n");
    for line in server_lines(&summary.server) {
        text.push_str(&format!("- {line}\n"));
    }
    text
}

/// A directory name for now: `2026-11-24T01-50-00Z`.
pub fn timestamp(now: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(':', "-")
}
