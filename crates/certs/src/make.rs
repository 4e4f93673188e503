//! Making the mTLS material with rcgen: a CA, payment's server certificate and order's client
//! certificate, each with its key, as PEM files.
//!
//! Keys are ECDSA P-256 (rcgen's default, signed through aws-lc-rs, the one crypto provider of
//! the build). The CA may sign leaves only (path length 0); the server certificate is good for
//! `serverAuth` only and the client's for `clientAuth` only, so neither can stand in for the
//! other. Validity starts an hour in the past (clocks drift) and lasts [`Options::days`] for
//! leaves, ten years for the CA.
//!
//! [`Bundle::write`] is idempotent: when every file is already there it keeps them (a second
//! `task certs` changes nothing), when some are there it refuses, and `force` replaces them all.
//! Keys are written 0600 and each file is written whole, through a temporary file and a rename.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// The CA certificate: what payment trusts for clients and order trusts for payment.
pub const CA_CERT: &str = "ca.crt";
/// The CA's key: only needed to sign more certificates; never mounted into a pod.
pub const CA_KEY: &str = "ca.key";
/// Payment's server certificate (`PAYMENT_TLS_CERT`).
pub const SERVER_CERT: &str = "payment.crt";
/// Payment's server key (`PAYMENT_TLS_KEY`).
pub const SERVER_KEY: &str = "payment.key";
/// Order's client certificate (`ORDER_PAYMENT_TLS_CERT`).
pub const CLIENT_CERT: &str = "order-client.crt";
/// Order's client key (`ORDER_PAYMENT_TLS_KEY`).
pub const CLIENT_KEY: &str = "order-client.key";

/// Every file a bundle writes, in the order it writes them.
pub const FILES: [&str; 6] = [
    CA_CERT,
    CA_KEY,
    SERVER_CERT,
    SERVER_KEY,
    CLIENT_CERT,
    CLIENT_KEY,
];

/// What to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Subject alternative names of payment's certificate (IP addresses are recognised).
    pub sans: Vec<String>,
    /// Common name of the client certificate (also its one DNS name).
    pub client_name: String,
    /// Validity of the leaf certificates, in days.
    pub days: u32,
}

impl Options {
    /// Payment reachable as `localhost`, `127.0.0.1`, `payment` (compose, and the Service from
    /// its own namespace), `payment.<namespace>.svc` and `payment.<namespace>.svc.cluster.local`;
    /// the client is `order`; leaves last a year.
    pub fn for_namespace(namespace: &str) -> Self {
        Self {
            sans: default_sans(namespace),
            client_name: "order".to_owned(),
            days: 365,
        }
    }
}

/// The default names of payment's certificate for a Kubernetes `namespace`.
pub fn default_sans(namespace: &str) -> Vec<String> {
    vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "payment".to_owned(),
        format!("payment.{namespace}.svc"),
        format!("payment.{namespace}.svc.cluster.local"),
    ]
}

/// Why a bundle could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MakeError {
    /// A subject alternative name is neither a DNS name nor an IP address.
    #[error("`{0}` is neither a DNS name nor an IP address")]
    BadName(String),
    /// rcgen refused the parameters.
    #[error("cannot make the certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// Some of the files exist, not all: replacing only those would mix two CAs.
    #[error("{} already has {} of the {} files ({}); pass --force to replace them all", dir.display(), present.len(), FILES.len(), present.join(", "))]
    Partial {
        /// The output folder.
        dir: PathBuf,
        /// The files already there.
        present: Vec<&'static str>,
    },
    /// Writing failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What [`Bundle::write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The files were written.
    Created,
    /// Every file was already there and was left alone.
    Kept,
}

/// A CA, a server and a client certificate with their keys, in PEM.
pub struct Bundle {
    files: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle").finish_non_exhaustive()
    }
}

impl Bundle {
    /// Makes a fresh CA and signs the server and client certificates with it.
    pub fn generate(options: &Options) -> Result<Self, MakeError> {
        for name in options.sans.iter().chain([&options.client_name]) {
            let is_ip = name.parse::<std::net::IpAddr>().is_ok();
            if !is_ip && rustls_pki_types::DnsName::try_from(name.as_str()).is_err() {
                return Err(MakeError::BadName(name.clone()));
            }
        }
        let now = OffsetDateTime::now_utc();
        let not_before = now - Duration::hours(1);

        let mut ca = CertificateParams::default();
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name
            .push(DnType::CommonName, "Stormproof mTLS CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.not_before = not_before;
        ca.not_after = now + Duration::days(3650);
        let ca_key = KeyPair::generate()?;
        let ca_key_pem = ca_key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(ca, ca_key)?;

        let leaf = |sans: Vec<String>, name: &str, usage: ExtendedKeyUsagePurpose| {
            let mut params = CertificateParams::new(sans)?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            params.use_authority_key_identifier_extension = true;
            params.not_before = not_before;
            params.not_after = now + Duration::days(i64::from(options.days));
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca)?;
            Ok::<_, rcgen::Error>((cert.pem(), key.serialize_pem()))
        };
        // The common name is only a label (clients check the SANs): the first real host name.
        let common_name = options
            .sans
            .iter()
            .find(|name| name.parse::<std::net::IpAddr>().is_err() && *name != "localhost")
            .map_or("payment", String::as_str);
        let (server_cert, server_key) = leaf(
            options.sans.clone(),
            common_name,
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert, client_key) = leaf(
            vec![options.client_name.clone()],
            &options.client_name,
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        Ok(Self {
            files: vec![
                (CA_CERT, ca.pem()),
                (CA_KEY, ca_key_pem),
                (SERVER_CERT, server_cert),
                (SERVER_KEY, server_key),
                (CLIENT_CERT, client_cert),
                (CLIENT_KEY, client_key),
            ],
        })
    }

    /// The PEM text of `file` (one of [`FILES`]).
    pub fn pem(&self, file: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(name, _)| *name == file)
            .map(|(_, pem)| pem.as_str())
    }

    /// Writes every file into `dir` (made 0700 if missing). When all of them exist already,
    /// keeps them unless `force`; when only some do, refuses unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<Written, MakeError> {
        let present: Vec<&'static str> = FILES
            .into_iter()
            .filter(|name| dir.join(name).exists())
            .collect();
        if !force && present.len() == FILES.len() {
            return Ok(Written::Kept);
        }
        if !force && !present.is_empty() {
            return Err(MakeError::Partial {
                dir: dir.to_owned(),
                present,
            });
        }
        make_dir(dir)?;
        for (name, pem) in &self.files {
            let secret = name.ends_with(".key");
            write_file(
                &dir.join(name),
                pem.as_bytes(),
                if secret { 0o600 } else { 0o644 },
            )?;
        }
        Ok(Written::Created)
    }
}

fn make_dir(dir: &Path) -> Result<(), MakeError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| MakeError::Write {
        path: dir.to_owned(),
        source,
    })
}

/// Writes `contents` to a temporary file created with `mode` (so a key is never readable by
/// others, not even for a moment), then renames it over `path`.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), MakeError> {
    let error = |source| MakeError::Write {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("tmp");
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temporary).map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{CertificateFile, KeyFile, check_identity};

    #[test]
    fn a_bundle_loads_back_and_each_key_matches_its_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bundle = Bundle::generate(&Options::for_namespace("shop")).expect("generated");
        assert_eq!(
            bundle.write(dir.path(), false).expect("written"),
            Written::Created
        );

        CertificateFile::read_ca(dir.path().join(CA_CERT)).expect("a CA");
        for (cert, key) in [(SERVER_CERT, SERVER_KEY), (CLIENT_CERT, CLIENT_KEY)] {
            let cert = CertificateFile::read(dir.path().join(cert)).expect("a certificate");
            let key = KeyFile::read(dir.path().join(key)).expect("a key");
            check_identity(&cert, &key).expect("the pair matches");
        }
        let swapped = check_identity(
            &CertificateFile::read(dir.path().join(SERVER_CERT)).expect("cert"),
            &KeyFile::read(dir.path().join(CLIENT_KEY)).expect("key"),
        );
        assert!(matches!(swapped, Err(crate::load::LoadError::Mismatch(_))));
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private_and_a_second_run_keeps_the_files() {
        use std::os::unix::fs::PermissionsExt as _;

        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("certs");
        let first = Bundle::generate(&Options::for_namespace("shop")).expect("generated");
        first.write(&out, false).expect("written");
        for name in FILES {
            let mode = std::fs::metadata(out.join(name))
                .expect("written")
                .permissions()
                .mode();
            let want = if name.ends_with(".key") { 0o600 } else { 0o644 };
            assert_eq!(mode & 0o777, want, "{name}");
        }

        let ca = std::fs::read(out.join(CA_CERT)).expect("ca");
        let second = Bundle::generate(&Options::for_namespace("shop")).expect("generated");
        assert_eq!(second.write(&out, false).expect("kept"), Written::Kept);
        assert_eq!(
            std::fs::read(out.join(CA_CERT)).expect("ca"),
            ca,
            "not replaced"
        );

        std::fs::remove_file(out.join(CLIENT_KEY)).expect("removed");
        assert!(matches!(
            second.write(&out, false),
            Err(MakeError::Partial { .. })
        ));
        assert_eq!(second.write(&out, true).expect("forced"), Written::Created);
        assert_ne!(
            std::fs::read(out.join(CA_CERT)).expect("ca"),
            ca,
            "replaced"
        );
    }

    #[test]
    fn a_san_that_is_no_name_is_refused() {
        let mut options = Options::for_namespace("shop");
        options.sans.push("not a name!".to_owned());
        assert!(matches!(
            Bundle::generate(&options),
            Err(MakeError::BadName(_))
        ));
    }
}
