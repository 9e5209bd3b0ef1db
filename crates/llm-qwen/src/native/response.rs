//! Native answers → [`ChatResponse`] and, frame by frame, [`ChatChunk`]s.
//!
//! Reference: DashScope text and multimodal generation responses
//! (`{"output": {"choices": [{"message", "finish_reason"}]}, "usage", "request_id"}`) and
//! their SSE streams: `id:` / `event:result` / `:HTTP_STATUS/200` / `data:{…}` (no space),
//! `finish_reason` the **string** `"null"` until the end, usage repeated and cumulative on
//! every event, no `[DONE]`, and `event:error` frames inside a 200 stream.

use std::collections::{BTreeMap, VecDeque};

use llm_core::{
    ChatChunk, ChatResponse, Choice, ChunkChoice, CompletionTokensDetails, Content, Delta, Error,
    Extra, FinishReason, FunctionCall, Message, PromptTokensDetails, Result, Role, SecretString,
    ToolCall, ToolCallDelta, ToolKind, Usage,
    kit::{Flow, StreamTranslator, unix_now},
    sse::Event,
};
use serde::Deserialize;
use serde_json::Value;

use crate::errors::{self, NativeError};

#[derive(Debug, Deserialize)]
pub(crate) struct NativeResponse {
    #[serde(default)]
    output: Option<Output>,
    #[serde(default)]
    usage: Option<NativeUsage>,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Output {
    #[serde(default)]
    choices: Option<Vec<NativeChoice>>,
    /// `result_format: text` answers (older models when the format is not forced).
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NativeChoice {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    message: NativeMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct NativeMessage {
    #[serde(default)]
    content: Option<NativeContent>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<NativeToolCall>>,
}

/// A string (text path) or `[{"text": …}, …]` (multimodal path).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NativeContent {
    Text(String),
    Parts(Vec<Value>),
}

impl NativeContent {
    fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct NativeToolCall {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<NativeFunction>,
}

#[derive(Debug, Default, Deserialize)]
struct NativeFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct NativeUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default)]
    output_tokens_details: Option<CompletionTokensDetails>,
    /// `image_tokens`, `video_tokens`, `audio_tokens`, …
    #[serde(flatten)]
    extra: Extra,
}

impl NativeUsage {
    fn into_usage(self) -> Usage {
        let mut usage = Usage::new(self.input_tokens, self.output_tokens);
        if let Some(total) = self.total_tokens.filter(|t| *t >= usage.total_tokens) {
            usage.total_tokens = total;
        }
        usage.prompt_tokens_details = self.prompt_tokens_details;
        usage.completion_tokens_details = self.output_tokens_details;
        usage.extra = self.extra;
        usage
    }
}

/// `"null"` (the string), null and `""` all mean "not finished".
fn finish_reason(value: Option<&str>) -> Option<FinishReason> {
    match value {
        None | Some("" | "null") => None,
        Some(reason) => Some(FinishReason::from(reason)),
    }
}

/// The id given to an answer: DashScope's request id.
fn answer_id(request_id: Option<&str>) -> String {
    format!("chatcmpl-{}", request_id.unwrap_or("dashscope"))
}

/// A whole native answer.
pub(crate) fn parse_response(
    provider: &str,
    body: &[u8],
    model: &str,
    secrets: &[&SecretString],
) -> Result<ChatResponse> {
    let parsed: NativeResponse = llm_core::kit::json_from_slice(body).map_err(|e| {
        let detail = if e.is_eof() {
            "the response body was cut off".to_owned()
        } else {
            format!("the response is not a DashScope generation result: {e}")
        };
        Error::protocol(provider.to_owned(), detail, Some(Box::new(e)))
    })?;
    if parsed.code.as_deref().is_some_and(|code| !code.is_empty()) {
        let error = NativeError {
            code: parsed.code,
            message: parsed.message,
            request_id: parsed.request_id,
        };
        return Err(errors::native(
            provider, None, None, &error, "error", secrets,
        ));
    }
    let output = parsed.output.ok_or_else(|| {
        Error::protocol(provider.to_owned(), "the response has no `output`", None)
    })?;
    let choices: Vec<Choice> = match (output.choices, output.text) {
        (Some(choices), _) if !choices.is_empty() => choices
            .into_iter()
            .enumerate()
            .map(|(position, choice)| {
                let index = choice.index.unwrap_or(u32::try_from(position).unwrap_or(0));
                let mut message = Message::assistant("");
                message.content = choice
                    .message
                    .content
                    .as_ref()
                    .map(|content| Content::Text(content.text()));
                message.reasoning_content = choice.message.reasoning_content;
                let calls: Vec<ToolCall> = choice
                    .message
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .map(|call| {
                        let function = call.function.unwrap_or_default();
                        ToolCall {
                            id: call.id.unwrap_or_default(),
                            kind: ToolKind::Function,
                            function: FunctionCall {
                                name: function.name.unwrap_or_default(),
                                arguments: function.arguments.unwrap_or_default(),
                            },
                        }
                    })
                    .collect();
                if !calls.is_empty() {
                    message.tool_calls = Some(calls);
                    if message
                        .content
                        .as_ref()
                        .is_some_and(|c| c.text().is_empty())
                    {
                        message.content = None;
                    }
                }
                Choice::new(
                    index,
                    message,
                    finish_reason(choice.finish_reason.as_deref()),
                )
            })
            .collect(),
        (_, Some(text)) => vec![Choice::new(
            0,
            Message::assistant(text),
            finish_reason(output.finish_reason.as_deref()),
        )],
        _ => {
            return Err(Error::protocol(
                provider.to_owned(),
                "the response has no choices",
                None,
            ));
        }
    };
    let mut response = ChatResponse::new(
        answer_id(parsed.request_id.as_deref()),
        unix_now(),
        model,
        choices,
    );
    response.usage = parsed.usage.map(NativeUsage::into_usage);
    Ok(response)
}

/// Per-choice stream state.
#[derive(Debug, Default)]
struct ChoiceState {
    finished: bool,
    /// Cumulative mode: what was already passed on.
    text: String,
    reasoning: String,
    /// Tool calls by index: whether id and name were passed on, and (cumulative mode) the
    /// arguments passed on.
    tools: BTreeMap<u32, (bool, String)>,
}

/// The per-stream translation state of the native API.
#[derive(Debug)]
pub(crate) struct NativeTranslator {
    provider: String,
    secrets: Vec<SecretString>,
    model: String,
    cumulative: bool,
    /// How many choices the answer has (`n`): the stream is whole when they all finished.
    choices_expected: usize,
    id: String,
    created: u64,
    started: bool,
    choices: BTreeMap<u32, ChoiceState>,
    usage: Option<Usage>,
}

impl NativeTranslator {
    pub(crate) fn new(
        provider: String,
        secrets: Vec<SecretString>,
        model: String,
        cumulative: bool,
        choices_expected: usize,
    ) -> Self {
        Self {
            provider,
            secrets,
            model,
            cumulative,
            choices_expected: choices_expected.max(1),
            id: String::new(),
            created: unix_now(),
            started: false,
            choices: BTreeMap::new(),
            usage: None,
        }
    }

    fn error(&self, data: &str) -> Error {
        let error = serde_json::from_str::<NativeError>(data).unwrap_or_default();
        let secrets: Vec<&SecretString> = self.secrets.iter().collect();
        errors::native(&self.provider, None, None, &error, data, &secrets)
    }

    fn complete(&self) -> bool {
        self.choices.values().filter(|c| c.finished).count() >= self.choices_expected
    }

    fn usage_chunk(&mut self, out: &mut VecDeque<ChatChunk>) {
        if let Some(usage) = self.usage.take() {
            let mut chunk = ChatChunk::new(
                self.id.clone(),
                self.created,
                self.model.clone(),
                Vec::new(),
            );
            chunk.usage = Some(usage);
            out.push_back(chunk);
        }
    }

    /// The new part of `now` given what was passed on (`sent`), in cumulative mode.
    fn delta(cumulative: bool, sent: &mut String, now: String) -> String {
        if !cumulative {
            return now;
        }
        let piece = now.strip_prefix(sent.as_str()).map(str::to_owned);
        match piece {
            Some(piece) => {
                sent.push_str(&piece);
                piece
            }
            // Not an extension of what was sent (the upstream revised it): send it whole.
            None => {
                sent.clone_from(&now);
                now
            }
        }
    }

    fn choice_delta(&mut self, position: usize, choice: NativeChoice) -> ChunkChoice {
        let index = choice.index.unwrap_or(u32::try_from(position).unwrap_or(0));
        let cumulative = self.cumulative;
        let state = self.choices.entry(index).or_default();
        let mut delta = Delta::default();
        if let Some(content) = &choice.message.content {
            let piece = Self::delta(cumulative, &mut state.text, content.text());
            if !piece.is_empty() {
                delta.content = Some(piece);
            }
        }
        if let Some(reasoning) = choice.message.reasoning_content {
            let piece = Self::delta(cumulative, &mut state.reasoning, reasoning);
            if !piece.is_empty() {
                delta.reasoning_content = Some(piece);
            }
        }
        let mut calls = Vec::new();
        for (position, call) in choice.message.tool_calls.into_iter().flatten().enumerate() {
            let tool_index = call.index.unwrap_or(u32::try_from(position).unwrap_or(0));
            let (introduced, sent) = state.tools.entry(tool_index).or_default();
            let function = call.function.unwrap_or_default();
            let first = !*introduced && call.id.as_deref().is_some_and(|id| !id.is_empty());
            let arguments = function
                .arguments
                .map(|args| Self::delta(cumulative, sent, args));
            if first {
                *introduced = true;
            } else if arguments.as_deref().is_none_or(str::is_empty) {
                // A repeat of the call's head, or an empty fragment: nothing to pass on.
                continue;
            }
            calls.push(ToolCallDelta::new(
                tool_index,
                first.then(|| call.id.clone().unwrap_or_default()),
                first
                    .then_some(function.name)
                    .flatten()
                    .filter(|name| !name.is_empty()),
                arguments,
            ));
        }
        if !calls.is_empty() {
            delta.tool_calls = Some(calls);
        }
        let finish = finish_reason(choice.finish_reason.as_deref());
        if finish.is_some() {
            state.finished = true;
        }
        if !self.started {
            delta.role = Some(Role::Assistant);
        }
        ChunkChoice::new(index, delta, finish)
    }
}

impl StreamTranslator for NativeTranslator {
    fn provider(&self) -> &str {
        &self.provider
    }

    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        if event.event.as_deref() == Some("error") {
            return Err(self.error(data));
        }
        let parsed: NativeResponse = serde_json::from_str(data).map_err(|e| {
            Error::protocol(
                self.provider.clone(),
                format!("a stream frame is not a DashScope generation result: {e}"),
                Some(Box::new(e)),
            )
        })?;
        if parsed.code.as_deref().is_some_and(|code| !code.is_empty()) && parsed.output.is_none() {
            return Err(self.error(data));
        }
        if self.id.is_empty() {
            self.id = answer_id(parsed.request_id.as_deref());
        }
        if let Some(usage) = parsed.usage {
            // Cumulative: the last one is the total.
            self.usage = Some(usage.into_usage());
        }
        let choices = match parsed.output {
            Some(Output {
                choices: Some(choices),
                ..
            }) => choices,
            Some(Output {
                text: Some(text),
                finish_reason,
                ..
            }) => vec![NativeChoice {
                index: Some(0),
                message: NativeMessage {
                    content: Some(NativeContent::Text(text)),
                    ..NativeMessage::default()
                },
                finish_reason,
            }],
            _ => Vec::new(),
        };
        let mut deltas = Vec::with_capacity(choices.len());
        for (position, choice) in choices.into_iter().enumerate() {
            let delta = self.choice_delta(position, choice);
            let d = &delta.delta;
            if d.content.is_some()
                || d.reasoning_content.is_some()
                || d.tool_calls.is_some()
                || delta.finish_reason.is_some()
            {
                deltas.push(delta);
            }
        }
        if !deltas.is_empty() {
            self.started = true;
            out.push_back(ChatChunk::new(
                self.id.clone(),
                self.created,
                self.model.clone(),
                deltas,
            ));
        }
        if self.complete() {
            self.usage_chunk(out);
            return Ok(Flow::Done);
        }
        Ok(Flow::Continue)
    }

    fn on_end(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<()> {
        // Fewer choices than asked (a model that ignores `n`) is whole when each finished.
        if !self.choices.is_empty() && self.choices.values().all(|c| c.finished) {
            self.usage_chunk(out);
            Ok(())
        } else {
            Err(Error::protocol(
                self.provider.clone(),
                "the stream ended before a finish_reason",
                None,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use llm_core::ErrorKind;

    use super::*;

    fn event(kind: &str, data: &str) -> Event {
        Event {
            event: Some(kind.to_owned()),
            data: data.to_owned(),
            ..Event::default()
        }
    }

    fn run(t: &mut NativeTranslator, frames: &[&str]) -> (Vec<ChatChunk>, Flow) {
        let mut out = VecDeque::new();
        let mut flow = Flow::Continue;
        for frame in frames {
            flow = t.on_event(&event("result", frame), &mut out).unwrap();
        }
        (out.into_iter().collect(), flow)
    }

    #[test]
    fn cumulative_output_is_diffed() {
        let mut t = NativeTranslator::new("qwen".into(), Vec::new(), "qwen-plus".into(), true, 1);
        let (chunks, flow) = run(
            &mut t,
            &[
                r#"{"output":{"choices":[{"message":{"content":"It","role":"assistant"},"finish_reason":"null"}]},"usage":{"total_tokens":53,"output_tokens":1,"input_tokens":52},"request_id":"r1"}"#,
                r#"{"output":{"choices":[{"message":{"content":"It is 21°C","role":"assistant"},"finish_reason":"null"}]},"usage":{"total_tokens":56,"output_tokens":4,"input_tokens":52},"request_id":"r1"}"#,
                r#"{"output":{"choices":[{"message":{"content":"It is 21°C in Paris.","role":"assistant"},"finish_reason":"stop"}]},"usage":{"total_tokens":61,"output_tokens":9,"input_tokens":52},"request_id":"r1"}"#,
            ],
        );
        assert_eq!(flow, Flow::Done);
        let texts: Vec<_> = chunks.iter().filter_map(|c| c.content()).collect();
        assert_eq!(texts, ["It", " is 21°C", " in Paris."]);
        assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
        assert_eq!(chunks[2].choices[0].finish_reason, Some(FinishReason::Stop));
        let usage = chunks[3].usage.as_ref().unwrap();
        assert!(chunks[3].choices.is_empty());
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (52, 9, 61)
        );
        assert_eq!(chunks[0].id, "chatcmpl-r1");
    }

    #[test]
    fn several_choices_end_when_all_have_finished() {
        let mut t = NativeTranslator::new("qwen".into(), Vec::new(), "qwen-plus".into(), false, 2);
        let (chunks, flow) = run(
            &mut t,
            &[
                r#"{"output":{"choices":[{"index":0,"message":{"content":"A"},"finish_reason":"stop"}]},"request_id":"r"}"#,
            ],
        );
        assert_eq!(flow, Flow::Continue, "choice 1 has not even started");
        assert_eq!(chunks.len(), 1);
        let (_, flow) = run(
            &mut t,
            &[
                r#"{"output":{"choices":[{"index":1,"message":{"content":"B"},"finish_reason":"stop"}]},"usage":{"input_tokens":3,"output_tokens":2},"request_id":"r"}"#,
            ],
        );
        assert_eq!(flow, Flow::Done);
        // A model that ignores `n` answers one choice: whole at the end of the body.
        let mut one =
            NativeTranslator::new("qwen".into(), Vec::new(), "qwen-plus".into(), false, 3);
        let (_, flow) = run(
            &mut one,
            &[
                r#"{"output":{"choices":[{"message":{"content":"A"},"finish_reason":"stop"}]},"request_id":"r"}"#,
            ],
        );
        assert_eq!(flow, Flow::Continue);
        assert!(one.on_end(&mut VecDeque::new()).is_ok());
    }

    #[test]
    fn error_events_and_data_inspection() {
        let mut t = NativeTranslator::new("qwen".into(), Vec::new(), "qwen-plus".into(), false, 1);
        let mut out = VecDeque::new();
        let err = t
            .on_event(
                &event("error", r#"{"code":"DataInspectionFailed","message":"Output data may contain inappropriate content.","request_id":"r"}"#),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ContentFiltered);
        let mut out = VecDeque::new();
        assert!(t.on_end(&mut out).is_err(), "no finish yet: cut off");
    }
}
