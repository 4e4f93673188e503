//! Service level objectives: the file, the defaults, the evaluation and the verdict table.
//!
//! The SLO file is TOML; every key is optional and falls back to its default:
//!
//! ```toml
//! answered_share_min = 0.999     # share of PlaceOrder answered 201 or 202
//! place_order_p99_ms_max = 300   # p99 of PlaceOrder, milliseconds
//! server_errors_max = 0          # 5xx answers (any request)
//! backlog_drain_s_max = 60       # order_payment_backlog back to 0 after the last heal
//! pending_share_max = 0.0        # optional: share of PlaceOrder answered 202 PAYMENT_PENDING
//! dropped_share_max = 0.001      # open model: share of arrivals dropped (no user was free)
//! ```
//!
//! Under the open model the PlaceOrder p99 is the response time from each arrival's
//! scheduled moment, so waiting to be sent counts.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

/// The targets.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Slo {
    /// Minimum share of PlaceOrder answered 201 CONFIRMED or 202 PAYMENT_PENDING.
    pub answered_share_min: f64,
    /// Maximum p99 latency of PlaceOrder, in milliseconds.
    pub place_order_p99_ms_max: f64,
    /// Maximum number of 5xx answers over every request.
    pub server_errors_max: u64,
    /// Maximum seconds from the last heal until order's backlog is 0.
    pub backlog_drain_s_max: f64,
    /// Maximum share of PlaceOrder answered 202 PAYMENT_PENDING (no limit by default).
    pub pending_share_max: Option<f64>,
    /// Open model: maximum share of arrivals dropped because no user was free. A dropped
    /// arrival is load the run meant to offer and did not: past this, the run did not test
    /// what it says.
    pub dropped_share_max: f64,
}

impl Default for Slo {
    fn default() -> Self {
        Self {
            answered_share_min: 0.999,
            place_order_p99_ms_max: 300.0,
            server_errors_max: 0,
            backlog_drain_s_max: 60.0,
            pending_share_max: None,
            dropped_share_max: 0.001,
        }
    }
}

/// Why an SLO file was refused.
#[derive(Debug, thiserror::Error)]
#[error("SLO file {path}: {detail}")]
pub struct SloError {
    path: String,
    detail: String,
}

impl Slo {
    /// The defaults overlaid with `path`, if given.
    pub fn load(path: Option<&Path>) -> Result<Self, SloError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let error = |detail: String| SloError {
            path: path.display().to_string(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let slo: Slo = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        for (field, share) in [
            ("answered_share_min", Some(slo.answered_share_min)),
            ("pending_share_max", slo.pending_share_max),
            ("dropped_share_max", Some(slo.dropped_share_max)),
        ] {
            if share.is_some_and(|share| !(0.0..=1.0).contains(&share)) {
                return Err(error(format!("field \"{field}\": must be from 0 to 1")));
            }
        }
        Ok(slo)
    }
}

/// What was measured over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measured {
    /// PlaceOrder requests sent.
    pub orders: u64,
    /// PlaceOrder answered 201.
    pub confirmed: u64,
    /// PlaceOrder answered 202 (PAYMENT_PENDING: a correct answer, counted apart).
    pub pending: u64,
    /// PlaceOrder answered 402 (REJECTED: payment declined).
    pub rejected: u64,
    /// PlaceOrder answered 503 (shed by order's concurrency limit).
    pub shed: u64,
    /// 5xx answers over every request.
    pub server_errors: u64,
    /// p99 of PlaceOrder, milliseconds.
    pub place_order_p99_ms: f64,
    /// Seconds from the last heal (or the end of load) until the backlog read 0; `None` if it
    /// never did within the limit (or could not be read).
    pub backlog_drain_s: Option<f64>,
    /// Chaos steps that failed to apply.
    pub chaos_failures: usize,
    /// Chaos steps in the timeline.
    pub chaos_steps: usize,
    /// Open model: arrivals that came due (`None` under the closed model).
    pub arrivals_offered: Option<u64>,
    /// Open model: arrivals dropped because no user was free.
    pub arrivals_dropped: u64,
}

/// One row of the verdict table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The SLO's name.
    pub slo: String,
    /// The target, as text.
    pub target: String,
    /// What was measured, as text.
    pub measured: String,
    /// Whether it held.
    pub pass: bool,
}

/// Every SLO's row, and whether all held.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The rows, in table order.
    pub rows: Vec<Row>,
    /// True only if every row passed.
    pub pass: bool,
    /// The server's figure for a row, by the row's SLO name, where Prometheus has one (the
    /// verdict is the client's; this column is there to compare).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub server: BTreeMap<String, String>,
    /// Where the client's and the server's figures disagree beyond tolerance.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Judges `measured` against `slo`.
pub fn evaluate(slo: &Slo, measured: &Measured) -> Verdict {
    let mut rows = Vec::new();
    let answered = share(measured.confirmed + measured.pending, measured.orders);
    rows.push(Row {
        slo: "orders answered 201/202".into(),
        target: format!(">= {:.1} %", slo.answered_share_min * 100.0),
        measured: format!("{:.2} % of {}", answered * 100.0, measured.orders),
        pass: measured.orders > 0 && answered >= slo.answered_share_min,
    });
    rows.push(Row {
        slo: "PlaceOrder p99".into(),
        target: format!("<= {} ms", slo.place_order_p99_ms_max),
        measured: format!("{:.0} ms", measured.place_order_p99_ms),
        pass: measured.place_order_p99_ms <= slo.place_order_p99_ms_max,
    });
    rows.push(Row {
        slo: "5xx answers".into(),
        target: format!("<= {}", slo.server_errors_max),
        measured: measured.server_errors.to_string(),
        pass: measured.server_errors <= slo.server_errors_max,
    });
    if let Some(max) = slo.pending_share_max {
        let pending = share(measured.pending, measured.orders);
        rows.push(Row {
            slo: "PAYMENT_PENDING (202)".into(),
            target: format!("<= {:.1} %", max * 100.0),
            measured: format!("{:.2} % ({})", pending * 100.0, measured.pending),
            pass: pending <= max,
        });
    }
    rows.push(Row {
        slo: "backlog drained after heal".into(),
        target: format!("<= {} s", slo.backlog_drain_s_max),
        measured: measured
            .backlog_drain_s
            .map_or_else(|| "not drained".to_owned(), |s| format!("{s:.1} s")),
        pass: measured
            .backlog_drain_s
            .is_some_and(|s| s <= slo.backlog_drain_s_max),
    });
    if let Some(offered) = measured.arrivals_offered {
        let dropped = share(measured.arrivals_dropped, offered);
        rows.push(Row {
            slo: "arrivals dropped".into(),
            target: format!("<= {:.1} %", slo.dropped_share_max * 100.0),
            measured: format!(
                "{:.2} % ({} of {offered})",
                dropped * 100.0,
                measured.arrivals_dropped
            ),
            pass: dropped <= slo.dropped_share_max,
        });
    }
    if measured.chaos_steps > 0 {
        rows.push(Row {
            slo: "chaos steps applied".into(),
            target: format!("{} of {}", measured.chaos_steps, measured.chaos_steps),
            measured: format!(
                "{} of {}",
                measured.chaos_steps - measured.chaos_failures,
                measured.chaos_steps
            ),
            pass: measured.chaos_failures == 0,
        });
    }
    let pass = rows.iter().all(|row| row.pass);
    Verdict {
        rows,
        pass,
        server: BTreeMap::new(),
        findings: Vec::new(),
    }
}

impl Verdict {
    /// One line for a run or a stress rung: "every SLO held", or each SLO that broke with what
    /// was measured against its target.
    pub fn headline(&self) -> String {
        let broken: Vec<String> = self
            .rows
            .iter()
            .filter(|row| !row.pass)
            .map(|row| format!("{} {} (target {})", row.slo, row.measured, row.target))
            .collect();
        if broken.is_empty() {
            "every SLO held".into()
        } else {
            format!("broke: {}", broken.join("; "))
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let with_server = !self.server.is_empty();
        let mut headers = vec!["SLO", "target", "measured"];
        if with_server {
            headers.push("server");
        }
        headers.push("result");
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| {
                let mut cells = vec![row.slo.clone(), row.target.clone(), row.measured.clone()];
                if with_server {
                    cells.push(
                        self.server
                            .get(&row.slo)
                            .cloned()
                            .unwrap_or_else(|| "-".into()),
                    );
                }
                cells.push(if row.pass { "PASS" } else { "FAIL" }.to_owned());
                cells
            })
            .collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for row in &cells {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |f: &mut std::fmt::Formatter<'_>, row: &[&str]| {
            write!(f, "|")?;
            for (cell, width) in row.iter().zip(&widths) {
                write!(f, " {cell:<width$} |")?;
            }
            writeln!(f)
        };
        line(f, &headers)?;
        writeln!(
            f,
            "|{}|",
            widths
                .iter()
                .map(|width| "-".repeat(width + 2))
                .collect::<Vec<_>>()
                .join("|")
        )?;
        for row in &cells {
            line(f, &row.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        for finding in &self.findings {
            writeln!(f, "finding: {finding}")?;
        }
        write!(
            f,
            "verdict: {}",
            if self.pass {
                "PASS (every SLO held)"
            } else {
                "FAIL"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Measured {
        Measured {
            orders: 1000,
            confirmed: 990,
            pending: 10,
            place_order_p99_ms: 120.0,
            backlog_drain_s: Some(2.0),
            ..Measured::default()
        }
    }

    #[test]
    fn a_healthy_run_passes_the_defaults() {
        let verdict = evaluate(&Slo::default(), &healthy());
        assert!(verdict.pass, "{verdict}");
    }

    #[test]
    fn dropped_arrivals_are_judged_under_the_open_model_only() {
        let open = |dropped| Measured {
            arrivals_offered: Some(10_000),
            arrivals_dropped: dropped,
            ..healthy()
        };
        assert!(evaluate(&Slo::default(), &open(10)).pass);
        let verdict = evaluate(&Slo::default(), &open(11));
        assert!(!verdict.pass);
        let row = verdict.rows.iter().find(|r| !r.pass).expect("a failed row");
        assert_eq!(row.slo, "arrivals dropped");
        assert_eq!(row.measured, "0.11 % (11 of 10000)");
        let closed = evaluate(&Slo::default(), &healthy());
        assert!(closed.rows.iter().all(|r| r.slo != "arrivals dropped"));
    }

    #[test]
    fn each_breach_fails_its_own_row() {
        let slo = Slo {
            pending_share_max: Some(0.0),
            ..Slo::default()
        };
        let verdict = evaluate(&slo, &healthy());
        assert!(!verdict.pass);
        let failed: Vec<_> = verdict
            .rows
            .iter()
            .filter(|r| !r.pass)
            .map(|r| r.slo.as_str())
            .collect();
        assert_eq!(failed, ["PAYMENT_PENDING (202)"]);
        assert!(verdict.to_string().contains("| FAIL"));

        let slow = Measured {
            place_order_p99_ms: 301.0,
            server_errors: 1,
            backlog_drain_s: None,
            ..healthy()
        };
        let verdict = evaluate(&Slo::default(), &slow);
        assert!(
            verdict
                .headline()
                .starts_with("broke: PlaceOrder p99 301 ms (target <= 300 ms); 5xx answers"),
            "{}",
            verdict.headline()
        );
        assert_eq!(
            evaluate(&Slo::default(), &healthy()).headline(),
            "every SLO held"
        );
        let failed: Vec<_> = verdict
            .rows
            .into_iter()
            .filter(|r| !r.pass)
            .map(|r| r.slo)
            .collect();
        assert_eq!(
            failed,
            [
                "PlaceOrder p99",
                "5xx answers",
                "backlog drained after heal"
            ]
        );
    }

    #[test]
    fn the_file_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("slo.toml");
        std::fs::write(&path, "pending_share_max = 0.0\n").expect("write");
        let slo = Slo::load(Some(&path)).expect("valid");
        assert_eq!(slo.pending_share_max, Some(0.0));
        assert_eq!(slo.place_order_p99_ms_max, 300.0);
        std::fs::write(&path, "p99 = 3\n").expect("write");
        assert!(Slo::load(Some(&path)).is_err());
    }
}

#[cfg(test)]
mod example {
    /// The documented example SLO file is the defaults.
    #[test]
    fn the_shipped_example_is_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/slo.toml");
        assert_eq!(
            super::Slo::load(Some(&path)).expect("valid"),
            super::Slo::default()
        );
    }
}
