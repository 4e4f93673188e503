//! The payment service: charges orders exactly once, and misbehaves on demand.
//!
//! - [`config`]: the clap `Config` (every flag has an environment variable).
//! - [`domain`]: a checked charge request.
//! - [`ledger`]: the ledger (SQLite or PostgreSQL), idempotent by order id.
//! - [`faults`]: live fault injection (latency, failures, hangs, outages, declines).
//! - [`grpc`]: `PaymentService` over tonic.
//! - [`admin`]: `GET/PUT/PATCH /admin/faults` on the ops listener, behind a bearer token.
//! - [`metrics`]: the service's own series.
//! - [`startup`]: binds, serves and drains.

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod domain;
pub mod faults;
pub mod grpc;
pub mod ledger;
pub mod metrics;
pub mod startup;

pub use config::Config;
pub use startup::{Application, StartupError};
