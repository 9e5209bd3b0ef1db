//! The OpenAI Chat Completions request body, borrowed from a [`ChatRequest`].
//!
//! Reference: <https://platform.openai.com/docs/api-reference/chat/create>. The body is
//! the request itself, with the upstream model and the streaming fields set by the client,
//! so nothing is copied: a retry serializes the same borrowed request again.

use std::borrow::Cow;

use llm_core::{
    ChatRequest, Extra, Message, ResponseFormat, Stop, StreamOptions, Tool, ToolChoice,
};
use serde::Serialize;

/// The messages sent: the request's own, or a copy where an endpoint changed some.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum WireMessages<'a> {
    /// As the request has them.
    Borrowed(&'a [Message]),
    /// Changed by the endpoint (only changed ones are owned).
    Patched(Vec<Cow<'a, Message>>),
}

/// The request body.
#[derive(Debug, Serialize)]
pub(crate) struct WireRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<&'a str>,
    pub(crate) messages: WireMessages<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<&'a Stop>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logit_bias: Option<&'a Extra>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_logprobs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<WireStreamOptions<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a [Tool]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a ResponseFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    /// Fields the request carried that are not modelled: forwarded as they came.
    #[serde(flatten)]
    extra: Cow<'a, Extra>,
}

/// `stream_options` with `include_usage` forced on, keeping the caller's other options.
#[derive(Debug, Serialize)]
pub(crate) struct WireStreamOptions<'a> {
    include_usage: bool,
    #[serde(flatten)]
    extra: Option<&'a Extra>,
}

/// How the body is to be sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyMode {
    /// A streamed request.
    pub(crate) stream: bool,
    /// Ask for the final usage chunk (streams only; some API versions reject the field).
    pub(crate) include_usage: bool,
}

impl<'a> WireRequest<'a> {
    /// The body for `request`, sending `model` upstream.
    pub(crate) fn new(request: &'a ChatRequest, model: Option<&'a str>, mode: BodyMode) -> Self {
        let stream_options = (mode.stream && mode.include_usage).then(|| WireStreamOptions {
            include_usage: true,
            extra: request
                .stream_options
                .as_ref()
                .map(|options: &StreamOptions| &options.extra),
        });
        Self {
            model,
            messages: WireMessages::Borrowed(&request.messages),
            temperature: request.temperature,
            top_p: request.top_p,
            n: request.n,
            stop: request.stop.as_ref(),
            max_tokens: request.max_tokens,
            max_completion_tokens: request.max_completion_tokens,
            presence_penalty: request.presence_penalty,
            frequency_penalty: request.frequency_penalty,
            logit_bias: request.logit_bias.as_ref(),
            logprobs: request.logprobs,
            top_logprobs: request.top_logprobs,
            seed: request.seed,
            user: request.user.as_deref(),
            stream: mode.stream,
            stream_options,
            tools: request.tools.as_deref(),
            tool_choice: request.tool_choice.as_ref(),
            parallel_tool_calls: request.parallel_tool_calls,
            response_format: request.response_format.as_ref(),
            reasoning_effort: request.reasoning_effort.as_deref(),
            extra: Cow::Borrowed(&request.extra),
        }
    }

    /// Send `messages` instead of the request's.
    pub(crate) fn with_messages(mut self, messages: Vec<Cow<'a, Message>>) -> Self {
        self.messages = WireMessages::Patched(messages);
        self
    }

    /// Add (or replace) top-level fields.
    pub(crate) fn with_extra(mut self, added: Extra) -> Self {
        self.extra.to_mut().extend(added);
        self
    }

    /// The body: the same bytes as `serde_json::to_vec(self)`, with the messages (most of
    /// a body) written by [`Message::write_json`] rather than serde's generic encoder.
    /// Destructured without `..`, so a new field does not compile until it is written.
    pub(crate) fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        /// `key` and `value`, when there is one.
        fn field<T: Serialize + ?Sized>(
            out: &mut Vec<u8>,
            key: &[u8],
            value: Option<&T>,
        ) -> serde_json::Result<()> {
            if let Some(value) = value {
                out.extend_from_slice(key);
                serde_json::to_writer(&mut *out, value)?;
            }
            Ok(())
        }
        let Self {
            model,
            messages,
            temperature,
            top_p,
            n,
            stop,
            max_tokens,
            max_completion_tokens,
            presence_penalty,
            frequency_penalty,
            logit_bias,
            logprobs,
            top_logprobs,
            seed,
            user,
            stream,
            stream_options,
            tools,
            tool_choice,
            parallel_tool_calls,
            response_format,
            reasoning_effort,
            extra,
        } = self;
        let mut out = Vec::with_capacity(512);
        out.push(b'{');
        field(&mut out, b"\"model\":", model.as_ref())?;
        if model.is_some() {
            out.push(b',');
        }
        out.extend_from_slice(b"\"messages\":[");
        let mut write = |i: usize, message: &Message| {
            if i > 0 {
                out.push(b',');
            }
            message.write_json(&mut out)
        };
        match messages {
            WireMessages::Borrowed(list) => {
                for (i, message) in list.iter().enumerate() {
                    write(i, message)?;
                }
            }
            WireMessages::Patched(list) => {
                for (i, message) in list.iter().enumerate() {
                    write(i, message)?;
                }
            }
        }
        out.push(b']');
        field(&mut out, b",\"temperature\":", temperature.as_ref())?;
        field(&mut out, b",\"top_p\":", top_p.as_ref())?;
        field(&mut out, b",\"n\":", n.as_ref())?;
        field(&mut out, b",\"stop\":", *stop)?;
        field(&mut out, b",\"max_tokens\":", max_tokens.as_ref())?;
        field(
            &mut out,
            b",\"max_completion_tokens\":",
            max_completion_tokens.as_ref(),
        )?;
        field(
            &mut out,
            b",\"presence_penalty\":",
            presence_penalty.as_ref(),
        )?;
        field(
            &mut out,
            b",\"frequency_penalty\":",
            frequency_penalty.as_ref(),
        )?;
        field(&mut out, b",\"logit_bias\":", *logit_bias)?;
        field(&mut out, b",\"logprobs\":", logprobs.as_ref())?;
        field(&mut out, b",\"top_logprobs\":", top_logprobs.as_ref())?;
        field(&mut out, b",\"seed\":", seed.as_ref())?;
        field(&mut out, b",\"user\":", *user)?;
        if *stream {
            out.extend_from_slice(b",\"stream\":true");
        }
        field(&mut out, b",\"stream_options\":", stream_options.as_ref())?;
        field(&mut out, b",\"tools\":", *tools)?;
        field(&mut out, b",\"tool_choice\":", *tool_choice)?;
        field(
            &mut out,
            b",\"parallel_tool_calls\":",
            parallel_tool_calls.as_ref(),
        )?;
        field(&mut out, b",\"response_format\":", *response_format)?;
        field(&mut out, b",\"reasoning_effort\":", *reasoning_effort)?;
        for (key, value) in extra.iter() {
            out.push(b',');
            serde_json::to_writer(&mut out, key)?;
            out.push(b':');
            serde_json::to_writer(&mut out, value)?;
        }
        out.push(b'}');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use llm_core::{ChatRequest, ContentPart, Message, ResponseFormat, Stop, StreamOptions, Tool};
    use serde_json::json;

    use super::*;

    fn fixtures() -> Vec<(&'static str, ChatRequest)> {
        let tools = ChatRequest {
            tools: Some(vec![Tool::function(
                "get_weather",
                "Weather for a city",
                json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            )]),
            parallel_tool_calls: Some(true),
            ..ChatRequest::new("gpt-4o", vec![Message::user("Weather in Paris?")])
        };
        let image = ChatRequest::new(
            "gpt-4o",
            vec![Message::user_parts(vec![
                ContentPart::text("What is this?"),
                ContentPart::image_url("https://example.com/cat.png"),
            ])],
        );
        let json_mode = ChatRequest {
            response_format: Some(ResponseFormat::JsonObject),
            ..ChatRequest::new("gpt-4o", vec![Message::user("Colours as JSON")])
        };
        let stop = ChatRequest {
            stop: Some(Stop::Many(vec!["END".into(), "\n\n".into()])),
            temperature: Some(0.2),
            max_tokens: Some(100),
            ..ChatRequest::new(
                "gpt-4o",
                vec![Message::system("Be brief."), Message::user("Hi")],
            )
        };
        vec![
            ("tools", tools),
            ("image", image),
            ("json_mode", json_mode),
            ("stop", stop),
        ]
    }

    /// `to_json` against serde's encoding of the same body.
    fn assert_same_body(wire: &WireRequest<'_>) {
        assert_eq!(
            String::from_utf8(wire.to_json().unwrap()).unwrap(),
            serde_json::to_string(wire).unwrap()
        );
    }

    #[test]
    fn the_direct_body_is_what_serde_writes() {
        let mut every = ChatRequest {
            temperature: Some(0.7),
            top_p: Some(1.0),
            n: Some(2),
            stop: Some(Stop::One("END".into())),
            max_tokens: Some(10),
            max_completion_tokens: Some(20),
            presence_penalty: Some(-0.5),
            frequency_penalty: Some(1.5e-3),
            logit_bias: Some([("50256".to_owned(), json!(-100))].into_iter().collect()),
            logprobs: Some(true),
            top_logprobs: Some(3),
            seed: Some(-42),
            user: Some("user \"1\"".into()),
            tools: fixtures()[0].1.tools.clone(),
            tool_choice: Some(ToolChoice::Mode(llm_core::ToolChoiceMode::Auto)),
            parallel_tool_calls: Some(false),
            response_format: Some(ResponseFormat::JsonObject),
            reasoning_effort: Some("low".into()),
            stream_options: Some(StreamOptions {
                include_usage: Some(false),
                extra: [("include_obfuscation".to_owned(), json!(false))]
                    .into_iter()
                    .collect(),
            }),
            ..ChatRequest::new(
                "gpt-4o",
                vec![
                    Message::system("Be\tbrief.\u{1}"),
                    Message::user_parts(vec![
                        ContentPart::text("What is this?"),
                        ContentPart::image_url("https://example.com/cat.png"),
                    ]),
                ],
            )
        };
        every.extra.insert("metadata".into(), json!({"k": "v"}));
        every
            .extra
            .insert("model".into(), json!("duplicate, as serde writes it"));
        for stream in [false, true] {
            for model in [None, Some("gpt-4o-2024-08-06")] {
                let mode = BodyMode {
                    stream,
                    include_usage: true,
                };
                assert_same_body(&WireRequest::new(&every, model, mode));
                let patched = vec![Cow::Owned(Message::user("patched"))];
                assert_same_body(
                    &WireRequest::new(&every, model, mode)
                        .with_messages(patched)
                        .with_extra(
                            [("enable_thinking".to_owned(), json!(true))]
                                .into_iter()
                                .collect(),
                        ),
                );
            }
        }
        for (_, request) in fixtures() {
            let mode = BodyMode {
                stream: false,
                include_usage: true,
            };
            assert_same_body(&WireRequest::new(&request, Some("m"), mode));
        }
    }

    #[test]
    fn body_snapshots() {
        for (name, request) in fixtures() {
            let chat = WireRequest::new(
                &request,
                Some("gpt-4o-2024-08-06"),
                BodyMode {
                    stream: false,
                    include_usage: true,
                },
            );
            insta::assert_json_snapshot!(format!("chat_{name}"), chat);
        }
    }

    #[test]
    fn stream_body_forces_usage_and_keeps_caller_options() {
        let mut request = ChatRequest::from("hi");
        request.stream = Some(false);
        request.stream_options = Some(StreamOptions {
            include_usage: Some(false),
            extra: [("include_obfuscation".to_owned(), json!(false))]
                .into_iter()
                .collect(),
        });
        request.extra.insert("metadata".into(), json!({"k": "v"}));
        let body = serde_json::to_value(WireRequest::new(
            &request,
            Some("m"),
            BodyMode {
                stream: true,
                include_usage: true,
            },
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true, "include_obfuscation": false},
                "metadata": {"k": "v"}
            })
        );
        // Non-streaming bodies never carry stream fields (OpenAI rejects stream_options then).
        let chat = serde_json::to_value(WireRequest::new(
            &request,
            Some("m"),
            BodyMode {
                stream: false,
                include_usage: true,
            },
        ))
        .unwrap();
        assert!(chat.get("stream").is_none() && chat.get("stream_options").is_none());
        // Old Azure API versions get no stream_options at all.
        let old = serde_json::to_value(WireRequest::new(
            &request,
            Some("m"),
            BodyMode {
                stream: true,
                include_usage: false,
            },
        ))
        .unwrap();
        assert!(old.get("stream_options").is_none());
    }
}
