//! Binds the listeners, serves gRPC, HTTP and ops, runs the reconciler, and drains on
//! shutdown.
//!
//! [`Application::build`] opens the store, connects (lazily) to payment and binds every
//! listener, so the caller (main, or a test on port 0) learns the real addresses before
//! anything is served; [`Application::run_until_stopped`] serves until its shutdown future
//! resolves, then leaves rotation, stops accepting, lets in-flight requests finish within the
//! grace period, stops the reconciler and closes the store.

use std::{future::Future, net::SocketAddr};

use contracts::order::v1::order_service_server::OrderServiceServer;
use metrics_exporter_prometheus::PrometheusHandle;
use resilience::limit::{Aimd, LimitLayer};
use telemetry::{
    grpc::GrpcServerLayer,
    http::HttpServerLayer,
    ops::{Readiness, ServeError, Servers},
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tower::Layer as _;

use crate::{
    admin,
    app::App,
    catalogue::{Catalogue, CatalogueError},
    config::Config,
    grpc::OrderApi,
    http, metrics,
    payment::{self, PaymentClient, PaymentTls},
    reconciler::{self, ReconcilerConfig},
    store::{OpenError, Store},
};

/// Why the service could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The catalogue file was refused.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] OpenError),
    /// The payment URL, its TLS files, a resilience or a load-shedding setting is invalid.
    #[error("invalid settings: {0}")]
    Settings(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The reflection service could not be built.
    #[error("cannot build gRPC reflection")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A server stopped by itself, or failed while draining.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The order service, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    grpc: TcpListener,
    http: TcpListener,
    ops: TcpListener,
    app: App,
    reconciler: ReconcilerConfig,
    reconciler_limit: Aimd,
    config: Config,
    payment_tls: &'static str,
    prometheus: PrometheusHandle,
    readiness: Readiness,
}

impl Application {
    /// Opens the store, prepares the payment client (it connects on first use) and binds the
    /// gRPC, HTTP and ops listeners.
    pub async fn build(config: Config, prometheus: PrometheusHandle) -> Result<Self, StartupError> {
        metrics::describe();
        let catalogue = match &config.catalogue {
            Some(path) => Catalogue::load(path)?,
            None => Catalogue::shipped(),
        };
        let reconciler = config
            .reconciler
            .config(&config.payment)
            .map_err(StartupError::Settings)?;
        let reconciler_limit = Aimd::try_new(reconciler.limit())
            .map_err(|error| StartupError::Settings(format!("reconciler: {error}")))?;
        let tls = config
            .payment_tls
            .settings(&config.payment_url)
            .map_err(StartupError::Settings)?;
        let store = Store::connect(&config.database_url)
            .await?
            .with_write_wait(config.store_write_wait);
        let channel = payment::channel(
            &config.payment_url,
            tls.as_ref(),
            config.payment.payment_connect_timeout,
        )
        .map_err(StartupError::Settings)?;
        let payment = PaymentClient::new(channel, &config.payment.policy())
            .map_err(|error| StartupError::Settings(error.to_string()))?;
        let app = App::new(store, catalogue, payment, config.payment.payment_budget);
        Ok(Self {
            grpc: bind(config.grpc_addr).await?,
            http: bind(config.http_addr).await?,
            ops: bind(config.ops_addr).await?,
            app,
            reconciler,
            reconciler_limit,
            config,
            payment_tls: tls.as_ref().map_or("off", PaymentTls::mode),
            prometheus,
            readiness: Readiness::new(),
        })
    }

    /// The bound gRPC address (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().unwrap_or(self.config.grpc_addr)
    }

    /// The bound HTTP API address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or(self.config.http_addr)
    }

    /// The bound ops address.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops.local_addr().unwrap_or(self.config.ops_addr)
    }

    /// The application (tests reach the store and breaker through it).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` resolves or a server fails, then drains.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let (grpc_addr, http_addr, ops_addr) =
            (self.grpc_addr(), self.http_addr(), self.ops_addr());
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<OrderServiceServer<OrderApi>>()
            .await;
        // One limit for both APIs: it bounds the work in this process, whichever door it came
        // in by. Health and reflection stay outside it, so probes are never shed.
        let limit = LimitLayer::try_with_observer(self.config.limit.config(), metrics::Limit)
            .map_err(|error| StartupError::Settings(format!("load shedding: {error}")))?;
        resilience::limit::LimitObserver::on_limit(&metrics::Limit, limit.limit());
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(contracts::order::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        let mut servers = Servers::new();
        let grpc = tonic::transport::Server::builder()
            .layer(GrpcServerLayer::new())
            .add_service(health)
            .add_service(reflection)
            .add_service(limit.layer(OrderServiceServer::new(OrderApi::new(self.app.clone()))))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.grpc), servers.stopping());
        servers.spawn("grpc", grpc);

        // http::serve, not axum::serve: it bounds header size, header time and connections.
        let api = http::serve(
            self.http,
            http::router(self.app.clone(), limit),
            servers.stopping(),
        );
        servers.spawn("http", api);

        let mut ops = telemetry::ops::router(self.prometheus.clone(), self.readiness.clone());
        if let Some(admin_token) = self.config.admin_token.clone() {
            ops = ops.merge(admin::router(
                self.app.payment().breaker().clone(),
                admin_token,
            ));
        }
        let ops = axum::serve(self.ops, ops.layer(HttpServerLayer::new()))
            .with_graceful_shutdown(servers.stopping());
        servers.spawn("ops", async move { ops.await });

        let reconciler = reconciler::run(
            self.app.clone(),
            self.reconciler,
            self.reconciler_limit,
            servers.token(),
        );
        servers.spawn("reconciler", async move {
            reconciler.await;
            Ok::<(), std::convert::Infallible>(())
        });
        let backlog = reconciler::watch_backlog(self.app.clone(), servers.token());
        servers.spawn("backlog", async move {
            backlog.await;
            Ok::<(), std::convert::Infallible>(())
        });

        self.readiness.set(true);
        tracing::info!(
            %grpc_addr,
            %http_addr,
            %ops_addr,
            payment_tls = self.payment_tls,
            admin = self.config.admin_token.is_some(),
            "order.listening"
        );

        let readiness = self.readiness.clone();
        let served = servers
            .run_until(shutdown, self.config.shutdown_grace, async move {
                readiness.set(false);
                health_reporter
                    .set_not_serving::<OrderServiceServer<OrderApi>>()
                    .await;
            })
            .await;
        self.app.store().close().await;
        Ok(served?)
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}
