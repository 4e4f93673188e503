//! `payment`: see `payment --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::main::<stormproof_payment::Application>().await
}
