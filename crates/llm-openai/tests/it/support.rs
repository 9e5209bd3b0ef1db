//! Fixtures in OpenAI's documented wire format, and provider builders.

use std::time::Duration;

use bytes::Bytes;
use llm_openai::{OpenAiConfig, OpenAiProvider, Timeouts};
use serde_json::{Value, json};

pub(crate) const KEY: &str = "sk-test-PLANTED-SECRET-0123456789abcdef";

/// An OpenAI provider pointed at `base` (a mock server's URL, without `/v1`).
pub(crate) fn openai(base: &str) -> OpenAiProvider {
    openai_with(base, Timeouts::default())
}

pub(crate) fn openai_with(base: &str, timeouts: Timeouts) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiConfig {
        base_url: format!("{base}/v1"),
        model: Some("gpt-4o".into()),
        timeouts,
        ..OpenAiConfig::new(KEY)
    })
    .unwrap()
}

pub(crate) fn short_timeouts() -> Timeouts {
    Timeouts {
        first_byte: Duration::from_millis(300),
        idle: Duration::from_millis(300),
        total: Duration::from_millis(600),
        ..Timeouts::default()
    }
}

/// A non-streaming chat.completion with `content`, as in OpenAI's API reference.
pub(crate) fn completion(content: &str, usage: (u64, u64)) -> Value {
    json!({
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1732600000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_f33640a400",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        }
    })
}

pub(crate) fn tool_completion(calls: &[(&str, &str, String)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    json!({
        "id": "chatcmpl-T", "object": "chat.completion", "created": 1732600001, "model": "gpt-4o",
        "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "tool_calls": calls}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    })
}

/// A chunk with one choice.
pub(crate) fn chunk(delta: Value, finish: Option<&str>) -> Value {
    let mut chunk = json!({
        "id": "chatcmpl-AbC1", "object": "chat.completion.chunk", "created": 1732600000,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_f33640a400",
        "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}],
        "usage": null
    });
    chunk["choices"][0]["delta"] = delta;
    chunk
}

pub(crate) fn usage_chunk(usage: (u64, u64)) -> Value {
    json!({
        "id": "chatcmpl-AbC1", "object": "chat.completion.chunk", "created": 1732600000,
        "model": "gpt-4o-2024-08-06", "choices": [],
        "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}
    })
}

/// A text stream: the role chunk, one chunk per piece, the finish chunk and a usage chunk.
pub(crate) fn text_frames(pieces: &[&str], usage: (u64, u64)) -> Vec<Value> {
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )];
    frames.extend(pieces.iter().map(|p| chunk(json!({"content": p}), None)));
    frames.push(chunk(json!({}), Some("stop")));
    frames.push(usage_chunk(usage));
    frames
}

/// Tool-call frames, fragments of the calls interleaved by index.
pub(crate) fn tool_frames(calls: &[(&str, &str, &[&str])]) -> Vec<Value> {
    let mut frames = Vec::new();
    for (index, (id, name, _)) in calls.iter().enumerate() {
        let mut delta = json!({"tool_calls": [{"index": index, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""}}]});
        if index == 0 {
            delta["role"] = json!("assistant");
            delta["content"] = Value::Null;
        }
        frames.push(chunk(delta, None));
    }
    let longest = calls.iter().map(|(_, _, f)| f.len()).max().unwrap_or(0);
    for step in 0..longest {
        for (index, (_, _, fragments)) in calls.iter().enumerate() {
            if let Some(fragment) = fragments.get(step) {
                frames.push(chunk(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                    None,
                ));
            }
        }
    }
    frames.push(chunk(json!({}), Some("tool_calls")));
    frames
}

/// `data: {frame}\n\n` for each frame, and `data: [DONE]\n\n` when `done`.
pub(crate) fn sse(frames: &[Value], done: bool) -> String {
    let mut body = String::new();
    for frame in frames {
        body.push_str("data: ");
        body.push_str(&frame.to_string());
        body.push_str("\n\n");
    }
    if done {
        body.push_str("data: [DONE]\n\n");
    }
    body
}

/// `body` cut into pieces of `size` bytes (splitting frames, lines and UTF-8 characters).
pub(crate) fn pieces(body: &str, size: usize) -> Vec<Bytes> {
    body.as_bytes()
        .chunks(size)
        .map(Bytes::copy_from_slice)
        .collect()
}

pub(crate) fn error_body(message: &str, kind: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}
