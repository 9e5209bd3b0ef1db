//! A mock upstream speaking the documented wire formats of the OpenAI-compatible providers
//! other than OpenAI itself, for end-to-end checks through the gateway (`cargo xtask sdk`)
//! and per-provider benchmarks:
//!
//! - DashScope native: `POST /api/v1/services/aigc/text-generation/generation` (JSON, or
//!   no-space SSE frames with `X-DashScope-SSE: enable`, cumulative usage, no `[DONE]`);
//! - DashScope compatible mode: `POST /compatible-mode/v1/chat/completions`;
//! - DeepSeek: `POST /chat/completions` (reasoning content, `: keep-alive` comments,
//!   cache-hit usage);
//! - Gemini on AI Studio: `POST /v1beta/models/{model}:generateContent` and
//!   `:streamGenerateContent?alt=sse` (`x-goog-api-key`), and on Vertex AI:
//!   `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:…` (a bearer JWT).
//!   Its function calls carry a thought signature, and a follow-up turn that lost it is
//!   refused with 400, as Gemini 3 does.
//! - Claude on Bedrock: `POST /model/{modelId}/converse` (JSON) and `/converse-stream`
//!   (`application/vnd.amazon.eventstream` frames), SigV4-signed for service `bedrock` or
//!   with a Bedrock API key (`Bearer <--key>`); errors with `x-amzn-ErrorType`. It refuses
//!   what Bedrock refuses: tool blocks without `toolConfig`, blank text blocks, roles that
//!   do not alternate, tool names outside `[a-zA-Z0-9_-]{1,64}`.
//!
//! A DeepSeek or DashScope-compatible request whose last message is `please rate limit`
//! gets a 429 with `retry-after: 3`.
//!
//! Every route checks its credential (`Authorization: Bearer <--key>`, Gemini's
//! `x-goog-api-key: <--key>`, or on Vertex a bearer JWT) and answers a failure in the
//! provider's own error shape. `--write-service-account PATH` writes a service-account key
//! with a fresh RSA key (for Vertex AI deployments in tests) and exits. The answer echoes the last user message; with tools in the request it
//! calls the first tool with `{"city": "Paris"}`; after a tool result it answers
//! `tool said: <result>`.
//!
//! ```text
//! provider-mock --port 9100 --key sk-mock
//! ```
#![expect(clippy::print_stdout, reason = "reports its address")]

use std::sync::Arc;

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
    response::Response,
    routing::post,
};
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Native,
    Compatible,
    DeepSeek,
    Gemini,
    Vertex,
    Bedrock,
}

/// The thought signature the mock's Gemini function calls carry.
const SIGNATURE: &str = "c2lnbmF0dXJlLW9mLXRoZS1tb2Nr";

/// What the mock answers to a request.
enum Answer {
    Text(String),
    Call { name: String },
}

fn answer_for(messages: &[Value], tools: Option<&Value>) -> Answer {
    let last = messages.last();
    let role = last.and_then(|m| m["role"].as_str()).unwrap_or("");
    let text = |m: &Value| match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<String>(),
        _ => String::new(),
    };
    if role == "tool" {
        return Answer::Text(format!("tool said: {}", last.map(text).unwrap_or_default()));
    }
    if let Some(name) = tools
        .and_then(|t| t.get(0))
        .and_then(|t| t["function"]["name"].as_str())
    {
        return Answer::Call {
            name: name.to_owned(),
        };
    }
    Answer::Text(last.map(text).unwrap_or_default())
}

fn words(text: &str) -> Vec<String> {
    let mut pieces: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    if pieces.is_empty() {
        pieces.push(String::new());
    }
    pieces
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap_or_default()
}

fn unauthorized(flavor: Flavor) -> Response {
    let body = match flavor {
        Flavor::Native => {
            json!({"code": "InvalidApiKey", "message": "Invalid API-key provided.", "request_id": "mock"})
        }
        Flavor::Compatible => {
            json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
        }
        Flavor::DeepSeek => {
            json!({"error": {"message": "Authentication Fails, Your api key is invalid", "type": "authentication_error", "param": null, "code": "invalid_request_error"}})
        }
        Flavor::Gemini => {
            json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT", "details": [{"reason": "API_KEY_INVALID"}]}})
        }
        Flavor::Vertex => {
            json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
        }
        Flavor::Bedrock => {
            return bedrock_error(
                StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            );
        }
    };
    respond(
        if flavor == Flavor::Gemini {
            // Gemini says an invalid key with a 400.
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNAUTHORIZED
        },
        "application/json",
        body.to_string(),
    )
}

const CALL_ID: &str = "call_mock_0";
const ARGS: &str = "{\"city\": \"Paris\"}";

/// DashScope native: the whole answer, or its SSE frames.
fn native(request: &Value, stream: bool) -> Response {
    let empty = Vec::new();
    let messages = request["input"]["messages"].as_array().unwrap_or(&empty);
    let answer = answer_for(messages, request["parameters"].get("tools"));
    let usage = |output: usize| json!({"input_tokens": 12, "output_tokens": output, "total_tokens": 12 + output});
    let result = |message: Value, finish: &str, output: usize| json!({"output": {"choices": [{"message": message, "finish_reason": finish}]}, "usage": usage(output), "request_id": "mock-native"});
    if !stream {
        let body = match answer {
            Answer::Text(text) => result(json!({"role": "assistant", "content": text}), "stop", 5),
            Answer::Call { name } => result(
                json!({"role": "assistant", "content": "", "tool_calls": [{"index": 0, "id": CALL_ID, "type": "function", "function": {"name": name, "arguments": ARGS}}]}),
                "tool_calls",
                7,
            ),
        };
        return respond(StatusCode::OK, "application/json", body.to_string());
    }
    let mut events = Vec::new();
    match answer {
        Answer::Text(text) => {
            let pieces = words(&text);
            let count = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                let finish = if i + 1 == count { "stop" } else { "null" };
                events.push(result(
                    json!({"role": "assistant", "content": piece}),
                    finish,
                    i + 1,
                ));
            }
        }
        Answer::Call { name } => {
            events.push(result(
                json!({"role": "assistant", "content": "", "tool_calls": [{"index": 0, "id": CALL_ID, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                "null",
                1,
            ));
            for (i, fragment) in ["{\"city\": ", "\"Paris\"}"].iter().enumerate() {
                let finish = if i == 1 { "tool_calls" } else { "null" };
                events.push(result(
                    json!({"role": "assistant", "content": "", "tool_calls": [{"index": 0, "id": "", "type": "function", "function": {"name": "", "arguments": fragment}}]}),
                    finish,
                    i + 2,
                ));
            }
        }
    }
    let body: String = events
        .iter()
        .enumerate()
        .map(|(i, data)| {
            format!(
                "id:{}\nevent:result\n:HTTP_STATUS/200\ndata:{data}\n\n",
                i + 1
            )
        })
        .collect();
    respond(StatusCode::OK, "text/event-stream", body)
}

/// OpenAI-shaped answers (compatible mode and DeepSeek).
fn openai_shaped(request: &Value, stream: bool, flavor: Flavor) -> Response {
    let model = request["model"].as_str().unwrap_or("model");
    let empty = Vec::new();
    let messages = request["messages"].as_array().unwrap_or(&empty);
    let answer = answer_for(messages, request.get("tools"));
    let id = "chatcmpl-mock";
    let mut usage = json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17});
    if flavor == Flavor::DeepSeek {
        usage["prompt_cache_hit_tokens"] = json!(8);
        usage["prompt_cache_miss_tokens"] = json!(4);
    }
    let reasoning = (flavor == Flavor::DeepSeek).then_some("Thinking it over.");
    if !stream {
        let (message, finish) = match answer {
            Answer::Text(text) => (
                json!({"role": "assistant", "content": text, "reasoning_content": reasoning}),
                "stop",
            ),
            Answer::Call { name } => (
                json!({"role": "assistant", "content": null, "reasoning_content": reasoning,
                    "tool_calls": [{"id": CALL_ID, "type": "function", "function": {"name": name, "arguments": ARGS}}]}),
                "tool_calls",
            ),
        };
        let body = json!({"id": id, "object": "chat.completion", "created": 1_732_600_000, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}], "usage": usage});
        // DeepSeek sends blank keep-alive lines before a queued body.
        let prefix = if flavor == Flavor::DeepSeek {
            "\n\n"
        } else {
            ""
        };
        return respond(
            StatusCode::OK,
            "application/json",
            format!("{prefix}{body}"),
        );
    }
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 1_732_600_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    };
    let mut frames = Vec::new();
    if let Some(reasoning) = reasoning {
        frames.push(chunk(
            json!({"role": "assistant", "content": null, "reasoning_content": reasoning}),
            None,
        ));
    }
    match answer {
        Answer::Text(text) => {
            for (i, piece) in words(&text).into_iter().enumerate() {
                let mut delta = json!({"content": piece});
                if i == 0 && reasoning.is_none() {
                    delta["role"] = json!("assistant");
                }
                frames.push(chunk(delta, None));
            }
            frames.push(chunk(json!({}), Some("stop")));
        }
        Answer::Call { name } => {
            frames.push(chunk(json!({"tool_calls": [{"index": 0, "id": CALL_ID, "type": "function", "function": {"name": name, "arguments": ""}}]}), None));
            for fragment in ["{\"city\": ", "\"Paris\"}"] {
                frames.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}),
                    None,
                ));
            }
            frames.push(chunk(json!({}), Some("tool_calls")));
        }
    }
    let mut body = String::new();
    if flavor == Flavor::DeepSeek {
        body.push_str(": keep-alive\n\n");
    }
    for frame in &frames {
        body.push_str(&format!("data: {frame}\n\n"));
    }
    if request["stream_options"]["include_usage"] == json!(true) {
        let final_usage = json!({"id": id, "object": "chat.completion.chunk", "created": 1_732_600_000, "model": model, "choices": [], "usage": usage});
        body.push_str(&format!("data: {final_usage}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    respond(StatusCode::OK, "text/event-stream", body)
}

/// Gemini (AI Studio and Vertex AI): a whole answer or SSE frames.
fn gemini(request: &Value, stream: bool) -> Response {
    let empty = Vec::new();
    let contents = request["contents"].as_array().unwrap_or(&empty);
    // Gemini 3: a model turn's first function call must carry its signature.
    for turn in contents.iter().filter(|t| t["role"] == "model") {
        let calls: Vec<&Value> = turn["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p.get("functionCall").is_some())
            .collect();
        if calls
            .first()
            .is_some_and(|p| p["thoughtSignature"] != SIGNATURE)
        {
            let body = json!({"error": {"code": 400, "message": "Function call is missing a thought_signature in functionCall parts.", "status": "INVALID_ARGUMENT"}});
            return respond(
                StatusCode::BAD_REQUEST,
                "application/json",
                body.to_string(),
            );
        }
    }
    let last = contents
        .last()
        .and_then(|t| t["parts"].as_array())
        .cloned()
        .unwrap_or_default();
    let usage = |output: usize| json!({"promptTokenCount": 12, "candidatesTokenCount": output, "totalTokenCount": 12 + output});
    let frame = |parts: Value, finish: Option<&str>, output: usize| {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        json!({"candidates": [candidate], "usageMetadata": usage(output), "modelVersion": "gemini-mock", "responseId": "mockResponse1"})
    };
    let frames: Vec<Value> = if let Some(result) =
        last.iter().find_map(|p| p.get("functionResponse"))
    {
        let said = match &result["response"]["result"] {
            Value::String(text) => text.clone(),
            Value::Null => result["response"].to_string(),
            other => other.to_string(),
        };
        vec![frame(
            json!([{"text": format!("tool said: {said}")}]),
            Some("STOP"),
            4,
        )]
    } else if let Some(name) = request["tools"][0]["functionDeclarations"][0]["name"].as_str() {
        vec![frame(
            json!([{"functionCall": {"name": name, "args": {"city": "Paris"}}, "thoughtSignature": SIGNATURE}]),
            Some("STOP"),
            6,
        )]
    } else {
        let text: String = last.iter().filter_map(|p| p["text"].as_str()).collect();
        let pieces = words(&text);
        let count = pieces.len();
        pieces
            .into_iter()
            .enumerate()
            .map(|(i, piece)| {
                frame(
                    json!([{"text": piece}]),
                    (i + 1 == count).then_some("STOP"),
                    i + 1,
                )
            })
            .collect()
    };
    if !stream {
        // One answer holding every part.
        let parts: Vec<Value> = frames
            .iter()
            .flat_map(|f| {
                f["candidates"][0]["content"]["parts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        let parts = if text.is_empty() {
            Value::Array(parts)
        } else {
            json!([{"text": text}])
        };
        return respond(
            StatusCode::OK,
            "application/json",
            frame(parts, Some("STOP"), 5).to_string(),
        );
    }
    let body: String = frames
        .iter()
        .map(|f| format!("data: {f}\r\n\r\n"))
        .collect();
    respond(StatusCode::OK, "text/event-stream", body)
}

fn bedrock_error(status: StatusCode, kind: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(
            "x-amzn-ErrorType",
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        )
        .body(Body::from(json!({ "message": message }).to_string()))
        .unwrap_or_default()
}

/// What Bedrock's Converse validation refuses, as its ValidationException message.
fn converse_violation(request: &Value) -> Option<String> {
    let empty = Vec::new();
    let messages = request["messages"].as_array().unwrap_or(&empty);
    let mut previous = "";
    let mut has_tool_blocks = false;
    for (i, message) in messages.iter().enumerate() {
        let role = message["role"].as_str().unwrap_or("");
        if i == 0 && role != "user" {
            return Some("A conversation must start with a user message.".into());
        }
        if role == previous {
            return Some("A conversation must alternate between user and assistant roles.".into());
        }
        previous = role;
        for block in message["content"].as_array().unwrap_or(&empty) {
            if let Some(text) = block["text"].as_str()
                && text.trim().is_empty()
            {
                return Some(format!(
                    "The text field in the ContentBlock object at messages.{i}.content is blank."
                ));
            }
            if let Some(name) = block["toolUse"]["name"].as_str()
                && !valid_tool_name(name)
            {
                return Some(format!("Invalid tool name {name}"));
            }
            has_tool_blocks |= block.get("toolUse").is_some() || block.get("toolResult").is_some();
        }
    }
    if has_tool_blocks && request.get("toolConfig").is_none() {
        return Some(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
                .into(),
        );
    }
    for tool in request["toolConfig"]["tools"].as_array().unwrap_or(&empty) {
        let name = tool["toolSpec"]["name"].as_str().unwrap_or("");
        if !valid_tool_name(name) {
            return Some(format!("Invalid tool name {name}"));
        }
    }
    None
}

fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Claude on Bedrock: a Converse answer, or its event-stream frames.
fn bedrock(request: &Value, stream: bool) -> Response {
    use llm_claude_bedrock::testing::event;

    if let Some(message) = converse_violation(request) {
        return bedrock_error(StatusCode::BAD_REQUEST, "ValidationException", &message);
    }
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .cloned()
        .unwrap_or_default();
    // 12 prompt tokens: 4 read fresh, 8 from the prompt cache.
    let usage = |output: usize| json!({"inputTokens": 4, "cacheReadInputTokens": 8, "cacheWriteInputTokens": 0, "outputTokens": output, "totalTokens": 12 + output});
    enum Reply {
        Text(String),
        Call(String),
    }
    let reply = if let Some(result) = last.iter().find_map(|b| b.get("toolResult")) {
        let said: String = result["content"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| match (&c["text"], &c["json"]) {
                (Value::String(text), _) => text.clone(),
                (_, json) => json.to_string(),
            })
            .collect();
        Reply::Text(format!("tool said: {said}"))
    } else if let Some(name) = request["toolConfig"]["tools"][0]["toolSpec"]["name"].as_str() {
        Reply::Call(name.to_owned())
    } else {
        Reply::Text(last.iter().filter_map(|b| b["text"].as_str()).collect())
    };
    // A stop sequence in the echoed text ends it there, as Claude does.
    let mut stopped_on: Option<String> = None;
    let reply = match reply {
        Reply::Text(text) => {
            let hit = request["inferenceConfig"]["stopSequences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|s| text.find(s).map(|at| (at, s)))
                .min();
            match hit {
                Some((at, sequence)) => {
                    stopped_on = Some(sequence.to_owned());
                    Reply::Text(text[..at].to_owned())
                }
                None => Reply::Text(text),
            }
        }
        call @ Reply::Call(_) => call,
    };
    let text_stop = if stopped_on.is_some() {
        "stop_sequence"
    } else {
        "end_turn"
    };
    let additional = stopped_on
        .as_ref()
        .map(|sequence| json!({"stop_sequence": sequence}));
    if !stream {
        let (content, stop, output) = match &reply {
            Reply::Text(text) => (json!([{"text": text}]), text_stop, words(text).len()),
            Reply::Call(name) => (
                json!([{"toolUse": {"toolUseId": CALL_ID, "name": name, "input": {"city": "Paris"}}}]),
                "tool_use",
                6,
            ),
        };
        let mut body = json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage(output),
            "metrics": {"latencyMs": 3}
        });
        if let Some(fields) = &additional {
            body["additionalModelResponseFields"] = fields.clone();
        }
        return respond(StatusCode::OK, "application/json", body.to_string());
    }
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    let (stop, output) = match &reply {
        Reply::Text(text) => {
            let pieces = words(text);
            let count = pieces.len();
            for piece in pieces {
                frames.push(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
                ));
            }
            frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
            (text_stop, count)
        }
        Reply::Call(name) => {
            frames.push(event(
                "contentBlockStart",
                json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": CALL_ID, "name": name}}}),
            ));
            for piece in ["{\"city\": ", "\"Paris\"}"] {
                frames.push(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}}),
                ));
            }
            frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
            ("tool_use", 6)
        }
    };
    let mut stop_event = json!({"stopReason": stop});
    if let Some(fields) = additional {
        stop_event["additionalModelResponseFields"] = fields;
    }
    frames.push(event("messageStop", stop_event));
    frames.push(event(
        "metadata",
        json!({"usage": usage(output), "metrics": {"latencyMs": 3}}),
    ));
    respond(
        StatusCode::OK,
        "application/vnd.amazon.eventstream",
        frames.concat(),
    )
}

fn authorized(flavor: Flavor, key: &str, headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match flavor {
        Flavor::Gemini => header("x-goog-api-key") == Some(key),
        // A signed JWT from the service account (three dot-separated parts).
        Flavor::Vertex => header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| token.split('.').count() == 3),
        // SigV4 for service `bedrock` (the signature itself is not checked: the mock has
        // no secret), or a Bedrock API key.
        Flavor::Bedrock => header("authorization").is_some_and(|v| {
            v.strip_prefix("Bearer ") == Some(key)
                || (v.starts_with("AWS4-HMAC-SHA256 Credential=")
                    && v.contains("/bedrock/aws4_request")
                    && v.contains("Signature=")
                    && headers.contains_key("x-amz-date"))
        }),
        Flavor::Native | Flavor::Compatible | Flavor::DeepSeek => {
            header("authorization").and_then(|v| v.strip_prefix("Bearer ")) == Some(key)
        }
    }
}

fn handle(
    flavor: Flavor,
    key: &str,
    headers: &HeaderMap,
    body: &Bytes,
    stream_query: bool,
) -> Response {
    if !authorized(flavor, key, headers) {
        return unauthorized(flavor);
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return respond(
            StatusCode::BAD_REQUEST,
            "application/json",
            r#"{"code":"InvalidParameter","message":"body is not JSON"}"#,
        );
    };
    match flavor {
        Flavor::Native => {
            let stream = headers
                .get("x-dashscope-sse")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"enable"));
            native(&request, stream)
        }
        Flavor::Compatible | Flavor::DeepSeek => {
            let asks_limit = request["messages"]
                .as_array()
                .and_then(|m| m.last())
                .is_some_and(|m| {
                    m["content"] == "please rate limit"
                        || m["content"][0]["text"] == "please rate limit"
                });
            if asks_limit {
                // A rate limit on request, in OpenAI's shape with `retry-after`.
                return Response::builder()
                    .status(StatusCode::TOO_MANY_REQUESTS)
                    .header(CONTENT_TYPE, "application/json")
                    .header("retry-after", "3")
                    .body(Body::from(
                        json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}).to_string(),
                    ))
                    .unwrap_or_default();
            }
            let stream = request["stream"] == json!(true);
            openai_shaped(&request, stream, flavor)
        }
        Flavor::Gemini | Flavor::Vertex => gemini(&request, stream_query),
        Flavor::Bedrock => bedrock(&request, stream_query),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = args
        .iter()
        .position(|a| a == "--write-service-account")
        .and_then(|i| args.get(i + 1))
    {
        std::fs::write(path, bench::service_account_json("mock-project")?)?;
        return Ok(());
    }
    let port: u16 = bench::arg(&args, "--port", 9100)?;
    let key: Arc<str> = bench::arg::<String>(&args, "--key", "sk-mock".to_owned())?.into();
    let route = |flavor: Flavor| {
        let key = Arc::clone(&key);
        post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let key = Arc::clone(&key);
                async move {
                    let streamed = uri.path().ends_with(":streamGenerateContent")
                        || uri.path().ends_with("/converse-stream");
                    handle(flavor, &key, &headers, &body, streamed)
                }
            },
        )
    };
    let app = Router::new()
        .route(
            "/api/v1/services/aigc/text-generation/generation",
            route(Flavor::Native),
        )
        .route(
            "/compatible-mode/v1/chat/completions",
            route(Flavor::Compatible),
        )
        .route("/chat/completions", route(Flavor::DeepSeek))
        .route("/v1beta/models/{action}", route(Flavor::Gemini))
        .route("/v1/models/{action}", route(Flavor::Gemini))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{action}",
            route(Flavor::Vertex),
        )
        .route("/model/{model}/converse", route(Flavor::Bedrock))
        .route("/model/{model}/converse-stream", route(Flavor::Bedrock));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("provider-mock listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
