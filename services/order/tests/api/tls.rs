//! Order calling payment over mutual TLS: certificates made by rcgen in temporary folders, real
//! order and payment servers on loopback. With the right files order charges through payment;
//! with the wrong server CA the handshake fails fast and the order falls back to
//! PAYMENT_PENDING. Flags that do not fit together or files that are bad stop it at start.

use std::{path::Path, process::Command, time::Duration};

use certs::{
    load::{CertificateFile, KeyFile},
    make,
};
use stormproof_payment::config::TlsArgs;
use testkit::{pki, run_to_exit};

use crate::helpers::{Order, Payment, sample, spawn_order, spawn_payment_with_tls};

fn file(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Payment requiring client certificates of `dir`'s CA.
async fn mtls_payment(dir: &Path) -> Payment {
    spawn_payment_with_tls(TlsArgs {
        tls_cert: Some(CertificateFile::read(dir.join(make::SERVER_CERT)).expect("cert")),
        tls_key: Some(KeyFile::read(dir.join(make::SERVER_KEY)).expect("key")),
        tls_client_ca: Some(CertificateFile::read_ca(dir.join(make::CA_CERT)).expect("ca")),
    })
    .await
}

/// Order's flags to call payment trusting `ca_dir`'s CA with `client_dir`'s certificate.
fn order_tls_flags(ca_dir: &Path, client_dir: &Path) -> Vec<String> {
    vec![
        "--payment-tls-ca".to_owned(),
        file(ca_dir, make::CA_CERT),
        "--payment-tls-cert".to_owned(),
        file(client_dir, make::CLIENT_CERT),
        "--payment-tls-key".to_owned(),
        file(client_dir, make::CLIENT_KEY),
    ]
}

/// Answered 201 CONFIRMED: payment charged the order.
const CHARGED: (u16, &str) = (201, "CONFIRMED");
/// Answered 202 PAYMENT_PENDING: order could not reach payment and kept the order.
const FELL_BACK: (u16, &str) = (202, "PAYMENT_PENDING");

/// Places one cap through `order` and checks the answer's HTTP status and order status.
async fn place(order: &Order, (code, status): (u16, &str)) {
    let (answered, body) = order.place("cust-tls", &[("CAP-RED", 1)], None).await;
    assert_eq!(
        (answered, body["status"].as_str()),
        (code, Some(status)),
        "{body}"
    );
}

fn refs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn with_mtls_order_holding_the_right_certificates_charges_through_payment() {
    let dir = pki();
    let payment = mtls_payment(dir.path()).await;
    let flags = order_tls_flags(dir.path(), dir.path());
    let order = spawn_order(&payment.https_url(), &refs(&flags)).await;

    place(&order, CHARGED).await;
    assert_eq!(
        payment.ledger.count().await.expect("count"),
        1,
        "charged over mTLS"
    );
    order.stop().await;
    payment.stop().await;
}

#[tokio::test]
async fn the_server_name_flag_verifies_payment_under_a_name_other_than_the_url_host() {
    let dir = pki();
    let payment = mtls_payment(dir.path()).await;
    // The URL names 127.0.0.1; the certificate is checked for `payment`, one of its names.
    let mut flags = order_tls_flags(dir.path(), dir.path());
    flags.extend(["--payment-tls-server-name".to_owned(), "payment".to_owned()]);
    let order = spawn_order(&payment.https_url(), &refs(&flags)).await;
    place(&order, CHARGED).await;
    order.stop().await;

    // A name the certificate does not carry fails the handshake: the order falls back.
    let mut flags = order_tls_flags(dir.path(), dir.path());
    flags.extend([
        "--payment-tls-server-name".to_owned(),
        "elsewhere".to_owned(),
    ]);
    let order = spawn_order(&payment.https_url(), &refs(&flags)).await;
    place(&order, FELL_BACK).await;
    assert_eq!(
        payment.ledger.count().await.expect("count"),
        1,
        "only the first charged"
    );
    order.stop().await;
    payment.stop().await;
}

#[tokio::test]
async fn with_the_wrong_server_ca_the_handshake_fails_and_the_order_falls_back_at_once() {
    let dir = pki();
    let other = pki();
    let payment = mtls_payment(dir.path()).await;
    // Order's client certificate is good; the CA it trusts for payment is another one.
    let flags = order_tls_flags(other.path(), dir.path());
    let order = spawn_order(&payment.https_url(), &refs(&flags)).await;

    let started = tokio::time::Instant::now();
    place(&order, FELL_BACK).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "no hang: answered in {took:?}"
    );
    assert_eq!(
        payment.ledger.count().await.expect("count"),
        0,
        "nothing charged"
    );
    let metrics = order.metrics().await;
    assert!(
        sample(
            &metrics,
            "fallback_total",
            &[("dependency", "payment"), ("reason", "unavailable")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "a failed handshake is `unavailable`: {metrics}"
    );
    order.stop().await;
    payment.stop().await;
}

#[tokio::test]
async fn without_a_client_certificate_order_is_refused_by_payment_and_falls_back() {
    let dir = pki();
    let payment = mtls_payment(dir.path()).await;
    let ca = file(dir.path(), make::CA_CERT);
    let order = spawn_order(&payment.https_url(), &["--payment-tls-ca", &ca]).await;
    place(&order, FELL_BACK).await;
    assert_eq!(
        payment.ledger.count().await.expect("count"),
        0,
        "nothing charged"
    );
    order.stop().await;
    payment.stop().await;
}

#[test]
fn tls_flags_must_fit_the_payment_url() {
    let dir = pki();
    let ca = file(dir.path(), make::CA_CERT);
    let settings = |args: &[&str]| {
        let config = <stormproof_order::Config as clap::Parser>::try_parse_from(
            ["order"].iter().chain(args),
        )
        .expect("flags parse");
        config.payment_tls.settings(&config.payment_url)
    };
    assert!(settings(&[]).expect("plaintext by default").is_none());
    let error = settings(&["--payment-url", "https://payment:50052"]).expect_err("no CA");
    assert!(error.contains("--payment-tls-ca"), "{error}");
    let error = settings(&["--payment-tls-ca", &ca]).expect_err("a CA but http://");
    assert!(error.contains("https://"), "{error}");
    let tls = settings(&[
        "--payment-url",
        "https://payment:50052",
        "--payment-tls-ca",
        &ca,
    ])
    .expect("valid")
    .expect("TLS on");
    assert!(tls.identity.is_none(), "TLS without a client certificate");

    // The key must belong to the certificate.
    let swapped = settings(&[
        "--payment-url",
        "https://payment:50052",
        "--payment-tls-ca",
        &ca,
        "--payment-tls-cert",
        &file(dir.path(), make::CLIENT_CERT),
        "--payment-tls-key",
        &file(dir.path(), make::SERVER_KEY),
    ])
    .expect_err("mismatched pair");
    assert!(swapped.contains("--payment-tls-key"), "{swapped}");
}

#[test]
fn a_missing_or_malformed_tls_file_exits_64_naming_the_flag_and_the_path() {
    let dir = pki();
    let missing = file(dir.path(), "nowhere.crt");
    let key = file(dir.path(), make::CLIENT_KEY);
    let cert = file(dir.path(), make::CLIENT_CERT);
    let cases: [(&[&str], &str, &str); 3] = [
        (
            &["--payment-tls-ca", &missing],
            "--payment-tls-ca",
            &missing,
        ),
        (&["--payment-tls-ca", &key], "--payment-tls-ca", &key),
        (
            &[
                "--payment-tls-ca",
                &file(dir.path(), make::CA_CERT),
                "--payment-tls-cert",
                &cert,
                "--payment-tls-key",
                &cert,
            ],
            "--payment-tls-key",
            &cert,
        ),
    ];
    for (args, flag, named) in cases {
        let (code, stderr) = run_order(dir.path(), args);
        assert_eq!(code, Some(64), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(named),
            "{args:?}: names {flag} and {named}: {stderr}"
        );
        assert!(!stderr.contains("PRIVATE KEY"), "no key material: {stderr}");
    }
}

/// Runs the order binary with `args` on port 0 and a database in `dir`; it is expected to stop
/// at once, and is killed after 20 s if it does not. Returns its exit code and what it printed.
fn run_order(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_order"));
    command
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .args([
            "--ops-addr",
            "127.0.0.1:0",
            "--payment-url",
            "https://127.0.0.1:1",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}/order.db", dir.display()))
        .args(args)
        .env("OTEL_SDK_DISABLED", "true");
    run_to_exit(&mut command, Duration::from_secs(20))
}
