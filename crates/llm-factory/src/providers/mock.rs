//! The built-in offline mock provider; no keys, no network. It echoes the last user
//! message, or answers `options.reply`; `options.chunk_delay_ms` paces its streams (for
//! demos and for tests of long-lived streams).

use std::{sync::Arc, time::Duration};

use llm_core::{MockConfig, MockProvider, MockReply, Result};
use serde::Deserialize;

use super::{BuildContext, Built, Builtin, Pool, never, options};
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// A fixed answer instead of the echo.
    reply: Option<String>,
    /// Milliseconds between streamed chunks.
    chunk_delay_ms: Option<u64>,
}

struct MockPool(Options);

fn pool(config: &ModelConfig, _context: &BuildContext) -> Result<Box<dyn Pool>> {
    Ok(Box::new(MockPool(options::<Options>(config)?)))
}

impl Pool for MockPool {
    fn build(&self, spec: ProviderSpec<'_>) -> Result<Built> {
        let model = spec.config.model_name.clone();
        let provider = match &self.0 {
            Options {
                reply: None,
                chunk_delay_ms: None,
            } => MockProvider::echo(model),
            Options {
                reply,
                chunk_delay_ms,
            } => MockProvider::new(
                "mock",
                MockConfig {
                    model,
                    reply: reply.clone().map_or(MockReply::Echo, MockReply::Text),
                    chunk_delay: Duration::from_millis(chunk_delay_ms.unwrap_or(0)),
                    ..MockConfig::default()
                },
            ),
        };
        Ok(Built {
            provider: Arc::new(provider),
            endpoint: Some("built-in mock".to_owned()),
        })
    }
}
