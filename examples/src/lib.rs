//! Shared set-up of the runnable examples in `examples/`: each picks its provider from the
//! environment and falls back to the offline [`MockProvider`], so every example runs with
//! no keys and no network.
//!
//! ```
//! let provider = examples::provider_from_env().unwrap();
//! assert!(!provider.name().is_empty());
//! ```

use std::sync::Arc;

use llm_core::{ChatProvider, MockConfig, MockProvider, MockReply, Result};
use llm_openai::{AzureOpenAiConfig, AzureOpenAiProvider, OpenAiConfig, OpenAiProvider};

/// The provider the examples talk to:
///
/// - Azure OpenAI when `AZURE_OPENAI_ENDPOINT` and `AZURE_OPENAI_API_KEY` are set (with
///   `AZURE_OPENAI_DEPLOYMENT` and optional `OPENAI_API_VERSION`);
/// - OpenAI when `OPENAI_API_KEY` is set (with optional `OPENAI_BASE_URL` and
///   `OPENAI_MODEL`, default `gpt-4o-mini`);
/// - otherwise the offline mock, which tells a short story word by word.
///
/// # Errors
///
/// A configuration error when the variables describe an invalid provider.
#[expect(
    clippy::disallowed_methods,
    reason = "examples choose their provider from the environment; the library never does"
)]
pub fn provider_from_env() -> Result<Arc<dyn ChatProvider>> {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    if let (Some(endpoint), Some(key)) = (var("AZURE_OPENAI_ENDPOINT"), var("AZURE_OPENAI_API_KEY"))
    {
        return Ok(Arc::new(AzureOpenAiProvider::new(AzureOpenAiConfig {
            deployment: var("AZURE_OPENAI_DEPLOYMENT"),
            api_version: var("OPENAI_API_VERSION"),
            ..AzureOpenAiConfig::with_key(endpoint, key)
        })?));
    }
    if let Some(key) = var("OPENAI_API_KEY") {
        let mut config = OpenAiConfig::new(key);
        if let Some(base) = var("OPENAI_BASE_URL") {
            config.base_url = base;
        }
        config.model = Some(var("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".to_owned()));
        return Ok(Arc::new(OpenAiProvider::new(config)?));
    }
    Ok(Arc::new(MockProvider::new(
        "mock",
        MockConfig {
            model: "mock-storyteller".to_owned(),
            reply: MockReply::Text(
                "Once upon a time, a small gateway answered every request it was given.".to_owned(),
            ),
            chunk_delay: std::time::Duration::from_millis(30),
            ..MockConfig::default()
        },
    )))
}
