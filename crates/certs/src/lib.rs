//! The mTLS material between order and payment.
//!
//! - [`load`]: PEM files read once at start-up and checked (certificates parse, a CA makes a
//!   trust anchor, a key can sign and belongs to its certificate), with clap value parsers, so
//!   a bad file is a usage error (exit 64) that names the flag and the path. This is all the
//!   services use.
//! - [`make`] (feature `make`, on by default): a CA, payment's server certificate and order's
//!   client certificate made with rcgen, written as PEM files with private keys. The `certs`
//!   command and the services' tests use it; the services' binaries do not link rcgen.
//!
//! One crypto provider: rustls and rcgen both go through aws-lc-rs, as tonic's `tls-aws-lc`
//! and the load generator's reqwest do (DEPENDENCIES.md).

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod load;
#[cfg(feature = "make")]
pub mod make;
