//! Folding a [`ChatStream`] into a [`ChatResponse`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::StreamExt;

use crate::{
    ChatChunk, ChatResponse, ChatStream, Choice, Error, FinishReason, FunctionCall, Message,
    Result, Role, ToolCall, ToolKind, Usage,
};

/// Extension methods for [`ChatStream`].
#[async_trait]
pub trait ChatStreamExt {
    /// Read the whole stream and fold it into one response: text, reasoning and refusals
    /// concatenated per choice, tool-call fragments reassembled by `index`, the last
    /// `finish_reason` per choice and the usage of the final chunk.
    ///
    /// # Errors
    ///
    /// The first `Err` item of the stream, or [`ErrorKind::Protocol`](crate::ErrorKind)
    /// when the stream ends without any chunk or a tool call never got its id or name.
    async fn collect_response(self) -> Result<ChatResponse>;
}

#[async_trait]
impl ChatStreamExt for ChatStream {
    async fn collect_response(mut self) -> Result<ChatResponse> {
        let mut collector = Collector::default();
        while let Some(chunk) = self.next().await {
            collector.push(chunk?);
        }
        collector.finish()
    }
}

/// Folds chunks into a response; [`ChatStreamExt::collect_response`] drives it.
#[derive(Debug, Default)]
pub struct Collector {
    seen_chunk: bool,
    response: ChatResponse,
    choices: BTreeMap<u32, ChoiceState>,
    usage: Option<Usage>,
}

#[derive(Debug, Default)]
struct ChoiceState {
    content: Option<String>,
    reasoning: Option<String>,
    refusal: Option<String>,
    tool_calls: BTreeMap<u32, PartialCall>,
    finish_reason: Option<FinishReason>,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

fn append(target: &mut Option<String>, piece: Option<String>) {
    if let Some(piece) = piece {
        target.get_or_insert_with(String::new).push_str(&piece);
    }
}

impl Collector {
    /// Add one chunk.
    pub fn push(&mut self, chunk: ChatChunk) {
        self.seen_chunk = true;
        let response = &mut self.response;
        if response.id.is_empty() && !chunk.id.is_empty() {
            response.id = chunk.id;
        }
        if response.model.is_empty() && !chunk.model.is_empty() {
            response.model = chunk.model;
        }
        if response.created == 0 {
            response.created = chunk.created;
        }
        if chunk.system_fingerprint.is_some() {
            response.system_fingerprint = chunk.system_fingerprint;
        }
        if chunk.service_tier.is_some() {
            response.service_tier = chunk.service_tier;
        }
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in chunk.choices {
            let state = self.choices.entry(choice.index).or_default();
            let delta = choice.delta;
            append(&mut state.content, delta.content);
            append(&mut state.reasoning, delta.reasoning_content);
            append(&mut state.refusal, delta.refusal);
            for call in delta.tool_calls.unwrap_or_default() {
                let partial = state.tool_calls.entry(call.index).or_default();
                if let Some(id) = call.id.filter(|id| !id.is_empty()) {
                    partial.id = Some(id);
                }
                if let Some(function) = call.function {
                    if let Some(name) = function.name.filter(|name| !name.is_empty()) {
                        partial.name = Some(name);
                    }
                    if let Some(arguments) = function.arguments {
                        partial.arguments.push_str(&arguments);
                    }
                }
            }
            if choice.finish_reason.is_some() {
                state.finish_reason = choice.finish_reason;
            }
        }
    }

    /// The folded response.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`](crate::ErrorKind) when no chunk was pushed or a tool call
    /// lacks its id or name.
    pub fn finish(self) -> Result<ChatResponse> {
        if !self.seen_chunk {
            return Err(Error::protocol(
                "stream",
                "the stream ended without any chunk",
                None,
            ));
        }
        let mut response = self.response;
        response.object = ChatResponse::OBJECT.to_owned();
        response.usage = self.usage;
        for (index, state) in self.choices {
            let mut tool_calls = Vec::with_capacity(state.tool_calls.len());
            for (call_index, call) in state.tool_calls {
                let (Some(id), Some(name)) = (call.id, call.name) else {
                    return Err(Error::protocol(
                        "stream",
                        format!("tool call {call_index} of choice {index} has no id or name"),
                        None,
                    ));
                };
                tool_calls.push(ToolCall {
                    id,
                    kind: ToolKind::Function,
                    function: FunctionCall {
                        name,
                        arguments: call.arguments,
                    },
                });
            }
            let message = Message {
                content: state.content.map(Into::into),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                reasoning_content: state.reasoning,
                refusal: state.refusal,
                ..Message::new(Role::Assistant, String::new())
            };
            response
                .choices
                .push(Choice::new(index, message, state.finish_reason));
        }
        Ok(response)
    }
}
