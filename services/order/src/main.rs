//! `order`: see `order --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::main::<stormproof_order::Application>().await
}
