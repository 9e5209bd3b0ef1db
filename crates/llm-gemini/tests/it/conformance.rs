//! The shared conformance checks of llm-core against a Gemini-format upstream.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use llm_core::testing::{
    Script, ScriptedServer,
    conformance::{
        self, ErrorCase, Harness, Mode, PARTIAL_PIECES, Scenario, Served, Skip, TEXT_PIECES,
        TOOL_CALLS, UNAUTHORIZED_MESSAGE, USAGE,
    },
};
use llm_gemini::{GeminiConfig, GeminiProvider, Timeouts};
use serde_json::{Value, json};

use crate::{KEY, error, response, sse};

fn pieces(body: &str, size: usize) -> Vec<Bytes> {
    body.as_bytes()
        .chunks(size)
        .map(Bytes::copy_from_slice)
        .collect()
}

fn error_script(case: ErrorCase, mode: Mode) -> Script {
    let unauthorized = UNAUTHORIZED_MESSAGE.replace("{key}", KEY);
    let (status, body, header) = match case {
        // The trap: an invalid key is a 400 INVALID_ARGUMENT, not a 401.
        ErrorCase::Unauthorized => (
            400,
            error(
                400,
                "INVALID_ARGUMENT",
                &unauthorized,
                json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]),
            ),
            None,
        ),
        ErrorCase::Forbidden => (
            403,
            error(
                403,
                "PERMISSION_DENIED",
                "Permission denied on resource project.",
                json!([]),
            ),
            None,
        ),
        ErrorCase::NotFound => (
            404,
            error(
                404,
                "NOT_FOUND",
                "models/gemini-9 is not found for API version v1beta.",
                json!([]),
            ),
            None,
        ),
        ErrorCase::ContextLength => (
            400,
            error(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                json!([]),
            ),
            None,
        ),
        ErrorCase::RateLimited(form) => (
            429,
            error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                json!([]),
            ),
            form.header(),
        ),
        ErrorCase::QuotaExhausted => (
            429,
            error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota.",
                json!([{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]),
            ),
            None,
        ),
        ErrorCase::ContentFilter => {
            // A blocked prompt: HTTP 200, no candidates (on streams, the one frame).
            let body = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}});
            return match mode {
                Mode::Chat => {
                    Script::full(200, "application/json", &[], body.to_string().as_bytes())
                }
                Mode::Stream => Script::sse(pieces(&sse(&[body]), 9), Duration::from_millis(1)),
            };
        }
        ErrorCase::ServerError => (
            500,
            error(
                500,
                "INTERNAL",
                "An internal error has occurred.",
                json!([]),
            ),
            None,
        ),
        ErrorCase::Unavailable => (
            503,
            error(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
                json!([]),
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

fn text(piece: &str) -> Value {
    json!([{"text": piece}])
}

fn script(scenario: Scenario, mode: Mode) -> Script {
    let streamed =
        |frames: &[Value]| Script::sse(pieces(&sse(frames), 9), Duration::from_millis(1));
    let calls = || -> Value {
        TOOL_CALLS
            .iter()
            .map(|c| json!({"functionCall": {"name": c.name, "args": serde_json::from_str::<Value>(&c.arguments()).unwrap(), "id": c.id}}))
            .collect()
    };
    match (scenario, mode) {
        (Scenario::Text, Mode::Chat) => Script::full(
            200,
            "application/json",
            &[],
            response(text(&TEXT_PIECES.concat()), Some("STOP"), Some(USAGE))
                .to_string()
                .as_bytes(),
        ),
        (Scenario::Text, Mode::Stream) => {
            let last = TEXT_PIECES.len() - 1;
            let frames: Vec<Value> = TEXT_PIECES
                .iter()
                .enumerate()
                .map(|(i, piece)| {
                    if i == last {
                        response(text(piece), Some("STOP"), Some(USAGE))
                    } else {
                        response(text(piece), None, Some((USAGE.0, 0)))
                    }
                })
                .collect();
            streamed(&frames)
        }
        (Scenario::ToolCalls, Mode::Chat) => Script::full(
            200,
            "application/json",
            &[],
            response(calls(), Some("STOP"), Some((20, 10)))
                .to_string()
                .as_bytes(),
        ),
        (Scenario::ToolCalls, Mode::Stream) => {
            // Each call arrives whole in its own frame, without an index.
            let frames: Vec<Value> = calls()
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, call)| {
                    let finish = (i == TOOL_CALLS.len() - 1).then_some("STOP");
                    response(json!([call]), finish, Some((20, 10)))
                })
                .collect();
            streamed(&frames)
        }
        (Scenario::Error(case), mode) => error_script(case, mode),
        (Scenario::InBandError, _) => {
            let mut frames: Vec<Value> = PARTIAL_PIECES
                .iter()
                .map(|p| response(text(p), None, None))
                .collect();
            frames.push(json!({"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}));
            streamed(&frames)
        }
        (Scenario::Truncated, Mode::Stream) => {
            let frames: Vec<Value> = PARTIAL_PIECES
                .iter()
                .map(|p| response(text(p), None, None))
                .collect();
            streamed(&frames)
        }
        (Scenario::Truncated, Mode::Chat) => {
            let body = response(text(&TEXT_PIECES.concat()), Some("STOP"), Some(USAGE)).to_string();
            Script::cut_body(200, "application/json", body.as_bytes(), body.len() / 2)
        }
        (Scenario::Stall, _) => Script::hang(),
        (other, _) => unreachable!("no script for {other:?}"),
    }
}

struct GeminiHarness;

#[llm_core::async_trait]
impl Harness for GeminiHarness {
    async fn serve(&self, scenario: Scenario, mode: Mode) -> Result<Served, Skip> {
        let server = ScriptedServer::start(vec![script(scenario, mode)])
            .await
            .unwrap();
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
        let provider = GeminiProvider::new(GeminiConfig {
            base_url: Some(server.url()),
            model: Some("gemini-2.5-flash".into()),
            timeouts,
            ..GeminiConfig::api_key(KEY)
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
async fn gemini_passes_the_conformance_suite() {
    let report = conformance::run_all(&GeminiHarness).await;
    report.assert_all_passed();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.passed.len(), 36);
}
