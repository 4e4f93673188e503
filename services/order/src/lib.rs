//! The order service: takes orders whatever payment does, and charges each exactly once.
//!
//! - [`config`]: the clap `Config` (every flag has an environment variable).
//! - [`catalogue`]: the products on sale.
//! - [`domain`]: orders, and the checks a request passes before anything is stored.
//! - [`store`]: durable orders (SQLite), claims for the reconciler.
//! - [`payment`]: the payment client behind deadline → retry → breaker → bulkhead.
//! - [`app`]: PlaceOrder, GetOrder, ListOrders: one function each, for both transports.
//! - [`http`], [`grpc`]: the two edges.
//! - [`reconciler`]: charges PAYMENT_PENDING orders when payment answers again.
//! - [`admin`]: `GET/PUT /admin/breaker` on the ops listener.
//! - [`metrics`]: the service's own series.
//! - [`startup`]: binds, serves and drains.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod catalogue;
pub mod config;
pub mod domain;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod payment;
pub mod reconciler;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::{Application, StartupError};
