//! [`DeadlineExceeded`].

/// The request's deadline passed before the inner service answered (or before it was called).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline exceeded")]
pub struct DeadlineExceeded {
    _private: (),
}

impl DeadlineExceeded {
    pub(crate) const fn new() -> Self {
        Self { _private: () }
    }
}

/// `DEADLINE_EXCEEDED`.
impl From<DeadlineExceeded> for tonic::Status {
    fn from(error: DeadlineExceeded) -> Self {
        tonic::Status::deadline_exceeded(error.to_string())
    }
}
