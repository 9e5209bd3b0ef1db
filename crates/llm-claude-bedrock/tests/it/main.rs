//! Claude on Bedrock against a local endpoint speaking Bedrock's wire format: the SDK's
//! endpoint points at 127.0.0.1 with static test credentials (SigV4 really signs) or a
//! Bedrock API key; streams are real `application/vnd.amazon.eventstream` frames encoded
//! with aws-smithy-eventstream (CRCs and all), written in small pieces.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod conformance;
mod errors;
mod history;
mod mapping;
mod streams;

use std::time::Duration;

use bytes::Bytes;
use llm_claude_bedrock::{BedrockAuth, ClaudeBedrockConfig, ClaudeBedrockProvider};
use llm_core::testing::{Recorded, Script, ScriptedServer, Step};
use serde_json::{Value, json};

/// The static test credentials: the AWS documentation's example keys.
pub(crate) const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub(crate) const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub(crate) const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENsecretpart";
pub(crate) const API_KEY: &str = "ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlLWtleS1zZWNyZXQ";
pub(crate) const REGION: &str = "us-west-2";
pub(crate) const MODEL: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

/// A provider with static keys (and a session token) pointed at `server`.
pub(crate) fn provider(server: &ScriptedServer) -> ClaudeBedrockProvider {
    ClaudeBedrockProvider::new(config(server)).unwrap()
}

pub(crate) fn config(server: &ScriptedServer) -> ClaudeBedrockConfig {
    ClaudeBedrockConfig {
        region: Some(REGION.into()),
        base_url: Some(server.url()),
        model: Some(MODEL.into()),
        ..ClaudeBedrockConfig::new(BedrockAuth::StaticKeys {
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: SECRET_KEY.into(),
            session_token: Some(SESSION_TOKEN.into()),
        })
    }
}

/// An event frame (see `llm_claude_bedrock::testing`).
pub(crate) fn event(kind: &str, payload: Value) -> Bytes {
    Bytes::from(llm_claude_bedrock::testing::event(kind, payload))
}

/// A modeled exception frame.
pub(crate) fn exception(kind: &str, message: &str) -> Bytes {
    Bytes::from(llm_claude_bedrock::testing::exception(kind, message))
}

/// A ConverseStream answer: the frames written `piece` bytes at a time (frames split
/// anywhere), then the connection closes.
pub(crate) fn stream_script(frames: &[Bytes], piece: usize) -> Script {
    let body: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
    let mut steps = vec![Step::Write(Script::head(
        200,
        "application/vnd.amazon.eventstream",
        &[("x-amzn-requestid", "5d8c1c0e-stream")],
    ))];
    for chunk in body.chunks(piece) {
        steps.push(Step::Sleep(Duration::from_millis(1)));
        steps.push(Step::Write(Bytes::copy_from_slice(chunk)));
    }
    Script::new(steps)
}

/// A Converse JSON answer.
pub(crate) fn answer(content: Value, stop: &str, usage: Value) -> Script {
    let mut body = json!({
        "output": {"message": {"role": "assistant", "content": []}},
        "stopReason": stop,
        "metrics": {"latencyMs": 812}
    });
    body["output"]["message"]["content"] = content;
    body["usage"] = usage;
    Script::full(
        200,
        "application/json",
        &[("x-amzn-RequestId", "0f0e0d0c-chat")],
        body.to_string().as_bytes(),
    )
}

/// A Bedrock error answer: status, `x-amzn-ErrorType`, `{"message"}`.
pub(crate) fn error_answer(status: u16, kind: &str, message: &str) -> Script {
    let header = format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/");
    Script::full(
        status,
        "application/json",
        &[("x-amzn-ErrorType", header.as_str())],
        json!({ "message": message }).to_string().as_bytes(),
    )
}

/// The one request `server` received, with its body as JSON.
pub(crate) async fn sent(server: &ScriptedServer) -> (Recorded, Value) {
    let received = server.received().await;
    assert_eq!(received.len(), 1, "{received:#?}");
    let request = received.into_iter().next().unwrap();
    let body = serde_json::from_slice(&request.body).unwrap();
    (request, body)
}

/// The standard text stream: messageStart, text deltas, stop, metadata.
pub(crate) fn text_frames(pieces: &[&str], stop: &str, usage: Value) -> Vec<Bytes> {
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    for piece in pieces {
        frames.push(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
        ));
    }
    frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
    frames.push(event("messageStop", json!({"stopReason": stop})));
    let mut metadata = json!({"metrics": {"latencyMs": 100}});
    metadata["usage"] = usage;
    frames.push(event("metadata", metadata));
    frames
}
