//! Your own provider, without touching this workspace: implement `ChatProvider`, then add an
//! instance in code or register it by name for YAML and env configuration. It is balanced
//! and failed over together with the built-in providers.
//!
//! ```text
//! cargo run -p examples --example custom_provider
//! ```
//!
//! Runs offline: the custom provider answers locally; a built-in mock deployment that fails
//! shows the failover between them.
#![expect(clippy::print_stdout, reason = "examples print their results")]

use std::sync::Arc;

use llm_factory::{
    DeploymentConfig, ErrorKind, LlmFactory, StrategyKind,
    core::{
        ChatProvider, ChatRequest, ChatResponse, ChatStream, ChatStreamExt, Choice, Error, Message,
        MockConfig, MockFailure, MockProvider, Result, async_trait,
    },
};

/// A provider that reverses the user's words.
#[derive(Debug)]
struct Reverser;

#[async_trait]
impl ChatProvider for Reverser {
    fn name(&self) -> &str {
        "reverser"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let text = request
            .messages
            .last()
            .and_then(Message::text)
            .unwrap_or_default();
        let reversed: Vec<&str> = text.split_whitespace().rev().collect();
        Ok(ChatResponse::new(
            "reverse-1",
            0,
            "reverser",
            vec![Choice::new(
                0,
                Message::assistant(reversed.join(" ")),
                Some("stop".into()),
            )],
        ))
    }

    async fn stream(&self, _request: &ChatRequest) -> Result<ChatStream> {
        Err(Error::invalid_request(
            "`stream` is not supported by reverser",
        ))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let broken = MockProvider::new(
        "broken",
        MockConfig {
            failure: Some(MockFailure::always(ErrorKind::UpstreamServer)),
            ..MockConfig::default()
        },
    );
    let factory = LlmFactory::builder()
        // In code, next to a (failing) built-in deployment of the same model.
        .provider(
            Arc::new(broken),
            DeploymentConfig {
                priority: 0,
                ..DeploymentConfig::new("broken", "words")
            },
        )
        .provider(
            Arc::new(Reverser),
            DeploymentConfig {
                priority: 1,
                ..DeploymentConfig::new("reverser", "words")
            },
        )
        // By name: YAML `provider: reverser` or `REVERSER_MODEL=...` now build it too.
        .register_provider("reverser", |_spec| {
            Ok(Arc::new(Reverser) as Arc<dyn ChatProvider>)
        })
        .strategy(StrategyKind::FirstAvailable)
        .build()?;
    let answer = factory
        .chat(ChatRequest::new(
            "words",
            vec![Message::user("one two three")],
        ))
        .await?;
    println!("{}", answer.text().unwrap_or_default());
    let mock_stream = MockProvider::echo("m")
        .stream(&ChatRequest::from("built-ins stream too"))
        .await?;
    println!(
        "{}",
        mock_stream
            .collect_response()
            .await?
            .text()
            .unwrap_or_default()
    );
    for deployment in factory.status() {
        println!(
            "{:<10} successes {} failures {}",
            deployment.id, deployment.successes, deployment.failures
        );
    }
    Ok(())
}
