//! A committed stream: the router has passed its first content on, so from here a failure
//! is an error item and the end of the stream, never a failover and never a silent end.

use std::{collections::VecDeque, time::Duration};

use futures_util::{StreamExt, stream};
use llm_core::{ChatChunk, ChatStream, Error, TimeoutPhase};
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
    let state = State {
        buffered: parts.buffered,
        inner: parts.inner,
        permit: Some(parts.permit),
        idle: parts.idle,
        policy: parts.policy,
        clock: parts.clock,
        tokens: 0,
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        // `permit` is taken once the stream ended, successfully or not.
        state.permit.as_ref()?;
        if let Some(chunk) = state.buffered.pop_front() {
            return Some((Ok(chunk), state));
        }
        match tokio::time::timeout(state.idle, state.inner.next()).await {
            Ok(Some(Ok(chunk))) => {
                if let Some(usage) = &chunk.usage {
                    state.tokens = usage.total_tokens;
                }
                Some((Ok(chunk), state))
            }
            Ok(Some(Err(error))) => {
                state.fail(&error);
                Some((Err(error), state))
            }
            Ok(None) => {
                if let Some(permit) = state.permit.take() {
                    permit.succeed(None, state.tokens, state.clock.now_ms());
                }
                None
            }
            Err(_) => {
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
                Some((Err(error), state))
            }
        }
    }))
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
