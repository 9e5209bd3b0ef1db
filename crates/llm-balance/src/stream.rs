//! A committed stream: the router has passed its first content on, so from here a failure
//! is an error item and the end of the stream, never a failover and never a silent end.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use llm_core::{ChatChunk, ChatStream, Error, TimeoutPhase, kit::LazyDeadline};
use tokio::time::Instant;

use crate::{
    CooldownPolicy,
    health::{Clock, Permit},
};

pub(crate) struct Committed {
    pub(crate) buffered: VecDeque<ChatChunk>,
    pub(crate) inner: ChatStream,
    pub(crate) permit: Permit,
    pub(crate) idle: Duration,
    pub(crate) policy: CooldownPolicy,
    pub(crate) clock: Clock,
}

struct State {
    buffered: VecDeque<ChatChunk>,
    inner: ChatStream,
    permit: Option<Permit>,
    idle: Duration,
    policy: CooldownPolicy,
    clock: Clock,
    tokens: u64,
}

impl State {
    fn fail(&mut self, error: &Error) {
        if let Some(permit) = self.permit.take() {
            permit.fail(error, &self.policy, self.clock.now_ms());
        }
    }
}

pub(crate) fn committed(parts: Committed) -> ChatStream {
    Box::pin(CommittedStream {
        state: State {
            buffered: parts.buffered,
            inner: parts.inner,
            permit: Some(parts.permit),
            idle: parts.idle,
            policy: parts.policy,
            clock: parts.clock,
            tokens: 0,
        },
        waiting_since: None,
        idle_timer: LazyDeadline::default(),
    })
}

/// The committed stream: chunks pass through; a silence of `idle` is a timeout.
///
/// The silence is timed from when the stream starts waiting for its next chunk (as a
/// `timeout` around each `next()` would), with one timer per stream, not one per chunk:
/// the timer is armed at the first wait and moved to `start of the wait + idle` only when
/// it fires early.
struct CommittedStream {
    state: State,
    /// When the upstream last had nothing for us; `None` while chunks keep coming.
    waiting_since: Option<Instant>,
    idle_timer: LazyDeadline,
}

impl CommittedStream {
    /// `Ready` once the upstream has been silent for `idle` since the wait began.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
        self.idle_timer.poll_until(cx, since + self.state.idle)
    }
}

impl Stream for CommittedStream {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // `permit` is taken once the stream ended, successfully or not.
        if this.state.permit.is_none() {
            return Poll::Ready(None);
        }
        if let Some(chunk) = this.state.buffered.pop_front() {
            return Poll::Ready(Some(Ok(chunk)));
        }
        let state = &mut this.state;
        match state.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.waiting_since = None;
                if let Some(usage) = &chunk.usage {
                    state.tokens = usage.total_tokens;
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                state.fail(&error);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                if let Some(permit) = state.permit.take() {
                    permit.succeed(None, state.tokens, state.clock.now_ms());
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.poll_idle(cx));
                let state = &mut this.state;
                let label = state
                    .permit
                    .as_ref()
                    .map_or_else(String::new, |p| p.deployment().id().to_owned());
                let error = Error::Timeout {
                    provider: label.into(),
                    phase: TimeoutPhase::Idle,
                    after: state.idle,
                };
                state.fail(&error);
                Poll::Ready(Some(Err(error)))
            }
        }
    }
}

/// Read a new stream up to its first content (or its end marker), keeping what came before.
/// Anything else before that point is a failed attempt.
pub(crate) async fn until_first_content(
    stream: &mut ChatStream,
    label: &str,
) -> Result<VecDeque<ChatChunk>, Error> {
    let mut buffered = VecDeque::new();
    loop {
        match stream.next().await {
            Some(Ok(chunk)) => {
                let commit =
                    chunk.has_content() || chunk.choices.iter().any(|c| c.finish_reason.is_some());
                buffered.push_back(chunk);
                if commit {
                    return Ok(buffered);
                }
            }
            Some(Err(error)) => return Err(error),
            None => {
                return Err(Error::protocol(
                    label.to_owned(),
                    "the stream ended before any content",
                    None,
                ));
            }
        }
    }
}

/// The deadline for one attempt: its own limit, within the request's.
pub(crate) fn attempt_deadline(limit: Duration, overall: Instant) -> Instant {
    (Instant::now() + limit).min(overall)
}
