//! `payment`: see `payment --help`.

use std::process::ExitCode;

use clap::Parser as _;
use stormproof_payment::{Application, Config, config::FaultArgs, faults::FaultSettings};
use telemetry::ServiceInfo;

/// EX_USAGE: the configuration is wrong; nothing was started.
const EXIT_USAGE: u8 = 64;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(error) if !error.use_stderr() => {
            let _ = error.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let faults = match start_faults(&config.faults) {
        Ok(faults) => faults,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let service = ServiceInfo {
        name: "payment",
        version: env!("CARGO_PKG_VERSION"),
    };
    let mut telemetry = match telemetry::init(&config.telemetry, service) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {error}: {}", error_chain(&error));
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(version = service.version, ?config, "payment.starting");

    let result = match Application::build(config, faults, telemetry.prometheus()).await {
        Ok(app) => {
            app.run_until_stopped(stormproof_payment::shutdown_signal())
                .await
        }
        Err(error) => Err(error),
    };
    let code = match &result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = error as &dyn std::error::Error, "payment.failed");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// The preset named by `--faults`, with single knobs overridden by their flags.
fn start_faults(args: &FaultArgs) -> Result<FaultSettings, String> {
    let mut settings = args.preset.settings();
    settings.latency_ms = args.latency_ms.unwrap_or(settings.latency_ms);
    settings.jitter_ms = args.jitter_ms.unwrap_or(settings.jitter_ms);
    settings.failure_rate = args.failure_rate.unwrap_or(settings.failure_rate);
    settings.hang_rate = args.hang_rate.unwrap_or(settings.hang_rate);
    settings.decline_rate = args.decline_rate.unwrap_or(settings.decline_rate);
    settings.outage = args.outage.unwrap_or(settings.outage);
    settings.validate().map(|()| settings).map_err(|errors| {
        let fields: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        format!("invalid fault flags: {}", fields.join("; "))
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push(cause.to_string());
        source = cause.source();
    }
    chain.join(": ")
}
