//! The shared conformance checks of llm-core, run for OpenAI and for Azure OpenAI.

use std::sync::Arc;

use llm_core::testing::{
    Script, ScriptedServer,
    conformance::{
        self, ErrorCase, Harness, Mode, RetryAfterForm, Scenario, Served, Skip,
        UNAUTHORIZED_MESSAGE,
    },
    openai_format::conformance_script,
};
use llm_openai::{AzureOpenAiConfig, AzureOpenAiProvider, OpenAiConfig, OpenAiProvider, Timeouts};
use serde_json::{Value, json};

use crate::support::{KEY, error_body, short_timeouts};

#[derive(Debug, Clone, Copy)]
enum Flavor {
    OpenAi,
    Azure,
}

struct OpenAiHarness(Flavor);

fn error_script(case: ErrorCase, flavor: Flavor) -> Script {
    let unauthorized = UNAUTHORIZED_MESSAGE.replace("{key}", KEY);
    let (status, body, header): (u16, Value, Option<(&str, String)>) = match (case, flavor) {
        (ErrorCase::Unauthorized, Flavor::OpenAi) => (
            401,
            error_body(
                &unauthorized,
                Some("invalid_request_error"),
                Some("invalid_api_key"),
            ),
            None,
        ),
        (ErrorCase::Unauthorized, Flavor::Azure) => (
            401,
            json!({"error": {"code": "401", "message": unauthorized}}),
            None,
        ),
        (ErrorCase::Forbidden, _) => (
            403,
            error_body(
                "Country, region, or territory not supported",
                Some("invalid_request_error"),
                Some("unsupported_country_region_territory"),
            ),
            None,
        ),
        (ErrorCase::NotFound, Flavor::OpenAi) => (
            404,
            error_body(
                "The model `gpt-9` does not exist or you do not have access to it.",
                Some("invalid_request_error"),
                Some("model_not_found"),
            ),
            None,
        ),
        (ErrorCase::NotFound, Flavor::Azure) => (
            404,
            json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}),
            None,
        ),
        (ErrorCase::ContextLength, _) => (
            400,
            error_body(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
                Some("invalid_request_error"),
                Some("context_length_exceeded"),
            ),
            None,
        ),
        (ErrorCase::RateLimited(form), Flavor::OpenAi) => (
            429,
            error_body(
                "Rate limit reached for gpt-4o on requests per min (RPM): Limit 500.",
                Some("requests"),
                Some("rate_limit_exceeded"),
            ),
            form.header(),
        ),
        (ErrorCase::RateLimited(form), Flavor::Azure) => (
            429,
            json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded token rate limit of your current OpenAI S0 pricing tier."}}),
            form.header(),
        ),
        (ErrorCase::QuotaExhausted, _) => (
            429,
            error_body(
                "You exceeded your current quota, please check your plan and billing details.",
                Some("insufficient_quota"),
                Some("insufficient_quota"),
            ),
            Some(("retry-after", "20".to_owned())),
        ),
        (ErrorCase::ContentFilter, _) => (
            400,
            json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", "type": null, "param": "prompt", "code": "content_filter", "status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {"jailbreak": {"filtered": true, "detected": true}}}}}),
            None,
        ),
        (ErrorCase::ServerError, _) => (
            500,
            error_body(
                "The server had an error while processing your request. Sorry about that!",
                Some("server_error"),
                None,
            ),
            None,
        ),
        (ErrorCase::Unavailable, _) => (
            503,
            error_body(
                "The engine is currently overloaded, please try again later",
                Some("service_unavailable_error"),
                Some("server_is_overloaded"),
            ),
            None,
        ),
        (other, _) => unreachable!("no script for {other:?}"),
    };
    let headers: Vec<(&str, &str)> = header.iter().map(|(n, v)| (*n, v.as_str())).collect();
    Script::full(
        status,
        "application/json",
        &headers,
        body.to_string().as_bytes(),
    )
}

fn script(scenario: Scenario, mode: Mode, flavor: Flavor) -> Script {
    // Azure opens every stream with a prompt-filter chunk: empty choices, empty id and model.
    let prelude = match flavor {
        Flavor::OpenAi => Vec::new(),
        Flavor::Azure => vec![
            json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]}),
        ],
    };
    conformance_script(scenario, mode, &prelude, &|case| error_script(case, flavor))
}

#[llm_core::async_trait]
impl Harness for OpenAiHarness {
    async fn serve(&self, scenario: Scenario, mode: Mode) -> Result<Served, Skip> {
        let server = ScriptedServer::start(vec![script(scenario, mode, self.0)])
            .await
            .unwrap();
        let timeouts = if scenario == Scenario::Stall {
            short_timeouts()
        } else {
            Timeouts::default()
        };
        let provider: Arc<dyn llm_core::ChatProvider> = match self.0 {
            Flavor::OpenAi => Arc::new(
                OpenAiProvider::new(OpenAiConfig {
                    base_url: format!("{}/v1", server.url()),
                    model: Some("gpt-4o".into()),
                    timeouts,
                    ..OpenAiConfig::new(KEY)
                })
                .unwrap(),
            ),
            Flavor::Azure => Arc::new(
                AzureOpenAiProvider::new(AzureOpenAiConfig {
                    deployment: Some("gpt-4o-prod".into()),
                    api_version: Some("2024-10-21".into()),
                    timeouts,
                    ..AzureOpenAiConfig::with_key(server.url(), KEY)
                })
                .unwrap(),
            ),
        };
        Ok(Served {
            provider,
            guard: Box::new(server),
        })
    }

    fn secret(&self) -> &str {
        KEY
    }
}

#[tokio::test]
async fn openai_passes_the_conformance_suite() {
    let report = conformance::run_all(&OpenAiHarness(Flavor::OpenAi)).await;
    report.assert_all_passed();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.passed.len(), 36);
}

#[tokio::test]
async fn azure_openai_passes_the_conformance_suite() {
    let report = conformance::run_all(&OpenAiHarness(Flavor::Azure)).await;
    report.assert_all_passed();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
}

#[test]
fn every_retry_after_form_is_exercised() {
    let forms: Vec<RetryAfterForm> = ErrorCase::ALL
        .iter()
        .filter_map(|case| match case {
            ErrorCase::RateLimited(form) => Some(*form),
            _ => None,
        })
        .collect();
    assert_eq!(forms.len(), 5);
}
