//! Fixtures in OpenAI's documented wire format (chat.completion bodies, chunk frames, SSE
//! bodies, error envelopes), shared by the tests of every OpenAI-compatible provider.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{
    Script,
    conformance::{ErrorCase, Mode, PARTIAL_PIECES, Scenario, TEXT_PIECES, TOOL_CALLS, USAGE},
};

/// A non-streaming chat.completion with `content`, as in OpenAI's API reference.
pub fn completion(content: &str, usage: (u64, u64)) -> Value {
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

/// A non-streaming answer making the given `(id, name, arguments)` tool calls.
pub fn tool_completion(calls: &[(&str, &str, String)]) -> Value {
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
pub fn chunk(delta: Value, finish: Option<&str>) -> Value {
    let mut chunk = json!({
        "id": "chatcmpl-AbC1", "object": "chat.completion.chunk", "created": 1732600000,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_f33640a400",
        "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}],
        "usage": null
    });
    chunk["choices"][0]["delta"] = delta;
    chunk
}

/// The final usage chunk (empty `choices`).
pub fn usage_chunk(usage: (u64, u64)) -> Value {
    json!({
        "id": "chatcmpl-AbC1", "object": "chat.completion.chunk", "created": 1732600000,
        "model": "gpt-4o-2024-08-06", "choices": [],
        "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}
    })
}

/// A text stream: the role chunk, one chunk per piece, the finish chunk and a usage chunk.
pub fn text_frames(pieces: &[&str], usage: (u64, u64)) -> Vec<Value> {
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
pub fn tool_frames(calls: &[(&str, &str, &[&str])]) -> Vec<Value> {
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
pub fn sse(frames: &[Value], done: bool) -> String {
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
pub fn pieces(body: &str, size: usize) -> Vec<Bytes> {
    body.as_bytes()
        .chunks(size)
        .map(Bytes::copy_from_slice)
        .collect()
}

/// The OpenAI error envelope.
pub fn error_body(message: &str, kind: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// The conformance upstream of an OpenAI-compatible provider: `scenario` answered for
/// `mode` in OpenAI's format, streams opened with `prelude` frames (Azure's filter chunk),
/// errors as `errors` writes them in the provider's own dialect.
#[must_use]
pub fn conformance_script(
    scenario: Scenario,
    mode: Mode,
    prelude: &[Value],
    errors: &dyn Fn(ErrorCase) -> Script,
) -> Script {
    let streamed = |frames: Vec<Value>, done: bool| {
        let mut all = prelude.to_vec();
        all.extend(frames);
        // 13-byte writes with a pause between them: frames, lines and UTF-8 characters split.
        Script::sse(pieces(&sse(&all, done), 13), Duration::from_millis(1))
    };
    let calls: Vec<(&str, &str, &[&str])> = TOOL_CALLS
        .iter()
        .map(|c| (c.id, c.name, c.fragments))
        .collect();
    let partial = || {
        let mut frames = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
        frames.extend(
            PARTIAL_PIECES
                .iter()
                .map(|p| chunk(json!({"content": p}), None)),
        );
        frames
    };
    let json_script =
        |body: &Value| Script::full(200, "application/json", &[], body.to_string().as_bytes());
    match (scenario, mode) {
        (Scenario::Text, Mode::Chat) => json_script(&completion(&TEXT_PIECES.concat(), USAGE)),
        (Scenario::Text, Mode::Stream) => streamed(text_frames(&TEXT_PIECES, USAGE), true),
        (Scenario::ToolCalls, Mode::Chat) => json_script(&tool_completion(
            &TOOL_CALLS
                .iter()
                .map(|c| (c.id, c.name, c.arguments()))
                .collect::<Vec<_>>(),
        )),
        (Scenario::ToolCalls, Mode::Stream) => {
            let mut frames = tool_frames(&calls);
            frames.push(usage_chunk((20, 10)));
            streamed(frames, true)
        }
        (Scenario::Error(case), _) => errors(case),
        (Scenario::InBandError, _) => {
            let mut frames = partial();
            frames.push(error_body(
                "The server had an error while processing your request.",
                Some("server_error"),
                None,
            ));
            streamed(frames, false)
        }
        (Scenario::Truncated, Mode::Stream) => streamed(partial(), false),
        (Scenario::Truncated, Mode::Chat) => {
            let body = completion(&TEXT_PIECES.concat(), USAGE).to_string();
            Script::cut_body(200, "application/json", body.as_bytes(), body.len() / 2)
        }
        (Scenario::Stall, _) => Script::hang(),
    }
}
