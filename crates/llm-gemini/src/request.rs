//! [`ChatRequest`] → Gemini `GenerateContentRequest`, borrowing the request's texts and
//! inline data (a retry serializes the same request again; images are never copied).
//!
//! Reference: Gemini API `models.generateContent` (`contents`, `systemInstruction`,
//! `generationConfig`, `tools[].functionDeclarations`, `toolConfig`). Roles are `user` and
//! `model`; tool results are `functionResponse` parts of a `user` turn; consecutive turns
//! of one role are merged.

use std::{borrow::Cow, collections::HashMap};

use llm_core::{
    ChatRequest, Content, ContentPart, Error, Message, ResponseFormat, Result, Role, ToolChoice,
    ToolChoiceMode,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{ids, schema};

/// The documented value that lets Gemini 3 accept a function call without a signature
/// (history from another model or client).
const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Body<'a> {
    contents: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[Tools; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<Value>,
    /// Fields the request carried that are not modelled (`safetySettings`,
    /// `cachedContent`, `labels`, …): forwarded as they came.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Serialize)]
struct Turn<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    parts: Vec<Part<'a>>,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_data: Option<Blob<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<FileData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<FunctionResponse<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    mime_type: Cow<'a, str>,
    data: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'a> {
    mime_type: Cow<'a, str>,
    file_uri: &'a str,
}

#[derive(Debug, Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct FunctionResponse<'a> {
    name: &'a str,
    response: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Tools {
    function_declarations: Vec<Value>,
}

/// The body for `request` sent to `model`.
pub(crate) fn body<'a>(request: &'a ChatRequest, model: &str, provider: &str) -> Result<Body<'a>> {
    if request.messages.is_empty() {
        return Err(Error::invalid_request("`messages` must not be empty"));
    }
    if request.logit_bias.is_some() {
        return Err(Error::invalid_request(format!(
            "{provider} (Gemini) does not support `logit_bias`"
        )));
    }
    // Tool names by call id, for the `functionResponse` of each tool message.
    let names: HashMap<&str, &str> = request
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|call| (call.id.as_str(), call.function.name.as_str()))
        .collect();
    let gemini_3 = model.contains("gemini-3");
    let mut system: Vec<Part<'a>> = Vec::new();
    let mut contents: Vec<Turn<'a>> = Vec::new();
    for message in &request.messages {
        let (role, parts) = match message.role {
            Role::System | Role::Developer => {
                system.extend(parts_of(message.content.as_ref(), provider)?);
                continue;
            }
            Role::Assistant => ("model", model_parts(message, gemini_3, provider)?),
            Role::Tool | Role::Function => ("user", vec![tool_result(message, &names, provider)?]),
            _ => ("user", parts_of(message.content.as_ref(), provider)?),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last.role == Some(role) => last.parts.extend(parts),
            _ => contents.push(Turn {
                role: Some(role),
                parts,
            }),
        }
    }
    if contents.is_empty() {
        return Err(Error::invalid_request(format!(
            "{provider}: Gemini needs at least one user or assistant message besides system messages"
        )));
    }
    let mut extra: Map<String, Value> = request
        .extra
        .iter()
        .filter(|(key, _)| !llm_core::kit::OPENAI_BOOKKEEPING.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let thinking = extra
        .remove("thinkingConfig")
        .or_else(|| extra.remove("thinking_config"));
    let generation_config = generation_config(request, model, thinking)?;
    let tools = request
        .tools
        .as_ref()
        .filter(|t| !t.is_empty())
        .map(|tools| {
            [Tools {
                function_declarations: tools
                    .iter()
                    .map(|tool| {
                        let mut declaration = Map::new();
                        declaration.insert("name".into(), Value::from(tool.function.name.as_str()));
                        if let Some(description) = &tool.function.description {
                            declaration
                                .insert("description".into(), Value::from(description.as_str()));
                        }
                        if let Some(parameters) = tool
                            .function
                            .parameters
                            .as_ref()
                            .and_then(schema::parameters)
                        {
                            declaration.insert("parameters".into(), parameters);
                        }
                        Value::Object(declaration)
                    })
                    .collect(),
            }]
        });
    Ok(Body {
        contents,
        system_instruction: (!system.is_empty()).then_some(Turn {
            role: None,
            parts: system,
        }),
        generation_config,
        tool_config: request.tool_choice.as_ref().map(tool_config).transpose()?,
        tools,
        extra,
    })
}

fn tool_config(choice: &ToolChoice) -> Result<Value> {
    let config = match choice {
        ToolChoice::Mode(ToolChoiceMode::Auto) => serde_json::json!({"mode": "AUTO"}),
        ToolChoice::Mode(ToolChoiceMode::None) => serde_json::json!({"mode": "NONE"}),
        ToolChoice::Mode(ToolChoiceMode::Required) => serde_json::json!({"mode": "ANY"}),
        ToolChoice::Named(named) => {
            serde_json::json!({"mode": "ANY", "allowedFunctionNames": [named.function.name]})
        }
        ToolChoice::Other(other) => {
            return Err(Error::invalid_request(format!(
                "tool_choice {other} cannot be expressed for Gemini"
            )));
        }
    };
    Ok(serde_json::json!({"functionCallingConfig": config}))
}

fn generation_config(
    request: &ChatRequest,
    model: &str,
    thinking: Option<Value>,
) -> Result<Option<Map<String, Value>>> {
    let mut config = Map::new();
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            config.insert(key.to_owned(), value);
        }
    };
    set("temperature", request.temperature.map(Value::from));
    set("topP", request.top_p.map(Value::from));
    set(
        "maxOutputTokens",
        request
            .max_completion_tokens
            .or(request.max_tokens)
            .map(Value::from),
    );
    set(
        "stopSequences",
        request.stop.as_ref().map(|stop| Value::from(stop.as_vec())),
    );
    set("candidateCount", request.n.map(Value::from));
    set("seed", request.seed.map(Value::from));
    set("presencePenalty", request.presence_penalty.map(Value::from));
    set(
        "frequencyPenalty",
        request.frequency_penalty.map(Value::from),
    );
    set("responseLogprobs", request.logprobs.map(Value::from));
    set("logprobs", request.top_logprobs.map(Value::from));
    match &request.response_format {
        Some(ResponseFormat::JsonObject) => {
            set("responseMimeType", Some(Value::from("application/json")));
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            set("responseMimeType", Some(Value::from("application/json")));
            set(
                "responseSchema",
                json_schema.schema.as_ref().map(schema::response_schema),
            );
        }
        Some(ResponseFormat::Text) | None => {}
    }
    let thinking = thinking.or_else(|| {
        let effort = request.reasoning_effort.as_deref()?;
        Some(if model.contains("gemini-3") {
            let level = match effort {
                "minimal" | "low" => "low",
                _ => "high",
            };
            serde_json::json!({"thinkingLevel": level, "includeThoughts": true})
        } else {
            let budget = match effort {
                "minimal" | "none" => 0,
                "low" => 1024,
                "medium" => 8192,
                _ => 24576,
            };
            serde_json::json!({"thinkingBudget": budget, "includeThoughts": budget > 0})
        })
    });
    set("thinkingConfig", thinking);
    Ok((!config.is_empty()).then_some(config))
}

/// The parts of user (or system) content.
fn parts_of<'a>(content: Option<&'a Content>, provider: &str) -> Result<Vec<Part<'a>>> {
    match content {
        None => Ok(Vec::new()),
        Some(Content::Text(text)) if text.is_empty() => Ok(Vec::new()),
        Some(Content::Text(text)) => Ok(vec![Part {
            text: Some(Cow::Borrowed(text)),
            ..Part::default()
        }]),
        Some(Content::Parts(parts)) => parts
            .iter()
            .filter(|part| !matches!(part, ContentPart::Text { text, .. } if text.is_empty()))
            .map(|part| content_part(part, provider))
            .collect(),
    }
}

fn content_part<'a>(part: &'a ContentPart, provider: &str) -> Result<Part<'a>> {
    Ok(match part {
        ContentPart::Text { text, .. } => Part {
            text: Some(Cow::Borrowed(text)),
            ..Part::default()
        },
        ContentPart::Refusal { refusal } => Part {
            text: Some(Cow::Borrowed(refusal)),
            ..Part::default()
        },
        ContentPart::ImageUrl { image_url } => media(&image_url.url, provider)?,
        ContentPart::InputAudio { input_audio } => Part {
            inline_data: Some(Blob {
                mime_type: Cow::Owned(format!("audio/{}", input_audio.format)),
                data: &input_audio.data,
            }),
            ..Part::default()
        },
        ContentPart::File { file } => match (&file.file_data, &file.file_id) {
            (Some(data), _) => match data.strip_prefix("data:") {
                Some(_) => media(data, provider)?,
                None => Part {
                    inline_data: Some(Blob {
                        mime_type: Cow::Borrowed(mime_of(
                            file.filename.as_deref().unwrap_or("file.pdf"),
                        )),
                        data,
                    }),
                    ..Part::default()
                },
            },
            (None, Some(id)) => Part {
                file_data: Some(FileData {
                    mime_type: Cow::Borrowed(mime_of(file.filename.as_deref().unwrap_or(id))),
                    file_uri: id,
                }),
                ..Part::default()
            },
            (None, None) => {
                return Err(Error::invalid_request(format!(
                    "{provider}: a file part needs file_data or file_id"
                )));
            }
        },
        other => {
            return Err(Error::invalid_request(format!(
                "{provider}: this content part cannot be sent to Gemini: {other:?}"
            )));
        }
    })
}

/// An image (or other media) by data URL (`inlineData`) or URI (`fileData`).
fn media<'a>(url: &'a str, provider: &str) -> Result<Part<'a>> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| Error::invalid_request(format!("{provider}: a data URL has no `,`")))?;
        let mime = meta.strip_suffix(";base64").ok_or_else(|| {
            Error::invalid_request(format!(
                "{provider}: only base64 data URLs can be sent to Gemini"
            ))
        })?;
        return Ok(Part {
            inline_data: Some(Blob {
                mime_type: Cow::Borrowed(if mime.is_empty() { "image/png" } else { mime }),
                data,
            }),
            ..Part::default()
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://") {
        return Ok(Part {
            file_data: Some(FileData {
                mime_type: Cow::Borrowed(mime_of(url)),
                file_uri: url,
            }),
            ..Part::default()
        });
    }
    Err(Error::invalid_request(format!(
        "{provider}: an image must be a data URL or an https:// or gs:// URI"
    )))
}

/// A MIME type from a file name or URL's extension.
fn mime_of(name: &str) -> &'static str {
    let path = name.split(['?', '#']).next().unwrap_or(name);
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("heic") => "image/heic",
        Some("heif") => "image/heif",
        Some("pdf") => "application/pdf",
        Some("mp3") => "audio/mp3",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        Some("txt") => "text/plain",
        _ => "image/jpeg",
    }
}

/// An assistant turn: its text, then its function calls with their thought signatures.
fn model_parts<'a>(message: &'a Message, gemini_3: bool, provider: &str) -> Result<Vec<Part<'a>>> {
    let mut parts = parts_of(message.content.as_ref(), provider)?;
    let calls = message.tool_calls.as_deref().unwrap_or_default();
    let mut signed = false;
    let first_call = parts.len();
    for call in calls {
        let (base, signature) = ids::decode(&call.id);
        signed |= signature.is_some();
        let args = match call.function.arguments.trim() {
            "" => Value::Object(Map::new()),
            text => serde_json::from_str::<Value>(text).map_err(|e| {
                Error::invalid_request(format!(
                    "{provider}: the arguments of tool call `{}` are not JSON: {e}",
                    call.id
                ))
            })?,
        };
        let args = match args {
            Value::Object(_) => args,
            other => serde_json::json!({"value": other}),
        };
        parts.push(Part {
            function_call: Some(FunctionCall {
                name: &call.function.name,
                args,
                id: ids::upstream_id(base),
            }),
            thought_signature: signature,
            ..Part::default()
        });
    }
    if gemini_3
        && !calls.is_empty()
        && !signed
        && let Some(part) = parts.get_mut(first_call)
    {
        part.thought_signature = Some(SKIP_SIGNATURE.to_owned());
    }
    Ok(parts)
}

/// A tool message → a `functionResponse` part (its `response` must be an object).
fn tool_result<'a>(
    message: &'a Message,
    names: &HashMap<&'a str, &'a str>,
    provider: &str,
) -> Result<Part<'a>> {
    let id = message.tool_call_id.as_deref().unwrap_or_default();
    let name = names
        .get(id)
        .copied()
        .or(message.name.as_deref())
        .ok_or_else(|| {
            Error::invalid_request(format!(
                "{provider}: the tool result for `{id}` answers no tool call in the conversation (Gemini needs the function's name)"
            ))
        })?;
    let text = message.text().unwrap_or_default();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(other) => serde_json::json!({"result": other}),
        Err(_) => serde_json::json!({"result": text}),
    };
    let (base, _) = ids::decode(id);
    Ok(Part {
        function_response: Some(FunctionResponse {
            name,
            response,
            id: ids::upstream_id(base),
        }),
        ..Part::default()
    })
}

#[cfg(test)]
mod tests {
    use llm_core::{ContentPart, FunctionCall as Call, Message, Tool, ToolCall, ToolKind};
    use serde_json::json;

    use super::*;

    fn to_value(request: &ChatRequest, model: &str) -> Value {
        serde_json::to_value(body(request, model, "gemini").unwrap()).unwrap()
    }

    fn call(id: &str, name: &str, args: &str) -> ToolCall {
        ToolCall {
            id: id.to_owned(),
            kind: ToolKind::Function,
            function: Call {
                name: name.to_owned(),
                arguments: args.to_owned(),
            },
        }
    }

    #[test]
    fn roles_system_and_tool_results() {
        let signed = ids::encode("call_gen_r_0", Some("CiQB0e2Kb+/xYQ=="));
        let mut assistant = Message::assistant("Let me check.");
        assistant.tool_calls = Some(vec![
            call(&signed, "get_weather", r#"{"city":"Paris"}"#),
            call("fc_77", "get_time", ""),
        ]);
        let request = ChatRequest::new(
            "m",
            vec![
                Message::system("You are terse."),
                Message::user("Weather and time in Paris?"),
                assistant,
                Message::tool(&signed, r#"{"temp":21}"#),
                Message::tool("fc_77", "noon"),
                Message::user("Thanks"),
            ],
        );
        let body = to_value(&request, "gemini-2.5-flash");
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "You are terse."}]})
        );
        let contents = body["contents"].as_array().unwrap();
        assert_eq!(
            contents.len(),
            3,
            "tool results and the next user text share a turn"
        );
        assert_eq!(contents[1]["role"], "model");
        assert_eq!(
            contents[1]["parts"][1]["functionCall"],
            json!({"name": "get_weather", "args": {"city": "Paris"}})
        );
        assert_eq!(
            contents[1]["parts"][1]["thoughtSignature"],
            "CiQB0e2Kb+/xYQ=="
        );
        assert_eq!(
            contents[1]["parts"][2]["functionCall"],
            json!({"name": "get_time", "args": {}, "id": "fc_77"})
        );
        assert_eq!(contents[2]["role"], "user");
        assert_eq!(
            contents[2]["parts"][0]["functionResponse"],
            json!({"name": "get_weather", "response": {"temp": 21}})
        );
        assert_eq!(
            contents[2]["parts"][1]["functionResponse"],
            json!({"name": "get_time", "response": {"result": "noon"}, "id": "fc_77"})
        );
        assert_eq!(contents[2]["parts"][2]["text"], "Thanks");
    }

    #[test]
    fn gemini_3_history_without_signatures_gets_the_escape_hatch() {
        let mut assistant = Message::assistant("");
        assistant.tool_calls = Some(vec![call("call_1", "f", "{}"), call("call_2", "f", "{}")]);
        let request = ChatRequest::new(
            "m",
            vec![
                Message::user("go"),
                assistant,
                Message::tool("call_1", "a"),
                Message::tool("call_2", "b"),
            ],
        );
        let body = to_value(&request, "gemini-3-pro-preview");
        let parts = &body["contents"][1]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], SKIP_SIGNATURE);
        assert!(parts[1].get("thoughtSignature").is_none());
        let older = to_value(&request, "gemini-2.5-pro");
        assert!(
            older["contents"][1]["parts"][0]
                .get("thoughtSignature")
                .is_none()
        );
    }

    #[test]
    fn images_config_tools_and_choice() {
        let request = ChatRequest {
            temperature: Some(0.2),
            top_p: Some(0.9),
            max_tokens: Some(256),
            n: Some(2),
            stop: Some(llm_core::Stop::One("END".into())),
            response_format: Some(ResponseFormat::JsonObject),
            tools: Some(vec![
                Tool::function(
                    "get_weather",
                    "Weather",
                    json!({"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}),
                ),
                Tool::function(
                    "ping",
                    "No parameters",
                    json!({"type": "object", "properties": {}}),
                ),
            ]),
            tool_choice: Some(ToolChoice::Mode(ToolChoiceMode::Required)),
            ..ChatRequest::new(
                "m",
                vec![Message::user_parts(vec![
                    ContentPart::text("What is this?"),
                    ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
                    ContentPart::image_url("gs://bucket/cat.jpg"),
                    ContentPart::image_url("https://example.com/dog.webp?x=1"),
                ])],
            )
        };
        let body = to_value(&request, "gemini-2.5-flash");
        let parts = &body["contents"][0]["parts"];
        assert_eq!(
            parts[1]["inlineData"],
            json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
        );
        assert_eq!(
            parts[2]["fileData"],
            json!({"mimeType": "image/jpeg", "fileUri": "gs://bucket/cat.jpg"})
        );
        assert_eq!(parts[3]["fileData"]["mimeType"], "image/webp");
        assert_eq!(
            body["generationConfig"],
            json!({"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256, "stopSequences": ["END"],
                "candidateCount": 2, "responseMimeType": "application/json"})
        );
        let declarations = &body["tools"][0]["functionDeclarations"];
        assert!(
            declarations[0]["parameters"]
                .get("additionalProperties")
                .is_none()
        );
        assert!(declarations[1].get("parameters").is_none());
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY"}})
        );
    }

    #[test]
    fn openai_bookkeeping_fields_are_not_forwarded_but_gemini_fields_are() {
        let mut request = ChatRequest::from("hi");
        request.extra.insert("store".into(), json!(false));
        request.extra.insert("metadata".into(), json!({"k": "v"}));
        request.extra.insert(
            "safetySettings".into(),
            json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]),
        );
        request
            .extra
            .insert("thinking_config".into(), json!({"thinkingBudget": 0}));
        let body = to_value(&request, "gemini-2.5-flash");
        assert!(body.get("store").is_none() && body.get("metadata").is_none());
        assert_eq!(body["safetySettings"][0]["threshold"], "BLOCK_NONE");
        assert_eq!(
            body["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 0})
        );
    }

    #[test]
    fn refusals_are_clear() {
        let remote = ChatRequest::new(
            "m",
            vec![Message::user_parts(vec![ContentPart::image_url(
                "ftp://x/y.png",
            )])],
        );
        assert!(body(&remote, "g", "gemini").is_err());
        let only_system = ChatRequest::new("m", vec![Message::system("s")]);
        assert!(body(&only_system, "g", "gemini").is_err());
        let orphan = ChatRequest::new("m", vec![Message::user("q"), Message::tool("nope", "r")]);
        let err = body(&orphan, "g", "gemini").unwrap_err();
        assert!(err.to_string().contains("answers no tool call"), "{err}");
    }
}
