//! The built-in offline mock provider (echoes the last user message); no keys, no network.

use std::sync::Arc;

use llm_core::{MockProvider, Result};

use super::{Built, Builtin, NoOptions, Pool, never, options};
use crate::{ModelConfig, ProviderType, registry::ProviderSpec};

/// The mock provider.
pub(crate) static MOCK: Builtin = Builtin {
    kind: ProviderType::Mock,
    aliases: &[],
    env_prefix: "",
    env_options: &[],
    needs_key: never,
    pool,
};

struct MockPool;

fn pool(config: &ModelConfig) -> Result<Box<dyn Pool>> {
    options::<NoOptions>(config)?;
    Ok(Box::new(MockPool))
}

impl Pool for MockPool {
    fn build(&self, spec: ProviderSpec<'_>) -> Result<Built> {
        Ok(Built {
            provider: Arc::new(MockProvider::echo(spec.config.model_name.clone())),
            endpoint: Some("built-in mock".to_owned()),
        })
    }
}
