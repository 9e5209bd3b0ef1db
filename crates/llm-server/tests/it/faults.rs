//! The fault scenarios: real gateway, real OpenAI provider, three local fault-injection
//! upstreams ([`FaultServer`]), planted keys everywhere.
//!
//! The `scenarios!` and `committed!` tables below are the source of the scenario table in
//! `docs/reliability.md` (a tidy check keeps the two in step; `cargo xtask docs` rewrites
//! the doc's table from them). Keep one row per line.

use std::time::Duration;

use llm_core::testing::{Fault, FaultServer, Plan, RetryAfter, answer_text};
use llm_factory::{
    CooldownSettings, LlmFactory, ModelConfig, ProviderType, RouterSettings, core::SecretString,
};
use llm_server::GatewayOptions;
use serde_json::Value;
use tokio::time::Instant;

use crate::{
    logs::{assert_clean, assert_no_secret_logged},
    support::{Gateway, chat_body, client, sse_data},
};

const KEYS: [&str; 3] = [
    "sk-PLANTED-upstream-a-0001",
    "sk-PLANTED-upstream-b-0002",
    "sk-PLANTED-upstream-c-0003",
];
const LABELS: [&str; 3] = ["alpha", "beta", "gamma"];
const GATEWAY_KEY: &str = "gw-PLANTED-gateway-key-4242";

/// What is done to a deployment's upstream.
#[derive(Debug, Clone, Copy)]
enum Inject {
    /// The upstream answers with this fault.
    Fault(Fault),
    /// The upstream stops listening: connections are refused.
    Refuse,
}

/// Three fault upstreams behind one gateway (round robin).
struct Trio {
    servers: Vec<FaultServer>,
    gateway: Gateway,
    client: reqwest::Client,
}

impl Trio {
    async fn start() -> Self {
        let mut servers = Vec::new();
        for (label, key) in LABELS.iter().zip(KEYS) {
            servers.push(FaultServer::start(label, key).await.unwrap());
        }
        let mut builder = LlmFactory::builder().router(RouterSettings {
            timeout: Some(15.0),
            cooldown: CooldownSettings {
                rate_limited: Some(0.5),
                max_retry_after: Some(2.0),
                backoff_base: Some(0.3),
                ..CooldownSettings::default()
            },
            ..RouterSettings::default()
        });
        for (server, key) in servers.iter().zip(KEYS) {
            builder = builder.model(ModelConfig {
                api_base: Some(server.url()),
                timeout: Some(0.6),
                first_token_timeout: Some(0.3),
                idle_timeout: Some(0.3),
                ..ModelConfig::new(ProviderType::OpenAi, "gpt-4o", key)
            });
        }
        let gateway = Gateway::start(
            builder.build().unwrap(),
            GatewayOptions {
                api_keys: vec![SecretString::from(GATEWAY_KEY)],
                ..GatewayOptions::default()
            },
        )
        .await;
        Self {
            servers,
            gateway,
            client: client(),
        }
    }

    /// The deployment id of upstream `i`, as the status and errors name it.
    fn id(i: usize) -> String {
        format!("openai/gpt-4o/sk-…{}", &KEYS[i][KEYS[i].len() - 4..])
    }

    async fn inject(&self, i: usize, inject: Inject) {
        match inject {
            Inject::Fault(fault) => self.servers[i].fail_with(fault).await,
            Inject::Refuse => self.servers[i].refuse().await,
        }
    }

    async fn heal(&self, i: usize) {
        self.servers[i].heal().await;
        self.servers[i].listen().await.unwrap();
    }

    /// Upstream `i`'s entry in `/v1/providers/status`.
    async fn status(&self, i: usize) -> Value {
        let response = self
            .client
            .get(self.gateway.url("/v1/providers/status"))
            .bearer_auth(GATEWAY_KEY)
            .send()
            .await
            .unwrap();
        let text = response.text().await.unwrap();
        assert_clean("the status output", &text);
        let body: Value = serde_json::from_str(&text).unwrap();
        let id = Self::id(i);
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no status for {id}: {body}"))
    }

    async fn state(&self, i: usize) -> String {
        self.status(i).await["state"].as_str().unwrap().to_owned()
    }

    /// One chat request: status, headers, body text (checked for planted secrets).
    async fn ask(&self, stream: bool) -> (u16, reqwest::header::HeaderMap, String) {
        let response = self
            .client
            .post(self.gateway.url("/v1/chat/completions"))
            .bearer_auth(GATEWAY_KEY)
            .json(&chat_body("gpt-4o", "hello", stream))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        assert_clean("a response body", &text);
        (status, headers, text)
    }

    /// One request that must succeed with a whole answer; returns who answered.
    async fn answered(&self, stream: bool) -> &'static str {
        let (status, _, text) = self.ask(stream).await;
        assert_eq!(status, 200, "{text}");
        let content = if stream {
            let events = sse_data(&text);
            assert_eq!(
                events.last().map(String::as_str),
                Some("[DONE]"),
                "{events:?}"
            );
            let mut content = String::new();
            for event in &events[..events.len() - 1] {
                let chunk: Value = serde_json::from_str(event).unwrap();
                assert!(chunk.get("error").is_none(), "an error event: {event}");
                if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
                    content.push_str(piece);
                }
            }
            content
        } else {
            let body: Value = serde_json::from_str(&text).unwrap();
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        LABELS
            .iter()
            .find(|label| content == answer_text(label))
            .copied()
            .unwrap_or_else(|| panic!("not a whole answer: {content:?}"))
    }
}

/// One of three upstreams faulty: every request succeeds; the faulty deployment rests (its
/// status says so, with `kind` as the last error); healed, it recovers and serves again.
async fn one_faulty(inject: Inject, kind: &str, stream: bool) {
    let trio = Trio::start().await;
    trio.inject(0, inject).await;
    let mut rested = false;
    for _ in 0..30 {
        trio.answered(stream).await;
        let status = trio.status(0).await;
        if status["state"] == "cooling_down" {
            assert_eq!(status["last_error"], kind, "{status}");
            rested = true;
            break;
        }
    }
    assert!(
        rested,
        "the faulty deployment never rested: {}",
        trio.status(0).await
    );
    // While it rests, the others carry the traffic (checked while well inside the rest, so a
    // slow machine cannot see the rest end mid-request).
    for _ in 0..3 {
        let resting = trio.status(0).await;
        let answered = trio.answered(stream).await;
        if resting["state"] == "cooling_down"
            && resting["cooldown_remaining_ms"].as_u64() > Some(200)
        {
            assert_ne!(answered, LABELS[0], "{resting}");
        }
    }
    trio.heal(0).await;
    recovers(&trio, stream).await;
    assert_no_secret_logged();
}

/// Upstream 0 comes back into rotation: its rest ends, a probe succeeds, it answers again.
async fn recovers(trio: &Trio, stream: bool) {
    let start = Instant::now();
    let mut served = false;
    while start.elapsed() < Duration::from_secs(10) {
        if trio.answered(stream).await == LABELS[0] {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "it never served again: {}", trio.status(0).await);
    assert_eq!(trio.state(0).await, "healthy");
    assert_eq!(trio.status(0).await["trips"], 0);
}

/// Every upstream faulty: the client gets `status` (and `Retry-After` for 429) and an
/// OpenAI error naming every deployment's attempt.
async fn all_faulty(inject: Inject, status: u16, stream: bool) {
    let trio = Trio::start().await;
    for i in 0..3 {
        trio.inject(i, inject).await;
    }
    let (got, headers, text) = trio.ask(stream).await;
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    for i in 0..3 {
        assert!(message.contains(&Trio::id(i)), "{i} not named: {message}");
    }
    assert!(body["error"]["type"].is_string(), "{body}");
    if status == 429 {
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=2).contains(&wait), "{wait}");
    }
    // The gateway itself stays healthy.
    trio.gateway.assert_live().await;
    assert_no_secret_logged();
}

/// A stream that fails after content was relayed: the client gets that content, then one
/// error event, and never `[DONE]`. Every upstream is faulty so the request meets it.
async fn committed(fault: Fault, content_chunks: usize) {
    let trio = Trio::start().await;
    for i in 0..3 {
        trio.inject(i, Inject::Fault(fault)).await;
    }
    let (status, _, text) = trio.ask(true).await;
    assert_eq!(status, 200, "{text}");
    let events = sse_data(&text);
    assert!(
        !events.iter().any(|e| e == "[DONE]"),
        "[DONE] after a failure: {events:?}"
    );
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert!(
        last["error"]["message"].is_string(),
        "no error event at the end: {events:?}"
    );
    let content: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let whole = LABELS
        .iter()
        .map(|label| answer_text(label))
        .find(|text| text.starts_with(&content) && !content.is_empty())
        .unwrap_or_else(|| panic!("relayed content is not a prefix of an answer: {content:?}"));
    assert!(
        content.len() < whole.len(),
        "the whole answer arrived: {content:?}"
    );
    assert_eq!(
        content.split_inclusive(' ').count(),
        content_chunks,
        "{content:?}"
    );
    assert_no_secret_logged();
}

/// The same through the Anthropic Messages door: the content relayed, then one `error`
/// event, and never `message_stop`.
async fn committed_anthropic(fault: Fault, content_chunks: usize) {
    let trio = Trio::start().await;
    for i in 0..3 {
        trio.inject(i, Inject::Fault(fault)).await;
    }
    let response = trio
        .client
        .post(trio.gateway.url("/v1/messages"))
        .header("x-api-key", GATEWAY_KEY)
        .json(
            &serde_json::json!({"model": "gpt-4o", "max_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "hello"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_clean("a response body", &text);
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let event = f
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap()
                .to_owned();
            let data = f.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (event, serde_json::from_str(data).unwrap())
        })
        .collect();
    let (last, error) = events.last().unwrap();
    assert_eq!(last, "error", "{text}");
    assert!(error["error"]["message"].is_string(), "{text}");
    assert!(!events.iter().any(|(e, _)| e == "message_stop"), "{text}");
    let content: String = events
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .filter_map(|(_, d)| d["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert!(
        LABELS
            .iter()
            .any(|label| answer_text(label).starts_with(&content) && !content.is_empty()),
        "relayed content is not a prefix of an answer: {content:?}"
    );
    assert_eq!(
        content.split_inclusive(' ').count(),
        content_chunks,
        "{content:?}"
    );
    assert_no_secret_logged();
}

/// One test module per row: `one_faulty_{json,stream}` and `all_faulty_{json,stream}`.
macro_rules! scenarios {
    ($($name:ident: $what:literal, $inject:expr, $kind:literal, $all:literal;)*) => {$(
        mod $name {
            use super::*;

            #[doc = $what]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn one_faulty_json() {
                one_faulty($inject, $kind, false).await;
            }

            #[doc = $what]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn one_faulty_stream() {
                one_faulty($inject, $kind, true).await;
            }

            #[doc = $what]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn all_faulty_json() {
                all_faulty($inject, $all, false).await;
            }

            #[doc = $what]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn all_faulty_stream() {
                all_faulty($inject, $all, true).await;
            }
        }
    )*};
}

// name: what the upstream does, injection, last_error in the status, HTTP status when every
// deployment does it.
scenarios! {
    rate_limit_retry_after_seconds: "429 with `Retry-After: 1`", Inject::Fault(Fault::RateLimited(RetryAfter::Seconds(1))), "rate_limited", 429;
    rate_limit_retry_after_http_date: "429 with `Retry-After: <HTTP-date 2 s ahead>`", Inject::Fault(Fault::RateLimited(RetryAfter::HttpDate(2))), "rate_limited", 429;
    rate_limit_retry_after_ms: "429 with `retry-after-ms: 400`", Inject::Fault(Fault::RateLimited(RetryAfter::Millis(400))), "rate_limited", 429;
    rate_limit_x_ms_retry_after_ms: "429 with `x-ms-retry-after-ms: 400` (Azure)", Inject::Fault(Fault::RateLimited(RetryAfter::AzureMillis(400))), "rate_limited", 429;
    rate_limit_without_hint: "429 without a hint", Inject::Fault(Fault::RateLimited(RetryAfter::None)), "rate_limited", 429;
    status_500: "HTTP 500", Inject::Fault(Fault::Status(500)), "upstream_server", 503;
    status_502: "HTTP 502", Inject::Fault(Fault::Status(502)), "upstream_server", 503;
    status_503: "HTTP 503", Inject::Fault(Fault::Status(503)), "upstream_server", 503;
    status_529: "HTTP 529 (overloaded)", Inject::Fault(Fault::Status(529)), "upstream_server", 503;
    connect_refused: "connection refused", Inject::Refuse, "connection", 503;
    reset_before_headers: "connection reset before headers", Inject::Fault(Fault::ResetBeforeHeaders), "connection", 503;
    timeout_before_headers: "no answer (timeout before headers)", Inject::Fault(Fault::TimeoutBeforeHeaders), "timeout", 504;
    stall_before_content: "stall before the first content chunk", Inject::Fault(Fault::StallAfter(0)), "timeout", 504;
    cut_before_content: "connection cut before the first content chunk", Inject::Fault(Fault::CutAfter(0)), "protocol", 503;
    malformed_frame: "malformed JSON frame (or body)", Inject::Fault(Fault::MalformedAfter(0)), "protocol", 503;
    in_band_error_frame: "in-band `{\"error\": …}` frame (or 200 body)", Inject::Fault(Fault::InBandErrorAfter(0)), "upstream_server", 503;
    error_event_after_200: "200, then an `event: error` frame", Inject::Fault(Fault::ErrorEvent), "upstream_server", 503;
    keep_alive_comments_only: "200, then keep-alive comments only", Inject::Fault(Fault::KeepAliveOnly), "timeout", 504;
}

/// One test module per row: a committed stream that fails, through chat completions and
/// through the Anthropic Messages door.
macro_rules! committed {
    ($($name:ident: $what:literal, $fault:expr, $chunks:literal;)*) => {$(
        #[doc = $what]
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn chat_completions() {
                committed($fault, $chunks).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn anthropic_messages() {
                committed_anthropic($fault, $chunks).await;
            }
        }
    )*};
}

// name: what the upstream does after relaying content, fault, content chunks relayed.
committed! {
    committed_stream_stall: "stalls after 2 content chunks", Fault::StallAfter(2), 2;
    committed_stream_cut: "cuts the connection after 2 content chunks", Fault::CutAfter(2), 2;
    committed_stream_malformed_frame: "sends a malformed frame after 2 content chunks", Fault::MalformedAfter(2), 2;
    committed_stream_in_band_error: "sends an in-band error frame after 2 content chunks", Fault::InBandErrorAfter(2), 2;
}

/// A slow but steady upstream is not a fault: it keeps serving and never rests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_drip_keeps_serving() {
    let trio = Trio::start().await;
    for i in 0..3 {
        trio.inject(i, Inject::Fault(Fault::SlowDrip(Duration::from_millis(10))))
            .await;
    }
    for stream in [false, true, false, true] {
        trio.answered(stream).await;
    }
    for i in 0..3 {
        let status = trio.status(i).await;
        assert_eq!(
            (status["state"].as_str(), status["failures"].as_u64()),
            (Some("healthy"), Some(0)),
            "{status}"
        );
    }
    assert_no_secret_logged();
}

/// The chaos run: three upstreams each failing 30 % of requests at random with a mix of
/// faults that the gateway can fail over from; 10,000 requests (JSON and streams, 32 at a
/// time); at least 99.9 % succeed and every failure is an OpenAI error naming its attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_ten_thousand_requests_over_three_thirty_percent_faulty_upstreams() {
    const REQUESTS: usize = 10_000;
    let trio = std::sync::Arc::new(Trio::start().await);
    let faults = vec![
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Status(529),
        Fault::ResetBeforeHeaders,
        Fault::CutAfter(0),
        Fault::MalformedAfter(0),
        Fault::InBandErrorAfter(0),
        Fault::ErrorEvent,
    ];
    for (i, server) in trio.servers.iter().enumerate() {
        server
            .set(Plan::Random {
                percent: 30,
                seed: 1_000 + i as u64,
                faults: faults.clone(),
            })
            .await;
    }
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..REQUESTS {
        let trio = std::sync::Arc::clone(&trio);
        let permit = std::sync::Arc::clone(&semaphore)
            .acquire_owned()
            .await
            .unwrap();
        tasks.spawn(async move {
            let _permit = permit;
            let (status, _, text) = trio.ask(n % 2 == 1).await;
            (status, text)
        });
    }
    let mut failures = Vec::new();
    let mut successes = 0usize;
    while let Some(done) = tasks.join_next().await {
        let (status, text) = done.unwrap();
        if status == 200 && !text.contains("\"error\"") {
            successes += 1;
        } else {
            failures.push((status, text));
        }
    }
    for (status, text) in &failures {
        // Every failure explains itself: an OpenAI error naming the attempts.
        let body: Value = serde_json::from_str(text)
            .unwrap_or_else(|_| panic!("an unexplained failure ({status}): {text}"));
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("openai/gpt-4o/"), "{status}: {message}");
    }
    let faulted: u64 = trio.servers.iter().map(FaultServer::faulted).sum();
    let upstream: u64 = trio.servers.iter().map(FaultServer::requests).sum();
    assert!(
        faulted > 3_000,
        "the upstreams faulted {faulted} of {upstream} requests"
    );
    assert!(
        successes * 1_000 >= REQUESTS * 999,
        "success {successes} of {REQUESTS}; failures: {:?}",
        &failures[..failures.len().min(3)]
    );
    assert_no_secret_logged();
}
