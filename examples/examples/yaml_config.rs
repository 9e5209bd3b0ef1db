//! A factory from YAML: `LlmFactory::from_yaml("config.yaml")`.
//!
//! ```text
//! cargo run -p examples --example yaml_config [path/to/config.yaml]
//! ```
//!
//! Without an argument it loads `examples/config.example.yaml` (offline mock providers);
//! point it at your own file to use real keys.
#![expect(clippy::print_stdout, reason = "examples print their results")]

use llm_factory::LlmFactory;

#[tokio::main]
async fn main() -> llm_factory::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml").to_owned());
    let factory = LlmFactory::from_yaml(&path)?;
    println!("models: {}", factory.models().join(", "));
    let answer = factory
        .chat(llm_factory::ChatRequest::new(
            "gpt4",
            vec![llm_factory::Message::user("hi from YAML")],
        ))
        .await?;
    println!(
        "gpt4 (alias of gpt-4o) answered: {}",
        answer.text().unwrap_or_default()
    );
    Ok(())
}
