//! The shared conformance checks of llm-core against a Bedrock-format upstream.

use std::{sync::Arc, time::Duration};

use llm_claude_bedrock::{ClaudeBedrockProvider, Timeouts};
use llm_core::testing::{
    Script, ScriptedServer,
    conformance::{
        self, ErrorCase, Harness, Mode, PARTIAL_PIECES, Scenario, Served, Skip, TEXT_PIECES,
        TOOL_CALLS, UNAUTHORIZED_MESSAGE, USAGE,
    },
};
use serde_json::{Value, json};

use crate::{SECRET_KEY, answer, config, event, exception, stream_script};

fn usage((input, output): (u64, u64)) -> Value {
    json!({"inputTokens": input, "outputTokens": output, "totalTokens": input + output})
}

fn error_script(case: ErrorCase) -> Script {
    let (status, kind, message, retry): (u16, &str, String, Option<(&str, String)>) = match case {
        // The AWS front door's answer to an unknown key id; this one echoes the secret.
        ErrorCase::Unauthorized => (
            403,
            "UnrecognizedClientException",
            UNAUTHORIZED_MESSAGE.replace("{key}", SECRET_KEY),
            None,
        ),
        ErrorCase::Forbidden => (
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.".into(),
            None,
        ),
        ErrorCase::NotFound => (
            404,
            "ResourceNotFoundException",
            "Model not found.".into(),
            None,
        ),
        ErrorCase::ContextLength => (
            400,
            "ValidationException",
            "Input is too long for requested model.".into(),
            None,
        ),
        ErrorCase::RateLimited(form) => (
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.".into(),
            form.header(),
        ),
        ErrorCase::QuotaExhausted => (
            400,
            "ServiceQuotaExceededException",
            "You have exceeded the daily token quota for this model.".into(),
            None,
        ),
        ErrorCase::ServerError => (
            500,
            "InternalServerException",
            "The server encountered an internal error.".into(),
            None,
        ),
        ErrorCase::Unavailable => (
            503,
            "ServiceUnavailableException",
            "The service is temporarily unavailable.".into(),
            None,
        ),
        other => unreachable!("no script for {other:?}"),
    };
    let error_type = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    let mut headers = vec![("x-amzn-ErrorType", error_type.as_str())];
    if let Some((name, value)) = &retry {
        headers.push((name, value.as_str()));
    }
    let body = json!({ "message": message }).to_string();
    Script::full(status, "application/json", &headers, body.as_bytes())
}

fn script(scenario: Scenario, mode: Mode) -> Script {
    match (scenario, mode) {
        (Scenario::Text, Mode::Chat) => answer(
            json!([{"text": TEXT_PIECES.concat()}]),
            "end_turn",
            usage(USAGE),
        ),
        (Scenario::Text, Mode::Stream) => stream_script(
            &crate::text_frames(&TEXT_PIECES, "end_turn", usage(USAGE)),
            7,
        ),
        (Scenario::ToolCalls, Mode::Chat) => {
            let blocks: Vec<Value> = TOOL_CALLS
                .iter()
                .map(|c| {
                    json!({"toolUse": {"toolUseId": c.id, "name": c.name, "input": serde_json::from_str::<Value>(&c.arguments()).unwrap()}})
                })
                .collect();
            answer(Value::Array(blocks), "tool_use", usage((20, 10)))
        }
        (Scenario::ToolCalls, Mode::Stream) => {
            let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
            for (i, call) in TOOL_CALLS.iter().enumerate() {
                let block = i + 1;
                frames.push(event(
                    "contentBlockStart",
                    json!({"contentBlockIndex": block, "start": {"toolUse": {"toolUseId": call.id, "name": call.name}}}),
                ));
            }
            // Fragments interleaved by block, as the suite asks.
            let longest = TOOL_CALLS.iter().map(|c| c.fragments.len()).max().unwrap();
            for f in 0..longest {
                for (i, call) in TOOL_CALLS.iter().enumerate() {
                    if let Some(fragment) = call.fragments.get(f) {
                        frames.push(event(
                            "contentBlockDelta",
                            json!({"contentBlockIndex": i + 1, "delta": {"toolUse": {"input": fragment}}}),
                        ));
                    }
                }
            }
            for i in 0..TOOL_CALLS.len() {
                frames.push(event(
                    "contentBlockStop",
                    json!({"contentBlockIndex": i + 1}),
                ));
            }
            frames.push(event("messageStop", json!({"stopReason": "tool_use"})));
            frames.push(event("metadata", json!({"usage": usage((20, 10))})));
            stream_script(&frames, 11)
        }
        (Scenario::Error(case), _) => error_script(case),
        (Scenario::InBandError, _) => {
            let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
            for piece in PARTIAL_PIECES {
                frames.push(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
                ));
            }
            frames.push(exception(
                "internalServerException",
                "The server encountered an internal error.",
            ));
            stream_script(&frames, 13)
        }
        (Scenario::Truncated, Mode::Stream) => {
            let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
            for piece in PARTIAL_PIECES {
                frames.push(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
                ));
            }
            stream_script(&frames, 13)
        }
        (Scenario::Truncated, Mode::Chat) => {
            let body = json!({
                "output": {"message": {"role": "assistant", "content": [{"text": TEXT_PIECES.concat()}]}},
                "stopReason": "end_turn",
                "usage": usage(USAGE)
            })
            .to_string();
            Script::cut_body(200, "application/json", body.as_bytes(), body.len() / 2)
        }
        (Scenario::Stall, _) => Script::hang(),
        (other, _) => unreachable!("no script for {other:?}"),
    }
}

struct BedrockHarness;

#[llm_core::async_trait]
impl Harness for BedrockHarness {
    async fn serve(&self, scenario: Scenario, mode: Mode) -> Result<Served, Skip> {
        if scenario == Scenario::Error(ErrorCase::ContentFilter) {
            return Err(Skip(
                "Bedrock has no content-filter error: a guardrail answers 200 with stopReason guardrail_intervened, which becomes finish_reason content_filter (tested in mapping.rs)".into(),
            ));
        }
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
        let provider = ClaudeBedrockProvider::new(llm_claude_bedrock::ClaudeBedrockConfig {
            timeouts,
            ..config(&server)
        })
        .unwrap();
        Ok(Served {
            provider: Arc::new(provider),
            guard: Box::new(server),
        })
    }

    fn secret(&self) -> &str {
        SECRET_KEY
    }
}

#[tokio::test]
async fn claude_bedrock_passes_the_conformance_suite() {
    let report = conformance::run_all(&BedrockHarness).await;
    report.assert_all_passed();
    let skipped: Vec<&str> = report
        .skipped
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        skipped,
        ["error/ContentFilter/Chat", "error/ContentFilter/Stream"]
    );
    assert_eq!(report.passed.len(), 34);
}
