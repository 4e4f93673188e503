//! What every Stormproof process shares around its own API: how it starts, serves operators,
//! guards its admin API, answers errors, and drains.
//!
//! - [`service`]: the [`Service`] trait, so that each `main` is one call to [`main`].
//! - [`skeleton`]: what every gRPC service runs around its API (health, reflection, the ops
//!   listener, readiness, other servers and tasks, the drain), bound once by [`Skeleton::bind`].
//! - [`cli`]: parsing the command line and environment, exit codes, errors told in full.
//! - [`lifecycle`]: [`Servers`] runs a process's servers and tasks and drains them;
//!   [`shutdown_signal`] starts the drain.
//! - [`ops`]: the ops listener's router (`/metrics`, `/healthz`, `/readyz`) and [`Readiness`].
//! - [`admin`]: the admin API's bearer-token guard and its JSON body rule.
//! - [`problem`]: RFC 9457 problem details, the one error body of every HTTP edge;
//!   [`grpc::invalid_argument`], the gRPC one.
//!
//! Telemetry (metrics, traces, logs and their layers) stays in `telemetry`; this crate knows
//! nothing of orders or payments.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod admin;
pub mod cli;
pub mod grpc;
pub mod lifecycle;
pub mod ops;
pub mod problem;
pub mod service;
pub mod skeleton;

pub use cli::{
    EXIT_USAGE, error_chain, flags_are_documented, flags_markdown, parse_args,
    reference_is_current, wordy_flags,
};
pub use lifecycle::{BoxError, ServeError, Servers, shutdown_signal};
pub use ops::Readiness;
pub use problem::problem;
pub use service::{Service, main};
pub use skeleton::{Skeleton, SkeletonConfig, SkeletonError};
