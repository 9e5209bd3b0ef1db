//! A deterministic provider that needs no network: the demo mode of the gateway, the
//! benchmarks' upstream-free baseline, and the building block of balancer tests.

use std::{
    borrow::Cow,
    io,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use futures_util::stream;
use http::StatusCode;

use crate::{
    Attempt, ChatChunk, ChatProvider, ChatRequest, ChatResponse, ChatStream, Choice, ChunkChoice,
    Delta, Error, ErrorKind, FinishReason, Message, Result, Role, TimeoutPhase, ToolCall,
    ToolCallDelta, ToolKind, UpstreamError, Usage, kit::unix_now,
};

/// A fast, well-mixed hash of `x` (the SplitMix64 finaliser).
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What the mock answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MockReply {
    /// The text of the last user message, unchanged.
    #[default]
    Echo,
    /// A fixed text.
    Text(String),
    /// Calls to these tools, as `(name, arguments JSON)`; finish reason `tool_calls`.
    ToolCalls(Vec<(String, String)>),
}

/// When an injected failure happens, counted over calls to this provider (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailWhen {
    /// Every call fails.
    Always,
    /// The first `n` calls fail; later ones succeed.
    FirstCalls(u64),
    /// Every `n`-th call fails (call `n`, `2n`, ...).
    EveryNth(u64),
    /// Calls `from` to `to`, both included, fail (the first call is call 1).
    Between {
        /// The first failing call.
        from: u64,
        /// The last failing call.
        to: u64,
    },
    /// About `percent` % of calls fail, chosen by a hash of the call number and `seed`: the
    /// same calls fail on every run.
    Percent {
        /// The share of calls that fail, 0 to 100.
        percent: u8,
        /// Selects which calls fail.
        seed: u64,
    },
}

impl FailWhen {
    fn fails(self, call: u64) -> bool {
        match self {
            Self::Always => true,
            Self::FirstCalls(n) => call <= n,
            Self::EveryNth(n) => n > 0 && call.is_multiple_of(n),
            Self::Between { from, to } => (from..=to).contains(&call),
            Self::Percent { percent, seed } => splitmix64(seed ^ call) % 100 < u64::from(percent),
        }
    }
}

/// An injected failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MockFailure {
    /// The kind of error returned.
    pub kind: ErrorKind,
    /// Which calls fail.
    pub when: FailWhen,
    /// For streams: fail after this many content chunks (an error item mid-stream) instead
    /// of before the stream starts.
    pub after_chunks: Option<usize>,
    /// The `retry_after` carried by rate-limit errors.
    pub retry_after: Option<Duration>,
}

impl MockFailure {
    /// Every call fails with `kind` before any chunk.
    #[must_use]
    pub fn always(kind: ErrorKind) -> Self {
        Self {
            kind,
            when: FailWhen::Always,
            after_chunks: None,
            retry_after: None,
        }
    }

    /// The same failure on the calls `when` selects.
    #[must_use]
    pub fn when(mut self, when: FailWhen) -> Self {
        self.when = when;
        self
    }

    /// The same failure, for streams after `chunks` content chunks.
    #[must_use]
    pub fn after_chunks(mut self, chunks: usize) -> Self {
        self.after_chunks = Some(chunks);
        self
    }

    /// The same failure carrying `retry_after`.
    #[must_use]
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }
}

/// How a [`MockProvider`] behaves.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MockConfig {
    /// The model name reported in responses.
    pub model: String,
    /// What it answers.
    pub reply: MockReply,
    /// Delay before the response (or the first chunk).
    pub latency: Duration,
    /// Delay between chunks of a stream.
    pub chunk_delay: Duration,
    /// An injected failure.
    pub failure: Option<MockFailure>,
}

/// A deterministic provider. It echoes the last user message (or answers a fixed text or
/// tool calls), splits streamed text into one chunk per word, counts one token per word, and
/// can be slowed down or made to fail on a schedule.
///
/// ```
/// use std::time::Duration;
/// use llm_core::{ChatProvider, ErrorKind, FailWhen, MockConfig, MockFailure, MockProvider};
///
/// let flaky = MockProvider::new(
///     "flaky",
///     MockConfig {
///         model: "mock-echo".into(),
///         failure: Some(MockFailure::always(ErrorKind::UpstreamServer).when(FailWhen::EveryNth(3))),
///         chunk_delay: Duration::from_millis(5),
///         ..MockConfig::default()
///     },
/// );
/// assert_eq!(flaky.name(), "flaky");
/// ```
#[derive(Debug)]
pub struct MockProvider {
    name: Cow<'static, str>,
    config: MockConfig,
    calls: AtomicU64,
}

impl MockProvider {
    /// A mock named `name` with `config`.
    #[must_use]
    pub fn new(name: impl Into<Cow<'static, str>>, config: MockConfig) -> Self {
        Self {
            name: name.into(),
            config,
            calls: AtomicU64::new(0),
        }
    }

    /// An instant echo mock reporting `model`, named `mock`.
    #[must_use]
    pub fn echo(model: impl Into<String>) -> Self {
        Self::new(
            "mock",
            MockConfig {
                model: model.into(),
                ..MockConfig::default()
            },
        )
    }

    /// How many calls (chat and stream) reached this mock.
    #[must_use]
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &MockConfig {
        &self.config
    }

    /// Count the call and decide whether it fails.
    fn begin(&self) -> (u64, Option<&MockFailure>) {
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let failure = self
            .config
            .failure
            .as_ref()
            .filter(|failure| failure.when.fails(call));
        (call, failure)
    }

    fn error(&self, failure: &MockFailure, mid_stream: bool) -> Error {
        let provider = self.name.clone();
        let status = |code: u16| {
            if mid_stream {
                None
            } else {
                StatusCode::from_u16(code).ok()
            }
        };
        let upstream = |code: u16, message: &str| {
            let mut upstream =
                UpstreamError::new(provider.clone(), status(code), failure.kind, message);
            upstream.retry_after = failure.retry_after;
            Error::from(upstream)
        };
        match failure.kind {
            ErrorKind::InvalidRequest => upstream(400, "mock rejected the request"),
            ErrorKind::Authentication => upstream(401, "mock rejected the key"),
            ErrorKind::Permission => upstream(403, "mock denied permission"),
            ErrorKind::NotFound => upstream(404, "mock has no such model"),
            ErrorKind::RateLimited => upstream(429, "mock rate limit reached"),
            ErrorKind::QuotaExhausted => upstream(429, "mock quota exhausted"),
            ErrorKind::ContextLengthExceeded => upstream(400, "mock context window exceeded"),
            ErrorKind::ContentFiltered => upstream(400, "mock content filter triggered"),
            ErrorKind::UpstreamServer => upstream(500, "mock server error"),
            ErrorKind::Timeout => Error::Timeout {
                provider,
                phase: if mid_stream {
                    TimeoutPhase::Idle
                } else {
                    TimeoutPhase::FirstByte
                },
                after: self.config.latency,
            },
            ErrorKind::Connection => Error::connection(
                provider,
                io::Error::new(io::ErrorKind::ConnectionReset, "mock connection reset"),
            ),
            ErrorKind::Protocol => Error::protocol(provider, "mock stream cut short", None),
            ErrorKind::Configuration => Error::config("mock configuration error"),
            ErrorKind::AllAttemptsFailed => {
                let inner = upstream(503, "mock upstream unavailable");
                Error::AllAttemptsFailed(vec![Attempt::new(provider.into_owned(), &inner)].into())
            }
        }
    }

    fn reply_text(&self, request: &ChatRequest) -> String {
        match &self.config.reply {
            MockReply::Echo => request
                .messages
                .iter()
                .rev()
                .find(|message| message.role == Role::User)
                .and_then(Message::text)
                .unwrap_or_default(),
            MockReply::Text(text) => text.clone(),
            MockReply::ToolCalls(_) => String::new(),
        }
    }

    fn model<'a>(&'a self, request: &'a ChatRequest) -> &'a str {
        if self.config.model.is_empty() {
            request.model.as_deref().unwrap_or("mock")
        } else {
            &self.config.model
        }
    }

    fn usage(request: &ChatRequest, completion: &str) -> Usage {
        let prompt: usize = request
            .messages
            .iter()
            .filter_map(Message::text)
            .map(|text| count_tokens(&text))
            .sum();
        Usage::new(prompt as u64, count_tokens(completion) as u64)
    }

    fn tool_calls(&self) -> Option<Vec<ToolCall>> {
        let MockReply::ToolCalls(calls) = &self.config.reply else {
            return None;
        };
        Some(
            calls
                .iter()
                .enumerate()
                .map(|(i, (name, arguments))| ToolCall {
                    id: format!("call_mock_{i}"),
                    kind: ToolKind::Function,
                    function: crate::FunctionCall {
                        name: name.clone(),
                        arguments: arguments.clone(),
                    },
                })
                .collect(),
        )
    }
}

/// One token per whitespace-separated word: deterministic and good enough for a mock.
fn count_tokens(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Split `text` into words that keep their leading whitespace, so the pieces concatenate
/// back to the text.
fn words(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() && in_word {
            pieces.push(std::mem::take(&mut current));
            in_word = false;
        }
        if !c.is_whitespace() {
            in_word = true;
        }
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

#[async_trait]
impl ChatProvider for MockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let (call, failure) = self.begin();
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        if let Some(failure) = failure {
            return Err(self.error(failure, false));
        }
        let text = self.reply_text(request);
        let tool_calls = self.tool_calls();
        let finish = if tool_calls.is_some() {
            FinishReason::ToolCalls
        } else {
            FinishReason::Stop
        };
        let message = Message {
            content: tool_calls.is_none().then(|| text.clone().into()),
            tool_calls,
            ..Message::assistant(String::new())
        };
        let mut response = ChatResponse::new(
            format!("chatcmpl-mock-{call}"),
            unix_now(),
            self.model(request),
            vec![Choice::new(0, message, Some(finish))],
        );
        response.usage = Some(Self::usage(request, &text));
        Ok(response)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let (call, failure) = self.begin();
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        if let Some(failure) = failure.filter(|failure| failure.after_chunks.is_none()) {
            return Err(self.error(failure, false));
        }
        let id = format!("chatcmpl-mock-{call}");
        let created = unix_now();
        let model = self.model(request).to_owned();
        let chunk = |choices: Vec<ChunkChoice>| ChatChunk::new(&id, created, &model, choices);
        let text = self.reply_text(request);

        let mut items: Vec<Result<ChatChunk>> = Vec::new();
        let finish = if let Some(calls) = self.tool_calls() {
            for (i, call) in calls.into_iter().enumerate() {
                let index = u32::try_from(i).unwrap_or(u32::MAX);
                let (head, tail) = call
                    .function
                    .arguments
                    .split_at(call.function.arguments.len() / 2);
                for (n, piece) in [head, tail].into_iter().enumerate() {
                    let first = n == 0;
                    let delta = Delta {
                        tool_calls: Some(vec![ToolCallDelta::new(
                            index,
                            first.then(|| call.id.clone()),
                            first.then(|| call.function.name.clone()),
                            Some(piece.to_owned()),
                        )]),
                        ..Delta::default()
                    };
                    items.push(Ok(chunk(vec![ChunkChoice::new(0, delta, None)])));
                }
            }
            FinishReason::ToolCalls
        } else {
            let pieces = words(&text);
            if pieces.is_empty() {
                items.push(Ok(chunk(vec![ChunkChoice::new(
                    0,
                    Delta::content(""),
                    None,
                )])));
            }
            for piece in pieces {
                items.push(Ok(chunk(vec![ChunkChoice::new(
                    0,
                    Delta::content(piece),
                    None,
                )])));
            }
            FinishReason::Stop
        };
        if let Some(Ok(first)) = items.first_mut()
            && let Some(choice) = first.choices.first_mut()
        {
            choice.delta.role = Some(Role::Assistant);
        }
        if let Some(failure) = failure {
            let keep = failure.after_chunks.unwrap_or(0).min(items.len());
            items.truncate(keep);
            items.push(Err(self.error(failure, true)));
        } else {
            items.push(Ok(chunk(vec![ChunkChoice::new(
                0,
                Delta::default(),
                Some(finish),
            )])));
            if request.include_usage() {
                let mut usage_chunk = chunk(Vec::new());
                usage_chunk.usage = Some(Self::usage(request, &text));
                items.push(Ok(usage_chunk));
            }
        }

        let delay = self.config.chunk_delay;
        let stream = stream::unfold(
            (items.into_iter(), true),
            move |(mut items, first)| async move {
                let item = items.next()?;
                if !first && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((item, (items, false)))
            },
        );
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::ChatStreamExt;

    fn request(text: &str) -> ChatRequest {
        let mut request = ChatRequest::from(text);
        request.stream_options = Some(crate::StreamOptions {
            include_usage: Some(true),
            ..crate::StreamOptions::default()
        });
        request
    }

    #[tokio::test]
    async fn echo_chat_and_stream_agree() {
        let mock = MockProvider::echo("mock-echo");
        let chat = mock.chat(&request("hello big world")).await.unwrap();
        assert_eq!(chat.text().as_deref(), Some("hello big world"));
        assert_eq!(chat.model, "mock-echo");
        assert_eq!(chat.usage, Some(Usage::new(3, 3)));

        let chunks: Vec<_> = mock
            .stream(&request("hello big world"))
            .await
            .unwrap()
            .collect()
            .await;
        let contents: Vec<_> = chunks
            .iter()
            .map(|chunk| chunk.as_ref().unwrap().content().unwrap_or("").to_owned())
            .collect();
        assert_eq!(contents, ["hello", " big", " world", "", ""]);
        let first = chunks[0].as_ref().unwrap();
        assert_eq!(first.choices[0].delta.role, Some(Role::Assistant));
        let last = chunks.last().unwrap().as_ref().unwrap();
        assert!(last.choices.is_empty());
        assert_eq!(last.usage, Some(Usage::new(3, 3)));
        assert_eq!(mock.calls(), 2);
    }

    #[tokio::test]
    async fn failure_after_chunks_ends_with_one_error() {
        let mock = MockProvider::new(
            "cut",
            MockConfig {
                failure: Some(MockFailure::always(ErrorKind::Connection).after_chunks(2)),
                ..MockConfig::default()
            },
        );
        let items: Vec<_> = mock
            .stream(&request("a b c d"))
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[1].is_ok());
        assert_eq!(items[2].as_ref().unwrap_err().kind(), ErrorKind::Connection);
    }

    #[tokio::test]
    async fn fail_schedules() {
        let mock = MockProvider::new(
            "every-third",
            MockConfig {
                failure: Some(
                    MockFailure::always(ErrorKind::RateLimited)
                        .when(FailWhen::EveryNth(3))
                        .retry_after(Duration::from_secs(2)),
                ),
                ..MockConfig::default()
            },
        );
        let mut outcomes = Vec::new();
        for _ in 0..6 {
            outcomes.push(mock.chat(&request("x")).await.map_err(|e| e.retry_after()));
        }
        let failed: Vec<bool> = outcomes.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, false, true, false, false, true]);
        assert_eq!(outcomes[2], Err(Some(Duration::from_secs(2))));

        let first_two = MockProvider::new(
            "first-two",
            MockConfig {
                failure: Some(
                    MockFailure::always(ErrorKind::UpstreamServer).when(FailWhen::FirstCalls(2)),
                ),
                ..MockConfig::default()
            },
        );
        let mut failed = Vec::new();
        for _ in 0..4 {
            failed.push(first_two.chat(&request("x")).await.is_err());
        }
        assert_eq!(failed, [true, true, false, false]);

        let percent = FailWhen::Percent {
            percent: 30,
            seed: 7,
        };
        let failures = (1..=10_000).filter(|call| percent.fails(*call)).count();
        assert!((2_800..=3_200).contains(&failures), "{failures}");
        assert_eq!(
            (1..=100).map(|c| percent.fails(c)).collect::<Vec<_>>(),
            (1..=100).map(|c| percent.fails(c)).collect::<Vec<_>>(),
            "deterministic"
        );
    }

    #[tokio::test]
    async fn every_kind_can_be_injected() {
        for kind in ErrorKind::ALL {
            let mock = MockProvider::new(
                "inject",
                MockConfig {
                    failure: Some(MockFailure::always(kind)),
                    ..MockConfig::default()
                },
            );
            let err = mock.chat(&request("x")).await.unwrap_err();
            assert_eq!(err.kind(), kind);
        }
    }

    #[tokio::test]
    async fn tool_calls_stream_and_collect() {
        let mock = MockProvider::new(
            "tools",
            MockConfig {
                reply: MockReply::ToolCalls(vec![
                    ("get_weather".into(), r#"{"city":"Paris"}"#.into()),
                    ("get_time".into(), r#"{"tz":"CET"}"#.into()),
                ]),
                ..MockConfig::default()
            },
        );
        let collected = mock
            .stream(&request("weather?"))
            .await
            .unwrap()
            .collect_response()
            .await
            .unwrap();
        let chat = mock.chat(&request("weather?")).await.unwrap();
        assert_eq!(
            collected.choices[0].message.tool_calls,
            chat.choices[0].message.tool_calls
        );
        assert_eq!(
            collected.choices[0].finish_reason,
            Some(FinishReason::ToolCalls)
        );
        let calls = chat.choices[0].message.tool_calls.as_ref().unwrap();
        assert_eq!(calls[1].function.arguments, r#"{"tz":"CET"}"#);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_and_pacing_use_tokio_time() {
        let mock = MockProvider::new(
            "slow",
            MockConfig {
                latency: Duration::from_millis(200),
                chunk_delay: Duration::from_millis(50),
                ..MockConfig::default()
            },
        );
        let start = tokio::time::Instant::now();
        let stream = mock.stream(&request("one two three")).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        let items: Vec<_> = stream.collect().await;
        // Three words, the finish chunk and the usage chunk: four gaps.
        assert_eq!(items.len(), 5);
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
