//! Turning a [`ModelConfig`] into deployments: one provider instance per key (and base).
//!
//! Adding a provider crate means one feature and one match arm in [`provider_for`].

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use llm_balance::{DeploymentConfig, DeploymentTimeouts};
use llm_core::{ChatProvider, ConfigError, Error, MockProvider, Result, SecretString, mask_key};

use crate::{ModelConfig, ProviderType, config::seconds, defaults::WithDefaults};

/// What a registered provider constructor gets: the model's configuration and the one key
/// and base of the deployment being built.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ProviderSpec<'a> {
    /// The whole entry.
    pub config: &'a ModelConfig,
    /// This deployment's key, if the entry has keys.
    pub api_key: Option<&'a SecretString>,
    /// This deployment's base, if the entry has bases.
    pub api_base: Option<&'a str>,
}

/// Builds a provider for a registered provider name.
pub type ProviderConstructor =
    Arc<dyn Fn(ProviderSpec<'_>) -> Result<Arc<dyn ChatProvider>> + Send + Sync>;

/// Constructors of user-registered providers, by name.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    constructors: BTreeMap<String, ProviderConstructor>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.constructors.keys()).finish()
    }
}

impl Registry {
    pub(crate) fn insert(&mut self, name: String, constructor: ProviderConstructor) {
        self.constructors.insert(name, constructor);
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.constructors.keys().cloned().collect()
    }
}

fn secs(
    value: Option<f64>,
    default: Duration,
    field: &str,
) -> std::result::Result<Duration, ConfigError> {
    value.map_or(Ok(default), |v| seconds(v, field))
}

/// The deployments of one entry, `providers[position]`: a provider and its settings each.
pub(crate) fn deployments(
    config: &ModelConfig,
    position: usize,
    registry: &Registry,
) -> Result<Vec<(Arc<dyn ChatProvider>, DeploymentConfig)>> {
    let at = |field: &str| format!("providers[{position}].{field}");
    if config.model_name.trim().is_empty() {
        return Err(ConfigError::new("model_name is empty")
            .at_field(at("model_name"))
            .into());
    }
    let pairs = config
        .key_base_pairs()
        .map_err(|e| e.at_field(at("api_bases")))?;
    let defaults = DeploymentTimeouts::default();
    let timeouts = DeploymentTimeouts {
        total: secs(config.timeout, defaults.total, &at("timeout"))?,
        first_token: secs(
            config.first_token_timeout,
            defaults.first_token,
            &at("first_token_timeout"),
        )?,
        idle: secs(config.idle_timeout, defaults.idle, &at("idle_timeout"))?,
    };
    let shared = Shared::new(config, timeouts)?;
    let mut out = Vec::with_capacity(pairs.len());
    for (index, (api_key, api_base)) in pairs.into_iter().enumerate() {
        let spec = ProviderSpec {
            config,
            api_key,
            api_base,
        };
        let provider =
            provider_for(spec, &shared, registry).map_err(|error| locate(error, position))?;
        let provider: Arc<dyn ChatProvider> =
            if config.max_tokens.is_some() || config.temperature.is_some() {
                Arc::new(WithDefaults::new(
                    provider,
                    config.max_tokens,
                    config.temperature,
                ))
            } else {
                provider
            };
        let key_hint = api_key.map(mask_key);
        let id = match &key_hint {
            Some(hint) => format!("{}/{}/{hint}", config.provider, config.model_name),
            None if index == 0 => format!("{}/{}/{position}", config.provider, config.model_name),
            None => format!(
                "{}/{}/{position}.{index}",
                config.provider, config.model_name
            ),
        };
        out.push((
            provider,
            DeploymentConfig {
                key_hint,
                weight: config.weight.unwrap_or(1),
                priority: config.priority.unwrap_or(0),
                rpm: config.rpm,
                tpm: config.tpm,
                timeouts,
                ..DeploymentConfig::new(id, config.model_name.clone())
            },
        ));
    }
    Ok(out)
}

/// Place a configuration error in `providers[position]`: a field relative to the entry
/// (`provider`, `api_key`) becomes `providers[1].provider`; no field becomes the entry.
fn locate(error: Error, position: usize) -> Error {
    match error {
        Error::Config(mut config) => {
            let entry = format!("providers[{position}]");
            config.field = Some(match config.field.take() {
                Some(field) if !field.starts_with("providers[") => format!("{entry}.{field}"),
                Some(field) => field,
                None => entry,
            });
            Error::Config(config)
        }
        other => other,
    }
}

fn config_error(field: &str, message: impl Into<String>) -> Error {
    ConfigError::new(message).at_field(field.to_owned()).into()
}

/// What the deployments of one entry share (one connection pool per entry).
struct Shared {
    #[cfg(feature = "openai")]
    openai: Option<(llm_openai::reqwest::Client, llm_openai::Timeouts)>,
}

impl Shared {
    #[cfg_attr(
        not(feature = "openai"),
        expect(clippy::unnecessary_wraps, reason = "fallible with the openai feature")
    )]
    fn new(config: &ModelConfig, timeouts: DeploymentTimeouts) -> Result<Self> {
        #[cfg(feature = "openai")]
        {
            let openai = if matches!(
                config.provider,
                ProviderType::OpenAi | ProviderType::AzureOpenAi
            ) {
                let provider_timeouts = llm_openai::Timeouts {
                    first_byte: timeouts.first_token,
                    idle: timeouts.idle,
                    total: timeouts.total,
                    ..llm_openai::Timeouts::default()
                };
                Some((
                    llm_openai::http_client(&provider_timeouts)?,
                    provider_timeouts,
                ))
            } else {
                None
            };
            Ok(Self { openai })
        }
        #[cfg(not(feature = "openai"))]
        {
            let _ = (config, timeouts);
            Ok(Self {})
        }
    }
}

fn not_yet(provider: &ProviderType, krate: &str, feature: &str) -> Error {
    config_error(
        "provider",
        format!(
            "provider `{provider}` is not available in this build yet: its crate `{krate}` is not implemented (it will come with the `{feature}` feature of llm-factory)"
        ),
    )
}

/// The one place that maps a provider type to a provider crate.
fn provider_for(
    spec: ProviderSpec<'_>,
    shared: &Shared,
    registry: &Registry,
) -> Result<Arc<dyn ChatProvider>> {
    let config = spec.config;
    match &config.provider {
        ProviderType::OpenAi | ProviderType::AzureOpenAi => openai(spec, shared),
        ProviderType::Qwen => Err(not_yet(&config.provider, "llm-qwen", "qwen")),
        ProviderType::DeepSeek => Err(not_yet(&config.provider, "llm-deepseek", "deepseek")),
        ProviderType::Claude => Err(not_yet(
            &config.provider,
            "llm-claude-bedrock",
            "claude-bedrock",
        )),
        ProviderType::Gemini => Err(not_yet(&config.provider, "llm-gemini", "gemini")),
        ProviderType::Mock => Ok(Arc::new(MockProvider::echo(config.model_name.clone()))),
        ProviderType::Custom(name) => match registry.constructors.get(name) {
            Some(constructor) => constructor(spec),
            None => {
                let registered = registry.names();
                Err(config_error(
                    "provider",
                    format!(
                        "unknown provider `{name}`: built in are openai, azure_openai, qwen, deepseek, claude, gemini and mock{}",
                        if registered.is_empty() {
                            "; none is registered".to_owned()
                        } else {
                            format!("; registered: {}", registered.join(", "))
                        }
                    ),
                ))
            }
        },
    }
}

/// Whether `base` is an Azure OpenAI resource host.
#[cfg(feature = "openai")]
fn is_azure_host(base: &str) -> bool {
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

#[cfg(feature = "openai")]
fn openai(spec: ProviderSpec<'_>, shared: &Shared) -> Result<Arc<dyn ChatProvider>> {
    use llm_openai::{
        AzureAuth, AzureOpenAiConfig, AzureOpenAiProvider, OpenAiConfig, OpenAiProvider,
    };

    let config = spec.config;
    let key = spec
        .api_key
        .ok_or_else(|| config_error("api_key", "api_key (or api_keys) is missing"))?;
    let (http, timeouts) = shared
        .openai
        .clone()
        .ok_or_else(|| Error::config("the OpenAI client was not prepared"))?;
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
        let provider = AzureOpenAiProvider::with_http_client(
            AzureOpenAiConfig {
                endpoint: endpoint.to_owned(),
                auth: AzureAuth::ApiKey(key.clone()),
                deployment: Some(
                    config
                        .deployment
                        .clone()
                        .unwrap_or_else(|| config.model_name.clone()),
                ),
                api_version: config.api_version.clone(),
                model: Some(config.model_name.clone()),
                name: None,
                timeouts,
            },
            http,
        )?;
        return Ok(Arc::new(provider));
    }
    let mut openai = OpenAiConfig::new(String::new());
    openai.api_key = key.clone();
    if let Some(base) = spec.api_base {
        base.clone_into(&mut openai.base_url);
    }
    openai.model = Some(
        config
            .deployment
            .clone()
            .unwrap_or_else(|| config.model_name.clone()),
    );
    openai.timeouts = timeouts;
    Ok(Arc::new(OpenAiProvider::with_http_client(openai, http)?))
}

#[cfg(not(feature = "openai"))]
fn openai(spec: ProviderSpec<'_>, _shared: &Shared) -> Result<Arc<dyn ChatProvider>> {
    Err(config_error(
        "provider",
        format!(
            "provider `{}` is not compiled in: enable the `openai` feature of llm-factory",
            spec.config.provider
        ),
    ))
}

#[cfg(all(test, feature = "openai"))]
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
