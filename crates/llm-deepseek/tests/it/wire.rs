//! What DeepSeek is sent and what comes back, against wiremock speaking DeepSeek's
//! documented format (recorded shapes: UUID ids, cache-hit usage, keep-alive comments).

use futures_util::StreamExt;
use llm_core::{
    ChatProvider, ChatRequest, ChatStreamExt, ErrorKind, FinishReason, FunctionCall,
    JsonSchemaFormat, Message, ResponseFormat, Tool, ToolCall, ToolKind,
};
use llm_deepseek::{DeepSeekConfig, DeepSeekProvider};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::KEY;

fn provider(base: &str, model: &str) -> DeepSeekProvider {
    DeepSeekProvider::new(DeepSeekConfig {
        base_url: base.to_owned(),
        model: Some(model.to_owned()),
        ..DeepSeekConfig::new(KEY)
    })
    .unwrap()
}

fn usage() -> Value {
    json!({"prompt_tokens": 14, "completion_tokens": 21, "total_tokens": 35,
        "prompt_tokens_details": {"cached_tokens": 0},
        "prompt_cache_hit_tokens": 10, "prompt_cache_miss_tokens": 4,
        "completion_tokens_details": {"reasoning_tokens": 12}})
}

fn completion(message: Value, finish: &str) -> Value {
    let mut usage = usage();
    // Older answers carry only the DeepSeek-specific fields.
    usage
        .as_object_mut()
        .unwrap()
        .remove("prompt_tokens_details");
    let mut body = json!({
        "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e", "object": "chat.completion",
        "created": 1755780061, "model": "deepseek-flash",
        "choices": [{"index": 0, "message": {}, "logprobs": null, "finish_reason": finish}],
        "usage": usage, "system_fingerprint": "fp_feb633d1f5_prod0820_fp8_kvcache"
    });
    body["choices"][0]["message"] = message;
    body
}

fn frame(delta: Value, finish: Option<&str>, usage: Option<Value>) -> String {
    let mut chunk = json!({"id": "3f2e", "object": "chat.completion.chunk", "created": 1755780061,
        "model": "deepseek-flash", "system_fingerprint": "fp_feb633d1f5",
        "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}]});
    chunk["choices"][0]["delta"] = delta;
    chunk["usage"] = usage.unwrap_or(Value::Null);
    format!("data: {chunk}\n\n")
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn weather_tool() -> Tool {
    Tool::function(
        "get_weather",
        "Weather for a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )
}

fn call(id: &str, city: &str) -> ToolCall {
    ToolCall {
        id: id.to_owned(),
        kind: ToolKind::Function,
        function: FunctionCall {
            name: "get_weather".to_owned(),
            arguments: format!("{{\"city\":\"{city}\"}}"),
        },
    }
}

#[tokio::test]
async fn text_with_reasoning_and_cache_usage_on_either_base() {
    for (base_suffix, expected_path) in [("", "/chat/completions"), ("/v1", "/v1/chat/completions")]
    {
        let server = MockServer::start().await;
        // DeepSeek sends blank keep-alive lines before a queued non-streaming body.
        let body = format!(
            "\n\n{}",
            completion(
                json!({"role": "assistant", "content": "Hello!", "reasoning_content": "User greets; answer briefly."}),
                "stop",
            )
        );
        Mock::given(method("POST"))
            .and(path(expected_path))
            .and(header("authorization", format!("Bearer {KEY}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .expect(1)
            .mount(&server)
            .await;
        let base = format!("{}{base_suffix}", server.uri());
        let mut request = ChatRequest::new("any", vec![Message::user("Hi")]);
        request.reasoning_effort = Some("high".into());
        request
            .extra
            .insert("thinking".into(), json!({"type": "enabled"}));
        let answer = provider(&base, "deepseek-flash")
            .chat(&request)
            .await
            .unwrap();
        assert_eq!(answer.text().as_deref(), Some("Hello!"));
        assert_eq!(
            answer.choices[0].message.reasoning_content.as_deref(),
            Some("User greets; answer briefly.")
        );
        let usage = answer.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (14, 21));
        assert_eq!(usage.cached_tokens(), Some(10));
        assert_eq!(usage.extra["prompt_cache_miss_tokens"], 4);
        let sent = &bodies(&server).await[0];
        assert_eq!(sent["model"], "deepseek-flash");
        assert_eq!(sent["thinking"], json!({"type": "enabled"}));
        assert_eq!(sent["reasoning_effort"], "high");
        assert!(sent.get("stream").is_none());
    }
}

#[tokio::test]
async fn streams_skip_keep_alives_and_carry_reasoning_then_content() {
    let server = MockServer::start().await;
    let body = [
        ": keep-alive\n\n".to_owned(),
        ": keep-alive\n\n".to_owned(),
        frame(
            json!({"role": "assistant", "content": null, "reasoning_content": ""}),
            None,
            None,
        ),
        frame(
            json!({"content": null, "reasoning_content": "User greets"}),
            None,
            None,
        ),
        frame(
            json!({"content": "Hello!", "reasoning_content": null}),
            None,
            None,
        ),
        // Usage on the finish chunk itself, as DeepSeek has been seen to send it.
        frame(json!({"content": ""}), Some("stop"), Some(usage())),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(header("accept", "text/event-stream"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;
    let stream = provider(&server.uri(), "deepseek-flash")
        .stream(&ChatRequest::from("Hi"))
        .await
        .unwrap();
    let answer = stream.collect_response().await.unwrap();
    assert_eq!(answer.text().as_deref(), Some("Hello!"));
    assert_eq!(
        answer.choices[0].message.reasoning_content.as_deref(),
        Some("User greets")
    );
    assert_eq!(answer.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(answer.usage.unwrap().cached_tokens(), Some(0));
    let sent = &bodies(&server).await[0];
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn a_thinking_tool_loop_replays_reasoning_the_client_dropped() {
    let server = MockServer::start().await;
    // Turn 1: two parallel calls, with the reasoning that led to them.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            json!({"role": "assistant", "content": "", "reasoning_content": "Two cities: call twice.",
                "tool_calls": [
                    {"index": 0, "id": "call_0_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"index": 1, "id": "call_1_b", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]}),
            "tool_calls",
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            json!({"role": "assistant", "content": "Paris 21°C, Rome 25°C."}),
            "stop",
        )))
        .mount(&server)
        .await;
    let deepseek = provider(&server.uri(), "deepseek-flash");
    let question = Message::user("Weather in Paris and Rome?");
    let first = deepseek
        .chat(&ChatRequest {
            tools: Some(vec![weather_tool()]),
            ..ChatRequest::new("m", vec![question.clone()])
        })
        .await
        .unwrap();
    let calls = first.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(
        first.choices[0].finish_reason,
        Some(FinishReason::ToolCalls)
    );
    assert_eq!(
        calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["call_0_a", "call_1_b"]
    );

    // Turn 2, as an OpenAI SDK client builds it: the assistant turn without reasoning.
    let mut assistant = Message::assistant("");
    assistant.tool_calls = Some(calls);
    let history = vec![
        question,
        assistant,
        Message::tool("call_0_a", "{\"temp\":21}"),
        Message::tool("call_1_b", "{\"temp\":25}"),
    ];
    let second = deepseek
        .chat(&ChatRequest {
            tools: Some(vec![weather_tool()]),
            ..ChatRequest::new("m", history.clone())
        })
        .await
        .unwrap();
    assert_eq!(second.text().as_deref(), Some("Paris 21°C, Rome 25°C."));
    let sent = bodies(&server).await;
    assert_eq!(
        sent[1]["messages"][1]["reasoning_content"],
        "Two cities: call twice."
    );
    assert_eq!(sent[1]["messages"][2]["tool_call_id"], "call_0_a");
    assert!(sent[1]["messages"][0].get("reasoning_content").is_none());

    // The same history with thinking disabled is sent as it is.
    let mut plain = ChatRequest::new("m", history.clone());
    plain
        .extra
        .insert("thinking".into(), json!({"type": "disabled"}));
    deepseek.chat(&plain).await.unwrap();
    // The legacy reasoner refuses reasoning in input: it is removed.
    let mut with_reasoning = history;
    with_reasoning[1].reasoning_content = Some("old".into());
    provider(&server.uri(), "deepseek-reasoner")
        .chat(&ChatRequest::new("m", with_reasoning))
        .await
        .unwrap();
    let sent = bodies(&server).await;
    assert!(sent[2]["messages"][1].get("reasoning_content").is_none());
    assert!(sent[3]["messages"][1].get("reasoning_content").is_none());
}

#[tokio::test]
async fn streamed_parallel_tool_calls_are_reassembled_and_their_reasoning_replayed() {
    let server = MockServer::start().await;
    let tool = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
        let mut call = json!({"index": index, "function": {"arguments": args}});
        if let (Some(id), Some(name)) = (id, name) {
            call["id"] = json!(id);
            call["type"] = json!("function");
            call["function"]["name"] = json!(name);
        }
        json!({"tool_calls": [call]})
    };
    let body = [
        frame(
            json!({"role": "assistant", "content": null, "reasoning_content": "Need both."}),
            None,
            None,
        ),
        frame(
            tool(0, Some("call_0_x"), Some("get_weather"), ""),
            None,
            None,
        ),
        frame(tool(0, None, None, "{\"city\":"), None, None),
        frame(
            tool(
                1,
                Some("call_1_y"),
                Some("get_weather"),
                "{\"city\":\"Rome\"}",
            ),
            None,
            None,
        ),
        frame(tool(0, None, None, "\"Paris\"}"), None, None),
        frame(json!({}), Some("tool_calls"), Some(usage())),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            json!({"role": "assistant", "content": "Done."}),
            "stop",
        )))
        .mount(&server)
        .await;
    let deepseek = provider(&server.uri(), "deepseek-flash");
    let request = ChatRequest {
        tools: Some(vec![weather_tool()]),
        ..ChatRequest::new("m", vec![Message::user("Paris and Rome?")])
    };
    let chunks: Vec<_> = deepseek.stream(&request).await.unwrap().collect().await;
    let mut collector = llm_core::Collector::default();
    for chunk in chunks {
        collector.push(chunk.unwrap());
    }
    let answer = collector.finish().unwrap();
    let calls = answer.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].function.arguments, "{\"city\":\"Paris\"}");
    assert_eq!(calls[1].id, "call_1_y");
    assert_eq!(
        answer.choices[0].finish_reason,
        Some(FinishReason::ToolCalls)
    );

    let mut assistant = Message::assistant("");
    assistant.tool_calls = Some(vec![call("call_0_x", "Paris"), call("call_1_y", "Rome")]);
    let follow_up = ChatRequest::new(
        "m",
        vec![
            Message::user("Paris and Rome?"),
            assistant,
            Message::tool("call_0_x", "21"),
            Message::tool("call_1_y", "25"),
        ],
    );
    deepseek.chat(&follow_up).await.unwrap();
    let sent = bodies(&server).await;
    assert_eq!(sent[1]["messages"][1]["reasoning_content"], "Need both.");
}

#[tokio::test]
async fn json_schema_is_refused_before_sending_and_json_object_passes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            json!({"role": "assistant", "content": "{\"a\":1}"}),
            "stop",
        )))
        .mount(&server)
        .await;
    let deepseek = provider(&server.uri(), "deepseek-flash");
    let schema = ChatRequest {
        response_format: Some(ResponseFormat::JsonSchema {
            json_schema: serde_json::from_value::<JsonSchemaFormat>(
                json!({"name": "a", "schema": {"type": "object"}}),
            )
            .unwrap(),
        }),
        ..ChatRequest::from("json please")
    };
    let err = deepseek.chat(&schema).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert!(err.to_string().contains("json_object"), "{err}");
    assert!(bodies(&server).await.is_empty());
    let object = ChatRequest {
        response_format: Some(ResponseFormat::JsonObject),
        ..ChatRequest::from("json please")
    };
    deepseek.chat(&object).await.unwrap();
    assert_eq!(
        bodies(&server).await[0]["response_format"],
        json!({"type": "json_object"})
    );
}

#[tokio::test]
async fn each_documented_status_maps_to_its_kind() {
    let cases = [
        (
            400,
            "Invalid Format",
            "invalid_request_error",
            ErrorKind::InvalidRequest,
        ),
        (
            401,
            "Authentication Fails, Your api key: ****abcd is invalid",
            "authentication_error",
            ErrorKind::Authentication,
        ),
        (
            402,
            "Insufficient Balance",
            "unknown_error",
            ErrorKind::QuotaExhausted,
        ),
        (
            422,
            "Invalid Parameters",
            "invalid_request_error",
            ErrorKind::InvalidRequest,
        ),
        (
            429,
            "Rate Limit Reached",
            "rate_limit_error",
            ErrorKind::RateLimited,
        ),
        (
            500,
            "Server Error",
            "server_error",
            ErrorKind::UpstreamServer,
        ),
        (
            503,
            "Server Overloaded",
            "server_error",
            ErrorKind::UpstreamServer,
        ),
    ];
    for (status, message, kind, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({"error": {
                "message": message, "type": kind, "param": null, "code": "invalid_request_error"}})))
            .mount(&server)
            .await;
        let err = provider(&server.uri(), "deepseek-flash")
            .chat(&ChatRequest::from("hi"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), expected, "{status}: {err}");
        assert!(err.to_string().contains(message), "{err}");
        if expected == ErrorKind::QuotaExhausted {
            assert!(!err.is_retryable() || err.retry_after().is_none());
        }
    }
}

#[tokio::test]
async fn insufficient_system_resource_is_reported_as_length() {
    let server = MockServer::start().await;
    let body = [
        frame(json!({"role": "assistant", "content": "Part"}), None, None),
        frame(
            json!({"content": ""}),
            Some("insufficient_system_resource"),
            None,
        ),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion(
            json!({"role": "assistant", "content": "Part"}),
            "insufficient_system_resource",
        )))
        .mount(&server)
        .await;
    let deepseek = provider(&server.uri(), "deepseek-flash");
    let streamed = deepseek
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(
        streamed.choices[0].finish_reason,
        Some(FinishReason::Length)
    );
    let whole = deepseek.chat(&ChatRequest::from("hi")).await.unwrap();
    assert_eq!(whole.choices[0].finish_reason, Some(FinishReason::Length));
}

#[test]
fn the_key_is_masked_everywhere_it_could_show() {
    let config = DeepSeekConfig::new(KEY);
    let provider = DeepSeekProvider::new(config.clone()).unwrap();
    for text in [format!("{config:?}"), format!("{provider:?}")] {
        assert!(!text.contains("PLANTED"), "{text}");
    }
    assert!(format!("{config:?}").contains("sk-…6789"));
}
