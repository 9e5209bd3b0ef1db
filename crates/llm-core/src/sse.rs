//! The one Server-Sent Events decoder of the workspace, sans-IO.
//!
//! Feed it bytes as they arrive, in pieces of any size, and take complete events out. It
//! follows the SSE specification's parsing rules: lines end in LF, CRLF or CR; a blank line
//! ends an event; `data:` lines are joined with `\n`; one space after the colon is dropped
//! (so `data:{..}` and `data: {..}` are the same); lines starting with `:` are comments;
//! `event:`, `id:` and `retry:` fields are kept. A multi-byte UTF-8 character split across
//! reads is reassembled.
//!
//! ```
//! use llm_core::sse::Decoder;
//!
//! let mut decoder = Decoder::new();
//! decoder.feed(b": keep-alive\r\n\r\ndata: {\"a\"");
//! assert_eq!(decoder.next_event().unwrap(), None);
//! decoder.feed(b":1}\r\n\r\ndata: [DONE]\n\n");
//! assert_eq!(decoder.next_event().unwrap().unwrap().data, "{\"a\":1}");
//! assert_eq!(decoder.next_event().unwrap().unwrap().data, "[DONE]");
//! assert_eq!(decoder.next_event().unwrap(), None);
//! ```

use std::fmt;

use crate::kit::clear_reused;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
    /// The `retry:` field in milliseconds, if valid.
    pub retry: Option<u64>,
}

/// Why the byte stream is not valid SSE.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SseError {
    /// A line was not valid UTF-8.
    InvalidUtf8 {
        /// The byte offset of the line in the stream.
        offset: u64,
    },
    /// One event grew past the decoder's limit.
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUtf8 { offset } => {
                write!(f, "event stream line at byte {offset} is not valid UTF-8")
            }
            Self::EventTooLarge { limit } => {
                write!(f, "event stream event is larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

/// The incremental decoder. See the [module docs](self).
#[derive(Debug)]
pub struct Decoder {
    /// Bytes received and not yet consumed as complete lines.
    buf: Vec<u8>,
    /// How far into `buf` lines have been consumed.
    pos: usize,
    /// The previous line ended in CR, so a leading LF belongs to it.
    skip_lf: bool,
    /// The event being built.
    pending: Event,
    /// How many `data:` lines `pending` has.
    data_lines: usize,
    /// Whether `pending` has any field at all (so a trailing partial event can be reported).
    pending_fields: bool,
    /// Bytes of lines that went into `pending` so far.
    pending_size: usize,
    /// Bytes consumed before `buf[0]`, for error offsets.
    consumed: u64,
    /// The largest event accepted.
    limit: usize,
    /// Whether the stream start was checked for a byte-order mark.
    started: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Decoder {
    /// The default limit for one event: 16 MiB.
    pub const DEFAULT_LIMIT: usize = 16 * 1024 * 1024;

    /// A decoder with the default event size limit.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limit(Self::DEFAULT_LIMIT)
    }

    /// A decoder that rejects events larger than `limit` bytes.
    #[must_use]
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            skip_lf: false,
            pending: Event::default(),
            data_lines: 0,
            pending_fields: false,
            pending_size: 0,
            consumed: 0,
            limit,
            started: false,
        }
    }

    /// Add received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.consumed += self.pos as u64;
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, or `None` until more bytes arrive.
    ///
    /// # Errors
    ///
    /// [`SseError::InvalidUtf8`] for a line that is not UTF-8 and [`SseError::EventTooLarge`]
    /// when an event exceeds the limit. The stream should be abandoned after an error.
    pub fn next_event(&mut self) -> Result<Option<Event>, SseError> {
        Ok(self
            .complete_event()?
            .then(|| std::mem::take(&mut self.pending)))
    }

    /// [`next_event`](Self::next_event) into `event`, whose buffers are reused for the
    /// events decoded after it (a relay decodes one event per streamed token): `Ok(true)`
    /// when `event` now holds the next complete event, `Ok(false)` (and `event` as it was)
    /// until more bytes arrive.
    ///
    /// ```
    /// use llm_core::sse::{Decoder, Event};
    ///
    /// let mut decoder = Decoder::new();
    /// let mut event = Event::default();
    /// decoder.feed(b"event: a\ndata: 1\n\ndata: 2\n\n");
    /// assert!(decoder.next_event_into(&mut event).unwrap());
    /// assert_eq!((event.event.as_deref(), event.data.as_str()), (Some("a"), "1"));
    /// assert!(decoder.next_event_into(&mut event).unwrap());
    /// assert_eq!((event.event.as_deref(), event.data.as_str()), (None, "2"));
    /// assert!(!decoder.next_event_into(&mut event).unwrap());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`next_event`](Self::next_event).
    pub fn next_event_into(&mut self, event: &mut Event) -> Result<bool, SseError> {
        if !self.complete_event()? {
            return Ok(false);
        }
        clear(event);
        std::mem::swap(&mut self.pending, event);
        Ok(true)
    }

    /// Decode lines until `pending` holds a complete event (`true`) or more bytes are
    /// needed (`false`).
    fn complete_event(&mut self) -> Result<bool, SseError> {
        if !self.started {
            let head = &self.buf[self.pos..];
            if head.len() < BOM.len() && BOM.starts_with(head) {
                // Too few bytes yet to tell a byte-order mark from data.
                return Ok(false);
            }
            if head.starts_with(BOM) {
                self.pos += BOM.len();
            }
            self.started = true;
        }
        loop {
            if self.skip_lf && self.pos < self.buf.len() {
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                }
                self.skip_lf = false;
            }
            let rest = &self.buf[self.pos..];
            let Some(end) = memchr::memchr2(b'\n', b'\r', rest) else {
                let partial = rest.len();
                self.compact();
                if self.pending_size + partial > self.limit {
                    return Err(SseError::EventTooLarge { limit: self.limit });
                }
                return Ok(false);
            };
            let line_start = self.pos;
            self.skip_lf = rest[end] == b'\r';
            self.pos += end + 1;
            if end == 0 {
                if self.dispatch() {
                    return Ok(true);
                }
                continue;
            }
            self.pending_size += end;
            if self.pending_size > self.limit {
                return Err(SseError::EventTooLarge { limit: self.limit });
            }
            let offset = self.consumed + line_start as u64;
            let bytes = &self.buf[line_start..line_start + end];
            let line = std::str::from_utf8(bytes).map_err(|_| SseError::InvalidUtf8 { offset })?;
            apply_field(
                &mut self.pending,
                &mut self.data_lines,
                &mut self.pending_fields,
                line,
            );
        }
    }

    /// Call at the end of the byte stream: returns an event that was started but not ended
    /// by a blank line. The SSE specification discards such an event; providers use this to
    /// tell a truncated stream from a complete one.
    ///
    /// # Errors
    ///
    /// [`SseError::InvalidUtf8`] when the unterminated last line is not UTF-8.
    pub fn finish(&mut self) -> Result<Option<Event>, SseError> {
        let rest = &self.buf[self.pos..];
        if !rest.is_empty() {
            let offset = self.consumed + self.pos as u64;
            let line = std::str::from_utf8(rest).map_err(|_| SseError::InvalidUtf8 { offset })?;
            apply_field(
                &mut self.pending,
                &mut self.data_lines,
                &mut self.pending_fields,
                line,
            );
            self.pos = self.buf.len();
        }
        let had_fields = std::mem::take(&mut self.pending_fields);
        self.data_lines = 0;
        self.pending_size = 0;
        let event = std::mem::take(&mut self.pending);
        Ok(had_fields.then_some(event))
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.consumed += self.pos as u64;
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// End the pending event at a blank line: `true` when it is to be handed out (it has
    /// data, as the specification requires), otherwise it is cleared.
    fn dispatch(&mut self) -> bool {
        self.pending_fields = false;
        self.pending_size = 0;
        let data_lines = std::mem::take(&mut self.data_lines);
        if data_lines == 0 {
            clear(&mut self.pending);
        }
        data_lines > 0
    }
}

/// Empty `event`, keeping the capacity of its data up to
/// [`KEPT_CAPACITY`](crate::kit::KEPT_CAPACITY).
fn clear(event: &mut Event) {
    event.event = None;
    clear_reused(&mut event.data);
    event.id = None;
    event.retry = None;
}

fn apply_field(pending: &mut Event, data_lines: &mut usize, any: &mut bool, line: &str) {
    if line.starts_with(':') {
        return;
    }
    let (name, value) = match line.split_once(':') {
        Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
        None => (line, ""),
    };
    match name {
        "data" => {
            if *data_lines > 0 {
                pending.data.push('\n');
            }
            pending.data.push_str(value);
            *data_lines += 1;
        }
        "event" => pending.event = Some(value.to_owned()),
        "id" => {
            if !value.contains('\0') {
                pending.id = Some(value.to_owned());
            }
        }
        "retry" => {
            if let Ok(ms) = value.parse() {
                pending.retry = Some(ms);
            }
        }
        // Unknown fields are ignored, as the specification says.
        _ => return,
    }
    *any = true;
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::kit::KEPT_CAPACITY;

    fn decode_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut decoder = Decoder::new();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk);
            while let Some(event) = decoder.next_event().unwrap() {
                events.push(event);
            }
        }
        events
    }

    fn data(text: &str) -> Event {
        Event {
            data: text.to_owned(),
            ..Event::default()
        }
    }

    #[test]
    fn lf_crlf_and_cr_line_endings() {
        for input in [
            &b"data: a\n\ndata: b\n\n"[..],
            b"data: a\r\n\r\ndata: b\r\n\r\n",
            b"data: a\r\rdata: b\r\r",
        ] {
            assert_eq!(
                decode_all(&[input]),
                vec![data("a"), data("b")],
                "{input:?}"
            );
        }
    }

    #[test]
    fn crlf_split_between_reads() {
        let events = decode_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n", b"\r\n"]);
        assert_eq!(events, vec![data("a"), data("b")]);
    }

    #[test]
    fn reused_event_buffers_keep_at_most_the_kept_capacity() {
        let mut decoder = Decoder::new();
        let mut event = Event::default();
        let large = "x".repeat(KEPT_CAPACITY * 2);
        decoder.feed(format!("data: {large}\n\ndata: a\n\ndata: b\n\n").as_bytes());
        assert!(decoder.next_event_into(&mut event).unwrap());
        assert_eq!(event.data.len(), large.len());
        // The large buffer goes back to the decoder emptied, and is not kept.
        assert!(decoder.next_event_into(&mut event).unwrap());
        assert_eq!(event.data, "a");
        assert!(decoder.pending.data.capacity() <= KEPT_CAPACITY);
        assert!(decoder.next_event_into(&mut event).unwrap());
        assert_eq!(event.data, "b");
        assert!(event.data.capacity() <= KEPT_CAPACITY);
    }

    #[test]
    fn comments_are_ignored() {
        let events = decode_all(&[b": keep-alive\n\n:HTTP_STATUS/200\ndata: x\n\n"]);
        assert_eq!(events, vec![data("x")]);
    }

    #[test]
    fn multi_line_data_is_joined() {
        let events = decode_all(&[b"data: first\ndata: second\ndata\n\n"]);
        assert_eq!(events, vec![data("first\nsecond\n")]);
    }

    #[test]
    fn no_space_after_colon() {
        let events = decode_all(&[b"id:1\nevent:result\ndata:{\"a\":1}\n\n"]);
        assert_eq!(
            events,
            vec![Event {
                event: Some("result".to_owned()),
                data: "{\"a\":1}".to_owned(),
                id: Some("1".to_owned()),
                retry: None,
            }]
        );
    }

    #[test]
    fn only_one_leading_space_is_dropped() {
        assert_eq!(decode_all(&[b"data:  two\n\n"]), vec![data(" two")]);
    }

    #[test]
    fn retry_and_unknown_fields() {
        let events = decode_all(&[b"retry: 3000\nfoo: bar\ndata: x\n\n"]);
        assert_eq!(events[0].retry, Some(3000));
        assert_eq!(events[0].data, "x");
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        assert!(decode_all(&[b"event: ping\n\n"]).is_empty());
    }

    #[test]
    fn byte_order_mark_is_skipped_even_when_split() {
        assert_eq!(
            decode_all(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]),
            vec![data("x")]
        );
    }

    #[test]
    fn utf8_split_across_reads() {
        let bytes = "data: 你好\n\n".as_bytes();
        for split in 0..bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(decode_all(&[a, b]), vec![data("你好")], "split at {split}");
        }
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut decoder = Decoder::new();
        decoder.feed(b"data: ok\n\ndata: \xFF\xFE\n\n");
        assert_eq!(decoder.next_event().unwrap(), Some(data("ok")));
        assert_eq!(
            decoder.next_event(),
            Err(SseError::InvalidUtf8 { offset: 10 })
        );
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut decoder = Decoder::with_limit(16);
        decoder.feed(b"data: 0123456789");
        assert_eq!(decoder.next_event(), Ok(None));
        decoder.feed(b"abcdefgh");
        assert_eq!(
            decoder.next_event(),
            Err(SseError::EventTooLarge { limit: 16 })
        );
    }

    #[test]
    fn finish_reports_a_trailing_partial_event() {
        let mut decoder = Decoder::new();
        decoder.feed(b"data: whole\n\ndata: {\"half\":");
        assert_eq!(decoder.next_event().unwrap(), Some(data("whole")));
        assert_eq!(decoder.next_event().unwrap(), None);
        assert_eq!(decoder.finish().unwrap(), Some(data("{\"half\":")));
        assert_eq!(decoder.finish().unwrap(), None);

        let mut clean = Decoder::new();
        clean.feed(b"data: [DONE]\n\n");
        assert_eq!(clean.next_event().unwrap(), Some(data("[DONE]")));
        assert_eq!(clean.finish().unwrap(), None);
    }

    const FIXTURE: &str = ": keep-alive\r\n\r\ndata: {\"id\":\"1\",\"text\":\"héllo 你好\"}\r\n\r\nid:7\nevent:result\ndata:{\"b\":2}\n\ndata: line one\ndata: line two\n\n:HTTP_STATUS/200\rdata: cr\r\rdata: [DONE]\n\n";

    fn fixture_events() -> Vec<Event> {
        decode_all(&[FIXTURE.as_bytes()])
    }

    #[test]
    fn every_single_split_point_of_the_fixture() {
        let expected = fixture_events();
        assert_eq!(expected.len(), 5);
        let bytes = FIXTURE.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(decode_all(&[a, b]), expected, "split at {split}");
        }
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_events(cuts in proptest::collection::vec(0..FIXTURE.len(), 0..12)) {
            let bytes = FIXTURE.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for cut in cuts {
                chunks.push(&bytes[last..cut]);
                last = cut;
            }
            chunks.push(&bytes[last..]);
            prop_assert_eq!(decode_all(&chunks), fixture_events());
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
            let cut = cut.min(input.len());
            let mut decoder = Decoder::with_limit(256);
            decoder.feed(&input[..cut]);
            while let Ok(Some(_)) = decoder.next_event() {}
            decoder.feed(&input[cut..]);
            while let Ok(Some(_)) = decoder.next_event() {}
            let _ = decoder.finish();
        }
    }
}
