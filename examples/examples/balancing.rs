//! Many keys for one model, spread by strategy: smooth weighted round robin by default,
//! another strategy per call (the original `load_balance_strategy="first_available"`).
//!
//! ```text
//! cargo run -p examples --example balancing
//! ```
//!
//! Offline: three mock deployments with weights 3, 1 and 1. The same code balances real
//! keys: give `api_keys` (and `api_bases`) instead of the mock provider.
#![expect(clippy::print_stdout, reason = "examples print their results")]

use llm_factory::{ChatOptions, LlmFactory, ModelConfig, StrategyKind};

#[tokio::main]
async fn main() -> llm_factory::Result<()> {
    let weighted = |weight| ModelConfig {
        weight: Some(weight),
        ..examples::mock("gpt-4o")
    };
    let factory = LlmFactory::new(vec![weighted(3), weighted(1), weighted(1)])?;
    for _ in 0..10 {
        factory.chat("hello").await?;
    }
    let first = ChatOptions::strategy("first_available".parse::<StrategyKind>()?);
    for _ in 0..5 {
        factory.chat_with("hello", &first).await?;
    }
    for deployment in factory.status() {
        println!(
            "{:<16} weight {}  served {:>2}",
            deployment.id, deployment.weight, deployment.successes
        );
    }
    Ok(())
}
