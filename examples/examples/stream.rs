//! A streamed answer, printed as it arrives, with the usage of the final chunk.
//!
//! ```text
//! cargo run -p examples --example stream
//! ```
//!
//! Offline by default; set `OPENAI_API_KEYS` and `OPENAI_MODEL` (see the `chat` example) to
//! stream from a real model.
#![expect(clippy::print_stdout, reason = "examples print their results")]

use futures_util::StreamExt;
use llm_factory::{ChatRequest, core::StreamOptions};

#[tokio::main]
async fn main() -> llm_factory::Result<()> {
    let factory = examples::factory()?;
    let request = ChatRequest {
        stream_options: Some(StreamOptions {
            include_usage: Some(true),
            ..StreamOptions::default()
        }),
        ..ChatRequest::from("写一个故事")
    };
    let mut stream = factory.stream(request).await?;
    while let Some(chunk) = stream.next().await {
        // A failure mid-stream is an error item: report it rather than pretend the story ended.
        let chunk = chunk?;
        print!("{}", chunk.content().unwrap_or_default());
        if let Some(usage) = chunk.usage {
            println!("\n[{} tokens]", usage.total_tokens);
        }
    }
    println!();
    Ok(())
}
