//! Stormproof's load generator: a peak sale against the order service, with chaos, and a
//! yes/no answer at the end: did every SLO hold?
//!
//! - [`config`]: the command line (clap, every flag with an environment variable).
//! - [`profiles`]: load shapes by name (smoke, peak-sale, soak, stress), scaled.
//! - [`arrivals`]: the open model: rate plans, their arrival times, and the dispatcher that
//!   hands each arrival to a free user or drops it.
//! - [`chaos`]: the timeline of fault steps applied through the admin APIs; checked before
//!   any load is sent.
//! - [`latency`]: response times from the schedule, for the open model's percentiles.
//! - [`live`]: the live view while a run goes (a panel on a terminal, lines elsewhere).
//! - [`scenarios`]: the goose scenarios (browse, buy and follow the order).
//! - [`server`]: the server's view of the run, from Prometheus, beside the client's.
//! - [`slo`]: the SLO file, its defaults, the evaluation and the verdict table.
//! - [`report`]: `reports/<timestamp>/summary.json` beside goose's `report.html`.
//! - [`metrics`]: loadgen's own `/metrics` series.
//! - `runner` (private): the run loop behind [`Loadgen`].
//!
//! [`Loadgen::build`] checks everything and binds the metrics listener; [`Loadgen::run`]
//! sends the load and returns the [`Outcome`]. The binary maps the verdict to an exit code;
//! tests call the same two functions against servers on 127.0.0.1.
//!
//! Goose measures (latency, statuses) and its [`GooseMetrics`](goose::metrics::GooseMetrics)
//! feed the verdict; the `loadgen_*` series are recorded beside them through the `metrics`
//! facade, for dashboards.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod arrivals;
pub mod chaos;
pub mod config;
pub mod knee;
pub mod latency;
pub mod live;
pub mod metrics;
pub mod profiles;
pub mod report;
mod runner;
pub mod scenarios;
pub mod server;
pub mod slo;

use goose::prelude::GooseError;

pub use config::Config;
pub use runner::{Loadgen, Outcome, run};
pub use slo::Verdict;

/// `mutex`'s guard, also after a panic elsewhere poisoned it: every value loadgen keeps under
/// a lock (counts, histograms) stays valid whatever a panicking holder left half done.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The innermost error of a chain ("Connection refused (os error 111)"), without what the
/// outer ones repeat (reqwest's "error sending request for url (...)").
pub(crate) fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// Why loadgen could not give a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line, chaos file or SLO file is wrong; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// The target did not answer the catalogue request that starts a run.
    #[error("the target {url} is not serving its catalogue: {detail}")]
    Target {
        /// The URL asked.
        url: String,
        /// Why.
        detail: String,
    },
    /// Goose refused or failed the load test.
    #[error("goose: {0}")]
    Goose(#[from] Box<GooseError>),
    /// A listener or report file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error: 64 (EX_USAGE) for usage, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => ::server::EXIT_USAGE,
            _ => 1,
        }
    }
}
