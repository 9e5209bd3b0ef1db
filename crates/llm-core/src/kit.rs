//! The sans-IO half of the provider kit: what every HTTP provider needs between the bytes
//! of a streamed answer and a [`ChatStream`], with no HTTP client in it.
//!
//! A provider writes a [`StreamTranslator`]: one SSE [`Event`] in, zero or more
//! [`ChatChunk`]s out, or an error, or "the stream is complete". [`sse_chat_stream`] drives
//! it over any byte stream (the HTTP transport in `llm-http` supplies one whose transport
//! failures are already classified) and guarantees the stream contract: chunks in order,
//! at most one error item and nothing after it, and a body that ends before the translator
//! says it is complete ends with an [`ErrorKind::Protocol`](crate::ErrorKind) error, never
//! silently.
//!
//! ```
//! use std::collections::VecDeque;
//!
//! use bytes::Bytes;
//! use futures_util::{StreamExt, stream};
//! use llm_core::{
//!     ChatChunk, ChunkChoice, Delta, Result,
//!     kit::{Flow, StreamTranslator, sse_chat_stream},
//!     sse::Event,
//! };
//!
//! /// A toy format: every `data:` is one piece of text, `data: end` completes the answer.
//! #[derive(Debug)]
//! struct Toy;
//!
//! impl StreamTranslator for Toy {
//!     fn provider(&self) -> &str {
//!         "toy"
//!     }
//!
//!     fn on_event(&mut self, event: &Event, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
//!         if event.data == "end" {
//!             return Ok(Flow::Done);
//!         }
//!         let delta = Delta::content(event.data.clone());
//!         out.push_back(ChatChunk::new("toy-1", 0, "toy", vec![ChunkChoice::new(0, delta, None)]));
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! # futures_util::FutureExt::now_or_never(async {
//! let body = stream::iter([Ok(Bytes::from("data: Hel")), Ok(Bytes::from("lo\n\ndata: end\n\n"))]);
//! let chunks: Vec<_> = sse_chat_stream(body, Toy).collect().await;
//! assert_eq!(chunks.len(), 1);
//! assert_eq!(chunks[0].as_ref().unwrap().choices[0].delta.content.as_deref(), Some("Hello"));
//! # }).unwrap();
//! ```

use std::{
    borrow::Cow,
    collections::VecDeque,
    fmt,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use futures_core::Stream;
use futures_util::{StreamExt, stream};
use secrecy::SecretString;
use tokio::time::{Instant, Sleep};

use crate::{
    ChatChunk, ChatStream, Error, Result,
    secret::redact,
    sse::{Decoder, Event},
};

/// What a translator says after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More events are expected.
    Continue,
    /// The answer is complete (`[DONE]`, or a final event in formats without one): the
    /// stream ends after the chunks produced so far.
    Done,
}

/// Translates one provider's stream events into [`ChatChunk`]s. One instance per stream;
/// it may keep state (ids, running totals, tool-call indexes).
pub trait StreamTranslator: Send + fmt::Debug + 'static {
    /// The provider name used in errors.
    fn provider(&self) -> &str;

    /// Translate one event, pushing the chunks it carries onto `out`.
    ///
    /// # Errors
    ///
    /// An in-band error event, or an event that cannot be parsed
    /// ([`ErrorKind::Protocol`](crate::ErrorKind)). The stream ends with that error after the
    /// chunks already pushed.
    fn on_event(&mut self, event: &Event, out: &mut VecDeque<ChatChunk>) -> Result<Flow>;

    /// The body ended without [`Flow::Done`]. Formats that have no terminator and know from
    /// their last event that the answer is whole return `Ok` (after pushing any final chunk);
    /// the default is a Protocol error: the stream was cut off.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`](crate::ErrorKind) when the answer is incomplete.
    fn on_end(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<()> {
        let _ = out;
        Err(Error::protocol(
            self.provider().to_owned(),
            "the stream ended before it was complete",
            None,
        ))
    }
}

/// What a stream driver has translated and not handed out yet, and how its stream ends:
/// the chunks in order, then at most one error, then nothing. [`sse_chat_stream`] keeps its
/// chunks here; so can a provider that drives a stream of another framing (an SDK's event
/// receiver) under the same rule.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Chunks translated and not yet handed out.
    pub pending: VecDeque<ChatChunk>,
    /// An error to hand out once the pending chunks are out.
    failed: Option<Error>,
    /// No more items after the pending ones (and `failed`).
    finished: bool,
}

/// What [`Outbox::take`] gives.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "returned and matched at once, never stored; boxing would allocate per chunk"
)]
pub enum Next {
    /// The next item to hand out.
    Item(Result<ChatChunk>),
    /// The stream is over.
    End,
    /// Nothing is ready: read more input.
    More,
}

impl Outbox {
    /// The next pending chunk, then the error, then the end; [`Next::More`] when the
    /// stream goes on and nothing is pending.
    pub fn take(&mut self) -> Next {
        if let Some(chunk) = self.pending.pop_front() {
            return Next::Item(Ok(chunk));
        }
        if let Some(error) = self.failed.take() {
            return Next::Item(Err(error));
        }
        if self.finished { Next::End } else { Next::More }
    }

    /// End the stream with `error` after the pending chunks.
    pub fn fail(&mut self, error: Error) {
        self.failed = Some(error);
        self.finished = true;
    }

    /// End the stream after the pending chunks.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Whether the stream ends after what is pending.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

struct Driver<B, T> {
    body: B,
    decoder: Decoder,
    /// The event being translated; its buffer is reused for every event of the stream.
    event: Event,
    translator: T,
    outbox: Outbox,
}

/// `serde_json::from_slice`, faster for a body that is valid UTF-8 (every JSON body should
/// be): the whole body is checked once and parsed as a `str`, where `from_slice` checks
/// every string it reads on its own (a call per string, a measurable share of a gateway's
/// CPU per request). A body that is not UTF-8 gets `from_slice`'s own error.
///
/// ```
/// let value: serde_json::Value = llm_core::kit::json_from_slice(br#"{"a":"b"}"#).unwrap();
/// assert_eq!(value["a"], "b");
/// assert!(llm_core::kit::json_from_slice::<serde_json::Value>(b"\"\xff\"").is_err());
/// ```
///
/// # Errors
///
/// What `serde_json` reports for the body.
pub fn json_from_slice<T: serde::de::DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// A JSON object key, borrowed from the input when it has no escapes (`Cow<str>`'s own
/// `Deserialize` always copies): for hand-written visitors on a hot path, as the one-pass
/// `Deserialize` impls of the chat types are.
///
/// ```
/// use serde::de::{Deserializer as _, MapAccess, Visitor};
///
/// struct Keys;
/// impl<'de> Visitor<'de> for Keys {
///     type Value = Vec<String>;
///     fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("an object")
///     }
///     fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
///         let mut keys = Vec::new();
///         while let Some(key) = map.next_key::<llm_core::kit::JsonKey<'de>>()? {
///             map.next_value::<serde::de::IgnoredAny>()?;
///             keys.push(key.0.into_owned());
///         }
///         Ok(keys)
///     }
/// }
///
/// let mut reader = serde_json::Deserializer::from_str(r#"{"a":1,"\u0062":2}"#);
/// assert_eq!(reader.deserialize_map(Keys).unwrap(), ["a", "b"]);
/// ```
#[derive(Debug)]
pub struct JsonKey<'de>(pub Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for JsonKey<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JsonKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<JsonKey<'de>, E> {
                Ok(JsonKey(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<JsonKey<'de>, E> {
                Ok(JsonKey(Cow::Owned(key.to_owned())))
            }
            fn visit_string<E>(self, key: String) -> Result<JsonKey<'de>, E> {
                Ok(JsonKey(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Drive `translator` over an SSE byte stream. See the [module docs](self).
///
/// Body errors are passed on as they are (classify them where they happen: the transport
/// knows whether it was a timeout, a reset or a cut body).
pub fn sse_chat_stream<B, T>(body: B, translator: T) -> ChatStream
where
    B: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    T: StreamTranslator,
{
    Box::pin(Driver {
        body,
        decoder: Decoder::new(),
        event: Event::default(),
        translator,
        outbox: Outbox::default(),
    })
}

// The driver never pins its fields (the translator is used through `&mut` only).
impl<B: Unpin, T> Unpin for Driver<B, T> {}

/// Polled in place (not an `unfold` of an `async` block, which moves the whole driver in
/// and out of a new future for every chunk).
impl<B, T> Stream for Driver<B, T>
where
    B: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    T: StreamTranslator,
{
    type Item = Result<ChatChunk>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            // The common case first, without going through `Next`: one copy of the chunk
            // fewer on the path of every streamed token.
            if let Some(chunk) = this.outbox.pending.pop_front() {
                return Poll::Ready(Some(Ok(chunk)));
            }
            match this.outbox.take() {
                Next::Item(item) => return Poll::Ready(Some(item)),
                Next::End => return Poll::Ready(None),
                Next::More => ready!(this.advance(cx)),
            }
        }
    }
}

impl<B, T> Driver<B, T>
where
    B: Stream<Item = Result<Bytes>> + Send + Unpin + 'static,
    T: StreamTranslator,
{
    /// Decode what is buffered, reading more of the body when nothing is; `Ready` once the
    /// outbox is filled, failed or finished.
    fn advance(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.decoder.next_event_into(&mut self.event) {
                Ok(true) => {
                    match self
                        .translator
                        .on_event(&self.event, &mut self.outbox.pending)
                    {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Done) => self.outbox.finish(),
                        Err(error) => self.fail(error),
                    }
                    if self.outbox.is_finished() || !self.outbox.pending.is_empty() {
                        return Poll::Ready(());
                    }
                    continue;
                }
                Ok(false) => {}
                Err(error) => {
                    let provider = self.translator.provider().to_owned();
                    self.fail(Error::protocol(
                        provider,
                        error.to_string(),
                        Some(Box::new(error)),
                    ));
                    return Poll::Ready(());
                }
            }
            match ready!(self.body.poll_next_unpin(cx)) {
                Some(Ok(bytes)) => self.decoder.feed(&bytes),
                Some(Err(error)) => {
                    self.fail(error);
                    return Poll::Ready(());
                }
                None => {
                    self.end();
                    return Poll::Ready(());
                }
            }
        }
    }

    fn end(&mut self) {
        // An event without its blank line is a frame cut in the middle (SSE discards it).
        let cut = match self.decoder.finish() {
            Ok(Some(_)) => Some("the stream was cut off in the middle of a frame".to_owned()),
            Ok(None) => None,
            Err(error) => Some(error.to_string()),
        };
        if let Some(detail) = cut {
            let provider = self.translator.provider().to_owned();
            return self.fail(Error::protocol(provider, detail, None));
        }
        match self.translator.on_end(&mut self.outbox.pending) {
            Ok(()) => self.outbox.finish(),
            Err(error) => self.fail(error),
        }
    }

    fn fail(&mut self, error: Error) {
        self.outbox.fail(error);
    }
}

/// OpenAI request fields that are bookkeeping of OpenAI's own service (storage, routing,
/// metadata) with no effect on an answer's content: providers with their own formats drop
/// them rather than send fields their APIs refuse.
pub const OPENAI_BOOKKEEPING: &[&str] = &[
    "store",
    "metadata",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "verbosity",
];

/// The model to send upstream: the provider's configured one, else the request's.
///
/// # Errors
///
/// [`ErrorKind::InvalidRequest`](crate::ErrorKind) naming `provider` when neither is set.
pub fn upstream_model<'a>(
    configured: Option<&'a str>,
    request: &'a crate::ChatRequest,
    provider: &str,
) -> Result<&'a str> {
    configured
        .or(request.model.as_deref())
        .filter(|model| !model.is_empty())
        .ok_or_else(|| {
            Error::invalid_request(format!(
                "{provider} needs a model: set one in the request or in the provider's configuration"
            ))
        })
}

/// The most capacity a buffer reused from one streamed event to the next keeps (see
/// [`clear_reused`]).
pub const KEPT_CAPACITY: usize = 64 * 1024;

/// Empty `buffer` for the next event of a stream, keeping its capacity only up to
/// [`KEPT_CAPACITY`]: one large event (a long tool-call argument) does not stay allocated
/// for the rest of the stream.
///
/// ```
/// let mut buffer = "x".repeat(llm_core::kit::KEPT_CAPACITY + 1);
/// llm_core::kit::clear_reused(&mut buffer);
/// assert!(buffer.is_empty() && buffer.capacity() <= llm_core::kit::KEPT_CAPACITY);
/// ```
pub fn clear_reused(buffer: &mut String) {
    if buffer.capacity() > KEPT_CAPACITY {
        *buffer = String::new();
    } else {
        buffer.clear();
    }
}

/// Whether `text` needs an escape to stand inside a JSON string: it holds a `"`, a `\` or
/// a control character. Text that needs none is written as it is, and a JSON string token
/// whose characters need none reads back as those characters, so a reader can take them
/// without decoding. Checked a word at a time (the check the chunk writers use).
///
/// ```
/// use llm_core::kit::needs_json_escape;
///
/// assert!(!needs_json_escape("plain text, é and 🌍"));
/// assert!(needs_json_escape("a \"quote\""));
/// assert!(needs_json_escape("a\nline"));
/// ```
#[must_use]
pub fn needs_json_escape(text: &str) -> bool {
    crate::types::any_needs_escape(text.as_bytes())
}

/// Where the first byte that [`needs_json_escape`] looks for (`"`, `\\` or a control
/// character) is in `bytes`: the end of a JSON string token's plain run. Checked a word at
/// a time.
///
/// ```
/// use llm_core::kit::json_escape_position;
///
/// assert_eq!(json_escape_position(b"plain text, \"then\""), Some(12));
/// assert_eq!(json_escape_position(b"a long run of plain text\n"), Some(24));
/// assert_eq!(json_escape_position("é and 🌍".as_bytes()), None);
/// ```
#[must_use]
#[inline]
pub fn json_escape_position(bytes: &[u8]) -> Option<usize> {
    crate::types::first_needs_escape(bytes)
}

/// Seconds since the Unix epoch (the `created` of answers made from formats without one).
#[must_use]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Wait for a stream's first item: an error there is returned as the call's error (so a
/// provider whose format reports a refusal or failure as the first event fails before any
/// chunk, like an HTTP error would); otherwise the stream, first item included.
///
/// # Errors
///
/// The stream's first item, when it is an error.
pub async fn fail_before_first_chunk(mut stream: ChatStream) -> Result<ChatStream> {
    match stream.next().await {
        Some(Err(error)) => Err(error),
        Some(Ok(first)) => Ok(Box::pin(stream::once(async { Ok(first) }).chain(stream))),
        None => Ok(Box::pin(stream::empty())),
    }
}

/// `text` with every secret in `secrets` masked (`sk-…abcd`): for upstream error messages,
/// which sometimes echo the key they rejected.
#[must_use]
pub fn scrub(text: &str, secrets: &[&SecretString]) -> String {
    let mut text = Cow::Borrowed(text);
    for secret in secrets {
        if let Cow::Owned(scrubbed) = redact(&text, secret) {
            text = Cow::Owned(scrubbed);
        }
    }
    text.into_owned()
}

/// A bounded, single-line piece of a non-JSON error body (a proxy's HTML or text page), or
/// the status's reason when the body is empty.
#[must_use]
pub fn body_excerpt(body: &[u8], status: http::StatusCode) -> String {
    if body.is_empty() {
        return status.canonical_reason().unwrap_or("no message").to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(300).collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A timer for a deadline that moves later often and is rarely reached: an idle timeout
/// pushed back by every chunk, a keep-alive pushed back by every event.
///
/// Moving a tokio timer costs a timer-wheel update each time; this one is armed at the
/// first wait and moved only when it fires before the current deadline, so a stream pays
/// for its timer about once per deadline rather than once per item.
///
/// ```
/// use std::{future::poll_fn, time::Duration};
///
/// use llm_core::kit::LazyDeadline;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let mut deadline = LazyDeadline::default();
/// let due = tokio::time::Instant::now() + Duration::from_secs(5);
/// poll_fn(|cx| deadline.poll_until(cx, due)).await;
/// assert!(tokio::time::Instant::now() >= due);
/// # });
/// ```
#[derive(Debug, Default)]
pub struct LazyDeadline {
    timer: Option<Pin<Box<Sleep>>>,
}

impl LazyDeadline {
    /// `Ready` once `due` has passed; otherwise the waker is registered for it. `due` may
    /// move later between calls at no cost until the timer fires.
    pub fn poll_until(&mut self, cx: &mut Context<'_>, due: Instant) -> Poll<()> {
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if timer.deadline() >= due {
                return Poll::Ready(());
            }
            // The deadline moved since the timer was set: wait for the later moment.
            timer.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt, stream};

    use super::*;
    use crate::{ChunkChoice, Delta, ErrorKind};

    fn text(t: &str) -> ChatChunk {
        ChatChunk::new(
            "1",
            0,
            "m",
            vec![ChunkChoice::new(0, Delta::content(t), None)],
        )
    }

    #[derive(Debug)]
    struct Lines {
        complete_at_eof: bool,
    }

    impl StreamTranslator for Lines {
        fn provider(&self) -> &str {
            "lines"
        }

        fn on_event(&mut self, event: &Event, out: &mut VecDeque<ChatChunk>) -> Result<Flow> {
            match event.data.as_str() {
                "[DONE]" => Ok(Flow::Done),
                "boom" => Err(Error::protocol("lines", "boom", None)),
                "two" => {
                    out.push_back(text("a"));
                    out.push_back(text("b"));
                    Ok(Flow::Continue)
                }
                other => {
                    out.push_back(text(other));
                    Ok(Flow::Continue)
                }
            }
        }

        fn on_end(&mut self, _out: &mut VecDeque<ChatChunk>) -> Result<()> {
            if self.complete_at_eof {
                Ok(())
            } else {
                Err(Error::protocol("lines", "cut", None))
            }
        }
    }

    fn run(body: &'static [&'static str], complete_at_eof: bool) -> Vec<Result<ChatChunk>> {
        let body = stream::iter(body.iter().map(|s| Ok(Bytes::from_static(s.as_bytes()))));
        sse_chat_stream(body, Lines { complete_at_eof })
            .collect::<Vec<_>>()
            .now_or_never()
            .unwrap_or_default()
    }

    fn texts(items: &[Result<ChatChunk>]) -> Vec<String> {
        items
            .iter()
            .filter_map(|item| item.as_ref().ok())
            .filter_map(|chunk| chunk.choices[0].delta.content.clone())
            .collect()
    }

    #[test]
    fn chunks_then_done() {
        let items = run(
            &["data: x\n\ndata: two\n\n", "data: [DONE]\n\ndata: late\n\n"],
            false,
        );
        assert_eq!(texts(&items), ["x", "a", "b"]);
        assert!(items.iter().all(Result::is_ok));
    }

    #[test]
    fn cut_streams_end_with_one_error() {
        let items = run(&["data: x\n\n"], false);
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].as_ref().unwrap_err().kind(), ErrorKind::Protocol);
        // A format without a terminator may be complete at the end of the body.
        let items = run(&["data: x\n\n"], true);
        assert_eq!(texts(&items), ["x"]);
        assert_eq!(items.len(), 1);
        // An event without its blank line was cut in the middle, even in a format that
        // may end at the end of the body.
        let items = run(&["data: x\n\ndata: [DONE]"], true);
        assert_eq!(items.len(), 2);
        let err = items[1].as_ref().unwrap_err();
        assert!(err.to_string().contains("middle of a frame"), "{err}");
    }

    #[test]
    fn errors_come_after_pending_chunks_and_end_the_stream() {
        let items = run(&["data: x\n\ndata: boom\n\ndata: y\n\n"], false);
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());
        let body = stream::iter([
            Ok(Bytes::from_static(b"data: x\n\n")),
            Err(Error::protocol("t", "reset", None)),
            Ok(Bytes::from_static(b"data: y\n\n")),
        ]);
        let items: Vec<_> = sse_chat_stream(
            body,
            Lines {
                complete_at_eof: true,
            },
        )
        .collect::<Vec<_>>()
        .now_or_never()
        .unwrap_or_default();
        assert_eq!(items.len(), 2);
        assert!(items[1].as_ref().unwrap_err().to_string().contains("reset"));
    }

    #[test]
    fn scrub_masks_every_secret() {
        let a = SecretString::from("sk-AAAAAAAAAAAA-1111");
        let b = SecretString::from("sk-BBBBBBBBBBBB-2222");
        let text = scrub(
            "bad keys sk-AAAAAAAAAAAA-1111 and sk-BBBBBBBBBBBB-2222",
            &[&a, &b],
        );
        assert!(!text.contains("AAAA") && !text.contains("BBBB"), "{text}");
        assert_eq!(
            body_excerpt(
                b"<html>\n  Bad   gateway</html>",
                http::StatusCode::BAD_GATEWAY
            ),
            "<html> Bad gateway</html>"
        );
        assert_eq!(
            body_excerpt(b"", http::StatusCode::BAD_GATEWAY),
            "Bad Gateway"
        );
    }
}
