//! Relaying an upstream's whole answer as it wrote it.
//!
//! An OpenAI-compatible upstream already answers in the gateway's format, so reading its
//! answer into a [`ChatResponse`](llm_core::ChatResponse) and writing that again only
//! costs time: on the benchmark's answers, about 15 % of the gateway's instructions per
//! request. [`check`] reads the answer once, without building anything, and says whether
//! its bytes hold exactly what that round trip would give: an answer it accepts is one the
//! typed read accepts too, with nothing the typed path would have changed (the `object`
//! it would have set, the `model` it would have filled in, a default it would have
//! written for a missing member). Anything else (an unknown role, content parts, tool
//! calls, an escaped key, a number `serde_json` would round, an answer with no choices, an
//! error envelope) goes the typed way, which also gives the errors.
//!
//! What a relayed answer can show that the typed one does not: the upstream's own layout
//! and member order, and members it sent as `null` that the typed writer leaves out
//! (`"refusal": null`, `"logprobs": null`): the same to every JSON client.

use llm_core::Usage;

/// Nesting deeper than this is left to the typed read (`serde_json` stops at 128).
const MAX_DEPTH: usize = 64;

/// The usage of `body` when it may be sent as it is (see the module docs), else `None`.
pub(crate) fn check(body: &[u8]) -> Option<Option<Usage>> {
    // The typed read takes the body as UTF-8 text first; so does this.
    std::str::from_utf8(body).ok()?;
    let mut scan = Scan { bytes: body, at: 0 };
    let usage = scan.answer()?;
    scan.space();
    (scan.at == body.len()).then_some(usage)
}

/// A cursor over the body. Every method returns `None` for what it does not accept.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips white space, then takes `byte`.
    fn take(&mut self, byte: u8) -> Option<()> {
        self.space();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Skips white space; `true` and takes it when the next byte is `byte`.
    fn next_is(&mut self, byte: u8) -> bool {
        self.space();
        let is = self.peek() == Some(byte);
        if is {
            self.at += 1;
        }
        is
    }

    /// An object's members: `member` is called with each key (which has no escapes) with
    /// the cursor before its value, and must read the value.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.take(b'{')?;
        if self.next_is(b'}') {
            return Some(());
        }
        loop {
            self.space();
            let (key, escaped) = self.string()?;
            if escaped {
                return None;
            }
            self.take(b':')?;
            self.space();
            member(self, key)?;
            if self.next_is(b'}') {
                return Some(());
            }
            self.take(b',')?;
        }
    }

    /// An array's items, each read by `item` with the cursor before it; how many.
    fn items(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<usize> {
        self.take(b'[')?;
        if self.next_is(b']') {
            return Some(0);
        }
        let mut count = 0;
        loop {
            self.space();
            item(self)?;
            count += 1;
            if self.next_is(b']') {
                return Some(count);
            }
            self.take(b',')?;
        }
    }

    /// A string: its raw bytes between the quotes, and whether they hold an escape. Only
    /// what `serde_json` reads as a Rust string: no control characters, valid escapes, no
    /// lone surrogates.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let bytes = self.bytes;
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let mut at = start;
        let mut escaped = false;
        loop {
            at += llm_core::kit::json_escape_position(bytes.get(at..)?)?;
            match bytes[at] {
                b'"' => {
                    self.at = at + 1;
                    return Some((&bytes[start..at], escaped));
                }
                b'\\' => {
                    escaped = true;
                    at = self.escape(at + 1)?;
                }
                _ => return None,
            }
        }
    }

    /// The escape whose letter is at `at`; where the string goes on after it.
    fn escape(&self, at: usize) -> Option<usize> {
        match *self.bytes.get(at)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 1),
            b'u' => {
                let unit = self.hex(at + 1)?;
                match unit {
                    0xD800..=0xDBFF => {
                        // A leading surrogate needs its trailing one, escaped, right after.
                        if self.bytes.get(at + 5..at + 7)? != b"\\u" {
                            return None;
                        }
                        matches!(self.hex(at + 7)?, 0xDC00..=0xDFFF).then_some(at + 11)
                    }
                    0xDC00..=0xDFFF => None,
                    _ => Some(at + 5),
                }
            }
            _ => None,
        }
    }

    fn hex(&self, at: usize) -> Option<u16> {
        let digits = std::str::from_utf8(self.bytes.get(at..at + 4)?).ok()?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u16::from_str_radix(digits, 16).ok()
    }

    /// A string or `null`.
    fn string_or_null(&mut self) -> Option<()> {
        if self.peek()? == b'n' {
            return self.literal(b"null");
        }
        self.string().map(drop)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// A non-negative integer without sign, fraction or exponent that fits `max`.
    fn unsigned(&mut self, max: u64) -> Option<()> {
        (self.count()? <= max).then_some(())
    }

    /// A non-negative integer without sign, fraction or exponent, as a `u64`.
    fn count(&mut self) -> Option<u64> {
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        let more = matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        (digits > 0 && !leading_zero && !more).then_some(value)
    }

    /// A number as JSON writes it, that `serde_json` reads without rounding it away from
    /// what the upstream wrote: an integer of at most 18 digits, or a decimal fraction
    /// without exponent.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || digits > 18 || (digits > 1 && self.bytes[start] == b'0') {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            let start = self.at;
            while let Some(b'0'..=b'9') = self.peek() {
                self.at += 1;
            }
            if self.at == start || self.at - start > 17 {
                return None;
            }
        }
        (!matches!(self.peek(), Some(b'e' | b'E'))).then_some(())
    }

    /// Any JSON value (a pass-through member).
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'{' => self.members(|scan, _| scan.value(depth + 1)),
            b'[' => self.items(|scan| scan.value(depth + 1)).map(drop),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// The answer object; its usage.
    fn answer(&mut self) -> Option<Option<Usage>> {
        let mut seen = Seen::default();
        let mut usage = None;
        self.members(|scan, key| {
            match key {
                b"id" => {
                    seen.once(0)?;
                    scan.string()?;
                }
                b"object" => {
                    seen.once(1)?;
                    // The typed read sets it to this.
                    (scan.string()? == (&b"chat.completion"[..], false)).then_some(())?;
                }
                b"created" => {
                    seen.once(2)?;
                    scan.unsigned(u64::MAX)?;
                }
                b"model" => {
                    seen.once(3)?;
                    // The typed read fills in an empty one.
                    let (model, _) = scan.string()?;
                    (!model.is_empty()).then_some(())?;
                }
                b"choices" => {
                    seen.once(4)?;
                    // The typed path refuses an answer without choices.
                    (scan.items(Self::choice)? > 0).then_some(())?;
                }
                b"usage" => {
                    seen.once(5)?;
                    if scan.peek()? == b'n' {
                        scan.literal(b"null")?;
                    } else {
                        usage = Some(scan.usage()?);
                    }
                }
                b"system_fingerprint" => {
                    seen.once(6)?;
                    scan.string_or_null()?;
                }
                b"service_tier" => {
                    seen.once(7)?;
                    scan.string_or_null()?;
                }
                _ => scan.value(1)?,
            }
            Some(())
        })?;
        // Without these the typed answer would carry defaults the upstream did not send.
        seen.all(&[0, 1, 2, 3, 4])?;
        Some(usage)
    }

    /// The usage object, once its token counts are known to be there (the typed writer
    /// writes a missing one as 0). Only the three counts: read here; with more members
    /// (details, a provider's own counts): by the typed read.
    fn usage(&mut self) -> Option<Usage> {
        let start = self.at;
        let mut counts = [None; 3];
        let mut more = false;
        self.members(|scan, key| {
            let slot = match key {
                b"prompt_tokens" => 0,
                b"completion_tokens" => 1,
                b"total_tokens" => 2,
                _ => {
                    more = true;
                    return scan.value(2);
                }
            };
            if counts[slot].is_some() {
                return None;
            }
            counts[slot] = Some(scan.count()?);
            Some(())
        })?;
        let [Some(prompt), Some(completion), Some(total)] = counts else {
            return None;
        };
        if more {
            return serde_json::from_slice(&self.bytes[start..self.at]).ok();
        }
        let mut usage = Usage::new(prompt, completion);
        usage.total_tokens = total;
        Some(usage)
    }

    /// One choice of the answer.
    fn choice(&mut self) -> Option<()> {
        let mut seen = Seen::default();
        self.members(|scan, key| {
            match key {
                b"index" => {
                    seen.once(0)?;
                    scan.unsigned(u64::from(u32::MAX))?;
                }
                b"message" => {
                    seen.once(1)?;
                    scan.message()?;
                }
                b"finish_reason" => {
                    seen.once(2)?;
                    scan.string_or_null()?;
                }
                b"logprobs" => {
                    seen.once(3)?;
                    scan.value(2)?;
                }
                _ => scan.value(2)?,
            }
            Some(())
        })?;
        seen.all(&[0, 1, 2])
    }

    /// A choice's message: a role the typed read knows, text or `null` content, and no
    /// tool calls (whose shape the typed read checks).
    fn message(&mut self) -> Option<()> {
        let mut seen = Seen::default();
        self.members(|scan, key| {
            match key {
                b"role" => {
                    seen.once(0)?;
                    let (role, escaped) = scan.string()?;
                    let known = matches!(
                        role,
                        b"assistant" | b"system" | b"developer" | b"user" | b"tool" | b"function"
                    );
                    (known && !escaped).then_some(())?;
                }
                b"content" => {
                    seen.once(1)?;
                    scan.string_or_null()?;
                }
                b"name" | b"tool_call_id" | b"reasoning_content" | b"refusal" => {
                    let bit = match key {
                        b"name" => 2,
                        b"tool_call_id" => 3,
                        b"reasoning_content" => 4,
                        _ => 5,
                    };
                    seen.once(bit)?;
                    scan.string_or_null()?;
                }
                b"tool_calls" => return None,
                _ => scan.value(3)?,
            }
            Some(())
        })?;
        seen.all(&[0, 1])
    }
}

/// Which known members an object had, each at most once (a repeated one is the typed
/// read's error).
#[derive(Default)]
struct Seen(u16);

impl Seen {
    fn once(&mut self, bit: u8) -> Option<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        Some(())
    }

    fn all(&self, bits: &[u8]) -> Option<()> {
        bits.iter()
            .all(|bit| self.0 & (1 << bit) != 0)
            .then_some(())
    }
}

#[cfg(test)]
mod tests {
    use llm_core::ChatResponse;
    use serde_json::Value;

    use super::check;

    /// What a client reads: the JSON value, members that are `null` left out (the typed
    /// writer leaves out some that the upstream sent as `null`).
    fn read(body: &[u8]) -> Value {
        fn strip(value: &mut Value) {
            match value {
                Value::Object(map) => {
                    map.retain(|_, v| !v.is_null());
                    map.values_mut().for_each(strip);
                }
                Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut value: Value = serde_json::from_slice(body).unwrap();
        strip(&mut value);
        value
    }

    /// The answer the typed path gives for `body`, when it gives one unchanged by its
    /// fix-ups.
    fn typed(body: &[u8]) -> Option<ChatResponse> {
        let text = std::str::from_utf8(body).ok()?;
        let answer: ChatResponse = serde_json::from_str(text).ok()?;
        (!answer.choices.is_empty()).then_some(answer)
    }

    /// `body` is relayed, and a client reads from it what it reads from the typed path's
    /// answer, usage included.
    fn relayed(body: &str) {
        let usage = check(body.as_bytes()).unwrap_or_else(|| panic!("not relayed: {body}"));
        let answer = typed(body.as_bytes()).unwrap();
        assert_eq!(usage, answer.usage, "{body}");
        let mut written = Vec::new();
        answer.write_json(&mut written).unwrap();
        assert_eq!(read(body.as_bytes()), read(&written), "{body}");
    }

    const PLAIN: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1732600000,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":11,"total_tokens":23}}"#;

    /// OpenAI's own layout and members today: pretty-printed, `refusal` and `logprobs`
    /// null, `annotations`, usage details, `service_tier`, `system_fingerprint`.
    const OPENAI: &str = r#"{
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Hello! How can I assist you today? \u00e9\ud83d\ude00 \"quoted\" \\ \/ \n",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": null
}
"#;

    /// Azure's filter results, in the answer and in the choice.
    const AZURE: &str = r#"{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"}},"finish_reason":"length","index":0,"logprobs":null,"message":{"content":"Hi","refusal":null,"role":"assistant"}},{"finish_reason":null,"index":1,"message":{"content":null,"role":"assistant"}}],"created":1,"id":"x","model":"gpt-4o-2024-11-20","object":"chat.completion","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"jailbreak":{"filtered":false,"detected":false},"score":-0.25}}],"system_fingerprint":"fp_1","usage":{"completion_tokens":1,"prompt_tokens":2,"total_tokens":3}}"#;

    #[test]
    fn answers_that_read_the_same_are_relayed() {
        relayed(PLAIN);
        relayed(OPENAI);
        relayed(AZURE);
        // No usage at all, or usage null.
        relayed(&PLAIN.replace(
            r#","usage":{"prompt_tokens":12,"completion_tokens":11,"total_tokens":23}"#,
            "",
        ));
        relayed(&PLAIN.replace(
            r#""usage":{"prompt_tokens":12,"completion_tokens":11,"total_tokens":23}"#,
            r#""usage":null"#,
        ));
        // An unknown finish reason, reasoning content, an unknown message member.
        relayed(&PLAIN.replace(
            r#""content":"Hello!"},"finish_reason":"stop""#,
            r#""content":"Hello!","reasoning_content":"Hmm","audio":{"id":"a"}},"finish_reason":"insufficient_system_resource""#,
        ));
    }

    #[test]
    fn answers_the_typed_path_reads_otherwise_are_not_relayed() {
        let not = |from: &str, to: &str| {
            let body = PLAIN.replacen(from, to, 1);
            assert_ne!(body, PLAIN, "{from}");
            assert_eq!(check(body.as_bytes()), None, "{body}");
        };
        // What the typed path fixes up or fills in.
        not(
            r#""object":"chat.completion""#,
            r#""object":"chat.completion.chunk""#,
        );
        not(r#""object":"chat.completion","#, "");
        not(r#""model":"gpt-4o""#, r#""model":"""#);
        not(r#""model":"gpt-4o","#, "");
        not(r#""id":"chatcmpl-1","#, "");
        not(r#""created":1732600000,"#, "");
        not(r#""index":0,"#, "");
        not(r#","finish_reason":"stop""#, "");
        not(r#""content":"Hello!""#, r#""audio":null"#);
        not(r#""usage":{"prompt_tokens":12,"#, r#""usage":{"#);
        // What the typed path rejects, or reads into something else.
        not(r#""choices":[{"#, r#""choices":[],"x":[{"#);
        not(r#""created":1732600000"#, r#""created":1732600000.0"#);
        not(r#""created":1732600000"#, r#""created":-1"#);
        not(r#""created":1732600000"#, r#""created":"1732600000""#);
        not(
            r#""created":1732600000"#,
            r#""created":99999999999999999999"#,
        );
        not(r#""index":0"#, r#""index":4294967296"#);
        not(r#""id":"chatcmpl-1""#, r#""id":null"#);
        not(r#""role":"assistant""#, r#""role":"robot""#);
        not(r#""role":"assistant""#, r#""role":"assist\u0061nt""#);
        not(
            r#""content":"Hello!""#,
            r#""content":[{"type":"text","text":"Hello!"}]"#,
        );
        not(
            r#""content":"Hello!""#,
            r#""content":"Hello!","tool_calls":[]"#,
        );
        not(r#""content":"Hello!""#, r#""content":"\ud800""#);
        not(r#""content":"Hello!""#, r#""content":"\udc00\ud800""#);
        not(r#""content":"Hello!""#, r#""content":"\x""#);
        not(r#""content":"Hello!""#, "\"content\":\"a\tb\"");
        not(
            r#""content":"Hello!""#,
            r#""content":"Hello!","content":"Again""#,
        );
        not(r#""id":"chatcmpl-1""#, r#""i\u0064":"chatcmpl-1""#);
        not(
            r#""usage":{"prompt_tokens":12"#,
            r#""usage":{"prompt_tokens":-12"#,
        );
        not(r#""usage":{"#, r#""usage":{"extra":1e400,"#);
        not(
            r#""usage":{"#,
            r#""usage":{"extra":12345678901234567890123,"#,
        );
        not("}]", "},]");
        not(r#"}}"#, r#"}},"error":{"message":"x"}} trailing"#);
        // Nesting deeper than the typed read follows is left to it.
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        not(
            r#""created":1732600000,"#,
            &format!(r#""created":1732600000,"x":{deep},"#),
        );
        // Not JSON text.
        assert_eq!(check(&PLAIN.as_bytes()[..PLAIN.len() - 1]), None);
        assert_eq!(check(b"\xff"), None);
        assert_eq!(
            check(br#"{"error":{"message":"no","type":"server_error"}}"#),
            None
        );
        assert_eq!(check(b""), None);
    }

    /// Every answer made by deleting, doubling or replacing one byte of the examples: the
    /// check accepts it only when the typed read gives a client the same.
    #[test]
    fn what_the_check_accepts_reads_the_same_as_the_typed_answer() {
        let replacements = [
            b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'n', b' ', b'\n',
        ];
        let mut accepted = 0;
        for example in [PLAIN, OPENAI, AZURE] {
            let bytes = example.as_bytes();
            for at in 0..bytes.len() {
                let mut variants = vec![
                    [&bytes[..at], &bytes[at + 1..]].concat(),
                    [&bytes[..=at], &bytes[at..]].concat(),
                ];
                for byte in replacements {
                    let mut changed = bytes.to_vec();
                    changed[at] = byte;
                    variants.push(changed);
                }
                for body in variants {
                    let Some(usage) = check(&body) else {
                        continue;
                    };
                    accepted += 1;
                    let text = std::str::from_utf8(&body).unwrap();
                    let answer = typed(&body).unwrap_or_else(|| panic!("relayed: {text}"));
                    assert_eq!(usage, answer.usage, "{text}");
                    let mut written = Vec::new();
                    answer.write_json(&mut written).unwrap();
                    assert_eq!(read(&body), read(&written), "{text}");
                }
            }
        }
        // White space and equivalent edits are accepted: the test saw both sides.
        assert!(accepted > 100, "{accepted}");
    }
}
