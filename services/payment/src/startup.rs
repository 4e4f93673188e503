//! Binds the listeners, serves gRPC and ops, and drains on shutdown.
//!
//! [`Application::build`] opens the ledger and binds both listeners, so the caller (main, or a
//! test on port 0) learns the real addresses before anything is served;
//! [`Application::run_until_stopped`] serves until its shutdown future resolves, then stops
//! accepting, lets in-flight calls finish within the grace period, and closes the ledger.

use std::{future::Future, net::SocketAddr, sync::Arc};

use contracts::payment::v1::payment_service_server::PaymentServiceServer;
use metrics_exporter_prometheus::PrometheusHandle;
use telemetry::{
    grpc::GrpcServerLayer,
    http::HttpServerLayer,
    ops::{Readiness, ServeError, Servers, error_chain},
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Server, ServerTlsConfig};

use crate::{
    admin,
    config::Config,
    faults::{FaultSettings, Faults},
    grpc::PaymentApi,
    ledger::{Ledger, OpenError},
    metrics,
};

/// Why the service could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The ledger could not be opened.
    #[error(transparent)]
    Ledger(#[from] OpenError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS files do not make a usable server configuration (a key that is not the
    /// certificate's, say).
    #[error("invalid TLS settings: {0}")]
    Tls(String),
    /// The reflection service could not be built from the descriptor sets.
    #[error("cannot build gRPC reflection")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A server stopped by itself, or failed while draining.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The payment service, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    grpc: TcpListener,
    ops: TcpListener,
    ledger: Ledger,
    faults: Arc<Faults>,
    config: Config,
    tls: Option<ServerTlsConfig>,
    prometheus: PrometheusHandle,
    readiness: Readiness,
}

impl Application {
    /// Checks the TLS settings, opens the ledger and binds the gRPC and ops listeners.
    ///
    /// `faults` are the settings at start (the flags, already validated).
    pub async fn build(
        config: Config,
        faults: FaultSettings,
        prometheus: PrometheusHandle,
    ) -> Result<Self, StartupError> {
        metrics::describe();
        let tls = config.tls.server_tls().map_err(StartupError::Tls)?;
        if let Some(tls) = &tls {
            // rustls builds its config here: a problem shows now, before anything is bound.
            Server::builder()
                .tls_config(tls.clone())
                .map_err(|error| StartupError::Tls(error_chain(&error)))?;
        }
        let ledger = Ledger::connect(&config.database_url).await?;
        let grpc = bind(config.grpc_addr).await?;
        let ops = bind(config.ops_addr).await?;
        Ok(Self {
            grpc,
            ops,
            ledger,
            faults: Arc::new(Faults::new(faults)),
            config,
            tls,
            prometheus,
            readiness: Readiness::new(),
        })
    }

    /// The bound gRPC address (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().unwrap_or(self.config.grpc_addr)
    }

    /// The bound ops address.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops.local_addr().unwrap_or(self.config.ops_addr)
    }

    /// The fault settings, shared with the admin API (tests change them directly).
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    /// The ledger.
    pub fn ledger(&self) -> Ledger {
        self.ledger.clone()
    }

    /// Serves until `shutdown` resolves or a server fails, then drains.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let (grpc_addr, ops_addr) = (self.grpc_addr(), self.ops_addr());
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<PaymentServiceServer<PaymentApi>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(contracts::payment::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let api = PaymentApi::new(self.ledger.clone(), self.faults.clone());

        let mut servers = Servers::new();
        let mut grpc = Server::builder();
        if let Some(tls) = self.tls.clone() {
            grpc = grpc
                .tls_config(tls)
                .map_err(|error| StartupError::Tls(error_chain(&error)))?;
        }
        let grpc = grpc
            .layer(GrpcServerLayer::new())
            .add_service(health)
            .add_service(reflection)
            .add_service(PaymentServiceServer::new(api))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.grpc), servers.stopping());
        servers.spawn("grpc", grpc);

        let mut ops = telemetry::ops::router(self.prometheus.clone(), self.readiness.clone());
        if let Some(token) = self.config.admin_token.clone() {
            ops = ops.merge(admin::router(self.faults.clone(), token));
        }
        let ops = axum::serve(self.ops, ops.layer(HttpServerLayer::new()))
            .with_graceful_shutdown(servers.stopping());
        servers.spawn("ops", async move { ops.await });

        self.readiness.set(true);
        tracing::info!(
            %grpc_addr,
            %ops_addr,
            tls = self.config.tls.mode().as_str(),
            admin = self.config.admin_token.is_some(),
            "payment.listening"
        );

        let readiness = self.readiness.clone();
        let served = servers
            .run_until(shutdown, self.config.shutdown_grace, async move {
                readiness.set(false);
                health_reporter
                    .set_not_serving::<PaymentServiceServer<PaymentApi>>()
                    .await;
            })
            .await;
        self.ledger.close().await;
        Ok(served?)
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}
