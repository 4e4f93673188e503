//! The channel to payment, over TLS when the URL is `https://`.
//!
//! TLS is rustls through tonic's `tls-aws-lc` feature: aws-lc-rs is the build's one crypto
//! provider. Order trusts only the CA it is given (no system roots: payment's certificate comes
//! from our own CA), checks payment's name against its certificate (the URL's host unless
//! overridden), and presents its client certificate when it has one, which payment requires
//! when it runs with `--tls-client-ca`.
//!
//! A failed handshake (wrong CA, wrong name, refused client certificate) is a transport error
//! like a refused connection: UNAVAILABLE to the resilience stack, so the order falls back to
//! PAYMENT_PENDING and the breaker counts it. The handshake is bounded by the connect timeout.

use std::time::Duration;

use certs::load::{CertificateFile, KeyFile};
use server::error_chain;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// TLS to payment: the CA to trust, order's client identity, the name to verify.
#[derive(Debug, Clone)]
pub struct PaymentTls {
    /// CA certificate(s) payment's certificate must chain to.
    pub ca: CertificateFile,
    /// Order's client certificate and key, for mutual TLS.
    pub identity: Option<(CertificateFile, KeyFile)>,
    /// The name payment's certificate must carry; `None`: the URL's host.
    pub server_name: Option<String>,
}

impl PaymentTls {
    /// `"mtls"` with a client certificate, `"tls"` without: for the logs.
    pub fn mode(&self) -> &'static str {
        if self.identity.is_some() {
            "mtls"
        } else {
            "tls"
        }
    }

    fn client_config(&self, handshake_timeout: Duration) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.pem()))
            .timeout(handshake_timeout);
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert.pem(), key.pem()));
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        config
    }
}

/// A lazily connecting channel to `url` (connect timeout, HTTP/2 keepalive), over TLS when
/// `tls` is given. The TLS settings are built now, so a problem shows at start-up.
pub fn channel(
    url: &str,
    tls: Option<&PaymentTls>,
    connect_timeout: Duration,
) -> Result<Channel, String> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| format!("--payment-url (PAYMENT_URL): {error}"))?;
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.client_config(connect_timeout))
            .map_err(|error| format!("TLS to payment: {}", error_chain(&error)))?;
    }
    Ok(endpoint
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .connect_lazy())
}
