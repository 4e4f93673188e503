use std::{fmt, sync::Arc};

use tower::Layer;

use super::{Bulkhead, BulkheadConfig, BulkheadObserver, Shared};
use crate::ConfigError;

/// Builds [`Bulkhead`]s that share one pool of slots.
#[derive(Clone)]
pub struct BulkheadLayer {
    shared: Arc<Shared>,
}

impl BulkheadLayer {
    /// A bulkhead configured by `config`.
    pub fn try_new(config: BulkheadConfig) -> Result<Self, ConfigError> {
        Self::try_with_observer(config, ())
    }

    /// [`try_new`](Self::try_new), reporting to `observer`.
    pub fn try_with_observer(
        config: BulkheadConfig,
        observer: impl BulkheadObserver,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared::new(config, Arc::new(observer))),
        })
    }

    /// Calls in flight now, for a gauge.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = Bulkhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bulkhead::new(inner, Arc::clone(&self.shared))
    }
}

impl fmt::Debug for BulkheadLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("shared", &self.shared)
            .finish()
    }
}
