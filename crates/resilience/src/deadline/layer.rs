use tower::Layer;

use super::{DeadlineConfig, DeadlineService};
use crate::ConfigError;

/// Builds [`DeadlineService`]s.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    config: DeadlineConfig,
}

impl DeadlineLayer {
    /// A layer enforcing `config`.
    pub fn try_new(config: DeadlineConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config })
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService::new(inner, self.config.clone())
    }
}
