//! Every dashboard panel, recording rule and alert proven on live data: payment, order and a
//! load test with payment's outage, scraped every second by a real Prometheus running the
//! repo's config and rules, alerting a real Alertmanager.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_json::Value;
use stormproof_e2e::{
    ADMIN_TOKEN, Stack, binary,
    monitoring::{Alertmanager, Prometheus},
    promql, repo, tool,
};
use testkit::Process;

/// Grafana's variables as the tests substitute them: every instance and dependency, and a
/// rate window that holds enough 1 s samples.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$instance", ".*")
        .replace("$dependency", ".*")
}

/// Checks one expression: every metric it reads is exported, with every label it matches or
/// groups by, and (when `needs_data`) the whole expression returns something. Problems are
/// added to `problems`, prefixed by `place`.
async fn check(
    prometheus: &Prometheus,
    place: &str,
    expr: &str,
    needs_data: bool,
    problems: &mut Vec<String>,
) {
    let expr = substitute(expr);
    let found = match promql::dependencies(&expr) {
        Ok(found) => found,
        Err(error) => {
            problems.push(format!("{place}: not PromQL ({error}): `{expr}`"));
            return;
        }
    };
    let mut labels_seen = BTreeSet::new();
    for selector in &found.selectors {
        let series = prometheus.series(&selector.metric).await;
        if series.is_empty() {
            problems.push(format!(
                "{place}: no series `{}` is exported",
                selector.metric
            ));
            continue;
        }
        labels_seen.extend(series.iter().flat_map(|labels| labels.keys().cloned()));
        for matcher in &selector.matchers {
            let values: BTreeSet<&str> = series
                .iter()
                .filter_map(|labels| labels.get(&matcher.label).and_then(Value::as_str))
                .collect();
            if values.is_empty() {
                problems.push(format!(
                    "{place}: `{}` has no label `{}`",
                    selector.metric, matcher.label
                ));
            } else if matcher.op == "=" && !values.contains(matcher.value.as_str()) {
                problems.push(format!(
                    "{place}: `{}` has no {}=\"{}\" (it has {values:?})",
                    selector.metric, matcher.label, matcher.value
                ));
            }
        }
    }
    for label in &found.grouping {
        if !labels_seen.contains(label) && !found.selectors.is_empty() {
            problems.push(format!(
                "{place}: groups by `{label}`, which none of its series has"
            ));
        }
    }
    if needs_data {
        match prometheus.query(&expr).await {
            Err(error) => problems.push(format!("{place}: Prometheus refused the query: {error}")),
            Ok(result) if result.is_empty() => {
                problems.push(format!("{place}: no data for `{expr}`"))
            }
            Ok(_) => {}
        }
    }
}

/// Every expression of a dashboard: panel targets, annotations and query variables.
async fn check_dashboard(prometheus: &Prometheus, file: &str, problems: &mut Vec<String>) -> usize {
    let text =
        std::fs::read_to_string(repo().join("dashboards/json").join(file)).expect("dashboard");
    let board: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut checked = 0;
    let mut panels: Vec<&Value> = Vec::new();
    for panel in board["panels"].as_array().expect("panels") {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    for panel in panels {
        // A panel that says what its emptiness means (`noValue`, e.g. "no errors") may be
        // empty; every other one must show data.
        let designed_empty = panel["fieldConfig"]["defaults"]["noValue"].is_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let place = format!(
                "{file}: panel \"{}\" ({})",
                panel["title"].as_str().unwrap_or("?"),
                target["refId"]
            );
            check(
                prometheus,
                &place,
                target["expr"].as_str().unwrap_or_default(),
                !designed_empty,
                problems,
            )
            .await;
            checked += 1;
        }
    }
    for annotation in board["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["expr"].as_str() {
            let place = format!(
                "{file}: annotation \"{}\"",
                annotation["name"].as_str().unwrap_or("?")
            );
            check(prometheus, &place, expr, true, problems).await;
            checked += 1;
        }
    }
    for variable in board["templating"]["list"].as_array().into_iter().flatten() {
        let Some(query) = variable["query"]
            .as_str()
            .filter(|_| variable["type"] == "query")
        else {
            continue;
        };
        // label_values(<selector>, <label>): the selector must match series carrying the label.
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{file}: variable query `{query}` is not label_values(...)"));
        let (selector, label) = inner
            .rsplit_once(',')
            .expect("label_values(selector, label)");
        let series = prometheus.series(selector.trim()).await;
        if !series
            .iter()
            .any(|labels| labels.contains_key(label.trim()))
        {
            problems.push(format!(
                "{file}: variable `{}` lists nothing: {query}",
                variable["name"]
            ));
        }
        checked += 1;
    }
    checked
}

/// Every recording and alerting rule as Prometheus loaded it. Recording rules must have
/// produced data; alert expressions are conditions (empty when quiet), so only what they
/// read is checked. Every alert carries a severity, a summary, a description and a runbook.
async fn check_rules(prometheus: &Prometheus, problems: &mut Vec<String>) -> (usize, usize) {
    let (mut recording, mut alerting) = (0, 0);
    for group in prometheus.rule_groups().await {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let name = rule["name"].as_str().unwrap_or("?");
            let query = rule["query"].as_str().unwrap_or_default();
            if rule["type"] == "recording" {
                let place = format!("recording rule {name}");
                check(prometheus, &place, query, false, problems).await;
                check(prometheus, &place, name, true, problems).await;
                recording += 1;
            } else {
                let place = format!("alert {name}");
                check(prometheus, &place, query, false, problems).await;
                let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
                if !["critical", "warning"].contains(&severity) {
                    problems.push(format!("{place}: severity {severity:?}"));
                }
                for annotation in ["summary", "description", "runbook_url"] {
                    if rule["annotations"][annotation]
                        .as_str()
                        .is_none_or(str::is_empty)
                    {
                        problems.push(format!("{place}: no {annotation}"));
                    }
                }
                let runbook = rule["annotations"]["runbook_url"]
                    .as_str()
                    .unwrap_or_default();
                let file = format!("docs/runbooks/{name}.md");
                if !runbook.ends_with(&file) || !repo().join(&file).is_file() {
                    problems.push(format!(
                        "{place}: runbook_url {runbook:?} is not an existing {file}"
                    ));
                }
                alerting += 1;
            }
        }
    }
    (recording, alerting)
}

/// The series names exported, from the `# TYPE` lines of an exposition.
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The series names docs/metrics.md documents: the first cell of its tables, up to the
/// section on traces.
fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("docs/metrics.md")).expect("docs/metrics.md");
    text.lines()
        .take_while(|line| !line.starts_with("## Traces"))
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

fn promtool_check_metrics(exposition: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(tool(&["promtool"]))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write exposition");
    let output = child.wait_with_output().expect("promtool ends");
    format!(
        "{}{}{}",
        if output.status.success() {
            ""
        } else {
            "(exit status not 0) "
        },
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_rule_and_alert_holds_on_live_data_through_a_payment_outage() {
    let stack = Stack::start(&[]).await;
    let alertmanager = Alertmanager::start().await;
    let alertmanager_address = alertmanager.url.trim_start_matches("http://").to_owned();
    let order_ops = stack.order.addr("ops_addr");
    let payment_ops = stack.payment.addr("ops_addr");
    let prometheus = Prometheus::start(&[
        ("order", &order_ops),
        ("payment", &payment_ops),
        ("alertmanager", &alertmanager_address),
    ])
    .await;

    // smoke under the open model, stretched 50x: arrivals ramp to 10/s over 50 s, then hold
    // 100 s, and payment is down for the whole hold, so the breaker stays open past
    // CircuitBreakerOpen's `for: 1m`. (Open, so that its arrival counters are exported too.)
    let reports = tempfile::tempdir().expect("reports dir");
    let (target_url, order_ops_url, payment_ops_url) = (
        stack.order_url("http_addr"),
        stack.order_url("ops_addr"),
        stack.payment_url("ops_addr"),
    );
    let reports_dir = reports.path().display().to_string();
    let loadgen = Process::start(
        &binary("loadgen"),
        &[
            "--profile",
            "smoke",
            "--model",
            "open",
            "--chaos",
            "outage",
            "--time-scale",
            "50",
            "--target-url",
            &target_url,
            "--order-ops-url",
            &order_ops_url,
            "--payment-ops-url",
            &payment_ops_url,
            "--metrics-addr",
            "127.0.0.1:0",
            "--reports-dir",
            &reports_dir,
            "--prometheus-url",
            &prometheus.url,
            "--running-metrics",
            "0",
            "--quiet",
        ],
        &[("ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await
    .expect("loadgen starts");
    let loadgen_metrics = loadgen.addr("metrics_addr");
    prometheus.set_target("loadgen", &loadgen_metrics);

    wait_until(
        "order, payment and loadgen scraped",
        Duration::from_secs(30),
        || async {
            let up: BTreeSet<String> = prometheus
                .targets()
                .await
                .iter()
                .filter(|target| target["health"] == "up")
                .filter_map(|target| target["labels"]["job"].as_str().map(str::to_owned))
                .collect();
            ["order", "payment", "loadgen"]
                .iter()
                .all(|job| up.contains(*job))
        },
    )
    .await;

    // The outage starts after the 50 s ramp; the breaker opens within a few calls and the
    // alert fires a minute later.
    wait_until(
        "CircuitBreakerOpen firing in Prometheus",
        Duration::from_secs(200),
        || async {
            prometheus.alerts().await.iter().any(|alert| {
                alert["labels"]["alertname"] == "CircuitBreakerOpen"
                    && alert["labels"]["dependency"] == "payment"
                    && alert["state"] == "firing"
            })
        },
    )
    .await;
    wait_until(
        "CircuitBreakerOpen received by Alertmanager",
        Duration::from_secs(30),
        || async {
            alertmanager.alerts().await.iter().any(|alert| {
                alert["labels"]["alertname"] == "CircuitBreakerOpen"
                    && alert["labels"]["severity"] == "warning"
            })
        },
    )
    .await;

    // Everything below runs while the outage and the load still go on.
    let mut problems = Vec::new();
    let mut counts = BTreeMap::new();
    for file in ["resilience-overview.json", "load-test.json", "slo.json"] {
        counts.insert(
            file,
            check_dashboard(&prometheus, file, &mut problems).await,
        );
    }
    let (recording, alerting) = check_rules(&prometheus, &mut problems).await;

    // docs/metrics.md against what the three processes export, and promtool's lint of each.
    let http = reqwest::Client::new();
    let mut exports = BTreeSet::new();
    for (name, address) in [
        ("order", &order_ops),
        ("payment", &payment_ops),
        ("loadgen", &loadgen_metrics),
    ] {
        let exposition = http
            .get(format!("http://{address}/metrics"))
            .send()
            .await
            .and_then(|response| response.error_for_status())
            .expect("scrape")
            .text()
            .await
            .expect("exposition");
        let lint = promtool_check_metrics(&exposition);
        if !lint.trim().is_empty() {
            problems.push(format!("promtool check metrics on {name}: {lint}"));
        }
        exports.extend(exported(&exposition));
    }
    let documented = documented();
    for name in &exports {
        let covered = documented.contains(name)
            || (name.starts_with("process_") && documented.contains("process_*"));
        if !covered {
            problems.push(format!(
                "docs/metrics.md does not document `{name}`, which is exported"
            ));
        }
    }
    for name in &documented {
        let present = exports.contains(name)
            || (name == "process_*" && exports.iter().any(|e| e.starts_with("process_")));
        if !present {
            problems.push(format!(
                "docs/metrics.md documents `{name}`, which nothing exports"
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n\nPrometheus log:\n{}",
        problems.len(),
        problems.join("\n"),
        prometheus.log_tail()
    );
    // The counts say the checks ran over everything, not over an empty list.
    assert!(counts.values().all(|checked| *checked >= 10), "{counts:?}");
    assert!(
        recording >= 30 && alerting >= 12,
        "{recording} recording rules, {alerting} alerts"
    );

    // loadgen's verdict from both sides: when the run ends it asks this Prometheus about the
    // same minutes. The outage opened the breaker and fired CircuitBreakerOpen; orders fell
    // back to PAYMENT_PENDING, which both sides count as answered, so they agree.
    let exit = tokio::time::timeout(Duration::from_secs(180), loadgen.wait())
        .await
        .expect("loadgen ends after the outage heals")
        .expect("loadgen's exit");
    let run = std::fs::read_dir(reports.path())
        .expect("reports")
        .map(|entry| entry.expect("entry").path())
        .next()
        .expect("a report directory");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).expect("summary.json"))
            .expect("summary parses");
    let server = &summary["server"];
    assert_eq!(server["available"], true, "{server} (exit {exit:?})");
    let view = &server["view"];
    let fired: Vec<&str> = view["alerts_fired"]
        .as_array()
        .expect("alerts fired")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(fired.contains(&"CircuitBreakerOpen"), "{view}");
    assert!(
        view["breaker_open_s"].as_f64().unwrap_or(0.0) > 30.0,
        "{view}"
    );
    assert!(
        view["fallbacks"]["breaker_open"].as_f64().unwrap_or(0.0) > 0.0,
        "{view}"
    );
    assert!(view["peak_backlog"].as_f64().unwrap_or(0.0) > 0.0, "{view}");
    let availability = view["availability"].as_f64().expect("server availability");
    assert!(availability > 0.99, "{view}");
    assert!(
        view["availability_budget_burned"].as_f64().is_some()
            && view["latency_budget_burned"].as_f64().is_some(),
        "{view}"
    );
    let findings = summary["verdict"]["findings"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(
        findings, 0,
        "client and server agree: {}",
        summary["verdict"]
    );
    assert!(
        summary["verdict"]["server"]["orders answered 201/202"].is_string(),
        "{}",
        summary["verdict"]
    );
    let markdown = std::fs::read_to_string(run.join("summary.md")).expect("summary.md");
    assert!(
        markdown.contains("alerts fired: ") && markdown.contains("CircuitBreakerOpen"),
        "{markdown}"
    );
}
