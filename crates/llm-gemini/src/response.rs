//! Gemini `GenerateContentResponse` → [`ChatResponse`], and SSE frames (`alt=sse`, each a
//! whole response holding only the new parts, no `[DONE]`) → [`ChatChunk`]s.
//!
//! Text parts become `content`, `thought: true` parts `reasoning_content`, `functionCall`
//! parts tool calls (arguments whole, as JSON text; ids Gemini's own or made stable here,
//! carrying the part's thought signature; streamed parallel calls get distinct increasing
//! indexes). Finish reasons: `STOP` → `tool_calls` when the candidate called a function,
//! else `stop`; `MAX_TOKENS` / `CONTINUATION` → `length`; the safety family → `content_filter`;
//! `MALFORMED_FUNCTION_CALL` and the other tool and format failures are kept as they are
//! (`malformed_function_call`, …), never reported as a clean `stop`. A blocked prompt (no
//! candidates, `promptFeedback.blockReason`) is a [`ErrorKind::ContentFiltered`] error.

use std::collections::{BTreeMap, VecDeque};

use llm_core::{
    ChatChunk, ChatResponse, Choice, ChunkChoice, CompletionTokensDetails, Delta, Error, ErrorKind,
    FinishReason, FunctionCall, Message, PromptTokensDetails, Result, Role, SecretString, ToolCall,
    ToolCallDelta, ToolKind, UpstreamError, Usage,
    kit::{Flow, StreamTranslator, unix_now},
    sse::Event,
};
use serde::Deserialize;
use serde_json::Value;

use crate::{errors, ids};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default, alias = "prompt_feedback")]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default, alias = "usage_metadata")]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default, alias = "model_version")]
    model_version: Option<String>,
    #[serde(default, alias = "response_id")]
    response_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default, alias = "finish_reason")]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<ResponsePart>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponsePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default, alias = "function_call")]
    function_call: Option<ResponseCall>,
    #[serde(default, alias = "thought_signature")]
    thought_signature: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ResponseCall {
    #[serde(default)]
    name: String,
    #[serde(default)]
    args: Option<Value>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default, alias = "block_reason")]
    block_reason: Option<String>,
    #[serde(default, alias = "block_reason_message")]
    block_reason_message: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default, alias = "prompt_token_count")]
    prompt_token_count: u64,
    #[serde(default, alias = "candidates_token_count")]
    candidates_token_count: u64,
    #[serde(default, alias = "thoughts_token_count")]
    thoughts_token_count: u64,
    #[serde(default, alias = "tool_use_prompt_token_count")]
    tool_use_prompt_token_count: u64,
    #[serde(default, alias = "cached_content_token_count")]
    cached_content_token_count: Option<u64>,
    #[serde(default, alias = "total_token_count")]
    total_token_count: Option<u64>,
}

impl UsageMetadata {
    fn usage(&self) -> Usage {
        let prompt = self.prompt_token_count + self.tool_use_prompt_token_count;
        // On the Gemini API thoughts are not inside candidatesTokenCount; when the total
        // says they are, do not count them twice.
        let thoughts_included = self.total_token_count
            == Some(prompt + self.candidates_token_count)
            && self.thoughts_token_count > 0;
        let completion = if thoughts_included {
            self.candidates_token_count
        } else {
            self.candidates_token_count + self.thoughts_token_count
        };
        let mut usage = Usage::new(prompt, completion);
        if let Some(total) = self.total_token_count.filter(|t| *t >= prompt + completion) {
            usage.total_tokens = total;
        }
        if let Some(cached) = self.cached_content_token_count {
            let mut details = PromptTokensDetails::default();
            details.cached_tokens = Some(cached);
            usage.prompt_tokens_details = Some(details);
        }
        if self.thoughts_token_count > 0 {
            let mut details = CompletionTokensDetails::default();
            details.reasoning_tokens = Some(self.thoughts_token_count);
            usage.completion_tokens_details = Some(details);
        }
        usage
    }
}

/// A finish reason, given whether the candidate called a function.
fn finish_reason(reason: &str, called: bool) -> FinishReason {
    match reason {
        "STOP" if called => FinishReason::ToolCalls,
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" | "CONTINUATION" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "IMAGE_OTHER"
        | "NO_IMAGE"
        | "MODEL_ARMOR"
        | "ESCALATION"
        | "OTHER" => FinishReason::ContentFilter,
        "FINISH_REASON_UNSPECIFIED" if called => FinishReason::ToolCalls,
        "FINISH_REASON_UNSPECIFIED" => FinishReason::Stop,
        // MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS,
        // MISSING_THOUGHT_SIGNATURE, MALFORMED_RESPONSE, …: a failed answer, not a clean stop.
        other => FinishReason::Other(other.to_ascii_lowercase()),
    }
}

/// A short, stable piece of the response id for the ids made here.
fn id_stem(response_id: Option<&str>) -> String {
    response_id
        .map(|id| {
            id.chars()
                .filter(char::is_ascii_alphanumeric)
                .take(12)
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{:x}", unix_now()))
}

fn call_id(call: &ResponseCall, stem: &str, number: usize, signature: Option<&str>) -> String {
    let base = match call.id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("{}{stem}_{number}", ids::GENERATED),
    };
    ids::encode(&base, signature)
}

fn arguments(call: &ResponseCall) -> String {
    call.args
        .as_ref()
        .map_or_else(|| "{}".to_owned(), Value::to_string)
}

/// A blocked prompt: 200, no candidates, `promptFeedback.blockReason`.
fn blocked(provider: &str, feedback: Option<&PromptFeedback>) -> Option<Error> {
    let reason = feedback?.block_reason.as_deref()?;
    let message = feedback
        .and_then(|f| f.block_reason_message.clone())
        .unwrap_or_else(|| format!("the prompt was blocked ({reason})"));
    let mut upstream = UpstreamError::new(
        provider.to_owned(),
        None,
        ErrorKind::ContentFiltered,
        message,
    );
    upstream.code = Some(reason.to_owned());
    Some(Error::from(upstream))
}

/// The error an in-band `{"error": …}` object (anywhere in a frame) carries.
fn in_band(provider: &str, data: &str, secrets: &[&SecretString]) -> Option<Error> {
    if !data.contains("\"error\"") {
        return None;
    }
    let value: Value = serde_json::from_str(data).ok()?;
    let error = match &value {
        Value::Array(items) => items.iter().find_map(|item| item.get("error"))?,
        other => other.get("error")?,
    };
    Some(errors::from_error_object(
        provider, None, None, error, secrets,
    ))
}

/// A whole answer.
pub(crate) fn parse_response(
    provider: &str,
    body: &[u8],
    model: &str,
    secrets: &[&SecretString],
) -> Result<ChatResponse> {
    let text = String::from_utf8_lossy(body);
    if let Some(error) = in_band(provider, &text, secrets) {
        return Err(error);
    }
    let parsed: GenerateResponse = llm_core::kit::json_from_slice(body).map_err(|e| {
        let detail = if e.is_eof() {
            "the response body was cut off".to_owned()
        } else {
            format!("the response is not a GenerateContentResponse: {e}")
        };
        Error::protocol(provider.to_owned(), detail, Some(Box::new(e)))
    })?;
    if parsed.candidates.is_empty() {
        return Err(
            blocked(provider, parsed.prompt_feedback.as_ref()).unwrap_or_else(|| {
                Error::protocol(provider.to_owned(), "the response has no candidates", None)
            }),
        );
    }
    let stem = id_stem(parsed.response_id.as_deref());
    let mut number = 0;
    let choices = parsed
        .candidates
        .into_iter()
        .enumerate()
        .map(|(position, candidate)| {
            let mut text = String::new();
            let mut reasoning = String::new();
            let mut calls = Vec::new();
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(call) = &part.function_call {
                    calls.push(ToolCall {
                        id: call_id(call, &stem, number, part.thought_signature.as_deref()),
                        kind: ToolKind::Function,
                        function: FunctionCall {
                            name: call.name.clone(),
                            arguments: arguments(call),
                        },
                    });
                    number += 1;
                } else if let Some(piece) = part.text {
                    if part.thought == Some(true) {
                        reasoning.push_str(&piece);
                    } else {
                        text.push_str(&piece);
                    }
                }
            }
            let called = !calls.is_empty();
            let mut message = Message::assistant(text);
            if called {
                if message.text().is_some_and(|t| t.is_empty()) {
                    message.content = None;
                }
                message.tool_calls = Some(calls);
            }
            if !reasoning.is_empty() {
                message.reasoning_content = Some(reasoning);
            }
            let index = candidate
                .index
                .unwrap_or(u32::try_from(position).unwrap_or(0));
            let finish = candidate
                .finish_reason
                .as_deref()
                .map(|reason| finish_reason(reason, called));
            Choice::new(index, message, finish)
        })
        .collect();
    let mut response = ChatResponse::new(
        parsed
            .response_id
            .map_or_else(|| format!("chatcmpl-{stem}"), |id| format!("chatcmpl-{id}")),
        unix_now(),
        parsed.model_version.unwrap_or_else(|| model.to_owned()),
        choices,
    );
    response.usage = parsed.usage_metadata.as_ref().map(UsageMetadata::usage);
    Ok(response)
}

/// Per-candidate stream state.
#[derive(Debug, Default)]
struct CandidateState {
    /// Tool calls passed on so far (the next one's `index`).
    calls: u32,
    finished: bool,
}

/// The stream translator.
#[derive(Debug)]
pub(crate) struct GeminiTranslator {
    provider: String,
    secrets: Vec<SecretString>,
    model: String,
    id: String,
    stem: String,
    created: u64,
    started: bool,
    /// Calls numbered across the answer, for the ids made here.
    numbered: usize,
    candidates: BTreeMap<u32, CandidateState>,
    usage: Option<UsageMetadata>,
}

impl GeminiTranslator {
    pub(crate) fn new(provider: String, secrets: Vec<SecretString>, model: String) -> Self {
        Self {
            provider,
            secrets,
            model,
            id: String::new(),
            stem: String::new(),
            created: unix_now(),
            started: false,
            numbered: 0,
            candidates: BTreeMap::new(),
            usage: None,
        }
    }

    fn usage_chunk(&mut self, out: &mut VecDeque<ChatChunk>) {
        if let Some(usage) = self.usage.take() {
            let mut chunk = ChatChunk::new(
                self.id.clone(),
                self.created,
                self.model.clone(),
                Vec::new(),
            );
            chunk.usage = Some(usage.usage());
            out.push_back(chunk);
        }
    }
}

impl StreamTranslator for GeminiTranslator {
    fn provider(&self) -> &str {
        &self.provider
    }

    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let secrets: Vec<&SecretString> = self.secrets.iter().collect();
        if let Some(error) = in_band(&self.provider, data, &secrets) {
            return Err(error);
        }
        let frame: GenerateResponse = serde_json::from_str(data).map_err(|e| {
            Error::protocol(
                self.provider.clone(),
                format!("a stream frame is not a GenerateContentResponse: {e}"),
                Some(Box::new(e)),
            )
        })?;
        if self.id.is_empty() {
            self.stem = id_stem(frame.response_id.as_deref());
            self.id = frame.response_id.as_deref().map_or_else(
                || format!("chatcmpl-{}", self.stem),
                |id| format!("chatcmpl-{id}"),
            );
            if let Some(version) = &frame.model_version {
                self.model.clone_from(version);
            }
        }
        if frame.usage_metadata.is_some() {
            self.usage = frame.usage_metadata;
        }
        if frame.candidates.is_empty() {
            if let Some(error) = blocked(&self.provider, frame.prompt_feedback.as_ref()) {
                return Err(error);
            }
            return Ok(Flow::Continue);
        }
        let mut choices = Vec::new();
        for (position, candidate) in frame.candidates.into_iter().enumerate() {
            let index = candidate
                .index
                .unwrap_or(u32::try_from(position).unwrap_or(0));
            let state = self.candidates.entry(index).or_default();
            let mut delta = Delta::default();
            let mut calls = Vec::new();
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(call) = &part.function_call {
                    let id = call_id(
                        call,
                        &self.stem,
                        self.numbered,
                        part.thought_signature.as_deref(),
                    );
                    self.numbered += 1;
                    calls.push(ToolCallDelta::new(
                        state.calls,
                        Some(id),
                        Some(call.name.clone()),
                        Some(arguments(call)),
                    ));
                    state.calls += 1;
                } else if let Some(piece) = part.text.filter(|t| !t.is_empty()) {
                    let slot = if part.thought == Some(true) {
                        &mut delta.reasoning_content
                    } else {
                        &mut delta.content
                    };
                    slot.get_or_insert_with(String::new).push_str(&piece);
                }
            }
            if !calls.is_empty() {
                delta.tool_calls = Some(calls);
            }
            let finish = candidate
                .finish_reason
                .as_deref()
                .map(|reason| finish_reason(reason, state.calls > 0));
            if finish.is_some() {
                state.finished = true;
            }
            let has_delta = delta.content.is_some()
                || delta.reasoning_content.is_some()
                || delta.tool_calls.is_some();
            if has_delta || finish.is_some() {
                if !self.started {
                    delta.role = Some(Role::Assistant);
                }
                choices.push(ChunkChoice::new(index, delta, finish));
            }
        }
        if !choices.is_empty() {
            self.started = true;
            out.push_back(ChatChunk::new(
                self.id.clone(),
                self.created,
                self.model.clone(),
                choices,
            ));
        }
        Ok(Flow::Continue)
    }

    /// Gemini streams have no terminator: whole when every candidate finished.
    fn on_end(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<()> {
        if !self.candidates.is_empty() && self.candidates.values().all(|c| c.finished) {
            self.usage_chunk(out);
            Ok(())
        } else {
            Err(Error::protocol(
                self.provider.clone(),
                "the stream ended before a finishReason",
                None,
            ))
        }
    }
}

/// Text of a message (for tests).
#[cfg(test)]
fn text_of(content: Option<&llm_core::Content>) -> String {
    content.map(llm_core::Content::text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: &Value) -> Result<ChatResponse> {
        parse_response(
            "gemini",
            body.to_string().as_bytes(),
            "gemini-2.5-flash",
            &[],
        )
    }

    #[test]
    fn text_thoughts_usage() {
        let response = parse(&json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Considering the weather.", "thought": true},
                {"text": "It is 21°C in Paris."}
            ]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 38, "candidatesTokenCount": 9, "thoughtsTokenCount": 120,
                "totalTokenCount": 167, "cachedContentTokenCount": 10},
            "modelVersion": "gemini-2.5-flash", "responseId": "mAitaLmkHPPlz7IPvtfUqQ4"
        }))
        .unwrap();
        let message = &response.choices[0].message;
        assert_eq!(text_of(message.content.as_ref()), "It is 21°C in Paris.");
        assert_eq!(
            message.reasoning_content.as_deref(),
            Some("Considering the weather.")
        );
        assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
        let usage = response.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (38, 129, 167)
        );
        assert_eq!(usage.cached_tokens(), Some(10));
        assert_eq!(
            usage.completion_tokens_details.unwrap().reasoning_tokens,
            Some(120)
        );
        assert_eq!(response.id, "chatcmpl-mAitaLmkHPPlz7IPvtfUqQ4");
    }

    #[test]
    fn calls_end_with_stop_but_report_tool_calls_and_keep_signatures() {
        let response = parse(&json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQB0e2Kb+/x"},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}, "id": "fc_2"}}
            ]}, "finishReason": "STOP"}],
            "responseId": "Xy3"
        }))
        .unwrap();
        let choice = &response.choices[0];
        assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
        let calls = choice.message.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].function.arguments, r#"{"city":"Paris"}"#);
        assert!(
            calls[0].id.starts_with("call_gen_Xy3_0__ts__"),
            "{}",
            calls[0].id
        );
        assert_eq!(ids::decode(&calls[0].id).1.as_deref(), Some("CiQB0e2Kb+/x"));
        assert_eq!(calls[1].id, "fc_2");
        assert!(choice.message.content.is_none());
    }

    #[test]
    fn finish_reason_table() {
        for (reason, called, expected) in [
            ("MAX_TOKENS", false, FinishReason::Length),
            ("SAFETY", false, FinishReason::ContentFilter),
            ("RECITATION", false, FinishReason::ContentFilter),
            ("BLOCKLIST", false, FinishReason::ContentFilter),
            ("PROHIBITED_CONTENT", false, FinishReason::ContentFilter),
            ("SPII", false, FinishReason::ContentFilter),
            (
                "MALFORMED_FUNCTION_CALL",
                true,
                FinishReason::Other("malformed_function_call".into()),
            ),
        ] {
            assert_eq!(finish_reason(reason, called), expected, "{reason}");
        }
    }

    #[test]
    fn blocked_prompts_and_in_band_errors() {
        let err = parse(&json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}})).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ContentFiltered);
        assert_eq!(err.code(), Some("SAFETY"));
        let err = parse(
            &json!([{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}]),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UpstreamServer);
        let err =
            parse_response("gemini", b"{\"candidates\": [{\"content\"", "m", &[]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
    }
}
