//! Qwen on DashScope (`llm-qwen`, feature `qwen`): the native API or compatible mode.
//!
//! `api_base` is the base DashScope documents: `https://dashscope.aliyuncs.com/api/v1`
//! (native, the default), `…/compatible-mode/v1` (compatible mode), or a regional host.
//! Options (env in brackets): `api` (`native` | `compatible`; default: from the base URL)
//! [`QWEN_API_MODE`], `multimodal` (bool; default: from the model name)
//! [`QWEN_MULTIMODAL`], `workspace` (`X-DashScope-WorkSpace`) [`QWEN_WORKSPACE`].

use super::{Builtin, always};
use crate::ProviderType;

/// Qwen.
pub(crate) static QWEN: Builtin = Builtin {
    kind: ProviderType::Qwen,
    aliases: &["dashscope"],
    env_prefix: "QWEN",
    env_options: &[
        ("API_MODE", "api"),
        ("MULTIMODAL", "multimodal"),
        ("WORKSPACE", "workspace"),
    ],
    needs_key: always,
    pool: imp::pool,
};

#[cfg(feature = "qwen")]
mod imp {
    use std::sync::Arc;

    use llm_core::Result;
    use llm_http::{Limits, Timeouts};
    use llm_qwen::{QwenApi, QwenConfig, QwenProvider};
    use serde::Deserialize;

    use crate::{
        ModelConfig,
        providers::{BuildContext, Built, CONNECT_TIMEOUT, Pool, key, options},
        registry::ProviderSpec,
    };

    #[derive(Debug, Clone, Copy, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Api {
        Native,
        #[serde(alias = "compatible_mode", alias = "compatible-mode", alias = "openai")]
        Compatible,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        api: Option<Api>,
        multimodal: Option<bool>,
        workspace: Option<String>,
    }

    struct QwenPool {
        http: llm_http::HttpClient,
        timeouts: Timeouts,
        limits: Limits,
        options: Options,
    }

    pub(crate) fn pool(config: &ModelConfig, context: &BuildContext) -> Result<Box<dyn Pool>> {
        let options = options::<Options>(config)?;
        let timeouts = Timeouts::connect_only(CONNECT_TIMEOUT);
        Ok(Box::new(QwenPool {
            http: llm_http::http_client_with(&timeouts, context.max_idle_upstream_connections)?,
            timeouts,
            limits: Limits {
                max_body_bytes: context.max_upstream_body_bytes,
                ..Limits::default()
            },
            options,
        }))
    }

    impl Pool for QwenPool {
        fn build(&self, spec: ProviderSpec<'_>) -> Result<Built> {
            let config = spec.config;
            let mut qwen = QwenConfig::new(String::new());
            qwen.api_key = key(&spec)?.clone();
            if let Some(base) = spec.api_base {
                base.clone_into(&mut qwen.base_url);
            }
            qwen.api = self.options.api.map(|api| match api {
                Api::Native => QwenApi::Native,
                Api::Compatible => QwenApi::Compatible,
            });
            qwen.multimodal = self.options.multimodal;
            qwen.workspace.clone_from(&self.options.workspace);
            qwen.model = Some(
                config
                    .deployment
                    .clone()
                    .unwrap_or_else(|| config.model_name.clone()),
            );
            qwen.timeouts = self.timeouts;
            qwen.limits = self.limits;
            let shown = format!(
                "{} ({})",
                qwen.base_url.trim_end_matches('/'),
                match qwen.resolved_api() {
                    QwenApi::Native => "native API",
                    QwenApi::Compatible => "compatible mode",
                }
            );
            Ok(Built {
                provider: Arc::new(QwenProvider::with_http_client(qwen, self.http.clone())?),
                endpoint: Some(shown),
            })
        }
    }
}

#[cfg(not(feature = "qwen"))]
mod imp {
    use llm_core::Result;

    use crate::{
        ModelConfig,
        providers::{BuildContext, Pool, not_compiled},
    };

    pub(crate) fn pool(config: &ModelConfig, _context: &BuildContext) -> Result<Box<dyn Pool>> {
        Err(not_compiled(config, "qwen"))
    }
}
