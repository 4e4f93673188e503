//! The command line: one [`Config`], every flag with an environment variable.
//!
//! Targets default to the local stack on 127.0.0.1 (order's API on 8080, order's ops port on
//! 9464, payment's on 9465); any host the user names is used as given.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use secrecy::SecretString;

use crate::{
    arrivals::Spacing,
    profiles::{Model, ProfileName},
};

/// Drives order's HTTP API through a load profile, applies a chaos timeline through the admin
/// APIs, and answers one question: did every SLO hold? Exit code 0 if so, 1 if not, 64 for a
/// bad command line, chaos file or SLO file (nothing is sent then).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadgen",
    version,
    after_help = "Examples:\n  \
        loadgen --profile smoke\n  \
        loadgen --profile peak-sale --chaos outage --rate 0.5\n  \
        loadgen --profile peak-sale --model closed --scale 0.5\n  \
        loadgen --profile stress --slo slo.toml --reports-dir reports\n  \
        ADMIN_TOKEN=secret loadgen --profile peak-sale --chaos my-timeline.toml\n\n\
        Chaos timeline and SLO file formats: see loadgen/README.md."
)]
pub struct Config {
    // smoke: a few seconds; peak-sale: warm-up, 10x spike, plateau, cool-down; soak: a long
    // steady load; stress: steps up until an SLO breaks and reports the knee; catalogue: the
    // benchmark (GET /v1/products only, no think time, 10 s). See loadgen/README.md.
    /// Load profile (smoke, peak-sale, soak, stress, catalogue: see loadgen/README.md).
    #[arg(long, env = "LOADGEN_PROFILE", default_value = "smoke")]
    pub profile: ProfileName,

    // open: arrivals per second, each served by a free user or dropped and counted, latency
    // timed from the scheduled arrival; closed: a number of users, each waiting for its answer.
    /// How load is offered: open or closed [default: open for peak-sale and stress].
    #[arg(long, env = "LOADGEN_MODEL")]
    pub model: Option<Model>,

    /// Open model: multiplies the profile's arrival rates (peak-sale: 4/s, 40/s at the peak).
    #[arg(long, env = "LOADGEN_RATE", default_value_t = 1.0)]
    pub rate: f64,

    // Each stage ramps linearly from the one before: `500:10s` (constant), `0:0s,50:30s,
    // 50:2m,0:30s` (ramp up, hold, ramp down). --rate and --time-scale apply; built-in chaos
    // timelines land where the rate is highest.
    /// Open model: your own arrival rates as RATE:DURATION stages (e.g. `500:10s`).
    #[arg(long, env = "LOADGEN_STAGES", value_parser = crate::arrivals::RatePlan::parse_stages)]
    pub stages: Option<crate::arrivals::RatePlan>,

    // An arrival that finds none free is dropped (and counted).
    /// Open model: the most users serving arrivals at once [default: peak rate × 1 s + 10].
    #[arg(long, env = "LOADGEN_MAX_USERS")]
    pub max_users: Option<usize>,

    /// Open model: how arrivals are spaced.
    #[arg(long, env = "LOADGEN_ARRIVALS", value_enum, default_value_t = Spacing::Poisson)]
    pub arrivals: Spacing,

    // Without one, a random seed is printed and kept in summary.json.
    /// Open model: the seed of the arrival times and of who buys (repeats a run).
    #[arg(long, env = "LOADGEN_SEED")]
    pub seed: Option<u64>,

    // 0.1 for a laptop, 10 for a cluster.
    /// Closed model: multiplies the number of simulated users of the profile.
    #[arg(long, env = "LOADGEN_SCALE", default_value_t = 1.0)]
    pub scale: f64,

    // 0.1 rehearses a peak sale in a tenth of the time.
    /// Multiplies every duration of the profile and of the chaos timeline.
    #[arg(long, env = "LOADGEN_TIME_SCALE", default_value_t = 1.0)]
    pub time_scale: f64,

    // seed: 200 ms + 25 % failures; outage: payment down 60 s at the peak; brownout: 2 s
    // latency.
    /// Chaos timeline: none, seed, outage, brownout, or the path of a TOML timeline file.
    #[arg(long, env = "LOADGEN_CHAOS", default_value = "none")]
    pub chaos: String,

    /// SLO file (TOML); targets it does not name keep their defaults.
    #[arg(long, env = "LOADGEN_SLO")]
    pub slo: Option<PathBuf>,

    /// Order's HTTP API.
    #[arg(
        long,
        env = "LOADGEN_TARGET_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub target_url: String,

    /// Order's ops port (/metrics for the backlog, /admin/breaker for chaos steps).
    #[arg(
        long,
        env = "LOADGEN_ORDER_OPS_URL",
        default_value = "http://127.0.0.1:9464"
    )]
    pub order_ops_url: String,

    /// Payment's ops port (/admin/faults for chaos steps).
    #[arg(
        long,
        env = "LOADGEN_PAYMENT_OPS_URL",
        default_value = "http://127.0.0.1:9465"
    )]
    pub payment_ops_url: String,

    // After the run loadgen asks it for the server's view of the same minutes (SLIs, error
    // budget burned, alerts fired, breaker, fallbacks, backlog, shed) and sets it beside its
    // own.
    /// Prometheus scraping order, for the server's view of the run (`none`: the client's only).
    #[arg(
        long,
        env = "LOADGEN_PROMETHEUS_URL",
        default_value = "http://127.0.0.1:9090"
    )]
    pub prometheus_url: String,

    /// Bearer token of both admin APIs; needed only with a chaos timeline.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretString>,

    /// Where loadgen serves its own /metrics.
    #[arg(long, env = "LOADGEN_METRICS_ADDR", default_value = "127.0.0.1:9466")]
    pub metrics_addr: SocketAddr,

    /// Reports go to <DIR>/<timestamp>/ (summary.json and goose's report.html).
    #[arg(long, env = "LOADGEN_REPORTS_DIR", default_value = "reports")]
    pub reports_dir: PathBuf,

    // The live view shows the run; goose's tables are for those who want them too.
    /// Seconds between goose's own running statistics tables (0: none).
    #[arg(long, env = "LOADGEN_RUNNING_METRICS", default_value_t = 0)]
    pub running_metrics: usize,

    // On a terminal the live panel is redrawn every second instead.
    /// Not on a terminal (CI, a pipe): one progress line this often.
    #[arg(long, env = "LOADGEN_PROGRESS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,

    /// Timeout of each request.
    #[arg(long, env = "LOADGEN_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Quieter goose output (no running or final goose tables).
    #[arg(long, env = "LOADGEN_QUIET")]
    pub quiet: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub telemetry: telemetry::TelemetryArgs,
}

impl Config {
    /// The configuration for `args` (the program name first), as tests build it.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::try_parse_from(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_is_one_line_and_in_docs_configuration() {
        let docs =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
        let command = <Config as clap::CommandFactory>::command();
        ::server::flags_are_documented(&command, &docs)
            .unwrap_or_else(|problem| panic!("{problem}"));
    }

    #[test]
    fn defaults_target_the_local_stack() {
        let config = Config::from_args(["loadgen"]).expect("defaults parse");
        assert_eq!(config.target_url, "http://127.0.0.1:8080");
        assert_eq!(config.order_ops_url, "http://127.0.0.1:9464");
        assert_eq!(config.payment_ops_url, "http://127.0.0.1:9465");
        assert_eq!(config.metrics_addr.port(), 9466);
        assert_eq!(config.profile, ProfileName::Smoke);
    }

    #[test]
    fn help_reads() {
        use clap::CommandFactory as _;
        Config::command().debug_assert();
    }
}
