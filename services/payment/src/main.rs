//! `payment`: see `payment --help`.

use std::process::ExitCode;

use stormproof_payment::{Application, Config};
use telemetry::ServiceInfo;
use telemetry::ops::shutdown_signal;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = match telemetry::ops::parse_args() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let faults = match config.faults.settings() {
        Ok(faults) => faults,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(telemetry::ops::EXIT_USAGE);
        }
    };
    let service = ServiceInfo {
        name: "payment",
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut telemetry = match telemetry::init_or_report(&config.telemetry, service) {
        Ok(telemetry) => telemetry,
        Err(code) => return code,
    };
    tracing::info!(
        version = service.version,
        database = %config.database_url,
        admin_api = config.admin_token.is_some(),
        faults = ?faults,
        otel_sdk_disabled = config.telemetry.otel_sdk_disabled,
        otlp_endpoint = %config.telemetry.otel_exporter_otlp_endpoint,
        "payment.starting"
    );

    let result = match Application::build(config, faults, telemetry.prometheus()).await {
        Ok(app) => app.run_until_stopped(shutdown_signal()).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &result {
        tracing::error!(error = error as &dyn std::error::Error, "payment.failed");
    }
    telemetry.shutdown();
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
