//! The configuration error, and helpers to match a failure mode inside a [`BoxError`].
//!
//! Layers that add a failure mode (a rejection, an elapsed deadline) widen their error to
//! [`BoxError`], as tower's do, so a stack of them has one error type. The caller then asks
//! what happened with [`is_caused_by`] or [`find_cause`], which walk the `source()` chain: a
//! failure mode is found however deeply another layer has wrapped it.
//!
//! [`BoxError`]: crate::BoxError

use std::error::Error;

/// A configuration value that no layer can work with.
///
/// Returned by every `validate()` and `try_new()`, so a bad flag fails at startup and never on
/// the request path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ConfigError {
    field: &'static str,
    reason: &'static str,
}

impl ConfigError {
    pub(crate) const fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }

    /// The name of the offending field, as spelled in its config struct.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

/// Fails with a [`ConfigError`] on `field` unless `ok`.
pub(crate) fn ensure(
    ok: bool,
    field: &'static str,
    reason: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(field, reason))
    }
}

/// The first error of type `E` in `error`'s source chain, starting with `error` itself.
pub fn find_cause<'a, E>(error: &'a (dyn Error + 'static)) -> Option<&'a E>
where
    E: Error + 'static,
{
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<E>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// Whether an error of type `E` is anywhere in `error`'s source chain.
///
/// ```
/// use resilience::{BoxError, breaker::BreakerOpen, is_caused_by};
///
/// fn is_fast_fail(error: &BoxError) -> bool {
///     is_caused_by::<BreakerOpen>(&**error)
/// }
/// # let _ = is_fast_fail;
/// ```
pub fn is_caused_by<E>(error: &(dyn Error + 'static)) -> bool
where
    E: Error + 'static,
{
    find_cause::<E>(error).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn finds_a_cause_below_a_wrapper() {
        let error: crate::BoxError = Box::new(Outer(std::io::Error::other("inner")));
        assert!(is_caused_by::<std::io::Error>(&*error));
        assert!(is_caused_by::<Outer>(&*error));
        assert!(!is_caused_by::<std::fmt::Error>(&*error));
    }
}
