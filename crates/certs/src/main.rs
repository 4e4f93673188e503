//! `certs`: makes the mTLS material of order and payment. See `certs --help`.

use std::{path::PathBuf, process::ExitCode};

use certs::make::{Bundle, FILES, Options, Written, default_sans};
use clap::Parser;

/// Makes a CA, payment's server certificate and order's client certificate (PEM, keys 0600).
///
/// Files in --out: ca.crt, ca.key, payment.crt, payment.key, order-client.crt,
/// order-client.key. When they are all there already, nothing is changed (exit 0); when only
/// some are, nothing is written (exit 1); --force replaces them all.
#[derive(Debug, Parser)]
#[command(name = "certs", version, about, long_about)]
struct Args {
    /// The folder to write into (made 0700 if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    // Adds payment.<NS>.svc and payment.<NS>.svc.cluster.local to payment's names.
    /// Kubernetes namespace of the payment Service.
    #[arg(long, value_name = "NS", default_value = "stormproof")]
    namespace: String,
    // Given at least once, it replaces the default list [localhost, 127.0.0.1, payment,
    // payment.<NS>.svc, payment.<NS>.svc.cluster.local].
    /// A name (DNS or IP) payment's certificate is valid for; repeat it to give several.
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// The client certificate's name.
    #[arg(long, value_name = "NAME", default_value = "order")]
    client_name: String,
    /// How long the server and client certificates are valid (the CA: ten years).
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// Replace files that are already there (a new CA: restart both services with the new files).
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let options = Options {
        sans: if args.sans.is_empty() {
            default_sans(&args.namespace)
        } else {
            args.sans.clone()
        },
        client_name: args.client_name.clone(),
        days: args.days,
    };
    let written = Bundle::generate(&options).and_then(|bundle| bundle.write(&args.out, args.force));
    match written {
        Ok(Written::Created) => {
            println!(
                "certs: wrote {} in {} (payment's names: {})",
                FILES.join(", "),
                args.out.display(),
                options.sans.join(", ")
            );
            ExitCode::SUCCESS
        }
        Ok(Written::Kept) => {
            println!(
                "certs: {} already holds every file; kept them (--force makes new ones)",
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("certs: {error}");
            ExitCode::FAILURE
        }
    }
}
