//! [`BulkheadFull`].

/// Every slot was taken (and stayed taken for the whole allowed wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead is full")]
pub struct BulkheadFull {
    _private: (),
}

impl BulkheadFull {
    pub(crate) const fn new() -> Self {
        Self { _private: () }
    }
}

/// `RESOURCE_EXHAUSTED`: this client has no capacity left for the call.
impl From<BulkheadFull> for tonic::Status {
    fn from(error: BulkheadFull) -> Self {
        tonic::Status::resource_exhausted(error.to_string())
    }
}
