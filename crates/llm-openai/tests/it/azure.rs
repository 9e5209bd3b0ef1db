//! Azure OpenAI: paths, api-version, api-key and Entra ID auth, filter chunks.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use llm_core::{
    ChatProvider, ChatRequest, ChatStreamExt, ErrorKind, FinishReason, Message, Result,
    SecretString,
};
use llm_openai::{AzureAuth, AzureOpenAiConfig, AzureOpenAiProvider, TokenProvider};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

use crate::support::{KEY, chunk, completion, sse, text_frames};

fn azure(server: &MockServer, auth: AzureAuth, api_version: Option<&str>) -> AzureOpenAiProvider {
    AzureOpenAiProvider::new(AzureOpenAiConfig {
        deployment: Some("gpt4o-prod".into()),
        api_version: api_version.map(Into::into),
        auth,
        ..AzureOpenAiConfig::with_key(server.uri(), "unused")
    })
    .unwrap()
}

fn key() -> AzureAuth {
    AzureAuth::ApiKey(SecretString::from(KEY))
}

fn azure_completion() -> Value {
    let mut body = completion("Hello from Azure", (10, 3));
    body["prompt_filter_results"] = json!([{"prompt_index": 0, "content_filter_results": {
        "hate": {"filtered": false, "severity": "safe"}, "self_harm": {"filtered": false, "severity": "safe"}}}]);
    body["choices"][0]["content_filter_results"] =
        json!({"hate": {"filtered": false, "severity": "safe"}});
    body
}

#[tokio::test]
async fn classic_path_with_api_version_and_api_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt4o-prod/chat/completions"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", KEY))
        .and(body_json(json!({"model": "gpt4o-prod", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})))
        .respond_with(ResponseTemplate::new(200).set_body_json(azure_completion()))
        .expect(1)
        .mount(&server)
        .await;
    let request = ChatRequest {
        max_tokens: Some(5),
        ..ChatRequest::new("gpt-4o", vec![Message::user("hi")])
    };
    let response = azure(&server, key(), Some("2024-10-21"))
        .chat(&request)
        .await
        .unwrap();
    assert_eq!(response.text().as_deref(), Some("Hello from Azure"));
    // Azure's extra fields are passed through, not dropped.
    assert!(response.extra.contains_key("prompt_filter_results"));
    let sent = &server.received_requests().await.unwrap()[0];
    assert!(
        !sent.headers.contains_key("authorization"),
        "api-key auth sends no bearer"
    );
}

#[tokio::test]
async fn v1_path_needs_no_api_version() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/v1/chat/completions"))
        .and(header("api-key", KEY))
        .and(body_json(
            json!({"model": "gpt4o-prod", "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(azure_completion()))
        .expect(1)
        .mount(&server)
        .await;
    azure(&server, key(), None)
        .chat(&ChatRequest::from("hi"))
        .await
        .unwrap();
    let sent = &server.received_requests().await.unwrap()[0];
    assert_eq!(sent.url.query(), None);
}

#[derive(Debug)]
struct CountingTokens(AtomicUsize);

#[llm_core::async_trait]
impl TokenProvider for CountingTokens {
    async fn token(&self) -> Result<SecretString> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(SecretString::from(format!("entra-token-{n}")))
    }
}

#[tokio::test]
async fn entra_id_tokens_are_sent_as_bearer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt4o-prod/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(azure_completion()))
        .expect(3)
        .mount(&server)
        .await;
    let fixed = azure(
        &server,
        AzureAuth::EntraToken(SecretString::from("eyJ0eXAiOiJKV1Q.fixed")),
        Some("2024-10-21"),
    );
    fixed.chat(&ChatRequest::from("hi")).await.unwrap();
    let supplier = Arc::new(CountingTokens(AtomicUsize::new(0)));
    let refreshed = azure(
        &server,
        AzureAuth::TokenProvider(supplier.clone()),
        Some("2024-10-21"),
    );
    refreshed.chat(&ChatRequest::from("hi")).await.unwrap();
    refreshed.chat(&ChatRequest::from("hi")).await.unwrap();

    let auth: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            assert!(!r.headers.contains_key("api-key"));
            r.headers["authorization"].to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        auth,
        [
            "Bearer eyJ0eXAiOiJKV1Q.fixed",
            "Bearer entra-token-0",
            "Bearer entra-token-1"
        ]
    );
    assert_eq!(
        supplier.0.load(Ordering::SeqCst),
        2,
        "asked once per request"
    );
}

#[tokio::test]
async fn stream_skips_the_empty_choices_filter_chunk_and_keeps_content_filter_finish() {
    let server = MockServer::start().await;
    let mut frames = vec![
        json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}),
    ];
    frames.push(chunk(json!({"role": "assistant", "content": ""}), None));
    frames.push(chunk(json!({"content": "Partial"}), None));
    // A chunk with empty choices that carries only filter results mid-stream.
    frames.push(json!({"id": "chatcmpl-AbC1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": []}));
    frames.push(chunk(json!({}), Some("content_filter")));
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt4o-prod/chat/completions"))
        .and(body_json(
            json!({"model": "gpt4o-prod", "messages": [{"role": "user", "content": "hi"}],
            "stream": true, "stream_options": {"include_usage": true}}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(sse(&frames, true), "text/event-stream"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let response = azure(&server, key(), Some("2024-10-21"))
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(response.text().as_deref(), Some("Partial"));
    assert_eq!(
        response.choices[0].finish_reason,
        Some(FinishReason::ContentFilter)
    );
    assert_eq!(response.id, "chatcmpl-AbC1");
}

#[tokio::test]
async fn old_api_versions_get_no_stream_options() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(query_param("api-version", "2024-02-15-preview"))
        .and(body_json(json!({"model": "gpt4o-prod", "messages": [{"role": "user", "content": "hi"}], "stream": true})))
        .respond_with(ResponseTemplate::new(200).set_body_raw(sse(&text_frames(&["ok"], (1, 1)), true), "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;
    let response = azure(&server, key(), Some("2024-02-15-preview"))
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(response.text().as_deref(), Some("ok"));
}

#[tokio::test]
async fn azure_errors_with_numeric_codes_and_retry_after_ms() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .insert_header("retry-after-ms", "7000")
                .set_body_json(json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds."}})),
        )
        .mount(&server)
        .await;
    let err = azure(&server, key(), Some("2024-10-21"))
        .chat(&ChatRequest::from("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.code(), Some("429"));
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
    assert!(
        err.to_string()
            .starts_with("azure-openai returned HTTP 429 (429): Requests to"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_configs_are_clear_errors() {
    let bad_endpoint =
        AzureOpenAiProvider::new(AzureOpenAiConfig::with_key("contoso.openai.azure.com", KEY))
            .unwrap_err();
    assert_eq!(bad_endpoint.kind(), ErrorKind::Configuration);
    assert!(
        bad_endpoint
            .to_string()
            .contains("must start with https://"),
        "{bad_endpoint}"
    );
    let bad_key = AzureOpenAiProvider::new(AzureOpenAiConfig::with_key(
        "https://x.openai.azure.com",
        "line\nbreak",
    ))
    .unwrap_err();
    assert_eq!(bad_key.kind(), ErrorKind::Configuration);
    assert!(!bad_key.to_string().contains("line"), "{bad_key}");
}
