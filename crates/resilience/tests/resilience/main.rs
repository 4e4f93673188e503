//! Integration tests of the resilience crate: one binary, one module per concern.

mod breaker_model;
mod loopback;
