//! Shared set-up of the runnable examples in `examples/`: each uses real providers when the
//! environment configures them and the offline mock provider otherwise, so every example
//! runs with no keys and no network.
//!
//! ```
//! let factory = examples::factory().unwrap();
//! assert!(!factory.models().is_empty());
//! ```

use llm_factory::{LlmFactory, ModelConfig, ProviderType, Result};

/// Whether the environment configures a real provider (`OPENAI_API_KEY(S)` with
/// `OPENAI_MODEL`, or the same for another provider prefix).
#[must_use]
#[expect(
    clippy::disallowed_methods,
    reason = "examples decide between offline and real providers from the environment"
)]
pub fn real_keys_configured() -> bool {
    llm_factory::ENV_PREFIXES
        .iter()
        .any(|p| std::env::var(format!("{p}_MODEL")).is_ok_and(|v| !v.is_empty()))
}

/// The factory the examples use: [`LlmFactory::from_env`] when real keys are configured,
/// else two offline mock deployments of `mock-echo`.
///
/// # Errors
///
/// A configuration error from the environment.
pub fn factory() -> Result<LlmFactory> {
    if real_keys_configured() {
        return LlmFactory::from_env();
    }
    LlmFactory::new(vec![mock("mock-echo"), mock("mock-echo")])
}

/// An offline mock model config.
#[must_use]
pub fn mock(model: &str) -> ModelConfig {
    ModelConfig {
        provider: ProviderType::Mock,
        model_name: model.to_owned(),
        ..ModelConfig::default()
    }
}
