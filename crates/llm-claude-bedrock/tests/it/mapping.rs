//! Converse (non-streaming): request parameters, images, JSON mode, extra fields, and the
//! answer's text, tool calls, finish reasons and usage.

use llm_claude_bedrock::{ClaudeBedrockConfig, ClaudeBedrockProvider};
use llm_core::{
    ChatProvider, ChatRequest, ContentPart, ErrorKind, FinishReason, Message, ResponseFormat, Stop,
    testing::ScriptedServer,
};
use serde_json::{Value, json};

use crate::{answer, provider, sent};

fn usage() -> Value {
    json!({"inputTokens": 20, "outputTokens": 4, "totalTokens": 24})
}

async fn body_for(request: &ChatRequest) -> Value {
    let server = ScriptedServer::start(vec![answer(json!([{"text": "ok"}]), "end_turn", usage())])
        .await
        .unwrap();
    provider(&server).chat(request).await.unwrap();
    sent(&server).await.1
}

#[tokio::test]
async fn plain_chat_is_signed_and_mapped_both_ways() {
    let server = ScriptedServer::start(vec![answer(
        json!([{"text": "It is 21°C "}, {"text": "in Paris."}]),
        "end_turn",
        json!({"inputTokens": 412, "outputTokens": 11, "totalTokens": 1423, "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 0}),
    )])
    .await
    .unwrap();
    let request = ChatRequest {
        temperature: Some(0.7),
        top_p: Some(0.9),
        max_tokens: Some(512),
        stop: Some(Stop::Many(vec!["\n\nEND".into(), String::new()])),
        ..ChatRequest::new(
            "ignored",
            vec![
                Message::developer_or_system("You are terse."),
                Message::user("Weather in Paris?"),
            ],
        )
    };
    let response = provider(&server).chat(&request).await.unwrap();
    let (recorded, body) = sent(&server).await;
    assert_eq!(
        recorded.target,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    );
    assert!(
        recorded
            .header("authorization")
            .unwrap()
            .contains("/us-west-2/bedrock/aws4_request")
    );
    // The SDK models temperature and topP as f32.
    let close = |v: &Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-6;
    assert!(
        close(&body["inferenceConfig"]["temperature"], 0.7),
        "{body}"
    );
    assert!(close(&body["inferenceConfig"]["topP"], 0.9), "{body}");
    let mut body = body;
    body["inferenceConfig"]
        .as_object_mut()
        .unwrap()
        .remove("temperature");
    body["inferenceConfig"]
        .as_object_mut()
        .unwrap()
        .remove("topP");
    assert_eq!(
        body,
        json!({
            "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
            "system": [{"text": "You are terse."}],
            "inferenceConfig": {"maxTokens": 512, "stopSequences": ["\n\nEND"]}
        })
    );
    assert_eq!(response.id, "chatcmpl-0f0e0d0c-chat");
    assert_eq!(response.model, crate::MODEL);
    assert_eq!(response.text().as_deref(), Some("It is 21°C in Paris."));
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (1412, 11, 1423)
    );
    assert_eq!(usage.cached_tokens(), Some(1000));
}

trait SystemMessage {
    fn developer_or_system(text: &str) -> Message;
}

impl SystemMessage for Message {
    fn developer_or_system(text: &str) -> Self {
        Self::new(llm_core::Role::Developer, text)
    }
}

#[tokio::test]
async fn temperature_above_one_is_clamped_and_out_of_range_values_are_refused() {
    let request = ChatRequest {
        temperature: Some(1.7),
        ..ChatRequest::from("hi")
    };
    let body = body_for(&request).await;
    assert_eq!(body["inferenceConfig"]["temperature"], 1.0);

    let server = ScriptedServer::start(vec![]).await.unwrap();
    for request in [
        ChatRequest {
            temperature: Some(-0.5),
            ..ChatRequest::from("hi")
        },
        ChatRequest {
            temperature: Some(2.5),
            ..ChatRequest::from("hi")
        },
        ChatRequest {
            top_p: Some(1.5),
            ..ChatRequest::from("hi")
        },
        ChatRequest {
            n: Some(2),
            ..ChatRequest::from("hi")
        },
        ChatRequest {
            logprobs: Some(true),
            ..ChatRequest::from("hi")
        },
        ChatRequest {
            presence_penalty: Some(0.5),
            ..ChatRequest::from("hi")
        },
        ChatRequest {
            max_tokens: Some(0),
            ..ChatRequest::from("hi")
        },
    ] {
        let error = provider(&server).chat(&request).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{error}");
    }
    assert!(
        server.received().await.is_empty(),
        "refused before any call"
    );
}

#[tokio::test]
async fn images_go_as_bytes_and_remote_urls_are_refused_without_a_fetch() {
    // A 1×1 PNG.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let request = ChatRequest::new(
        "m",
        vec![Message::user_parts(vec![
            ContentPart::text("What is this?"),
            ContentPart::image_url(format!("data:image/png;base64,{png}")),
        ])],
    );
    let body = body_for(&request).await;
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"text": "What is this?"}, {"image": {"format": "png", "source": {"bytes": png}}}])
    );

    let server = ScriptedServer::start(vec![]).await.unwrap();
    for url in [
        "https://example.com/cat.png",
        "data:image/tiff;base64,AAAA",
        "data:image/png;base64,%%%",
    ] {
        let request = ChatRequest::new(
            "m",
            vec![Message::user_parts(vec![ContentPart::image_url(url)])],
        );
        let error = provider(&server).chat(&request).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidRequest, "{url}: {error}");
    }
    assert!(server.received().await.is_empty());
}

#[tokio::test]
async fn json_modes() {
    let request = ChatRequest {
        response_format: Some(ResponseFormat::JsonObject),
        ..ChatRequest::new(
            "m",
            vec![Message::system("List colors."), Message::user("Three")],
        )
    };
    let body = body_for(&request).await;
    assert_eq!(body["system"][0], json!({"text": "List colors."}));
    assert!(
        body["system"][1]["text"]
            .as_str()
            .unwrap()
            .contains("valid JSON object")
    );
    assert!(body.get("outputConfig").is_none());

    let request = ChatRequest {
        response_format: Some(serde_json::from_value(json!({
            "type": "json_schema",
            "json_schema": {"name": "colors", "description": "Some colors", "schema": {"type": "object", "properties": {"colors": {"type": "array"}}}}
        })).unwrap()),
        ..ChatRequest::from("Three colors")
    };
    let body = body_for(&request).await;
    let format = &body["outputConfig"]["textFormat"];
    assert_eq!(format["type"], "json_schema");
    let definition = &format["structure"]["jsonSchema"];
    assert_eq!(definition["name"], "colors");
    assert_eq!(definition["description"], "Some colors");
    // Converse takes the schema as a string.
    let schema: Value = serde_json::from_str(definition["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["properties"]["colors"]["type"], "array");
}

#[tokio::test]
async fn unknown_fields_go_where_converse_wants_them() {
    let request: ChatRequest = serde_json::from_value(json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "top_k": 40,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "max_tokens": 4096,
        "store": true,
        "metadata": {"team": "a"},
        "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "2", "trace": "enabled"},
        "performanceConfig": {"latency": "optimized"},
        "requestMetadata": {"tenant": "acme"},
        "additionalModelRequestFields": {"anthropic_beta": ["interleaved-thinking-2025-05-14"]}
    }))
    .unwrap();
    let body = body_for(&request).await;
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"top_k": 40, "thinking": {"type": "enabled", "budget_tokens": 2048}, "anthropic_beta": ["interleaved-thinking-2025-05-14"]})
    );
    assert_eq!(
        body["guardrailConfig"],
        json!({"guardrailIdentifier": "gr-1", "guardrailVersion": "2", "trace": "enabled"})
    );
    assert_eq!(body["performanceConfig"], json!({"latency": "optimized"}));
    assert_eq!(body["requestMetadata"], json!({"tenant": "acme"}));
    assert!(body.get("store").is_none() && body.get("metadata").is_none());

    // A thinking budget at or above max_tokens is refused before a round trip.
    let server = ScriptedServer::start(vec![]).await.unwrap();
    let request = ChatRequest {
        max_tokens: Some(1000),
        reasoning_effort: Some("high".into()),
        ..ChatRequest::from("hi")
    };
    let error = provider(&server).chat(&request).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn stop_reasons_map_to_finish_reasons() {
    for (stop, expected) in [
        ("end_turn", FinishReason::Stop),
        ("stop_sequence", FinishReason::Stop),
        ("max_tokens", FinishReason::Length),
        ("model_context_window_exceeded", FinishReason::Length),
        ("tool_use", FinishReason::ToolCalls),
        ("guardrail_intervened", FinishReason::ContentFilter),
        ("content_filtered", FinishReason::ContentFilter),
        ("malformed_model_output", FinishReason::Stop),
        ("malformed_tool_use", FinishReason::Stop),
    ] {
        let server = ScriptedServer::start(vec![answer(json!([{"text": "x"}]), stop, usage())])
            .await
            .unwrap();
        let response = provider(&server)
            .chat(&ChatRequest::from("hi"))
            .await
            .unwrap();
        assert_eq!(response.choices[0].finish_reason, Some(expected), "{stop}");
    }
}

#[tokio::test]
async fn an_answer_without_a_message_or_cut_short_is_a_protocol_error() {
    let bodies: Vec<llm_core::testing::Script> = vec![
        llm_core::testing::Script::full(200, "application/json", &[], b"{}"),
        llm_core::testing::Script::full(200, "application/json", &[], br#"{"output": {"message": {"role": "assistant", "content": [{"text": "Hel"#),
        llm_core::testing::Script::full(200, "application/json", &[], b"<html>gateway</html>"),
        llm_core::testing::Script::full(200, "application/json", &[], br#"{"output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}}, "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}"#),
        llm_core::testing::Script::cut_body(200, "application/json", br#"{"output": {"message": {"role": "assistant", "content": [{"text": "Hello"}]}}, "stopReason": "end_turn"}"#, 30),
    ];
    for (i, script) in bodies.into_iter().enumerate() {
        let server = ScriptedServer::start(vec![script]).await.unwrap();
        let error = provider(&server)
            .chat(&ChatRequest::from("hi"))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Protocol, "body {i}: {error}");
    }
}

#[tokio::test]
async fn a_non_streaming_answer_over_the_size_bound_is_refused() {
    let big = "x".repeat(64 * 1024);
    let server = ScriptedServer::start(vec![answer(json!([{"text": big}]), "end_turn", usage())])
        .await
        .unwrap();
    let mut config = crate::config(&server);
    config.limits.max_body_bytes = 16 * 1024;
    let provider = ClaudeBedrockProvider::new(config).unwrap();
    let error = provider.chat(&ChatRequest::from("hi")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Protocol, "{error}");

    // At the bound it is read.
    let server = ScriptedServer::start(vec![answer(
        json!([{"text": "small"}]),
        "end_turn",
        usage(),
    )])
    .await
    .unwrap();
    let config = ClaudeBedrockConfig {
        limits: llm_claude_bedrock::Limits {
            max_body_bytes: 16 * 1024,
            ..llm_claude_bedrock::Limits::default()
        },
        ..crate::config(&server)
    };
    let provider = ClaudeBedrockProvider::new(config).unwrap();
    assert_eq!(
        provider
            .chat(&ChatRequest::from("hi"))
            .await
            .unwrap()
            .text()
            .as_deref(),
        Some("small")
    );
}

#[tokio::test]
async fn a_stop_sequence_is_named_in_the_choice_extension_fields() {
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "alpha "}]}},
        "stopReason": "stop_sequence",
        "additionalModelResponseFields": {"stop_sequence": "END"},
        "usage": usage()
    });
    let server = ScriptedServer::start(vec![llm_core::testing::Script::full(
        200,
        "application/json",
        &[],
        body.to_string().as_bytes(),
    )])
    .await
    .unwrap();
    let response = provider(&server)
        .chat(&ChatRequest::from("hi"))
        .await
        .unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    assert_eq!(choice.extra["stop_reason"], "stop_sequence");
    assert_eq!(choice.extra["stop_sequence"], "END");
}
