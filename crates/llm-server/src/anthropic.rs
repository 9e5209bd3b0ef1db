//! The Anthropic Messages front door: `POST /v1/messages` and
//! `POST /v1/messages/count_tokens`, so Anthropic SDKs and Claude Code run on any model
//! the gateway serves, with the same routing, key pools and failover as chat completions.
//!
//! Requests are translated into our OpenAI-shaped core and answers back:
//! - `system` (a string or text blocks, `cache_control` kept on the parts) → a system
//!   message; text and images (`base64` → data URL, `url` as is); `tool_use` ↔ tool calls;
//!   `tool_result` blocks → tool messages in order (`is_error` becomes Converse's
//!   `status: error` on Claude on Bedrock, an `Error:` prefix elsewhere, since OpenAI-shaped
//!   APIs have no such flag), text after them in the same turn → a user
//!   message after them; `thinking` blocks with a signature → `reasoning_content` and
//!   `thinking_blocks` (Claude on Bedrock sends them back as `reasoningContent`).
//! - `tool_choice` auto / any / tool / none (and `disable_parallel_tool_use`),
//!   `stop_sequences` → `stop`, `max_tokens`, `temperature`, `top_p`, `metadata.user_id` →
//!   `user`; `top_k` and `thinking` only where every deployment of the model has them
//!   (Claude on Bedrock natively; Qwen takes `top_k`; Gemini gets `thinking` as a
//!   reasoning effort); elsewhere they are dropped, never an error. `anthropic-beta` and
//!   `anthropic-version` are accepted and not forwarded.
//! - Answers: `thinking` blocks (with signatures where the provider gave them), one text
//!   block (never an empty one), `tool_use` blocks with ids valid for Anthropic clients;
//!   `stop_reason` from the finish reason (`stop` → `end_turn`, `length` → `max_tokens`,
//!   `tool_calls` → `tool_use`, `content_filter` → `refusal`; `stop_sequence` with the
//!   sequence where the provider says so — Claude on Bedrock does, in the choice's
//!   `stop_reason` / `stop_sequence` extension fields; OpenAI-shaped finish reasons do not,
//!   so there a stop sequence reads as `end_turn`); usage with `input_tokens` +
//!   `cache_read_input_tokens` + `cache_creation_input_tokens` = the provider's prompt
//!   tokens.
//! - Streams follow Anthropic's event sequence (`message_start`, blocks one at a time with
//!   increasing `index`, `message_delta` with the final usage, `message_stop`); tool calls
//!   that arrive interleaved are sent one block after another. A failure after content has
//!   been sent ends the stream with an `error` event.
//! - Errors are `{"type":"error","error":{"type","message"}}`: 400
//!   `invalid_request_error`, 401 `authentication_error`, 403 `permission_error`, 404
//!   `not_found_error`, 413 `request_too_large`, 429 `rate_limit_error` (with
//!   `retry-after`), 529 `overloaded_error` for an overloaded gateway or upstream, else
//!   `api_error`.
//! - `count_tokens` is an estimate made here (no upstream call), the same for every
//!   provider family: a token per 4 bytes of ASCII text and per non-ASCII character, plus
//!   4 per message and the tools' JSON; it grows with the prompt.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    convert::Infallible,
    sync::Arc,
    time::Instant,
};

use axum::{
    Extension, Json,
    body::{Body, Bytes},
    extract::State,
    http::{
        HeaderValue, StatusCode,
        header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER},
    },
    response::{IntoResponse, Response},
};
use futures_util::{StreamExt, stream};
use llm_factory::core::{
    ChatChunk, ChatResponse, Content, ContentPart, FinishReason, FunctionCall, Message,
    NamedFunction, Stop, Tool, ToolCall, ToolChoice, ToolChoiceMode, ToolKind, Usage,
};
use llm_factory::{ChatOptions, ChatRequest, ChatStream};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    AppState,
    error::{ApiError, BodyError, parse_body},
    metrics,
    middleware::RequestId,
};

/// An Anthropic-shaped error response.
pub(crate) fn error_response(
    status: StatusCode,
    message: &str,
    retry_after: Option<&HeaderValue>,
) -> Response {
    let kind = match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    let status = if kind == "overloaded_error" {
        StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
    } else {
        status
    };
    let mut response = (
        status,
        Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response();
    if let Some(value) = retry_after {
        response.headers_mut().insert(RETRY_AFTER, value.clone());
    }
    response
}

/// An OpenAI-shaped error of ours, reshaped.
fn reshape(error: ApiError) -> Response {
    let status = error.status();
    let message = error.body()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let response = error.into_response();
    let retry_after = response.headers().get(RETRY_AFTER).cloned();
    error_response(status, &message, retry_after.as_ref())
}

/// A reason to refuse a request with 400 `invalid_request_error`.
fn refuse(message: impl Into<String>) -> String {
    message.into()
}

fn bad_request(message: impl Into<String>) -> Response {
    error_response(StatusCode::BAD_REQUEST, &message.into(), None)
}

// ---- The request ---------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: String,
    messages: Vec<InMessage>,
    max_tokens: u32,
    #[serde(default)]
    system: Option<System>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<InTool>>,
    #[serde(default)]
    tool_choice: Option<InToolChoice>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    thinking: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum System {
    Text(String),
    Blocks(Vec<SystemBlock>),
}

#[derive(Debug, Deserialize)]
struct SystemBlock {
    text: String,
    #[serde(default)]
    cache_control: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: InRole,
    content: InContent,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum InRole {
    User,
    Assistant,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum InContent {
    Text(String),
    Blocks(Vec<InBlock>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InBlock {
    Text {
        text: String,
        #[serde(default)]
        cache_control: Option<Value>,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ToolResultContent>,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ToolResultContent {
    Text(String),
    Blocks(Vec<InBlock>),
}

#[derive(Debug, Deserialize)]
struct InTool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    input_schema: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

/// What the deployments serving a model can take besides OpenAI's fields.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Abilities {
    /// `top_k`.
    top_k: bool,
    /// Anthropic's `thinking` object, natively.
    native_thinking: bool,
    /// A reasoning effort.
    reasoning_effort: bool,
    /// A tool result's error flag (`is_error` on the tool message).
    tool_errors: bool,
}

/// Abilities by model name, from the deployments' providers (all must have one). A request
/// naming an alias gets none of them (the OpenAI fields only).
pub(crate) fn abilities(factory: &llm_factory::LlmFactory) -> BTreeMap<String, Abilities> {
    let mut providers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for deployment in factory.status() {
        providers
            .entry(deployment.model)
            .or_default()
            .insert(deployment.provider);
    }
    providers
        .into_iter()
        .map(|(model, names)| {
            let all = |f: fn(&str) -> bool| names.iter().all(|n| f(n));
            let abilities = Abilities {
                top_k: all(|n| matches!(n, "claude-bedrock" | "qwen")),
                native_thinking: all(|n| n == "claude-bedrock"),
                reasoning_effort: all(|n| n == "gemini"),
                tool_errors: all(|n| n == "claude-bedrock"),
            };
            (model, abilities)
        })
        .collect()
}

fn text_part(text: String, cache_control: Option<Value>) -> ContentPart {
    let mut part = ContentPart::text(text);
    if let ContentPart::Text {
        cache_control: slot,
        ..
    } = &mut part
    {
        *slot = cache_control;
    }
    part
}

fn image_part(source: ImageSource) -> ContentPart {
    match source {
        ImageSource::Base64 { media_type, data } => {
            ContentPart::image_url(format!("data:{media_type};base64,{data}"))
        }
        ImageSource::Url { url } => ContentPart::image_url(url),
    }
}

/// The Messages request as a chat request.
fn to_chat(request: MessagesRequest, abilities: Abilities) -> Result<ChatRequest, String> {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    match request.system {
        Some(System::Text(text)) if !text.is_empty() => messages.push(Message::system(text)),
        Some(System::Blocks(blocks)) if !blocks.is_empty() => {
            let mut system = Message::system(String::new());
            system.content = Some(Content::Parts(
                blocks
                    .into_iter()
                    .map(|b| text_part(b.text, b.cache_control))
                    .collect(),
            ));
            messages.push(system);
        }
        _ => {}
    }
    for message in request.messages {
        let blocks = match message.content {
            InContent::Text(text) => vec![InBlock::Text {
                text,
                cache_control: None,
            }],
            InContent::Blocks(blocks) => blocks,
        };
        match message.role {
            InRole::User => user_turn(blocks, abilities, &mut messages)?,
            InRole::Assistant => messages.push(assistant_turn(blocks)),
        }
    }
    let mut chat = ChatRequest::new(request.model, messages);
    chat.max_tokens = Some(request.max_tokens);
    chat.temperature = request.temperature;
    chat.top_p = request.top_p;
    chat.stop = request
        .stop_sequences
        .filter(|s| !s.is_empty())
        .map(Stop::Many);
    chat.user = request.metadata.and_then(|m| m.user_id);
    if let Some(top_k) = request.top_k
        && abilities.top_k
    {
        chat.extra.insert("top_k".into(), Value::from(top_k));
    }
    if let Some(thinking) = request.thinking
        && thinking.get("type").and_then(Value::as_str) == Some("enabled")
    {
        if abilities.native_thinking {
            chat.extra.insert("thinking".into(), thinking);
        } else if abilities.reasoning_effort {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .unwrap_or(4096);
            chat.reasoning_effort = Some(
                match budget {
                    0..=2048 => "low",
                    2049..=8192 => "medium",
                    _ => "high",
                }
                .to_owned(),
            );
        }
    }
    if let Some(tools) = request.tools.filter(|t| !t.is_empty()) {
        let mut declared = Vec::with_capacity(tools.len());
        for tool in tools {
            if let Some(kind) = tool.kind.as_deref()
                && kind != "custom"
            {
                return Err(refuse(format!(
                    "tool `{}` is an Anthropic server tool (`{kind}`), which this gateway cannot run; declare it as a custom tool",
                    tool.name
                )));
            }
            declared.push(Tool::function(
                tool.name,
                tool.description.unwrap_or_default(),
                tool.input_schema
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            ));
        }
        chat.tools = Some(declared);
    }
    let (choice, no_parallel) = match request.tool_choice {
        None => (None, None),
        Some(InToolChoice::Auto {
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Mode(ToolChoiceMode::Auto)),
            disable_parallel_tool_use,
        ),
        Some(InToolChoice::Any {
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Mode(ToolChoiceMode::Required)),
            disable_parallel_tool_use,
        ),
        Some(InToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        }) => (
            Some(ToolChoice::Named(NamedFunction {
                kind: ToolKind::Function,
                function: llm_factory::core::FunctionName { name },
            })),
            disable_parallel_tool_use,
        ),
        Some(InToolChoice::None) => (Some(ToolChoice::Mode(ToolChoiceMode::None)), None),
    };
    if chat.tools.is_some() {
        chat.tool_choice = choice;
        if no_parallel == Some(true) {
            chat.parallel_tool_calls = Some(false);
        }
    }
    Ok(chat)
}

/// A user turn: its tool results first, as tool messages in order, then its text and
/// images as one user message.
fn user_turn(
    blocks: Vec<InBlock>,
    abilities: Abilities,
    out: &mut Vec<Message>,
) -> Result<(), String> {
    let mut parts = Vec::new();
    for block in blocks {
        match block {
            InBlock::Text {
                text,
                cache_control,
            } => parts.push(text_part(text, cache_control)),
            InBlock::Image { source } => parts.push(image_part(source)),
            InBlock::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let mut text = String::new();
                match content {
                    None => {}
                    Some(ToolResultContent::Text(t)) => text = t,
                    Some(ToolResultContent::Blocks(inner)) => {
                        for block in inner {
                            match block {
                                InBlock::Text { text: t, .. } => {
                                    if !text.is_empty() {
                                        text.push('\n');
                                    }
                                    text.push_str(&t);
                                }
                                // OpenAI-shaped tool messages carry text: images of a
                                // result go to the user message after it.
                                InBlock::Image { source } => parts.push(image_part(source)),
                                _ => {
                                    return Err(refuse(
                                        "a tool_result may hold text and image blocks only",
                                    ));
                                }
                            }
                        }
                    }
                }
                let mut result = Message::tool(openai_id(&tool_use_id), String::new());
                if is_error == Some(true) {
                    if abilities.tool_errors {
                        // Claude on Bedrock: Converse's `status: error`.
                        result.extra.insert("is_error".into(), Value::Bool(true));
                    } else {
                        text = format!("Error: {text}");
                    }
                }
                result.content = Some(Content::Text(text));
                out.push(result);
            }
            InBlock::ToolUse { .. }
            | InBlock::Thinking { .. }
            | InBlock::RedactedThinking { .. } => {
                return Err(refuse(
                    "tool_use and thinking blocks belong to assistant messages",
                ));
            }
        }
    }
    match parts.as_slice() {
        [] => {}
        // One plain text: a string, which every OpenAI-shaped API takes (DeepSeek takes
        // no part lists).
        [
            ContentPart::Text {
                cache_control: None,
                ..
            },
        ] => {
            if let Some(ContentPart::Text { text, .. }) = parts.pop() {
                out.push(Message::user(text));
            }
        }
        _ => out.push(Message::user_parts(parts)),
    }
    Ok(())
}

fn assistant_turn(blocks: Vec<InBlock>) -> Message {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block {
            InBlock::Text { text: t, .. } => text.push_str(&t),
            InBlock::ToolUse { id, name, input } => calls.push(ToolCall {
                id: openai_id(&id),
                kind: ToolKind::Function,
                function: FunctionCall {
                    name,
                    arguments: if input.is_null() {
                        "{}".to_owned()
                    } else {
                        input.to_string()
                    },
                },
            }),
            InBlock::Thinking {
                thinking,
                signature,
            } => {
                reasoning.push_str(&thinking);
                if let Some(signature) = signature {
                    thinking_blocks.push(
                        json!({"type": "thinking", "thinking": thinking, "signature": signature}),
                    );
                }
            }
            InBlock::RedactedThinking { data } => {
                thinking_blocks.push(json!({"type": "redacted_thinking", "data": data}));
            }
            InBlock::Image { .. } | InBlock::ToolResult { .. } => {}
        }
    }
    let mut message = Message::assistant(text);
    if message
        .content
        .as_ref()
        .is_some_and(|c| c.text().is_empty())
        && !calls.is_empty()
    {
        message.content = None;
    }
    message.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    message.tool_calls = (!calls.is_empty()).then_some(calls);
    if !thinking_blocks.is_empty() {
        message
            .extra
            .insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    message
}

/// Tool ids pass through; ids are made valid for Anthropic clients in answers.
fn openai_id(id: &str) -> String {
    id.to_owned()
}

/// An id valid for Anthropic clients: `^[a-zA-Z0-9_-]+$`.
fn anthropic_id(id: &str, fallback: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        fallback.to_owned()
    } else {
        cleaned
    }
}

// ---- Answers -------------------------------------------------------------------------

fn stop_reason(finish: Option<&FinishReason>, extra: Option<&Map<String, Value>>) -> &'static str {
    if extra
        .and_then(|e| e.get("stop_reason"))
        .and_then(Value::as_str)
        == Some("stop_sequence")
    {
        return "stop_sequence";
    }
    match finish {
        Some(FinishReason::Length) => "max_tokens",
        Some(FinishReason::ToolCalls | FinishReason::FunctionCall) => "tool_use",
        Some(FinishReason::ContentFilter) => "refusal",
        _ => "end_turn",
    }
}

fn usage_json(usage: Option<&Usage>) -> Value {
    let Some(usage) = usage else {
        return json!({"input_tokens": 0, "output_tokens": 0});
    };
    let read = usage.cached_tokens().unwrap_or(0);
    let write = usage
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cache_write_tokens)
        .unwrap_or(0);
    json!({
        "input_tokens": usage.prompt_tokens.saturating_sub(read + write),
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
        "output_tokens": usage.completion_tokens,
    })
}

fn message_id(id: &str) -> String {
    format!(
        "msg_{}",
        anthropic_id(id.trim_start_matches("chatcmpl-"), "gateway")
    )
}

/// A chat completion as a Messages answer.
fn from_chat(answer: &ChatResponse, model: &str) -> Value {
    let mut content = Vec::new();
    let choice = answer.choices.first();
    if let Some(choice) = choice {
        let message = &choice.message;
        if let Some(blocks) = message
            .extra
            .get("thinking_blocks")
            .and_then(Value::as_array)
        {
            content.extend(blocks.iter().cloned().map(|mut block| {
                // Anthropic clients need a string signature.
                if block.get("type").and_then(Value::as_str) == Some("thinking")
                    && !block.get("signature").is_some_and(Value::is_string)
                {
                    block["signature"] = Value::from("");
                }
                block
            }));
        } else if let Some(reasoning) = message
            .reasoning_content
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
        }
        if let Some(text) = message.text().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": text}));
        }
        for (i, call) in message.tool_calls.iter().flatten().enumerate() {
            let input: Value = serde_json::from_str(&call.function.arguments)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::Object(Map::new()));
            content.push(json!({
                "type": "tool_use",
                "id": anthropic_id(&call.id, &format!("toolu_{i}")),
                "name": call.function.name,
                "input": input,
            }));
        }
    }
    json!({
        "id": message_id(&answer.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(
            choice.and_then(|c| c.finish_reason.as_ref()),
            choice.map(|c| &c.extra),
        ),
        "stop_sequence": choice.and_then(|c| c.extra.get("stop_sequence")).cloned().unwrap_or(Value::Null),
        "usage": usage_json(answer.usage.as_ref()),
    })
}

// ---- Streams -------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(u32),
}

/// Turns chunks into Anthropic's event sequence.
struct Events {
    model: String,
    started: bool,
    next_index: u32,
    open: Option<(Open, u32)>,
    /// Tool calls not yet opened (they arrived while another block was open): id, name,
    /// arguments so far, by OpenAI index.
    waiting: BTreeMap<u32, (String, String, String)>,
    /// Tool indexes already sent as blocks.
    sent_tools: BTreeSet<u32>,
    stop: Option<FinishReason>,
    /// The choice's extension fields on its finish chunk (`stop_reason`, `stop_sequence`).
    stop_extra: Option<Map<String, Value>>,
    usage: Option<Usage>,
    out: VecDeque<Bytes>,
}

fn frame(kind: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

impl Events {
    fn new(model: String) -> Self {
        Self {
            model,
            started: false,
            next_index: 0,
            open: None,
            waiting: BTreeMap::new(),
            sent_tools: BTreeSet::new(),
            stop: None,
            stop_extra: None,
            usage: None,
            out: VecDeque::new(),
        }
    }

    fn start(&mut self, id: &str) {
        if self.started {
            return;
        }
        self.started = true;
        let message = json!({
            "id": message_id(id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        self.out.push_back(frame(
            "message_start",
            &json!({"type": "message_start", "message": message}),
        ));
    }

    fn close(&mut self) {
        if let Some((_, index)) = self.open.take() {
            self.out.push_back(frame(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn open(&mut self, kind: Open, block: &Value) -> u32 {
        if let Some((open, index)) = self.open
            && open == kind
        {
            return index;
        }
        self.close();
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((kind, index));
        self.out.push_back(frame(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn delta(&mut self, index: u32, delta: &Value) {
        self.out.push_back(frame(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
    }

    fn tool_block(&mut self, tool: u32, id: &str, name: &str) -> u32 {
        self.sent_tools.insert(tool);
        self.open(Open::Tool(tool), &json!({"type": "tool_use", "id": anthropic_id(id, &format!("toolu_{tool}")), "name": name, "input": {}}),
        )
    }

    fn chunk(&mut self, chunk: ChatChunk) {
        self.start(&chunk.id);
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return;
        };
        let delta = choice.delta;
        if let Some(reasoning) = delta.reasoning_content.filter(|r| !r.is_empty()) {
            let index = self.open(Open::Thinking, &json!({"type": "thinking", "thinking": ""}));
            self.delta(
                index,
                &json!({"type": "thinking_delta", "thinking": reasoning}),
            );
        }
        if let Some(blocks) = delta.extra.get("thinking_blocks").and_then(Value::as_array) {
            for block in blocks {
                if let Some(signature) = block.get("signature").and_then(Value::as_str) {
                    let index =
                        self.open(Open::Thinking, &json!({"type": "thinking", "thinking": ""}));
                    self.delta(
                        index,
                        &json!({"type": "signature_delta", "signature": signature}),
                    );
                    self.close();
                } else if block.get("type").and_then(Value::as_str) == Some("redacted_thinking") {
                    self.close();
                    let index = self.next_index;
                    self.next_index += 1;
                    self.out.push_back(frame(
                        "content_block_start",
                        &json!({"type": "content_block_start", "index": index, "content_block": block}),
                    ));
                    self.out.push_back(frame(
                        "content_block_stop",
                        &json!({"type": "content_block_stop", "index": index}),
                    ));
                }
            }
        }
        if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
            let index = self.open(Open::Text, &json!({"type": "text", "text": ""}));
            self.delta(index, &json!({"type": "text_delta", "text": text}));
        }
        for call in delta.tool_calls.into_iter().flatten() {
            let tool = call.index;
            let (name, arguments) = call
                .function
                .map(|f| (f.name, f.arguments))
                .unwrap_or_default();
            let arguments = arguments.unwrap_or_default();
            match self.open {
                Some((Open::Tool(current), index)) if current == tool => {
                    if !arguments.is_empty() {
                        self.delta(
                            index,
                            &json!({"type": "input_json_delta", "partial_json": arguments}),
                        );
                    }
                }
                _ if self.sent_tools.contains(&tool) => {
                    // A fragment for a block already closed cannot be sent in order; it
                    // only happens if a provider interleaves calls with other content.
                    tracing::warn!(tool, "a tool-call fragment arrived after its block closed");
                }
                Some((Open::Tool(_), _)) => {
                    // Another call is being streamed: this one waits its turn.
                    let entry = self.waiting.entry(tool).or_default();
                    if let Some(id) = call.id {
                        entry.0 = id;
                    }
                    if let Some(name) = name {
                        entry.1 = name;
                    }
                    entry.2.push_str(&arguments);
                }
                _ => {
                    let waiting = self.waiting.remove(&tool).unwrap_or_default();
                    let id = call.id.unwrap_or(waiting.0);
                    let name = name.unwrap_or(waiting.1);
                    let index = self.tool_block(tool, &id, &name);
                    let so_far = waiting.2 + &arguments;
                    if !so_far.is_empty() {
                        self.delta(
                            index,
                            &json!({"type": "input_json_delta", "partial_json": so_far}),
                        );
                    }
                }
            }
        }
        if let Some(finish) = choice.finish_reason {
            self.stop = Some(finish);
            self.stop_extra = Some(choice.extra);
        }
    }

    /// The stream ended well: the waiting tool calls, then `message_delta` and
    /// `message_stop`.
    fn finish(&mut self, fallback_id: &str) {
        self.start(fallback_id);
        self.close();
        for (tool, (id, name, arguments)) in std::mem::take(&mut self.waiting) {
            let index = self.tool_block(tool, &id, &name);
            if !arguments.is_empty() {
                self.delta(
                    index,
                    &json!({"type": "input_json_delta", "partial_json": arguments}),
                );
            }
            self.close();
        }
        let mut usage = usage_json(self.usage.as_ref());
        if self.usage.is_none() {
            usage = json!({"output_tokens": 0});
        }
        self.out.push_back(frame(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason(self.stop.as_ref(), self.stop_extra.as_ref()),
                    "stop_sequence": self
                        .stop_extra
                        .as_ref()
                        .and_then(|e| e.get("stop_sequence"))
                        .cloned()
                        .unwrap_or(Value::Null),
                },
                "usage": usage,
            }),
        ));
        self.out
            .push_back(frame("message_stop", &json!({"type": "message_stop"})));
    }

    fn fail(&mut self, error: &ApiError) {
        let status = error.status();
        let kind = match status.as_u16() {
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            400 => "invalid_request_error",
            _ => "api_error",
        };
        let message = error.body()["error"]["message"].clone();
        self.out.push_back(frame(
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
        ));
    }
}

fn sse(first: ChatChunk, upstream: ChatStream, model: String, started: Instant) -> Response {
    struct State {
        upstream: ChatStream,
        events: Events,
        id: String,
        done: bool,
        started: Instant,
    }
    let mut events = Events::new(model);
    let id = first.id.clone();
    events.chunk(first);
    let state = State {
        upstream,
        events,
        id,
        done: false,
        started,
    };
    let body = stream::unfold(state, |mut state| async move {
        loop {
            if let Some(bytes) = state.events.out.pop_front() {
                return Some((Ok::<_, Infallible>(bytes), state));
            }
            if state.done {
                return None;
            }
            match state.upstream.next().await {
                Some(Ok(chunk)) => {
                    if let Some(usage) = &chunk.usage {
                        metrics::count_tokens(usage);
                    }
                    state.events.chunk(chunk);
                }
                Some(Err(error)) => {
                    let error = ApiError::from(error);
                    metrics::count_error(&error);
                    state.events.fail(&error);
                    state.done = true;
                }
                None => {
                    metrics::observe_duration(state.started);
                    let id = state.id.clone();
                    state.events.finish(&id);
                    state.done = true;
                }
            }
        }
    });
    (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

// ---- Handlers ------------------------------------------------------------------------

/// Parse the body as a Messages request, or answer 400 in Anthropic's shape.
fn parse(body: &[u8]) -> Result<MessagesRequest, String> {
    let request: MessagesRequest = parse_body(body).map_err(|error| match error {
        BodyError::Invalid { path: None, detail } => refuse(format!(
            "the request body is not a valid Messages request: {detail}"
        )),
        BodyError::Invalid {
            path: Some(path),
            detail,
        } => refuse(format!("{path}: {detail}")),
        BodyError::Trailing(detail) => refuse(format!(
            "the request body has data after the JSON object: {detail}"
        )),
    })?;
    if request.messages.is_empty() {
        return Err(refuse("messages: at least one message is required"));
    }
    if request.max_tokens == 0 {
        return Err(refuse("max_tokens: must be at least 1"));
    }
    if request.model.is_empty()
        || request.model.len() > 256
        || request.model.chars().any(char::is_control)
    {
        return Err(refuse(
            "model: must be a plain name of at most 256 characters",
        ));
    }
    Ok(request)
}

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(request_id): Extension<RequestId>,
    body: Body,
) -> Response {
    let started = Instant::now();
    let body = match crate::handlers::read_body(body, state.options.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return reshape(error),
    };
    let request = match parse(&body) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };
    let model = request.model.clone();
    let stream = request.stream == Some(true);
    let abilities = state.abilities.get(&model).copied().unwrap_or_default();
    let mut chat = match to_chat(request, abilities) {
        Ok(chat) => chat,
        Err(message) => return bad_request(message),
    };
    if stream {
        // Anthropic streams always end with their usage.
        chat.stream_options = Some(llm_factory::core::StreamOptions {
            include_usage: Some(true),
            ..Default::default()
        });
        chat.stream = Some(true);
    }
    tracing::debug!(request_id = %request_id.0, model = %model, stream, "messages");
    metrics::count_request(stream);
    let options = ChatOptions::default();
    if !stream {
        let answer = crate::handlers::within_request_timeout(
            &state,
            state.factory.chat_with(chat, &options),
        )
        .await;
        return match answer {
            None => error_response(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "the request took longer than {:?}",
                    state.options.request_timeout
                ),
                None,
            ),
            Some(Err(error)) => {
                let error = ApiError::from(error);
                metrics::count_error(&error);
                reshape(error)
            }
            Some(Ok(answer)) => {
                metrics::observe_answer(started, answer.usage.as_ref());
                Json(from_chat(&answer, &model)).into_response()
            }
        };
    }
    let mut upstream = match state.factory.stream_with(chat, &options).await {
        Ok(upstream) => upstream,
        Err(error) => {
            let error = ApiError::from(error);
            metrics::count_error(&error);
            return reshape(error);
        }
    };
    // A failure before the first chunk is an HTTP error, not a stream.
    match upstream.next().await {
        Some(Ok(first)) => {
            metrics::observe_first_token(started);
            sse(first, upstream, model, started)
        }
        Some(Err(error)) => {
            let error = ApiError::from(error);
            metrics::count_error(&error);
            reshape(error)
        }
        None => error_response(
            StatusCode::BAD_GATEWAY,
            "the upstream stream ended without an answer",
            None,
        ),
    }
}

/// A local token estimate (see the module docs).
fn estimate(value: &Value) -> u64 {
    match value {
        Value::String(text) => {
            let ascii = text.bytes().filter(u8::is_ascii).count() as u64;
            let other = text.chars().filter(|c| !c.is_ascii()).count() as u64;
            ascii.div_ceil(4) + other
        }
        Value::Array(items) => items.iter().map(estimate).sum(),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "cache_control" && k.as_str() != "type")
            .map(|(_, v)| estimate(v))
            .sum(),
        _ => 1,
    }
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_tokens(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let body = match crate::handlers::read_body(body, state.options.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return reshape(error),
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => return bad_request("the request body must be a JSON object"),
        Err(e) => return bad_request(format!("the request body is not JSON: {e}")),
    };
    let Some(model) = value.get("model").and_then(Value::as_str) else {
        return bad_request("model: a model name is required");
    };
    if !state.factory.models().iter().any(|m| m == model) && !state.abilities.contains_key(model) {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!("model `{model}` is not served by this gateway"),
            None,
        );
    }
    let Some(messages) = value.get("messages").and_then(Value::as_array) else {
        return bad_request("messages: a list of messages is required");
    };
    let tokens = estimate(&Value::Array(messages.clone()))
        + 4 * messages.len() as u64
        + value.get("system").map_or(0, estimate)
        + value
            .get("tools")
            .map_or(0, |tools| (tools.to_string().len() as u64).div_ceil(4));
    Json(json!({"input_tokens": tokens.max(1)})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_for_anthropic_clients() {
        assert_eq!(anthropic_id("call_abc-1", "x"), "call_abc-1");
        assert_eq!(anthropic_id("tooluse:1.2/ü", "x"), "tooluse_1_2__");
        assert_eq!(anthropic_id("", "fallback"), "fallback");
    }

    #[test]
    fn finish_reasons_and_usage_map_to_anthropic() {
        assert_eq!(stop_reason(Some(&FinishReason::Stop), None), "end_turn");
        assert_eq!(stop_reason(Some(&FinishReason::Length), None), "max_tokens");
        assert_eq!(
            stop_reason(Some(&FinishReason::ToolCalls), None),
            "tool_use"
        );
        assert_eq!(
            stop_reason(Some(&FinishReason::ContentFilter), None),
            "refusal"
        );
        let mut extra = Map::new();
        extra.insert("stop_reason".into(), json!("stop_sequence"));
        assert_eq!(
            stop_reason(Some(&FinishReason::Stop), Some(&extra)),
            "stop_sequence"
        );
        let mut usage = Usage::new(1210, 30);
        let mut details = llm_factory::core::PromptTokensDetails::cached(1000);
        details.cache_write_tokens = Some(200);
        usage.prompt_tokens_details = Some(details);
        let mapped = usage_json(Some(&usage));
        assert_eq!(mapped["input_tokens"], 10);
        assert_eq!(mapped["cache_read_input_tokens"], 1000);
        assert_eq!(mapped["cache_creation_input_tokens"], 200);
        assert_eq!(mapped["output_tokens"], 30);
    }

    #[test]
    fn estimates_grow_with_the_prompt() {
        let short = estimate(&json!([{"role": "user", "content": "hi"}]));
        let long = estimate(&json!([{"role": "user", "content": "hi ".repeat(100)}]));
        assert!(long > short);
        assert!(estimate(&json!("你好世界")) >= 4);
    }
}
