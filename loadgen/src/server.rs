//! The server's view of a run, from Prometheus: what order itself measured over the same
//! minutes (its SLIs as the recording rules define them, the error budget the run burned, the
//! alerts that fired, how long its breaker was open, its fallbacks, peak backlog and shed
//! requests), to set beside what loadgen saw.
//!
//! Every query is evaluated once, at the moment of the verdict, over the window from the
//! load's start until then (`[Ns]`); counters use `increase`/`rate` as the rules do, so the
//! figures carry Prometheus' extrapolation and lag by up to a scrape interval. If Prometheus
//! cannot be asked (not given, unreachable, an error), the view says why and the verdict is
//! the client's alone.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;
use serde_json::Value;

/// The PlaceOrder selector of the order SLIs (prometheus/rules/recording.yml).
const PLACE_ORDER: &str = r#"job="order", http_route="/v1/orders", http_request_method="POST""#;
/// The SLO period the error budget is counted over (the rules' burn rates are against it).
const SLO_PERIOD: Duration = Duration::from_secs(30 * 24 * 3600);
/// Each query's time limit.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The availability SLI over `window` (`job:order_availability:ratio_rate5m` with its window).
fn availability(window: &str) -> String {
    format!(
        "sum by (job) (rate(http_server_request_duration_seconds_count{{{PLACE_ORDER}, http_response_status_code=~\"201|202\"}}[{window}]))\n/\nsum by (job) (rate(http_server_request_duration_seconds_count{{{PLACE_ORDER}, http_response_status_code!~\"4..\"}}[{window}]))"
    )
}

/// The latency SLI over `window` (`job:order_latency:ratio_rate5m` with its window).
fn latency(window: &str) -> String {
    format!(
        "sum by (job) (rate(http_server_request_duration_seconds_bucket{{{PLACE_ORDER}, le=\"0.3\"}}[{window}]))\n/\nsum by (job) (rate(http_server_request_duration_seconds_count{{{PLACE_ORDER}}}[{window}]))"
    )
}

/// What order measured over the run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ServerView {
    /// Seconds of the window the queries covered.
    pub window_s: u64,
    /// Share of PlaceOrder answered 201 or 202, over answers that were not 4xx.
    pub availability: Option<f64>,
    /// Share of PlaceOrder answered within 300 ms.
    pub latency_within_300ms: Option<f64>,
    /// p99 of PlaceOrder from order's histogram (interpolated within its buckets), ms.
    pub place_order_p99_ms: Option<f64>,
    /// Share of the 30-day availability error budget the run spent.
    pub availability_budget_burned: Option<f64>,
    /// Share of the 30-day latency error budget the run spent.
    pub latency_budget_burned: Option<f64>,
    /// The alerts that fired during the window.
    pub alerts_fired: Vec<String>,
    /// Seconds order's breaker to payment was open (or forced open).
    pub breaker_open_s: Option<f64>,
    /// Orders that fell back to PAYMENT_PENDING, by reason.
    pub fallbacks: BTreeMap<String, f64>,
    /// The highest payment backlog.
    pub peak_backlog: Option<f64>,
    /// Requests order shed.
    pub shed: Option<f64>,
}

/// The server's side of the verdict: a view, or why there is none.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Server {
    /// Whether Prometheus answered.
    pub available: bool,
    /// Why not, if it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<ServerView>,
}

impl Server {
    /// No view, because of `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            available: false,
            reason: Some(reason.into()),
            view: None,
        }
    }
}

/// Asks Prometheus at `url` about the last `window`.
pub async fn view(http: &reqwest::Client, url: &str, window: Duration) -> Server {
    match ask(http, url.trim_end_matches('/'), window).await {
        Ok(view) => Server {
            available: true,
            reason: None,
            view: Some(view),
        },
        Err(reason) => Server::unavailable(reason),
    }
}

async fn ask(http: &reqwest::Client, url: &str, window: Duration) -> Result<ServerView, String> {
    let seconds = window.as_secs().max(1);
    let w = format!("{seconds}s");
    let query = |expr: String| query(http, url, expr);
    let one = |samples: Vec<(BTreeMap<String, String>, f64)>| samples.first().map(|(_, v)| *v);

    let availability = one(query(availability(&w)).await?);
    let latency_within = one(query(latency(&w)).await?);
    // One query each: `a or b` matches them on their labels (the name aside) and keeps one.
    let availability_objective = one(query("job:order_availability:objective".into()).await?);
    let latency_objective = one(query("job:order_latency:objective".into()).await?);
    // Burn rate × the share of the SLO period the window is.
    let burned = |sli: Option<f64>, objective: Option<f64>| match (sli, objective) {
        (Some(sli), Some(objective)) if objective < 1.0 => {
            Some((1.0 - sli) / (1.0 - objective) * window.as_secs_f64() / SLO_PERIOD.as_secs_f64())
        }
        _ => None,
    };
    let p99 = one(
        query(format!(
            "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{{{PLACE_ORDER}}}[{w}])))"
        ))
        .await?,
    );
    let mut alerts_fired: Vec<String> = query(format!(
        "max by (alertname) (max_over_time(ALERTS{{alertstate=\"firing\"}}[{w}]))"
    ))
    .await?
    .into_iter()
    .filter_map(|(labels, _)| labels.get("alertname").cloned())
    .collect();
    alerts_fired.sort();
    let breaker_open_s = one(
        query(format!(
            "sum_over_time((max(circuit_breaker_state{{job=\"order\", state=~\"open|forced_open\"}}) or vector(0))[{w}:1s])"
        ))
        .await?,
    );
    let fallbacks = query(format!(
        "sum by (reason) (increase(fallback_total{{job=\"order\"}}[{w}]))"
    ))
    .await?
    .into_iter()
    .filter_map(|(labels, value)| labels.get("reason").map(|reason| (reason.clone(), value)))
    .collect();
    let peak_backlog = one(query(format!(
        "max(max_over_time(order_payment_backlog{{job=\"order\"}}[{w}]))"
    ))
    .await?);
    let shed = one(query(format!(
        "sum(increase(load_shed_total{{job=\"order\"}}[{w}]))"
    ))
    .await?);
    Ok(ServerView {
        window_s: seconds,
        availability,
        latency_within_300ms: latency_within,
        place_order_p99_ms: p99
            .filter(|v| v.is_finite())
            .map(|seconds| seconds * 1000.0),
        availability_budget_burned: burned(availability, availability_objective),
        latency_budget_burned: burned(latency_within, latency_objective),
        alerts_fired,
        breaker_open_s,
        fallbacks,
        peak_backlog,
        shed,
    })
}

/// One instant query: each sample's labels and value.
async fn query(
    http: &reqwest::Client,
    url: &str,
    expr: String,
) -> Result<Vec<(BTreeMap<String, String>, f64)>, String> {
    let response = http
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", expr.as_str())])
        .timeout(QUERY_TIMEOUT)
        .send()
        .await
        .map_err(|error| format!("Prometheus at {url}: {}", crate::root_cause(&error)))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|error| format!("Prometheus at {url}: {status}: {error}"))?;
    if body["status"] != "success" {
        return Err(format!(
            "Prometheus at {url} refused `{expr}`: {}",
            body["error"].as_str().unwrap_or("no reason given")
        ));
    }
    Ok(samples(&body["data"]))
}

/// The samples of an instant query's `data` (a vector; a scalar has no labels).
fn samples(data: &Value) -> Vec<(BTreeMap<String, String>, f64)> {
    let value = |pair: &Value| pair[1].as_str().and_then(|text| text.parse::<f64>().ok());
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|sample| {
                let labels = sample["metric"]
                    .as_object()
                    .map(|labels| {
                        labels
                            .iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default();
                value(&sample["value"])
                    .filter(|v| !v.is_nan())
                    .map(|v| (labels, v))
            })
            .collect(),
        Some("scalar") => value(&data["result"])
            .map(|v| vec![(BTreeMap::new(), v)])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Where the client's and the server's figures disagree beyond what their difference in
/// method explains: availability by more than 1 percentage point (Prometheus extrapolates and
/// lags a scrape), or a client p99 below half the server's (the client cannot be faster than
/// what served it) or above twice the server's plus 100 ms (time lost between them: the
/// network, a proxy, loadgen's own queueing).
pub fn findings(client_availability: f64, client_p99_ms: f64, server: &ServerView) -> Vec<String> {
    let mut findings = Vec::new();
    if let Some(server_availability) = server.availability
        && (client_availability - server_availability).abs() > 0.01
    {
        findings.push(format!(
            "availability: the client saw {:.2} % of orders answered 201/202, order's SLI says {:.2} %: \
             answers the other side did not count (requests that never reached order, or other clients' orders)",
            client_availability * 100.0,
            server_availability * 100.0
        ));
    }
    if let Some(server_p99) = server.place_order_p99_ms {
        if client_p99_ms < server_p99 / 2.0 {
            findings.push(format!(
                "PlaceOrder p99: the client saw {client_p99_ms:.0} ms, order's histogram {server_p99:.0} ms: \
                 order served slower requests than this run sent (another client?)"
            ));
        } else if client_p99_ms > 2.0 * server_p99 + 100.0 {
            findings.push(format!(
                "PlaceOrder p99: the client saw {client_p99_ms:.0} ms, order's histogram {server_p99:.0} ms: \
                 time was lost between them (the network, a proxy, or waiting to be sent)"
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SLI queries are the recording rules' own, with the run's window.
    #[test]
    fn the_sli_queries_are_the_recording_rules() {
        let rules = include_str!("../../prometheus/rules/recording.yml");
        let rule = |name: &str| {
            let start = rules
                .find(&format!("record: {name}\n"))
                .unwrap_or_else(|| panic!("{name} in recording.yml"));
            let expr = &rules[start..];
            let body = expr
                .split_once("expr: |\n")
                .map(|(_, rest)| rest)
                .expect("a block expression");
            body.lines()
                .take_while(|line| line.starts_with("      "))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            availability("5m"),
            rule("job:order_availability:ratio_rate5m")
        );
        assert_eq!(latency("5m"), rule("job:order_latency:ratio_rate5m"));
    }

    #[test]
    fn samples_are_read_from_vectors_and_scalars() {
        let vector: Value = serde_json::json!({
            "resultType": "vector",
            "result": [
                {"metric": {"reason": "breaker_open"}, "value": [1.0, "12.5"]},
                {"metric": {"reason": "deadline"}, "value": [1.0, "NaN"]},
            ]
        });
        let read = samples(&vector);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].0["reason"], "breaker_open");
        assert_eq!(read[0].1, 12.5);
        let scalar: Value = serde_json::json!({"resultType": "scalar", "result": [1.0, "3"]});
        assert_eq!(samples(&scalar)[0].1, 3.0);
    }

    #[test]
    fn findings_name_a_disagreement_and_stay_quiet_within_tolerance() {
        let server = ServerView {
            availability: Some(0.999),
            place_order_p99_ms: Some(120.0),
            ..ServerView::default()
        };
        assert!(findings(0.995, 150.0, &server).is_empty());
        let found = findings(0.95, 900.0, &server);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("availability"));
        assert!(found[1].contains("time was lost between them"));
        assert!(findings(0.999, 40.0, &server)[0].contains("another client"));
    }

    #[tokio::test]
    async fn an_unreachable_prometheus_gives_no_view_and_says_why() {
        let http = reqwest::Client::new();
        let server = view(&http, "http://127.0.0.1:9", Duration::from_secs(60)).await;
        assert!(!server.available);
        let reason = server.reason.expect("a reason");
        assert!(reason.contains("127.0.0.1:9"), "{reason}");
        assert!(server.view.is_none());
    }
}
