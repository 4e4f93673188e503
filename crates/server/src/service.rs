//! The shape of a service's process, so that each `main` is one call: parse the command line
//! and environment, start telemetry, [`build`](Service::build) (validates every setting, then
//! binds and constructs everything), [`run_until_stopped`](Service::run_until_stopped) (only
//! serves), and drain.

use std::{future::Future, process::ExitCode};

use metrics_exporter_prometheus::PrometheusHandle;
use telemetry::{ServiceInfo, TelemetryArgs};

use crate::{parse_args, shutdown_signal};

/// A service, built from its configuration and run until a signal stops it.
pub trait Service: Sized {
    /// Its command line and environment.
    type Config: clap::Parser;
    /// Why it could not start, or stopped badly.
    type Error: std::error::Error + 'static;

    /// Its name and version.
    const INFO: ServiceInfo;

    /// The telemetry settings inside its configuration.
    fn telemetry(config: &Self::Config) -> &TelemetryArgs;

    /// Logs what it starts with, once telemetry is up.
    fn starting(config: &Self::Config);

    /// Checks every setting, then binds its listeners and constructs everything it serves: a
    /// bad setting fails here, before anything listens.
    fn build(
        config: Self::Config,
        prometheus: PrometheusHandle,
    ) -> impl Future<Output = Result<Self, Self::Error>>;

    /// Serves until `shutdown` resolves or a server fails, then drains.
    fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> impl Future<Output = Result<(), Self::Error>>;
}

/// A service's whole `main`: 0 after a clean drain, 1 if it failed to start or stopped
/// badly (logged as `<service>.failed`), [`EXIT_USAGE`](crate::EXIT_USAGE) on a bad command line.
pub async fn main<S: Service>() -> ExitCode {
    let config: S::Config = match parse_args() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut telemetry = match telemetry::init_or_report(S::telemetry(&config), S::INFO) {
        Ok(telemetry) => telemetry,
        Err(code) => return code,
    };
    S::starting(&config);
    let result = match S::build(config, telemetry.prometheus()).await {
        Ok(service) => service.run_until_stopped(shutdown_signal()).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &result {
        let error = error as &dyn std::error::Error;
        tracing::error!(error, "{}.failed", S::INFO.name);
    }
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
