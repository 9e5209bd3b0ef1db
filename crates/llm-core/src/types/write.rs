//! Direct JSON writers for [`ChatChunk`] and [`ChatResponse`], byte for byte what
//! `serde_json` writes for them.
//!
//! A gateway writes one chunk per streamed token and one answer per request, and
//! `serde_json` spends most of that time escaping their keys one byte at a time through its
//! generic serializer. Here
//! the keys are literals, strings are scanned with a tight loop, and only the rare parts
//! (tool calls, content parts, log probabilities, token details, pass-through fields) go through
//! `serde_json`. Every struct is destructured without `..`, so a field added to a type
//! fails to compile here until it is written; a property test holds the output equal to
//! `serde_json::to_vec`.

use bytes::BufMut;
use serde::Serialize;

use serde_json::Value;

use super::{
    ChatChunk, ChatResponse, Choice, ChunkChoice, Content, Delta, Extra, FinishReason, Message,
    Usage,
};

impl ChatChunk {
    /// Appends this chunk's JSON to `out`: the same bytes as `serde_json::to_writer`, at a
    /// fraction of its cost (keys are written as literals and strings escaped in one tight
    /// loop; only tool-call fragments, log probabilities, usage and pass-through fields go
    /// through `serde_json`). For relays that write a chunk per streamed token.
    ///
    /// ```
    /// use llm_core::{ChatChunk, ChunkChoice, Delta};
    ///
    /// let chunk = ChatChunk::new("c1", 0, "m", vec![ChunkChoice::new(0, Delta::content("Hi"), None)]);
    /// let mut out = Vec::new();
    /// chunk.write_json(&mut out).unwrap();
    /// assert_eq!(out, serde_json::to_vec(&chunk).unwrap());
    /// ```
    ///
    /// # Errors
    ///
    /// Only what `serde_json` would report for a pass-through value; the bytes written
    /// before the error stay in `out`.
    pub fn write_json<B: BufMut>(&self, out: &mut B) -> serde_json::Result<()> {
        // Destructured without `..`: a field added to the type fails to compile here.
        let Self {
            id: _,
            object: _,
            created: _,
            model: _,
            system_fingerprint: _,
            service_tier: _,
            choices,
            usage,
            extra,
        } = self;
        write_envelope(
            out,
            &self.head(),
            choices,
            write_choice,
            usage.as_ref(),
            extra,
        )
    }
}

impl ChatResponse {
    /// Appends this answer's JSON to `out`: the same bytes as `serde_json::to_writer`, at a
    /// fraction of its cost, as [`ChatChunk::write_json`] does for a chunk.
    ///
    /// ```
    /// use llm_core::{ChatResponse, Choice, FinishReason, Message};
    ///
    /// let answer = ChatResponse::new(
    ///     "c1",
    ///     0,
    ///     "m",
    ///     vec![Choice::new(0, Message::assistant("Hi"), Some(FinishReason::Stop))],
    /// );
    /// let mut out = Vec::new();
    /// answer.write_json(&mut out).unwrap();
    /// assert_eq!(out, serde_json::to_vec(&answer).unwrap());
    /// ```
    ///
    /// # Errors
    ///
    /// Only what `serde_json` would report for a pass-through value; the bytes written
    /// before the error stay in `out`.
    pub fn write_json<B: BufMut>(&self, out: &mut B) -> serde_json::Result<()> {
        let Self {
            id,
            object,
            created,
            model,
            system_fingerprint,
            service_tier,
            choices,
            usage,
            extra,
        } = self;
        let head = Head {
            id,
            object,
            created: *created,
            model,
            system_fingerprint: system_fingerprint.as_deref(),
            service_tier: service_tier.as_deref(),
        };
        write_envelope(
            out,
            &head,
            choices,
            write_answer_choice,
            usage.as_ref(),
            extra,
        )
    }
}

/// The members a chunk and an answer share, before their choices.
struct Head<'a> {
    id: &'a str,
    object: &'a str,
    created: u64,
    model: &'a str,
    system_fingerprint: Option<&'a str>,
    service_tier: Option<&'a str>,
}

/// A chunk's or an answer's object: `head`, `choices` (each by `write`), `usage`, `extra`.
fn write_envelope<B: BufMut, C>(
    out: &mut B,
    head: &Head<'_>,
    choices: &[C],
    write: fn(&mut B, &C) -> serde_json::Result<()>,
    usage: Option<&Usage>,
    extra: &Extra,
) -> serde_json::Result<()> {
    write_head(out, head);
    write_rest(out, choices, write, usage, extra)
}

/// The members before `choices`, from the opening brace on.
fn write_head<B: BufMut>(out: &mut B, head: &Head<'_>) {
    out.put_slice(b"{\"id\":");
    string(out, head.id);
    out.put_slice(b",\"object\":");
    string(out, head.object);
    out.put_slice(b",\"created\":");
    out.put_slice(itoa::Buffer::new().format(head.created).as_bytes());
    out.put_slice(b",\"model\":");
    string(out, head.model);
    if let Some(fingerprint) = head.system_fingerprint {
        out.put_slice(b",\"system_fingerprint\":");
        string(out, fingerprint);
    }
    if let Some(tier) = head.service_tier {
        out.put_slice(b",\"service_tier\":");
        string(out, tier);
    }
}

/// `choices`, `usage` and the pass-through members, and the closing brace.
fn write_rest<B: BufMut, C>(
    out: &mut B,
    choices: &[C],
    write: fn(&mut B, &C) -> serde_json::Result<()>,
    usage: Option<&Usage>,
    extra: &Extra,
) -> serde_json::Result<()> {
    out.put_slice(b",\"choices\":[");
    for (i, choice) in choices.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        write(out, choice)?;
    }
    out.put_u8(b']');
    if let Some(usage) = usage {
        out.put_slice(b",\"usage\":");
        write_usage(out, usage)?;
    }
    entries(out, extra)?;
    out.put_u8(b'}');
    Ok(())
}

/// The head members of the last chunk a relay wrote (`id`, `object`, `created`, `model`,
/// `system_fingerprint`, `service_tier`) and their JSON, for
/// [`ChatChunk::write_json_cached`]: the chunks of one answer share their head, and writing
/// it again for every token was a third of the cost of writing a chunk.
#[derive(Debug, Default)]
pub struct ChunkHeadCache {
    id: String,
    object: String,
    created: u64,
    model: String,
    system_fingerprint: Option<String>,
    service_tier: Option<String>,
    /// The head's JSON, from the opening brace on; empty until a chunk was written.
    json: Vec<u8>,
}

impl ChunkHeadCache {
    /// A cache that holds no head yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the cached head is `chunk`'s.
    fn holds(&self, chunk: &ChatChunk) -> bool {
        !self.json.is_empty()
            && self.created == chunk.created
            && self.id == chunk.id
            && self.model == chunk.model
            && self.object == chunk.object
            && self.system_fingerprint == chunk.system_fingerprint
            && self.service_tier == chunk.service_tier
    }

    /// Cache `chunk`'s head.
    fn fill(&mut self, chunk: &ChatChunk) {
        self.id.clone_from(&chunk.id);
        self.object.clone_from(&chunk.object);
        self.created = chunk.created;
        self.model.clone_from(&chunk.model);
        self.system_fingerprint
            .clone_from(&chunk.system_fingerprint);
        self.service_tier.clone_from(&chunk.service_tier);
        self.json.clear();
        write_head(&mut self.json, &chunk.head());
    }
}

impl ChatChunk {
    /// [`write_json`](Self::write_json) for a relay writing a stream's chunks one after the
    /// other: the head members are written from `cache` when they are the last chunk's
    /// (compared, not trusted), and cached otherwise. The same bytes as `write_json`.
    ///
    /// ```
    /// use llm_core::{ChatChunk, ChunkChoice, ChunkHeadCache, Delta};
    ///
    /// let mut cache = ChunkHeadCache::new();
    /// for text in ["Hel", "lo"] {
    ///     let chunk = ChatChunk::new("c1", 0, "m", vec![ChunkChoice::new(0, Delta::content(text), None)]);
    ///     let mut out = Vec::new();
    ///     chunk.write_json_cached(&mut out, &mut cache).unwrap();
    ///     assert_eq!(out, serde_json::to_vec(&chunk).unwrap());
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`write_json`](Self::write_json).
    pub fn write_json_cached<B: BufMut>(
        &self,
        out: &mut B,
        cache: &mut ChunkHeadCache,
    ) -> serde_json::Result<()> {
        if !cache.holds(self) {
            cache.fill(self);
        }
        out.put_slice(&cache.json);
        write_rest(
            out,
            &self.choices,
            write_choice,
            self.usage.as_ref(),
            &self.extra,
        )
    }

    /// The head members, borrowed.
    fn head(&self) -> Head<'_> {
        Head {
            id: &self.id,
            object: &self.object,
            created: self.created,
            model: &self.model,
            system_fingerprint: self.system_fingerprint.as_deref(),
            service_tier: self.service_tier.as_deref(),
        }
    }
}

/// A choice's object around its `body` member (`delta` or `message`, written by `body`).
fn write_choice_with<B: BufMut>(
    out: &mut B,
    index: u32,
    body: impl FnOnce(&mut B) -> serde_json::Result<()>,
    finish_reason: Option<&FinishReason>,
    logprobs: Option<&Value>,
    extra: &Extra,
) -> serde_json::Result<()> {
    out.put_slice(b"{\"index\":");
    out.put_slice(itoa::Buffer::new().format(index).as_bytes());
    body(out)?;
    out.put_slice(b",\"finish_reason\":");
    match finish_reason {
        Some(reason) => string(out, reason.as_str()),
        None => out.put_slice(b"null"),
    }
    if let Some(logprobs) = logprobs {
        out.put_slice(b",\"logprobs\":");
        value(out, logprobs)?;
    }
    entries(out, extra)?;
    out.put_u8(b'}');
    Ok(())
}

fn write_answer_choice<B: BufMut>(out: &mut B, choice: &Choice) -> serde_json::Result<()> {
    let Choice {
        index,
        message,
        finish_reason,
        logprobs,
        extra,
    } = choice;
    write_choice_with(
        out,
        *index,
        |out| {
            out.put_slice(b",\"message\":");
            write_message(out, message)
        },
        finish_reason.as_ref(),
        logprobs.as_ref(),
        extra,
    )
}

impl Message {
    /// Appends this message's JSON to `out`: the same bytes as `serde_json::to_writer`, at a
    /// fraction of its cost, as [`ChatChunk::write_json`] does for a chunk (for a body that
    /// carries a conversation upstream).
    ///
    /// ```
    /// use llm_core::Message;
    ///
    /// let message = Message::user("Hi \"there\"");
    /// let mut out = Vec::new();
    /// message.write_json(&mut out).unwrap();
    /// assert_eq!(out, serde_json::to_vec(&message).unwrap());
    /// ```
    ///
    /// # Errors
    ///
    /// Only what `serde_json` would report for a pass-through value; the bytes written
    /// before the error stay in `out`.
    pub fn write_json<B: BufMut>(&self, out: &mut B) -> serde_json::Result<()> {
        write_message(out, self)
    }
}

fn write_message<B: BufMut>(out: &mut B, message: &Message) -> serde_json::Result<()> {
    let Message {
        role,
        content,
        name,
        tool_calls,
        tool_call_id,
        reasoning_content,
        refusal,
        extra,
    } = message;
    out.put_slice(b"{\"role\":");
    string(out, role.as_str());
    out.put_slice(b",\"content\":");
    match content {
        Some(Content::Text(text)) => string(out, text),
        Some(parts @ Content::Parts(_)) => value(out, parts)?,
        None => out.put_slice(b"null"),
    }
    if let Some(name) = name {
        out.put_slice(b",\"name\":");
        string(out, name);
    }
    if let Some(calls) = tool_calls {
        out.put_slice(b",\"tool_calls\":");
        value(out, calls)?;
    }
    if let Some(id) = tool_call_id {
        out.put_slice(b",\"tool_call_id\":");
        string(out, id);
    }
    if let Some(reasoning) = reasoning_content {
        out.put_slice(b",\"reasoning_content\":");
        string(out, reasoning);
    }
    if let Some(refusal) = refusal {
        out.put_slice(b",\"refusal\":");
        string(out, refusal);
    }
    entries(out, extra)?;
    out.put_u8(b'}');
    Ok(())
}

fn write_usage<B: BufMut>(out: &mut B, usage: &Usage) -> serde_json::Result<()> {
    let Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens,
        prompt_tokens_details,
        completion_tokens_details,
        extra,
    } = usage;
    let mut number = itoa::Buffer::new();
    out.put_slice(b"{\"prompt_tokens\":");
    out.put_slice(number.format(*prompt_tokens).as_bytes());
    out.put_slice(b",\"completion_tokens\":");
    out.put_slice(number.format(*completion_tokens).as_bytes());
    out.put_slice(b",\"total_tokens\":");
    out.put_slice(number.format(*total_tokens).as_bytes());
    if let Some(details) = prompt_tokens_details {
        out.put_slice(b",\"prompt_tokens_details\":");
        value(out, details)?;
    }
    if let Some(details) = completion_tokens_details {
        out.put_slice(b",\"completion_tokens_details\":");
        value(out, details)?;
    }
    entries(out, extra)?;
    out.put_u8(b'}');
    Ok(())
}

fn write_choice<B: BufMut>(out: &mut B, choice: &ChunkChoice) -> serde_json::Result<()> {
    let ChunkChoice {
        index,
        delta,
        finish_reason,
        logprobs,
        extra,
    } = choice;
    write_choice_with(
        out,
        *index,
        |out| {
            out.put_slice(b",\"delta\":");
            write_delta(out, delta)
        },
        finish_reason.as_ref(),
        logprobs.as_ref(),
        extra,
    )
}

fn write_delta<B: BufMut>(out: &mut B, delta: &Delta) -> serde_json::Result<()> {
    let Delta {
        role,
        content,
        reasoning_content,
        refusal,
        tool_calls,
        extra,
    } = delta;
    // `{` then each member with a leading comma but the first.
    let mut first = true;
    let mut key = |out: &mut B, key: &[u8]| {
        out.put_u8(if first { b'{' } else { b',' });
        first = false;
        out.put_slice(key);
    };
    if let Some(role) = role {
        key(out, b"\"role\":");
        string(out, role.as_str());
    }
    if let Some(content) = content {
        key(out, b"\"content\":");
        string(out, content);
    }
    if let Some(reasoning) = reasoning_content {
        key(out, b"\"reasoning_content\":");
        string(out, reasoning);
    }
    if let Some(refusal) = refusal {
        key(out, b"\"refusal\":");
        string(out, refusal);
    }
    if let Some(calls) = tool_calls {
        key(out, b"\"tool_calls\":");
        value(out, calls)?;
    }
    for (name, member) in extra {
        key(out, b"");
        string(out, name);
        out.put_u8(b':');
        value(out, member)?;
    }
    if first {
        out.put_u8(b'{');
    }
    out.put_u8(b'}');
    Ok(())
}

/// `,"key":value` for each pass-through field, in the map's order.
fn entries<B: BufMut>(out: &mut B, extra: &Extra) -> serde_json::Result<()> {
    for (name, member) in extra {
        out.put_u8(b',');
        string(out, name);
        out.put_u8(b':');
        value(out, member)?;
    }
    Ok(())
}

fn value<B: BufMut, T: Serialize + ?Sized>(out: &mut B, value: &T) -> serde_json::Result<()> {
    serde_json::to_writer(out.writer(), value)
}

/// A JSON string as `serde_json` escapes it: `"` and `\`, the two-letter escapes for
/// backspace, form feed, newline, carriage return and tab, `\u00xx` (lower-case hex) for
/// the other control characters; everything else, non-ASCII included, as is.
fn string<B: BufMut>(out: &mut B, text: &str) {
    out.put_u8(b'"');
    let bytes = text.as_bytes();
    // Most strings need no escape at all: check them a word at a time and copy them whole.
    if !any_needs_escape(bytes) {
        out.put_slice(bytes);
        out.put_u8(b'"');
        return;
    }
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        if !needs_escape(byte) {
            continue;
        }
        out.put_slice(&bytes[start..i]);
        start = i + 1;
        match byte {
            b'"' => out.put_slice(b"\\\""),
            b'\\' => out.put_slice(b"\\\\"),
            0x08 => out.put_slice(b"\\b"),
            0x0C => out.put_slice(b"\\f"),
            b'\n' => out.put_slice(b"\\n"),
            b'\r' => out.put_slice(b"\\r"),
            b'\t' => out.put_slice(b"\\t"),
            control => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(control >> 4)],
                    HEX[usize::from(control & 0xF)],
                ]);
            }
        }
    }
    out.put_slice(&bytes[start..]);
    out.put_u8(b'"');
}

#[inline]
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Whether any byte of `bytes` needs an escape, eight bytes at a time (the last word
/// overlaps the one before it): the strings of a chunk are short, and a loop per byte, or
/// a vector loop with its scalar tail, costs more than the few word operations here.
#[inline]
pub(crate) fn any_needs_escape(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.as_chunks::<8>();
    if words.is_empty() {
        return rest.iter().any(|&byte| needs_escape(byte));
    }
    words
        .iter()
        .any(|word| word_needs_escape(u64::from_ne_bytes(*word)))
        || (!rest.is_empty()
            && bytes
                .last_chunk::<8>()
                .is_some_and(|word| word_needs_escape(u64::from_ne_bytes(*word))))
}

/// Where the first byte below 0x20, `"` or `\` is in `bytes`, checked a word at a time.
#[inline]
pub(crate) fn first_needs_escape(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        let hits = escape_hits(u64::from_le_bytes(eight));
        if hits != 0 {
            // The lowest flag is a true one: a false flag sits only above a true one.
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes
        .get(at..)?
        .iter()
        .position(|&byte| needs_escape(byte))
        .map(|plain| at + plain)
}

/// Whether a byte of `word` is below 0x20, `"` or `\`. `(x - 0x01…) & !x & 0x80…` is
/// non-zero exactly when some byte of `x` is zero (a borrow starts only at a zero byte;
/// bytes above it may be flagged too, which does not change the answer), and
/// `(x - 0x20…) & !x & 0x80…` when some byte is below 0x20 (bytes of 0x80 and above, the
/// non-ASCII ones, have their top bit set and are never flagged on their own).
#[inline]
fn word_needs_escape(word: u64) -> bool {
    escape_hits(word) != 0
}

/// [`word_needs_escape`]'s flags: the top bit of each flagged byte.
#[inline]
fn escape_hits(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let hits = (word.wrapping_sub(ONES * 0x20) & !word)
        | (quote.wrapping_sub(ONES) & !quote)
        | (backslash.wrapping_sub(ONES) & !backslash);
    hits & HIGH
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::{FinishReason, FunctionCallDelta, Role, ToolCallDelta, Usage};

    fn written(chunk: &ChatChunk) -> String {
        let mut out = Vec::new();
        chunk.write_json(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn assert_same(chunk: &ChatChunk) {
        assert_eq!(written(chunk), serde_json::to_string(chunk).unwrap());
    }

    #[test]
    fn a_typical_content_chunk() {
        let chunk = ChatChunk::new(
            "chatcmpl-1",
            1_732_600_000,
            "gpt-4o",
            vec![ChunkChoice::new(0, Delta::content("word "), None)],
        );
        assert_eq!(
            written(&chunk),
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732600000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}"#
        );
        assert_same(&chunk);
    }

    #[test]
    fn every_field_set() {
        let chunk: ChatChunk = serde_json::from_value(json!({
            "id": "c\"1\\", "object": "chat.completion.chunk", "created": u64::MAX,
            "model": "m\u{1}\u{1f}\u{7f}é", "system_fingerprint": "fp", "service_tier": "default",
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "a\nb\tc\r\u{8}\u{c}",
                  "reasoning_content": "think", "refusal": "no",
                  "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                  "function": {"name": "f", "arguments": "{\"x\":1}"}}],
                  "audio": {"id": "a"}},
                 "finish_reason": "tool_calls", "logprobs": {"content": [{"token": "x", "logprob": -0.5}]},
                 "content_filter_results": {}},
                {"index": 4294967295u32, "delta": {}, "finish_reason": "something_new"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
                      "prompt_tokens_details": {"cached_tokens": 1}},
            "obfuscation": "xyz", "nested": [1, 2.5, null, true, {"k": "v"}]
        }))
        .unwrap();
        assert!(chunk.usage.is_some() && chunk.choices[0].logprobs.is_some());
        assert_same(&chunk);
        // And what it writes reads back as the same chunk.
        let back: ChatChunk = serde_json::from_str(&written(&chunk)).unwrap();
        assert_eq!(back, chunk);
    }

    #[test]
    fn empty_and_usage_only_chunks() {
        assert_same(&ChatChunk::default());
        let mut usage_only = ChatChunk::new("c", 1, "m", Vec::new());
        usage_only.usage = Some(Usage::new(3, 4));
        assert_same(&usage_only);
        let calls = Delta {
            role: Some(Role::Assistant),
            tool_calls: Some(vec![ToolCallDelta::new(
                1,
                None,
                None,
                Some("{\"a\"".into()),
            )]),
            ..Delta::default()
        };
        let mut choice = ChunkChoice::new(2, calls, Some(FinishReason::Length));
        choice.delta.tool_calls.as_mut().unwrap()[0].function = Some(FunctionCallDelta {
            name: Some("f".into()),
            arguments: None,
        });
        assert_same(&ChatChunk::new("c", 1, "m", vec![choice]));
    }

    fn assert_same_answer(answer: &ChatResponse) {
        let mut out = Vec::new();
        answer.write_json(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(answer).unwrap()
        );
    }

    #[test]
    fn answers_with_every_field_set() {
        let answer: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-\u{0}1", "object": "chat.completion", "created": 7,
            "model": "gpt-4o", "system_fingerprint": "fp_1", "service_tier": "scale",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "line\nnext \"q\"",
                  "name": "bot", "tool_calls": [{"id": "call_1", "type": "function",
                  "function": {"name": "f", "arguments": "{}"}}], "tool_call_id": "t",
                  "reasoning_content": "because", "refusal": "no", "audio": null},
                 "finish_reason": "stop", "logprobs": null, "content_filter_results": {"hate": {"filtered": false}}},
                {"index": 1, "message": {"role": "assistant", "content": null}, "finish_reason": null,
                 "logprobs": {"content": []}},
                {"index": 2, "message": {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                 "finish_reason": "length"}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                      "prompt_tokens_details": {"cached_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 2},
                      "prompt_cache_hit_tokens": 4},
            "prompt_filter_results": [{"prompt_index": 0}]
        }))
        .unwrap();
        assert!(
            answer
                .usage
                .as_ref()
                .unwrap()
                .completion_tokens_details
                .is_some()
        );
        assert_same_answer(&answer);
        assert_same_answer(&ChatResponse::default());
        let mut usage_chunk = ChatChunk::new("c", 1, "m", Vec::new());
        usage_chunk.usage = answer.usage;
        assert_same(&usage_chunk);
    }

    fn text() -> impl Strategy<Value = String> {
        // Every escape class: controls, quotes, backslashes, DEL, multi-byte characters.
        prop::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('\u{7f}'),
                Just('é'),
                Just('😀'),
                (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
                (0x20u32..0x7f).prop_map(|c| char::from_u32(c).unwrap()),
            ],
            0..12,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn extra() -> impl Strategy<Value = Extra> {
        prop::collection::vec((text(), text()), 0..3).prop_map(|members| {
            members
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        })
    }

    fn choice() -> impl Strategy<Value = ChunkChoice> {
        (
            any::<u32>(),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            any::<bool>(),
            prop::option::of(text()),
            extra(),
            extra(),
        )
            .prop_map(
                |(index, content, reasoning, finish, role, refusal, delta_extra, choice_extra)| {
                    let delta = Delta {
                        role: role.then_some(Role::Assistant),
                        content,
                        reasoning_content: reasoning,
                        refusal,
                        tool_calls: None,
                        extra: delta_extra,
                    };
                    let mut choice =
                        ChunkChoice::new(index, delta, finish.as_deref().map(FinishReason::from));
                    choice.extra = choice_extra;
                    choice
                },
            )
    }

    #[test]
    fn every_byte_that_needs_an_escape_is_found_wherever_it_is() {
        for len in 0..=24 {
            for at in 0..len {
                for byte in (0..0x20).chain([b'"', b'\\']) {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    assert!(any_needs_escape(&bytes), "{bytes:?}");
                }
            }
            let plain: Vec<u8> = (0..len)
                .map(|i| [b'a', b'!', b'#', 0x7F, b'~'][i % 5])
                .collect();
            assert!(!any_needs_escape(&plain), "{plain:?}");
            assert!(!any_needs_escape("é€😀".repeat(len).as_bytes()), "{len}");
        }
    }

    proptest! {
        #[test]
        fn the_first_byte_that_needs_an_escape_is_found(
            bytes in prop::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..=0xFF, 0x80u8..=0xFF],
                0..40,
            ),
            plain in 0usize..40,
        ) {
            // A plain run first, so the hit lands at every offset of a word.
            let bytes = [vec![b'a'; plain], bytes].concat();
            let expected = bytes.iter().position(|&byte| needs_escape(byte));
            prop_assert_eq!(first_needs_escape(&bytes), expected);
        }

        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(text in any::<String>()) {
            let mut out = Vec::new();
            string(&mut out, &text);
            prop_assert_eq!(out, serde_json::to_vec(&text).unwrap());
        }

        #[test]
        fn writes_what_serde_json_writes(
            id in text(),
            model in text(),
            created in any::<u64>(),
            fingerprint in prop::option::of(text()),
            choices in prop::collection::vec(choice(), 0..3),
            extra in extra(),
        ) {
            let mut chunk = ChatChunk::new(id, created, model, choices);
            chunk.system_fingerprint = fingerprint;
            chunk.extra = extra;
            prop_assert_eq!(written(&chunk), serde_json::to_string(&chunk).unwrap());
        }

        #[test]
        fn cached_heads_write_what_serde_json_writes(
            heads in prop::collection::vec((text(), 0_u64..3, prop::option::of(text())), 1..4),
            picks in prop::collection::vec((0_usize..4, choice()), 1..8),
        ) {
            let mut cache = ChunkHeadCache::new();
            for (pick, choice) in picks {
                let (id, created, fingerprint) = heads[pick % heads.len()].clone();
                let mut chunk = ChatChunk::new(id, created, "m", vec![choice]);
                chunk.system_fingerprint = fingerprint;
                let mut out = Vec::new();
                chunk.write_json_cached(&mut out, &mut cache).unwrap();
                prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&chunk).unwrap());
            }
        }

        #[test]
        fn writes_answers_as_serde_json_does(
            id in text(),
            content in prop::option::of(text()),
            name in prop::option::of(text()),
            finish in prop::option::of(text()),
            extra in extra(),
        ) {
            let mut message = Message::assistant("");
            message.content = content.map(Content::Text);
            message.name = name;
            message.extra = extra.clone();
            let mut answer = ChatResponse::new(
                id,
                1,
                "m",
                vec![Choice::new(0, message, finish.as_deref().map(FinishReason::from))],
            );
            answer.extra = extra;
            let mut out = Vec::new();
            answer.write_json(&mut out).unwrap();
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&answer).unwrap());
        }
    }
}
