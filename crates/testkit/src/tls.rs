//! Certificates for the TLS tests.

use certs::make::{Bundle, Options};

/// A CA with payment's and order's certificates, written into a temporary folder.
pub fn pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    Bundle::generate(&Options::for_namespace("test"))
        .expect("certificates")
        .write(dir.path(), false)
        .expect("written");
    dir
}
