//! The command line: parsing, exit codes, and errors told in full.

/// EX_USAGE (sysexits.h): the command line or environment is wrong; nothing was started.
pub const EXIT_USAGE: u8 = 64;

/// Parses the command line and environment into `C`. `--help` and `--version` print and end
/// with 0; a bad flag or value prints why and ends with [`EXIT_USAGE`], before anything has
/// started. A `main` returns the `Err` as its exit code.
pub fn parse_args<C: clap::Parser>() -> Result<C, std::process::ExitCode> {
    C::try_parse().map_err(|error| {
        let _ = error.print(); // help and version go to stdout, errors to stderr
        if error.use_stderr() {
            std::process::ExitCode::from(EXIT_USAGE)
        } else {
            std::process::ExitCode::SUCCESS
        }
    })
}

/// `error` and each of its sources, joined by `: `: tonic's and rustls's errors say little at
/// the top and what was refused further down.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
