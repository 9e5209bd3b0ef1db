//! Configuration: [`ModelConfig`] per provider entry, router and server settings, and the
//! loaders for environment variables, `.env` files and YAML.
//!
//! This module is the only place in the workspace that reads the environment.

pub(crate) mod env;
pub(crate) mod yaml;

use std::{collections::BTreeMap, fmt, str::FromStr, time::Duration};

use llm_balance::{CooldownPolicy, RetryBudgetConfig, RouterConfig, StrategyKind};
use llm_core::{ConfigError, Error, Result, SecretString, mask_key};
use serde::{Deserialize, Deserializer};

pub(crate) use env::from_env_map;
pub use env::{ENV_PREFIXES, load_env};
pub(crate) use yaml::{from_yaml_str, line_of};

/// Which provider a [`ModelConfig`] talks to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ProviderType {
    /// OpenAI, or Azure OpenAI when an API version or an Azure host is given (as in the
    /// original LLM Factory, whose `openai` provider is Azure OpenAI).
    #[default]
    OpenAi,
    /// Azure OpenAI, explicitly.
    AzureOpenAi,
    /// Qwen on Alibaba DashScope.
    Qwen,
    /// DeepSeek.
    DeepSeek,
    /// Claude on AWS Bedrock.
    Claude,
    /// Gemini on AI Studio or Vertex AI.
    Gemini,
    /// The built-in offline mock provider (echoes the last user message).
    Mock,
    /// A provider registered by name with
    /// [`LlmFactoryBuilder::register_provider`](crate::LlmFactoryBuilder::register_provider).
    Custom(String),
}

impl ProviderType {
    /// The name used in configuration files.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::OpenAi => "openai",
            Self::AzureOpenAi => "azure_openai",
            Self::Qwen => "qwen",
            Self::DeepSeek => "deepseek",
            Self::Claude => "claude",
            Self::Gemini => "gemini",
            Self::Mock => "mock",
            Self::Custom(name) => name,
        }
    }
}

impl fmt::Display for ProviderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderType {
    type Err = Error;

    /// Known names (case-insensitive) map to their variant; any other non-empty name is a
    /// [`ProviderType::Custom`] name, checked against the registered providers when the
    /// factory is built.
    fn from_str(name: &str) -> Result<Self> {
        if name.trim().is_empty() {
            return Err(Error::config("the provider name is empty"));
        }
        Ok(crate::providers::by_name(name).map_or_else(
            || Self::Custom(name.trim().to_owned()),
            |builtin| builtin.kind.clone(),
        ))
    }
}

impl<'de> Deserialize<'de> for ProviderType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One deployment's key and base, either of which may be absent.
pub(crate) type KeyBase<'a> = (Option<&'a SecretString>, Option<&'a str>);

/// One configured model of one provider, with one or many keys (and bases), as in the
/// original LLM Factory's `ModelConfig`.
///
/// Keys and bases pair by position; one base serves every key. Each key becomes one
/// deployment of the model group `model_name`.
///
/// ```
/// use llm_factory::{ModelConfig, ProviderType};
///
/// let config = ModelConfig {
///     provider: ProviderType::OpenAi,
///     model_name: "gpt-4o".into(),
///     api_key: Some("your-api-key".into()),
///     api_base: Some("https://account1.openai.azure.com".into()),
///     api_version: Some("2024-02-15-preview".into()),
///     ..ModelConfig::default()
/// };
/// assert!(!format!("{config:?}").contains("your-api-key"));
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The provider.
    pub provider: ProviderType,
    /// The model (for Azure, also the default deployment name). Requests use this name.
    pub model_name: String,
    /// One API key.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Several API keys, one deployment each.
    #[serde(default)]
    pub api_keys: Vec<SecretString>,
    /// One API base (for Azure, the resource endpoint).
    #[serde(default)]
    pub api_base: Option<String>,
    /// Several API bases, paired with the keys by position.
    #[serde(default)]
    pub api_bases: Vec<String>,
    /// The API version (Azure OpenAI).
    #[serde(default)]
    pub api_version: Option<String>,
    /// The Azure deployment name, when it differs from `model_name`.
    #[serde(default)]
    pub deployment: Option<String>,
    /// Default `max_tokens` for requests that set none.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Default `temperature` for requests that set none.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Share of the group's traffic (default 1).
    #[serde(default)]
    pub weight: Option<u32>,
    /// For `first_available`: lower is tried first (default 0).
    #[serde(default)]
    pub priority: Option<u32>,
    /// Requests per minute per key.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens per minute per key.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Seconds for a whole non-streaming call.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Seconds until a stream's first content.
    #[serde(default)]
    pub first_token_timeout: Option<f64>,
    /// Seconds a stream may stay silent between chunks.
    #[serde(default)]
    pub idle_timeout: Option<f64>,
    /// Other names requests may use for this model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// AWS region (Claude on Bedrock).
    #[serde(default)]
    pub region: Option<String>,
    /// Several AWS regions, one deployment each (Claude on Bedrock).
    #[serde(default)]
    pub regions: Vec<String>,
    /// AWS access key id (Claude on Bedrock, static keys: one account per entry).
    #[serde(default)]
    pub aws_access_key_id: Option<String>,
    /// AWS secret access key (Claude on Bedrock, with `aws_access_key_id`).
    #[serde(default)]
    pub aws_secret_access_key: Option<SecretString>,
    /// AWS session token of temporary credentials (Claude on Bedrock).
    #[serde(default)]
    pub aws_session_token: Option<SecretString>,
    /// A named profile of the AWS shared config files (Claude on Bedrock, credential chain).
    #[serde(default)]
    pub aws_profile: Option<String>,
    /// Google Cloud project (Gemini on Vertex AI).
    #[serde(default)]
    pub project: Option<String>,
    /// Google Cloud location (Gemini on Vertex AI).
    #[serde(default)]
    pub location: Option<String>,
    /// Service-account credentials file (Gemini on Vertex AI).
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// The provider's own settings (Qwen's `api` and `multimodal`, DeepSeek's
    /// `thinks_by_default`, …): see each provider's section in the README. Unknown options
    /// are refused.
    #[serde(default)]
    pub options: BTreeMap<String, serde_json::Value>,
}

impl ModelConfig {
    /// A config for `model_name` on `provider` with one key.
    #[must_use]
    pub fn new(
        provider: ProviderType,
        model_name: impl Into<String>,
        api_key: impl Into<String>,
    ) -> Self {
        Self {
            provider,
            model_name: model_name.into(),
            api_key: Some(SecretString::from(api_key.into())),
            ..Self::default()
        }
    }

    /// Every key, `api_key` first.
    pub(crate) fn keys(&self) -> Vec<&SecretString> {
        self.api_key.iter().chain(&self.api_keys).collect()
    }

    /// Every region, `region` first; `[None]` when none is set (one deployment per region).
    pub(crate) fn region_list(&self) -> Vec<Option<&str>> {
        let regions: Vec<Option<&str>> = self
            .region
            .iter()
            .chain(&self.regions)
            .map(|r| Some(r.as_str()))
            .collect();
        if regions.is_empty() {
            vec![None]
        } else {
            regions
        }
    }

    /// Every base, `api_base` first.
    pub(crate) fn bases(&self) -> Vec<&str> {
        self.api_base
            .iter()
            .map(String::as_str)
            .chain(self.api_bases.iter().map(String::as_str))
            .collect()
    }

    /// Keys paired with bases: by position, or one base for all keys.
    ///
    /// # Errors
    ///
    /// A configuration error naming both counts when they cannot be paired.
    pub(crate) fn key_base_pairs(&self) -> std::result::Result<Vec<KeyBase<'_>>, ConfigError> {
        let keys = self.keys();
        let bases = self.bases();
        match (keys.len(), bases.len()) {
            (0, 0) => Ok(vec![(None, None)]),
            (0, _) => Ok(bases.into_iter().map(|b| (None, Some(b))).collect()),
            (_, 0) => Ok(keys.into_iter().map(|k| (Some(k), None)).collect()),
            (_, 1) => Ok(keys
                .into_iter()
                .map(|k| (Some(k), Some(bases[0])))
                .collect()),
            (k, b) if k == b => Ok(keys
                .into_iter()
                .zip(bases)
                .map(|(k, b)| (Some(k), Some(b)))
                .collect()),
            (k, b) => Err(ConfigError::new(format!(
                "{k} API keys and {b} API bases cannot be paired: give one base for all keys, or exactly one base per key"
            ))),
        }
    }
}

impl fmt::Debug for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.keys().into_iter().map(mask_key).collect();
        f.debug_struct("ModelConfig")
            .field("provider", &self.provider)
            .field("model_name", &self.model_name)
            .field("keys", &keys)
            .field("bases", &self.bases())
            .field("api_version", &self.api_version)
            .field("deployment", &self.deployment)
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .field("weight", &self.weight)
            .field("priority", &self.priority)
            .field("aliases", &self.aliases)
            .field("region", &self.region)
            .field("regions", &self.regions)
            .field(
                "aws_access_key_id",
                &self
                    .aws_access_key_id
                    .as_deref()
                    .map(|id| mask_key(&SecretString::from(id))),
            )
            .field(
                "aws_secret_access_key",
                &self.aws_secret_access_key.as_ref().map(mask_key),
            )
            .field(
                "aws_session_token",
                &self.aws_session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("aws_profile", &self.aws_profile)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The `router:` section: strategy, failover and cooldown settings. Durations are seconds.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSettings {
    /// `round_robin`, `random`, `weighted`, `first_available`, `least_busy` or `latency`.
    #[serde(default)]
    pub strategy: Option<StrategyKind>,
    /// Passes over a model's keys before its fallbacks.
    #[serde(default)]
    pub max_rounds: Option<u32>,
    /// Seconds a whole request may take, failover included.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// The longest wait, in seconds, for a resting deployment when all rest.
    #[serde(default)]
    pub max_wait: Option<f64>,
    /// Groups tried when a model's own keys all failed.
    #[serde(default)]
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// Larger-context groups tried when a request is too long.
    #[serde(default)]
    pub context_window_fallbacks: BTreeMap<String, Vec<String>>,
    /// Cooldown settings.
    #[serde(default)]
    pub cooldown: CooldownSettings,
    /// Retry budget settings.
    #[serde(default)]
    pub retry_budget: Option<RetryBudgetSettings>,
    /// Share deployments' cooldowns, probes and rpm/tpm windows with other replicas
    /// through Redis: `redis://[:password@]host:port[/db]`, `rediss://` (TLS),
    /// `redis+unix:///path` or `redis+sentinel://host:26379[,…]/service[/db]` (feature
    /// `redis`). Off when unset; also
    /// `LLM_FACTORY_REDIS_URL`. See `docs/scale-out.md`.
    #[serde(default)]
    pub shared_state: Option<SecretSetting>,
    /// The key of the keyed hash (HMAC-SHA-256) that identifies a credential in shared
    /// state, the same on every replica. Default: the password of `shared_state`'s URL.
    /// Also `LLM_FACTORY_SHARED_STATE_SECRET`.
    #[serde(default)]
    pub shared_state_secret: Option<SecretSetting>,
}

/// A secret setting (a URL with a password, a key): never shown, compared by value.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretSetting(pub SecretString);

impl SecretSetting {
    /// A secret setting holding `value`.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }
}

impl PartialEq for SecretSetting {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret as _;
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// The `router.cooldown:` section, in seconds.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CooldownSettings {
    /// After a rate limit without `Retry-After`.
    #[serde(default)]
    pub rate_limited: Option<f64>,
    /// The longest `Retry-After` honoured.
    #[serde(default)]
    pub max_retry_after: Option<f64>,
    /// After a rejected key or exhausted quota.
    #[serde(default)]
    pub credential: Option<f64>,
    /// Consecutive transient failures before a cooldown.
    #[serde(default)]
    pub failure_threshold: Option<u32>,
    /// The share of failures, in percent, among a deployment's last 32 outcomes at or above
    /// which it may rest (default 60).
    #[serde(default)]
    pub failure_percent: Option<u8>,
    /// The first transient-failure cooldown.
    #[serde(default)]
    pub backoff_base: Option<f64>,
    /// The longest transient-failure cooldown.
    #[serde(default)]
    pub backoff_max: Option<f64>,
}

/// The `router.retry_budget:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetSettings {
    /// Retries per request allowed on average (0.2 = 20% extra load).
    pub ratio: f64,
    /// Retries always allowed per second.
    #[serde(default)]
    pub min_per_second: Option<u32>,
}

pub(crate) fn seconds(value: f64, field: &str) -> std::result::Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        ConfigError::new(format!("{value} is not a valid number of seconds"))
            .at_field(field.to_owned())
    })
}

impl RouterSettings {
    /// The balancer configuration these settings describe, with `aliases` added.
    ///
    /// # Errors
    ///
    /// A configuration error for a negative or non-finite duration.
    pub fn to_router_config(
        &self,
        aliases: BTreeMap<String, String>,
    ) -> std::result::Result<RouterConfig, ConfigError> {
        let mut config = RouterConfig {
            aliases,
            fallbacks: self.fallbacks.clone(),
            context_window_fallbacks: self.context_window_fallbacks.clone(),
            ..RouterConfig::default()
        };
        if let Some(strategy) = self.strategy {
            config.strategy = strategy;
        }
        if let Some(rounds) = self.max_rounds {
            config.max_rounds = rounds.max(1);
        }
        if let Some(timeout) = self.timeout {
            config.timeout = seconds(timeout, "router.timeout")?;
        }
        if let Some(wait) = self.max_wait {
            config.max_wait = seconds(wait, "router.max_wait")?;
        }
        let c = &self.cooldown;
        let defaults = CooldownPolicy::default();
        let pick = |value: Option<f64>, default: Duration, field: &str| {
            value.map_or(Ok(default), |v| seconds(v, field))
        };
        config.cooldown = CooldownPolicy {
            rate_limited: pick(
                c.rate_limited,
                defaults.rate_limited,
                "router.cooldown.rate_limited",
            )?,
            max_retry_after: pick(
                c.max_retry_after,
                defaults.max_retry_after,
                "router.cooldown.max_retry_after",
            )?,
            credential: pick(
                c.credential,
                defaults.credential,
                "router.cooldown.credential",
            )?,
            failure_threshold: c.failure_threshold.unwrap_or(defaults.failure_threshold),
            backoff_base: pick(
                c.backoff_base,
                defaults.backoff_base,
                "router.cooldown.backoff_base",
            )?,
            backoff_max: pick(
                c.backoff_max,
                defaults.backoff_max,
                "router.cooldown.backoff_max",
            )?,
            failure_percent: c
                .failure_percent
                .unwrap_or(defaults.failure_percent)
                .min(100),
        };
        if let Some(budget) = &self.retry_budget {
            config.retry_budget = RetryBudgetConfig {
                ratio: budget.ratio,
                min_per_second: budget
                    .min_per_second
                    .unwrap_or(RetryBudgetConfig::default().min_per_second),
                ..RetryBudgetConfig::default()
            };
        }
        Ok(config)
    }
}

/// The `server:` section, read by the gateway (`llm-server`).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// The address to bind (default `127.0.0.1`).
    #[serde(default)]
    pub host: Option<String>,
    /// The port (default 8000).
    #[serde(default)]
    pub port: Option<u16>,
    /// Gateway keys clients must send as `Authorization: Bearer`; none means open.
    #[serde(default)]
    pub api_keys: Vec<SecretString>,
    /// The largest request body in bytes.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Seconds a request may take.
    #[serde(default)]
    pub request_timeout: Option<f64>,
    /// Requests served at once before shedding load.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// `text` or `json`.
    #[serde(default)]
    pub log_format: Option<String>,
    /// Seconds from accept (or from the first byte of a kept-alive connection's next
    /// request) to a complete request head (default 30; nginx `client_header_timeout`).
    #[serde(default)]
    pub header_timeout: Option<f64>,
    /// Seconds a connection may stay idle between requests (default 75; nginx
    /// `keepalive_timeout`).
    #[serde(default)]
    pub keep_alive_timeout: Option<f64>,
    /// Seconds writes to a client that stopped reading may stay blocked (default 60; nginx
    /// `send_timeout`).
    #[serde(default)]
    pub send_timeout: Option<f64>,
    /// Open client connections at most (default: from the file-descriptor limit; nginx
    /// `worker_connections`).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// The largest non-streaming upstream answer in bytes (default 32 MiB); a larger one
    /// fails that attempt, detected while reading.
    #[serde(default)]
    pub max_upstream_body_bytes: Option<usize>,
    /// Idle upstream connections kept per provider entry and host (default 64; nginx
    /// `keepalive` in an `upstream` block). For plain-HTTP upstreams the connections a
    /// burst freed beyond it are kept 2 s more, so that steady traffic above the bound
    /// does not reconnect, and then closed.
    #[serde(default)]
    pub max_idle_upstream_connections: Option<usize>,
}

impl ServerSettings {
    /// Whether no setting is given.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.port.is_none()
            && self.api_keys.is_empty()
            && self.max_body_bytes.is_none()
            && self.request_timeout.is_none()
            && self.max_concurrency.is_none()
            && self.log_format.is_none()
            && self.header_timeout.is_none()
            && self.keep_alive_timeout.is_none()
            && self.send_timeout.is_none()
            && self.max_connections.is_none()
            && self.max_upstream_body_bytes.is_none()
            && self.max_idle_upstream_connections.is_none()
    }
}

impl fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self.api_keys.iter().map(mask_key).collect();
        f.debug_struct("ServerSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("api_keys", &keys)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("max_concurrency", &self.max_concurrency)
            .field("log_format", &self.log_format)
            .field("header_timeout", &self.header_timeout)
            .field("keep_alive_timeout", &self.keep_alive_timeout)
            .field("send_timeout", &self.send_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_upstream_body_bytes", &self.max_upstream_body_bytes)
            .field(
                "max_idle_upstream_connections",
                &self.max_idle_upstream_connections,
            )
            .finish()
    }
}

/// Everything a factory is built from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactoryConfig {
    /// The provider entries.
    #[serde(default)]
    pub providers: Vec<ModelConfig>,
    /// Router settings.
    #[serde(default)]
    pub router: RouterSettings,
    /// Gateway settings.
    #[serde(default)]
    pub server: ServerSettings,
}

impl FactoryConfig {
    /// Parse a YAML configuration held in memory (read from a vault, embedded, generated),
    /// expanding `${VAR}` with `lookup`. `source` names it in errors, as a file would be.
    ///
    /// ```
    /// use llm_factory::FactoryConfig;
    ///
    /// let text = "providers:\n  - provider: mock\n    model_name: \"${MODEL}\"\n";
    /// let config = FactoryConfig::from_yaml_str(text, "inline.yaml", |name| {
    ///     (name == "MODEL").then(|| "mock-echo".to_owned())
    /// })?;
    /// assert_eq!(config.providers[0].model_name, "mock-echo");
    ///
    /// let typo = FactoryConfig::from_yaml_str("providers:\n  - provder: mock\n", "inline.yaml", |_| None);
    /// assert!(typo.unwrap_err().to_string().contains("inline.yaml:2:"));
    /// # Ok::<(), llm_factory::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind::Configuration) naming `source`,
    /// the line and the field path, as for a file.
    pub fn from_yaml_str(
        text: &str,
        source: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        from_yaml_str(text, std::path::Path::new(source), &lookup)
    }
}

impl From<ModelConfig> for FactoryConfig {
    fn from(model: ModelConfig) -> Self {
        Self {
            providers: vec![model],
            ..Self::default()
        }
    }
}

impl From<Vec<ModelConfig>> for FactoryConfig {
    fn from(providers: Vec<ModelConfig>) -> Self {
        Self {
            providers,
            ..Self::default()
        }
    }
}
