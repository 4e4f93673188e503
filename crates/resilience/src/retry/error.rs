//! [`RetryBudgetExhausted`], and how retry attaches it to the error it returns.

use std::sync::Arc;

use crate::BoxError;

/// The classifier wanted another attempt, but the retry budget had no token left.
///
/// Retry returns the error of the last attempt with this attached (as the outer error of a
/// [`BoxError`], as the source of a `tonic::Status`), so a caller can tell a dependency that
/// failed from one whose retries were cut off, e.g. to label a fallback `budget_exhausted`:
/// `is_caused_by::<RetryBudgetExhausted>(&*error)`. The last attempt's error is still found with
/// `find_cause`.
#[derive(Debug, thiserror::Error)]
#[error("retry budget exhausted")]
pub struct RetryBudgetExhausted {
    #[source]
    last_error: Option<BoxError>,
}

/// An error type retry can mark as cut off by the budget (see [`RetryBudgetExhausted`]).
///
/// Implemented for [`BoxError`] (the error of every layer of this crate) and for
/// `tonic::Status` (a bare tonic client); implement it for another error type to use retry
/// with it.
pub trait MarkBudgetExhausted {
    /// Marks `self` as the last error before the budget refused a retry.
    fn mark_budget_exhausted(&mut self);
}

impl MarkBudgetExhausted for BoxError {
    fn mark_budget_exhausted(&mut self) {
        let placeholder = RetryBudgetExhausted { last_error: None };
        let last_error = std::mem::replace(self, Box::new(placeholder));
        *self = Box::new(RetryBudgetExhausted {
            last_error: Some(last_error),
        });
    }
}

/// Sets the status's source; its code and message, which travel on the wire, are unchanged.
impl MarkBudgetExhausted for tonic::Status {
    fn mark_budget_exhausted(&mut self) {
        self.set_source(Arc::new(RetryBudgetExhausted { last_error: None }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{find_cause, is_caused_by};

    #[test]
    fn a_marked_box_error_keeps_the_last_error_as_its_source() {
        let mut error: BoxError = Box::new(tonic::Status::unavailable("down"));
        error.mark_budget_exhausted();
        assert!(is_caused_by::<RetryBudgetExhausted>(&*error));
        let status = find_cause::<tonic::Status>(&*error).expect("the last error");
        assert_eq!(status.code(), tonic::Code::Unavailable);
    }

    #[test]
    fn a_marked_status_keeps_its_code() {
        let mut status = tonic::Status::unavailable("down");
        status.mark_budget_exhausted();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(is_caused_by::<RetryBudgetExhausted>(&status));
    }
}
