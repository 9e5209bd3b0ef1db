//! [`LlmFactory`]: the facade over the router and the configured providers.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use llm_balance::{
    Deployment, DeploymentConfig, DeploymentStatus, RandomSource, RouteOptions, Router,
    StrategyKind,
};
use llm_core::{
    ChatJson, ChatProvider, ChatRequest, ChatResponse, ChatStream, ConfigError, Error, Result,
};

use crate::{
    FactoryConfig, ModelConfig, RouterSettings, ServerSettings,
    config::{self, env::EnvSource, from_env_map, from_yaml_str},
    registry::{self, ProviderConstructor, ProviderSpec, Registry},
};

/// Per-call options, as the original LLM Factory's `load_balance_strategy` argument.
pub type ChatOptions = RouteOptions;

/// Many providers and keys behind one OpenAI-shaped API.
///
/// Built from one [`ModelConfig`], many, the environment and `.env`, or YAML; cheap to clone
/// (clones share the router and its health).
///
/// ```
/// use llm_factory::{LlmFactory, ModelConfig, ProviderType};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let factory = LlmFactory::new(vec![
///     ModelConfig { provider: ProviderType::Mock, model_name: "mock-a".into(), ..ModelConfig::default() },
///     ModelConfig { provider: ProviderType::Mock, model_name: "mock-b".into(), ..ModelConfig::default() },
/// ])?;
/// let response = factory.chat("你好，世界！").await?;
/// assert_eq!(response.text().as_deref(), Some("你好，世界！"));
/// # Ok::<_, llm_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LlmFactory {
    router: Router,
    server: Arc<ServerSettings>,
}

/// Where the builder reads configuration from, besides what is passed in code.
#[derive(Debug, Clone)]
enum Source {
    Env(Option<PathBuf>),
    Yaml(PathBuf),
}

/// Builds an [`LlmFactory`] from any mix of code, environment and YAML.
#[derive(Debug, Default)]
pub struct LlmFactoryBuilder {
    config: FactoryConfig,
    sources: Vec<Source>,
    registry: Registry,
    custom: Vec<(Arc<dyn ChatProvider>, DeploymentConfig)>,
    strategy: Option<StrategyKind>,
    random: Option<Arc<dyn RandomSource>>,
    vars: Option<BTreeMap<String, String>>,
}

impl LlmFactory {
    /// A factory for one model config, several, or a whole [`FactoryConfig`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) for an invalid entry, with its
    /// field path (`providers[1].api_bases`, ...).
    pub fn new(config: impl Into<FactoryConfig>) -> Result<Self> {
        Self::builder().config(config.into()).build()
    }

    /// A factory from the environment, with `.env` in the working directory read first if
    /// it exists (real environment variables win over the file).
    ///
    /// # Errors
    ///
    /// As [`LlmFactory::new`], naming the variable at fault.
    pub fn from_env() -> Result<Self> {
        Self::builder().env().build()
    }

    /// A factory from the environment and the env file at `path` (which must exist).
    ///
    /// # Errors
    ///
    /// As [`LlmFactory::from_env`], and when the file cannot be read.
    pub fn from_env_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().env_file(path).build()
    }

    /// A factory from a YAML file (the original LLM Factory's `providers:` list, plus
    /// `router:` and `server:` sections), with `${VAR}` and `${VAR:-default}` taken from
    /// the environment.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) naming the file, line and field
    /// path, and the missing variable where that is the cause.
    pub fn from_yaml(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().yaml_file(path).build()
    }

    /// Start building a factory.
    #[must_use]
    pub fn builder() -> LlmFactoryBuilder {
        LlmFactoryBuilder::default()
    }

    /// One request, one answer.
    ///
    /// # Errors
    ///
    /// See [`Router::chat_with`].
    pub async fn chat(&self, request: impl Into<ChatRequest>) -> Result<ChatResponse> {
        self.router
            .chat_with(&request.into(), &ChatOptions::default())
            .await
    }

    /// One request with options (for example a strategy for this call).
    ///
    /// # Errors
    ///
    /// See [`Router::chat_with`].
    pub async fn chat_with(
        &self,
        request: impl Into<ChatRequest>,
        options: &ChatOptions,
    ) -> Result<ChatResponse> {
        self.router.chat_with(&request.into(), options).await
    }

    /// One request with options, the answer as OpenAI Chat Completions JSON (see
    /// [`ChatProvider::chat_json`]): what a gateway sends its client, without reading the
    /// answer into a [`ChatResponse`] when the provider can relay its upstream's bytes.
    ///
    /// # Errors
    ///
    /// See [`Router::chat_with`].
    pub async fn chat_json_with(
        &self,
        request: impl Into<ChatRequest>,
        options: &ChatOptions,
    ) -> Result<ChatJson> {
        self.router.chat_json_with(&request.into(), options).await
    }

    /// One request, a stream of chunks.
    ///
    /// # Errors
    ///
    /// See [`Router::stream_with`].
    pub async fn stream(&self, request: impl Into<ChatRequest>) -> Result<ChatStream> {
        self.router
            .stream_with(&request.into(), &ChatOptions::default())
            .await
    }

    /// A stream with options.
    ///
    /// # Errors
    ///
    /// See [`Router::stream_with`].
    pub async fn stream_with(
        &self,
        request: impl Into<ChatRequest>,
        options: &ChatOptions,
    ) -> Result<ChatStream> {
        self.router.stream_with(&request.into(), options).await
    }

    /// The router, for status and per-request control.
    #[must_use]
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Every deployment's health (keys masked).
    #[must_use]
    pub fn status(&self) -> Vec<DeploymentStatus> {
        self.router.status()
    }

    /// Whether deployments' health is shared with other replicas (`router.shared_state`),
    /// and how fresh it is.
    #[must_use]
    pub fn shared_state(&self) -> llm_balance::SharedStateStatus {
        self.router.shared_state()
    }

    /// The model names requests may use.
    #[must_use]
    pub fn models(&self) -> Vec<String> {
        self.router.models()
    }

    /// The `server:` settings the configuration carried.
    #[must_use]
    pub fn server_settings(&self) -> &ServerSettings {
        &self.server
    }
}

#[async_trait]
impl ChatProvider for LlmFactory {
    fn name(&self) -> &str {
        self.router.name()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        self.router
            .chat_with(request, &ChatOptions::default())
            .await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        self.router
            .stream_with(request, &ChatOptions::default())
            .await
    }

    async fn chat_json(&self, request: &ChatRequest) -> Result<ChatJson> {
        self.router
            .chat_json_with(request, &ChatOptions::default())
            .await
    }
}

impl LlmFactoryBuilder {
    /// Use `config` (providers, router and server settings) as the base.
    #[must_use]
    pub fn config(mut self, config: FactoryConfig) -> Self {
        let providers = std::mem::take(&mut self.config.providers);
        self.config = FactoryConfig {
            providers: providers.into_iter().chain(config.providers).collect(),
            ..config
        };
        self
    }

    /// Add a model config.
    #[must_use]
    pub fn model(mut self, model: ModelConfig) -> Self {
        self.config.providers.push(model);
        self
    }

    /// Router settings (strategy, fallbacks, cooldowns, ...).
    #[must_use]
    pub fn router(mut self, router: RouterSettings) -> Self {
        self.config.router = router;
        self
    }

    /// The default strategy.
    #[must_use]
    pub fn strategy(mut self, strategy: StrategyKind) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Read `{P}_API_KEYS`-style variables (and `.env` in the working directory if present).
    #[must_use]
    pub fn env(mut self) -> Self {
        let dotenv = Path::new(".env");
        self.sources
            .push(Source::Env(dotenv.exists().then(|| dotenv.to_path_buf())));
        self
    }

    /// Read `{P}_API_KEYS`-style variables from the environment and the file at `path`.
    #[must_use]
    pub fn env_file(mut self, path: impl AsRef<Path>) -> Self {
        self.sources
            .push(Source::Env(Some(path.as_ref().to_path_buf())));
        self
    }

    /// Take variables (for [`Self::env`] and YAML `${VAR}`) from `vars` alone instead of the
    /// process environment and `.env`: for secrets fetched from a vault, and for tests.
    #[must_use]
    pub fn vars(mut self, vars: BTreeMap<String, String>) -> Self {
        self.vars = Some(vars);
        self
    }

    /// Read a YAML configuration file.
    #[must_use]
    pub fn yaml_file(mut self, path: impl AsRef<Path>) -> Self {
        self.sources.push(Source::Yaml(path.as_ref().to_path_buf()));
        self
    }

    /// Register a provider under `name`, so configuration entries with `provider: name`
    /// (YAML) or `{NAME}_API_KEYS` / `{NAME}_MODEL` (environment) build it.
    #[must_use]
    pub fn register_provider(
        mut self,
        name: impl Into<String>,
        constructor: impl Fn(ProviderSpec<'_>) -> Result<Arc<dyn ChatProvider>> + Send + Sync + 'static,
    ) -> Self {
        let constructor: ProviderConstructor = Arc::new(constructor);
        self.registry.insert(name.into(), constructor);
        self
    }

    /// Add a provider instance of your own as a deployment, balanced and failed over with
    /// the configured ones.
    #[must_use]
    pub fn provider(mut self, provider: Arc<dyn ChatProvider>, config: DeploymentConfig) -> Self {
        self.custom.push((provider, config));
        self
    }

    /// The random source of the randomized strategies (seed one in tests).
    #[must_use]
    pub fn random_source(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = Some(random);
        self
    }

    /// Load the sources, build every provider and the router.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) for anything wrong, located as
    /// precisely as possible; also when no provider is configured at all.
    pub fn build(self) -> Result<LlmFactory> {
        let mut config = self.config;
        let registered = self.registry.names();
        // Where each YAML-sourced entry sits, so build errors can name file and line.
        let mut origins: Vec<Option<(PathBuf, Option<usize>)>> = Vec::new();
        for source in &self.sources {
            match source {
                Source::Env(file) => {
                    let env = EnvSource::new(file.as_deref(), self.vars.clone())?;
                    config.providers.extend(from_env_map(&env, &registered)?);
                    crate::shared::from_env(&mut config.router, &env);
                }
                Source::Yaml(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        ConfigError::new(format!("cannot read the configuration file: {e}"))
                            .in_file(path, None)
                    })?;
                    // `${VAR}` comes from the environment, or `.env` in the working directory.
                    let dotenv = Path::new(".env");
                    let dotenv = (self.vars.is_none() && dotenv.exists()).then_some(dotenv);
                    let env = EnvSource::new(dotenv, self.vars.clone())?;
                    let file = from_yaml_str(&text, path, &|name| env.raw(name))?;
                    origins.resize(config.providers.len(), None);
                    for index in 0..file.providers.len() {
                        let line = config::line_of(&text, &format!("providers[{index}].provider"));
                        origins.push(Some((path.clone(), line)));
                    }
                    config.providers.extend(file.providers);
                    if file.router != RouterSettings::default() {
                        config.router = file.router;
                    }
                    if !file.server.is_empty() {
                        config.server = file.server;
                    }
                    crate::shared::from_env(&mut config.router, &env);
                }
            }
        }
        if config.providers.is_empty() && self.custom.is_empty() {
            return Err(Error::config(
                "no providers are configured: set OPENAI_API_KEYS and OPENAI_MODEL (or another provider's variables), \
                 pass ModelConfigs, or load a YAML file with a `providers:` list",
            ));
        }
        let mut deployments = Vec::new();
        let mut aliases = BTreeMap::new();
        let mut context = crate::providers::BuildContext::default();
        if let Some(max) = config.server.max_upstream_body_bytes {
            context.max_upstream_body_bytes = max.max(1);
        }
        if let Some(max) = config.server.max_idle_upstream_connections {
            context.max_idle_upstream_connections = max;
        }
        let shared = crate::shared::state(&config.router)?;
        if let Some(shared) = &shared {
            context.fingerprint_key = Some(shared.fingerprint_key.clone());
        }
        for (position, model) in config.providers.iter().enumerate() {
            let built = registry::deployments(model, position, &self.registry, &context).map_err(
                |error| match (error, origins.get(position).cloned().flatten()) {
                    (Error::Config(config), Some((file, line))) if config.file.is_none() => {
                        Error::Config(Box::new(config.in_file(file, line)))
                    }
                    (error, _) => error,
                },
            )?;
            deployments.extend(built);
            for alias in &model.aliases {
                aliases.insert(alias.clone(), model.model_name.clone());
            }
        }
        deployments.extend(self.custom);
        let deployments = unique_ids(deployments);
        let mut router_config = config.router.to_router_config(aliases)?;
        if let Some(strategy) = self.strategy {
            router_config.strategy = strategy;
        }
        let mut builder = Router::builder()
            .name("llm-factory")
            .config(router_config)
            .deployments(deployments);
        if let Some(random) = self.random {
            builder = builder.random_source(random);
        }
        if let Some(shared) = shared {
            builder = builder.shared_state(shared.state);
        }
        Ok(LlmFactory {
            router: builder.build()?,
            server: Arc::new(config.server),
        })
    }
}

/// Make deployment labels unique (two entries may share provider, model and key tail).
fn unique_ids(deployments: Vec<(Arc<dyn ChatProvider>, DeploymentConfig)>) -> Vec<Deployment> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    deployments
        .into_iter()
        .map(|(provider, mut config)| {
            let count = seen.entry(config.id.clone()).or_insert(0);
            *count += 1;
            if *count > 1 {
                config.id = format!("{}#{count}", config.id);
            }
            Deployment::new(provider, config)
        })
        .collect()
}
