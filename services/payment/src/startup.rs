//! Builds the service and runs it until a signal stops it.
//!
//! [`Application::build`] checks the settings, opens the ledger and binds both listeners, so
//! the caller (main, or a test on port 0) learns the real addresses before anything is served;
//! [`Application::run_until_stopped`] serves until its shutdown future resolves, then stops
//! accepting, lets in-flight calls finish within the grace period, and closes the ledger.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use contracts::payment::v1::{FILE_DESCRIPTOR_SET, payment_service_server::PaymentServiceServer};
use metrics_exporter_prometheus::PrometheusHandle;
use server::{ServeError, Service, Skeleton, SkeletonConfig, SkeletonError};
use telemetry::{ServiceInfo, TelemetryArgs};

use crate::{
    admin,
    config::Config,
    faults::Faults,
    grpc::PaymentApi,
    ledger::{Ledger, OpenError},
    metrics,
};

/// Why the service could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The TLS files were refused.
    #[error("invalid TLS settings: {0}")]
    Tls(String),
    /// The ledger could not be opened.
    #[error(transparent)]
    Ledger(#[from] OpenError),
    /// A listener, TLS or reflection: what every service sets up around its API.
    #[error(transparent)]
    Skeleton(#[from] SkeletonError),
    /// A server stopped by itself, or failed while draining.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The payment service, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    skeleton: Skeleton,
    ledger: Ledger,
    faults: Arc<Faults>,
    grpc_addr: SocketAddr,
    ops_addr: SocketAddr,
    tls: &'static str,
    admin: bool,
    grace: Duration,
}

impl Application {
    /// The bound gRPC address (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound ops address.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// The fault settings, shared with the admin API (tests change them directly).
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    /// The ledger.
    pub fn ledger(&self) -> Ledger {
        self.ledger.clone()
    }
}

impl Service for Application {
    type Config = Config;
    type Error = StartupError;

    const INFO: ServiceInfo = ServiceInfo {
        name: "payment",
        version: env!("CARGO_PKG_VERSION"),
    };

    fn telemetry(config: &Config) -> &TelemetryArgs {
        &config.telemetry
    }

    fn starting(config: &Config) {
        tracing::info!(
            version = Self::INFO.version,
            database = %config.database_url,
            admin_api = config.admin_token.is_some(),
            faults = ?config.faults.settings(),
            otel_sdk_disabled = config.telemetry.otel_sdk_disabled,
            otlp_endpoint = %config.telemetry.otel_exporter_otlp_endpoint,
            "payment.starting"
        );
    }

    /// Checks the TLS settings, opens the ledger and binds the gRPC and ops
    /// listeners.
    async fn build(config: Config, prometheus: PrometheusHandle) -> Result<Self, StartupError> {
        metrics::describe();
        let faults = Arc::new(Faults::new(config.faults.settings()));
        let tls = config.tls.server_tls().map_err(StartupError::Tls)?;
        let ledger = Ledger::connect(&config.database_url).await?;
        let api = PaymentApi::new(ledger.clone(), faults.clone());
        let mut skeleton = Skeleton::bind::<PaymentServiceServer<PaymentApi>>(SkeletonConfig {
            grpc_addr: config.grpc_addr,
            ops_addr: config.ops_addr,
            tls,
            descriptors: FILE_DESCRIPTOR_SET,
            prometheus,
        })
        .await?
        .add_grpc(PaymentServiceServer::new(api));
        if let Some(token) = config.admin_token.clone() {
            skeleton = skeleton.merge_ops(admin::router(faults.clone(), token));
        }
        Ok(Self {
            grpc_addr: skeleton.grpc_addr(),
            ops_addr: skeleton.ops_addr(),
            skeleton,
            ledger,
            faults,
            tls: config.tls.mode().as_str(),
            admin: config.admin_token.is_some(),
            grace: config.shutdown_grace,
        })
    }

    /// Serves until `shutdown` resolves or a server fails, then drains and closes the ledger.
    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let (grpc_addr, ops_addr, tls, admin) =
            (self.grpc_addr, self.ops_addr, self.tls, self.admin);
        let served = self
            .skeleton
            .run_until(shutdown, self.grace, || {
                tracing::info!(%grpc_addr, %ops_addr, tls, admin, "payment.listening");
            })
            .await;
        self.ledger.close().await;
        Ok(served?)
    }
}
