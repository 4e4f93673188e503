//! The payment service end to end: real gRPC over loopback, a real SQLite file (or a PostgreSQL
//! database, `postgres.rs`), the real ops listener. One binary; nextest runs each test in its
//! own process, which is what lets each install its own telemetry (a process has one global
//! recorder and subscriber).

mod admin;
mod faults;
mod helpers;
mod hostile;
mod ledger;
mod observability;
mod postgres;
mod shutdown;
mod tls;
