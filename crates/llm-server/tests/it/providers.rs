//! Every new provider through the gateway with planted keys, upstreams that echo the key in
//! their errors, and this binary's debug-level log scan: no key reaches a log line, a
//! response, the status or an error (the scan aborts the suite on a leak).

use llm_factory::{FactoryConfig, LlmFactory};
use llm_server::GatewayOptions;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::{
    logs::{PLANTED, assert_no_secret_logged},
    support::{Gateway, client},
};

const QWEN_KEY: &str = "sk-qwen-PLANTED-0123456789";
const DEEPSEEK_KEY: &str = "sk-deepseek-PLANTED-0123456789";
const GEMINI_KEY: &str = "AIza-gemini-PLANTED-0123456789";

#[tokio::test]
async fn qwen_deepseek_and_gemini_answer_and_never_show_their_keys() {
    let upstream = MockServer::start().await;
    // Good answers for the right keys.
    Mock::given(method("POST"))
        .and(path("/api/v1/services/aigc/text-generation/generation"))
        .and(header("authorization", format!("Bearer {QWEN_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "output": {"choices": [{"message": {"role": "assistant", "content": "qwen ok"}, "finish_reason": "stop"}]},
            "usage": {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}, "request_id": "r1"})))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(header(
            "authorization",
            format!("Bearer {DEEPSEEK_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            llm_core::testing::openai_format::completion("deepseek ok", (3, 2)),
        ))
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .and(header("x-goog-api-key", GEMINI_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "gemini ok"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}})))
        .mount(&upstream)
        .await;
    // A second set of deployments whose upstream rejects the key and echoes it back.
    let echo = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/services/aigc/text-generation/generation"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "code": "InvalidApiKey", "message": format!("Invalid API-key provided: {QWEN_KEY}"), "request_id": "r"})))
        .mount(&echo)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "message": format!("Authentication Fails, Your api key: {DEEPSEEK_KEY} is invalid"),
            "type": "authentication_error", "param": null, "code": "invalid_request_error"}})))
        .mount(&echo)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "code": 400, "message": format!("API key not valid: {GEMINI_KEY}"), "status": "INVALID_ARGUMENT",
            "details": [{"reason": "API_KEY_INVALID"}]}})))
        .mount(&echo)
        .await;

    let base = upstream.uri();
    let bad = echo.uri();
    let yaml = format!(
        "providers:\n\
         \x20 - {{provider: qwen, model_name: qwen-plus, api_key: {QWEN_KEY}, api_base: {base}/api/v1}}\n\
         \x20 - {{provider: deepseek, model_name: deepseek-flash, api_key: {DEEPSEEK_KEY}, api_base: {base}}}\n\
         \x20 - {{provider: gemini, model_name: gemini-2.5-flash, api_key: {GEMINI_KEY}, api_base: {base}}}\n\
         \x20 - {{provider: qwen, model_name: bad-qwen, deployment: qwen-plus, api_key: {QWEN_KEY}, api_base: {bad}/api/v1}}\n\
         \x20 - {{provider: deepseek, model_name: bad-deepseek, api_key: {DEEPSEEK_KEY}, api_base: {bad}}}\n\
         \x20 - {{provider: gemini, model_name: bad-gemini, deployment: gemini-2.5-flash, api_key: {GEMINI_KEY}, api_base: {bad}}}\n"
    );
    let config = FactoryConfig::from_yaml_str(&yaml, "inline.yaml", |_| None).unwrap();
    let factory = LlmFactory::new(config).unwrap();
    let gateway = Gateway::start(factory, GatewayOptions::default()).await;

    for (model, text) in [
        ("qwen-plus", "qwen ok"),
        ("deepseek-flash", "deepseek ok"),
        ("gemini-2.5-flash", "gemini ok"),
    ] {
        let answer: Value = gateway
            .post_chat(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], text, "{answer}");
    }
    for model in ["bad-qwen", "bad-deepseek", "bad-gemini"] {
        let response = gateway
            .post_chat(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .await;
        // Every credential rejected: 502, the message masked.
        assert_eq!(response.status(), 502, "{model}");
        let body = response.text().await.unwrap();
        assert!(!body.contains(PLANTED), "{model}: {body}");
        assert!(body.contains("…6789"), "the masked key is there: {body}");
    }
    let status = client()
        .get(gateway.url("/v1/providers/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!status.contains(PLANTED), "{status}");
    assert_no_secret_logged();
}

const AWS_SECRET: &str = "PLANTED/aws/secret/access/key/0123456789";
const AWS_TOKEN: &str = "PLANTED-aws-session-token-0123456789";
const BEDROCK_KEY: &str = "ABSK-PLANTED-bedrock-api-key-0123456789";

fn converse_answer(text: &str) -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}
    })
}

#[tokio::test]
async fn claude_on_bedrock_answers_and_never_shows_its_aws_secrets() {
    use llm_claude_bedrock::testing::event;

    let upstream = MockServer::start().await;
    // SigV4 with static keys and a session token.
    Mock::given(method("POST"))
        .and(path(
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse",
        ))
        .and(header("x-amz-security-token", AWS_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(converse_answer("claude ok")))
        .mount(&upstream)
        .await;
    let frames = [
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "claude "}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "streams"}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("messageStop", json!({"stopReason": "end_turn"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}}),
        ),
    ]
    .concat();
    Mock::given(method("POST"))
        .and(path(
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(frames, "application/vnd.amazon.eventstream"),
        )
        .mount(&upstream)
        .await;
    // A Bedrock API key.
    Mock::given(method("POST"))
        .and(path(
            "/model/global.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse",
        ))
        .and(header(
            "authorization",
            format!("Bearer {BEDROCK_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(converse_answer("bearer ok")))
        .mount(&upstream)
        .await;
    // Upstreams that reject the credentials and echo them back.
    let rejecting = |message: String| {
        ResponseTemplate::new(403)
            .insert_header(
                "x-amzn-ErrorType",
                "UnrecognizedClientException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            )
            .set_body_json(json!({ "message": message }))
    };
    let echo = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(rejecting(format!(
            "The security token {AWS_TOKEN} (secret {AWS_SECRET}) is invalid."
        )))
        .mount(&echo)
        .await;
    let echo_key = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(rejecting(format!("Invalid API key {BEDROCK_KEY}.")))
        .mount(&echo_key)
        .await;

    let base = upstream.uri();
    let bad = echo.uri();
    let bad_key = echo_key.uri();
    let sigv4 = |name: &str, base: &str| {
        format!(
            "  - {{provider: claude, model_name: {name}, deployment: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', region: us-east-1, aws_access_key_id: AKIAIOSFODNN7EXAMPLE, aws_secret_access_key: {AWS_SECRET}, aws_session_token: {AWS_TOKEN}, api_base: '{base}'}}\n"
        )
    };
    let bearer = |name: &str, base: &str| {
        format!(
            "  - {{provider: claude, model_name: {name}, deployment: 'global.anthropic.claude-haiku-4-5-20251001-v1:0', region: us-west-2, api_key: {BEDROCK_KEY}, api_base: '{base}'}}\n"
        )
    };
    let yaml = format!(
        "providers:\n{}{}{}{}",
        sigv4("claude-sonnet", &base),
        bearer("claude-haiku", &base),
        sigv4("bad-sigv4", &bad),
        bearer("bad-bearer", &bad_key),
    );
    let config = FactoryConfig::from_yaml_str(&yaml, "inline.yaml", |_| None).unwrap();
    let factory = LlmFactory::new(config).unwrap();
    let gateway = Gateway::start(factory, GatewayOptions::default()).await;

    for (model, text) in [
        ("claude-sonnet", "claude ok"),
        ("claude-haiku", "bearer ok"),
    ] {
        let answer: Value = gateway
            .post_chat(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], text, "{answer}");
        assert_eq!(answer["usage"]["total_tokens"], 5, "{answer}");
    }
    let streamed = gateway
        .post_chat(&json!({"model": "claude-sonnet", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await
        .text()
        .await
        .unwrap();
    let text: String = streamed
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "claude streams", "{streamed}");
    assert!(streamed.ends_with("data: [DONE]\n\n"), "{streamed}");

    for model in ["bad-sigv4", "bad-bearer"] {
        let response = gateway
            .post_chat(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .await;
        assert_eq!(response.status(), 502, "{model}");
        let body = response.text().await.unwrap();
        assert!(!body.contains(PLANTED), "{model}: {body}");
    }
    let status = client()
        .get(gateway.url("/v1/providers/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!status.contains(PLANTED), "{status}");
    assert!(status.contains("us-east-1"), "{status}");
    assert_no_secret_logged();
}
