//! Builds the service and runs it until a signal stops it.
//!
//! [`Application`]'s `build` checks every setting (catalogue, reconciler, payment URL and
//! TLS, resilience policy, load shedding), opens the store, prepares the payment client (it
//! connects on first use), then binds every listener and constructs every server, so a bad
//! setting fails before anything listens and the caller (main, or a test on port 0) learns the
//! real addresses before anything is served. `run_until_stopped` only serves until its
//! shutdown future resolves, then leaves rotation, stops accepting, lets in-flight requests
//! finish within the grace period, stops the reconciler and closes the store.

use std::{convert::Infallible, future::Future, net::SocketAddr, time::Duration};

use contracts::order::v1::{FILE_DESCRIPTOR_SET, order_service_server::OrderServiceServer};
use metrics_exporter_prometheus::PrometheusHandle;
use resilience::{
    ConfigError,
    breaker::BreakerHandle,
    limit::{Aimd, LimitLayer, LimitObserver as _},
};
use server::{ServeError, Service, Skeleton, SkeletonConfig, SkeletonError, skeleton::bind};
use telemetry::{ServiceInfo, TelemetryArgs};
use tower::Layer as _;

use crate::{
    admin,
    app::App,
    catalogue::{Catalogue, CatalogueError},
    config::Config,
    grpc::OrderApi,
    http, metrics,
    payment::{self, PaymentClient, PaymentTls},
    reconciler::{self, Reconciler},
    store::{OpenError, Store},
};

/// Why the service could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The catalogue file was refused.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The reconciler's concurrency does not fit the bulkhead.
    #[error("invalid reconciler settings: {0}")]
    Reconciler(String),
    /// The reconciler's adaptive limit cannot be built from its settings.
    #[error("invalid reconciler limit: {0}")]
    ReconcilerLimit(#[source] ConfigError),
    /// The payment URL or the TLS files for it were refused.
    #[error("invalid payment connection settings: {0}")]
    PaymentConnection(String),
    /// The deadline, retry, breaker or bulkhead settings cannot work together.
    #[error("invalid payment resilience settings")]
    PaymentPolicy(#[source] ConfigError),
    /// The load-shedding limit cannot be built from its settings.
    #[error("invalid load-shedding settings")]
    LoadShedding(#[source] ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] OpenError),
    /// A listener, or reflection: what every service sets up around its API.
    #[error(transparent)]
    Skeleton(#[from] SkeletonError),
    /// A server stopped by itself, or failed while draining.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The order service, bound and ready to run.
#[derive(Debug)]
pub struct Application {
    skeleton: Skeleton,
    app: App,
    store: Store,
    breaker: BreakerHandle,
    addrs: [SocketAddr; 3],
    payment_tls: &'static str,
    admin: bool,
    grace: Duration,
}

impl Application {
    /// The bound gRPC address (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The bound HTTP API address.
    pub fn http_addr(&self) -> SocketAddr {
        self.addrs[1]
    }

    /// The bound ops address.
    pub fn ops_addr(&self) -> SocketAddr {
        self.addrs[2]
    }

    /// The application both edges serve.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The store (tests count and read what was stored).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The breaker on the calls to payment (tests read and force its state).
    pub fn breaker(&self) -> &BreakerHandle {
        &self.breaker
    }
}

impl Service for Application {
    type Config = Config;
    type Error = StartupError;

    const INFO: ServiceInfo = ServiceInfo {
        name: "order",
        version: env!("CARGO_PKG_VERSION"),
    };

    fn telemetry(config: &Config) -> &TelemetryArgs {
        &config.telemetry
    }

    fn starting(config: &Config) {
        tracing::info!(
            version = Self::INFO.version,
            payment_url = %config.payment_url,
            admin_api = config.admin_token.is_some(),
            otel_sdk_disabled = config.telemetry.otel_sdk_disabled,
            "order.starting"
        );
    }

    async fn build(config: Config, prometheus: PrometheusHandle) -> Result<Self, StartupError> {
        metrics::describe();
        // Every setting first: nothing is opened or bound until all of them are good.
        let catalogue = match &config.catalogue {
            Some(path) => Catalogue::load(path)?,
            None => Catalogue::shipped(),
        };
        let reconciler = config
            .reconciler
            .config(&config.payment)
            .map_err(StartupError::Reconciler)?;
        let reconciler_limit =
            Aimd::try_new(reconciler.limit()).map_err(StartupError::ReconcilerLimit)?;
        let tls = config
            .payment_tls
            .settings(&config.payment_url)
            .map_err(StartupError::PaymentConnection)?;
        let channel = payment::channel(
            &config.payment_url,
            tls.as_ref(),
            config.payment.payment_connect_timeout,
        )
        .map_err(StartupError::PaymentConnection)?;
        let payment = PaymentClient::new(channel, &config.payment.policy())
            .map_err(StartupError::PaymentPolicy)?;
        // One limit for both APIs: it bounds the work in this process, whichever door it came
        // in by. Health and reflection stay outside it, so probes are never shed.
        let limit = LimitLayer::try_with_observer(config.limit.config(), metrics::Limit)
            .map_err(StartupError::LoadShedding)?;
        metrics::Limit.on_limit(limit.limit());

        let store = Store::connect(&config.database_url)
            .await?
            .with_write_wait(config.store_write_wait);
        let breaker = payment.breaker().clone();
        let reconciler =
            Reconciler::new(store.clone(), payment.clone(), reconciler, reconciler_limit);
        let app = App::new(
            store.clone(),
            catalogue,
            payment,
            config.payment.payment_budget,
        );
        let (http_listener, http_addr) = bind(config.http_addr).await?;
        let mut skeleton = Skeleton::bind::<OrderServiceServer<OrderApi>>(SkeletonConfig {
            grpc_addr: config.grpc_addr,
            ops_addr: config.ops_addr,
            tls: None,
            descriptors: FILE_DESCRIPTOR_SET,
            prometheus,
        })
        .await?
        .add_grpc(limit.layer(OrderServiceServer::new(OrderApi::new(app.clone()))));
        if let Some(admin_token) = config.admin_token.clone() {
            skeleton = skeleton.merge_ops(admin::router(breaker.clone(), admin_token));
        }
        // http::serve, not axum::serve: it bounds header size, header time and connections.
        let api = http::serve(
            http_listener,
            http::router(app.clone(), limit),
            skeleton.stopping(),
        );
        let reconciler = reconciler.run(skeleton.token());
        let backlog = reconciler::watch_backlog(store.clone(), skeleton.token());
        let skeleton = skeleton
            .spawn_on_run("http", api)
            .spawn_on_run("reconciler", async move {
                reconciler.await;
                Ok::<(), Infallible>(())
            })
            .spawn_on_run("backlog", async move {
                backlog.await;
                Ok::<(), Infallible>(())
            });
        Ok(Self {
            addrs: [skeleton.grpc_addr(), http_addr, skeleton.ops_addr()],
            skeleton,
            app,
            store,
            breaker,
            payment_tls: tls.as_ref().map_or("off", PaymentTls::mode),
            admin: config.admin_token.is_some(),
            grace: config.shutdown_grace,
        })
    }

    async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartupError> {
        let [grpc_addr, http_addr, ops_addr] = self.addrs;
        let (payment_tls, admin) = (self.payment_tls, self.admin);
        let served = self
            .skeleton
            .run_until(shutdown, self.grace, || {
                tracing::info!(
                    %grpc_addr,
                    %http_addr,
                    %ops_addr,
                    payment_tls,
                    admin,
                    "order.listening"
                );
            })
            .await;
        self.store.close().await;
        Ok(served?)
    }
}
