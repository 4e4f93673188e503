//! Tower layers for calling an unreliable dependency, and for serving under load.
//!
//! The crate knows nothing of the services that use it: every layer is generic over
//! `tower::Service<Req>`, and the few gRPC- or HTTP-specific pieces (status classification,
//! `grpc-timeout`, the shedding response) work on `tonic` and `http` types only.
//!
//! # Map
//!
//! - [`breaker`]: a circuit breaker (closed, open, half_open, plus the operator overrides
//!   forced_open and disabled) over a count- or time-based sliding window, tripping on failure
//!   rate and on slow-call rate.
//! - [`retry`]: retries with exponential backoff and full jitter, limited by attempts, by the
//!   request's deadline and by a retry budget; honours `grpc-retry-pushback-ms`.
//! - [`deadline`]: takes the caller's deadline (`grpc-timeout`, or an HTTP header), caps it,
//!   hands the remaining time downstream and fails the call when it passes.
//! - [`bulkhead`]: a bound on concurrent calls with a bounded wait, rejecting at once beyond it.
//! - [`limit`]: an adaptive (AIMD) concurrency limit for servers that sheds with
//!   `RESOURCE_EXHAUSTED` or HTTP 503 + `Retry-After`.
//! - [`classify`]: what counts as a failure (for the breaker) and as retryable (for retry),
//!   with [`GrpcClassifier`] for tonic.
//! - [`error`]: the configuration error, and [`is_caused_by`] to match a failure mode anywhere
//!   in a [`BoxError`]'s source chain.
//!
//! # Composition
//!
//! Outermost first, as a client of one dependency: deadline → retry → breaker → bulkhead →
//! client. Retry sits outside the breaker so that a rejection is not retried (it is classified
//! as final) and every attempt is counted by the breaker; the deadline is outermost so that retry
//! sees it and never sleeps past it.
//!
//! ```
//! use resilience::{
//!     breaker::{BreakerConfig, BreakerLayer},
//!     bulkhead::{BulkheadConfig, BulkheadLayer},
//!     deadline::{DeadlineConfig, DeadlineLayer, WithDeadline},
//!     retry::{RetryConfig, RetryLayer},
//!     GrpcClassifier,
//! };
//! use tower::{ServiceBuilder, service_fn};
//!
//! # fn main() -> Result<(), resilience::ConfigError> {
//! // Stands in for `client.process_payment(request.into_tonic_request())`.
//! let client = service_fn(|request: WithDeadline<u32>| async move {
//!     Ok::<_, tonic::Status>(tonic::Response::new(request.into_inner()))
//! });
//! let breaker = BreakerLayer::try_new(BreakerConfig::default(), GrpcClassifier::new())?;
//! let admin = breaker.handle(); // force_open / disable / reset, state and failure rate
//! let stack = ServiceBuilder::new()
//!     .layer(DeadlineLayer::try_new(DeadlineConfig::default())?)
//!     .layer(RetryLayer::try_new(RetryConfig::default(), GrpcClassifier::new())?)
//!     .layer(breaker)
//!     .layer(BulkheadLayer::try_new(BulkheadConfig::default())?)
//!     .service(client);
//! # drop((stack, admin));
//! # Ok(())
//! # }
//! ```
//!
//! # Observation
//!
//! No layer depends on a metrics backend. Each takes an observer (a small trait with no-op
//! defaults) that sees every outcome and transition; a service creates one per dependency and
//! exports the metric names it has agreed on with its dashboards.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod breaker;
pub mod bulkhead;
pub mod classify;
pub mod deadline;
pub mod error;
pub mod limit;
pub mod retry;

pub use classify::{Classify, ClassifyRetry, GrpcClassifier, RetryDecision, Verdict, status_code};
pub use error::{ConfigError, find_cause, is_caused_by};

/// The error type of every layer that adds a failure mode of its own (as in tower).
pub use tower::BoxError;
