//! Automatic failover: a revoked key and an overloaded account are skipped, the request is
//! answered, and the status shows who is resting and why.
//!
//! ```text
//! cargo run -p examples --example failover
//! ```
//!
//! Offline: mock deployments that fail with 401 and 503. With real keys, a revoked key in
//! `OPENAI_API_KEYS` behaves the same way.
#![expect(clippy::print_stdout, reason = "examples print their results")]

use std::sync::Arc;

use llm_factory::{
    DeploymentConfig, ErrorKind, LlmFactory, StrategyKind,
    core::{MockConfig, MockFailure, MockProvider},
};

fn failing(name: &'static str, kind: ErrorKind) -> Arc<MockProvider> {
    Arc::new(MockProvider::new(
        name,
        MockConfig {
            failure: Some(MockFailure::always(kind)),
            ..MockConfig::default()
        },
    ))
}

#[tokio::main]
async fn main() -> llm_factory::Result<()> {
    let factory = LlmFactory::builder()
        .provider(
            failing("revoked-key", ErrorKind::Authentication),
            DeploymentConfig {
                priority: 0,
                ..DeploymentConfig::new("revoked-key", "gpt-4o")
            },
        )
        .provider(
            failing("overloaded", ErrorKind::UpstreamServer),
            DeploymentConfig {
                priority: 1,
                ..DeploymentConfig::new("overloaded", "gpt-4o")
            },
        )
        .model(llm_factory::ModelConfig {
            priority: Some(2),
            ..examples::mock("gpt-4o")
        })
        .strategy(StrategyKind::FirstAvailable)
        .build()?;
    let answer = factory.chat("are you there?").await?;
    println!("answer: {}", answer.text().unwrap_or_default());
    for deployment in factory.status() {
        println!(
            "{:<14} {:?}  failures {}  last error {:?}  cooldown {} ms",
            deployment.id,
            deployment.state,
            deployment.failures,
            deployment.last_error,
            deployment.cooldown_remaining_ms
        );
    }
    Ok(())
}
