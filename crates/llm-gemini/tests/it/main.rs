//! Integration tests of llm-gemini against local mock upstreams speaking the Gemini API
//! (wiremock, and llm-core's scripted raw-TCP server for CRLF frames split across writes,
//! cut and stalled streams), for AI Studio and Vertex AI.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod conformance;
mod studio;
mod vertex;

pub(crate) const KEY: &str = "AIzaSy-PLANTED-SECRET-gemini-0123456789";

use serde_json::{Value, json};

/// A `GenerateContentResponse` with one candidate holding `parts`.
pub(crate) fn response(parts: Value, finish: Option<&str>, usage: Option<(u64, u64)>) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": []}, "index": 0});
    candidate["content"]["parts"] = parts;
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    let mut body = json!({"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "mAitaLmkHPPlz7IPvtfUqQ4"});
    if let Some((prompt, output)) = usage {
        body["usageMetadata"] = json!({"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output});
    }
    body
}

/// `data: {frame}\r\n\r\n` for each frame (Gemini is commonly seen with CRLF).
pub(crate) fn sse(frames: &[Value]) -> String {
    frames
        .iter()
        .map(|frame| format!("data: {frame}\r\n\r\n"))
        .collect()
}

/// The Gemini error envelope.
pub(crate) fn error(code: u16, status: &str, message: &str, details: Value) -> Value {
    let mut body = json!({"error": {"code": code, "message": message, "status": status}});
    body["error"]["details"] = details;
    body
}
