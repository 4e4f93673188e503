//! A `loadgen` run the cluster started, and what it left: its exit code and `summary.json`.

use std::path::PathBuf;

use serde_json::Value;

/// A loadgen run under way.
pub struct Loadgen {
    pub(super) task: tokio::task::JoinHandle<Option<i32>>,
    pub(super) reports: PathBuf,
}

/// What a finished loadgen run left.
#[derive(Debug, Clone)]
pub struct LoadRun {
    /// loadgen's exit code (0: every SLO held, 1: one broke), `None` if it did not finish in
    /// time.
    pub exit: Option<i32>,
    /// `summary.json`.
    pub summary: Value,
}

impl LoadRun {
    /// Requests of every name answered with an HTTP status that `good` takes.
    pub fn answered(&self, good: impl Fn(u16) -> bool) -> u64 {
        self.summary["requests"]
            .as_object()
            .map(|requests| {
                requests
                    .values()
                    .filter_map(|request| request["status"].as_object())
                    .flat_map(|status| status.iter())
                    .filter(|(code, _)| code.parse().is_ok_and(&good))
                    .filter_map(|(_, count)| count.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Requests named `request` (PlaceOrder, GetProducts, GetOrder) answered `status`
    /// ("201", "error", …).
    pub fn count(&self, request: &str, status: &str) -> u64 {
        self.summary["requests"][request]["status"][status]
            .as_u64()
            .unwrap_or(0)
    }

    /// Requests named `request` sent.
    pub fn total(&self, request: &str) -> u64 {
        self.summary["requests"][request]["total"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Every request sent.
    pub fn all_requests(&self) -> u64 {
        self.summary["requests"]
            .as_object()
            .map(|requests| {
                requests
                    .values()
                    .filter_map(|request| request["total"].as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// How long the load ran, seconds.
    pub fn seconds(&self) -> f64 {
        self.summary["duration_s"].as_f64().unwrap_or(0.0)
    }
}

impl Loadgen {
    /// Waits for the run to end and reads its summary.
    pub async fn finish(self) -> LoadRun {
        let exit = self.task.await.expect("loadgen task");
        let summary = std::fs::read_dir(&self.reports)
            .ok()
            .and_then(|mut entries| entries.next())
            .and_then(Result::ok)
            .and_then(|entry| std::fs::read(entry.path().join("summary.json")).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_else(|| panic!("loadgen left no summary.json (exit {exit:?})"));
        LoadRun { exit, summary }
    }
}
