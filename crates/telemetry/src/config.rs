//! The telemetry flags a service flattens into its clap `Config`.
//!
//! The OpenTelemetry SDK would read most `OTEL_*` variables by itself; declaring them here
//! instead puts them in `--help`, validates them at start-up (a bad sampler ratio exits with a
//! usage error instead of falling back silently) and keeps environment reading in one place.

use clap::builder::BoolishValueParser;

/// Flags and environment variables for [`init`](crate::init).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Telemetry")]
pub struct TelemetryArgs {
    /// Log line format: `json` (one object per line, with trace_id and span_id) or `text`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Which log lines to keep, in tracing's EnvFilter syntax (`info`, `warn,payment=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,

    /// `service.name` of exported spans [default: the binary's name].
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,

    // Nothing listening there is harmless: spans are dropped after a short timeout and
    // nothing is logged above debug level.
    /// OTLP/gRPC collector that receives spans.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        default_value = "http://localhost:4317"
    )]
    pub otel_exporter_otlp_endpoint: String,

    /// Turn tracing off entirely (no spans, no export, no trace ids in logs).
    #[arg(
        long,
        env = "OTEL_SDK_DISABLED",
        default_value = "false",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    pub otel_sdk_disabled: bool,

    /// Which traces to record, as the OpenTelemetry specification names the samplers.
    #[arg(long, env = "OTEL_TRACES_SAMPLER", value_enum, default_value_t = SamplerKind::ParentbasedAlwaysOn)]
    pub otel_traces_sampler: SamplerKind,

    /// Ratio (0..=1) for the `*traceidratio` samplers [default: 1.0].
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", value_parser = parse_ratio)]
    pub otel_traces_sampler_arg: Option<f64>,

    // none: no recorder; every metric call is a no-op and `/metrics` answers an empty
    // exposition saying so.
    /// Where metrics go: `prometheus` (the ops listener's `/metrics`) or `none`.
    #[arg(long, env = "OTEL_METRICS_EXPORTER", value_enum, default_value_t = MetricsExporter::Prometheus)]
    pub otel_metrics_exporter: MetricsExporter,
}

impl TelemetryArgs {
    /// Quiets a noisy dependency's logs with `directive` (`target=level`), unless the
    /// operator's filter names that target: the rule [`init`](crate::init) applies to the
    /// OpenTelemetry exporter's own logs.
    pub fn quiet(&mut self, directive: &str) {
        if !crate::logs::names_target(&self.log_filter, directive) {
            self.log_filter.push(',');
            self.log_filter.push_str(directive);
        }
    }
}

impl Default for TelemetryArgs {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Json,
            log_filter: "info".to_owned(),
            otel_service_name: None,
            otel_exporter_otlp_endpoint: "http://localhost:4317".to_owned(),
            otel_sdk_disabled: false,
            otel_traces_sampler: SamplerKind::ParentbasedAlwaysOn,
            otel_traces_sampler_arg: None,
            otel_metrics_exporter: MetricsExporter::Prometheus,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line: timestamp, level, target, message, fields, spans, trace_id,
    /// span_id.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// The samplers of `OTEL_TRACES_SAMPLER`, spelled as the specification spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Record every trace.
    AlwaysOn,
    /// Record none.
    AlwaysOff,
    /// Record a ratio of traces, chosen by trace id.
    Traceidratio,
    /// Follow the caller's decision; record every new trace (the default).
    ParentbasedAlwaysOn,
    /// Follow the caller's decision; record no new trace.
    ParentbasedAlwaysOff,
    /// Follow the caller's decision; record a ratio of new traces.
    ParentbasedTraceidratio,
}

/// The exporters of `OTEL_METRICS_EXPORTER` this crate has, spelled as the specification
/// spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsExporter {
    /// The Prometheus text exposition on `/metrics` (the default).
    Prometheus,
    /// No metrics at all: no recorder is installed, so the `metrics` macros do nothing.
    None,
}

fn parse_ratio(value: &str) -> Result<f64, String> {
    let ratio: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("{ratio} is outside 0..=1"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    #[test]
    fn defaults_follow_the_specification() {
        let cli = Cli::try_parse_from(["svc"]).expect("no flags is valid");
        assert_eq!(
            cli.telemetry.otel_traces_sampler,
            SamplerKind::ParentbasedAlwaysOn
        );
        assert_eq!(
            cli.telemetry.otel_exporter_otlp_endpoint,
            "http://localhost:4317"
        );
        assert!(!cli.telemetry.otel_sdk_disabled);
        assert_eq!(
            cli.telemetry.otel_metrics_exporter,
            MetricsExporter::Prometheus
        );
    }

    #[test]
    fn a_quieted_dependency_stays_as_the_operator_named_it() {
        let mut cli = Cli::try_parse_from(["svc", "--log-filter", "info"]).expect("valid");
        cli.telemetry.quiet("goose=error");
        assert_eq!(cli.telemetry.log_filter, "info,goose=error");
        let mut cli =
            Cli::try_parse_from(["svc", "--log-filter", "info,goose=debug"]).expect("valid");
        cli.telemetry.quiet("goose=error");
        assert_eq!(cli.telemetry.log_filter, "info,goose=debug");
    }

    #[test]
    fn metrics_can_be_turned_off_and_unknown_exporters_are_refused() {
        let cli = Cli::try_parse_from(["svc", "--otel-metrics-exporter", "none"])
            .expect("none is an exporter");
        assert_eq!(cli.telemetry.otel_metrics_exporter, MetricsExporter::None);
        let error = Cli::try_parse_from(["svc", "--otel-metrics-exporter", "otlp"])
            .expect_err("an exporter this crate does not have is refused");
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn sampler_names_and_ratio_are_validated() {
        let cli = Cli::try_parse_from([
            "svc",
            "--otel-traces-sampler",
            "parentbased_traceidratio",
            "--otel-traces-sampler-arg",
            "0.25",
            "--otel-sdk-disabled",
            "TRUE",
        ])
        .expect("valid flags");
        assert_eq!(
            cli.telemetry.otel_traces_sampler,
            SamplerKind::ParentbasedTraceidratio
        );
        assert_eq!(cli.telemetry.otel_traces_sampler_arg, Some(0.25));
        assert!(cli.telemetry.otel_sdk_disabled);

        for bad in [
            ["--otel-traces-sampler-arg", "1.5"],
            ["--otel-traces-sampler-arg", "half"],
            ["--otel-traces-sampler", "sometimes"],
        ] {
            let error = Cli::try_parse_from(["svc", bad[0], bad[1]])
                .expect_err("out-of-range or unknown values are refused");
            assert!(
                matches!(
                    error.kind(),
                    clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
                ),
                "{bad:?}: {error}"
            );
        }
    }
}
