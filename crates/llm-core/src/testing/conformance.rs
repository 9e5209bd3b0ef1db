//! The checks every provider crate runs against its mock upstream.
//!
//! A provider crate implements [`Harness`]: for each [`Scenario`] and [`Mode`] it starts a
//! mock upstream that answers in the provider's own wire format with the fixture data of
//! this module ([`TEXT_PIECES`], [`USAGE`], [`TOOL_CALLS`], ...), and returns a provider
//! pointed at it. [`run_all`] then calls the provider through [`ChatProvider`] and checks
//! what every provider promises, whatever its wire format:
//!
//! - text answers, streamed and not, with usage and `finish_reason`;
//! - stream invariants: `role: assistant` first, one id, `finish_reason` on the last content
//!   chunk, usage on a final chunk with empty `choices`, nothing after an error;
//! - tool-call fragments (`index`, `id` and name on the first fragment) reassembled;
//! - each [`ErrorCase`] classified to its [`ErrorKind`], before any chunk on streams, with
//!   `retry_after` from each `Retry-After` form;
//! - an in-band error frame after some content ends the stream with one classified error;
//! - a stream or body cut short is an [`ErrorKind::Protocol`] error, never a short answer;
//! - an upstream that never answers is an [`ErrorKind::Timeout`];
//! - the secret appears in no `Debug`, `Display` or error chain.
//!
//! ```text
//! #[tokio::test]
//! async fn conformance() {
//!     llm_core::testing::conformance::run_all(&MyHarness::new()).await.assert_all_passed();
//! }
//! ```

use std::{
    any::Any,
    error::Error as _,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use futures_util::StreamExt;

use crate::{
    ChatChunk, ChatProvider, ChatRequest, ChatStream, ChatStreamExt, Error, ErrorKind,
    FinishReason, Message, Role, StreamOptions,
};

/// The answer text, as the pieces a stream should deliver it in.
pub const TEXT_PIECES: [&str; 4] = ["Hello", ", wor", "ld! 你", "好"];
/// `(prompt_tokens, completion_tokens)` the upstream reports for the text answer;
/// `total_tokens` is their sum.
pub const USAGE: (u64, u64) = (9, 4);
/// The content an in-band error or truncation scenario streams before failing.
pub const PARTIAL_PIECES: [&str; 2] = ["Once upon", " a time"];
/// The secret-bearing message an upstream echoes back on [`ErrorCase::Unauthorized`]
/// (with `{key}` replaced by the harness's secret), as a careless upstream might.
pub const UNAUTHORIZED_MESSAGE: &str = "Incorrect API key provided: {key}";

/// A tool call the upstream makes, and the fragments its arguments stream in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolCallFixture {
    /// The call's id.
    pub id: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// The arguments JSON, in the pieces the stream sends.
    pub fragments: &'static [&'static str],
}

impl ToolCallFixture {
    /// The complete arguments string.
    #[must_use]
    pub fn arguments(&self) -> String {
        self.fragments.concat()
    }
}

/// Two parallel tool calls, streamed interleaved by index.
pub const TOOL_CALLS: [ToolCallFixture; 2] = [
    ToolCallFixture {
        id: "call_weather_1",
        name: "get_weather",
        fragments: &["{\"ci", "ty\": \"Par", "is\"}"],
    },
    ToolCallFixture {
        id: "call_time_2",
        name: "get_time",
        fragments: &["{\"tz\":", " \"CET\"}"],
    },
];

/// How a rate-limited upstream says how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfterForm {
    /// `retry-after: <seconds>`.
    Seconds(u64),
    /// `retry-after: <HTTP-date>`, this many seconds from now.
    HttpDate(u64),
    /// `retry-after-ms: <milliseconds>`.
    Millis(u64),
    /// Azure's `x-ms-retry-after-ms: <milliseconds>`.
    AzureMillis(u64),
    /// No header at all.
    Absent,
}

impl RetryAfterForm {
    /// The header name and value to send, if any.
    #[must_use]
    pub fn header(self) -> Option<(&'static str, String)> {
        match self {
            Self::Seconds(s) => Some(("retry-after", s.to_string())),
            Self::HttpDate(s) => Some((
                "retry-after",
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(s)),
            )),
            Self::Millis(ms) => Some(("retry-after-ms", ms.to_string())),
            Self::AzureMillis(ms) => Some(("x-ms-retry-after-ms", ms.to_string())),
            Self::Absent => None,
        }
    }

    /// The range `retry_after` must fall in.
    fn expected(self) -> Option<(Duration, Duration)> {
        match self {
            Self::Seconds(s) => Some((Duration::from_secs(s), Duration::from_secs(s))),
            // An HTTP-date has one-second resolution and time passes during the test.
            Self::HttpDate(s) => Some((
                Duration::from_secs(s.saturating_sub(3)),
                Duration::from_secs(s + 1),
            )),
            Self::Millis(ms) | Self::AzureMillis(ms) => {
                Some((Duration::from_millis(ms), Duration::from_millis(ms)))
            }
            Self::Absent => None,
        }
    }
}

/// An error answer the upstream sends, in the provider's documented form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCase {
    /// The key is rejected (OpenAI 401). The message echoes the key: see
    /// [`UNAUTHORIZED_MESSAGE`].
    Unauthorized,
    /// The key may not do this (403).
    Forbidden,
    /// The model or deployment does not exist (404).
    NotFound,
    /// The prompt is longer than the context window.
    ContextLength,
    /// Too many requests, with the wait in the given form.
    RateLimited(RetryAfterForm),
    /// Out of quota or credit.
    QuotaExhausted,
    /// The provider's content filter blocked the prompt.
    ContentFilter,
    /// An internal server error (500).
    ServerError,
    /// Overloaded or unavailable (503).
    Unavailable,
}

impl ErrorCase {
    /// Every case the checks run.
    pub const ALL: [Self; 13] = [
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::ContextLength,
        Self::RateLimited(RetryAfterForm::Seconds(7)),
        Self::RateLimited(RetryAfterForm::HttpDate(30)),
        Self::RateLimited(RetryAfterForm::Millis(1500)),
        Self::RateLimited(RetryAfterForm::AzureMillis(2500)),
        Self::RateLimited(RetryAfterForm::Absent),
        Self::QuotaExhausted,
        Self::ContentFilter,
        Self::ServerError,
        Self::Unavailable,
    ];

    /// The kind the provider must classify this case as.
    #[must_use]
    pub fn expected_kind(self) -> ErrorKind {
        match self {
            Self::Unauthorized => ErrorKind::Authentication,
            Self::Forbidden => ErrorKind::Permission,
            Self::NotFound => ErrorKind::NotFound,
            Self::ContextLength => ErrorKind::ContextLengthExceeded,
            Self::RateLimited(_) => ErrorKind::RateLimited,
            Self::QuotaExhausted => ErrorKind::QuotaExhausted,
            Self::ContentFilter => ErrorKind::ContentFiltered,
            Self::ServerError | Self::Unavailable => ErrorKind::UpstreamServer,
        }
    }
}

/// What the mock upstream does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scenario {
    /// Answer [`TEXT_PIECES`] with [`USAGE`] (for streams: one piece per frame, frames split
    /// across TCP writes where the harness can, then a usage chunk when asked for).
    Text,
    /// Answer with the two [`TOOL_CALLS`], fragments interleaved by index on streams.
    ToolCalls,
    /// Answer with an error.
    Error(ErrorCase),
    /// Stream [`PARTIAL_PIECES`], then an in-band error frame saying the server failed.
    /// (Only streams.)
    InBandError,
    /// Stream [`PARTIAL_PIECES`] and close the connection without the terminal marker; for
    /// chat, send a JSON body cut in half.
    Truncated,
    /// Accept the request and never answer; the provider must time out.
    Stall,
}

/// Which call the scenario is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// [`ChatProvider::chat`].
    Chat,
    /// [`ChatProvider::stream`].
    Stream,
}

/// A provider pointed at a running mock upstream.
pub struct Served {
    /// The provider under test.
    pub provider: Arc<dyn ChatProvider>,
    /// Keeps the mock upstream alive while the check runs.
    pub guard: Box<dyn Any + Send + Sync>,
}

impl fmt::Debug for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Served")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// What a provider crate implements to run the checks.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Start a mock upstream serving `scenario` for a call of `mode` and return a provider
    /// pointed at it, or a [`Skip`] where the provider cannot express the scenario (the check
    /// is then reported as skipped, with the reason).
    async fn serve(&self, scenario: Scenario, mode: Mode) -> Result<Served, Skip>;

    /// The raw secret the harness's providers are configured with.
    fn secret(&self) -> &str;
}

/// Why a harness skips a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

/// The outcome of [`run_all`].
#[derive(Debug, Default)]
pub struct Report {
    /// Checks that passed.
    pub passed: Vec<String>,
    /// Checks that failed, with what was wrong.
    pub failed: Vec<(String, String)>,
    /// Checks the harness skipped, with its reason.
    pub skipped: Vec<(String, String)>,
}

impl Report {
    /// Panic with every failure listed unless all checks passed.
    ///
    /// # Panics
    ///
    /// When any check failed, or none ran.
    #[expect(clippy::panic, reason = "a test assertion helper")]
    pub fn assert_all_passed(&self) {
        if !self.failed.is_empty() || self.passed.is_empty() {
            let failures: Vec<String> = self
                .failed
                .iter()
                .map(|(name, why)| format!("  {name}: {why}"))
                .collect();
            panic!(
                "conformance: {} passed, {} failed, {} skipped\n{}",
                self.passed.len(),
                self.failed.len(),
                self.skipped.len(),
                failures.join("\n")
            );
        }
    }
}

type Check = Result<(), String>;

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Check {
    if condition { Ok(()) } else { Err(message()) }
}

/// The request every check sends: a system and a user message, usage asked for.
#[must_use]
pub fn request() -> ChatRequest {
    ChatRequest {
        stream_options: Some(StreamOptions {
            include_usage: Some(true),
            ..StreamOptions::default()
        }),
        ..ChatRequest::new(
            "conformance-model",
            vec![Message::system("Be brief."), Message::user("Say hello")],
        )
    }
}

/// Run every check and report.
pub async fn run_all<H: Harness + ?Sized>(harness: &H) -> Report {
    let mut report = Report::default();
    let mut record = |name: String, outcome: Result<Check, Skip>| match outcome {
        Ok(Ok(())) => report.passed.push(name),
        Ok(Err(why)) => report.failed.push((name, why)),
        Err(Skip(why)) => report.skipped.push((name, why)),
    };

    record("text/chat".into(), text_chat(harness).await);
    record("text/stream".into(), text_stream(harness).await);
    record("tool_calls/chat".into(), tool_calls_chat(harness).await);
    record("tool_calls/stream".into(), tool_calls_stream(harness).await);
    for case in ErrorCase::ALL {
        for mode in [Mode::Chat, Mode::Stream] {
            record(
                format!("error/{case:?}/{mode:?}"),
                error_case(harness, case, mode).await,
            );
        }
    }
    record(
        "in_band_error/stream".into(),
        partial_then_error(harness, Scenario::InBandError, ErrorKind::UpstreamServer).await,
    );
    record(
        "truncated/stream".into(),
        partial_then_error(harness, Scenario::Truncated, ErrorKind::Protocol).await,
    );
    record("truncated/chat".into(), truncated_chat(harness).await);
    record("stall/chat".into(), stall(harness, Mode::Chat).await);
    record("stall/stream".into(), stall(harness, Mode::Stream).await);
    record("secrets".into(), secrets(harness).await);
    report
}

async fn open_stream(served: &Served) -> Result<ChatStream, String> {
    served
        .provider
        .stream(&request())
        .await
        .map_err(|e| format!("stream() failed before the first chunk: {e}"))
}

async fn drain(stream: ChatStream) -> Vec<crate::Result<ChatChunk>> {
    stream.collect().await
}

async fn text_chat<H: Harness + ?Sized>(harness: &H) -> Result<Check, Skip> {
    let served = harness.serve(Scenario::Text, Mode::Chat).await?;
    Ok(async {
        let response = served
            .provider
            .chat(&request())
            .await
            .map_err(|e| format!("chat() failed: {e}"))?;
        let expected = TEXT_PIECES.concat();
        ensure(response.object == "chat.completion", || {
            format!("object is {:?}", response.object)
        })?;
        ensure(
            response.text().as_deref() == Some(expected.as_str()),
            || format!("text is {:?}, expected {expected:?}", response.text()),
        )?;
        let choice = &response.choices[0];
        ensure(choice.message.role == Role::Assistant, || {
            format!("role is {}", choice.message.role)
        })?;
        ensure(choice.finish_reason == Some(FinishReason::Stop), || {
            format!("finish_reason is {:?}", choice.finish_reason)
        })?;
        check_usage(response.usage.as_ref())
    }
    .await)
}

fn check_usage(usage: Option<&crate::Usage>) -> Check {
    let usage = usage.ok_or("no usage")?;
    ensure(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens,
        ) == (USAGE.0, USAGE.1, USAGE.0 + USAGE.1),
        || format!("usage is {usage:?}, expected {USAGE:?}"),
    )
}

/// Invariants of a successful stream; returns the chunks.
fn stream_invariants(items: Vec<crate::Result<ChatChunk>>) -> Result<Vec<ChatChunk>, String> {
    let mut chunks = Vec::with_capacity(items.len());
    for item in items {
        chunks.push(item.map_err(|e| format!("stream yielded an error: {e}"))?);
    }
    let first = chunks.first().ok_or("the stream was empty")?;
    ensure(
        first.choices.first().and_then(|c| c.delta.role) == Some(Role::Assistant),
        || format!("first chunk has no role assistant: {first:?}"),
    )?;
    let id = &first.id;
    ensure(chunks.iter().all(|c| c.id == *id) && !id.is_empty(), || {
        format!("chunks do not share one non-empty id ({id:?})")
    })?;
    ensure(chunks.iter().all(|c| c.object == ChatChunk::OBJECT), || {
        "a chunk's object is not chat.completion.chunk".to_owned()
    })?;
    let last_with_choices = chunks
        .iter()
        .rposition(|c| !c.choices.is_empty())
        .ok_or("no chunk has choices")?;
    ensure(
        chunks[last_with_choices].choices[0].finish_reason.is_some(),
        || "the last chunk with choices has no finish_reason".to_owned(),
    )?;
    ensure(
        chunks[..last_with_choices].iter().all(|c| {
            c.choices
                .iter()
                .all(|choice| choice.finish_reason.is_none())
        }),
        || "finish_reason was set before the last chunk with choices".to_owned(),
    )?;
    let usage_chunks: Vec<usize> = chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.usage.is_some())
        .map(|(i, _)| i)
        .collect();
    ensure(usage_chunks == [chunks.len() - 1], || {
        format!("usage must come once, on the last chunk; found on chunks {usage_chunks:?}")
    })?;
    ensure(chunks[chunks.len() - 1].choices.is_empty(), || {
        "the usage chunk has choices".to_owned()
    })?;
    Ok(chunks)
}

async fn text_stream<H: Harness + ?Sized>(harness: &H) -> Result<Check, Skip> {
    let served = harness.serve(Scenario::Text, Mode::Stream).await?;
    Ok(async {
        let items = drain(open_stream(&served).await?).await;
        let chunks = stream_invariants(items)?;
        let text: String = chunks.iter().filter_map(ChatChunk::content).collect();
        ensure(text == TEXT_PIECES.concat(), || {
            format!("streamed text is {text:?}")
        })?;
        let finish = chunks
            .iter()
            .rev()
            .find_map(|c| c.choices.first().and_then(|c| c.finish_reason.clone()));
        ensure(finish == Some(FinishReason::Stop), || {
            format!("finish_reason is {finish:?}")
        })?;
        check_usage(chunks.last().and_then(|c| c.usage.as_ref()))
    }
    .await)
}

fn check_tool_calls(message: &Message) -> Check {
    let calls = message.tool_calls.as_ref().ok_or("no tool_calls")?;
    ensure(calls.len() == TOOL_CALLS.len(), || {
        format!("{} tool calls, expected {}", calls.len(), TOOL_CALLS.len())
    })?;
    for (call, fixture) in calls.iter().zip(TOOL_CALLS) {
        // Arguments as JSON: providers that send them as an object (Gemini, Bedrock) write
        // them back without the fixture's whitespace.
        let same_arguments = call.function.arguments == fixture.arguments()
            || serde_json::from_str::<serde_json::Value>(&call.function.arguments).ok()
                == serde_json::from_str::<serde_json::Value>(&fixture.arguments()).ok();
        ensure(
            call.id == fixture.id && call.function.name == fixture.name && same_arguments,
            || format!("tool call {call:?} does not match {fixture:?}"),
        )?;
    }
    Ok(())
}

/// The answer's first choice ends with `tool_calls` and carries the two fixture calls.
fn check_tool_call_answer(response: &crate::ChatResponse) -> Check {
    let choice = response.choices.first().ok_or("no choice")?;
    ensure(
        choice.finish_reason == Some(FinishReason::ToolCalls),
        || format!("finish_reason is {:?}", choice.finish_reason),
    )?;
    check_tool_calls(&choice.message)
}

async fn tool_calls_chat<H: Harness + ?Sized>(harness: &H) -> Result<Check, Skip> {
    let served = harness.serve(Scenario::ToolCalls, Mode::Chat).await?;
    Ok(async {
        let response = served
            .provider
            .chat(&request())
            .await
            .map_err(|e| format!("chat() failed: {e}"))?;
        check_tool_call_answer(&response)
    }
    .await)
}

async fn tool_calls_stream<H: Harness + ?Sized>(harness: &H) -> Result<Check, Skip> {
    let served = harness.serve(Scenario::ToolCalls, Mode::Stream).await?;
    Ok(async {
        let items = drain(open_stream(&served).await?).await;
        let chunks = stream_invariants(items)?;
        let mut seen = Vec::new();
        for chunk in &chunks {
            for choice in &chunk.choices {
                for delta in choice.delta.tool_calls.iter().flatten() {
                    let first = !seen.contains(&delta.index);
                    let function = delta.function.as_ref();
                    if first {
                        seen.push(delta.index);
                        ensure(
                            delta.id.is_some() && function.and_then(|f| f.name.as_ref()).is_some(),
                            || format!("first fragment of call {} lacks id or name", delta.index),
                        )?;
                    }
                }
            }
        }
        ensure(seen.len() == TOOL_CALLS.len(), || {
            format!(
                "fragments for {} calls, expected {}",
                seen.len(),
                TOOL_CALLS.len()
            )
        })?;
        let stream: ChatStream = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
        let response = stream
            .collect_response()
            .await
            .map_err(|e| format!("collect_response failed: {e}"))?;
        check_tool_call_answer(&response)
    }
    .await)
}

fn check_error(err: &Error, case: ErrorCase) -> Check {
    ensure(err.kind() == case.expected_kind(), || {
        format!(
            "kind is {}, expected {} ({err})",
            err.kind(),
            case.expected_kind()
        )
    })?;
    if let ErrorCase::RateLimited(form) = case {
        match form.expected() {
            Some((low, high)) => ensure(
                err.retry_after().is_some_and(|d| d >= low && d <= high),
                || {
                    format!(
                        "retry_after is {:?}, expected {low:?}..={high:?}",
                        err.retry_after()
                    )
                },
            )?,
            None => ensure(err.retry_after().is_none(), || {
                format!("retry_after is {:?} with no header", err.retry_after())
            })?,
        }
    }
    if case == ErrorCase::QuotaExhausted {
        ensure(err.retry_after().is_none(), || {
            "quota exhaustion must carry no retry_after".to_owned()
        })?;
    }
    ensure(!err.to_string().is_empty(), || {
        "empty error message".to_owned()
    })
}

async fn error_case<H: Harness + ?Sized>(
    harness: &H,
    case: ErrorCase,
    mode: Mode,
) -> Result<Check, Skip> {
    let served = harness.serve(Scenario::Error(case), mode).await?;
    Ok(async {
        let err = match mode {
            Mode::Chat => match served.provider.chat(&request()).await {
                Ok(response) => return Err(format!("chat() succeeded: {response:?}")),
                Err(err) => err,
            },
            Mode::Stream => match served.provider.stream(&request()).await {
                Ok(stream) => {
                    let first = drain(stream).await.into_iter().next();
                    return Err(format!(
                        "stream() returned a stream instead of failing first; first item {first:?}"
                    ));
                }
                Err(err) => err,
            },
        };
        check_error(&err, case)
    }
    .await)
}

/// Content chunks, then exactly one error of `kind`, then nothing.
fn ends_with_one_error(items: &[crate::Result<ChatChunk>], kind: ErrorKind) -> Check {
    let error_at = items.iter().position(Result::is_err).ok_or_else(|| {
        format!(
            "the stream ended without an error after {} chunks",
            items.len()
        )
    })?;
    ensure(error_at == items.len() - 1, || {
        format!("{} items followed the error", items.len() - 1 - error_at)
    })?;
    let content: String = items[..error_at]
        .iter()
        .filter_map(|item| item.as_ref().ok().and_then(ChatChunk::content))
        .collect();
    ensure(content == PARTIAL_PIECES.concat(), || {
        format!("content before the error is {content:?}")
    })?;
    ensure(
        !items[..error_at].iter().flatten().any(|c| {
            c.choices
                .iter()
                .any(|choice| choice.finish_reason.is_some())
        }),
        || "a finish_reason was sent before the failure".to_owned(),
    )?;
    match &items[error_at] {
        Err(err) => ensure(err.kind() == kind, || {
            format!("error kind is {}, expected {kind} ({err})", err.kind())
        }),
        Ok(_) => Err("unreachable: position found an error".to_owned()),
    }
}

/// Stream `scenario` and check it ends with [`PARTIAL_PIECES`] then one error of `kind`.
async fn partial_then_error<H: Harness + ?Sized>(
    harness: &H,
    scenario: Scenario,
    kind: ErrorKind,
) -> Result<Check, Skip> {
    let served = harness.serve(scenario, Mode::Stream).await?;
    Ok(async {
        let items = drain(open_stream(&served).await?).await;
        ends_with_one_error(&items, kind)
    }
    .await)
}

async fn truncated_chat<H: Harness + ?Sized>(harness: &H) -> Result<Check, Skip> {
    let served = harness.serve(Scenario::Truncated, Mode::Chat).await?;
    Ok(async {
        match served.provider.chat(&request()).await {
            Ok(response) => Err(format!("a cut body gave an answer: {response:?}")),
            Err(err) => ensure(
                matches!(err.kind(), ErrorKind::Protocol | ErrorKind::Connection),
                || format!("kind is {}, expected protocol ({err})", err.kind()),
            ),
        }
    }
    .await)
}

async fn stall<H: Harness + ?Sized>(harness: &H, mode: Mode) -> Result<Check, Skip> {
    let served = harness.serve(Scenario::Stall, mode).await?;
    Ok(async {
        let outcome = match mode {
            Mode::Chat => served.provider.chat(&request()).await.map(|_| ()),
            Mode::Stream => served.provider.stream(&request()).await.map(|_| ()),
        };
        match outcome {
            Ok(()) => Err("a stalled upstream gave an answer".to_owned()),
            Err(err) => ensure(err.kind() == ErrorKind::Timeout, || {
                format!("kind is {}, expected timeout ({err})", err.kind())
            }),
        }
    }
    .await)
}

fn error_texts(err: &Error) -> Vec<String> {
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut source = err.source();
    while let Some(cause) = source {
        texts.push(cause.to_string());
        texts.push(format!("{cause:?}"));
        source = cause.source();
    }
    texts
}

async fn secrets<H: Harness + ?Sized>(harness: &H) -> Result<Check, Skip> {
    let secret = harness.secret().to_owned();
    if secret.len() < 8 {
        return Ok(Err(
            "the harness secret is too short to be searched for".to_owned()
        ));
    }
    let mut texts = Vec::new();
    for mode in [Mode::Chat, Mode::Stream] {
        let served = harness
            .serve(Scenario::Error(ErrorCase::Unauthorized), mode)
            .await?;
        texts.push(format!("{:?}", served.provider));
        let outcome = match mode {
            Mode::Chat => served.provider.chat(&request()).await.map(|_| ()),
            Mode::Stream => served.provider.stream(&request()).await.map(|_| ()),
        };
        match outcome {
            Ok(()) => return Ok(Err("an unauthorized upstream gave an answer".to_owned())),
            Err(err) => texts.extend(error_texts(&err)),
        }
    }
    Ok(texts
        .iter()
        .find(|text| text.contains(&secret))
        .map_or(Ok(()), |text| {
            Err(format!("the secret leaked into: {text}"))
        }))
}
