use std::{fmt, sync::Arc};

use tokio::time::Instant;
use tower::Layer;

use super::{BreakerConfig, BreakerHandle, BreakerObserver, Circuit, CircuitBreaker};
use crate::ConfigError;

/// Builds [`CircuitBreaker`]s that share one breaker state.
///
/// Every service this layer wraps (and every clone of them) counts into, and is rejected by,
/// the same [`Circuit`]: one layer per protected dependency.
pub struct BreakerLayer<C> {
    circuit: Arc<Circuit>,
    classifier: C,
}

impl<C> BreakerLayer<C> {
    /// A closed breaker configured by `config`, classifying outcomes with `classifier`.
    pub fn try_new(config: BreakerConfig, classifier: C) -> Result<Self, ConfigError> {
        Self::try_with_observer(config, classifier, ())
    }

    /// [`try_new`](Self::try_new), reporting to `observer`.
    pub fn try_with_observer(
        config: BreakerConfig,
        classifier: C,
        observer: impl BreakerObserver,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let circuit = Circuit::new(&config, Arc::new(observer), Instant::now());
        Ok(Self {
            circuit: Arc::new(circuit),
            classifier,
        })
    }

    /// A handle on the breaker, for gauges and operator overrides.
    pub fn handle(&self) -> BreakerHandle {
        BreakerHandle {
            circuit: Arc::clone(&self.circuit),
        }
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, Arc::clone(&self.circuit), self.classifier.clone())
    }
}

impl<C: Clone> Clone for BreakerLayer<C> {
    fn clone(&self) -> Self {
        Self {
            circuit: Arc::clone(&self.circuit),
            classifier: self.classifier.clone(),
        }
    }
}

impl<C> fmt::Debug for BreakerLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("circuit", &self.circuit)
            .finish_non_exhaustive()
    }
}
