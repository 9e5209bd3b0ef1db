//! Turning a [`ModelConfig`] into deployments: one provider instance per key (and base),
//! built by the entry's provider module (`providers/`) or a registered constructor.

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use llm_balance::{DeploymentConfig, DeploymentTimeouts};
use llm_core::{ChatProvider, ConfigError, Error, Result, SecretString, mask_key};

use crate::{
    ModelConfig, ProviderType,
    config::seconds,
    defaults::WithDefaults,
    providers::{self, BuildContext, Built, Pool, config_error},
};

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
    /// This deployment's region, if the entry has regions (Claude on Bedrock: one
    /// deployment per region and key).
    pub region: Option<&'a str>,
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
    context: &BuildContext,
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
    let regions = config.region_list();
    if regions[0].is_some()
        && providers::builtin(&config.provider).is_some()
        && config.provider != ProviderType::Claude
    {
        return Err(ConfigError::new(format!(
            "region / regions apply to Claude on Bedrock, not to provider `{}`",
            config.provider
        ))
        .at_field(at("region"))
        .into());
    }
    let pool = pool_for(config, registry, context).map_err(|error| locate(error, position))?;
    let placed: Vec<_> = regions
        .iter()
        .flat_map(|region| pairs.iter().map(move |(key, base)| (*key, *base, *region)))
        .collect();
    let mut out = Vec::with_capacity(placed.len());
    for (index, (api_key, api_base, region)) in placed.into_iter().enumerate() {
        let spec = ProviderSpec {
            config,
            api_key,
            api_base,
            region,
        };
        let Built { provider, endpoint } =
            pool.build(spec).map_err(|error| locate(error, position))?;
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
        let shared_key = context.fingerprint_key.as_ref().map(|secret| {
            crate::shared::identity(secret, config, api_key, endpoint.as_deref(), region)
        });
        let key_hint = api_key.map(mask_key);
        let id = match &key_hint {
            Some(hint) => format!("{}/{}/{hint}", config.provider, config.model_name),
            None if index == 0 => format!("{}/{}/{position}", config.provider, config.model_name),
            None => format!(
                "{}/{}/{position}.{index}",
                config.provider, config.model_name
            ),
        };
        let id = match region {
            Some(region) => format!("{id}@{region}"),
            None => id,
        };
        out.push((
            provider,
            DeploymentConfig {
                key_hint,
                endpoint,
                weight: config.weight.unwrap_or(1),
                priority: config.priority.unwrap_or(0),
                rpm: config.rpm,
                tpm: config.tpm,
                timeouts,
                shared_key,
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

/// The deployments' builder for `config`: its built-in provider, or a registered one.
fn pool_for(
    config: &ModelConfig,
    registry: &Registry,
    context: &BuildContext,
) -> Result<Box<dyn Pool>> {
    if let Some(builtin) = providers::builtin(&config.provider) {
        return (builtin.pool)(config, context);
    }
    let ProviderType::Custom(name) = &config.provider else {
        return Err(config_error(
            "provider",
            format!("provider `{}` has no builder", config.provider),
        ));
    };
    match registry.constructors.get(name) {
        Some(constructor) => Ok(Box::new(Registered(Arc::clone(constructor)))),
        None => {
            let registered = registry.names();
            let builtins: Vec<&str> = providers::BUILTINS
                .iter()
                .map(|b| b.kind.as_str())
                .collect();
            Err(config_error(
                "provider",
                format!(
                    "unknown provider `{name}`: built in are {}{}",
                    builtins.join(", "),
                    if registered.is_empty() {
                        "; none is registered".to_owned()
                    } else {
                        format!("; registered: {}", registered.join(", "))
                    }
                ),
            ))
        }
    }
}

/// A provider registered by name, built like a built-in one.
struct Registered(ProviderConstructor);

impl Pool for Registered {
    fn build(&self, spec: ProviderSpec<'_>) -> Result<Built> {
        Ok(Built {
            provider: (self.0)(spec)?,
            endpoint: spec.api_base.map(str::to_owned),
        })
    }
}
