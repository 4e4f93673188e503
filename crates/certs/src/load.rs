//! PEM files read once, at start-up, and checked before anything is bound.
//!
//! The services take these types straight from clap (`value_parser = certs::load::certificates`
//! and friends), so a missing, unreadable or malformed file is a usage error: clap prints the
//! flag, the path and the reason, and the process exits 64 before it listens anywhere. Nothing
//! is read again later: a certificate rotated on disk takes effect at the next start (a rolling
//! restart in Kubernetes).
//!
//! Checks go as far as can be done with one file: certificates must parse as X.509, a CA file
//! must make a trust anchor, a key file must hold one private key of a kind rustls signs with.
//! That a key belongs to its certificate needs both files: [`check_identity`].
//!
//! A [`KeyFile`] never prints its contents: its `Debug` shows the path only, so a `Config`
//! that derives `Debug` cannot leak a key into a log.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use rustls::{RootCertStore, crypto::aws_lc_rs, server::ParsedCertificate, sign::CertifiedKey};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};

/// Why a PEM file was refused. The message does not repeat the path: clap (or the caller)
/// names the flag and the path around it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    /// The file holds no `CERTIFICATE` block, or one that is not valid base64.
    #[error("no PEM certificate in it ({0})")]
    NoCertificate(String),
    /// A certificate block is not an X.509 certificate rustls can use.
    #[error("certificate {index} is not a usable X.509 certificate: {reason}")]
    BadCertificate {
        /// Which block, from 1.
        index: usize,
        /// What rustls said.
        reason: rustls::Error,
    },
    /// A certificate cannot be a trust anchor.
    #[error("certificate {index} cannot be trusted as a CA: {reason}")]
    NotAnAnchor {
        /// Which block, from 1.
        index: usize,
        /// What rustls said.
        reason: rustls::Error,
    },
    /// The file holds no private key (PKCS#8, PKCS#1 or SEC1), or one rustls cannot sign with.
    #[error("no usable PEM private key in it ({0})")]
    NoKey(String),
    /// The key is not the private key of the certificate's leaf.
    #[error("the key does not belong to the certificate: {0}")]
    Mismatch(rustls::Error),
}

// === impl CertificateFile ===

/// One or more PEM certificates (a leaf and its chain, or CA certificates), read and parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateFile {
    path: PathBuf,
    pem: Vec<u8>,
    ders: Vec<CertificateDer<'static>>,
}

impl CertificateFile {
    /// Reads `path` and checks that every `CERTIFICATE` block in it is an X.509 certificate.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let pem = std::fs::read(path)?;
        let ders = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| LoadError::NoCertificate(error.to_string()))?;
        if ders.is_empty() {
            return Err(LoadError::NoCertificate("the file has none".to_owned()));
        }
        for (index, der) in ders.iter().enumerate() {
            ParsedCertificate::try_from(der).map_err(|reason| LoadError::BadCertificate {
                index: index + 1,
                reason,
            })?;
        }
        Ok(Self {
            path: path.to_owned(),
            pem,
            ders,
        })
    }

    /// Reads `path` as CA certificates: each must also make a trust anchor.
    pub fn read_ca(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let file = Self::read(path)?;
        let mut roots = RootCertStore::empty();
        for (index, der) in file.ders.iter().enumerate() {
            roots
                .add(der.clone())
                .map_err(|reason| LoadError::NotAnAnchor {
                    index: index + 1,
                    reason,
                })?;
        }
        Ok(file)
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes, as read (what `tonic::transport::Certificate::from_pem` takes).
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// How many certificates it holds.
    pub fn len(&self) -> usize {
        self.ders.len()
    }

    /// Never true for a file that was read: an empty one is refused.
    pub fn is_empty(&self) -> bool {
        self.ders.is_empty()
    }
}

impl fmt::Debug for CertificateFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateFile")
            .field("path", &self.path)
            .field("certificates", &self.ders.len())
            .finish()
    }
}

// === impl KeyFile ===

/// A PEM private key, read and checked. Its `Debug` shows the path, never the key.
#[derive(Clone)]
pub struct KeyFile {
    path: PathBuf,
    pem: Vec<u8>,
}

impl KeyFile {
    /// Reads `path` and checks that it holds a private key aws-lc-rs can sign with.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let pem = std::fs::read(path)?;
        let key = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|error| LoadError::NoKey(error.to_string()))?;
        aws_lc_rs::default_provider()
            .key_provider
            .load_private_key(key)
            .map_err(|error| LoadError::NoKey(error.to_string()))?;
        Ok(Self {
            path: path.to_owned(),
            pem,
        })
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes, as read (what `tonic::transport::Identity::from_pem` takes).
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Checks that `key` is the private key of the first certificate of `cert` (the leaf), so a
/// swapped file fails at start-up rather than at the first handshake.
pub fn check_identity(cert: &CertificateFile, key: &KeyFile) -> Result<(), LoadError> {
    let der = PrivateKeyDer::from_pem_slice(&key.pem)
        .map_err(|error| LoadError::NoKey(error.to_string()))?;
    CertifiedKey::from_der(cert.ders.clone(), der, &aws_lc_rs::default_provider())
        .map(drop)
        .map_err(LoadError::Mismatch)
}

// === clap value parsers ===

/// `value_parser` for a certificate file (a leaf and its chain).
pub fn certificates(path: &str) -> Result<CertificateFile, LoadError> {
    CertificateFile::read(path)
}

/// `value_parser` for a file of CA certificates to trust.
pub fn ca_certificates(path: &str) -> Result<CertificateFile, LoadError> {
    CertificateFile::read_ca(path)
}

/// `value_parser` for a private key file.
pub fn private_key(path: &str) -> Result<KeyFile, LoadError> {
    KeyFile::read(path)
}
