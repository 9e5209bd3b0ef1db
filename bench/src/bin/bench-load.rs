//! A closed-loop load generator: `--concurrency` connections, each sending the next request
//! when the previous answer is complete, for `--seconds`. Prints one JSON object:
//! requests/s, latency percentiles in microseconds, errors, and for streams the time to
//! first byte and chunks relayed per second.
//!
//! ```text
//! bench-load --url http://127.0.0.1:8000/v1/chat/completions --concurrency 16 --seconds 5 [--stream]
//!            [--model gpt-4o] [--prompt TEXT]
//! ```
//!
//! For soak runs: `--mixed` alternates JSON and stream requests, and `--cancel-every N`
//! drops every `N`-th stream after its first bytes, as a client that goes away would.
#![expect(clippy::print_stdout, reason = "prints its report")]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::json;

#[derive(Default)]
struct Samples {
    latency_us: Vec<u64>,
    ttfb_us: Vec<u64>,
    chunks: u64,
    errors: u64,
    cancelled: u64,
    first_error: Option<String>,
}

/// What a worker sends.
#[derive(Clone)]
struct Plan {
    json: Bytes,
    stream: Bytes,
    /// Alternate JSON and stream requests (else all `streaming`).
    mixed: bool,
    streaming: bool,
    /// Drop every n-th stream after its first bytes (0: never).
    cancel_every: u64,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(authority).await?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn worker(uri: Uri, plan: Plan, until: Instant) -> anyhow::Result<Samples> {
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("the URL has no host"))?
        .clone();
    let mut sender = connect(authority.as_str()).await?;
    let mut samples = Samples::default();
    let mut sent = 0u64;
    let mut streams = 0u64;
    while Instant::now() < until {
        sent += 1;
        let stream = if plan.mixed {
            sent.is_multiple_of(2)
        } else {
            plan.streaming
        };
        let cancel = stream && {
            streams += 1;
            plan.cancel_every > 0 && streams.is_multiple_of(plan.cancel_every)
        };
        let body = if stream { &plan.stream } else { &plan.json };
        let request = Request::post(uri.clone())
            .header("host", authority.as_str())
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?;
        let started = Instant::now();
        if sender.ready().await.is_err() {
            sender = connect(authority.as_str()).await?;
        }
        let response = sender.send_request(request).await?;
        let ok = response.status().is_success();
        let mut body = response.into_body();
        let mut first = None;
        let mut tail = Vec::new();
        let mut frames = 0u64;
        let mut cancelled = false;
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            if let Some(data) = frame.data_ref() {
                first.get_or_insert_with(|| started.elapsed());
                frames += data.iter().filter(|b| **b == b'\n').count() as u64 / 2;
                tail.extend_from_slice(data);
                if tail.len() > 4096 {
                    tail.drain(..tail.len() - 256);
                }
                if cancel {
                    cancelled = true;
                    break;
                }
            }
        }
        if cancelled {
            // The connection is mid-response: drop it and open a new one.
            drop(body);
            samples.cancelled += 1;
            sender = connect(authority.as_str()).await?;
            continue;
        }
        let elapsed = started.elapsed();
        let complete = if stream {
            contains(&tail, b"[DONE]")
        } else {
            !tail.is_empty()
        };
        if !ok || !complete || contains(&tail, b"\"error\"") {
            samples.errors += 1;
            samples
                .first_error
                .get_or_insert_with(|| String::from_utf8_lossy(&tail).chars().take(300).collect());
            continue;
        }
        samples
            .latency_us
            .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        if stream {
            samples
                .ttfb_us
                .push(first.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)));
            samples.chunks += frames;
        }
    }
    Ok(samples)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let uri: Uri = bench::arg(
        &args,
        "--url",
        "http://127.0.0.1:8000/v1/chat/completions".parse()?,
    )?;
    let concurrency: usize = bench::arg(&args, "--concurrency", 1)?;
    let seconds: f64 = bench::arg(&args, "--seconds", 5.0)?;
    let model: String = bench::arg(&args, "--model", "gpt-4o".to_owned())?;
    let prompt: String = bench::arg(
        &args,
        "--prompt",
        "Say hello in one short sentence.".to_owned(),
    )?;
    let stream = args.iter().any(|a| a == "--stream");
    let mixed = args.iter().any(|a| a == "--mixed");
    let cancel_every: u64 = bench::arg(&args, "--cancel-every", 0)?;
    let body = |stream: bool| {
        Bytes::from(
            json!({
                "model": model,
                "messages": [{"role": "system", "content": "You are a benchmark."}, {"role": "user", "content": prompt}],
                "max_tokens": 64,
                "stream": stream,
            })
            .to_string(),
        )
    };
    let plan = Plan {
        json: body(false),
        stream: body(true),
        mixed,
        streaming: stream,
        cancel_every,
    };
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        tasks.push(tokio::spawn(worker(uri.clone(), plan.clone(), until)));
    }
    let mut all = Samples::default();
    let mut connect_errors = 0u64;
    for task in tasks {
        match task.await? {
            Ok(samples) => {
                all.latency_us.extend(samples.latency_us);
                all.ttfb_us.extend(samples.ttfb_us);
                all.chunks += samples.chunks;
                all.errors += samples.errors;
                all.cancelled += samples.cancelled;
                if all.first_error.is_none() {
                    all.first_error = samples.first_error;
                }
            }
            Err(error) => {
                connect_errors += 1;
                all.first_error.get_or_insert(error.to_string());
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = all.latency_us.len() as u64;
    let report = json!({
        "concurrency": concurrency,
        "stream": stream,
        "seconds": elapsed,
        "requests": ok,
        "errors": all.errors + connect_errors,
        "cancelled": all.cancelled,
        "first_error": all.first_error,
        "rps": ok as f64 / elapsed,
        "p50_us": bench::percentile(&mut all.latency_us, 50.0),
        "p90_us": bench::percentile(&mut all.latency_us, 90.0),
        "p99_us": bench::percentile(&mut all.latency_us, 99.0),
        "ttfb_p50_us": bench::percentile(&mut all.ttfb_us, 50.0),
        "ttfb_p99_us": bench::percentile(&mut all.ttfb_us, 99.0),
        "chunks_per_s": all.chunks as f64 / elapsed,
    });
    println!("{report}");
    Ok(())
}
