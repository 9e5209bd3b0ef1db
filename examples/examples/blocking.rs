//! The same API without async: `llm_factory::blocking::LlmFactory`.
//!
//! ```text
//! cargo run -p examples --example blocking
//! ```
//!
//! Offline by default; set `OPENAI_API_KEYS` and `OPENAI_MODEL` to use a real model.
#![expect(clippy::print_stdout, reason = "examples print their results")]

use llm_factory::blocking::LlmFactory;

fn main() -> llm_factory::Result<()> {
    let factory = if examples::real_keys_configured() {
        LlmFactory::from_env()?
    } else {
        LlmFactory::new(examples::mock("mock-echo"))?
    };
    let answer = factory.chat("你好，世界！")?;
    println!("{}", answer.text().unwrap_or_default());
    for chunk in factory.stream("写一个故事")? {
        print!("{}", chunk?.content().unwrap_or_default());
    }
    println!();
    Ok(())
}
