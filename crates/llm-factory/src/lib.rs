//! LLM Factory: many LLM providers and API keys behind one OpenAI-shaped interface, with
//! load balancing and automatic failover — the Rust form of the original LLM Factory.
//!
//! Build an [`LlmFactory`] from one [`ModelConfig`] or many, from `{P}_API_KEYS`-style
//! environment variables and `.env` files ([`LlmFactory::from_env`],
//! [`LlmFactory::from_env_file`]), or from YAML with `${VAR}` interpolation
//! ([`LlmFactory::from_yaml`]); then `chat`, `chat_with` (a strategy per call) and `stream`.
//! Every key becomes a deployment of the [`llm_balance::Router`], which balances and fails
//! over between them.
//!
//! ```
//! use futures_util::StreamExt;
//! use llm_factory::{ChatOptions, LlmFactory, ModelConfig, ProviderType};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! // The built-in mock provider needs no keys; real providers take `api_key(s)`.
//! let factory = LlmFactory::new(ModelConfig {
//!     provider: ProviderType::Mock,
//!     model_name: "mock-echo".into(),
//!     ..ModelConfig::default()
//! })?;
//! let answer = factory.chat("你好，世界！").await?;
//! assert_eq!(answer.text().as_deref(), Some("你好，世界！"));
//!
//! let options = ChatOptions::strategy("first_available".parse()?);
//! let mut stream = factory.stream_with("写一个故事", &options).await?;
//! while let Some(chunk) = stream.next().await {
//!     let _text = chunk?.content().map(str::to_owned);
//! }
//! # Ok::<_, llm_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Configuration
//!
//! - **Environment**: for each provider prefix `OPENAI`, `AZURE_OPENAI`, `QWEN`,
//!   `DEEPSEEK`, `CLAUDE`, `GEMINI` (and registered providers' names): `{P}_API_KEYS`
//!   (comma list) or `{P}_API_KEY`, `{P}_API_BASES` or `{P}_API_BASE`, `{P}_MODEL` (comma
//!   list allowed), `{P}_API_VERSION`; Claude also `{P}_REGION(S)`, Gemini `{P}_PROJECT`,
//!   `{P}_LOCATION`, `{P}_CREDENTIALS_FILE`; and each provider's option variables
//!   (`QWEN_API_MODE`, `QWEN_MULTIMODAL`, `QWEN_WORKSPACE`, `DEEPSEEK_THINKS_BY_DEFAULT`).
//!   Keys and bases pair by position; one base serves all keys. `OPENAI` is Azure OpenAI
//!   when an API version or an Azure host is given.
//! - **YAML**: `providers:` entries with the [`ModelConfig`] fields (a provider's own
//!   settings under `options:`), a `router:` section
//!   ([`RouterSettings`]) and a `server:` section ([`ServerSettings`]). Unknown fields are
//!   rejected; errors name the file, line and field path.
//!
//! # Features
//!
//! - `openai` (default): OpenAI and Azure OpenAI through `llm-openai`.
//! - `qwen` (default): Qwen on DashScope, native API and compatible mode, through `llm-qwen`.
//! - `deepseek` (default): DeepSeek through `llm-deepseek`.
//! - `claude-bedrock` (default): Claude on AWS Bedrock through `llm-claude-bedrock` (the
//!   AWS SDK; nothing of it is compiled without this feature).
//! - `gemini` (default): Gemini on AI Studio and Vertex AI through `llm-gemini`.
//! - `redis` (default): `router.shared_state: redis://…` (or `LLM_FACTORY_REDIS_URL`):
//!   gateway replicas share deployments' cooldowns, probes and rpm/tpm windows through
//!   Redis (`docs/scale-out.md`).
//! - `blocking`: [`blocking::LlmFactory`], the same API for code without async.
//!
//! A configuration naming a provider whose feature is off is a clear "not compiled in"
//! error.
//!
//! Built-in providers are one module each (`src/providers/`), registered in one table;
//! first-token, idle and total timeouts are the router's, per deployment.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "blocking")]
#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
pub mod blocking;
mod config;
mod defaults;
mod factory;
mod providers;
mod registry;
mod shared;

pub use config::{
    CooldownSettings, ENV_PREFIXES, FactoryConfig, ModelConfig, ProviderType, RetryBudgetSettings,
    RouterSettings, SecretSetting, ServerSettings, load_env,
};
pub use factory::{ChatOptions, LlmFactory, LlmFactoryBuilder};
pub use llm_balance::{DeploymentConfig, DeploymentStatus, StrategyKind};
pub use llm_core::{
    ChatChunk, ChatJson, ChatRequest, ChatResponse, ChatStream, Error, ErrorKind, Message, Result,
};
#[cfg(feature = "deepseek")]
#[cfg_attr(docsrs, doc(cfg(feature = "deepseek")))]
pub use llm_deepseek as deepseek;
#[cfg(feature = "gemini")]
#[cfg_attr(docsrs, doc(cfg(feature = "gemini")))]
pub use llm_gemini as gemini;
#[cfg(feature = "openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "openai")))]
pub use llm_openai as openai;
#[cfg(feature = "qwen")]
#[cfg_attr(docsrs, doc(cfg(feature = "qwen")))]
pub use llm_qwen as qwen;
pub use registry::{ProviderConstructor, ProviderSpec};
pub use {llm_balance as balance, llm_core as core};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The workspace README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct WorkspaceReadmeDoctests;
