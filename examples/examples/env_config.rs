//! A factory from `{P}_API_KEYS`-style variables: `LlmFactory::from_env()` (which also reads
//! `.env`), or `LlmFactory::from_env_file(".env.local")`.
//!
//! ```text
//! cargo run -p examples --example env_config
//! ```
//!
//! With `OPENAI_API_KEYS`, `OPENAI_MODEL` (and for Azure `OPENAI_API_BASES`,
//! `OPENAI_API_VERSION`) set, it uses them. Offline, it shows the same format with a
//! registered demo provider and variables given in code.
#![expect(clippy::print_stdout, reason = "examples print their results")]

use std::sync::Arc;

use llm_factory::{LlmFactory, core::ChatProvider, core::MockProvider};

#[tokio::main]
async fn main() -> llm_factory::Result<()> {
    let factory = if examples::real_keys_configured() {
        LlmFactory::from_env()?
    } else {
        let vars = [
            (
                "DEMO_API_KEYS",
                "demo-key-0123456789-aaaa,demo-key-0123456789-bbbb,demo-key-0123456789-cccc",
            ),
            ("DEMO_MODEL", "demo-model"),
        ];
        LlmFactory::builder()
            .register_provider("demo", |spec| {
                Ok(Arc::new(MockProvider::echo(spec.config.model_name.clone()))
                    as Arc<dyn ChatProvider>)
            })
            .vars(
                vars.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )
            .env()
            .build()?
    };
    for deployment in factory.status() {
        // Keys are only ever shown masked.
        println!(
            "{:<40} key {}",
            deployment.id,
            deployment.key.unwrap_or_default()
        );
    }
    let answer = factory.chat("hello from the environment").await?;
    println!("answer: {}", answer.text().unwrap_or_default());
    Ok(())
}
