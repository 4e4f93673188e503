//! The order service end to end: real order and payment servers on loopback (gRPC between
//! them), real SQLite files, real HTTP. One binary; nextest runs each test in its own process.

mod admin;
mod drain;
mod helpers;
mod hostile;
mod input;
mod orders;
mod postgres;
mod process;
mod resilience;
mod secrets;
mod startup;
mod tls;
mod tracing;
