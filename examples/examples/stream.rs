//! A streamed answer, printed as it arrives; usage from the final chunk.
//!
//! ```text
//! cargo run -p examples --example stream
//! ```
//!
//! Offline by default (the mock provider). Set `OPENAI_API_KEY` or the Azure variables
//! (see the `chat` example) to stream from a real deployment.

use std::io::Write;

use futures_util::StreamExt;
use llm_core::{ChatRequest, Message, StreamOptions};

#[tokio::main]
async fn main() -> llm_core::Result<()> {
    let provider = examples::provider_from_env()?;
    let request = ChatRequest {
        stream_options: Some(StreamOptions {
            include_usage: Some(true),
            ..StreamOptions::default()
        }),
        ..ChatRequest::new("gpt-4o-mini", vec![Message::user("写一个故事")])
    };
    let mut stream = provider.stream(&request).await?;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        // A failure mid-stream is an error item: report it, never pretend the story ended.
        let chunk = chunk?;
        if let Some(text) = chunk.content() {
            let _ = write!(out, "{text}");
            let _ = out.flush();
        }
        if let Some(usage) = chunk.usage {
            let _ = writeln!(out, "\n[{} tokens]", usage.total_tokens);
        }
    }
    let _ = writeln!(out);
    Ok(())
}
