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
//!
//! Most frames of a stream differ in one more place only: the text of their one choice's
//! `delta.content` (`"choices":[{"index":0,"delta":{"content":"…"},"logprobs":null,
//! "finish_reason":null}]}`). [`Tail`] remembers the bytes around that string from one frame
//! read through the head, and a later frame with the same bytes around a single JSON string
//! is not parsed at all: its chunk is the remembered one with that string as its content.
//! Again exactly what a whole read gives:
//!
//! - the bytes around the string are learned only when a trial proves what the string is:
//!   the frame read again with another text in that place must give the same chunk with the
//!   other text as its content, and nothing else changed (so the place is that value, not a
//!   key, a pass-through member or a second `content`);
//! - a later frame's middle must be one whole JSON string token (a quote, characters that
//!   need no escape, a quote; one with escapes is decoded by serde_json, which must read
//!   exactly one string): JSON is read token by token, so one string token in place of
//!   another gives the same members with another text. Anything else (a control
//!   character, `null`, another token, other bytes around it) is read as before.

use std::fmt;

use llm_core::{
    ChatChunk,
    kit::{JsonKey, KEPT_CAPACITY, clear_reused, needs_json_escape},
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
    /// The bytes around a frame's content text, once learned.
    tail: Tail,
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
        if !self.tail.read(after, chunk) {
            if !read_rest(&mut self.rest, after, chunk) {
                return false;
            }
            self.tail.learn(&mut self.rest, after, chunk);
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
        let Some(end) = memchr::memmem::find(frame.as_bytes(), CHOICES.as_bytes()) else {
            return;
        };
        let prefix = &frame[..end];
        let mut members = String::with_capacity(end + 1);
        members.push_str(prefix);
        members.push('}');
        let mut reader = serde_json::Deserializer::from_str(&members);
        if reader.deserialize_map(HeadKeys).is_err() || reader.end().is_err() {
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

/// Read `members` (what follows the head and its comma) into `chunk` through `buffer`:
/// `false` when they are not one object's members after a head.
fn read_rest(buffer: &mut String, members: &str, chunk: &mut ChatChunk) -> bool {
    // One large frame (a long tool-call argument) is not kept for the whole stream.
    clear_reused(buffer);
    buffer.push('{');
    buffer.push_str(members);
    let mut reader = serde_json::Deserializer::from_str(buffer);
    reader.deserialize_map(Rest(chunk)).is_ok() && reader.end().is_ok()
}

/// The members after the head of frames that differ only in their content text; see the
/// [module docs](self).
#[derive(Debug, Default)]
struct Tail {
    /// The bytes before the content string, from `"choices":` on.
    before: String,
    /// The bytes after it, to the frame's end.
    after: String,
    /// What those members say: `choices` with the content left out, `usage`, `extra`.
    values: ChatChunk,
    /// Whether `before`, `after` and `values` hold a tail.
    ready: bool,
    /// Frames tried as a tail so far.
    tries: u8,
}

impl Tail {
    /// Read `members` into `chunk` (its `choices`, `usage` and `extra`): `true` when they
    /// are the known bytes around one JSON string.
    fn read(&self, members: &str, chunk: &mut ChatChunk) -> bool {
        if !self.ready {
            return false;
        }
        let Some(text) = members
            .strip_prefix(self.before.as_str())
            .and_then(|rest| rest.strip_suffix(self.after.as_str()))
            .and_then(string_token)
        else {
            return false;
        };
        chunk.choices.clone_from(&self.values.choices);
        // `chunk` is a new chunk: nothing to copy when the tail has no usage or members.
        if self.values.usage.is_some() {
            chunk.usage.clone_from(&self.values.usage);
        }
        if !self.values.extra.is_empty() {
            chunk.extra.clone_from(&self.values.extra);
        }
        match chunk.choices.first_mut() {
            Some(choice) => choice.delta.content = Some(text),
            None => return false,
        }
        true
    }

    /// Learn the bytes around the content text of `members`, which `chunk` holds as read
    /// through the head, unless a tail is known or enough frames were tried; `buffer` is
    /// the head's reading buffer.
    fn learn(&mut self, buffer: &mut String, members: &str, chunk: &ChatChunk) {
        if self.ready || self.tries >= MAX_TRIES {
            return;
        }
        let [choice] = chunk.choices.as_slice() else {
            return;
        };
        let Some(text) = &choice.delta.content else {
            return;
        };
        self.tries += 1;
        // The trial's text differs from the frame's; the trial must read as `expected`.
        let other = if text == "x" { "y" } else { "x" };
        let mut expected = ChatChunk::default();
        expected.choices.clone_from(&chunk.choices);
        expected.usage.clone_from(&chunk.usage);
        expected.extra.clone_from(&chunk.extra);
        if let Some(choice) = expected.choices.first_mut() {
            choice.delta.content = Some(other.to_owned());
        }
        for at in memchr::memmem::find_iter(members.as_bytes(), CONTENT) {
            let start = at + CONTENT.len() - 1;
            let Some(end) = string_end(members, start) else {
                continue;
            };
            let (before, after) = (&members[..start], &members[end..]);
            // Kept for the whole stream: not a large frame's bytes.
            if before.len() + after.len() > KEPT_CAPACITY {
                return;
            }
            let mut trial_members = String::with_capacity(members.len());
            for part in [before, "\"", other, "\"", after] {
                trial_members.push_str(part);
            }
            let mut trial = ChatChunk::default();
            if !read_rest(buffer, &trial_members, &mut trial) {
                continue;
            }
            if trial != expected {
                continue;
            }
            if let Some(choice) = expected.choices.first_mut() {
                choice.delta.content = None;
            }
            before.clone_into(&mut self.before);
            after.clone_into(&mut self.after);
            self.values = expected;
            self.ready = true;
            return;
        }
    }
}

/// Where a content text's key and its opening quote are.
const CONTENT: &[u8] = b"\"content\":\"";

/// The end (after its closing quote) of the JSON string token that opens at `start`.
fn string_end(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = start + 1;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => return Some(at + 1),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    None
}

/// The text of `token` when it is exactly one JSON string token.
fn string_token(token: &str) -> Option<String> {
    let inner = token.strip_prefix('"')?.strip_suffix('"')?;
    if !needs_json_escape(inner) {
        return Some(inner.to_owned());
    }
    // Escapes (or a quote or control character, which serde_json refuses): the token
    // opens and closes with a quote, so a read of one string that ends where it ends is
    // exactly one token.
    serde_json::from_str(token).ok()
}

/// Reads an object whose keys are all head fields, and nothing of their values.
struct HeadKeys;

impl<'de> Visitor<'de> for HeadKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the head members of a chunk")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(JsonKey(key)) = map.next_key()? {
            if !ChatChunk::HEAD_FIELDS.contains(&key.as_ref()) {
                return Err(de::Error::custom("not a head field"));
            }
            map.next_value::<de::IgnoredAny>()?;
        }
        Ok(())
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

    /// `rest` read through `head`, compared with the frame read whole; whether the tail
    /// read it.
    fn same_as_whole(head: &mut Head, rest: &str) -> bool {
        let frame = format!("{HEAD}{rest}");
        let members = &rest[1..];
        let mut probe = ChatChunk::default();
        let by_tail = head.tail.read(members, &mut probe);
        let whole = serde_json::from_str::<ChatChunk>(&frame).ok();
        assert_eq!(through(head, &frame), whole, "{frame}");
        by_tail
    }

    const CONTENT_FRAME: &str = r#","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}"#;

    #[test]
    fn frames_read_through_the_tail_are_the_frames_read_whole() {
        let mut head = learned();
        assert!(!same_as_whole(&mut head, CONTENT_FRAME));
        assert!(head.tail.ready, "learned from {CONTENT_FRAME}");
        for text in [
            "lo",
            "",
            "x",
            " wörld 🌍 ",
            r#"a \"quoted\" word"#,
            r"a line\nand a tab\t",
            r"\u00e9\ud83c\udf0d",
            r"\\",
            r"\/",
            r#"\"content\":\""#,
        ] {
            let rest = CONTENT_FRAME.replace("Hel", text);
            assert!(same_as_whole(&mut head, &rest), "{rest}");
        }
        // Not one string token where the text was: read as before, with the same result
        // (or the same refusal) as a whole read.
        for middle in [
            "null",
            "1",
            r#""a","b""#,
            r#""a"  "#,
            "\"bad \u{1} control\"",
            r#""unterminated \""#,
            r#""bad \q escape""#,
            r#""lone \ud800 surrogate""#,
        ] {
            let rest = CONTENT_FRAME.replace(r#""Hel""#, middle);
            assert!(!same_as_whole(&mut head, &rest), "{rest}");
        }
        // Other bytes around the text: the last choice, usage, a pass-through member (the
        // `obfuscation` OpenAI adds), another index.
        for rest in [
            r#","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
            r#","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
            r#","choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"ab"}"#,
            r#","choices":[{"index":1,"delta":{"content":"Hel"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        ] {
            assert!(!same_as_whole(&mut head, rest), "{rest}");
        }
    }

    #[test]
    fn the_tail_is_the_content_text_and_nothing_else() {
        // The same text in a pass-through member before the content: the trial with other
        // text in the member changes the member, not the content, so the tail is the
        // content's own place.
        let mut head = learned();
        let rest = r#","choices":[{"index":0,"x":{"content":"Hel"},"delta":{"content":"Hel"}}]}"#;
        assert!(!same_as_whole(&mut head, rest));
        assert!(head.tail.ready);
        let member_changed = rest.replacen("Hel", "lo", 1);
        assert!(
            !same_as_whole(&mut head, &member_changed),
            "{member_changed}"
        );
        let content_changed = format!("{}lo\"}}}}]}}", rest.strip_suffix(r#"Hel"}}]}"#).unwrap());
        assert!(
            same_as_whole(&mut head, &content_changed),
            "{content_changed}"
        );

        // `content` only as a key of a pass-through member, or more than one choice:
        // nothing to learn.
        for rest in [
            r#","choices":[{"index":0,"delta":{"x":{"content":"Hel"}}}]}"#,
            r#","choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}"#,
        ] {
            let mut head = learned();
            same_as_whole(&mut head, rest);
            assert!(!head.tail.ready, "{rest}");
        }
    }

    #[test]
    fn a_large_tail_is_not_kept_for_the_rest_of_the_stream() {
        let mut head = learned();
        let big = "y".repeat(KEPT_CAPACITY);
        let rest = format!(
            r#","choices":[{{"index":0,"delta":{{"content":"Hel"}}}}],"padding":"{big}"}}"#
        );
        assert!(!same_as_whole(&mut head, &rest));
        assert!(!head.tail.ready && head.tail.after.is_empty());
        let small = format!(
            r#","choices":[{{"index":0,"delta":{{"content":"Hel"}}}}],"padding":"{}"}}"#,
            &big[..100]
        );
        assert!(!same_as_whole(&mut head, &small));
        assert!(head.tail.ready, "a small one is learned");
    }

    #[test]
    fn a_large_frame_is_not_kept_for_the_rest_of_the_stream() {
        let mut head = learned();
        let large = format!(
            r#"{HEAD},"choices":[{{"index":0,"delta":{{"refusal":"{}"}}}}]}}"#,
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
