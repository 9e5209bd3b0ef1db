//! Converse answers → [`ChatResponse`], and ConverseStream events → [`ChatChunk`]s.

use std::collections::{HashMap, VecDeque};

use aws_sdk_bedrockruntime::{
    operation::converse::ConverseOutput as Answer,
    types::{
        ContentBlock, ContentBlockDelta, ContentBlockStart, ConverseOutput, ConverseStreamOutput,
        ReasoningContentBlock, ReasoningContentBlockDelta, StopReason, TokenUsage,
    },
};
use llm_core::{
    ChatChunk, ChatResponse, Choice, ChunkChoice, Content, Delta, Error, FinishReason,
    FunctionCall, FunctionCallDelta, Message, PromptTokensDetails, Result, Role, ToolCall,
    ToolCallDelta, ToolKind, Usage, kit::unix_now,
};
use serde_json::{Value, json};

use crate::document::to_value;

/// stopReason → finish_reason (`../shared/wire-formats.md` §7.1).
fn finish_reason(reason: &StopReason, provider: &str) -> Result<FinishReason> {
    Ok(match reason {
        StopReason::EndTurn | StopReason::StopSequence => FinishReason::Stop,
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => FinishReason::Length,
        StopReason::ToolUse => FinishReason::ToolCalls,
        StopReason::GuardrailIntervened | StopReason::ContentFiltered => {
            FinishReason::ContentFilter
        }
        StopReason::MalformedModelOutput | StopReason::MalformedToolUse => {
            tracing::warn!(
                provider,
                stop_reason = reason.as_str(),
                "Bedrock reported malformed model output"
            );
            FinishReason::Stop
        }
        // The SDK fills a missing required field with a placeholder ("no value was set"):
        // real stop reasons are snake_case words.
        other
            if other.as_str().is_empty()
                || !other
                    .as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            return Err(Error::protocol(
                provider.to_owned(),
                "the answer has no stopReason (cut off or malformed)",
                None,
            ));
        }
        other => FinishReason::Other(other.as_str().to_owned()),
    })
}

/// For a stop on a stop sequence, the extension fields of the choice that say so (OpenAI's
/// `stop` cannot): `stop_reason: "stop_sequence"`, and `stop_sequence` when Bedrock named
/// it in `additionalModelResponseFields`.
fn stop_extras(
    reason: &StopReason,
    fields: Option<&aws_smithy_types::Document>,
) -> Option<serde_json::Map<String, Value>> {
    if !matches!(reason, StopReason::StopSequence) {
        return None;
    }
    let mut extra = serde_json::Map::new();
    extra.insert("stop_reason".into(), Value::from("stop_sequence"));
    if let Some(sequence) = fields.map(to_value).and_then(|v| {
        v.get("stop_sequence")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }) {
        extra.insert("stop_sequence".into(), Value::from(sequence));
    }
    Some(extra)
}

/// Converse usage → OpenAI usage: `inputTokens` excludes cache reads and writes, OpenAI's
/// `prompt_tokens` includes them.
fn usage(tokens: &TokenUsage) -> Usage {
    let count = |n: i32| u64::try_from(n).unwrap_or(0);
    let read = tokens.cache_read_input_tokens.map_or(0, count);
    let write = tokens.cache_write_input_tokens.map_or(0, count);
    let mut usage = Usage::new(
        count(tokens.input_tokens) + read + write,
        count(tokens.output_tokens),
    );
    if tokens.cache_read_input_tokens.is_some() || tokens.cache_write_input_tokens.is_some() {
        let mut details = PromptTokensDetails::cached(read);
        details.cache_write_tokens = Some(write);
        usage.prompt_tokens_details = Some(details);
    }
    usage
}

/// A chat-completion id from the AWS request id (or the clock when there is none).
pub(crate) fn answer_id(request_id: Option<&str>) -> String {
    match request_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-bedrock-{:x}", unix_now()),
    }
}

/// The caller's name for a tool Bedrock names `name`.
fn caller_name(names: &HashMap<String, String>, name: &str) -> String {
    names.get(name).cloned().unwrap_or_else(|| name.to_owned())
}

/// A Converse answer as a chat completion. An answer without a message or a stop reason
/// (a body cut short, or not a Converse answer) is a Protocol error, never an empty reply.
pub(crate) fn chat_response(
    answer: Answer,
    id: String,
    model: &str,
    names: &HashMap<String, String>,
    provider: &str,
) -> Result<ChatResponse> {
    let Some(ConverseOutput::Message(message)) = answer.output else {
        return Err(Error::protocol(
            provider.to_owned(),
            "the answer has no output message (cut off or malformed)",
            None,
        ));
    };
    let finish = finish_reason(&answer.stop_reason, provider)?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut calls = Vec::new();
    for block in message.content {
        match block {
            ContentBlock::Text(piece) => text.push_str(&piece),
            ContentBlock::ReasoningContent(ReasoningContentBlock::ReasoningText(block)) => {
                reasoning.push_str(&block.text);
                thinking_blocks.push(json!({
                    "type": "thinking",
                    "thinking": block.text,
                    "signature": block.signature,
                }));
            }
            ContentBlock::ReasoningContent(ReasoningContentBlock::RedactedContent(data)) => {
                thinking_blocks.push(json!({
                    "type": "redacted_thinking",
                    "data": aws_smithy_types::base64::encode(data.as_ref()),
                }));
            }
            ContentBlock::ToolUse(call) => calls.push(ToolCall {
                id: call.tool_use_id,
                kind: ToolKind::Function,
                function: FunctionCall {
                    name: caller_name(names, &call.name),
                    arguments: to_value(&call.input).to_string(),
                },
            }),
            _ => {}
        }
    }
    let mut reply = Message::assistant(String::new());
    reply.content = (!text.is_empty() || calls.is_empty()).then_some(Content::Text(text));
    reply.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    reply.tool_calls = (!calls.is_empty()).then_some(calls);
    if !thinking_blocks.is_empty() {
        reply
            .extra
            .insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    let mut choice = Choice::new(0, reply, Some(finish));
    if let Some(extra) = stop_extras(
        &answer.stop_reason,
        answer.additional_model_response_fields.as_ref(),
    ) {
        choice.extra = extra;
    }
    let mut response = ChatResponse::new(id, unix_now(), model.to_owned(), vec![choice]);
    response.usage = answer.usage.as_ref().map(usage);
    Ok(response)
}

/// What one ConverseStream event means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// More events follow.
    More,
    /// `metadata` arrived: the answer is whole.
    Done,
}

/// ConverseStream events → chunks. Tool calls are keyed by `contentBlockIndex` (id and
/// name come on `contentBlockStart`, input as partial JSON on the deltas) and numbered
/// 0, 1, … across the answer for OpenAI's `index`.
#[derive(Debug)]
pub(crate) struct Translator {
    provider: String,
    id: String,
    model: String,
    created: u64,
    names: HashMap<String, String>,
    started: bool,
    /// contentBlockIndex → OpenAI tool-call index.
    calls: HashMap<i32, u32>,
    /// contentBlockIndex → reasoning text so far (given back with its signature).
    reasoning: HashMap<i32, String>,
    stopped: bool,
}

impl Translator {
    pub(crate) fn new(
        provider: String,
        id: String,
        model: String,
        names: HashMap<String, String>,
    ) -> Self {
        Self {
            provider,
            id,
            model,
            created: unix_now(),
            names,
            started: false,
            calls: HashMap::new(),
            reasoning: HashMap::new(),
            stopped: false,
        }
    }

    /// The provider name used in errors.
    pub(crate) fn provider(&self) -> &str {
        &self.provider
    }

    fn chunk(&mut self, mut delta: Delta, finish: Option<FinishReason>) -> ChatChunk {
        if !self.started {
            delta.role = Some(Role::Assistant);
            self.started = true;
        }
        ChatChunk::new(
            self.id.clone(),
            self.created,
            self.model.clone(),
            vec![ChunkChoice::new(0, delta, finish)],
        )
    }

    fn protocol(&self, detail: impl Into<String>) -> Error {
        Error::protocol(self.provider.clone(), detail, None)
    }

    /// Translate one event.
    pub(crate) fn on_event(
        &mut self,
        event: ConverseStreamOutput,
        out: &mut VecDeque<ChatChunk>,
    ) -> Result<Step> {
        match event {
            // The role goes out with the first content, so that an exception before any
            // content fails the call (and another deployment can be tried).
            ConverseStreamOutput::MessageStart(_) => {}
            ConverseStreamOutput::ContentBlockStart(start) => {
                if let Some(ContentBlockStart::ToolUse(call)) = start.start {
                    let index = u32::try_from(self.calls.len()).unwrap_or(u32::MAX);
                    self.calls.insert(start.content_block_index, index);
                    let name = caller_name(&self.names, &call.name);
                    let mut delta = Delta::default();
                    delta.tool_calls = Some(vec![ToolCallDelta::new(
                        index,
                        Some(call.tool_use_id),
                        Some(name),
                        Some(String::new()),
                    )]);
                    let chunk = self.chunk(delta, None);
                    out.push_back(chunk);
                }
            }
            ConverseStreamOutput::ContentBlockDelta(event) => {
                let block = event.content_block_index;
                let mut delta = Delta::default();
                match event.delta {
                    Some(ContentBlockDelta::Text(text)) => {
                        if text.is_empty() {
                            return Ok(Step::More);
                        }
                        delta.content = Some(text);
                    }
                    Some(ContentBlockDelta::ToolUse(input)) => {
                        let Some(&index) = self.calls.get(&block) else {
                            return Err(self.protocol(format!(
                                "tool input for content block {block} arrived before its contentBlockStart"
                            )));
                        };
                        let mut call = ToolCallDelta::new(index, None, None, None);
                        call.function = Some(FunctionCallDelta {
                            name: None,
                            arguments: Some(input.input),
                        });
                        delta.tool_calls = Some(vec![call]);
                    }
                    Some(ContentBlockDelta::ReasoningContent(reasoning)) => match reasoning {
                        ReasoningContentBlockDelta::Text(text) => {
                            self.reasoning.entry(block).or_default().push_str(&text);
                            delta.reasoning_content = Some(text);
                        }
                        ReasoningContentBlockDelta::Signature(signature) => {
                            let text = self.reasoning.remove(&block).unwrap_or_default();
                            delta.extra.insert(
                                "thinking_blocks".into(),
                                json!([{"type": "thinking", "thinking": text, "signature": signature}]),
                            );
                        }
                        ReasoningContentBlockDelta::RedactedContent(data) => {
                            delta.extra.insert(
                                "thinking_blocks".into(),
                                json!([{
                                    "type": "redacted_thinking",
                                    "data": aws_smithy_types::base64::encode(data.as_ref()),
                                }]),
                            );
                        }
                        _ => return Ok(Step::More),
                    },
                    _ => return Ok(Step::More),
                }
                let chunk = self.chunk(delta, None);
                out.push_back(chunk);
            }
            ConverseStreamOutput::MessageStop(stop) => {
                let finish = finish_reason(&stop.stop_reason, &self.provider)?;
                let mut chunk = self.chunk(Delta::default(), Some(finish));
                if let Some(extra) = stop_extras(
                    &stop.stop_reason,
                    stop.additional_model_response_fields.as_ref(),
                ) {
                    chunk.choices[0].extra = extra;
                }
                out.push_back(chunk);
                self.stopped = true;
            }
            ConverseStreamOutput::Metadata(metadata) => {
                if let Some(tokens) = &metadata.usage {
                    let mut chunk = ChatChunk::new(
                        self.id.clone(),
                        self.created,
                        self.model.clone(),
                        Vec::new(),
                    );
                    chunk.usage = Some(usage(tokens));
                    out.push_back(chunk);
                }
                // Metadata comes after messageStop; before it, the answer is not whole.
                if self.stopped {
                    return Ok(Step::Done);
                }
            }
            _ => {}
        }
        Ok(Step::More)
    }

    /// The stream ended: whole when `messageStop` came (metadata may be missing).
    pub(crate) fn on_end(&self) -> Result<()> {
        if self.stopped {
            Ok(())
        } else {
            Err(self.protocol("the stream ended before messageStop (cut off)"))
        }
    }
}
