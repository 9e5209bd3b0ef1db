//! Compatible mode: the conformance suite with DashScope's compatible-mode error bodies, and
//! what is sent.

use std::sync::Arc;

use llm_core::{
    ChatProvider, ChatRequest, ErrorKind, Message,
    testing::{
        Script, ScriptedServer,
        conformance::{
            self, ErrorCase, Harness, Mode, Scenario, Served, Skip, UNAUTHORIZED_MESSAGE,
        },
        openai_format::{completion, conformance_script},
    },
};
use llm_http::Timeouts;
use llm_qwen::{QwenApi, QwenConfig, QwenProvider};
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::{KEY, native::short_timeouts};

fn error_script(case: ErrorCase) -> Script {
    let body = |message: &str, kind: &str, code: &str| json!({"error": {"message": message, "type": kind, "param": null, "code": code}, "request_id": "902fee3b-f7f0"});
    let unauthorized = UNAUTHORIZED_MESSAGE.replace("{key}", KEY);
    let (status, body, header) = match case {
        ErrorCase::Unauthorized => (
            401,
            body(&unauthorized, "invalid_request_error", "invalid_api_key"),
            None,
        ),
        ErrorCase::Forbidden => (
            403,
            body(
                "Access denied.",
                "invalid_request_error",
                "AccessDenied.Unpurchased",
            ),
            None,
        ),
        ErrorCase::NotFound => (
            404,
            body(
                "The model `qwen-9` does not exist",
                "invalid_request_error",
                "model_not_found",
            ),
            None,
        ),
        ErrorCase::ContextLength => (
            400,
            body(
                "Range of input length should be [1, 129024]",
                "invalid_request_error",
                "invalid_parameter_error",
            ),
            None,
        ),
        ErrorCase::RateLimited(form) => (
            429,
            body(
                "Requests rate limit exceeded, please try again later.",
                "limit_requests",
                "Throttling.RateQuota",
            ),
            form.header(),
        ),
        ErrorCase::QuotaExhausted => (
            429,
            body(
                "Allocated quota exceeded, please increase your quota limit.",
                "insufficient_quota",
                "Throttling.AllocationQuota",
            ),
            None,
        ),
        ErrorCase::ContentFilter => (
            400,
            json!({"error": {"code": "data_inspection_failed", "param": null, "message": "Input data may contain inappropriate content.", "type": "data_inspection_failed"}}),
            None,
        ),
        ErrorCase::ServerError => (
            500,
            body(
                "An internal error has occured.",
                "internal_error",
                "internal_error",
            ),
            None,
        ),
        ErrorCase::Unavailable => (
            503,
            body(
                "Service is unavailable.",
                "server_error",
                "ServiceUnavailable",
            ),
            None,
        ),
        other => unreachable!("no script for {other:?}"),
    };
    let headers: Vec<(&str, &str)> = header.iter().map(|(n, v)| (*n, v.as_str())).collect();
    Script::full(
        status,
        "application/json",
        &headers,
        body.to_string().as_bytes(),
    )
}

fn compat(base: String, timeouts: Timeouts) -> QwenProvider {
    QwenProvider::new(QwenConfig {
        base_url: base,
        model: Some("qwen-plus".into()),
        timeouts,
        ..QwenConfig::new(KEY)
    })
    .unwrap()
}

struct CompatHarness;

#[llm_core::async_trait]
impl Harness for CompatHarness {
    async fn serve(&self, scenario: Scenario, mode: Mode) -> Result<Served, Skip> {
        let script = conformance_script(scenario, mode, &[], &error_script);
        let server = ScriptedServer::start(vec![script]).await.unwrap();
        let timeouts = if scenario == Scenario::Stall {
            short_timeouts()
        } else {
            Timeouts::default()
        };
        let provider = compat(format!("{}/compatible-mode/v1", server.url()), timeouts);
        assert_eq!(provider.api(), QwenApi::Compatible);
        Ok(Served {
            provider: Arc::new(provider),
            guard: Box::new(server),
        })
    }

    fn secret(&self) -> &str {
        KEY
    }
}

#[tokio::test]
async fn compatible_mode_passes_the_conformance_suite() {
    let report = conformance::run_all(&CompatHarness).await;
    report.assert_all_passed();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
}

#[tokio::test]
async fn compatible_mode_sends_openai_bodies_with_dashscope_extras() {
    let server = MockServer::start().await;
    let mut answer = completion("你好", (9, 2));
    answer["choices"][0]["message"]["reasoning_content"] = json!("Greeting.");
    Mock::given(method("POST"))
        .and(path("/compatible-mode/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(&answer))
        .mount(&server)
        .await;
    let provider = compat(
        format!("{}/compatible-mode/v1", server.uri()),
        Timeouts::default(),
    );
    let mut request = ChatRequest::new("x", vec![Message::user("你好")]);
    request.extra.insert("enable_search".into(), json!(true));
    request.extra.insert("enable_thinking".into(), json!(true));
    let response = provider.chat(&request).await.unwrap();
    // The same answer as JSON: DashScope's own bytes, read the same.
    let json = provider.chat_json(&request).await.unwrap();
    assert_eq!(json.body, serde_json::to_vec(&answer).unwrap());
    assert_eq!(json.usage, response.usage);
    assert_eq!(response.text().as_deref(), Some("你好"));
    assert_eq!(
        response.choices[0].message.reasoning_content.as_deref(),
        Some("Greeting.")
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["model"], "qwen-plus");
    assert_eq!(sent["enable_search"], true);
    // Thinking models refuse enable_thinking on non-streaming calls.
    assert_eq!(sent["enable_thinking"], false);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "你好"}])
    );
}

#[tokio::test]
async fn in_stream_error_frames_keep_dashscope_codes() {
    let server = MockServer::start().await;
    let body = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\",\"role\":\"assistant\"},\"finish_reason\":null,\"index\":0}],\"object\":\"chat.completion.chunk\",\"model\":\"qwen-plus\",\"id\":\"chatcmpl-1\"}\n\n\
        data: {\"error\":{\"code\":\"data_inspection_failed\",\"param\":null,\"message\":\"Output data may contain inappropriate content.\",\"type\":\"data_inspection_failed\"}}\n\n";
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;
    let provider = compat(
        format!("{}/compatible-mode/v1", server.uri()),
        Timeouts::default(),
    );
    let items: Vec<_> = futures_util::StreamExt::collect::<Vec<_>>(
        provider.stream(&ChatRequest::from("hi")).await.unwrap(),
    )
    .await;
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1].as_ref().unwrap_err().kind(),
        ErrorKind::ContentFiltered
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert!(
        sent.get("enable_thinking").is_none(),
        "streams leave thinking to the caller"
    );
}
