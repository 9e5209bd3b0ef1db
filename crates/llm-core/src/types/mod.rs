//! OpenAI Chat Completions types.
//!
//! Every type here serializes to exactly the JSON of the OpenAI Chat Completions API, so a
//! request parsed from an OpenAI client can be forwarded and a response returned to one
//! unchanged. Fields this crate does not model are kept in an `extra` pass-through map
//! rather than dropped or rejected.

mod message;
mod request;
mod response;
mod write;

pub use write::ChunkHeadCache;
pub(crate) use write::{any_needs_escape, first_needs_escape};

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

/// `Deserialize` for a struct whose unmodelled fields go to its `extra` map, in one pass.
///
/// This is what `#[serde(flatten)] extra: Extra` means, without its cost: serde's flatten
/// buffers every field of the object into an intermediate tree and deserializes each a
/// second time, which made (de)serializing the request, the answer and every streamed
/// chunk a large share of the gateway's CPU time. Each entry names a field, its JSON key
/// and the value used when the key is absent (`return Err(…)` for a required field).
/// Duplicate known keys are an error, as with the derive; unknown keys are kept.
macro_rules! deserialize_with_extra {
    ($ty:ident { $($field:ident: $json:literal => $default:expr),* $(,)? }) => {
        deserialize_with_extra!(@impl $ty {} { $($field: $json => $default),* });
    };
    // With `deserialize_in_place` too: the fields are read straight into an existing value,
    // which a stream translator uses to parse each chunk where it is queued (a chunk is a
    // few hundred bytes, and `deserialize` returns it through several moves).
    ($ty:ident in_place { $($field:ident: $json:literal => $default:expr),* $(,)? }) => {
        deserialize_with_extra!(@impl $ty {
            fn deserialize_in_place<D: serde::Deserializer<'de>>(
                deserializer: D,
                place: &mut Self,
            ) -> Result<(), D::Error> {
                struct InPlace<'a>(&'a mut $ty);
                impl<'de> serde::de::Visitor<'de> for InPlace<'_> {
                    type Value = ();
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($ty)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<(), A::Error> {
                        $(let mut $field = false;)*
                        if !self.0.extra.is_empty() {
                            self.0.extra.clear();
                        }
                        while let Some(key) = map.next_key::<$crate::kit::JsonKey<'de>>()? {
                            match key.0.as_ref() {
                                $($json => {
                                    if $field {
                                        return Err(serde::de::Error::duplicate_field($json));
                                    }
                                    $field = true;
                                    self.0.$field = map.next_value()?;
                                })*
                                _ => {
                                    let value = map.next_value()?;
                                    self.0.extra.insert(key.0.into_owned(), value);
                                }
                            }
                        }
                        $(if !$field {
                            self.0.$field = $default;
                        })*
                        Ok(())
                    }
                }
                deserializer.deserialize_map(InPlace(place))
            }
        } { $($field: $json => $default),* });
    };
    (@impl $ty:ident { $($in_place:tt)* } { $($field:ident: $json:literal => $default:expr),* }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl<'de> serde::de::Visitor<'de> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($ty)))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        $(let mut $field = None;)*
                        let mut extra = $crate::types::Extra::new();
                        while let Some(key) = map.next_key::<$crate::kit::JsonKey<'de>>()? {
                            match key.0.as_ref() {
                                $($json => {
                                    if $field.is_some() {
                                        return Err(serde::de::Error::duplicate_field($json));
                                    }
                                    $field = Some(map.next_value()?);
                                })*
                                _ => {
                                    let value = map.next_value()?;
                                    extra.insert(key.0.into_owned(), value);
                                }
                            }
                        }
                        Ok($ty {
                            $($field: match $field {
                                Some(value) => value,
                                None => $default,
                            },)*
                            extra,
                        })
                    }
                }
                deserializer.deserialize_map(Visitor)
            }

            $($in_place)*
        }
    };
}
pub(crate) use deserialize_with_extra;

#[cfg(test)]
mod tests;
