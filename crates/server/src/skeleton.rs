//! What every gRPC service runs around its own API, built once: the gRPC listener with
//! health and reflection, the ops listener with readiness and the service's admin routes, the
//! service's other servers and tasks, and the drain.
//!
//! A service's `build` validates its settings, opens its store, then calls [`Skeleton::bind`]
//! (the first thing that listens), adds its API and tasks; its `run_until_stopped` only hands
//! the skeleton to [`Skeleton::run_until`] and closes its store after the drain.

use std::{future::Future, net::SocketAddr, pin::Pin};

use axum::serve::ListenerExt as _;
use metrics_exporter_prometheus::PrometheusHandle;
use telemetry::{grpc::GrpcServerLayer, http::HttpServerLayer};
use tokio::net::TcpListener;
use tonic::{
    server::NamedService,
    transport::{
        Server, ServerTlsConfig,
        server::{Router, TcpIncoming},
    },
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower::layer::util::{Identity, Stack};

use crate::{BoxError, Readiness, ServeError, Servers, error_chain};

/// Why a skeleton could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SkeletonError {
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
}

/// Binds `addr`, naming it if that fails; with the address bound (the real port when 0 was
/// asked for).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), SkeletonError> {
    let bound = async {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        Ok((listener, local))
    };
    bound
        .await
        .map_err(|source| SkeletonError::Bind { addr, source })
}

/// The gRPC router every service serves: its spans and metrics layer, health, reflection,
/// then the service's own API.
type GrpcRouter = Router<Stack<GrpcServerLayer, Identity>>;

type Task = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A service's listeners, routers and tasks, bound but not yet serving.
pub struct Skeleton {
    api: &'static str,
    grpc_listener: (TcpListener, SocketAddr),
    grpc: GrpcRouter,
    ops_listener: (TcpListener, SocketAddr),
    ops: axum::Router,
    readiness: Readiness,
    health: HealthReporter,
    servers: Servers,
    tasks: Vec<(&'static str, Task)>,
}

impl std::fmt::Debug for Skeleton {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Skeleton")
            .field("api", &self.api)
            .field("grpc", &self.grpc_listener.1)
            .field("ops", &self.ops_listener.1)
            .field(
                "tasks",
                &self.tasks.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Where a [`Skeleton`] listens and what it says about its API.
#[derive(Debug)]
pub struct SkeletonConfig<'a> {
    /// The gRPC API's address.
    pub grpc_addr: SocketAddr,
    /// The ops listener's address.
    pub ops_addr: SocketAddr,
    /// TLS for the gRPC listener, if any.
    pub tls: Option<ServerTlsConfig>,
    /// The API's encoded file descriptor set, for reflection (health's is added).
    pub descriptors: &'a [u8],
    /// What `/metrics` renders.
    pub prometheus: PrometheusHandle,
}

impl Skeleton {
    /// Checks TLS and builds reflection (a problem shows now, before anything is bound), then
    /// binds the gRPC and ops listeners. `A` is the API the service will add: health reports
    /// it serving while the skeleton runs.
    pub async fn bind<A: NamedService>(config: SkeletonConfig<'_>) -> Result<Self, SkeletonError> {
        let mut grpc = Server::builder();
        if let Some(tls) = config.tls {
            grpc = grpc
                .tls_config(tls)
                .map_err(|error| SkeletonError::Tls(error_chain(&error)))?;
        }
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(config.descriptors)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        let readiness = Readiness::new();
        Ok(Self {
            api: A::NAME,
            grpc_listener: bind(config.grpc_addr).await?,
            grpc: grpc
                .layer(GrpcServerLayer::new())
                .add_service(health_service)
                .add_service(reflection),
            ops_listener: bind(config.ops_addr).await?,
            ops: crate::ops::router(config.prometheus, readiness.clone()),
            readiness,
            health,
            servers: Servers::new(),
            tasks: Vec::new(),
        })
    }

    /// The bound gRPC address (the real port when 0 was asked for).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_listener.1
    }

    /// The bound ops address.
    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_listener.1
    }

    /// Serves `api` on the gRPC listener, beside health and reflection.
    pub fn add_grpc<S>(mut self, api: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.grpc = self.grpc.add_service(api);
        self
    }

    /// Serves `routes` (an admin API) on the ops listener too.
    pub fn merge_ops(mut self, routes: axum::Router) -> Self {
        self.ops = self.ops.merge(routes);
        self
    }

    /// Resolves when the drain begins: the shutdown future for another server of the service.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.servers.stopping()
    }

    /// Cancelled when the drain begins, for background tasks.
    pub fn token(&self) -> tokio_util::sync::CancellationToken {
        self.servers.token()
    }

    /// Runs `task` as `name` beside the listeners once the skeleton runs (another server,
    /// or a background task that stops on [`token`](Self::token)).
    pub fn spawn_on_run<F, E>(mut self, name: &'static str, task: F) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.tasks.push((
            name,
            Box::pin(async move { task.await.map_err(Into::into) }),
        ));
        self
    }

    /// Serves until `shutdown` resolves or a server stops by itself, then drains within
    /// `grace` (see [`Servers::run_until`]): readiness and health leave rotation first.
    /// `listening` runs once everything serves and the service is ready (to log where).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
        grace: std::time::Duration,
        listening: impl FnOnce(),
    ) -> Result<(), ServeError> {
        let Self {
            api,
            grpc_listener: (grpc_listener, _),
            grpc,
            ops_listener: (ops_listener, _),
            ops,
            readiness,
            health,
            mut servers,
            tasks,
        } = self;
        health.set_service_status(api, ServingStatus::Serving).await;
        // Nagle off on every accepted connection, as `Server::serve` would: tonic ignores its
        // own `tcp_nodelay` for a listener handed in, and with Nagle on, a response written in
        // two segments waits for the client's delayed ACK (40 ms on Linux).
        let grpc = grpc.serve_with_incoming_shutdown(
            TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            servers.stopping(),
        );
        servers.spawn("grpc", grpc);
        let ops_listener = ops_listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true); // best effort: a socket that refuses still serves
        });
        let ops = axum::serve(ops_listener, ops.layer(HttpServerLayer::new()))
            .with_graceful_shutdown(servers.stopping());
        servers.spawn("ops", async move { ops.await });
        for (name, task) in tasks {
            servers.spawn(name, task);
        }
        readiness.set(true);
        listening();
        servers
            .run_until(shutdown, grace, async move {
                readiness.set(false);
                health
                    .set_service_status(api, ServingStatus::NotServing)
                    .await;
            })
            .await
    }
}
