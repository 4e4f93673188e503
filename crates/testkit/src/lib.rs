//! What the tests of every crate share: service binaries as child processes, their command
//! lines, a fresh PostgreSQL database, a Prometheus exposition read, an admin API's refusals,
//! gRPC health, certificates.
//!
//! A dev-dependency only, and it depends on no service: a harness builds a command line here
//! and parses it with the service's own `Config`, so one spelling serves the in-process tests
//! and the ones that start binaries.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod admin;
pub mod args;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod postgres;
pub mod process;
pub mod tls;

pub use admin::{admin_body_rule, admin_refusal};
pub use args::{ServiceArgs, free_port, sqlite_url};
pub use metrics::sample;
pub use postgres::fresh_database;
pub use process::{Process, run_to_exit};
pub use tls::pki;
