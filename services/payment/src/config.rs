//! The payment service's configuration: every flag has an environment variable, and this is
//! the only module that reads the environment (through clap).

use std::{net::SocketAddr, time::Duration};

use certs::load::{CertificateFile, KeyFile};
use clap::Parser;
use secrecy::SecretString;
use store::{DatabaseUrl, DatabaseUrlParser};
use telemetry::TelemetryArgs;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::faults::{FaultSettings, Preset};

/// Payment service: charges orders exactly once, and misbehaves on demand.
#[derive(Debug, Clone, Parser)]
#[command(name = "payment", version, about, long_about = None)]
pub struct Config {
    /// gRPC listener (PaymentService, grpc.health.v1, server reflection).
    #[arg(long, env = "PAYMENT_GRPC_ADDR", default_value = "127.0.0.1:50052")]
    pub grpc_addr: SocketAddr,

    /// Ops listener: /metrics, /healthz, /readyz and, with a token, /admin.
    #[arg(long, env = "PAYMENT_OPS_ADDR", default_value = "127.0.0.1:9465")]
    pub ops_addr: SocketAddr,

    // A SQLite file is created with its folder if missing (`sqlite:///abs/path` for an
    // absolute path); several replicas can share one PostgreSQL database.
    /// Where the ledger is kept: `sqlite://path/to/payment.db` or `postgres://user:pw@host/db`.
    #[arg(
        long,
        env = "PAYMENT_DATABASE_URL",
        default_value = "sqlite://.stormproof/payment.db",
        hide_env_values = true,
        value_parser = DatabaseUrlParser
    )]
    pub database_url: DatabaseUrl,

    /// Bearer token of the admin API. Without one, /admin answers 404.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretString>,

    /// How long in-flight calls may take to finish after SIGTERM before they are cut.
    #[arg(long, env = "PAYMENT_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub faults: FaultArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// TLS on the gRPC listener. Off by default (plaintext, for the local stack); with a
/// certificate and key it serves TLS, and with a client CA as well it requires every client to
/// present a certificate signed by that CA (mutual TLS). The files are read and checked at
/// start-up: a missing or bad one is a usage error (exit 64) naming the flag and the path.
/// The ops listener stays plaintext (probes, Prometheus).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "TLS (gRPC listener)")]
pub struct TlsArgs {
    /// Server certificate (PEM; the leaf first, then any intermediates).
    #[arg(long, env = "PAYMENT_TLS_CERT", value_name = "PATH", requires = "tls_key", value_parser = certs::load::certificates)]
    pub tls_cert: Option<CertificateFile>,
    /// The server certificate's private key (PEM).
    #[arg(long, env = "PAYMENT_TLS_KEY", value_name = "PATH", requires = "tls_cert", value_parser = certs::load::private_key)]
    pub tls_key: Option<KeyFile>,
    // A client without such a certificate is refused during the handshake (mutual TLS).
    /// CA certificate(s) (PEM) every client certificate must be signed by.
    #[arg(long, env = "PAYMENT_TLS_CLIENT_CA", value_name = "PATH", requires = "tls_cert", value_parser = certs::load::ca_certificates)]
    pub tls_client_ca: Option<CertificateFile>,
}

/// What the gRPC listener speaks, for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext HTTP/2.
    Off,
    /// TLS; clients are not asked for certificates.
    Tls,
    /// TLS, and every client must present a certificate signed by the client CA.
    Mutual,
}

impl TlsMode {
    /// The log value.
    pub const fn as_str(self) -> &'static str {
        match self {
            TlsMode::Off => "off",
            TlsMode::Tls => "tls",
            TlsMode::Mutual => "mtls",
        }
    }
}

impl TlsArgs {
    /// What the listener will speak.
    pub fn mode(&self) -> TlsMode {
        match (&self.tls_cert, &self.tls_client_ca) {
            (None, _) => TlsMode::Off,
            (Some(_), None) => TlsMode::Tls,
            (Some(_), Some(_)) => TlsMode::Mutual,
        }
    }

    /// tonic's server TLS settings, or `None` for plaintext. Checks that the key belongs to
    /// the certificate; the message names both flags and paths.
    pub fn server_tls(&self) -> Result<Option<ServerTlsConfig>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        certs::load::check_identity(cert, key).map_err(|error| {
            format!(
                "--tls-key (PAYMENT_TLS_KEY) {} and --tls-cert (PAYMENT_TLS_CERT) {}: {error}",
                key.path().display(),
                cert.path().display()
            )
        })?;
        let mut tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert.pem(), key.pem()))
            // A client that opens a connection and never finishes the handshake holds a
            // socket, not a worker: tonic shakes hands in its own tasks. Still, bound it.
            .timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.tls_client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(ca.pem()));
        }
        Ok(Some(tls))
    }
}

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The faults in force at start; `PUT /admin/faults` changes them live.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Faults at start")]
pub struct FaultArgs {
    // seed: 200 ms + 25 % failures; brownout: 2 s latency. The flags below override single
    // knobs of it.
    /// Start from a named set of faults: none, seed, brownout or outage.
    #[arg(long = "faults", env = "PAYMENT_FAULTS", value_enum, default_value_t = Preset::None)]
    pub preset: Preset,
    // The ranges are checked here, as `PUT /admin/faults` checks them, so a bad flag ends
    // with a usage error naming it and the settings below cannot be out of range.
    /// Added to every call, in milliseconds.
    #[arg(long, env = "PAYMENT_LATENCY_MS", value_parser = knob(crate::faults::in_millis_range, crate::faults::MILLIS_RANGE))]
    pub latency_ms: Option<u64>,
    /// Up to this many milliseconds more, uniformly at random.
    #[arg(long, env = "PAYMENT_JITTER_MS", value_parser = knob(crate::faults::in_millis_range, crate::faults::MILLIS_RANGE))]
    pub jitter_ms: Option<u64>,
    /// Share of calls answered UNAVAILABLE (0..=1).
    #[arg(long, env = "PAYMENT_FAILURE_RATE", value_parser = knob(crate::faults::in_rate_range, crate::faults::RATE_RANGE))]
    pub failure_rate: Option<f64>,
    /// Share of calls never answered (0..=1); the caller's deadline ends them.
    #[arg(long, env = "PAYMENT_HANG_RATE", value_parser = knob(crate::faults::in_rate_range, crate::faults::RATE_RANGE))]
    pub hang_rate: Option<f64>,
    /// Share of charges declined for a business reason (0..=1): an answer, not an error.
    #[arg(long, env = "PAYMENT_DECLINE_RATE", value_parser = knob(crate::faults::in_rate_range, crate::faults::RATE_RANGE))]
    pub decline_rate: Option<f64>,
    /// Answer every call UNAVAILABLE.
    #[arg(long, env = "PAYMENT_OUTAGE", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub outage: Option<bool>,
}

impl FaultArgs {
    /// The preset, with single knobs overridden by their flags.
    pub fn settings(&self) -> FaultSettings {
        let mut settings = self.preset.settings();
        settings.latency_ms = self.latency_ms.unwrap_or(settings.latency_ms);
        settings.jitter_ms = self.jitter_ms.unwrap_or(settings.jitter_ms);
        settings.failure_rate = self.failure_rate.unwrap_or(settings.failure_rate);
        settings.hang_rate = self.hang_rate.unwrap_or(settings.hang_rate);
        settings.decline_rate = self.decline_rate.unwrap_or(settings.decline_rate);
        settings.outage = self.outage.unwrap_or(settings.outage);
        settings
    }
}

/// A fault flag's parser: the value, if it parses and `check` keeps it, else the admin API's
/// words for the range (`refusal`).
fn knob<T: std::str::FromStr + 'static>(
    check: fn(T) -> Option<T>,
    refusal: &'static str,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |value| {
        value
            .parse()
            .ok()
            .and_then(check)
            .ok_or_else(|| format!("`{value}` {refusal}"))
    }
}

/// Durations as `500ms`, `10s`, `2m`, or a bare number of seconds.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let (number, unit) = value
        .find(|c: char| !c.is_ascii_digit())
        .map_or((value, "s"), |at| value.split_at(at));
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a duration such as 500ms, 10s or 2m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("`{value}`: the unit must be ms, s or m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_is_one_line_and_in_docs_configuration() {
        let docs =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let command = <Config as clap::CommandFactory>::command();
        ::server::flags_are_documented(&command, &docs)
            .unwrap_or_else(|problem| panic!("{problem}"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn defaults_are_the_documented_ports() {
        let config = Config::try_parse_from(["payment"]).expect("defaults are valid");
        assert_eq!(config.grpc_addr.port(), 50052);
        assert_eq!(config.ops_addr.port(), 9465);
        assert!(config.admin_token.is_none());
        assert_eq!(
            config.database_url,
            DatabaseUrl::Sqlite(".stormproof/payment.db".into())
        );
    }

    #[test]
    fn a_bad_database_url_is_a_usage_error() {
        let error = Config::try_parse_from(["payment", "--database-url", "mysql://pay:pw@db/x"])
            .expect_err("not a supported database");
        assert!(error.use_stderr(), "exits 64 through parse_args");
        let message = error.to_string();
        assert!(message.contains("sqlite://"), "{message}");
        assert!(!message.contains("pw"), "{message}");
    }

    #[test]
    fn fault_flags_override_the_preset_and_are_checked() {
        let config =
            Config::try_parse_from(["payment", "--faults", "seed", "--failure-rate", "0.5"])
                .expect("valid flags");
        let settings = config.faults.settings();
        assert_eq!((settings.latency_ms, settings.failure_rate), (200, 0.5));

        let error = Config::try_parse_from(["payment", "--hang-rate", "1.5"])
            .expect_err("out of range")
            .to_string();
        assert!(
            error.contains("--hang-rate") && error.contains("0..=1"),
            "{error}"
        );
        let error = Config::try_parse_from(["payment", "--latency-ms", "600001"])
            .expect_err("out of range")
            .to_string();
        assert!(error.contains("--latency-ms"), "{error}");
    }
}
