//! The Anthropic Messages door over real sockets: answers, the event sequence of streams
//! frame by frame, tools both ways, errors in Anthropic's shape, `x-api-key`, and a stream
//! that fails after content ends with an `error` event.

use std::{sync::Arc, time::Duration};

use llm_factory::{
    DeploymentConfig, LlmFactory, ModelConfig, ProviderType,
    core::{ChatProvider, ErrorKind, MockConfig, MockFailure, MockProvider, MockReply},
};
use llm_server::GatewayOptions;
use serde_json::{Value, json};

use crate::{
    logs::PLANTED,
    support::{Gateway, client},
};

const GATEWAY_KEY: &str = "gw-anthropic-PLANTED-0123456789";

fn factory() -> LlmFactory {
    let tools = MockProvider::new(
        "tools",
        MockConfig {
            model: "mock-tools".into(),
            reply: MockReply::ToolCalls(vec![
                ("get_weather".into(), r#"{"city":"Paris"}"#.into()),
                ("get_time".into(), r#"{"tz":"CET"}"#.into()),
            ]),
            ..MockConfig::default()
        },
    );
    let failing = MockProvider::new(
        "failing",
        MockConfig {
            model: "mock-failing".into(),
            reply: MockReply::Text("one two three four".into()),
            failure: Some(MockFailure::always(ErrorKind::UpstreamServer).after_chunks(2)),
            ..MockConfig::default()
        },
    );
    let limited = MockProvider::new(
        "limited",
        MockConfig {
            model: "mock-limited".into(),
            failure: Some(
                MockFailure::always(ErrorKind::RateLimited).retry_after(Duration::from_secs(1)),
            ),
            ..MockConfig::default()
        },
    );
    LlmFactory::builder()
        .model(ModelConfig {
            provider: ProviderType::Mock,
            model_name: "mock-echo".into(),
            ..ModelConfig::default()
        })
        .provider(
            Arc::new(tools) as Arc<dyn ChatProvider>,
            DeploymentConfig::new("tools", "mock-tools"),
        )
        .provider(
            Arc::new(failing) as Arc<dyn ChatProvider>,
            DeploymentConfig::new("failing", "mock-failing"),
        )
        .provider(
            Arc::new(limited) as Arc<dyn ChatProvider>,
            DeploymentConfig::new("limited", "mock-limited"),
        )
        .build()
        .unwrap()
}

async fn gateway() -> Gateway {
    Gateway::start(
        factory(),
        GatewayOptions {
            api_keys: vec![GATEWAY_KEY.into()],
            ..GatewayOptions::default()
        },
    )
    .await
}

async fn post(gateway: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(gateway.url(path))
        .header("x-api-key", GATEWAY_KEY)
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14",
        )
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `(event, data)` of each SSE frame, checking that every `event:` equals its `type`.
fn frames(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|frame| {
            let event = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("no event line: {frame}"))
                .to_owned();
            let data: Value = serde_json::from_str(
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(data["type"], event.as_str(), "{frame}");
            (event, data)
        })
        .collect()
}

#[tokio::test]
async fn text_answers_and_streams_in_anthropic_shape() {
    let gateway = gateway().await;
    let request = json!({
        "model": "mock-echo",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there world"}]}],
        "metadata": {"user_id": "user-1"},
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    });
    // `?beta=true` as Claude Code sends it.
    let response = post(&gateway, "/v1/messages?beta=true", &request).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["role"], "assistant");
    assert_eq!(answer["model"], "mock-echo");
    assert!(answer["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": "hello there world"}])
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["stop_sequence"], Value::Null);
    let usage = &answer["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(usage["output_tokens"], 3);

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let response = post(&gateway, "/v1/messages", &streamed).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    let frames = frames(&body);
    let kinds: Vec<&str> = frames.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{body}"
    );
    let start = &frames[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert!(start["usage"]["input_tokens"].is_u64());
    assert_eq!(frames[1].1["index"], 0);
    assert_eq!(
        frames[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = frames
        .iter()
        .filter(|(k, _)| k == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "hello there world");
    let delta = &frames[6].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn parallel_tool_calls_and_a_tool_result_round_trip() {
    let gateway = gateway().await;
    let tools = json!([
        {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}},
        {"name": "get_time", "description": "Time", "input_schema": {"type": "object"}}
    ]);
    let request = json!({
        "model": "mock-tools", "max_tokens": 100, "tools": tools,
        "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": "Weather and time in Paris?"}]
    });
    let answer: Value = post(&gateway, "/v1/messages", &request)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["stop_reason"], "tool_use");
    let content = answer["content"].as_array().unwrap();
    assert_eq!(content.len(), 2, "{answer}");
    for block in content {
        assert_eq!(block["type"], "tool_use");
        let id = block["id"].as_str().unwrap();
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{id}"
        );
    }
    assert_eq!(content[0]["name"], "get_weather");
    assert_eq!(content[0]["input"], json!({"city": "Paris"}));
    assert_eq!(content[1]["input"], json!({"tz": "CET"}));

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let body = post(&gateway, "/v1/messages", &streamed)
        .await
        .text()
        .await
        .unwrap();
    let frames = frames(&body);
    let starts: Vec<&Value> = frames
        .iter()
        .filter(|(k, _)| k == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(starts.len(), 2, "{body}");
    assert_eq!(starts[0]["index"], 0);
    assert_eq!(starts[1]["index"], 1);
    assert_eq!(starts[0]["content_block"]["type"], "tool_use");
    // Blocks one at a time: each block's deltas come between its start and its stop.
    let mut open: Option<u64> = None;
    let mut arguments = [String::new(), String::new()];
    for (kind, data) in &frames {
        match kind.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "{body}");
                open = data["index"].as_u64();
            }
            "content_block_delta" => {
                assert_eq!(data["index"].as_u64(), open, "{body}");
                let index = usize::try_from(open.unwrap()).unwrap();
                arguments[index].push_str(data["delta"]["partial_json"].as_str().unwrap());
            }
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open, "{body}");
                open = None;
            }
            _ => {}
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(&arguments[0]).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&arguments[1]).unwrap(),
        json!({"tz": "CET"})
    );

    // The round trip: the tool results (one an error) and text after them, on the echo model.
    let round_trip = json!({
        "model": "mock-echo", "max_tokens": 100, "tools": tools,
        "messages": [
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": content},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": content[0]["id"], "content": "21°C"},
                {"type": "tool_result", "tool_use_id": content[1]["id"], "content": [{"type": "text", "text": "clock broken"}], "is_error": true},
                {"type": "text", "text": "Thanks, summarize."}
            ]}
        ]
    });
    let answer: Value = post(&gateway, "/v1/messages", &round_trip)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["content"][0]["text"], "Thanks, summarize.",
        "{answer}"
    );
}

#[tokio::test]
async fn errors_come_in_anthropic_shape() {
    let gateway = gateway().await;
    let check = |status: u16, kind: &'static str| {
        move |response: (u16, Value)| {
            assert_eq!(response.0, status, "{}", response.1);
            assert_eq!(response.1["type"], "error");
            assert_eq!(response.1["error"]["type"], kind, "{}", response.1);
            assert!(response.1["error"]["message"].is_string());
        }
    };
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let url = gateway.url("/v1/messages");
    let ok = json!({"model": "mock-echo", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    // No key, a wrong key; Bearer works too.
    check(401, "authentication_error")(send(client().post(&url).json(&ok)).await);
    check(401, "authentication_error")(
        send(client().post(&url).header("x-api-key", "wrong").json(&ok)).await,
    );
    let bearer = client()
        .post(&url)
        .header("authorization", format!("Bearer {GATEWAY_KEY}"))
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let keyed = || client().post(&url).header("x-api-key", GATEWAY_KEY);
    check(404, "not_found_error")(
        send(keyed().json(&json!({"model": "nope", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))).await,
    );
    check(400, "invalid_request_error")(
        send(
            keyed()
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await,
    );
    check(400, "invalid_request_error")(
        send(keyed().json(&json!({"model": "mock-echo", "max_tokens": "ten", "messages": []})))
            .await,
    );
    check(400, "invalid_request_error")(
        send(
            keyed().json(
                &json!({"model": "mock-echo", "messages": [{"role": "user", "content": "hi"}]}),
            ),
        )
        .await,
    );
    let limited = keyed()
        .json(&json!({"model": "mock-limited", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(!body.to_string().contains(PLANTED));
}

#[tokio::test]
async fn a_stream_that_fails_after_content_ends_with_an_error_event() {
    let gateway = gateway().await;
    let request = json!({"model": "mock-failing", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let body = post(&gateway, "/v1/messages", &request)
        .await
        .text()
        .await
        .unwrap();
    let frames = frames(&body);
    let (last_kind, last) = frames.last().unwrap();
    assert_eq!(last_kind, "error", "{body}");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(
        frames.iter().any(|(k, _)| k == "content_block_delta"),
        "{body}"
    );
    assert!(!frames.iter().any(|(k, _)| k == "message_stop"), "{body}");
}

#[tokio::test]
async fn count_tokens_grows_with_the_prompt() {
    let gateway = gateway().await;
    let count = |text: &str| {
        let body = json!({"model": "mock-echo", "messages": [{"role": "user", "content": text}], "system": "Be brief."});
        let gateway = &gateway;
        async move {
            let answer: Value = post(gateway, "/v1/messages/count_tokens", &body)
                .await
                .json()
                .await
                .unwrap();
            answer["input_tokens"].as_u64().unwrap()
        }
    };
    let short = count("hi").await;
    let long = count(&"a longer prompt ".repeat(50)).await;
    assert!(short > 0 && long > short, "{short} {long}");
    let unknown = post(
        &gateway,
        "/v1/messages/count_tokens",
        &json!({"model": "nope", "messages": []}),
    )
    .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn unavailable_upstreams_are_529_overloaded() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

    // Every deployment failing transiently is the gateway's 503: Anthropic's 529, which
    // Anthropic clients retry.
    for (status, expected_status, kind) in [
        (503, 529, "overloaded_error"),
        (500, 529, "overloaded_error"),
    ] {
        let upstream = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(
                json!({"error": {"message": "Overloaded", "type": "server_error", "code": null}}),
            ))
            .mount(&upstream)
            .await;
        let factory = LlmFactory::new(ModelConfig {
            provider: ProviderType::OpenAi,
            model_name: "gpt-4o".into(),
            api_key: Some("sk-upstream-PLANTED-0123456789".into()),
            api_base: Some(format!("{}/v1", upstream.uri())),
            ..ModelConfig::default()
        })
        .unwrap();
        let gateway = Gateway::start(factory, GatewayOptions::default()).await;
        for stream in [false, true] {
            let response = client()
                .post(gateway.url("/v1/messages"))
                .json(
                    &json!({"model": "gpt-4o", "max_tokens": 10, "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}]}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status().as_u16(),
                expected_status,
                "{status} stream {stream}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], kind, "{body}");
            assert!(!body.to_string().contains(PLANTED));
        }
    }
}

#[tokio::test]
async fn an_oversized_body_is_413_request_too_large() {
    let gateway = Gateway::start(
        factory(),
        GatewayOptions {
            max_body_bytes: 1024,
            ..GatewayOptions::default()
        },
    )
    .await;
    let big = "x".repeat(4096);
    let response = client()
        .post(gateway.url("/v1/messages"))
        .json(&json!({"model": "mock-echo", "max_tokens": 10, "messages": [{"role": "user", "content": big}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "request_too_large", "{body}");
}
