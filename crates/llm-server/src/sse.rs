//! Server-sent events written straight into the response's frames.
//!
//! [`SseBody`] asks its [`EventSource`] to write events into one buffer and sends what is
//! there as one body frame: every event the source has ready leaves together (several
//! chunks that reached us in one upstream read go out in one write), and no event waits
//! for another. A keep-alive comment (`:\n\n`) is sent after [`KEEP_ALIVE`] without an
//! event; its timer is re-armed only when it fires, not per event.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    http::header::{CACHE_CONTROL, CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use bytes::{BufMut, BytesMut};
use http_body::{Frame, SizeHint};
use llm_factory::core::kit::LazyDeadline;
use tokio::time::Instant;

/// Silence after which a keep-alive comment is sent (axum's default, kept).
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The most bytes gathered into one frame before it is sent.
const MAX_FRAME_BYTES: usize = 16 * 1024;

/// Room made in the buffer before a JSON event is written into it.
const EVENT_RESERVE: usize = 4096;

/// The keep-alive comment.
const KEEP_ALIVE_EVENT: &[u8] = b":\n\n";

/// What an [`SseBody`] sends.
pub(crate) trait EventSource: Send + Unpin + 'static {
    /// Write the next complete event(s) into `out`: `Ready(true)` when something was
    /// written, `Ready(false)` at the end of the stream (after any last event).
    fn poll_write(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<bool>;
}

/// Write `data: {json}\n\n`, the JSON written by `write`, or `fallback` when it cannot be
/// encoded (no partial event is left behind).
pub(crate) fn write_json_event(
    out: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut) -> serde_json::Result<()>,
    fallback: impl FnOnce(serde_json::Error) -> String,
) {
    // One allocation per frame, not one per growth of each event.
    if out.capacity() - out.len() < 1024 {
        out.reserve(EVENT_RESERVE);
    }
    let start = out.len();
    out.put_slice(b"data: ");
    if let Err(error) = write(out) {
        out.truncate(start);
        out.put_slice(b"data: ");
        out.put_slice(fallback(error).as_bytes());
    }
    out.put_slice(b"\n\n");
}

/// Write `data: {text}\n\n`; `text` must be one line (JSON or `[DONE]`).
pub(crate) fn write_data_event(out: &mut BytesMut, text: &str) {
    debug_assert!(!text.contains(['\n', '\r']));
    out.put_slice(b"data: ");
    out.put_slice(text.as_bytes());
    out.put_slice(b"\n\n");
}

/// An event-stream body. See the [module docs](self).
pub(crate) struct SseBody<E> {
    source: E,
    buffer: BytesMut,
    /// When the last frame was sent.
    last_sent: Instant,
    /// Fires [`KEEP_ALIVE`] after `last_sent`; armed on the first idle poll, moved only
    /// when it fires.
    keep_alive: LazyDeadline,
    done: bool,
}

impl<E: EventSource> SseBody<E> {
    pub(crate) fn new(source: E) -> Self {
        Self {
            source,
            buffer: BytesMut::new(),
            last_sent: Instant::now(),
            keep_alive: LazyDeadline::default(),
            done: false,
        }
    }

    /// The `text/event-stream` response.
    pub(crate) fn into_response(self) -> Response {
        (
            [
                (CONTENT_TYPE, "text/event-stream"),
                (CACHE_CONTROL, "no-cache"),
            ],
            Body::new(self),
        )
            .into_response()
    }

    /// `Ready` with a keep-alive comment when the stream has been silent for
    /// [`KEEP_ALIVE`]; otherwise the timer is armed for that moment.
    fn poll_keep_alive(&mut self, cx: &mut Context<'_>) -> Poll<Bytes> {
        self.keep_alive
            .poll_until(cx, self.last_sent + KEEP_ALIVE)
            .map(|()| Bytes::from_static(KEEP_ALIVE_EVENT))
    }
}

impl<E: EventSource> http_body::Body for SseBody<E> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        while !this.done && this.buffer.len() < MAX_FRAME_BYTES {
            match this.source.poll_write(cx, &mut this.buffer) {
                Poll::Ready(true) => {}
                Poll::Ready(false) => this.done = true,
                Poll::Pending => break,
            }
        }
        if !this.buffer.is_empty() {
            if !this.done {
                this.last_sent = Instant::now();
            }
            return Poll::Ready(Some(Ok(Frame::data(this.buffer.split().freeze()))));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match this.poll_keep_alive(cx) {
            Poll::Ready(comment) => {
                this.last_sent = Instant::now();
                Poll::Ready(Some(Ok(Frame::data(comment))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.buffer.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use http_body_util::BodyExt;

    use super::*;

    /// Events handed over in bursts: `Some(text)` is an event, `None` a pause (Pending).
    struct Script(VecDeque<Option<&'static str>>);

    impl EventSource for Script {
        fn poll_write(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<bool> {
            match self.0.pop_front() {
                Some(Some(text)) => {
                    write_data_event(out, text);
                    Poll::Ready(true)
                }
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(false),
            }
        }
    }

    #[tokio::test]
    async fn ready_events_share_a_frame_and_none_waits_for_another() {
        let script = Script(
            [Some("1"), Some("2"), None, Some("3"), None, Some("[DONE]")]
                .into_iter()
                .collect(),
        );
        let mut body = SseBody::new(script);
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(
            frames,
            [
                Bytes::from_static(b"data: 1\n\ndata: 2\n\n"),
                Bytes::from_static(b"data: 3\n\n"),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ]
        );
    }

    /// A source that never has anything.
    struct Silent;

    impl EventSource for Silent {
        fn poll_write(&mut self, _cx: &mut Context<'_>, _out: &mut BytesMut) -> Poll<bool> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_gets_a_keep_alive_comment_every_interval() {
        let mut body = SseBody::new(Silent);
        let started = Instant::now();
        for n in 1..=3 {
            let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
            assert_eq!(&frame[..], KEEP_ALIVE_EVENT);
            assert_eq!(started.elapsed(), KEEP_ALIVE * n);
        }
    }

    #[test]
    fn json_events_that_cannot_be_encoded_become_the_fallback_whole() {
        struct Broken;
        impl serde::Serialize for Broken {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let mut out = BytesMut::new();
        let value = serde_json::json!({"a": 1});
        write_json_event(
            &mut out,
            |out| serde_json::to_writer(out.writer(), &value),
            |_| unreachable!(),
        );
        write_json_event(
            &mut out,
            |out| serde_json::to_writer(out.writer(), &Broken),
            |e| format!("{{\"error\":\"{e}\"}}"),
        );
        assert_eq!(&out[..], b"data: {\"a\":1}\n\ndata: {\"error\":\"no\"}\n\n");
    }
}
