//! One request, one answer: `factory.chat("你好，世界！")`.
//!
//! ```text
//! cargo run -p examples --example chat
//! ```
//!
//! Offline by default (the mock provider echoes). With `OPENAI_API_KEYS` (or
//! `OPENAI_API_KEY`) and `OPENAI_MODEL` set — plus `OPENAI_API_BASES` and
//! `OPENAI_API_VERSION` for Azure OpenAI — it asks the real model.
#![expect(clippy::print_stdout, reason = "examples print their results")]

#[tokio::main]
async fn main() -> llm_factory::Result<()> {
    let factory = examples::factory()?;
    let response = factory.chat("你好，世界！").await?;
    println!("{}", response.text().unwrap_or_default());
    if let Some(usage) = response.usage {
        println!(
            "[{} prompt + {} completion tokens]",
            usage.prompt_tokens, usage.completion_tokens
        );
    }
    Ok(())
}
