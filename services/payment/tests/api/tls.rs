//! mTLS on the gRPC listener: certificates made by rcgen in a temporary folder, real TLS over
//! loopback. With a client CA configured, only a client holding a certificate signed by it is
//! served; plaintext, a certificate from another CA and no certificate at all are refused in
//! the handshake, and the refusals leave the server serving. Bad files stop the binary with
//! exit 64 and a message naming the flag and the path.

use std::{path::Path, process::Command, time::Duration};

use certs::{
    load::{CertificateFile, KeyFile},
    make,
};
use contracts::payment::v1::{self as pb, payment_service_client::PaymentServiceClient};
use stormproof_payment::config::TlsArgs;
use testkit::{pki, run_to_exit};
use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::helpers::{TestApp, charge, spawn_app_with_tls};

/// Payment's flags for mutual TLS with the certificates in `dir`.
fn mtls(dir: &Path) -> TlsArgs {
    TlsArgs {
        tls_cert: Some(CertificateFile::read(dir.join(make::SERVER_CERT)).expect("cert")),
        tls_key: Some(KeyFile::read(dir.join(make::SERVER_KEY)).expect("key")),
        tls_client_ca: Some(CertificateFile::read_ca(dir.join(make::CA_CERT)).expect("ca")),
    }
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).expect("readable")
}

/// A TLS client of `app` that trusts `dir`'s CA and presents `identity`, if any.
fn tls_client(
    app: &TestApp,
    dir: &Path,
    identity: Option<(&Path, &str, &str)>,
) -> PaymentServiceClient<Channel> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(dir, make::CA_CERT)));
    if let Some((dir, cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(read(dir, cert), read(dir, key)));
    }
    let channel = Endpoint::from_shared(format!("https://{}", app.grpc_addr))
        .expect("url")
        .tls_config(tls)
        .expect("TLS settings")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    PaymentServiceClient::new(channel)
}

/// Calls ProcessPayment, bounded: a refused client must be told, not left waiting.
async fn call(
    client: &mut PaymentServiceClient<Channel>,
    order_id: &str,
) -> Result<pb::ProcessPaymentResponse, tonic::Status> {
    tokio::time::timeout(
        Duration::from_secs(5),
        client.process_payment(charge(order_id, 100)),
    )
    .await
    .expect("answered or refused within 5 s, no hang")
    .map(tonic::Response::into_inner)
}

/// The refused calls charged nothing, and a good client is still served afterwards.
async fn still_serving_and_nothing_charged(app: &TestApp, dir: &Path, refused: &str) {
    let mut good = tls_client(app, dir, Some((dir, make::CLIENT_CERT, make::CLIENT_KEY)));
    call(&mut good, "ord-tls-after")
        .await
        .expect("a good client is still served");
    let missing = good
        .get_payment(pb::GetPaymentRequest {
            order_id: refused.to_owned(),
        })
        .await
        .expect_err("the refused call charged nothing");
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn with_mtls_a_client_holding_a_certificate_of_the_ca_is_served() {
    let dir = pki();
    let app = spawn_app_with_tls(mtls(dir.path())).await;
    let mut client = tls_client(
        &app,
        dir.path(),
        Some((dir.path(), make::CLIENT_CERT, make::CLIENT_KEY)),
    );
    let response = call(&mut client, "ord-tls-1").await.expect("served");
    assert_eq!(
        response.payment.expect("a payment").status(),
        pb::PaymentStatus::Captured
    );
    app.stop().await;
}

#[tokio::test]
async fn with_mtls_a_plaintext_client_is_refused() {
    let dir = pki();
    let app = spawn_app_with_tls(mtls(dir.path())).await;
    let channel = Endpoint::from_shared(format!("http://{}", app.grpc_addr))
        .expect("url")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let mut plaintext = PaymentServiceClient::new(channel);
    let refused = call(&mut plaintext, "ord-tls-plain")
        .await
        .expect_err("plaintext is refused");
    assert_ne!(refused.code(), Code::Ok);
    still_serving_and_nothing_charged(&app, dir.path(), "ord-tls-plain").await;
    app.stop().await;
}

#[tokio::test]
async fn with_mtls_a_client_certificate_signed_by_another_ca_is_refused() {
    let dir = pki();
    let other = pki();
    let app = spawn_app_with_tls(mtls(dir.path())).await;
    // It trusts the right server CA, but its own certificate comes from another CA.
    let mut stranger = tls_client(
        &app,
        dir.path(),
        Some((other.path(), make::CLIENT_CERT, make::CLIENT_KEY)),
    );
    let refused = call(&mut stranger, "ord-tls-stranger")
        .await
        .expect_err("another CA's client is refused");
    assert_ne!(refused.code(), Code::Ok);
    still_serving_and_nothing_charged(&app, dir.path(), "ord-tls-stranger").await;
    app.stop().await;
}

#[tokio::test]
async fn with_mtls_a_client_without_a_certificate_is_refused() {
    let dir = pki();
    let app = spawn_app_with_tls(mtls(dir.path())).await;
    let mut anonymous = tls_client(&app, dir.path(), None);
    let refused = call(&mut anonymous, "ord-tls-anonymous")
        .await
        .expect_err("a client without a certificate is refused");
    assert_ne!(refused.code(), Code::Ok);
    still_serving_and_nothing_charged(&app, dir.path(), "ord-tls-anonymous").await;
    app.stop().await;
}

/// Runs the payment binary with `args`; it must stop before it serves, and is killed after
/// 20 s if it does not. Returns its exit code and everything it printed (stdout and stderr).
fn run_payment(args: &[&str]) -> (Option<i32>, String) {
    let database = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_payment"));
    command
        .args(["--grpc-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"])
        .args(args)
        .env("OTEL_SDK_DISABLED", "true")
        .env(
            "PAYMENT_DATABASE_URL",
            format!("sqlite://{}/payment.db", database.path().display()),
        );
    run_to_exit(&mut command, Duration::from_secs(20))
}

#[test]
fn a_missing_or_malformed_tls_file_exits_64_naming_the_flag_and_the_path() {
    let dir = pki();
    let path = |file: &str| dir.path().join(file).display().to_string();
    let missing = path("nowhere.crt");
    let (cert, key) = (path(make::SERVER_CERT), path(make::SERVER_KEY));
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["--tls-cert", &missing, "--tls-key", &key],
            "--tls-cert",
            &missing,
        ),
        // A key where the certificate should be, and the other way round.
        (&["--tls-cert", &key, "--tls-key", &key], "--tls-cert", &key),
        (
            &["--tls-cert", &cert, "--tls-key", &cert],
            "--tls-key",
            &cert,
        ),
        // A leaf is no CA.
        (
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-client-ca",
                &key,
            ],
            "--tls-client-ca",
            &key,
        ),
    ];
    for (args, flag, named) in cases {
        let (code, printed) = run_payment(args);
        assert_eq!(code, Some(64), "{args:?}: {printed}");
        assert!(
            printed.contains(flag) && printed.contains(named),
            "{args:?}: names {flag} and {named}: {printed}"
        );
        assert!(
            !printed.contains("PRIVATE KEY"),
            "no key material: {printed}"
        );
    }

    // A certificate without its key is a usage error too.
    let (code, printed) = run_payment(&["--tls-cert", &cert]);
    assert_eq!(code, Some(64), "{printed}");
    assert!(printed.contains("--tls-key"), "{printed}");

    // Two good files that do not belong together: refused at start, both named.
    let (code, printed) = run_payment(&["--tls-cert", &cert, "--tls-key", &path(make::CLIENT_KEY)]);
    assert_ne!(code, Some(0), "{printed}");
    assert!(
        printed.contains("--tls-key") && printed.contains(&path(make::CLIENT_KEY)),
        "{printed}"
    );
    assert!(
        !printed.contains("payment.listening"),
        "never served: {printed}"
    );
}
