use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Extra, Message, ToolKind, deserialize_with_extra};

/// An OpenAI Chat Completions request.
///
/// Build one with a struct literal and `..Default::default()`, with [`ChatRequest::new`],
/// or from a string, which makes a one-user-message request:
///
/// ```
/// use llm_core::{ChatRequest, Message};
///
/// let quick: ChatRequest = "hello".into();
/// assert_eq!(quick.messages, vec![Message::user("hello")]);
///
/// let full = ChatRequest {
///     temperature: Some(0.2),
///     ..ChatRequest::new("gpt-4o", vec![Message::system("be brief"), Message::user("hi")])
/// };
/// assert_eq!(full.model.as_deref(), Some("gpt-4o"));
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ChatRequest {
    /// The model or model group; `None` lets the router pick its default group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// How many choices to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Up to four stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// The legacy output-token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The output-token limit including reasoning tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Presence penalty, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Token id to bias, -100 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<Extra>,
    /// Whether to return log probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// How many top log probabilities per token (needs `logprobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Best-effort determinism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// An end-user identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Whether the caller asked for a stream. Providers decide this from the method
    /// called (`chat` or `stream`), not from this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Stream options; `include_usage` asks for a final usage chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Text, JSON mode or a JSON schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Reasoning effort for reasoning models (`minimal`, `low`, `medium`, `high`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Fields not modelled here, forwarded where the provider accepts them.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatRequest {
    /// A request for `model` with `messages` and nothing else set.
    #[must_use]
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: Some(model.into()),
            messages,
            ..Self::default()
        }
    }

    /// Whether the caller asked for a final usage chunk on a stream.
    #[must_use]
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false)
    }
}

impl From<&str> for ChatRequest {
    fn from(text: &str) -> Self {
        Self {
            messages: vec![Message::user(text)],
            ..Self::default()
        }
    }
}

impl From<String> for ChatRequest {
    fn from(text: String) -> Self {
        Self {
            messages: vec![Message::user(text)],
            ..Self::default()
        }
    }
}

/// Stop sequences: one string or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl Stop {
    /// The stop sequences as a slice-like list.
    #[must_use]
    pub fn as_vec(&self) -> Vec<&str> {
        match self {
            Self::One(one) => vec![one.as_str()],
            Self::Many(many) => many.iter().map(String::as_str).collect(),
        }
    }
}

/// Options for streamed responses.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StreamOptions {
    /// Send a final chunk with usage and empty `choices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    /// Fields not modelled here (for example `include_obfuscation`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type", default)]
    pub kind: ToolKind,
    /// The function.
    pub function: FunctionDefinition,
}

impl Tool {
    /// A function tool with a JSON-schema `parameters` object.
    #[must_use]
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self {
            kind: ToolKind::Function,
            function: FunctionDefinition {
                name: name.into(),
                description: Some(description.into()),
                parameters: Some(parameters),
                strict: None,
            },
        }
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    /// The function's name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its parameters as a JSON Schema object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Whether the model must follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Which tool the model must call, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `"none"`, `"auto"` or `"required"`.
    Mode(ToolChoiceMode),
    /// `{"type":"function","function":{"name":"..."}}`.
    Named(NamedFunction),
    /// Another documented form (for example `allowed_tools`), passed through unchanged.
    Other(Value),
}

/// The string forms of `tool_choice`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoiceMode {
    /// Never call a tool.
    None,
    /// The model decides.
    Auto,
    /// Call at least one tool.
    Required,
}

/// A `tool_choice` that names one function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedFunction {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: ToolKind,
    /// The function to call.
    pub function: FunctionName,
}

/// A function's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionName {
    /// The name.
    pub name: String,
}

/// The output format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any valid JSON object ("JSON mode").
    JsonObject,
    /// JSON that follows a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// A named JSON schema for structured output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// The schema's name.
    pub name: String,
    /// What the output is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Whether to follow the schema exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

deserialize_with_extra!(ChatRequest {
    model: "model" => None,
    messages: "messages" => return Err(serde::de::Error::missing_field("messages")),
    temperature: "temperature" => None,
    top_p: "top_p" => None,
    n: "n" => None,
    stop: "stop" => None,
    max_tokens: "max_tokens" => None,
    max_completion_tokens: "max_completion_tokens" => None,
    presence_penalty: "presence_penalty" => None,
    frequency_penalty: "frequency_penalty" => None,
    logit_bias: "logit_bias" => None,
    logprobs: "logprobs" => None,
    top_logprobs: "top_logprobs" => None,
    seed: "seed" => None,
    user: "user" => None,
    stream: "stream" => None,
    stream_options: "stream_options" => None,
    tools: "tools" => None,
    tool_choice: "tool_choice" => None,
    parallel_tool_calls: "parallel_tool_calls" => None,
    response_format: "response_format" => None,
    reasoning_effort: "reasoning_effort" => None,
});

deserialize_with_extra!(StreamOptions {
    include_usage: "include_usage" => None,
});
