//! What the native API is sent and what comes back, against wiremock speaking DashScope's
//! documented native format.

use futures_util::StreamExt;
use llm_core::{
    ChatChunk, ChatProvider, ChatRequest, ChatStreamExt, ContentPart, ErrorKind, FinishReason,
    FunctionCall, Message, Result, Tool, ToolCall, ToolKind,
};
use llm_http::Timeouts;
use llm_qwen::{QwenApi, QwenConfig, QwenProvider};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::{
    KEY,
    native::{error_event, event, native_error, result},
};

const TEXT_PATH: &str = "/api/v1/services/aigc/text-generation/generation";
const MULTIMODAL_PATH: &str = "/api/v1/services/aigc/multimodal-generation/generation";

fn qwen(server: &MockServer, model: &str) -> QwenProvider {
    QwenProvider::new(QwenConfig {
        // A bare host: the native path is appended.
        base_url: server.uri(),
        model: Some(model.to_owned()),
        ..QwenConfig::new(KEY)
    })
    .unwrap()
}

async fn sent(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

async fn collect(stream: llm_core::ChatStream) -> Vec<Result<ChatChunk>> {
    stream.collect().await
}

fn weather() -> Tool {
    Tool::function(
        "get_weather",
        "Weather for a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    )
}

#[tokio::test]
async fn a_plain_chat_sends_input_and_parameters_and_reads_output() {
    let server = MockServer::start().await;
    let mut answer = result(
        json!({"role": "assistant", "content": "It is 21°C in Paris."}),
        "stop",
        (52, 9),
    );
    answer["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 32});
    Mock::given(method("POST"))
        .and(path(TEXT_PATH))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(&server)
        .await;
    let mut request = ChatRequest {
        temperature: Some(0.7),
        top_p: Some(0.8),
        seed: Some(42),
        max_tokens: Some(512),
        ..ChatRequest::new(
            "ignored",
            vec![
                Message::system("You are terse."),
                Message::user("Weather in Paris?"),
            ],
        )
    };
    request.extra.insert("enable_search".into(), json!(true));
    request.extra.insert("top_k".into(), json!(20));
    let response = qwen(&server, "qwen-plus").chat(&request).await.unwrap();
    assert_eq!(response.text().as_deref(), Some("It is 21°C in Paris."));
    assert_eq!(response.id, "chatcmpl-5bd1f7a1-62b7-9b8c-a8b9-7a9ce8c2b3f1");
    assert_eq!(response.model, "qwen-plus");
    assert_eq!(response.object, "chat.completion");
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (52, 9, 61)
    );
    assert_eq!(usage.cached_tokens(), Some(32));
    let request = server.received_requests().await.unwrap().remove(0);
    assert!(request.headers.get("x-dashscope-sse").is_none());
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "qwen-plus",
            "input": {"messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather in Paris?"}
            ]},
            "parameters": {"result_format": "message", "max_tokens": 512,
                "temperature": 0.7, "top_p": 0.8, "seed": 42, "enable_search": true, "top_k": 20}
        })
    );
}

#[tokio::test]
async fn a_thinking_stream_carries_reasoning_then_content_and_usage_once() {
    let server = MockServer::start().await;
    let mut frames = String::new();
    let steps = [
        (
            json!({"role": "assistant", "content": "", "reasoning_content": "User asks"}),
            "null",
            3,
        ),
        (
            json!({"role": "assistant", "content": "", "reasoning_content": " the time."}),
            "null",
            6,
        ),
        (
            json!({"role": "assistant", "content": "Noon.", "reasoning_content": ""}),
            "null",
            8,
        ),
        (
            json!({"role": "assistant", "content": "", "reasoning_content": ""}),
            "stop",
            9,
        ),
    ];
    for (i, (message, finish, output)) in steps.into_iter().enumerate() {
        let mut data = result(message, finish, (40, output));
        data["usage"]["output_tokens_details"] = json!({"reasoning_tokens": 6});
        frames.push_str(&event(i + 1, &data));
    }
    Mock::given(method("POST"))
        .and(path(TEXT_PATH))
        .and(header("x-dashscope-sse", "enable"))
        .and(header("accept", "text/event-stream"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(frames, "text/event-stream"))
        .mount(&server)
        .await;
    let mut request = ChatRequest::from("What time is it?");
    request.extra.insert("enable_thinking".into(), json!(true));
    request.extra.insert("thinking_budget".into(), json!(1024));
    let items = collect(
        qwen(&server, "qwen3-235b-a22b")
            .stream(&request)
            .await
            .unwrap(),
    )
    .await;
    let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
    let usage_chunks: Vec<_> = chunks.iter().filter(|c| c.usage.is_some()).collect();
    assert_eq!(usage_chunks.len(), 1, "cumulative usage is reported once");
    assert!(usage_chunks[0].choices.is_empty());
    let usage = usage_chunks[0].usage.clone().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (40, 9));
    assert_eq!(
        usage.completion_tokens_details.unwrap().reasoning_tokens,
        Some(6)
    );
    let mut collector = llm_core::Collector::default();
    for chunk in chunks {
        collector.push(chunk);
    }
    let answer = collector.finish().unwrap();
    assert_eq!(answer.text().as_deref(), Some("Noon."));
    assert_eq!(
        answer.choices[0].message.reasoning_content.as_deref(),
        Some("User asks the time.")
    );
    let body = &sent(&server).await[0];
    assert_eq!(body["parameters"]["incremental_output"], true);
    assert_eq!(body["parameters"]["enable_thinking"], true);
    assert_eq!(body["parameters"]["thinking_budget"], 1024);
    assert!(body.get("stream").is_none() && body["parameters"].get("stream").is_none());
}

#[tokio::test]
async fn cumulative_output_is_turned_into_deltas() {
    let server = MockServer::start().await;
    let frames: String = [
        ("Hel", "null"),
        ("Hello, wo", "null"),
        ("Hello, world!", "stop"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (text, finish))| {
        event(
            i + 1,
            &result(
                json!({"role": "assistant", "content": text}),
                finish,
                (5, 3),
            ),
        )
    })
    .collect();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(frames, "text/event-stream"))
        .mount(&server)
        .await;
    let mut request = ChatRequest::from("hi");
    request
        .extra
        .insert("incremental_output".into(), json!(false));
    let chunks: Vec<ChatChunk> =
        collect(qwen(&server, "qwen-plus").stream(&request).await.unwrap())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let pieces: Vec<&str> = chunks.iter().filter_map(ChatChunk::content).collect();
    assert_eq!(pieces, ["Hel", "lo, wo", "rld!"]);
    assert_eq!(
        sent(&server).await[0]["parameters"]["incremental_output"],
        false
    );
}

#[tokio::test]
async fn a_tool_round_trip_sends_calls_and_results_in_dashscope_shape() {
    let server = MockServer::start().await;
    let calls = json!([
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
    ]);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(result(
            json!({"role": "assistant", "content": "", "tool_calls": calls}),
            "tool_calls",
            (60, 30),
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(result(
            json!({"role": "assistant", "content": "Paris 21°C, Rome 25°C."}),
            "stop",
            (90, 12),
        )))
        .mount(&server)
        .await;
    let provider = qwen(&server, "qwen-plus");
    let request = ChatRequest {
        tools: Some(vec![weather()]),
        parallel_tool_calls: Some(true),
        ..ChatRequest::new("x", vec![Message::user("Paris and Rome?")])
    };
    let first = provider.chat(&request).await.unwrap();
    assert_eq!(
        first.choices[0].finish_reason,
        Some(FinishReason::ToolCalls)
    );
    let made = first.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(made.len(), 2);
    assert_eq!(made[1].function.arguments, "{\"city\":\"Rome\"}");
    assert!(first.choices[0].message.content.is_none());

    let mut assistant = Message::assistant("");
    assistant.tool_calls = Some(
        made.iter()
            .map(|c| ToolCall {
                id: c.id.clone(),
                kind: ToolKind::Function,
                function: FunctionCall {
                    name: c.function.name.clone(),
                    arguments: c.function.arguments.clone(),
                },
            })
            .collect(),
    );
    let follow_up = ChatRequest {
        tools: Some(vec![weather()]),
        ..ChatRequest::new(
            "x",
            vec![
                Message::user("Paris and Rome?"),
                assistant,
                Message::tool("call_1", "{\"temp\":21}"),
                Message::tool("call_2", "{\"temp\":25}"),
            ],
        )
    };
    let second = provider.chat(&follow_up).await.unwrap();
    assert_eq!(second.text().as_deref(), Some("Paris 21°C, Rome 25°C."));
    let bodies = sent(&server).await;
    assert_eq!(
        bodies[0]["parameters"]["tools"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(bodies[0]["parameters"]["parallel_tool_calls"], true);
    let messages = &bodies[1]["input"]["messages"];
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[2],
        json!({"role": "tool", "content": "{\"temp\":21}", "tool_call_id": "call_1"})
    );
    assert_eq!(messages[3]["tool_call_id"], "call_2");
}

#[tokio::test]
async fn streamed_parallel_tool_calls_get_one_head_each() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(crate::native::tool_events(), "text/event-stream"),
        )
        .mount(&server)
        .await;
    let chunks: Vec<ChatChunk> = collect(
        qwen(&server, "qwen-plus")
            .stream(&ChatRequest::from("go"))
            .await
            .unwrap(),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    let heads: Vec<(u32, String)> = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|choice| choice.delta.tool_calls.iter().flatten())
        .filter_map(|call| call.id.clone().map(|id| (call.index, id)))
        .collect();
    assert_eq!(
        heads,
        [
            (0, "call_weather_1".to_owned()),
            (1, "call_time_2".to_owned())
        ]
    );
    let mut collector = llm_core::Collector::default();
    for chunk in chunks {
        collector.push(chunk);
    }
    let answer = collector.finish().unwrap();
    let calls = answer.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(calls[0].function.arguments, "{\"city\": \"Paris\"}");
    assert_eq!(calls[1].function.name, "get_time");
}

#[tokio::test]
async fn vl_models_use_the_multimodal_path_with_image_parts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(MULTIMODAL_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "output": {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": [{"text": "A cat."}]}}]},
            "usage": {"input_tokens": 1200, "output_tokens": 3, "image_tokens": 1180},
            "request_id": "vl-1"
        })))
        .mount(&server)
        .await;
    let request = ChatRequest::new(
        "x",
        vec![Message::user_parts(vec![
            ContentPart::image_url("https://example.com/cat.png"),
            ContentPart::text("What is this?"),
        ])],
    );
    let answer = qwen(&server, "qwen-vl-max").chat(&request).await.unwrap();
    assert_eq!(answer.text().as_deref(), Some("A cat."));
    let usage = answer.usage.unwrap();
    assert_eq!(usage.total_tokens, 1203);
    assert_eq!(usage.extra["image_tokens"], 1180);
    let body = &sent(&server).await[0];
    assert_eq!(
        body["input"]["messages"][0]["content"],
        json!([{"image": "https://example.com/cat.png"}, {"text": "What is this?"}])
    );
    assert!(body["parameters"].get("result_format").is_none());
    // The same image to a text-path model is a clear error, before anything is sent.
    let err = qwen(&server, "qwen-plus").chat(&request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    assert_eq!(sent(&server).await.len(), 1);
}

#[tokio::test]
async fn multimodal_streams_read_content_parts() {
    let server = MockServer::start().await;
    let frames = [
        event(
            1,
            &result(
                json!({"role": "assistant", "content": [{"text": "A "}]}),
                "null",
                (900, 1),
            ),
        ),
        event(
            2,
            &result(
                json!({"role": "assistant", "content": [{"text": "cat."}]}),
                "stop",
                (900, 2),
            ),
        ),
    ]
    .concat();
    Mock::given(method("POST"))
        .and(path(MULTIMODAL_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_raw(frames, "text/event-stream"))
        .mount(&server)
        .await;
    let request = ChatRequest::new(
        "x",
        vec![Message::user_parts(vec![ContentPart::image_url(
            "data:image/png;base64,iVBORw0KGgo=",
        )])],
    );
    let answer = qwen(&server, "qwen3-vl-plus")
        .stream(&request)
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(answer.text().as_deref(), Some("A cat."));
}

#[tokio::test]
async fn error_answers_are_classified_by_code() {
    let cases = [
        (
            native_error(401, "InvalidApiKey", "Invalid API-key provided."),
            ErrorKind::Authentication,
        ),
        (
            native_error(429, "Throttling", "Requests throttling triggered."),
            ErrorKind::RateLimited,
        ),
        (
            native_error(
                429,
                "Throttling.AllocationQuota",
                "Allocated quota exceeded.",
            ),
            ErrorKind::QuotaExhausted,
        ),
        (
            native_error(
                400,
                "Arrearage",
                "Access denied, please make sure your account is in good standing.",
            ),
            ErrorKind::QuotaExhausted,
        ),
        (
            native_error(
                400,
                "DataInspectionFailed",
                "Input data may contain inappropriate content.",
            ),
            ErrorKind::ContentFiltered,
        ),
        (
            native_error(400, "InvalidParameter", "url error, please check url"),
            ErrorKind::InvalidRequest,
        ),
        (
            native_error(404, "ModelNotFound", "Model not exist."),
            ErrorKind::NotFound,
        ),
        (
            native_error(500, "InternalError.Algo", "An internal error has occured."),
            ErrorKind::UpstreamServer,
        ),
    ];
    for ((status, body), kind) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(body.clone())
                    .insert_header("retry-after", "5"),
            )
            .mount(&server)
            .await;
        let provider = qwen(&server, "qwen-plus");
        let chat = provider.chat(&ChatRequest::from("hi")).await.unwrap_err();
        assert_eq!(chat.kind(), kind, "{body}");
        assert_eq!(chat.code(), body["code"].as_str(), "{body}");
        if kind == ErrorKind::QuotaExhausted {
            assert_eq!(chat.retry_after(), None, "a used-up quota is not a wait");
        }
        // Errors found before streaming starts come back as plain JSON even on streams.
        let Err(stream) = provider.stream(&ChatRequest::from("hi")).await else {
            panic!("a stream opened on an error answer: {body}");
        };
        assert_eq!(stream.kind(), kind, "{body}");
    }
}

#[tokio::test]
async fn an_error_event_inside_a_200_stream_ends_it() {
    let server = MockServer::start().await;
    let frames = [
        event(
            1,
            &result(
                json!({"role": "assistant", "content": "Once"}),
                "null",
                (5, 1),
            ),
        ),
        error_event(
            2,
            400,
            "DataInspectionFailed",
            "Output data may contain inappropriate content.",
        ),
    ]
    .concat();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(frames, "text/event-stream"))
        .mount(&server)
        .await;
    let items = collect(
        qwen(&server, "qwen-plus")
            .stream(&ChatRequest::from("hi"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().content(), Some("Once"));
    let err = items[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContentFiltered);
    assert_eq!(err.code(), Some("DataInspectionFailed"));
}

#[tokio::test]
async fn a_stream_without_a_finish_reason_is_cut_off() {
    let server = MockServer::start().await;
    let frames = event(
        1,
        &result(
            json!({"role": "assistant", "content": "Half"}),
            "null",
            (5, 1),
        ),
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(frames, "text/event-stream"))
        .mount(&server)
        .await;
    let err = qwen(&server, "qwen-plus")
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
}

#[test]
fn keys_and_modes_show_as_configured() {
    let config = QwenConfig {
        base_url: "https://dashscope-intl.aliyuncs.com/compatible-mode/v1".into(),
        workspace: Some("ws-123".into()),
        ..QwenConfig::new(KEY)
    };
    let provider = QwenProvider::new(config.clone()).unwrap();
    assert_eq!(provider.api(), QwenApi::Compatible);
    for text in [format!("{config:?}"), format!("{provider:?}")] {
        assert!(!text.contains("PLANTED"), "{text}");
    }
    let native = QwenProvider::new(QwenConfig {
        api: Some(QwenApi::Native),
        timeouts: Timeouts::default(),
        ..config
    })
    .unwrap();
    assert_eq!(native.api(), QwenApi::Native);
    assert!(!format!("{native:?}").contains("PLANTED"));
}

#[tokio::test]
async fn stream_only_models_answer_non_streaming_calls_by_streaming() {
    let server = MockServer::start().await;
    let frames = [
        event(
            1,
            &result(
                json!({"role": "assistant", "content": "", "reasoning_content": "Think."}),
                "null",
                (5, 1),
            ),
        ),
        event(
            2,
            &result(
                json!({"role": "assistant", "content": "42"}),
                "stop",
                (5, 3),
            ),
        ),
    ]
    .concat();
    Mock::given(method("POST"))
        .and(path(TEXT_PATH))
        .and(header("x-dashscope-sse", "enable"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(frames, "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;
    let answer = qwen(&server, "qwq-plus")
        .chat(&ChatRequest::from("6 × 7?"))
        .await
        .unwrap();
    assert_eq!(answer.text().as_deref(), Some("42"));
    assert_eq!(
        answer.choices[0].message.reasoning_content.as_deref(),
        Some("Think.")
    );
    assert_eq!(answer.usage.unwrap().completion_tokens, 3);
    assert_eq!(
        sent(&server).await[0]["parameters"]["incremental_output"],
        true
    );
}
