//! `loadgen`: parse the command line, install telemetry, run, and map the verdict to an exit
//! code: 0 every SLO held, 1 one did not (or the run failed), 64 a bad command line, chaos
//! file or SLO file (nothing was sent).

use std::process::ExitCode;

use stormproof_loadgen::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let mut config: Config = match ::server::parse_args() {
        Ok(config) => config,
        Err(code) => return code,
    };
    // goose logs a warning for each failed request; the live view counts them and summarises
    // them once per interval instead.
    config.telemetry.quiet("goose=error");
    let mut telemetry = match telemetry::init(
        &config.telemetry,
        telemetry::ServiceInfo {
            name: "loadgen",
            version: env!("CARGO_PKG_VERSION"),
        },
    ) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("loadgen: {error}");
            return ExitCode::from(::server::EXIT_USAGE);
        }
    };
    let code = match stormproof_loadgen::run(config, telemetry.prometheus()).await {
        Ok(outcome) if outcome.verdict.pass => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::from(error.exit_code())
        }
    };
    telemetry.shutdown();
    code
}
