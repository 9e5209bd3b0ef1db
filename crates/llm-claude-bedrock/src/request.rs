//! [`ChatRequest`] → Converse input, keeping Converse's invariants that OpenAI-shaped
//! histories break (see the crate docs for the list and `../shared/wire-formats.md` §5.8,
//! §8.2).

use std::{
    borrow::Cow,
    collections::{BTreeSet, HashMap},
};

use aws_sdk_bedrockruntime::{
    primitives::Blob,
    types::{
        AnyToolChoice, AutoToolChoice, CachePointBlock, CachePointType, CacheTtl, ContentBlock,
        ConversationRole, GuardrailTrace, ImageBlock, ImageFormat, ImageSource,
        InferenceConfiguration, JsonSchemaDefinition, Message as BedrockMessage, OutputConfig,
        OutputFormat, OutputFormatStructure, OutputFormatType, PerformanceConfigLatency,
        PerformanceConfiguration, ReasoningContentBlock, ReasoningTextBlock, SpecificToolChoice,
        SystemContentBlock, Tool as BedrockTool, ToolChoice as BedrockToolChoice,
        ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock,
        ToolResultStatus, ToolSpecification, ToolUseBlock,
    },
};
use aws_smithy_types::Document;
use llm_core::{
    ChatRequest, Content, ContentPart, Error, Message, ResponseFormat, Result, Role, ToolChoice,
    ToolChoiceMode,
};
use serde_json::{Map, Value};

use crate::document::to_document;

/// The system instruction that stands in for OpenAI's JSON mode (`json_object`), which
/// Converse has no switch for.
pub(crate) const JSON_MODE_INSTRUCTION: &str =
    "Respond with one valid JSON object and nothing else: no prose, no code fences.";

/// The text of the user turn put before a conversation that starts with the assistant
/// (Converse requires the first message to be the user's).
pub(crate) const LEADING_USER_TURN: &str = "(conversation start)";

/// Thinking budgets for `reasoning_effort`.
fn thinking_budget(effort: &str) -> Option<i64> {
    match effort {
        "none" => None,
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        _ => Some(16384),
    }
}

/// Everything of a Converse / ConverseStream call but the model id.
#[derive(Debug, Default)]
pub(crate) struct Converse {
    pub(crate) messages: Vec<BedrockMessage>,
    pub(crate) system: Option<Vec<SystemContentBlock>>,
    pub(crate) inference: Option<InferenceConfiguration>,
    pub(crate) tools: Option<ToolConfiguration>,
    pub(crate) additional: Option<Document>,
    pub(crate) output: Option<OutputConfig>,
    pub(crate) guardrail: Option<Guardrail>,
    pub(crate) performance: Option<PerformanceConfiguration>,
    pub(crate) metadata: Option<HashMap<String, String>>,
    pub(crate) response_field_paths: Option<Vec<String>>,
    /// Sanitized tool name → the caller's name, for the names that had to change.
    pub(crate) names: HashMap<String, String>,
}

/// `guardrailConfig` (Converse and ConverseStream take different types for it).
#[derive(Debug)]
pub(crate) struct Guardrail {
    pub(crate) identifier: String,
    pub(crate) version: String,
    pub(crate) trace: Option<GuardrailTrace>,
}

/// Tool names Converse accepts: `[a-zA-Z0-9_-]{1,64}`.
fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}

/// Tool-use ids Converse accepts: `[a-zA-Z0-9_.:-]{1,64}`.
fn id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

/// `value` if every byte passes `allowed` and it has 1–64 bytes; otherwise the allowed
/// characters kept (others become `_`), cut to fit, with a hash of the original appended so
/// that two different inputs never map to one output. Deterministic: a tool call and its
/// result map to the same id without shared state.
pub(crate) fn sanitize(value: &str, allowed: fn(u8) -> bool) -> Cow<'_, str> {
    if !value.is_empty() && value.len() <= 64 && value.bytes().all(allowed) {
        return Cow::Borrowed(value);
    }
    // FNV-1a, 32 bits: stable across builds and platforms.
    let hash = value.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let mut out: String = value
        .chars()
        .map(|c| {
            if c.is_ascii() && allowed(c as u8) {
                c
            } else {
                '_'
            }
        })
        .take(64 - 9)
        .collect();
    out.push_str(&format!("_{hash:08x}"));
    Cow::Owned(out)
}

pub(crate) fn tool_name(name: &str) -> Cow<'_, str> {
    sanitize(name, name_byte)
}

fn tool_id(id: &str) -> Cow<'_, str> {
    sanitize(id, id_byte)
}

fn built<T, E: std::fmt::Display>(result: std::result::Result<T, E>) -> Result<T> {
    result.map_err(|e| Error::invalid_request(format!("cannot build the Converse request: {e}")))
}

fn cache_point(control: &Value) -> Result<CachePointBlock> {
    let ttl = match control.get("ttl").and_then(Value::as_str) {
        None => None,
        Some("5m") => Some(CacheTtl::FiveMinutes),
        Some("1h") => Some(CacheTtl::OneHour),
        Some(other) => {
            return Err(Error::invalid_request(format!(
                "cache_control ttl `{other}` is not one of 5m, 1h"
            )));
        }
    };
    built(
        CachePointBlock::builder()
            .r#type(CachePointType::Default)
            .set_ttl(ttl)
            .build(),
    )
}

/// Whether `text` is worth a block: Converse refuses blank text blocks.
fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// The Converse input for `request`.
pub(crate) fn converse(request: &ChatRequest, provider: &str) -> Result<Converse> {
    check_unsupported(request, provider)?;
    let mut out = Converse::default();
    let mut system: Vec<SystemContentBlock> = Vec::new();
    let mut turns: Vec<(ConversationRole, Vec<ContentBlock>)> = Vec::new();
    let mut history_tools: BTreeSet<String> = BTreeSet::new();
    for message in &request.messages {
        let message_cache = message.extra.get("cache_control");
        if matches!(message.role, Role::System | Role::Developer) {
            let before = system.len();
            system_blocks(message.content.as_ref(), &mut system)?;
            if let Some(control) = message_cache
                && system.len() > before
            {
                system.push(SystemContentBlock::CachePoint(cache_point(control)?));
            }
            continue;
        }
        let (role, mut blocks) = match message.role {
            Role::Assistant => (
                ConversationRole::Assistant,
                assistant_blocks(message, &mut out.names, &mut history_tools, provider)?,
            ),
            Role::Tool | Role::Function => (
                ConversationRole::User,
                vec![tool_result(message, provider)?],
            ),
            _ => (
                ConversationRole::User,
                user_blocks(message.content.as_ref(), provider)?,
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        if let Some(control) = message_cache {
            blocks.push(ContentBlock::CachePoint(cache_point(control)?));
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => {
                // Tool results lead their user turn: Converse expects them right after
                // the assistant turn that called the tools.
                for block in blocks {
                    if matches!(block, ContentBlock::ToolResult(_)) {
                        let at = existing
                            .iter()
                            .take_while(|b| matches!(b, ContentBlock::ToolResult(_)))
                            .count();
                        existing.insert(at, block);
                    } else {
                        existing.push(block);
                    }
                }
            }
            _ => turns.push((role, blocks)),
        }
    }
    if turns.is_empty() {
        return Err(Error::invalid_request(format!(
            "{provider}: Claude needs at least one user or assistant message with content besides system messages"
        )));
    }
    if turns[0].0 == ConversationRole::Assistant {
        turns.insert(
            0,
            (
                ConversationRole::User,
                vec![ContentBlock::Text(LEADING_USER_TURN.to_owned())],
            ),
        );
    }
    let history_has_tools = turns.iter().any(|(_, blocks)| {
        blocks
            .iter()
            .any(|b| matches!(b, ContentBlock::ToolUse(_) | ContentBlock::ToolResult(_)))
    });
    out.messages = turns
        .into_iter()
        .map(|(role, content)| {
            built(
                BedrockMessage::builder()
                    .role(role)
                    .set_content(Some(content))
                    .build(),
            )
        })
        .collect::<Result<_>>()?;

    match &request.response_format {
        Some(ResponseFormat::JsonObject) => {
            system.push(SystemContentBlock::Text(JSON_MODE_INSTRUCTION.to_owned()));
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema
                .schema
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object"}));
            let definition = built(
                JsonSchemaDefinition::builder()
                    .schema(schema.to_string())
                    .name(json_schema.name.clone())
                    .set_description(json_schema.description.clone())
                    .build(),
            )?;
            out.output = Some(
                OutputConfig::builder()
                    .text_format(built(
                        OutputFormat::builder()
                            .r#type(OutputFormatType::JsonSchema)
                            .structure(OutputFormatStructure::JsonSchema(definition))
                            .build(),
                    )?)
                    .build(),
            );
        }
        Some(ResponseFormat::Text) | None => {}
    }
    out.system = (!system.is_empty()).then_some(system);
    out.inference = inference(request, provider)?;
    out.tools = tool_config(request, history_has_tools, &history_tools, &mut out.names)?;
    extra_fields(request, &mut out, provider)?;
    Ok(out)
}

fn check_unsupported(request: &ChatRequest, provider: &str) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::invalid_request(format!(
            "{provider} (Claude on Bedrock) does not support {what}"
        )))
    };
    if request.messages.is_empty() {
        return Err(Error::invalid_request("`messages` must not be empty"));
    }
    if request.n.is_some_and(|n| n > 1) {
        return refuse("`n` > 1");
    }
    if request.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return refuse("`logit_bias`");
    }
    if request.logprobs == Some(true) || request.top_logprobs.is_some_and(|n| n > 0) {
        return refuse("`logprobs`");
    }
    if request.presence_penalty.is_some_and(|p| p != 0.0)
        || request.frequency_penalty.is_some_and(|p| p != 0.0)
    {
        return refuse("`presence_penalty` / `frequency_penalty`");
    }
    Ok(())
}

fn inference(request: &ChatRequest, provider: &str) -> Result<Option<InferenceConfiguration>> {
    let temperature = match request.temperature {
        Some(t) if !(0.0..=2.0).contains(&t) => {
            return Err(Error::invalid_request(format!(
                "{provider}: temperature {t} is outside 0–2"
            )));
        }
        // Converse's scale ends at 1.0; OpenAI's 0–2 is clamped to it (documented).
        #[expect(clippy::cast_possible_truncation, reason = "clamped to 0–1")]
        Some(t) => Some(t.min(1.0) as f32),
        None => None,
    };
    let top_p = match request.top_p {
        Some(p) if !(0.0..=1.0).contains(&p) => {
            return Err(Error::invalid_request(format!(
                "{provider}: top_p {p} is outside 0–1"
            )));
        }
        #[expect(clippy::cast_possible_truncation, reason = "within 0–1")]
        Some(p) => Some(p as f32),
        None => None,
    };
    let max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
    if max_tokens == Some(0) {
        return Err(Error::invalid_request(format!(
            "{provider}: max_tokens must be at least 1"
        )));
    }
    let stop: Option<Vec<String>> = request.stop.as_ref().map(|stop| {
        stop.as_vec()
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let stop = stop.filter(|s| !s.is_empty());
    if temperature.is_none() && top_p.is_none() && max_tokens.is_none() && stop.is_none() {
        return Ok(None);
    }
    Ok(Some(
        InferenceConfiguration::builder()
            .set_max_tokens(max_tokens)
            .set_temperature(temperature)
            .set_top_p(top_p)
            .set_stop_sequences(stop)
            .build(),
    ))
}

fn system_blocks(content: Option<&Content>, out: &mut Vec<SystemContentBlock>) -> Result<()> {
    match content {
        None => {}
        Some(Content::Text(text)) if !is_blank(text) => {
            out.push(SystemContentBlock::Text(text.clone()));
        }
        Some(Content::Text(_)) => {}
        Some(Content::Parts(parts)) => {
            for part in parts {
                if let ContentPart::Text {
                    text,
                    cache_control,
                } = part
                {
                    if !is_blank(text) {
                        out.push(SystemContentBlock::Text(text.clone()));
                    }
                    if let Some(control) = cache_control
                        && !out.is_empty()
                    {
                        out.push(SystemContentBlock::CachePoint(cache_point(control)?));
                    }
                } else {
                    return Err(Error::invalid_request(
                        "a system message may only hold text parts",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A text part: its block unless it is blank, then a cache point after it when asked for
/// (and there is something before it to cache).
fn text_part(
    text: &str,
    cache_control: Option<&Value>,
    blocks: &mut Vec<ContentBlock>,
) -> Result<()> {
    if !is_blank(text) {
        blocks.push(ContentBlock::Text(text.to_owned()));
    }
    if let Some(control) = cache_control
        && !blocks.is_empty()
    {
        blocks.push(ContentBlock::CachePoint(cache_point(control)?));
    }
    Ok(())
}

fn user_blocks(content: Option<&Content>, provider: &str) -> Result<Vec<ContentBlock>> {
    let mut blocks = Vec::new();
    content_blocks(content, &ConversationRole::User, provider, &mut blocks)?;
    Ok(blocks)
}

/// The blocks of a user or assistant message's content: text (never blank, with its
/// cache point), refusals as text, images (user messages only).
fn content_blocks(
    content: Option<&Content>,
    role: &ConversationRole,
    provider: &str,
    blocks: &mut Vec<ContentBlock>,
) -> Result<()> {
    let parts = match content {
        None => return Ok(()),
        Some(Content::Text(text)) => return text_part(text, None, blocks),
        Some(Content::Parts(parts)) => parts,
    };
    for part in parts {
        match part {
            ContentPart::Text {
                text,
                cache_control,
            } => text_part(text, cache_control.as_ref(), blocks)?,
            ContentPart::Refusal { refusal } => {
                if !is_blank(refusal) {
                    blocks.push(ContentBlock::Text(refusal.clone()));
                }
            }
            ContentPart::ImageUrl { image_url } if *role == ConversationRole::User => {
                blocks.push(ContentBlock::Image(image(&image_url.url, provider)?));
            }
            other if *role == ConversationRole::User => {
                return Err(Error::invalid_request(format!(
                    "{provider}: this content part cannot be sent to Claude on Bedrock: {}",
                    part_kind(other)
                )));
            }
            other => {
                return Err(Error::invalid_request(format!(
                    "{provider}: an assistant message cannot hold a {} part",
                    part_kind(other)
                )));
            }
        }
    }
    Ok(())
}

fn part_kind(part: &ContentPart) -> &'static str {
    match part {
        ContentPart::Text { .. } => "text",
        ContentPart::ImageUrl { .. } => "image_url",
        ContentPart::InputAudio { .. } => "input_audio",
        ContentPart::File { .. } => "file",
        ContentPart::Refusal { .. } => "refusal",
        _ => "unknown",
    }
}

/// An image from a base64 `data:` URL. Converse takes bytes (or S3), never a URL, and we do
/// not fetch URLs on a caller's behalf.
fn image(url: &str, provider: &str) -> Result<ImageBlock> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(Error::invalid_request(format!(
            "{provider}: Claude on Bedrock takes images as base64 data URLs (data:image/png;base64,…); a remote image URL is not fetched"
        )));
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| Error::invalid_request(format!("{provider}: a data URL has no `,`")))?;
    let mime = meta.strip_suffix(";base64").ok_or_else(|| {
        Error::invalid_request(format!(
            "{provider}: only base64 data URLs can be sent to Claude on Bedrock"
        ))
    })?;
    let format = match mime {
        "image/png" => ImageFormat::Png,
        "image/jpeg" | "image/jpg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::Webp,
        other => {
            return Err(Error::invalid_request(format!(
                "{provider}: image type `{other}` is not one of png, jpeg, gif, webp"
            )));
        }
    };
    let bytes = aws_smithy_types::base64::decode(data.trim()).map_err(|_| {
        Error::invalid_request(format!("{provider}: an image data URL is not valid base64"))
    })?;
    built(
        ImageBlock::builder()
            .format(format)
            .source(ImageSource::Bytes(Blob::new(bytes)))
            .build(),
    )
}

/// The reasoning blocks an assistant message carries in `thinking_blocks` (the shape our
/// answers give them: `{"type":"thinking","thinking","signature"}` and
/// `{"type":"redacted_thinking","data"}`). Reasoning without a signature cannot be sent
/// back (Bedrock verifies it) and is left out.
fn reasoning_blocks(message: &Message, out: &mut Vec<ContentBlock>) -> Result<()> {
    let Some(blocks) = message
        .extra
        .get("thinking_blocks")
        .and_then(Value::as_array)
    else {
        return Ok(());
    };
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("thinking") => {
                let text = block.get("thinking").and_then(Value::as_str).unwrap_or("");
                let Some(signature) = block.get("signature").and_then(Value::as_str) else {
                    continue;
                };
                out.push(ContentBlock::ReasoningContent(
                    ReasoningContentBlock::ReasoningText(built(
                        ReasoningTextBlock::builder()
                            .text(text)
                            .signature(signature)
                            .build(),
                    )?),
                ));
            }
            Some("redacted_thinking") => {
                let data = block.get("data").and_then(Value::as_str).unwrap_or("");
                let bytes = aws_smithy_types::base64::decode(data).map_err(|_| {
                    Error::invalid_request("a redacted_thinking block's data is not base64")
                })?;
                out.push(ContentBlock::ReasoningContent(
                    ReasoningContentBlock::RedactedContent(Blob::new(bytes)),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn assistant_blocks(
    message: &Message,
    names: &mut HashMap<String, String>,
    history_tools: &mut BTreeSet<String>,
    provider: &str,
) -> Result<Vec<ContentBlock>> {
    let mut blocks = Vec::new();
    reasoning_blocks(message, &mut blocks)?;
    content_blocks(
        message.content.as_ref(),
        &ConversationRole::Assistant,
        provider,
        &mut blocks,
    )?;
    for call in message.tool_calls.iter().flatten() {
        let input: Value = if call.function.arguments.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|e| {
                Error::invalid_request(format!(
                    "tool call `{}` has arguments that are not JSON: {e}",
                    call.id
                ))
            })?
        };
        // Converse's `input` is always an object.
        let input = match input {
            Value::Object(_) => input,
            Value::Null => Value::Object(Map::new()),
            other => serde_json::json!({ "value": other }),
        };
        let name = tool_name(&call.function.name);
        if let Cow::Owned(sanitized) = &name {
            names.insert(sanitized.clone(), call.function.name.clone());
        }
        history_tools.insert(name.clone().into_owned());
        blocks.push(ContentBlock::ToolUse(built(
            ToolUseBlock::builder()
                .tool_use_id(tool_id(&call.id))
                .name(name)
                .input(to_document(&input))
                .build(),
        )?));
    }
    Ok(blocks)
}

fn tool_result(message: &Message, provider: &str) -> Result<ContentBlock> {
    let id = message.tool_call_id.as_deref().ok_or_else(|| {
        Error::invalid_request(format!("{provider}: a tool message needs `tool_call_id`"))
    })?;
    let mut content = Vec::new();
    match message.content.as_ref() {
        None => {}
        Some(Content::Text(text)) => result_text(text, &mut content),
        Some(Content::Parts(parts)) => {
            for part in parts {
                match part {
                    ContentPart::Text { text, .. } => result_text(text, &mut content),
                    ContentPart::ImageUrl { image_url } => content.push(
                        ToolResultContentBlock::Image(image(&image_url.url, provider)?),
                    ),
                    other => {
                        return Err(Error::invalid_request(format!(
                            "{provider}: a tool result cannot hold a {} part",
                            part_kind(other)
                        )));
                    }
                }
            }
        }
    }
    let status = if message.extra.get("is_error").and_then(Value::as_bool) == Some(true) {
        ToolResultStatus::Error
    } else {
        ToolResultStatus::Success
    };
    Ok(ContentBlock::ToolResult(built(
        ToolResultBlock::builder()
            .tool_use_id(tool_id(id))
            .set_content(Some(content))
            .status(status)
            .build(),
    )?))
}

/// A tool result's text: a JSON object as `json`, other text as `text`; blank text is
/// left out (an empty result is an empty content list).
fn result_text(text: &str, out: &mut Vec<ToolResultContentBlock>) {
    if is_blank(text) {
        return;
    }
    if text.trim_start().starts_with('{')
        && let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(text)
    {
        out.push(ToolResultContentBlock::Json(to_document(&value)));
        return;
    }
    out.push(ToolResultContentBlock::Text(text.to_owned()));
}

fn tool_config(
    request: &ChatRequest,
    history_has_tools: bool,
    history_tools: &BTreeSet<String>,
    names: &mut HashMap<String, String>,
) -> Result<Option<ToolConfiguration>> {
    let declared = request.tools.as_deref().unwrap_or_default();
    let none = matches!(
        request.tool_choice,
        Some(ToolChoice::Mode(ToolChoiceMode::None))
    );
    // `none` without tool blocks in the history: leave the tools out, the exact meaning.
    if (declared.is_empty() || none) && !history_has_tools {
        return Ok(None);
    }
    let mut tools = Vec::new();
    for tool in declared {
        let name = tool_name(&tool.function.name);
        if let Cow::Owned(sanitized) = &name {
            names.insert(sanitized.clone(), tool.function.name.clone());
        }
        let schema = tool
            .function
            .parameters
            .clone()
            .filter(Value::is_object)
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        tools.push(BedrockTool::ToolSpec(built(
            ToolSpecification::builder()
                .name(name)
                .set_description(
                    tool.function
                        .description
                        .clone()
                        .filter(|d| !d.trim().is_empty()),
                )
                .input_schema(ToolInputSchema::Json(to_document(&schema)))
                .set_strict(tool.function.strict)
                .build(),
        )?));
    }
    if tools.is_empty() {
        // The history holds tool blocks but the request declares no tools: Converse still
        // wants a toolConfig, so the tools the history used are declared.
        for name in history_tools {
            tools.push(BedrockTool::ToolSpec(built(
                ToolSpecification::builder()
                    .name(name)
                    .description("A tool used earlier in this conversation.")
                    .input_schema(ToolInputSchema::Json(to_document(
                        &serde_json::json!({"type": "object", "properties": {}}),
                    )))
                    .build(),
            )?));
        }
    }
    if tools.is_empty() {
        // Tool results without the calls they answer: declare nothing and let Bedrock say
        // what is wrong with the history.
        return Ok(None);
    }
    let choice = match &request.tool_choice {
        // Converse has no `none`: the tools are declared (the history needs them) and no
        // choice is sent.
        None | Some(ToolChoice::Mode(ToolChoiceMode::None)) => None,
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => {
            Some(BedrockToolChoice::Auto(AutoToolChoice::builder().build()))
        }
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => {
            Some(BedrockToolChoice::Any(AnyToolChoice::builder().build()))
        }
        Some(ToolChoice::Named(named)) => Some(BedrockToolChoice::Tool(built(
            SpecificToolChoice::builder()
                .name(tool_name(&named.function.name))
                .build(),
        )?)),
        Some(other) => {
            return Err(Error::invalid_request(format!(
                "tool_choice {other:?} cannot be expressed for Claude on Bedrock"
            )));
        }
    };
    Ok(Some(built(
        ToolConfiguration::builder()
            .set_tools(Some(tools))
            .set_tool_choice(choice)
            .build(),
    )?))
}

/// `reasoning_effort` and the request's unknown fields: Converse's own top-level fields
/// (`guardrailConfig`, `performanceConfig`, `requestMetadata`,
/// `additionalModelResponseFieldPaths`, `additionalModelRequestFields`) are used as such;
/// OpenAI bookkeeping is dropped; anything else (`top_k`, `thinking`, `anthropic_beta`, …)
/// goes into `additionalModelRequestFields`, the model's own parameters.
fn extra_fields(request: &ChatRequest, out: &mut Converse, provider: &str) -> Result<()> {
    let mut additional = Map::new();
    if let Some(budget) = request
        .reasoning_effort
        .as_deref()
        .and_then(thinking_budget)
    {
        additional.insert(
            "thinking".into(),
            serde_json::json!({"type": "enabled", "budget_tokens": budget}),
        );
    }
    let invalid =
        |field: &str, why: &str| Error::invalid_request(format!("{provider}: `{field}` {why}"));
    for (key, value) in &request.extra {
        match key.as_str() {
            k if llm_core::kit::OPENAI_BOOKKEEPING.contains(&k) => {}
            "additionalModelRequestFields" | "additional_model_request_fields" => {
                let Value::Object(fields) = value else {
                    return Err(invalid(key, "must be an object"));
                };
                additional.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            "guardrailConfig" => {
                let field = |name: &str| value.get(name).and_then(Value::as_str);
                let (Some(id), Some(version)) =
                    (field("guardrailIdentifier"), field("guardrailVersion"))
                else {
                    return Err(invalid(
                        key,
                        "needs guardrailIdentifier and guardrailVersion",
                    ));
                };
                out.guardrail = Some(Guardrail {
                    identifier: id.to_owned(),
                    version: version.to_owned(),
                    trace: field("trace").map(GuardrailTrace::from),
                });
            }
            "performanceConfig" => {
                let latency = value
                    .get("latency")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(key, "needs latency"))?;
                out.performance = Some(
                    PerformanceConfiguration::builder()
                        .latency(PerformanceConfigLatency::from(latency))
                        .build(),
                );
            }
            "requestMetadata" => {
                let Value::Object(fields) = value else {
                    return Err(invalid(key, "must be an object of strings"));
                };
                let mut metadata = HashMap::new();
                for (k, v) in fields {
                    let v = v
                        .as_str()
                        .ok_or_else(|| invalid(key, "must be an object of strings"))?;
                    metadata.insert(k.clone(), v.to_owned());
                }
                out.metadata = Some(metadata);
            }
            "additionalModelResponseFieldPaths" => {
                let paths = value
                    .as_array()
                    .and_then(|items| {
                        items
                            .iter()
                            .map(|v| v.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| invalid(key, "must be a list of strings"))?;
                out.response_field_paths = Some(paths);
            }
            _ => {
                additional.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(thinking) = additional.get("thinking")
        && let Some(budget) = thinking.get("budget_tokens").and_then(Value::as_i64)
    {
        // Claude needs maxTokens above the thinking budget; say so here rather than after
        // a round trip.
        let max = out
            .inference
            .as_ref()
            .and_then(InferenceConfiguration::max_tokens);
        match max {
            Some(max) if i64::from(max) <= budget => {
                return Err(Error::invalid_request(format!(
                    "{provider}: max_tokens ({max}) must exceed the thinking budget ({budget})"
                )));
            }
            Some(_) => {}
            None => {
                let max = i32::try_from(budget + 8192).unwrap_or(i32::MAX);
                let config = out.inference.take();
                let config = config.as_ref();
                out.inference = Some(
                    InferenceConfiguration::builder()
                        .max_tokens(max)
                        .set_temperature(config.and_then(|c| c.temperature))
                        .set_top_p(config.and_then(|c| c.top_p))
                        .set_stop_sequences(config.and_then(|c| c.stop_sequences.clone()))
                        .build(),
                );
            }
        }
    }
    if !additional.is_empty() {
        out.additional = Some(to_document(&Value::Object(additional)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_valid_and_maps_invalid_deterministically() {
        assert_eq!(tool_name("get_weather"), "get_weather");
        let dotted = tool_name("mcp.github.search");
        assert!(dotted.starts_with("mcp_github_search_"), "{dotted}");
        assert_eq!(dotted, tool_name("mcp.github.search"));
        assert_ne!(dotted, tool_name("mcp_github.search"));
        let long = "x".repeat(100);
        let cut = tool_name(&long);
        assert_eq!(cut.len(), 64);
        assert!(cut.bytes().all(name_byte));
        assert_ne!(cut, tool_name(&"x".repeat(101)));
        assert!(!tool_name("").is_empty());
        assert_eq!(tool_id("call_abc:1.2"), "call_abc:1.2");
        assert!(tool_id("call/ü").bytes().all(id_byte));
    }
}
