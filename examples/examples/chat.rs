//! One request, one answer.
//!
//! ```text
//! cargo run -p examples --example chat
//! ```
//!
//! Offline by default (the mock provider). Set `OPENAI_API_KEY` (optionally `OPENAI_MODEL`,
//! `OPENAI_BASE_URL`) for OpenAI, or `AZURE_OPENAI_ENDPOINT`, `AZURE_OPENAI_API_KEY`,
//! `AZURE_OPENAI_DEPLOYMENT` and `OPENAI_API_VERSION` for Azure OpenAI.

use llm_core::{ChatRequest, Message};

#[tokio::main]
async fn main() -> llm_core::Result<()> {
    let provider = examples::provider_from_env()?;
    let request = ChatRequest::new(
        "gpt-4o-mini",
        vec![
            Message::system("You are a helpful assistant."),
            Message::user("你好，世界！"),
        ],
    );
    let response = provider.chat(&request).await?;
    #[expect(clippy::print_stdout, reason = "an example prints its result")]
    {
        println!(
            "[{}] {}",
            provider.name(),
            response.text().unwrap_or_default()
        );
        if let Some(usage) = &response.usage {
            println!(
                "tokens: {} in, {} out",
                usage.prompt_tokens, usage.completion_tokens
            );
        }
    }
    Ok(())
}
