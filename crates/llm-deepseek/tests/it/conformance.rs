//! The shared conformance checks of llm-core, with DeepSeek's own error bodies.

use std::{sync::Arc, time::Duration};

use llm_core::testing::{
    Script, ScriptedServer,
    conformance::{self, ErrorCase, Harness, Mode, Scenario, Served, Skip, UNAUTHORIZED_MESSAGE},
    openai_format::conformance_script,
};
use llm_deepseek::{DeepSeekConfig, DeepSeekProvider};
use llm_openai::Timeouts;
use serde_json::json;

use crate::KEY;

/// DeepSeek's error envelope: `type` and `code` as DeepSeek fills them (often swapped).
fn error_script(case: ErrorCase) -> Script {
    let body = |message: &str, kind: &str| json!({"error": {"message": message, "type": kind, "param": null, "code": "invalid_request_error"}});
    let unauthorized = UNAUTHORIZED_MESSAGE.replace("{key}", KEY);
    let (status, body, header) = match case {
        ErrorCase::Unauthorized => (401, body(&unauthorized, "authentication_error"), None),
        ErrorCase::Forbidden => (403, body("Access denied", "permission_error"), None),
        ErrorCase::NotFound => (404, body("Model Not Exist", "invalid_request_error"), None),
        ErrorCase::ContextLength => (
            400,
            body(
                "This model's maximum context length is 131072 tokens. However, you requested 140000 tokens.",
                "invalid_request_error",
            ),
            None,
        ),
        ErrorCase::RateLimited(form) => (
            429,
            body("Rate Limit Reached", "rate_limit_error"),
            form.header(),
        ),
        ErrorCase::QuotaExhausted => (402, body("Insufficient Balance", "unknown_error"), None),
        ErrorCase::ContentFilter => (
            400,
            body("Content Exists Risk", "invalid_request_error"),
            None,
        ),
        ErrorCase::ServerError => (500, body("Server Error", "server_error"), None),
        ErrorCase::Unavailable => (503, body("Server Overloaded", "server_error"), None),
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

struct DeepSeekHarness;

#[llm_core::async_trait]
impl Harness for DeepSeekHarness {
    async fn serve(&self, scenario: Scenario, mode: Mode) -> Result<Served, Skip> {
        let script = conformance_script(scenario, mode, &[], &error_script);
        let server = ScriptedServer::start(vec![script]).await.unwrap();
        let timeouts = if scenario == Scenario::Stall {
            Timeouts {
                first_byte: Duration::from_millis(300),
                idle: Duration::from_millis(300),
                total: Duration::from_millis(600),
                ..Timeouts::default()
            }
        } else {
            Timeouts::default()
        };
        let provider = DeepSeekProvider::new(DeepSeekConfig {
            base_url: server.url(),
            model: Some("deepseek-flash".into()),
            timeouts,
            ..DeepSeekConfig::new(KEY)
        })
        .unwrap();
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
async fn deepseek_passes_the_conformance_suite() {
    let report = conformance::run_all(&DeepSeekHarness).await;
    report.assert_all_passed();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.passed.len(), 36);
}
