//! Non-streaming calls: what we send and what we return.

use llm_core::{
    ChatProvider, ChatRequest, ContentPart, FinishReason, Message, ResponseFormat, Tool,
};
use llm_openai::{OpenAiConfig, OpenAiProvider};
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

use crate::support::{KEY, completion, openai, tool_completion};

/// `chat_json` for `body` from the upstream, next to what `chat` reads from it.
async fn both(
    body: &str,
) -> (
    llm_core::Result<llm_core::ChatJson>,
    llm_core::Result<llm_core::ChatResponse>,
) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    let provider = openai(&server.uri());
    let request = ChatRequest::from("hi");
    (
        provider.chat_json(&request).await,
        provider.chat(&request).await,
    )
}

#[tokio::test]
async fn sends_the_documented_request_and_returns_the_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .and(header("accept", "application/json"))
        .and(body_json(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "你好，世界！"}
            ],
            "temperature": 0.7,
            "max_tokens": 1000,
            "metadata": {"trace": "t-1"}
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(completion("你好！我能帮你什么忙？", (9, 12))),
        )
        .expect(1)
        .mount(&server)
        .await;

    let mut request = ChatRequest {
        temperature: Some(0.7),
        max_tokens: Some(1000),
        // The caller asked for a stream elsewhere; `chat` never sends stream fields.
        stream: Some(true),
        ..ChatRequest::new(
            "ignored-by-config",
            vec![Message::system("Be brief."), Message::user("你好，世界！")],
        )
    };
    request
        .extra
        .insert("metadata".into(), json!({"trace": "t-1"}));
    let response = openai(&server.uri()).chat(&request).await.unwrap();

    assert_eq!(response.id, "chatcmpl-AbC123");
    assert_eq!(response.object, "chat.completion");
    assert_eq!(response.model, "gpt-4o-2024-08-06");
    assert_eq!(response.text().as_deref(), Some("你好！我能帮你什么忙？"));
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (9, 12, 21)
    );
    assert_eq!(usage.cached_tokens(), Some(0));
    assert_eq!(response.choices[0].message.extra["annotations"], json!([]));
}

#[tokio::test]
async fn request_model_is_used_when_the_config_has_none_and_org_headers_are_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("openai-organization", "org-123"))
        .and(header("openai-project", "proj_abc"))
        .and(body_json(
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("hello", (1, 1))))
        .expect(1)
        .mount(&server)
        .await;
    let provider = OpenAiProvider::new(OpenAiConfig {
        base_url: format!("{}/v1/", server.uri()),
        organization: Some("org-123".into()),
        project: Some("proj_abc".into()),
        ..OpenAiConfig::new(KEY)
    })
    .unwrap();
    let request = ChatRequest::new("gpt-4o-mini", vec![Message::user("hi")]);
    assert_eq!(
        provider.chat(&request).await.unwrap().text().as_deref(),
        Some("hello")
    );

    // No model anywhere is a clear local error, and nothing is sent.
    let err = provider.chat(&ChatRequest::from("hi")).await.unwrap_err();
    assert_eq!(err.kind(), llm_core::ErrorKind::InvalidRequest);
    assert!(err.to_string().contains("needs a model"), "{err}");
}

#[tokio::test]
async fn tools_images_and_json_mode_are_forwarded_and_tool_calls_returned() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_json(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Where is this? Then get the weather."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": true,
            "response_format": {"type": "json_object"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(tool_completion(&[
            ("call_1", "get_weather", r#"{"city":"Paris"}"#.to_owned()),
            ("call_2", "get_weather", r#"{"city":"Lyon"}"#.to_owned()),
        ])))
        .expect(1)
        .mount(&server)
        .await;
    let request = ChatRequest {
        tools: Some(vec![Tool::function(
            "get_weather",
            "Weather for a city",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        )]),
        tool_choice: Some(llm_core::ToolChoice::Mode(
            llm_core::ToolChoiceMode::Required,
        )),
        parallel_tool_calls: Some(true),
        response_format: Some(ResponseFormat::JsonObject),
        ..ChatRequest::new(
            "gpt-4o",
            vec![Message::user_parts(vec![
                ContentPart::text("Where is this? Then get the weather."),
                ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
            ])],
        )
    };
    let response = openai(&server.uri()).chat(&request).await.unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(choice.message.content, None);
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[1].id.as_str(), calls[1].function.arguments.as_str()),
        ("call_2", r#"{"city":"Lyon"}"#)
    );
}

#[tokio::test]
async fn empty_messages_are_rejected_before_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let err = openai(&server.uri())
        .chat(&ChatRequest::new("gpt-4o", Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), llm_core::ErrorKind::InvalidRequest);
    assert_eq!(
        err.to_string(),
        "invalid request: `messages` must not be empty"
    );
}

#[tokio::test]
async fn a_200_without_choices_or_with_garbage_is_a_protocol_error() {
    for body in [
        r#"{"id":"x","object":"chat.completion","choices":[]}"#,
        "<html>oops</html>",
        "",
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        let err = openai(&server.uri())
            .chat(&ChatRequest::from("hi"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), llm_core::ErrorKind::Protocol, "{body}: {err}");
    }
}

#[tokio::test]
async fn chat_json_passes_on_an_answer_as_the_upstream_wrote_it() {
    // OpenAI's pretty-printed layout, with `refusal` and `logprobs` null.
    let body = serde_json::to_string_pretty(&completion("你好！\n\"Hi\"", (9, 12))).unwrap();
    let (json, typed) = both(&body).await;
    let (json, typed) = (json.unwrap(), typed.unwrap());
    assert_eq!(
        json.body,
        body.as_bytes(),
        "the upstream's bytes, as they came"
    );
    assert_eq!(json.usage, typed.usage);
    assert_eq!(json.usage.as_ref().and_then(|u| u.cached_tokens()), Some(0));
}

#[tokio::test]
async fn chat_json_writes_what_chat_reads_when_the_answer_cannot_be_passed_on() {
    // Tool calls (whose shape the typed read checks), a missing `created` (which the
    // typed answer writes as 0), an `object` the typed read corrects.
    let tools = tool_completion(&[("call_1", "get_weather", r#"{"city":"Paris"}"#.into())]);
    let mut no_created = completion("Hi", (1, 2));
    no_created.as_object_mut().unwrap().remove("created");
    let mut wrong_object = completion("Hi", (1, 2));
    wrong_object["object"] = json!("chat.completion.chunk");
    for upstream in [tools, no_created, wrong_object] {
        let body = upstream.to_string();
        let (json, typed) = both(&body).await;
        let (json, typed) = (json.unwrap(), typed.unwrap());
        assert_ne!(json.body, body.as_bytes());
        let written: llm_core::ChatResponse = serde_json::from_slice(&json.body).unwrap();
        assert_eq!(written, typed, "{body}");
        assert_eq!(json.usage, typed.usage);
    }
    // And the typed read's errors.
    for body in [
        r#"{"id":"x","object":"chat.completion","choices":[]}"#,
        "<html>oops</html>",
    ] {
        let (json, typed) = both(body).await;
        assert_eq!(
            json.unwrap_err().kind(),
            typed.unwrap_err().kind(),
            "{body}"
        );
    }
}
