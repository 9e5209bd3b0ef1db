//! DashScope native format fixtures and the conformance suite on the native API.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use llm_core::testing::{
    Script, ScriptedServer,
    conformance::{
        self, ErrorCase, Harness, Mode, PARTIAL_PIECES, Scenario, Served, Skip, TEXT_PIECES,
        TOOL_CALLS, UNAUTHORIZED_MESSAGE, USAGE,
    },
};
use llm_http::Timeouts;
use llm_qwen::{QwenConfig, QwenProvider};
use serde_json::{Value, json};

use crate::KEY;

/// One native SSE event, as DashScope writes it (no space after the colons).
pub(crate) fn event(id: usize, data: &Value) -> String {
    format!("id:{id}\nevent:result\n:HTTP_STATUS/200\ndata:{data}\n\n")
}

/// An `event:error` frame inside a 200 stream.
pub(crate) fn error_event(id: usize, status: u16, code: &str, message: &str) -> String {
    let data = json!({"code": code, "message": message, "request_id": "5bd1f7a1-62b7"});
    format!("id:{id}\nevent:error\n:HTTP_STATUS/{status}\ndata:{data}\n\n")
}

/// A native result with one choice; `usage` is the running total.
pub(crate) fn result(message: Value, finish: &str, usage: (u64, u64)) -> Value {
    let mut result = json!({
        "output": {"choices": [{"message": {}, "finish_reason": finish}]},
        "usage": {"input_tokens": usage.0, "output_tokens": usage.1, "total_tokens": usage.0 + usage.1},
        "request_id": "5bd1f7a1-62b7-9b8c-a8b9-7a9ce8c2b3f1"
    });
    result["output"]["choices"][0]["message"] = message;
    result
}

/// Text events: one per piece (incremental), cumulative usage, `"null"` until the end.
pub(crate) fn text_events(pieces: &[&str], usage: (u64, u64), finish: bool) -> String {
    let mut body = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        let last = finish && i + 1 == pieces.len();
        let output = u64::try_from(i + 1).unwrap();
        body.push_str(&event(
            i + 1,
            &result(
                json!({"role": "assistant", "content": piece}),
                if last { "stop" } else { "null" },
                (usage.0, if last { usage.1 } else { output }),
            ),
        ));
    }
    body
}

/// Streamed parallel tool calls: each call's head, then its fragments interleaved.
pub(crate) fn tool_events() -> String {
    let mut events = Vec::new();
    for (index, call) in TOOL_CALLS.iter().enumerate() {
        events.push(json!({"role": "assistant", "content": "", "tool_calls": [{"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}]}));
    }
    let longest = TOOL_CALLS.iter().map(|c| c.fragments.len()).max().unwrap();
    for step in 0..longest {
        for (index, call) in TOOL_CALLS.iter().enumerate() {
            if let Some(fragment) = call.fragments.get(step) {
                // Later fragments repeat an empty id and name, as DashScope does.
                events.push(json!({"role": "assistant", "content": "", "tool_calls": [{"index": index, "id": "", "type": "function", "function": {"name": "", "arguments": fragment}}]}));
            }
        }
    }
    let count = events.len();
    events
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let finish = if i + 1 == count { "tool_calls" } else { "null" };
            event(i + 1, &result(message, finish, (20, 10)))
        })
        .collect()
}

pub(crate) fn tool_result() -> Value {
    let calls: Vec<Value> = TOOL_CALLS
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"index": i, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments()}}))
        .collect();
    result(
        json!({"role": "assistant", "content": "", "tool_calls": calls}),
        "tool_calls",
        (20, 10),
    )
}

pub(crate) fn pieces(body: &str, size: usize) -> Vec<Bytes> {
    body.as_bytes()
        .chunks(size)
        .map(Bytes::copy_from_slice)
        .collect()
}

pub(crate) fn native_error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (
        status,
        json!({"code": code, "message": message, "request_id": "a1959ad1-2637"}),
    )
}

fn error_script(case: ErrorCase) -> Script {
    let unauthorized = UNAUTHORIZED_MESSAGE.replace("{key}", KEY);
    let ((status, body), header) = match case {
        ErrorCase::Unauthorized => (native_error(401, "InvalidApiKey", &unauthorized), None),
        ErrorCase::Forbidden => (
            native_error(403, "AccessDenied.Unpurchased", "Access to model denied."),
            None,
        ),
        ErrorCase::NotFound => (native_error(404, "ModelNotFound", "Model not exist."), None),
        ErrorCase::ContextLength => (
            native_error(
                400,
                "InvalidParameter",
                "Range of input length should be [1, 129024]",
            ),
            None,
        ),
        ErrorCase::RateLimited(form) => (
            native_error(
                429,
                "Throttling.RateQuota",
                "Requests rate limit exceeded, please try again later.",
            ),
            form.header(),
        ),
        // The overdue-bill trap: HTTP 400, not 402.
        ErrorCase::QuotaExhausted => (
            native_error(
                400,
                "Arrearage",
                "Access denied, please make sure your account is in good standing.",
            ),
            None,
        ),
        ErrorCase::ContentFilter => (
            native_error(
                400,
                "DataInspectionFailed",
                "Input data may contain inappropriate content.",
            ),
            None,
        ),
        ErrorCase::ServerError => (
            native_error(500, "InternalError", "An internal error has occured."),
            None,
        ),
        ErrorCase::Unavailable => (
            native_error(503, "ServiceUnavailable", "Service is unavailable."),
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

fn stream_script(body: &str) -> Script {
    // 11-byte writes: frames, lines and UTF-8 characters split.
    Script::sse(pieces(body, 11), Duration::from_millis(1))
}

fn script(scenario: Scenario, mode: Mode) -> Script {
    let json_script =
        |body: &Value| Script::full(200, "application/json", &[], body.to_string().as_bytes());
    match (scenario, mode) {
        (Scenario::Text, Mode::Chat) => json_script(&result(
            json!({"role": "assistant", "content": TEXT_PIECES.concat()}),
            "stop",
            USAGE,
        )),
        (Scenario::Text, Mode::Stream) => stream_script(&text_events(&TEXT_PIECES, USAGE, true)),
        (Scenario::ToolCalls, Mode::Chat) => json_script(&tool_result()),
        (Scenario::ToolCalls, Mode::Stream) => stream_script(&tool_events()),
        (Scenario::Error(case), _) => error_script(case),
        (Scenario::InBandError, _) => {
            let mut body = text_events(&PARTIAL_PIECES, (9, 2), false);
            body.push_str(&error_event(
                3,
                500,
                "InternalError",
                "An internal error has occured.",
            ));
            stream_script(&body)
        }
        (Scenario::Truncated, Mode::Stream) => {
            stream_script(&text_events(&PARTIAL_PIECES, (9, 2), false))
        }
        (Scenario::Truncated, Mode::Chat) => {
            let body = result(
                json!({"role": "assistant", "content": TEXT_PIECES.concat()}),
                "stop",
                USAGE,
            )
            .to_string();
            Script::cut_body(200, "application/json", body.as_bytes(), body.len() / 2)
        }
        (Scenario::Stall, _) => Script::hang(),
        (other, _) => unreachable!("no script for {other:?}"),
    }
}

pub(crate) fn short_timeouts() -> Timeouts {
    Timeouts {
        first_byte: Duration::from_millis(300),
        idle: Duration::from_millis(300),
        total: Duration::from_millis(600),
        ..Timeouts::default()
    }
}

struct NativeHarness;

#[llm_core::async_trait]
impl Harness for NativeHarness {
    async fn serve(&self, scenario: Scenario, mode: Mode) -> Result<Served, Skip> {
        let server = ScriptedServer::start(vec![script(scenario, mode)])
            .await
            .unwrap();
        let timeouts = if scenario == Scenario::Stall {
            short_timeouts()
        } else {
            Timeouts::default()
        };
        let provider = QwenProvider::new(QwenConfig {
            base_url: format!("{}/api/v1", server.url()),
            model: Some("qwen-plus".into()),
            timeouts,
            ..QwenConfig::new(KEY)
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
async fn the_native_api_passes_the_conformance_suite() {
    let report = conformance::run_all(&NativeHarness).await;
    report.assert_all_passed();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.passed.len(), 36);
}
