//! OpenAI and Azure OpenAI (`llm-openai`, feature `openai`).
//!
//! `openai` is Azure OpenAI when the entry has an API version or an Azure host (as in the
//! original LLM Factory, whose `openai` provider is Azure OpenAI); `azure_openai` always is.

use super::{Builtin, always};
use crate::ProviderType;

/// OpenAI (or Azure OpenAI by base URL / API version).
pub(crate) static OPENAI: Builtin = Builtin {
    kind: ProviderType::OpenAi,
    aliases: &[],
    env_prefix: "OPENAI",
    env_options: &[],
    needs_key: always,
    pool: imp::pool,
};

/// Azure OpenAI.
pub(crate) static AZURE: Builtin = Builtin {
    kind: ProviderType::AzureOpenAi,
    aliases: &["azure", "azure-openai"],
    env_prefix: "AZURE_OPENAI",
    env_options: &[],
    needs_key: always,
    pool: imp::pool,
};

#[cfg(feature = "openai")]
mod imp {
    use std::sync::Arc;

    use llm_core::Result;
    use llm_openai::{
        AzureAuth, AzureOpenAiConfig, AzureOpenAiProvider, Limits, OpenAiConfig, OpenAiProvider,
        Timeouts,
    };

    use crate::{
        ModelConfig, ProviderType,
        providers::{
            BuildContext, Built, CONNECT_TIMEOUT, NoOptions, Pool, config_error, key, options,
        },
        registry::ProviderSpec,
    };

    struct OpenAiPool {
        http: llm_openai::HttpClient,
        timeouts: Timeouts,
        limits: Limits,
    }

    pub(crate) fn pool(config: &ModelConfig, context: &BuildContext) -> Result<Box<dyn Pool>> {
        options::<NoOptions>(config)?;
        let timeouts = Timeouts::connect_only(CONNECT_TIMEOUT);
        Ok(Box::new(OpenAiPool {
            http: llm_openai::http_client_with(&timeouts, context.max_idle_upstream_connections)?,
            timeouts,
            limits: Limits {
                max_body_bytes: context.max_upstream_body_bytes,
                ..Limits::default()
            },
        }))
    }

    /// Whether `base` is an Azure OpenAI resource host.
    pub(super) fn is_azure_host(base: &str) -> bool {
        let host = base
            .split("://")
            .nth(1)
            .unwrap_or(base)
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        [
            ".openai.azure.com",
            ".cognitiveservices.azure.com",
            ".services.ai.azure.com",
        ]
        .iter()
        .any(|suffix| host.ends_with(suffix))
    }

    impl Pool for OpenAiPool {
        fn build(&self, spec: ProviderSpec<'_>) -> Result<Built> {
            let config = spec.config;
            let key = key(&spec)?;
            let deployment = config
                .deployment
                .clone()
                .unwrap_or_else(|| config.model_name.clone());
            let azure = config.provider == ProviderType::AzureOpenAi
                || config.api_version.is_some()
                || spec.api_base.is_some_and(is_azure_host);
            if azure {
                let endpoint = spec.api_base.ok_or_else(|| {
                    config_error(
                        "api_base",
                        "an Azure OpenAI deployment needs api_base: the resource endpoint, such as https://NAME.openai.azure.com",
                    )
                })?;
                let shown = match &config.api_version {
                    Some(version) => format!(
                        "{} (deployment {deployment}, api-version {version})",
                        endpoint.trim_end_matches('/')
                    ),
                    None => format!("{} (v1 API)", endpoint.trim_end_matches('/')),
                };
                let provider = AzureOpenAiProvider::with_http_client(
                    AzureOpenAiConfig {
                        endpoint: endpoint.to_owned(),
                        auth: AzureAuth::ApiKey(key.clone()),
                        deployment: Some(deployment),
                        api_version: config.api_version.clone(),
                        model: Some(config.model_name.clone()),
                        name: None,
                        timeouts: self.timeouts,
                        limits: self.limits,
                    },
                    self.http.clone(),
                )?;
                return Ok(Built {
                    provider: Arc::new(provider),
                    endpoint: Some(shown),
                });
            }
            let mut openai = OpenAiConfig::new(String::new());
            openai.api_key = key.clone();
            if let Some(base) = spec.api_base {
                base.clone_into(&mut openai.base_url);
            }
            openai.model = Some(deployment);
            openai.timeouts = self.timeouts;
            openai.limits = self.limits;
            let shown = openai.base_url.trim_end_matches('/').to_owned();
            let provider = OpenAiProvider::with_http_client(openai, self.http.clone())?;
            Ok(Built {
                provider: Arc::new(provider),
                endpoint: Some(shown),
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn azure_hosts() {
            assert!(is_azure_host("https://account1.openai.azure.com"));
            assert!(is_azure_host("https://x.cognitiveservices.azure.com/"));
            assert!(is_azure_host("https://x.services.ai.azure.com:443/openai"));
            assert!(!is_azure_host("https://api.openai.com/v1"));
            assert!(!is_azure_host("https://openai.azure.com.evil.example"));
        }
    }
}

#[cfg(not(feature = "openai"))]
mod imp {
    use llm_core::Result;

    use crate::{
        ModelConfig,
        providers::{BuildContext, Pool, not_compiled},
    };

    pub(crate) fn pool(config: &ModelConfig, _context: &BuildContext) -> Result<Box<dyn Pool>> {
        Err(not_compiled(config, "openai"))
    }
}
