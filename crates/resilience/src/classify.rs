//! What counts as a failure, and what is worth retrying.
//!
//! The breaker asks a [`Classify`] whether a finished call was a [`Verdict::Success`], a
//! [`Verdict::Failure`] of the dependency, or something to [`Verdict::Ignore`] (a local
//! rejection says nothing about the dependency's health). Retry asks a [`ClassifyRetry`]
//! whether to try again. Both are implemented for closures, and both by [`GrpcClassifier`],
//! which reads the `tonic::Status` of a failed call:
//!
//! | code | breaker | retry (default) |
//! |---|---|---|
//! | `UNAVAILABLE` | failure | retried |
//! | `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNKNOWN` | failure | not retried |
//! | `INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`, `FAILED_PRECONDITION`, any other | success | not retried |
//! | `OK` (including a business decline carried in the response) | success | not retried |
//!
//! Classification happens at the tonic client level (`Result<tonic::Response<T>, Status>`)
//! rather than on `http::Response`, because a gRPC status normally arrives in the trailers,
//! after the response future has already completed.

use std::{error::Error, time::Duration};

use tonic::{Code, Status, metadata::MetadataMap};

use crate::{
    BoxError, breaker::BreakerOpen, bulkhead::BulkheadFull, deadline::DeadlineExceeded,
    error::find_cause,
};

/// The gRPC trailer a server sets to tell clients when (or whether) to retry (gRFC A6).
pub const RETRY_PUSHBACK_HEADER: &str = "grpc-retry-pushback-ms";

/// What a finished call says about the dependency's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The dependency answered as it should (a business-level "no" included).
    Success,
    /// The dependency failed or could not be reached.
    Failure,
    /// The call says nothing about the dependency (a local rejection); the breaker does not
    /// count it, and a half-open trial slot it held is given back.
    Ignore,
}

/// Decides the [`Verdict`] of a finished call.
pub trait Classify<T, E> {
    /// The verdict on `result`.
    fn classify(&self, result: &Result<T, E>) -> Verdict;
}

impl<F, T, E> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Verdict,
{
    fn classify(&self, result: &Result<T, E>) -> Verdict {
        self(result)
    }
}

/// Whether, and when, to try a finished call again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Return this result to the caller.
    Stop,
    /// Retry after the configured (jittered) backoff.
    Retry,
    /// Retry after exactly this long, as the server asked (`grpc-retry-pushback-ms`).
    RetryAfter(Duration),
}

/// Decides whether a finished call is retried.
pub trait ClassifyRetry<T, E> {
    /// The decision for `result`.
    fn classify_retry(&self, result: &Result<T, E>) -> RetryDecision;
}

impl<F, T, E> ClassifyRetry<T, E> for F
where
    F: Fn(&Result<T, E>) -> RetryDecision,
{
    fn classify_retry(&self, result: &Result<T, E>) -> RetryDecision {
        self(result)
    }
}

/// A set of gRPC codes, as a bit mask (codes are 0..=16).
#[derive(Clone, Copy, PartialEq, Eq)]
struct CodeSet(u32);

impl CodeSet {
    const fn of(codes: &[Code]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < codes.len() {
            bits |= 1 << (codes[i] as u32);
            i += 1;
        }
        Self(bits)
    }

    const fn contains(self, code: Code) -> bool {
        self.0 & (1 << (code as u32)) != 0
    }
}

impl std::fmt::Debug for CodeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let codes = (0..=16)
            .map(Code::from_i32)
            .filter(|code| self.contains(*code));
        f.debug_set().entries(codes).finish()
    }
}

/// Classifies tonic results for the breaker and for retry (see the [module docs](self)).
///
/// Works on `Result<T, tonic::Status>` (a bare tonic client) and on `Result<T, BoxError>` (a
/// client behind other layers of this crate), where it looks for a `Status` in the source chain.
/// In a `BoxError`, this crate's own rejections ([`BreakerOpen`], [`BulkheadFull`]) are
/// ignored by the breaker and never retried; [`DeadlineExceeded`] is a failure, not retried;
/// any other error (a transport error: connection refused, reset) is a failure and retried.
#[derive(Debug, Clone, Copy)]
pub struct GrpcClassifier {
    failures: CodeSet,
    retryable: CodeSet,
}

impl GrpcClassifier {
    /// Codes that count as a failure of the dependency by default.
    pub const DEFAULT_FAILURE_CODES: &[Code] = &[
        Code::Unavailable,
        Code::DeadlineExceeded,
        Code::ResourceExhausted,
        Code::Internal,
        Code::Unknown,
    ];

    /// Codes retried by default: only `UNAVAILABLE`, which gRPC guarantees was not processed
    /// or is safe to resend. Retrying `DEADLINE_EXCEEDED` would double the load on a server
    /// that is already too slow.
    pub const DEFAULT_RETRYABLE_CODES: &[Code] = &[Code::Unavailable];

    /// The default classification of the [module docs](self).
    pub const fn new() -> Self {
        Self {
            failures: CodeSet::of(Self::DEFAULT_FAILURE_CODES),
            retryable: CodeSet::of(Self::DEFAULT_RETRYABLE_CODES),
        }
    }

    /// Counts exactly `codes` as failures.
    pub const fn with_failure_codes(mut self, codes: &[Code]) -> Self {
        self.failures = CodeSet::of(codes);
        self
    }

    /// Retries exactly `codes`. Only make a code retryable if the call is idempotent.
    pub const fn with_retryable_codes(mut self, codes: &[Code]) -> Self {
        self.retryable = CodeSet::of(codes);
        self
    }

    /// The verdict on a call that ended with `status`.
    pub fn classify_status(&self, status: &Status) -> Verdict {
        let code = status_code(status);
        if code != Code::Ok && self.failures.contains(code) {
            Verdict::Failure
        } else {
            Verdict::Success
        }
    }

    /// The verdict on a call that failed with `error`.
    pub fn classify_error(&self, error: &(dyn Error + 'static)) -> Verdict {
        if is_local_rejection(error) {
            Verdict::Ignore
        } else if let Some(status) = find_cause::<Status>(error) {
            self.classify_status(status)
        } else {
            Verdict::Failure
        }
    }

    /// The retry decision for a call that ended with `status`.
    pub fn retry_status(&self, status: &Status) -> RetryDecision {
        if !self.retryable.contains(status_code(status)) {
            return RetryDecision::Stop;
        }
        match pushback(status.metadata()) {
            Pushback::Absent => RetryDecision::Retry,
            Pushback::After(delay) => RetryDecision::RetryAfter(delay),
            Pushback::DoNotRetry => RetryDecision::Stop,
        }
    }

    /// The retry decision for a call that failed with `error`.
    pub fn retry_error(&self, error: &(dyn Error + 'static)) -> RetryDecision {
        if is_local_rejection(error) || find_cause::<DeadlineExceeded>(error).is_some() {
            RetryDecision::Stop
        } else if let Some(status) = find_cause::<Status>(error) {
            self.retry_status(status)
        } else {
            RetryDecision::Retry
        }
    }
}

impl Default for GrpcClassifier {
    fn default() -> Self {
        Self::new()
    }
}

/// The code a status really stands for.
///
/// tonic's channel enforces an outgoing request's `grpc-timeout` itself and reports the expiry
/// as `CANCELLED` ("Timeout expired"), with [`tonic::TimeoutExpired`] as its source; that is a
/// `DEADLINE_EXCEEDED` as far as the dependency's health goes, and is classified so.
pub fn status_code(status: &Status) -> Code {
    if status.code() == Code::Cancelled && find_cause::<tonic::TimeoutExpired>(status).is_some() {
        Code::DeadlineExceeded
    } else {
        status.code()
    }
}

fn is_local_rejection(error: &(dyn Error + 'static)) -> bool {
    find_cause::<BreakerOpen>(error).is_some() || find_cause::<BulkheadFull>(error).is_some()
}

enum Pushback {
    Absent,
    After(Duration),
    DoNotRetry,
}

/// gRFC A6: a non-negative integer is the delay in milliseconds; anything else (negative,
/// garbage) means "do not retry".
fn pushback(metadata: &MetadataMap) -> Pushback {
    let Some(value) = metadata.get(RETRY_PUSHBACK_HEADER) else {
        return Pushback::Absent;
    };
    match value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
    {
        Some(millis) => Pushback::After(Duration::from_millis(millis)),
        None => Pushback::DoNotRetry,
    }
}

// === impl GrpcClassifier: Classify ===

impl<T> Classify<T, Status> for GrpcClassifier {
    fn classify(&self, result: &Result<T, Status>) -> Verdict {
        match result {
            Ok(_) => Verdict::Success,
            Err(status) => self.classify_status(status),
        }
    }
}

impl<T> Classify<T, BoxError> for GrpcClassifier {
    fn classify(&self, result: &Result<T, BoxError>) -> Verdict {
        match result {
            Ok(_) => Verdict::Success,
            Err(error) => self.classify_error(&**error),
        }
    }
}

// === impl GrpcClassifier: ClassifyRetry ===

impl<T> ClassifyRetry<T, Status> for GrpcClassifier {
    fn classify_retry(&self, result: &Result<T, Status>) -> RetryDecision {
        match result {
            Ok(_) => RetryDecision::Stop,
            Err(status) => self.retry_status(status),
        }
    }
}

impl<T> ClassifyRetry<T, BoxError> for GrpcClassifier {
    fn classify_retry(&self, result: &Result<T, BoxError>) -> RetryDecision {
        match result {
            Ok(_) => RetryDecision::Stop,
            Err(error) => self.retry_error(&**error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(code: Code) -> Verdict {
        GrpcClassifier::new().classify(&Err::<(), _>(Status::new(code, "x")))
    }

    #[test]
    fn the_issue_codes_count_as_failures() {
        for code in GrpcClassifier::DEFAULT_FAILURE_CODES {
            assert_eq!(verdict(*code), Verdict::Failure, "{code:?}");
        }
    }

    #[test]
    fn caller_errors_and_declines_do_not_count() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::FailedPrecondition,
        ] {
            assert_eq!(verdict(code), Verdict::Success, "{code:?}");
        }
        let declined: Result<&str, Status> = Ok("declined");
        assert_eq!(GrpcClassifier::new().classify(&declined), Verdict::Success);
    }

    #[test]
    fn a_status_inside_a_box_error_is_found() {
        let error: BoxError = Box::new(Status::unavailable("down"));
        let result: Result<(), BoxError> = Err(error);
        assert_eq!(GrpcClassifier::new().classify(&result), Verdict::Failure);
        assert_eq!(
            GrpcClassifier::new().classify_retry(&result),
            RetryDecision::Retry
        );
    }

    #[test]
    fn local_rejections_are_ignored_by_the_breaker_and_never_retried() {
        let classifier = GrpcClassifier::new();
        let rejections: [BoxError; 2] = [
            Box::new(BreakerOpen::new(crate::breaker::State::Open)),
            Box::new(BulkheadFull::new()),
        ];
        for error in rejections {
            let result: Result<(), BoxError> = Err(error);
            assert_eq!(classifier.classify(&result), Verdict::Ignore);
            assert_eq!(classifier.classify_retry(&result), RetryDecision::Stop);
        }
        let transport: Result<(), BoxError> = Err(Box::new(std::io::Error::other("reset")));
        assert_eq!(classifier.classify(&transport), Verdict::Failure);
        assert_eq!(classifier.classify_retry(&transport), RetryDecision::Retry);
        let expired: Result<(), BoxError> = Err(Box::new(DeadlineExceeded::new()));
        assert_eq!(classifier.classify(&expired), Verdict::Failure);
        assert_eq!(classifier.classify_retry(&expired), RetryDecision::Stop);
    }

    #[test]
    fn only_unavailable_is_retried_by_default() {
        let classifier = GrpcClassifier::new();
        let retry = |code| classifier.classify_retry(&Err::<(), _>(Status::new(code, "x")));
        assert_eq!(retry(Code::Unavailable), RetryDecision::Retry);
        assert_eq!(retry(Code::DeadlineExceeded), RetryDecision::Stop);
        assert_eq!(retry(Code::InvalidArgument), RetryDecision::Stop);
        assert_eq!(
            classifier.classify_retry(&Ok::<_, Status>(())),
            RetryDecision::Stop
        );
    }

    #[test]
    fn pushback_sets_the_delay_or_forbids_the_retry() {
        let classifier = GrpcClassifier::new();
        let with_pushback = |value: &'static str| {
            let mut status = Status::unavailable("busy");
            status
                .metadata_mut()
                .insert(RETRY_PUSHBACK_HEADER, value.parse().expect("ascii"));
            classifier.classify_retry(&Err::<(), _>(status))
        };
        assert_eq!(
            with_pushback("250"),
            RetryDecision::RetryAfter(Duration::from_millis(250))
        );
        assert_eq!(with_pushback("-1"), RetryDecision::Stop);
        assert_eq!(with_pushback("soon"), RetryDecision::Stop);
    }

    #[test]
    fn tonic_client_timeouts_count_as_deadline_exceeded() {
        let error: BoxError = Box::new(tonic::TimeoutExpired(()));
        let status = Status::from_error(error);
        assert_eq!(status.code(), Code::Cancelled);
        assert_eq!(status_code(&status), Code::DeadlineExceeded);
        assert_eq!(verdict_of(status), Verdict::Failure);
        assert_eq!(
            verdict(Code::Cancelled),
            Verdict::Success,
            "a caller's own cancel is not"
        );
    }

    fn verdict_of(status: Status) -> Verdict {
        GrpcClassifier::new().classify(&Err::<(), _>(status))
    }

    #[test]
    fn codes_are_configurable() {
        let classifier = GrpcClassifier::new()
            .with_failure_codes(&[Code::Internal])
            .with_retryable_codes(&[Code::Unavailable, Code::ResourceExhausted]);
        let status = |code| Err::<(), _>(Status::new(code, "x"));
        assert_eq!(
            classifier.classify(&status(Code::Unavailable)),
            Verdict::Success
        );
        assert_eq!(
            classifier.classify(&status(Code::Internal)),
            Verdict::Failure
        );
        assert_eq!(
            classifier.classify_retry(&status(Code::ResourceExhausted)),
            RetryDecision::Retry
        );
    }
}
