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
