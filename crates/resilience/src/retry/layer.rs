use std::{fmt, sync::Arc};

use tower::Layer;

use super::{Retry, RetryConfig, RetryObserver, RetryPolicy, Shared};
use crate::ConfigError;

/// Builds [`Retry`] services that share one retry budget.
///
/// One layer per dependency: the budget counts every request to it, from every clone.
/// Requests must be `Clone` (each attempt sends a copy) and carry their deadline
/// ([`RequestDeadline`](crate::deadline::RequestDeadline)): wrap a plain message in
/// [`WithDeadline`](crate::deadline::WithDeadline). `tonic::Request` cannot be cloned, which is
/// why the stack's requests are messages turned into tonic requests at the bottom.
pub struct RetryLayer<C> {
    shared: Arc<Shared>,
    classifier: C,
}

impl<C> RetryLayer<C> {
    /// Retries per `config`, deciding with `classifier`.
    pub fn try_new(config: RetryConfig, classifier: C) -> Result<Self, ConfigError> {
        Self::try_with_observer(config, classifier, ())
    }

    /// [`try_new`](Self::try_new), reporting to `observer`.
    pub fn try_with_observer(
        config: RetryConfig,
        classifier: C,
        observer: impl RetryObserver,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared::new(config, Arc::new(observer))),
            classifier,
        })
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        let policy = RetryPolicy::new(Arc::clone(&self.shared), self.classifier.clone());
        tower::retry::Retry::new(policy, inner)
    }
}

impl<C: Clone> Clone for RetryLayer<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for RetryLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}
