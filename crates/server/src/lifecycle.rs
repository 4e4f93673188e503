//! A process's servers and background tasks, the signal that starts their drain, and the
//! drain itself.

/// An error a server or background task ended with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A server (or background task) that stopped by itself, or failed while draining.
#[derive(Debug, thiserror::Error)]
#[error("the {server} server failed")]
pub struct ServeError {
    server: &'static str,
    #[source]
    source: BoxError,
}

/// The servers and background tasks of one process, and their graceful shutdown.
///
/// Each is spawned with a name and told to stop through [`stopping`](Self::stopping) (for
/// `with_graceful_shutdown` / `serve_with_incoming_shutdown`) or [`token`](Self::token). Then
/// [`run_until`](Self::run_until) waits for the shutdown signal, or for any of them to stop
/// by itself (which is a failure), and drains: out of rotation first, then every server stops
/// accepting and finishes what it has in flight, within the grace period; past it, what is
/// left is cut.
#[derive(Debug, Default)]
pub struct Servers {
    tasks: tokio::task::JoinSet<(&'static str, Result<(), BoxError>)>,
    stop: tokio_util::sync::CancellationToken,
}

impl Servers {
    /// No servers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves when the drain begins: the shutdown future to give each server.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.stop.clone().cancelled_owned()
    }

    /// Cancelled when the drain begins, for background tasks.
    pub fn token(&self) -> tokio_util::sync::CancellationToken {
        self.stop.clone()
    }

    /// Runs `server` as `name` until it returns.
    pub fn spawn<F, E>(&mut self, name: &'static str, server: F)
    where
        F: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.tasks
            .spawn(async move { (name, server.await.map_err(Into::into)) });
    }

    /// Serves until `shutdown` resolves or a server stops by itself, then drains: awaits
    /// `leave_rotation` (readiness and health say "not serving"), stops every server and
    /// task, and waits for them up to `grace`. Returns the first failure, if any.
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
        grace: std::time::Duration,
        leave_rotation: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let mut failure = None;
        tokio::select! {
            () = shutdown => tracing::info!("server.shutdown_requested"),
            Some(stopped) = self.tasks.join_next() => {
                failure = failed(stopped);
                tracing::error!("server.stopped_early");
            }
        }
        leave_rotation.await;
        self.stop.cancel();
        let drained = tokio::time::timeout(grace, async {
            while let Some(stopped) = self.tasks.join_next().await {
                if failure.is_none() {
                    failure = failed(stopped);
                }
            }
        })
        .await
        .is_ok();
        if drained {
            tracing::info!("server.drained");
        } else {
            tracing::warn!(grace_seconds = grace.as_secs_f64(), "server.drain_forced");
            self.tasks.abort_all();
        }
        failure.map_or(Ok(()), Err)
    }
}

fn failed(
    stopped: Result<(&'static str, Result<(), BoxError>), tokio::task::JoinError>,
) -> Option<ServeError> {
    match stopped {
        Ok((_, Ok(()))) => None,
        Ok((server, Err(source))) => Some(ServeError { server, source }),
        Err(join) => Some(ServeError {
            server: "a",
            source: Box::new(join),
        }),
    }
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes sends before it kills a pod). Call it
/// before the server reports ready: the handlers are installed by the call.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    // The handlers are installed now, not when the future is first polled: a SIGTERM that
    // arrives between "ready" and the first poll must drain the server, not kill it.
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind| {
            signal(kind)
                .inspect_err(|error| {
                    tracing::warn!(
                        error = error as &dyn std::error::Error,
                        "signal.handler_unavailable"
                    );
                })
                .ok()
        };
        (
            install(SignalKind::terminate()),
            install(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut terminate, mut interrupt) = signals;
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(terminate.take()) => {}
                () = wait(interrupt.take()) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
