use std::{fmt, sync::Arc};

use tower::Layer;

use super::{AdaptiveLimit, LimitConfig, LimitObserver, Shared, aimd::Aimd};
use crate::ConfigError;

/// Builds [`AdaptiveLimit`]s that share one limit: put one on a whole server.
#[derive(Clone)]
pub struct LimitLayer {
    shared: Arc<Shared>,
}

impl LimitLayer {
    /// A limit configured by `config`.
    pub fn try_new(config: LimitConfig) -> Result<Self, ConfigError> {
        Self::try_with_observer(config, ())
    }

    /// [`try_new`](Self::try_new), reporting to `observer`.
    pub fn try_with_observer(
        config: LimitConfig,
        observer: impl LimitObserver,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let shared = Shared {
            aimd: Aimd::new(config),
            observer: Arc::new(observer),
        };
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The current limit, for the `concurrency_limit` gauge.
    pub fn limit(&self) -> usize {
        self.shared.aimd.limit()
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared.aimd.in_flight()
    }
}

impl<S> Layer<S> for LimitLayer {
    type Service = AdaptiveLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdaptiveLimit::new(inner, Arc::clone(&self.shared))
    }
}

impl fmt::Debug for LimitLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitLayer")
            .field("aimd", &self.shared.aimd)
            .finish_non_exhaustive()
    }
}
