//! The order service's configuration: every flag has an environment variable, and this is the
//! only module that reads the environment (through clap). The resilience flags map onto the
//! resilience crate's config structs here and nowhere else.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use certs::load::{CertificateFile, KeyFile};
use clap::Parser;
use resilience::{
    breaker::{BreakerConfig, HalfOpenRule, SlidingWindow},
    bulkhead::BulkheadConfig,
    deadline::DeadlineConfig,
    limit::LimitConfig,
    retry::RetryConfig,
};
use secrecy::SecretString;
use store::{DatabaseUrl, DatabaseUrlParser};
use telemetry::TelemetryArgs;

use crate::{
    payment::{PaymentPolicy, PaymentTls},
    reconciler::ReconcilerConfig,
};

/// Order service: takes orders whatever payment does, and charges each exactly once.
#[derive(Debug, Clone, Parser)]
#[command(name = "order", version, about, long_about = None)]
pub struct Config {
    /// gRPC listener (OrderService, grpc.health.v1, server reflection).
    #[arg(long, env = "ORDER_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,

    /// HTTP/JSON API listener (/v1/orders, /v1/products).
    #[arg(long, env = "ORDER_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Ops listener: /metrics, /healthz, /readyz and, with a token, /admin.
    #[arg(long, env = "ORDER_OPS_ADDR", default_value = "127.0.0.1:9464")]
    pub ops_addr: SocketAddr,

    // A SQLite file is created if missing; several replicas can share one PostgreSQL database.
    /// Where orders are kept: `sqlite://path/to/order.db` or `postgres://user:password@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://.stormproof/order.db",
        hide_env_values = true,
        value_parser = DatabaseUrlParser
    )]
    pub database_url: DatabaseUrl,

    // Past the wait the writer's queue holds more than it drains in that time, and the order
    // is shed (HTTP 503 with `Retry-After`, gRPC RESOURCE_EXHAUSTED) rather than queued behind
    // it. Off by default: a commit stalled for a moment (a WAL checkpoint, a slow disk) would
    // shed orders that no overload sent. Set it where a sale can outrun the writer.
    /// How long a new order may wait for the store's writer before it is shed (e.g. 50ms).
    #[arg(long, env = "STORE_WRITE_WAIT", value_parser = humantime::parse_duration)]
    pub store_write_wait: Option<Duration>,

    /// Payment's gRPC endpoint. `https://` turns TLS on (and needs --payment-tls-ca).
    #[arg(long, env = "PAYMENT_URL", default_value = "http://127.0.0.1:50052")]
    pub payment_url: String,

    /// The catalogue file [default: the shipped catalogue.json].
    #[arg(long, env = "ORDER_CATALOGUE")]
    pub catalogue: Option<PathBuf>,

    /// Bearer token of the admin API. Without one, /admin answers 404.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretString>,

    /// How long in-flight requests may take to finish after SIGTERM before they are cut.
    #[arg(long, env = "ORDER_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    #[command(flatten)]
    pub payment: PaymentArgs,

    #[command(flatten)]
    pub payment_tls: PaymentTlsArgs,

    #[command(flatten)]
    pub reconciler: ReconcilerArgs,

    #[command(flatten)]
    pub limit: LimitArgs,

    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

/// How order calls payment. Durations read as `250ms`, `1s`, `2m`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Calling payment")]
pub struct PaymentArgs {
    // Half the 300 ms PlaceOrder latency objective, the rest kept for the store and the
    // answer, and the breaker's slow-call duration: a call that needs longer counts as slow
    // anyway. (At 200 ms, three seed-timeline peak sales gave p99s of 204, 204 and 293 ms: too
    // little room.) A retry that cannot finish inside it is not started: the order falls back
    // to PAYMENT_PENDING at once and the reconciler charges it. A caller's shorter deadline wins.
    /// How long a shopper's order waits for payment from its arrival, retries and trials included.
    #[arg(long, env = "PAYMENT_BUDGET", default_value = "150ms", value_parser = humantime::parse_duration)]
    pub payment_budget: Duration,
    /// Time a charge may take, retries included, when nobody waits for it (the reconciler).
    #[arg(long, env = "PAYMENT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub payment_timeout: Duration,
    /// The longest deadline a caller may ask for.
    #[arg(long, env = "PAYMENT_MAX_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub payment_max_timeout: Duration,
    /// Connection attempts to payment give up after this long.
    #[arg(long, env = "PAYMENT_CONNECT_TIMEOUT", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub payment_connect_timeout: Duration,

    /// Attempts per charge, the first included.
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", default_value_t = 3)]
    pub retry_max_attempts: u32,
    /// Backoff before the first retry (full jitter: a random wait up to it, doubling).
    #[arg(long, env = "RETRY_INITIAL_BACKOFF", default_value = "25ms", value_parser = humantime::parse_duration)]
    pub retry_initial_backoff: Duration,
    /// The longest backoff.
    #[arg(long, env = "RETRY_MAX_BACKOFF", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub retry_max_backoff: Duration,
    /// Retries may be at most this share of recent requests…
    #[arg(long, env = "RETRY_BUDGET_RATIO", default_value_t = 0.2)]
    pub retry_budget_ratio: f32,
    /// …plus this many per second.
    #[arg(long, env = "RETRY_BUDGET_MIN_PER_SEC", default_value_t = 10)]
    pub retry_budget_min_per_sec: u32,

    /// The breaker opens only after this many calls in its window (gobreaker's `Requests`).
    #[arg(long, env = "BREAKER_MINIMUM_CALLS", default_value_t = 5)]
    pub breaker_minimum_calls: u32,
    /// …when at least this share of them failed.
    #[arg(long, env = "BREAKER_FAILURE_RATE", default_value_t = 0.5)]
    pub breaker_failure_rate: f64,
    /// The window calls are counted over (gobreaker's `Interval`).
    #[arg(long, env = "BREAKER_WINDOW", default_value = "60s", value_parser = humantime::parse_duration)]
    pub breaker_window: Duration,
    // gobreaker's `Timeout`, 60 s in the seeds. Short, because a trial is cheap: a live
    // order's trial is bounded by --payment-budget, and each trip that a trial reopens
    // multiplies the wait (--breaker-wait-multiplier), so a long outage is probed rarely.
    /// How long the breaker stays open after its first trip before trial calls go through.
    #[arg(long, env = "BREAKER_WAIT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub breaker_wait: Duration,
    /// Each trip that follows a failed trial multiplies the wait by this…
    #[arg(long, env = "BREAKER_WAIT_MULTIPLIER", default_value_t = 1.5)]
    pub breaker_wait_multiplier: f64,
    /// …up to this.
    #[arg(long, env = "BREAKER_MAX_WAIT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub breaker_max_wait: Duration,
    // So that a payment flapping at the period of the wait cannot send every trial into an
    // outage.
    /// Each wait is drawn from [(1 - jitter) x wait, wait]; 0 waits exactly.
    #[arg(long, env = "BREAKER_WAIT_JITTER", default_value_t = 0.5)]
    pub breaker_wait_jitter: f64,
    // gobreaker's `MaxRequests`. Once all have ended they are judged by the thresholds that
    // trip a closed breaker (resilience4j's rule), not by gobreaker's "all must succeed": a
    // payment failing 25 % of calls, which the closed breaker tolerates, would pass five
    // trials in a row only one time in four and be held off while the backlog waits.
    /// Trial calls in half-open, judged together by the closed breaker's thresholds.
    #[arg(long, env = "BREAKER_HALF_OPEN_CALLS", default_value_t = 5)]
    pub breaker_half_open_calls: u32,
    // An abandoned call counts too: a hang cut by the deadline would otherwise never be
    // counted. Payment answers in a few milliseconds when healthy; 150 ms is half the
    // PlaceOrder latency SLO. `0` is gobreaker's behaviour.
    /// A call slower than this (or abandoned later) counts as slow; 0 turns slow calls off.
    #[arg(long, env = "BREAKER_SLOW_CALL", default_value = "150ms", value_parser = humantime::parse_duration)]
    pub breaker_slow_call: Duration,
    /// …and the breaker opens when at least this share of the window's calls were slow.
    #[arg(long, env = "BREAKER_SLOW_CALL_RATE", default_value_t = 0.5)]
    pub breaker_slow_call_rate: f64,

    /// Calls to payment in flight at once; more are refused at once (fallback).
    #[arg(long, env = "BULKHEAD_MAX_CONCURRENT", default_value_t = 64)]
    pub bulkhead_max_concurrent: usize,
    /// How long a call may wait for a free slot.
    #[arg(long, env = "BULKHEAD_MAX_WAIT", default_value = "0ms", value_parser = humantime::parse_duration)]
    pub bulkhead_max_wait: Duration,
}

/// TLS to payment, on when --payment-url is `https://`. The variables are `ORDER_PAYMENT_TLS_*`,
/// not `PAYMENT_TLS_*`, which are payment's own server files: an environment shared by both
/// (a `.env`, a ConfigMap) cannot hand one the other's key. The files are read and checked at
/// start-up: a missing or bad one is a usage error (exit 64) naming the flag and the path.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Calling payment over TLS")]
pub struct PaymentTlsArgs {
    // Needed with an `https://` --payment-url: order trusts no CA by default.
    /// CA certificate(s) (PEM) payment's server certificate must be signed by.
    #[arg(long, env = "ORDER_PAYMENT_TLS_CA", value_name = "PATH", value_parser = certs::load::ca_certificates)]
    pub payment_tls_ca: Option<CertificateFile>,
    /// Order's client certificate (PEM), presented to payment (mutual TLS).
    #[arg(long, env = "ORDER_PAYMENT_TLS_CERT", value_name = "PATH", requires_all = ["payment_tls_key", "payment_tls_ca"], value_parser = certs::load::certificates)]
    pub payment_tls_cert: Option<CertificateFile>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "ORDER_PAYMENT_TLS_KEY", value_name = "PATH", requires = "payment_tls_cert", value_parser = certs::load::private_key)]
    pub payment_tls_key: Option<KeyFile>,
    /// The name payment's certificate must carry [default: the host of --payment-url].
    #[arg(
        long,
        env = "ORDER_PAYMENT_TLS_SERVER_NAME",
        value_name = "NAME",
        requires = "payment_tls_ca"
    )]
    pub payment_tls_server_name: Option<String>,
}

impl PaymentTlsArgs {
    /// The TLS settings for a channel to `payment_url`: `None` for `http://`, and an error
    /// naming the flags when they do not fit the URL or the key is not the certificate's.
    pub fn settings(&self, payment_url: &str) -> Result<Option<PaymentTls>, String> {
        let https = payment_url.starts_with("https://");
        let Some(ca) = self.payment_tls_ca.clone() else {
            return if https {
                Err(format!(
                    "--payment-url (PAYMENT_URL) {payment_url} is https:// but --payment-tls-ca \
                     (ORDER_PAYMENT_TLS_CA) is not set: order trusts no CA by default"
                ))
            } else {
                Ok(None)
            };
        };
        if !https {
            return Err(format!(
                "--payment-tls-ca (ORDER_PAYMENT_TLS_CA) is set but --payment-url (PAYMENT_URL) \
                 {payment_url} is not https://: use https:// to call payment over TLS"
            ));
        }
        let identity = match (&self.payment_tls_cert, &self.payment_tls_key) {
            (Some(cert), Some(key)) => {
                certs::load::check_identity(cert, key).map_err(|error| {
                    format!(
                        "--payment-tls-key (ORDER_PAYMENT_TLS_KEY) {} and --payment-tls-cert \
                         (ORDER_PAYMENT_TLS_CERT) {}: {error}",
                        key.path().display(),
                        cert.path().display()
                    )
                })?;
                Some((cert.clone(), key.clone()))
            }
            _ => None,
        };
        Ok(Some(PaymentTls {
            ca,
            identity,
            server_name: self.payment_tls_server_name.clone(),
        }))
    }
}

/// The reconciler, which charges PAYMENT_PENDING orders once payment answers again.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Reconciler")]
pub struct ReconcilerArgs {
    /// How long it rests between passes; a pass drains everything that is due.
    #[arg(long, env = "RECONCILE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub reconcile_interval: Duration,
    // Not a pace: the adaptive limit sets the pace from payment's answers.
    /// A ceiling on charges started per second.
    #[arg(long, env = "RECONCILE_MAX_RATE", default_value_t = 500)]
    pub reconcile_max_rate: u32,
    // At most --bulkhead-max-concurrent, so live orders always have room.
    /// At most this many charges in flight at once (the adaptive limit's ceiling).
    #[arg(long, env = "RECONCILE_MAX_CONCURRENCY", default_value_t = 16)]
    pub reconcile_max_concurrency: usize,
    /// A PENDING order older than this was left by a request that died; settle it.
    #[arg(long, env = "RECONCILE_STALE_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub reconcile_stale_after: Duration,
    /// The longest wait between two attempts at one order.
    #[arg(long, env = "RECONCILE_MAX_BACKOFF", default_value = "30s", value_parser = humantime::parse_duration)]
    pub reconcile_max_backoff: Duration,
}

/// The adaptive concurrency limit in front of the HTTP and gRPC APIs (one limit for both):
/// requests beyond it are shed at once with 503 + `Retry-After` (gRPC: RESOURCE_EXHAUSTED)
/// instead of queueing. AIMD: the limit grows by one while responses are fast and shrinks by
/// the backoff ratio when they are slow.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Load shedding")]
pub struct LimitArgs {
    /// The limit at start.
    #[arg(long, env = "LIMIT_INITIAL", default_value_t = 100)]
    pub limit_initial: usize,
    /// The limit never goes below this…
    #[arg(long, env = "LIMIT_MIN", default_value_t = 10)]
    pub limit_min: usize,
    /// …nor above this.
    #[arg(long, env = "LIMIT_MAX", default_value_t = 1000)]
    pub limit_max: usize,
    // Below the 300 ms PlaceOrder SLO, so that the limit holds admitted requests inside it: it
    // reacts a round trip late, so answers overshoot the threshold before a cut takes hold.
    /// A response slower than this shrinks the limit.
    #[arg(long, env = "LIMIT_LATENCY_THRESHOLD", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub limit_latency_threshold: Duration,
    /// What shed requests are told to wait before retrying.
    #[arg(long, env = "LIMIT_RETRY_AFTER", default_value = "1s", value_parser = humantime::parse_duration)]
    pub limit_retry_after: Duration,
}

impl LimitArgs {
    /// The limiter's config (checked by the layer's `try_new`).
    pub fn config(&self) -> LimitConfig {
        LimitConfig::default()
            .with_initial_limit(self.limit_initial)
            .with_bounds(self.limit_min, self.limit_max)
            .with_latency_threshold(self.limit_latency_threshold)
            .with_retry_after(self.limit_retry_after)
    }
}

impl PaymentArgs {
    /// The resilience layers' configs (checked by the layers' `try_new`).
    pub fn policy(&self) -> PaymentPolicy {
        PaymentPolicy {
            deadline: DeadlineConfig::default()
                .with_default_timeout(self.payment_timeout)
                .with_max_timeout(self.payment_max_timeout),
            retry: RetryConfig::default()
                .with_max_attempts(self.retry_max_attempts)
                .with_backoff(self.retry_initial_backoff, 2.0, self.retry_max_backoff)
                .with_budget(
                    self.retry_budget_ratio,
                    self.retry_budget_min_per_sec,
                    Duration::from_secs(10),
                ),
            breaker: BreakerConfig::gobreaker_seed()
                .with_minimum_calls(self.breaker_minimum_calls)
                .with_failure_rate_threshold(self.breaker_failure_rate)
                .with_window(SlidingWindow::Time(self.breaker_window))
                .with_wait_duration(self.breaker_wait)
                .with_growing_wait(self.breaker_wait_multiplier, self.breaker_max_wait)
                .with_wait_jitter(self.breaker_wait_jitter)
                .with_half_open_calls(self.breaker_half_open_calls)
                .with_half_open_rule(HalfOpenRule::UnderThresholds)
                .with_slow_call_duration(
                    Some(self.breaker_slow_call).filter(|slow| !slow.is_zero()),
                )
                .with_slow_call_rate_threshold(self.breaker_slow_call_rate),
            bulkhead: BulkheadConfig::default()
                .with_max_concurrent(self.bulkhead_max_concurrent)
                .with_max_wait(self.bulkhead_max_wait),
        }
    }
}

impl ReconcilerArgs {
    /// The reconciler's settings: a charge slower than the breaker's slow-call duration (1 s
    /// when slow calls are not counted) shrinks its concurrency. Refuses a concurrency the
    /// bulkhead could not hold beside live orders.
    pub fn config(&self, payment: &PaymentArgs) -> Result<ReconcilerConfig, String> {
        if self.reconcile_max_concurrency == 0
            || self.reconcile_max_concurrency > payment.bulkhead_max_concurrent
        {
            return Err(format!(
                "--reconcile-max-concurrency (RECONCILE_MAX_CONCURRENCY) {} must be between 1 \
                 and --bulkhead-max-concurrent ({})",
                self.reconcile_max_concurrency, payment.bulkhead_max_concurrent
            ));
        }
        let latency_threshold = Some(payment.breaker_slow_call)
            .filter(|slow| !slow.is_zero())
            .unwrap_or(Duration::from_secs(1));
        Ok(ReconcilerConfig {
            interval: self.reconcile_interval,
            max_rate: self.reconcile_max_rate.max(1),
            max_concurrency: self.reconcile_max_concurrency,
            latency_threshold,
            stale_after: self.reconcile_stale_after,
            max_backoff: self.reconcile_max_backoff,
        })
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
        server::flags_are_documented(&command, &docs).unwrap_or_else(|problem| panic!("{problem}"));
    }

    #[test]
    fn defaults_are_the_documented_ports_and_the_seeds_breaker() {
        let config = Config::try_parse_from(["order"]).expect("defaults are valid");
        assert_eq!(
            (
                config.grpc_addr.port(),
                config.http_addr.port(),
                config.ops_addr.port()
            ),
            (50051, 8080, 9464)
        );
        let breaker = config.payment.policy().breaker;
        assert_eq!(
            (
                breaker.minimum_calls,
                breaker.failure_rate_threshold,
                breaker.half_open_calls
            ),
            (5, 0.5, 5)
        );
        assert!(breaker.validate().is_ok());
        assert!(config.payment.policy().retry.validate().is_ok());
    }
}
