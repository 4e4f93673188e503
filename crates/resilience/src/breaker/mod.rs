//! A circuit breaker: stop calling a dependency that is failing, and find out cheaply when it
//! has recovered.
//!
//! # States
//!
//! - **closed**: calls pass; each finished call is recorded in a sliding window (the last `n`
//!   calls, or the last `d` of time). Once the window holds at least
//!   [`minimum_calls`](BreakerConfig::minimum_calls), the breaker trips when the failure rate
//!   reaches [`failure_rate_threshold`](BreakerConfig::failure_rate_threshold) or the slow-call
//!   rate reaches [`slow_call_rate_threshold`](BreakerConfig::slow_call_rate_threshold). A
//!   successful call slower than [`slow_call_duration`](BreakerConfig::slow_call_duration)
//!   counts as slow; a failed one counts as a failure only, so the three outcomes partition the
//!   calls.
//! - **open**: calls are rejected at once with [`BreakerOpen`] for
//!   [`wait_duration`](BreakerConfig::wait_duration), which can grow on repeated trips up to a
//!   cap. The first call after the wait moves the breaker to half_open.
//! - **half_open**: exactly [`half_open_calls`](BreakerConfig::half_open_calls) trial calls
//!   pass, however many callers race for them; the rest are rejected. All trials good →
//!   closed, with a fresh window; any failure or slow trial → open again.
//! - **forced_open**, **disabled**: operator overrides set through a [`BreakerHandle`]
//!   (reject everything; let everything pass uncounted) until `reset`.
//!
//! What counts as a failure is the [`Classify`] passed to the layer:
//! [`GrpcClassifier`](crate::GrpcClassifier) for tonic, or any closure.
//!
//! # Cost
//!
//! In the closed state a call costs one atomic load to be admitted, two readings of tokio's
//! clock when slow calls are counted, and one short lock to be recorded (`docs/performance.md`
//! has the figures). A per-breaker clock refreshed by a ticker task once saved the two
//! readings (about 45 ns a call); at a millisecond or more per call to payment, the services'
//! bench could not tell it apart from noise, so it went.
//!
//! # Why not an existing breaker
//!
//! tower-resilience's breaker (0.13) has three states only: its `force_open` is an ordinary
//! open state that half-opens after the wait, so neither operator override (forced_open,
//! disabled) exists; its open wait never grows; it reads `std::time::Instant`, which
//! `tokio::time::pause` cannot drive; and every call boxes a future and takes an async mutex
//! twice. failsafe (1.3) half-opens by letting every call through and closing on the first
//! success, rather than admitting exactly `n` trials; it has no slow-call rate, no count
//! window, and is not a tower `Service`. This breaker meets every requirement with a
//! lock-free admission path, and `benches/breaker.rs` measures it against both.

mod circuit;
mod config;
mod error;
pub mod future;
mod layer;
mod observer;
mod window;

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::time::Instant;
use tower::Service;

pub use self::{
    circuit::{Circuit, Permit},
    config::{BreakerConfig, HalfOpenRule, SlidingWindow},
    error::BreakerOpen,
    layer::BreakerLayer,
    observer::BreakerObserver,
    window::WindowStats,
};
use crate::{BoxError, Classify};

/// A breaker state. [`as_str`](Self::as_str) gives the label value shared with dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Calls pass and are counted.
    Closed = 0,
    /// Tripped: calls are rejected until the wait ends.
    Open = 1,
    /// Probing: a fixed number of trial calls pass.
    HalfOpen = 2,
    /// Operator override: every call is rejected.
    ForcedOpen = 3,
    /// Operator override: every call passes, uncounted.
    Disabled = 4,
}

impl State {
    /// Every state, in label order.
    pub const ALL: [State; 5] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
    ];

    /// `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a finished call counts in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Succeeded in time.
    Success,
    /// Failed (as the classifier decided).
    Failure,
    /// Succeeded, but took at least the slow-call duration.
    Slow,
}

/// What the observer is told about a call: its [`Outcome`], or that it was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// See [`Outcome::Success`].
    Success,
    /// See [`Outcome::Failure`].
    Failure,
    /// See [`Outcome::Slow`].
    Slow,
    /// The breaker rejected the call.
    Rejected,
}

impl CallOutcome {
    /// `success`, `failure`, `slow` or `rejected`: the label values of
    /// `circuit_breaker_calls_total{outcome}`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Failure => "failure",
            CallOutcome::Slow => "slow",
            CallOutcome::Rejected => "rejected",
        }
    }
}

impl From<Outcome> for CallOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => CallOutcome::Success,
            Outcome::Failure => CallOutcome::Failure,
            Outcome::Slow => CallOutcome::Slow,
        }
    }
}

/// A cheap, cloneable handle on one breaker, for gauges and for an admin API.
#[derive(Debug, Clone)]
pub struct BreakerHandle {
    circuit: Arc<Circuit>,
}

impl BreakerHandle {
    /// The current state.
    pub fn state(&self) -> State {
        self.circuit.state()
    }

    /// Failures / calls over the window (see [`Circuit::stats`]), for
    /// `circuit_breaker_failure_rate`.
    pub fn failure_rate(&self) -> f64 {
        self.circuit.stats(Instant::now()).failure_rate()
    }

    /// Totals of the current window.
    pub fn stats(&self) -> WindowStats {
        self.circuit.stats(Instant::now())
    }

    /// Rejects every call until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.circuit.force_open(Instant::now());
    }

    /// Lets every call through, uncounted, until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.circuit.disable(Instant::now());
    }

    /// Closes the breaker with an empty window.
    pub fn reset(&self) {
        self.circuit.reset(Instant::now());
    }
}

/// Wraps a service in a circuit breaker; built by [`BreakerLayer`].
///
/// The permit is taken in `poll_ready`, before the inner service is polled, so that an open
/// breaker answers at once even when the inner service is not ready (a channel reconnecting);
/// a rejection is then returned by the next `call`.
pub struct CircuitBreaker<S, C> {
    inner: S,
    circuit: Arc<Circuit>,
    classifier: C,
    admission: Option<Result<Permit, BreakerOpen>>,
}

// === impl CircuitBreaker ===

impl<S, C> CircuitBreaker<S, C> {
    /// Wraps `inner` in the breaker `circuit`.
    pub fn new(inner: S, circuit: Arc<Circuit>, classifier: C) -> Self {
        Self {
            inner,
            circuit,
            classifier,
            admission: None,
        }
    }

    /// A handle on this breaker.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            circuit: Arc::clone(&self.circuit),
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = future::ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let circuit = &self.circuit;
        let admission = self
            .admission
            .get_or_insert_with(|| circuit.try_acquire_with(Instant::now));
        if admission.is_err() {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        match self
            .admission
            .take()
            .expect("poll_ready must be called before call")
        {
            Err(rejected) => future::ResponseFuture::rejected(rejected),
            Ok(mut permit) => {
                permit.start_timing();
                let future = self.inner.call(request);
                future::ResponseFuture::new(future, permit, self.classifier.clone())
            }
        }
    }
}

/// A clone starts without a permit, as every clone must ask the breaker itself.
impl<S: Clone, C: Clone> Clone for CircuitBreaker<S, C> {
    fn clone(&self) -> Self {
        Self::new(
            self.inner.clone(),
            Arc::clone(&self.circuit),
            self.classifier.clone(),
        )
    }
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("circuit", &self.circuit)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
