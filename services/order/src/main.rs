//! `order`: see `order --help`.

use std::process::ExitCode;

use stormproof_order::{Application, Config};
use telemetry::{ServiceInfo, ops::shutdown_signal};

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = match telemetry::ops::parse_args() {
        Ok(config) => config,
        Err(code) => return code,
    };
    let service = ServiceInfo {
        name: "order",
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut telemetry = match telemetry::init_or_report(&config.telemetry, service) {
        Ok(telemetry) => telemetry,
        Err(code) => return code,
    };
    tracing::info!(
        version = service.version,
        payment_url = %config.payment_url,
        admin_api = config.admin_token.is_some(),
        otel_sdk_disabled = config.telemetry.otel_sdk_disabled,
        "order.starting"
    );

    let result = match Application::build(config, telemetry.prometheus()).await {
        Ok(app) => app.run_until_stopped(shutdown_signal()).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &result {
        tracing::error!(error = error as &dyn std::error::Error, "order.failed");
    }
    telemetry.shutdown();
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
