use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Extra, Message, Role, ToolKind, deserialize_with_extra};

/// A complete answer (`object: "chat.completion"`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct ChatResponse {
    /// The completion's id.
    #[serde(default)]
    pub id: String,
    /// Always `chat.completion`.
    #[serde(default = "chat_completion")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The backend configuration fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// The service tier that served the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// The choices (one unless `n` was set).
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Fields not modelled here (for example Azure's `prompt_filter_results`).
    #[serde(flatten)]
    pub extra: Extra,
}

fn chat_completion() -> String {
    ChatResponse::OBJECT.to_owned()
}

fn chat_completion_chunk() -> String {
    ChatChunk::OBJECT.to_owned()
}

impl ChatResponse {
    /// The `object` value of a complete answer.
    pub const OBJECT: &'static str = "chat.completion";

    /// A response with the given identity and choices; `object` is set for you.
    #[must_use]
    pub fn new(
        id: impl Into<String>,
        created: u64,
        model: impl Into<String>,
        choices: Vec<Choice>,
    ) -> Self {
        Self {
            id: id.into(),
            object: Self::OBJECT.to_owned(),
            created,
            model: model.into(),
            choices,
            ..Self::default()
        }
    }

    /// The first choice's text content, if any.
    #[must_use]
    pub fn text(&self) -> Option<String> {
        self.choices
            .first()
            .and_then(|choice| choice.message.text())
    }
}

/// One choice of a complete answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Choice {
    /// The choice's index.
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    pub message: Message,
    /// Why generation stopped.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Fields not modelled here (for example Azure's `content_filter_results`).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Choice {
    /// A choice with `message` and `finish_reason`.
    #[must_use]
    pub fn new(index: u32, message: Message, finish_reason: Option<FinishReason>) -> Self {
        Self {
            index,
            message,
            finish_reason,
            logprobs: None,
            extra: Extra::new(),
        }
    }
}

/// One streamed chunk (`object: "chat.completion.chunk"`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct ChatChunk {
    /// The completion's id, the same on every chunk.
    #[serde(default)]
    pub id: String,
    /// Always `chat.completion.chunk`.
    #[serde(default = "chat_completion_chunk")]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answers.
    #[serde(default)]
    pub model: String,
    /// The backend configuration fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    /// The service tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// The deltas; empty on the final usage chunk.
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Usage, on the final chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChatChunk {
    /// The `object` value of a chunk.
    pub const OBJECT: &'static str = "chat.completion.chunk";

    /// The JSON keys of the head members: every field but `choices`, `usage` and the
    /// pass-through ones, the members [`clone_head_from`](Self::clone_head_from) copies.
    pub const HEAD_FIELDS: [&'static str; 6] = [
        "id",
        "object",
        "created",
        "model",
        "system_fingerprint",
        "service_tier",
    ];

    /// Copy `other`'s head members ([`HEAD_FIELDS`](Self::HEAD_FIELDS)) into this chunk,
    /// for a relay whose chunks share them.
    ///
    /// ```
    /// use llm_core::ChatChunk;
    ///
    /// let first = ChatChunk::new("c1", 7, "m", Vec::new());
    /// let mut next = ChatChunk::default();
    /// next.clone_head_from(&first);
    /// assert_eq!((next.id.as_str(), next.created, next.model.as_str()), ("c1", 7, "m"));
    /// ```
    pub fn clone_head_from(&mut self, other: &Self) {
        // Destructured without `..`: a field added to the type fails to compile here until
        // it is sorted into the head (and `HEAD_FIELDS`) or not.
        let Self {
            id,
            object,
            created,
            model,
            system_fingerprint,
            service_tier,
            choices: _,
            usage: _,
            extra: _,
        } = other;
        // `clone`, not `clone_from`: a relay copies into a new chunk, whose strings are
        // empty, and an exact allocation is cheaper than growing them.
        self.id = id.clone();
        self.object = object.clone();
        self.created = *created;
        self.model = model.clone();
        self.system_fingerprint = system_fingerprint.clone();
        self.service_tier = service_tier.clone();
    }

    /// A chunk with the given identity and choices; `object` is set for you.
    #[must_use]
    pub fn new(
        id: impl Into<String>,
        created: u64,
        model: impl Into<String>,
        choices: Vec<ChunkChoice>,
    ) -> Self {
        Self {
            id: id.into(),
            object: Self::OBJECT.to_owned(),
            created,
            model: model.into(),
            choices,
            ..Self::default()
        }
    }

    /// Whether any choice carries content: text, reasoning, a refusal or a tool-call delta.
    ///
    /// This is the test of the stream commit rule: a stream is committed once a chunk with
    /// content reached the caller.
    #[must_use]
    pub fn has_content(&self) -> bool {
        self.choices.iter().any(|choice| {
            let delta = &choice.delta;
            delta
                .content
                .as_deref()
                .is_some_and(|text| !text.is_empty())
                || delta
                    .reasoning_content
                    .as_deref()
                    .is_some_and(|text| !text.is_empty())
                || delta
                    .refusal
                    .as_deref()
                    .is_some_and(|text| !text.is_empty())
                || delta
                    .tool_calls
                    .as_ref()
                    .is_some_and(|calls| !calls.is_empty())
        })
    }

    /// The text content of the first choice's delta, if any.
    #[must_use]
    pub fn content(&self) -> Option<&str> {
        self.choices
            .first()
            .and_then(|choice| choice.delta.content.as_deref())
    }
}

/// One choice's delta in a chunk.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct ChunkChoice {
    /// The choice's index.
    #[serde(default)]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default)]
    pub delta: Delta,
    /// Set on the chunk that ends the choice, `null` before.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
    /// Log probabilities, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Value>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ChunkChoice {
    /// A choice with `delta` and `finish_reason`.
    #[must_use]
    pub fn new(index: u32, delta: Delta, finish_reason: Option<FinishReason>) -> Self {
        Self {
            index,
            delta,
            finish_reason,
            logprobs: None,
            extra: Extra::new(),
        }
    }
}

/// What one chunk adds to a choice.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct Delta {
    /// `assistant`, on the first chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A piece of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A piece of reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// A piece of a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// Tool-call fragments, by index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Delta {
    /// A delta carrying a piece of text.
    #[must_use]
    pub fn content(text: impl Into<String>) -> Self {
        Self {
            content: Some(text.into()),
            ..Self::default()
        }
    }
}

/// A fragment of a tool call. The first fragment of a call has `id` and `function.name`;
/// later ones carry only `index` and a piece of `function.arguments`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolCallDelta {
    /// Which call of the message this fragment belongs to.
    #[serde(default)]
    pub index: u32,
    /// The call's id (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function` (first fragment).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ToolKind>,
    /// Name and argument fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

impl ToolCallDelta {
    /// A fragment with `index` and the given parts.
    #[must_use]
    pub fn new(
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: Option<String>,
    ) -> Self {
        Self {
            index,
            kind: id.as_ref().map(|_| ToolKind::Function),
            id,
            function: Some(FunctionCallDelta { name, arguments }),
        }
    }
}

/// A fragment of a function call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    /// The function's name (first fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A piece of the JSON arguments string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Why a choice ended. Unknown upstream values are kept in [`FinishReason::Other`] rather
/// than failing deserialization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FinishReason {
    /// A natural stop or a stop sequence.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// Content was withheld by a filter.
    ContentFilter,
    /// The deprecated function-call ending.
    FunctionCall,
    /// A value this crate does not know.
    Other(String),
}

impl FinishReason {
    /// The value as OpenAI spells it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::FunctionCall => "function_call",
            Self::Other(other) => other,
        }
    }
}

impl From<&str> for FinishReason {
    fn from(value: &str) -> Self {
        match value {
            "stop" => Self::Stop,
            "length" => Self::Length,
            "tool_calls" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            "function_call" => Self::FunctionCall,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FinishReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FinishReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from(value.as_ref()))
    }
}

/// Token usage. `prompt_tokens` includes cached tokens and `completion_tokens` includes
/// reasoning tokens, as in OpenAI's semantics.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// Cached and other input details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    /// Reasoning and other output details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Fields not modelled here (for example DeepSeek's `prompt_cache_hit_tokens`).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Usage {
    /// Usage with the given counts and `total_tokens` as their sum.
    #[must_use]
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            ..Self::default()
        }
    }

    /// Cached input tokens, when reported.
    #[must_use]
    pub fn cached_tokens(&self) -> Option<u64> {
        self.prompt_tokens_details
            .as_ref()
            .and_then(|details| details.cached_tokens)
    }

    /// Reasoning output tokens, when reported.
    #[must_use]
    pub fn reasoning_tokens(&self) -> Option<u64> {
        self.completion_tokens_details
            .as_ref()
            .and_then(|details| details.reasoning_tokens)
    }
}

/// Details of the input tokens.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct PromptTokensDetails {
    /// Tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// Tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    /// Audio input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl PromptTokensDetails {
    /// Details with only `cached_tokens` set.
    #[must_use]
    pub fn cached(cached_tokens: u64) -> Self {
        Self {
            cached_tokens: Some(cached_tokens),
            ..Self::default()
        }
    }
}

/// Details of the output tokens.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct CompletionTokensDetails {
    /// Reasoning tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// Audio output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Predicted tokens that appeared in the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_prediction_tokens: Option<u64>,
    /// Predicted tokens that did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_prediction_tokens: Option<u64>,
    /// Fields not modelled here.
    #[serde(flatten)]
    pub extra: Extra,
}

impl CompletionTokensDetails {
    /// Details with only `reasoning_tokens` set.
    #[must_use]
    pub fn reasoning(reasoning_tokens: u64) -> Self {
        Self {
            reasoning_tokens: Some(reasoning_tokens),
            ..Self::default()
        }
    }
}

deserialize_with_extra!(ChatResponse {
    id: "id" => String::new(),
    object: "object" => chat_completion(),
    created: "created" => 0,
    model: "model" => String::new(),
    system_fingerprint: "system_fingerprint" => None,
    service_tier: "service_tier" => None,
    choices: "choices" => Vec::new(),
    usage: "usage" => None,
});

deserialize_with_extra!(Choice {
    index: "index" => 0,
    message: "message" => return Err(serde::de::Error::missing_field("message")),
    finish_reason: "finish_reason" => None,
    logprobs: "logprobs" => None,
});

deserialize_with_extra!(ChatChunk in_place {
    id: "id" => String::new(),
    object: "object" => chat_completion_chunk(),
    created: "created" => 0,
    model: "model" => String::new(),
    system_fingerprint: "system_fingerprint" => None,
    service_tier: "service_tier" => None,
    choices: "choices" => Vec::new(),
    usage: "usage" => None,
});

deserialize_with_extra!(ChunkChoice {
    index: "index" => 0,
    delta: "delta" => Delta::default(),
    finish_reason: "finish_reason" => None,
    logprobs: "logprobs" => None,
});

deserialize_with_extra!(Delta {
    role: "role" => None,
    content: "content" => None,
    reasoning_content: "reasoning_content" => None,
    refusal: "refusal" => None,
    tool_calls: "tool_calls" => None,
});

deserialize_with_extra!(Usage {
    prompt_tokens: "prompt_tokens" => 0,
    completion_tokens: "completion_tokens" => 0,
    total_tokens: "total_tokens" => 0,
    prompt_tokens_details: "prompt_tokens_details" => None,
    completion_tokens_details: "completion_tokens_details" => None,
});

deserialize_with_extra!(PromptTokensDetails {
    cached_tokens: "cached_tokens" => None,
    cache_write_tokens: "cache_write_tokens" => None,
    audio_tokens: "audio_tokens" => None,
});

deserialize_with_extra!(CompletionTokensDetails {
    reasoning_tokens: "reasoning_tokens" => None,
    audio_tokens: "audio_tokens" => None,
    accepted_prediction_tokens: "accepted_prediction_tokens" => None,
    rejected_prediction_tokens: "rejected_prediction_tokens" => None,
});
