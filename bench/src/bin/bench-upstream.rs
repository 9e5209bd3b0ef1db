//! A fast mock OpenAI upstream: `POST /v1/chat/completions` answers a fixed completion, or
//! (with `"stream": true`) a fixed SSE stream of `--chunks` chunks, `--chunk-delay-ms` apart.
//!
//! ```text
//! bench-upstream --port 9000 [--chunks 20] [--chunk-delay-ms 0]
//! ```
#![expect(clippy::print_stdout, reason = "reports its address")]

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    http::header::CONTENT_TYPE,
    response::Response,
    routing::post,
    serve::ListenerExt as _,
};

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1732600000,"model":"gpt-4o-bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is a fixed answer from the benchmark upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":11,"total_tokens":23}}"#;

fn chunk(content: &str, role: bool, finish: bool) -> String {
    let delta = if role {
        format!(r#"{{"role":"assistant","content":"{content}"}}"#)
    } else if finish {
        "{}".to_owned()
    } else {
        format!(r#"{{"content":"{content}"}}"#)
    };
    let finish = if finish { r#""stop""# } else { "null" };
    format!(
        "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1732600000,\"model\":\"gpt-4o-bench\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
    )
}

fn stream_frames(chunks: usize) -> Vec<Bytes> {
    let mut frames = vec![Bytes::from(chunk("", true, false))];
    frames.extend((0..chunks).map(|i| Bytes::from(chunk(&format!("word{i} "), false, false))));
    frames.push(Bytes::from(chunk("", false, true)));
    frames.push(Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1732600000,\"model\":\"gpt-4o-bench\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":20,\"total_tokens\":32}}\n\n",
    ));
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = bench::arg(&args, "--port", 9000)?;
    let chunks: usize = bench::arg(&args, "--chunks", 20)?;
    let delay = Duration::from_millis(bench::arg(&args, "--chunk-delay-ms", 0)?);
    let frames = stream_frames(chunks);
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |body: Bytes| {
            let frames = frames.clone();
            async move {
                let stream =
                    contains(&body, b"\"stream\":true") || contains(&body, b"\"stream\": true");
                if !stream {
                    return Response::builder()
                        .header(CONTENT_TYPE, "application/json")
                        .body(Body::from(COMPLETION))
                        .unwrap_or_default();
                }
                let body = paced(frames, delay);
                Response::builder()
                    .header(CONTENT_TYPE, "text/event-stream")
                    .body(Body::from_stream(body))
                    .unwrap_or_default()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("bench-upstream listening on {}", listener.local_addr()?);
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// The frames as a body stream, paced by `delay` when it is not zero.
fn paced(
    frames: Vec<Bytes>,
    delay: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(frames.into_iter(), move |mut frames| async move {
        let frame = frames.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok(frame), frames))
    })
}
