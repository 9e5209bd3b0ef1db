//! DeepSeek (`llm-deepseek`, feature `deepseek`).
//!
//! Options: `thinks_by_default` (bool, default true; env `DEEPSEEK_THINKS_BY_DEFAULT`):
//! whether models other than `deepseek-chat` / `deepseek-reasoner` think when a request
//! does not say. The keys of one entry share one reasoning cache, so a tool loop keeps its
//! reasoning when the balancer moves it to another key.

use super::{Builtin, always};
use crate::ProviderType;

/// DeepSeek.
pub(crate) static DEEPSEEK: Builtin = Builtin {
    kind: ProviderType::DeepSeek,
    aliases: &[],
    env_prefix: "DEEPSEEK",
    env_options: &[("THINKS_BY_DEFAULT", "thinks_by_default")],
    needs_key: always,
    pool: imp::pool,
};

#[cfg(feature = "deepseek")]
mod imp {
    use std::sync::Arc;

    use llm_core::Result;
    use llm_deepseek::{DeepSeekConfig, DeepSeekProvider, ReasoningCache};
    use llm_openai::{Limits, Timeouts};
    use serde::Deserialize;

    use crate::{
        ModelConfig,
        providers::{BuildContext, Built, CONNECT_TIMEOUT, Pool, key, options},
        registry::ProviderSpec,
    };

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        thinks_by_default: Option<bool>,
    }

    struct DeepSeekPool {
        http: llm_openai::HttpClient,
        timeouts: Timeouts,
        limits: Limits,
        options: Options,
        cache: Arc<ReasoningCache>,
    }

    pub(crate) fn pool(config: &ModelConfig, context: &BuildContext) -> Result<Box<dyn Pool>> {
        let options = options::<Options>(config)?;
        let timeouts = Timeouts::connect_only(CONNECT_TIMEOUT);
        Ok(Box::new(DeepSeekPool {
            http: llm_openai::http_client_with(&timeouts, context.max_idle_upstream_connections)?,
            timeouts,
            limits: Limits {
                max_body_bytes: context.max_upstream_body_bytes,
                ..Limits::default()
            },
            options,
            cache: Arc::default(),
        }))
    }

    impl Pool for DeepSeekPool {
        fn build(&self, spec: ProviderSpec<'_>) -> Result<Built> {
            let config = spec.config;
            let mut deepseek = DeepSeekConfig::new(String::new());
            deepseek.api_key = key(&spec)?.clone();
            if let Some(base) = spec.api_base {
                base.clone_into(&mut deepseek.base_url);
            }
            deepseek.model = Some(
                config
                    .deployment
                    .clone()
                    .unwrap_or_else(|| config.model_name.clone()),
            );
            deepseek.timeouts = self.timeouts;
            deepseek.limits = self.limits;
            deepseek.reasoning_cache = Arc::clone(&self.cache);
            if let Some(thinks) = self.options.thinks_by_default {
                deepseek.thinks_by_default = thinks;
            }
            let shown = deepseek.base_url.trim_end_matches('/').to_owned();
            Ok(Built {
                provider: Arc::new(DeepSeekProvider::with_http_client(
                    deepseek,
                    self.http.clone(),
                )?),
                endpoint: Some(shown),
            })
        }
    }
}

#[cfg(not(feature = "deepseek"))]
mod imp {
    use llm_core::Result;

    use crate::{
        ModelConfig,
        providers::{BuildContext, Pool, not_compiled},
    };

    pub(crate) fn pool(config: &ModelConfig, _context: &BuildContext) -> Result<Box<dyn Pool>> {
        Err(not_compiled(config, "deepseek"))
    }
}
