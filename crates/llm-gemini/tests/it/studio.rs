//! AI Studio (the Gemini API): what is sent and what comes back, against wiremock speaking
//! the documented `generateContent` / `streamGenerateContent?alt=sse` format.

use futures_util::StreamExt;
use llm_core::{
    ChatChunk, ChatProvider, ChatRequest, ContentPart, ErrorKind, FinishReason, FunctionCall,
    JsonSchemaFormat, Message, ResponseFormat, Result, Tool, ToolCall, ToolKind,
};
use llm_gemini::{GeminiConfig, GeminiProvider};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path, query_param},
};

use crate::{KEY, error, response, sse};

const CHAT: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const STREAM: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";

fn gemini(server: &MockServer) -> GeminiProvider {
    GeminiProvider::new(GeminiConfig {
        base_url: Some(server.uri()),
        model: Some("gemini-2.5-flash".into()),
        ..GeminiConfig::api_key(KEY)
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

async fn chunks(provider: &GeminiProvider, request: &ChatRequest) -> Vec<ChatChunk> {
    provider
        .stream(request)
        .await
        .unwrap()
        .collect::<Vec<Result<ChatChunk>>>()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

fn weather() -> Tool {
    Tool::function(
        "get_weather",
        "Weather for a city",
        json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["C", "F"], "default": "C"}},
            "required": ["city"], "additionalProperties": false}),
    )
}

#[tokio::test]
async fn a_chat_sends_contents_with_the_key_in_a_header_and_reads_thoughts_and_usage() {
    let server = MockServer::start().await;
    let mut answer = response(
        json!([{"text": "The user greets.", "thought": true}, {"text": "Hello!"}]),
        Some("STOP"),
        None,
    );
    answer["usageMetadata"] = json!({"promptTokenCount": 12, "candidatesTokenCount": 2, "thoughtsTokenCount": 30,
        "totalTokenCount": 44, "cachedContentTokenCount": 8});
    Mock::given(method("POST"))
        .and(path(CHAT))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer))
        .expect(1)
        .mount(&server)
        .await;
    let request = ChatRequest {
        temperature: Some(0.5),
        max_completion_tokens: Some(300),
        stop: Some(llm_core::Stop::Many(vec!["END".into()])),
        ..ChatRequest::new(
            "ignored",
            vec![Message::system("Be brief."), Message::user("Hi")],
        )
    };
    let answer = gemini(&server).chat(&request).await.unwrap();
    assert_eq!(answer.text().as_deref(), Some("Hello!"));
    assert_eq!(
        answer.choices[0].message.reasoning_content.as_deref(),
        Some("The user greets.")
    );
    assert_eq!(answer.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = answer.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (12, 32, 44)
    );
    assert_eq!(usage.cached_tokens(), Some(8));
    assert_eq!(
        usage.completion_tokens_details.unwrap().reasoning_tokens,
        Some(30)
    );
    let received = server.received_requests().await.unwrap().remove(0);
    assert!(
        received.url.query().is_none(),
        "the key is never in the URL: {}",
        received.url
    );
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(
        body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {"temperature": 0.5, "maxOutputTokens": 300, "stopSequences": ["END"]}
        })
    );
}

#[tokio::test]
async fn a_stream_reads_crlf_frames_with_thoughts_text_and_usage_once() {
    let server = MockServer::start().await;
    let frames = [
        response(
            json!([{"text": "Thinking…", "thought": true}]),
            None,
            Some((10, 0)),
        ),
        response(json!([{"text": "It is"}]), None, Some((10, 2))),
        response(json!([{"text": " 21°C."}]), Some("STOP"), Some((10, 5))),
    ];
    Mock::given(method("POST"))
        .and(path(STREAM))
        .and(query_param("alt", "sse"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(sse(&frames), "text/event-stream"))
        .mount(&server)
        .await;
    let got = chunks(&gemini(&server), &ChatRequest::from("Weather?")).await;
    assert_eq!(
        got[0].choices[0].delta.role,
        Some(llm_core::Role::Assistant)
    );
    assert_eq!(
        got[0].choices[0].delta.reasoning_content.as_deref(),
        Some("Thinking…")
    );
    let usage: Vec<_> = got.iter().filter(|c| c.usage.is_some()).collect();
    assert_eq!(usage.len(), 1, "usage once, at the end");
    assert!(usage[0].choices.is_empty());
    assert_eq!(usage[0].usage.as_ref().unwrap().completion_tokens, 5);
    let mut collector = llm_core::Collector::default();
    for chunk in got {
        collector.push(chunk);
    }
    let answer = collector.finish().unwrap();
    assert_eq!(answer.text().as_deref(), Some("It is 21°C."));
    assert_eq!(answer.choices[0].finish_reason, Some(FinishReason::Stop));
}

#[tokio::test]
async fn parallel_calls_and_a_tool_result_round_trip_keep_the_thought_signature() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(response(
            json!([
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQB0e2Kb+/sig=="},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
            ]),
            Some("STOP"),
            Some((40, 12)),
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(response(
            json!([{"text": "Paris 21°C, Rome 25°C."}]),
            Some("STOP"),
            Some((60, 8)),
        )))
        .mount(&server)
        .await;
    let provider = gemini(&server);
    let question = Message::user("Paris and Rome?");
    let first = provider
        .chat(&ChatRequest {
            tools: Some(vec![weather()]),
            ..ChatRequest::new("m", vec![question.clone()])
        })
        .await
        .unwrap();
    assert_eq!(
        first.choices[0].finish_reason,
        Some(FinishReason::ToolCalls),
        "STOP after a call"
    );
    let calls = first.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0].id, calls[1].id);
    assert!(
        calls.iter().all(|c| c
            .id
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')),
        "ids valid for OpenAI and Anthropic clients: {calls:?}"
    );
    assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);

    // The client sends the calls back as it got them, with the results.
    let mut assistant = Message::assistant("");
    assistant.content = None;
    assistant.tool_calls = Some(
        calls
            .iter()
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
    let history = vec![
        question,
        assistant,
        Message::tool(&calls[0].id, r#"{"temp": 21}"#),
        Message::tool(&calls[1].id, "25"),
    ];
    let second = provider
        .chat(&ChatRequest {
            tools: Some(vec![weather()]),
            ..ChatRequest::new("m", history)
        })
        .await
        .unwrap();
    assert_eq!(second.text().as_deref(), Some("Paris 21°C, Rome 25°C."));
    let bodies = sent(&server).await;
    let model_turn = &bodies[1]["contents"][1];
    assert_eq!(model_turn["role"], "model");
    assert_eq!(
        model_turn["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    assert_eq!(
        model_turn["parts"][0]["thoughtSignature"],
        "CiQB0e2Kb+/sig=="
    );
    assert!(model_turn["parts"][1].get("thoughtSignature").is_none());
    let results = &bodies[1]["contents"][2];
    assert_eq!(results["role"], "user");
    assert_eq!(
        results["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"temp": 21}})
    );
    assert_eq!(
        results["parts"][1]["functionResponse"],
        json!({"name": "get_weather", "response": {"result": 25}})
    );
    // The tool schema was made acceptable.
    let parameters = &bodies[0]["tools"][0]["functionDeclarations"][0]["parameters"];
    assert!(
        parameters.get("$schema").is_none() && parameters.get("additionalProperties").is_none()
    );
    assert_eq!(
        parameters["properties"]["unit"],
        json!({"type": "string", "nullable": true, "enum": ["C", "F"]})
    );
}

#[tokio::test]
async fn streamed_parallel_calls_get_distinct_increasing_indexes() {
    let server = MockServer::start().await;
    let frames = [
        response(
            json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}]),
            None,
            None,
        ),
        response(
            json!([{"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}]),
            None,
            None,
        ),
        response(
            json!([{"functionCall": {"name": "get_time", "args": {}}}]),
            Some("STOP"),
            Some((30, 9)),
        ),
    ];
    Mock::given(method("POST"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_raw(sse(&frames), "text/event-stream"))
        .mount(&server)
        .await;
    let got = chunks(
        &gemini(&server),
        &ChatRequest {
            tools: Some(vec![weather()]),
            ..ChatRequest::from("go")
        },
    )
    .await;
    let deltas: Vec<_> = got
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
        .collect();
    assert_eq!(
        deltas.iter().map(|d| d.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let ids: Vec<_> = deltas.iter().map(|d| d.id.clone().unwrap()).collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    let last = got.iter().rev().find(|c| !c.choices.is_empty()).unwrap();
    assert_eq!(last.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    let mut collector = llm_core::Collector::default();
    for chunk in got {
        collector.push(chunk);
    }
    let calls = collector.finish().unwrap().choices[0]
        .message
        .tool_calls
        .clone()
        .unwrap();
    assert_eq!(calls[1].function.arguments, r#"{"city":"Rome"}"#);
    assert_eq!(calls[2].function.arguments, "{}");
}

#[tokio::test]
async fn images_json_mode_and_response_schemas() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(response(
            json!([{"text": "{\"animal\":\"cat\"}"}]),
            Some("STOP"),
            None,
        )))
        .mount(&server)
        .await;
    let provider = gemini(&server);
    let image = ChatRequest {
        response_format: Some(ResponseFormat::JsonObject),
        ..ChatRequest::new(
            "m",
            vec![Message::user_parts(vec![
                ContentPart::text("What animal?"),
                ContentPart::image_url("data:image/jpeg;base64,/9j/4AAQSkZJRg=="),
                ContentPart::image_url("gs://my-bucket/cat.png"),
            ])],
        )
    };
    provider.chat(&image).await.unwrap();
    let schema = ChatRequest {
        response_format: Some(ResponseFormat::JsonSchema {
            json_schema: serde_json::from_value::<JsonSchemaFormat>(json!({"name": "animal", "strict": true,
                "schema": {"type": "object", "properties": {"animal": {"type": "string"}}, "required": ["animal"], "additionalProperties": false}}))
            .unwrap(),
        }),
        ..ChatRequest::from("Which animal?")
    };
    provider.chat(&schema).await.unwrap();
    let bodies = sent(&server).await;
    let parts = &bodies[0]["contents"][0]["parts"];
    assert_eq!(
        parts[1],
        json!({"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}})
    );
    assert_eq!(
        parts[2],
        json!({"fileData": {"mimeType": "image/png", "fileUri": "gs://my-bucket/cat.png"}})
    );
    assert_eq!(
        bodies[0]["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        bodies[1]["generationConfig"]["responseSchema"],
        json!({"type": "object", "properties": {"animal": {"type": "string"}}, "required": ["animal"]})
    );
}

#[tokio::test]
async fn safety_blocks_and_filtered_answers() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(CHAT))
        .respond_with(ResponseTemplate::new(200).set_body_json(response(
            json!([{"text": "Partial"}]),
            Some("SAFETY"),
            None,
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            sse(&[json!({"promptFeedback": {"blockReason": "SAFETY"}})]),
            "text/event-stream",
        ))
        .mount(&server)
        .await;
    let provider = gemini(&server);
    let blocked = provider.chat(&ChatRequest::from("bad")).await.unwrap_err();
    assert_eq!(blocked.kind(), ErrorKind::ContentFiltered);
    assert_eq!(blocked.code(), Some("PROHIBITED_CONTENT"));
    let filtered = provider.chat(&ChatRequest::from("meh")).await.unwrap();
    assert_eq!(
        filtered.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
    let Err(streamed) = provider.stream(&ChatRequest::from("bad")).await else {
        panic!("a blocked prompt must fail the stream call");
    };
    assert_eq!(streamed.kind(), ErrorKind::ContentFiltered);
}

#[tokio::test]
async fn errors_in_a_200_stream_and_every_status() {
    let server = MockServer::start().await;
    let frames = [
        response(json!([{"text": "Once"}]), None, None),
        json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
    ];
    Mock::given(method("POST"))
        .and(path(STREAM))
        .respond_with(ResponseTemplate::new(200).set_body_raw(sse(&frames), "text/event-stream"))
        .mount(&server)
        .await;
    let items: Vec<Result<ChatChunk>> = gemini(&server)
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1].as_ref().unwrap_err().kind(),
        ErrorKind::UpstreamServer
    );

    let cases = [
        (
            400,
            error(
                400,
                "INVALID_ARGUMENT",
                &format!("API key not valid: {KEY}"),
                json!([{"reason": "API_KEY_INVALID"}]),
            ),
            ErrorKind::Authentication,
        ),
        (
            429,
            error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded.",
                json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"}]),
            ),
            ErrorKind::RateLimited,
        ),
        (
            402,
            error(
                402,
                "RESOURCE_EXHAUSTED",
                "Your prepaid credits are used up.",
                json!([]),
            ),
            ErrorKind::QuotaExhausted,
        ),
        (
            503,
            error(503, "UNAVAILABLE", "Overloaded.", json!([])),
            ErrorKind::UpstreamServer,
        ),
        (
            504,
            error(504, "DEADLINE_EXCEEDED", "Deadline expired.", json!([])),
            ErrorKind::UpstreamServer,
        ),
        (
            500,
            error(500, "INTERNAL", "Internal error.", json!([])),
            ErrorKind::UpstreamServer,
        ),
    ];
    for (status, body, kind) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body.clone()))
            .mount(&server)
            .await;
        let err = gemini(&server)
            .chat(&ChatRequest::from("hi"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{body}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains("PLANTED"), "the key never appears: {text}");
        if status == 429 {
            assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(27)));
        }
    }
}

#[tokio::test]
async fn the_api_version_is_configurable_and_the_key_never_shows() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/models/gemini-2.5-pro:generateContent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(response(
            json!([{"text": "ok"}]),
            Some("STOP"),
            None,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let config = GeminiConfig {
        base_url: Some(server.uri()),
        api_version: Some("v1".into()),
        model: Some("gemini-2.5-pro".into()),
        ..GeminiConfig::api_key(KEY)
    };
    let provider = GeminiProvider::new(config.clone()).unwrap();
    assert_eq!(
        provider
            .chat(&ChatRequest::from("hi"))
            .await
            .unwrap()
            .text()
            .as_deref(),
        Some("ok")
    );
    for text in [format!("{config:?}"), format!("{provider:?}")] {
        assert!(!text.contains("PLANTED"), "{text}");
    }
}
