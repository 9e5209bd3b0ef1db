//! OpenAI Chat Completions types.
//!
//! Every type here serializes to exactly the JSON of the OpenAI Chat Completions API, so a
//! request parsed from an OpenAI client can be forwarded and a response returned to one
//! unchanged. Fields this crate does not model are kept in an `extra` pass-through map
//! rather than dropped or rejected.

mod message;
mod request;
mod response;

pub use message::{
    Content, ContentPart, FileRef, FunctionCall, ImageDetail, ImageUrl, InputAudio, Message, Role,
    ToolCall, ToolKind,
};
pub use request::{
    ChatRequest, FunctionDefinition, FunctionName, JsonSchemaFormat, NamedFunction, ResponseFormat,
    Stop, StreamOptions, Tool, ToolChoice, ToolChoiceMode,
};
pub use response::{
    ChatChunk, ChatResponse, Choice, ChunkChoice, CompletionTokensDetails, Delta, FinishReason,
    FunctionCallDelta, PromptTokensDetails, ToolCallDelta, Usage,
};

/// The pass-through map that keeps JSON fields a type does not model.
pub type Extra = serde_json::Map<String, serde_json::Value>;

#[cfg(test)]
mod tests;
