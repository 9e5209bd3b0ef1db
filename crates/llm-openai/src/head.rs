//! The head a stream's frames repeat, read once.
//!
//! Every frame of an OpenAI-shaped stream starts with the same members, byte for byte:
//! `{"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":"…",
//! "system_fingerprint":"…"` and only then `,"choices":[…]`, `usage` and the rest. Reading
//! those head members again for every token was close to half of the JSON work per chunk.
//! [`Head`] remembers them from one frame that was read whole; a later frame that starts
//! with the same bytes is read from its `choices` on, and the head's values are copied in.
//!
//! The result is the chunk a whole read gives, exactly:
//!
//! - the head is made only from a frame that parsed as a chunk, and only when its bytes
//!   before `,"choices":` are complete members of the top-level object (`head + "}"` parses)
//!   naming nothing but the chunk's head fields, so a later frame with the same first bytes
//!   has exactly those members before the comma;
//! - the rest of such a frame is read as an object of its own (`{` + what follows the
//!   comma), which must end where the frame ends; a head field in it (a duplicate, or a
//!   head field that comes after `choices` in this frame) stops the shortcut, and the frame
//!   is read whole, which gives the duplicate its error or the field its value;
//! - anything else (no head yet, different first bytes, `choices` first as Azure sends it,
//!   whitespace around the comma) is read whole.

use std::fmt;

use llm_core::{
    ChatChunk,
    kit::{JsonKey, clear_reused},
};
use serde::de::{self, Deserializer as _, MapAccess, Visitor};

/// What comes right after the head in the frames this shortcut reads.
const CHOICES: &str = ",\"choices\":";

/// How many frames of one stream may be tried as a head: a stream whose first bytes change
/// from frame to frame stops paying for the attempt.
const MAX_TRIES: u8 = 3;

/// The head of a stream's frames; see the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Head {
    /// The frame's bytes before `,"choices":`, starting with `{`.
    prefix: String,
    /// What those members say (`choices` empty, `usage` none, no pass-through members).
    values: ChatChunk,
    /// Whether `prefix` and `values` hold a head.
    ready: bool,
    /// Frames tried as a head so far.
    tries: u8,
    /// `{` + the members after the head of the frame being read.
    rest: String,
}

impl Head {
    /// Read `frame` into `chunk` (a default chunk) through the head: `true` when it was
    /// read, `false` when the frame must be read whole (`chunk` may then hold part of it).
    pub(crate) fn read(&mut self, frame: &str, chunk: &mut ChatChunk) -> bool {
        if !self.ready {
            return false;
        }
        let Some(after) = frame
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix(','))
            .filter(|rest| rest.starts_with("\"choices\":"))
        else {
            return false;
        };
        // One large frame (a long tool-call argument) is not kept for the whole stream.
        clear_reused(&mut self.rest);
        self.rest.push('{');
        self.rest.push_str(after);
        let mut reader = serde_json::Deserializer::from_str(&self.rest);
        if reader.deserialize_map(Rest(chunk)).is_err() || reader.end().is_err() {
            return false;
        }
        chunk.clone_head_from(&self.values);
        true
    }

    /// Learn the head from `frame`, which was read whole as a chunk, unless one is known or
    /// enough frames were tried.
    pub(crate) fn learn(&mut self, frame: &str) {
        if self.ready || self.tries >= MAX_TRIES {
            return;
        }
        self.tries += 1;
        let Some(end) = frame.find(CHOICES) else {
            return;
        };
        let prefix = &frame[..end];
        let mut members = String::with_capacity(end + 1);
        members.push_str(prefix);
        members.push('}');
        let Ok(keys) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&members)
        else {
            return;
        };
        if !keys
            .keys()
            .all(|key| ChatChunk::HEAD_FIELDS.contains(&key.as_str()))
        {
            return;
        }
        let Ok(values) = serde_json::from_str::<ChatChunk>(&members) else {
            return;
        };
        prefix.clone_into(&mut self.prefix);
        self.values = values;
        self.ready = true;
    }
}

/// Reads the members after a head into a chunk: `choices`, `usage` and pass-through
/// members; a head field is an error (the frame is then read whole).
struct Rest<'a>(&'a mut ChatChunk);

impl<'de> Visitor<'de> for Rest<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the members of a chunk after its head")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut choices, mut usage) = (false, false);
        while let Some(JsonKey(key)) = map.next_key()? {
            match key.as_ref() {
                "choices" if !choices => {
                    choices = true;
                    self.0.choices = map.next_value()?;
                }
                "usage" if !usage => {
                    usage = true;
                    self.0.usage = map.next_value()?;
                }
                "choices" | "usage" => return Err(de::Error::duplicate_field("choices or usage")),
                name if ChatChunk::HEAD_FIELDS.contains(&name) => {
                    return Err(de::Error::custom("a head field after the head"));
                }
                _ => {
                    let value = map.next_value()?;
                    self.0.extra.insert(key.into_owned(), value);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_core::kit::KEPT_CAPACITY;

    const FIRST: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732600000,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#;
    const HEAD: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732600000,"model":"gpt-4o","system_fingerprint":"fp_1""#;

    fn learned() -> Head {
        let mut head = Head::default();
        head.learn(FIRST);
        assert!(head.ready, "the head of {FIRST}");
        head
    }

    /// `frame` read through the head, or `None` when it must be read whole.
    fn through(head: &mut Head, frame: &str) -> Option<ChatChunk> {
        let mut chunk = ChatChunk::default();
        head.read(frame, &mut chunk).then_some(chunk)
    }

    #[test]
    fn frames_read_through_the_head_are_the_frames_read_whole() {
        let mut head = learned();
        for rest in [
            r#","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x1"}"#,
            r#","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
            r#","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"id\":1}"}}]}}]}"#,
            r#","choices":[] , "error" : {"message":"late"} }"#,
        ] {
            let frame = format!("{HEAD}{rest}");
            let whole: ChatChunk = serde_json::from_str(&frame).unwrap();
            assert_eq!(through(&mut head, &frame), Some(whole), "{frame}");
        }
    }

    #[test]
    fn a_large_frame_is_not_kept_for_the_rest_of_the_stream() {
        let mut head = learned();
        let large = format!(
            r#"{HEAD},"choices":[{{"index":0,"delta":{{"content":"{}"}}}}]}}"#,
            "x".repeat(KEPT_CAPACITY * 2)
        );
        assert!(through(&mut head, &large).is_some());
        assert!(head.rest.capacity() > KEPT_CAPACITY);
        let small = format!(r#"{HEAD},"choices":[]}}"#);
        assert!(through(&mut head, &small).is_some());
        assert!(head.rest.capacity() <= KEPT_CAPACITY);
    }

    #[test]
    fn anything_unusual_is_read_whole() {
        let mut head = learned();
        for rest in [
            // A duplicate head field, escaped or not: the whole read reports it.
            r#","choices":[],"model":"other"}"#,
            r#","choices":[],"\u0069d":"other"}"#,
            r#","choices":[],"choices":[]}"#,
            // Not an object after the head, or more after its end.
            r#","choices":[}"#,
            r#","choices":[]}{}"#,
            r#","choices":[]} x"#,
            // Other first bytes.
            r#", "choices":[]}"#,
            r#","usage":null,"choices":[]}"#,
        ] {
            let frame = format!("{HEAD}{rest}");
            assert_eq!(through(&mut head, &frame), None, "{frame}");
        }
        let other = FIRST.replace("chatcmpl-1", "chatcmpl-2");
        assert_eq!(through(&mut head, &other), None, "another id");
        assert_eq!(through(&mut head, "[DONE]"), None);
    }

    #[test]
    fn a_head_is_learned_only_from_head_fields_before_choices() {
        for frame in [
            // `choices` first (Azure), a pass-through member or `usage` before `choices`,
            // `choices` only nested.
            r#"{"choices":[],"id":"c","model":"m"}"#,
            r#"{"id":"c","prompt_filter_results":[],"choices":[]}"#,
            r#"{"id":"c","usage":null,"choices":[]}"#,
            r#"{"id":"c","x":{"a":1,"choices":[]}}"#,
        ] {
            let mut head = Head::default();
            head.learn(frame);
            assert!(!head.ready, "{frame}");
        }
        let mut head = Head::default();
        for _ in 0..MAX_TRIES {
            head.learn(r#"{"choices":[]}"#);
        }
        head.learn(FIRST);
        assert!(!head.ready, "no more tries after {MAX_TRIES}");
    }
}
