//! The native request body, borrowed from a [`ChatRequest`].
//!
//! Reference: DashScope "text generation" and "multimodal generation" APIs:
//! `{"model", "input": {"messages"}, "parameters": {…}}`. Sampling fields go into
//! `parameters`; unknown request fields (`enable_search`, `top_k`, `thinking_budget`,
//! `repetition_penalty`, `search_options`, …) pass through into `parameters` too.

use std::borrow::Cow;

use llm_core::{
    ChatRequest, Content, ContentPart, Error, Extra, Message, ResponseFormat, Result, Role, Stop,
    Tool, ToolCall, ToolChoice,
};
use serde::Serialize;
use serde_json::Value;

/// The body.
#[derive(Debug, Serialize)]
pub(crate) struct NativeRequest<'a> {
    model: &'a str,
    input: Input<'a>,
    parameters: Parameters<'a>,
}

#[derive(Debug, Serialize)]
struct Input<'a> {
    messages: Vec<WireMessage<'a>>,
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<&'a [ToolCall]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Text(Cow<'a, str>),
    /// The multimodal path: single-key objects.
    Parts(Vec<Part<'a>>),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Part<'a> {
    Text(&'a str),
    Image(&'a str),
    Audio(String),
}

#[derive(Debug, Serialize)]
struct Parameters<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    result_format: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    incremental_output: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enable_thinking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [Tool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a ResponseFormat>,
    #[serde(flatten)]
    extra: Cow<'a, Extra>,
}

/// How the body is built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyMode {
    pub(crate) stream: bool,
    pub(crate) multimodal: bool,
}

/// What the stream translator must know of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// The upstream repeats the whole text so far in every event.
    pub(crate) cumulative: bool,
}

impl<'a> NativeRequest<'a> {
    /// The body for `request` sent to `model`.
    pub(crate) fn new(
        request: &'a ChatRequest,
        model: &'a str,
        mode: BodyMode,
        provider: &str,
    ) -> Result<(Self, Sent)> {
        let unsupported = |field: &str, hint: &str| {
            Error::invalid_request(format!(
                "{provider} (DashScope native API) does not support `{field}`{hint}"
            ))
        };
        if request.frequency_penalty.is_some() {
            return Err(unsupported(
                "frequency_penalty",
                ": use `presence_penalty` or `repetition_penalty`, or compatible mode",
            ));
        }
        if request.logit_bias.is_some() {
            return Err(unsupported("logit_bias", "; compatible mode passes it on"));
        }
        // Fields the client sets itself are taken out of the pass-through map.
        let mut extra = Cow::Borrowed(&request.extra);
        let mut owned = |field: &str| -> Option<Value> {
            if extra.contains_key(field) {
                extra.to_mut().remove(field)
            } else {
                None
            }
        };
        let asked_incremental = owned("incremental_output").and_then(|v| v.as_bool());
        let asked_thinking = owned("enable_thinking").and_then(|v| v.as_bool());
        let _ = (owned("result_format"), owned("stream"));
        // Streams are incremental unless the caller explicitly asked for cumulative text.
        let incremental = mode.stream.then(|| asked_incremental.unwrap_or(true));
        // Thinking models refuse `enable_thinking: true` on non-streaming calls; those calls
        // never think.
        let enable_thinking = if mode.stream {
            asked_thinking
        } else {
            crate::non_streaming_thinking(asked_thinking, model)
        };
        let messages = request
            .messages
            .iter()
            .map(|message| wire_message(message, mode.multimodal, provider))
            .collect::<Result<Vec<_>>>()?;
        let body = Self {
            model,
            input: Input { messages },
            parameters: Parameters {
                // The multimodal path answers in the message format by default and is
                // called without it (as the DashScope SDK does).
                result_format: (!mode.multimodal).then_some("message"),
                incremental_output: incremental,
                enable_thinking,
                max_tokens: request.max_completion_tokens.or(request.max_tokens),
                temperature: request.temperature,
                top_p: request.top_p,
                n: request.n,
                seed: request.seed,
                stop: request.stop.as_ref(),
                presence_penalty: request.presence_penalty,
                logprobs: request.logprobs,
                top_logprobs: request.top_logprobs,
                tools: request.tools.as_deref(),
                tool_choice: request.tool_choice.as_ref(),
                parallel_tool_calls: request.parallel_tool_calls,
                response_format: request.response_format.as_ref(),
                extra,
            },
        };
        Ok((
            body,
            Sent {
                cumulative: incremental == Some(false),
            },
        ))
    }
}

fn role(role: Role) -> &'static str {
    match role {
        Role::System | Role::Developer => "system",
        Role::Assistant => "assistant",
        Role::Tool | Role::Function => "tool",
        // `user`, and any role added later: the end user's side.
        _ => "user",
    }
}

fn wire_message<'a>(
    message: &'a Message,
    multimodal: bool,
    provider: &str,
) -> Result<WireMessage<'a>> {
    let content = match (&message.content, multimodal) {
        (None, false) => WireContent::Text(Cow::Borrowed("")),
        (None, true) => WireContent::Parts(Vec::new()),
        (Some(Content::Text(text)), false) => WireContent::Text(Cow::Borrowed(text)),
        (Some(Content::Text(text)), true) => WireContent::Parts(vec![Part::Text(text)]),
        (Some(Content::Parts(parts)), false) => {
            if parts
                .iter()
                .any(|part| !matches!(part, ContentPart::Text { .. }))
            {
                return Err(Error::invalid_request(format!(
                    "{provider}: this model is on DashScope's text path, which takes no images, audio or files; use a VL or Omni model (or set `multimodal` for a model DashScope serves on the multimodal path)"
                )));
            }
            WireContent::Text(Cow::Owned(Content::Parts(parts.clone()).text()))
        }
        (Some(Content::Parts(parts)), true) => WireContent::Parts(
            parts
                .iter()
                .map(|part| multimodal_part(part, provider))
                .collect::<Result<_>>()?,
        ),
    };
    Ok(WireMessage {
        role: role(message.role),
        content,
        name: message.name.as_deref(),
        tool_calls: message
            .tool_calls
            .as_deref()
            .filter(|calls| !calls.is_empty()),
        tool_call_id: message.tool_call_id.as_deref(),
    })
}

fn multimodal_part<'a>(part: &'a ContentPart, provider: &str) -> Result<Part<'a>> {
    Ok(match part {
        ContentPart::Text { text, .. } => Part::Text(text),
        ContentPart::Refusal { refusal } => Part::Text(refusal),
        ContentPart::ImageUrl { image_url } => Part::Image(&image_url.url),
        ContentPart::InputAudio { input_audio } => Part::Audio(format!(
            "data:audio/{};base64,{}",
            input_audio.format, input_audio.data
        )),
        ContentPart::File { .. } => {
            return Err(Error::invalid_request(format!(
                "{provider}: DashScope takes no file parts in chat messages"
            )));
        }
        other => {
            return Err(Error::invalid_request(format!(
                "{provider}: a content part of this kind cannot be sent to DashScope: {other:?}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use llm_core::{ChatRequest, ContentPart, Message};
    use serde_json::json;

    use super::*;

    fn body(request: &ChatRequest, stream: bool, multimodal: bool) -> Value {
        let (body, _) = NativeRequest::new(
            request,
            "qwen-plus",
            BodyMode { stream, multimodal },
            "qwen",
        )
        .unwrap();
        serde_json::to_value(body).unwrap()
    }

    #[test]
    fn text_path_body() {
        let mut request = ChatRequest {
            temperature: Some(0.7),
            max_completion_tokens: Some(512),
            ..ChatRequest::new(
                "x",
                vec![
                    Message::new(Role::Developer, "Be terse."),
                    Message::user("Hi"),
                ],
            )
        };
        request.extra.insert("enable_search".into(), json!(true));
        request.extra.insert("enable_thinking".into(), json!(true));
        assert_eq!(
            body(&request, true, false),
            json!({
                "model": "qwen-plus",
                "input": {"messages": [
                    {"role": "system", "content": "Be terse."},
                    {"role": "user", "content": "Hi"}
                ]},
                "parameters": {"result_format": "message", "incremental_output": true,
                    "enable_thinking": true, "max_tokens": 512, "temperature": 0.7, "enable_search": true}
            })
        );
        // Non-streaming calls never think (thinking models refuse them otherwise).
        let chat = body(&request, false, false);
        assert_eq!(chat["parameters"]["enable_thinking"], false);
        assert!(chat["parameters"].get("incremental_output").is_none());
        // A model without thinking gets no new parameter; a thinking family gets false.
        let plain = ChatRequest::from("hi");
        let (wire, _) = NativeRequest::new(
            &plain,
            "qwen-max",
            BodyMode {
                stream: false,
                multimodal: false,
            },
            "qwen",
        )
        .unwrap();
        assert!(
            serde_json::to_value(wire).unwrap()["parameters"]
                .get("enable_thinking")
                .is_none()
        );
        let (wire, _) = NativeRequest::new(
            &plain,
            "qwen3-235b-a22b",
            BodyMode {
                stream: false,
                multimodal: false,
            },
            "qwen",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(wire).unwrap()["parameters"]["enable_thinking"],
            false
        );
    }

    #[test]
    fn multimodal_parts_and_refusals() {
        let request = ChatRequest::new(
            "x",
            vec![
                Message::system("Describe."),
                Message::user_parts(vec![
                    ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
                    ContentPart::text("What is this?"),
                ]),
            ],
        );
        let sent = body(&request, false, true);
        assert_eq!(
            sent["input"]["messages"],
            json!([
                {"role": "system", "content": [{"text": "Describe."}]},
                {"role": "user", "content": [{"image": "data:image/png;base64,iVBORw0KGgo="}, {"text": "What is this?"}]}
            ])
        );
        assert!(sent["parameters"].get("result_format").is_none());
        let err = NativeRequest::new(
            &request,
            "qwen-plus",
            BodyMode {
                stream: false,
                multimodal: false,
            },
            "qwen",
        )
        .unwrap_err();
        assert!(err.to_string().contains("text path"), "{err}");
        let penalty = ChatRequest {
            frequency_penalty: Some(0.5),
            ..ChatRequest::from("hi")
        };
        let err = NativeRequest::new(
            &penalty,
            "qwen-plus",
            BodyMode {
                stream: false,
                multimodal: false,
            },
            "qwen",
        )
        .unwrap_err();
        assert!(err.to_string().contains("frequency_penalty"), "{err}");
    }

    #[test]
    fn cumulative_output_when_the_caller_turns_incremental_off() {
        let mut request = ChatRequest::from("hi");
        request
            .extra
            .insert("incremental_output".into(), json!(false));
        let (wire, sent) = NativeRequest::new(
            &request,
            "qwen-plus",
            BodyMode {
                stream: true,
                multimodal: false,
            },
            "qwen",
        )
        .unwrap();
        assert!(sent.cumulative);
        assert_eq!(
            serde_json::to_value(wire).unwrap()["parameters"]["incremental_output"],
            false
        );
    }
}
