//! The provider trait every backend implements and every layer above consumes.

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;

use crate::{ChatChunk, ChatRequest, ChatResponse, Error, Result, Usage};

/// A stream of chunks. `Send + 'static`, so it can be returned from a spawned task or an
/// HTTP handler.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk>> + Send + 'static>>;

/// Something that answers OpenAI-shaped chat requests: a provider, a deployment, or a
/// router of many.
///
/// The trait is object safe; layers hold providers as `Arc<dyn ChatProvider>`. It takes
/// the request by reference so a retry or failover never copies a request carrying
/// megabytes of images.
///
/// # Stream semantics
///
/// A stream returned by [`ChatProvider::stream`]:
/// - fails *before* returning (as `Err`) when the connection or the HTTP status fails, so a
///   caller can still fail over;
/// - carries `role: assistant` in its first chunk;
/// - sends tool-call deltas with `index`, and `id` and `function.name` on a call's first
///   fragment;
/// - sets `finish_reason` on the last content chunk;
/// - sends usage, when the provider reports it, on a final chunk with empty `choices`;
/// - ends with an `Err` item, never silently, when the upstream fails or is cut off
///   midway, and yields nothing after an `Err`;
/// - cancels the upstream request when dropped.
///
/// # Example
///
/// ```
/// use llm_core::{ChatProvider, ChatRequest, MockProvider};
///
/// # tokio_test_block_on(async {
/// let provider = MockProvider::echo("mock-echo");
/// let response = provider.chat(&ChatRequest::from("ping")).await?;
/// assert_eq!(response.text().as_deref(), Some("ping"));
/// # Ok::<_, llm_core::Error>(())
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     futures_util::FutureExt::now_or_never(f).expect("the mock has no latency")
/// # }
/// ```
#[async_trait]
pub trait ChatProvider: Send + Sync + fmt::Debug {
    /// A stable identifier used in logs, metrics and status output, such as `openai` or
    /// `azure-openai`.
    fn name(&self) -> &str;

    /// One request, one complete response.
    ///
    /// # Errors
    ///
    /// Any [`ErrorKind`](crate::ErrorKind): the upstream's classified error answer, a
    /// timeout, a connection or protocol failure, or an invalid request the provider
    /// cannot express.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse>;

    /// One request, a stream of chunks. See the trait docs for the stream's guarantees.
    ///
    /// # Errors
    ///
    /// As [`ChatProvider::chat`], for failures before the first chunk.
    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream>;

    /// One request, the complete answer as OpenAI Chat Completions JSON, ready to send:
    /// what a gateway returns to its client.
    ///
    /// The default writes [`ChatProvider::chat`]'s answer. A provider whose upstream
    /// already answers in this format may return the upstream's bytes instead, when they
    /// hold exactly what [`ChatProvider::chat`] would have read from them; this
    /// workspace's OpenAI, Azure OpenAI and Qwen (compatible mode) providers do, which
    /// saves reading the answer into a [`ChatResponse`] and writing it again.
    ///
    /// # Errors
    ///
    /// As [`ChatProvider::chat`].
    async fn chat_json(&self, request: &ChatRequest) -> Result<ChatJson> {
        let response = self.chat(request).await?;
        ChatJson::from_response(&response)
    }
}

/// A complete answer as OpenAI Chat Completions JSON (`object: "chat.completion"`), with
/// its token usage read out: what [`ChatProvider::chat_json`] returns.
///
/// ```
/// use llm_core::{ChatJson, ChatResponse, Choice, FinishReason, Message};
///
/// let answer = ChatResponse::new(
///     "c1",
///     0,
///     "m",
///     vec![Choice::new(0, Message::assistant("Hi"), Some(FinishReason::Stop))],
/// );
/// let json = ChatJson::from_response(&answer)?;
/// let back: ChatResponse = serde_json::from_slice(&json.body)?;
/// assert_eq!(back, answer);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct ChatJson {
    /// The answer's JSON object.
    pub body: Bytes,
    /// Its token usage, when it reports one.
    pub usage: Option<Usage>,
}

impl ChatJson {
    /// An answer whose JSON is `body` and whose usage is `usage`. The caller vouches that
    /// `body` is a `chat.completion` object reporting `usage`.
    #[must_use]
    pub fn new(body: Bytes, usage: Option<Usage>) -> Self {
        Self { body, usage }
    }

    /// `response`'s JSON.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`](crate::ErrorKind) when a pass-through value cannot be
    /// written (which `serde_json::Value` never causes).
    pub fn from_response(response: &ChatResponse) -> Result<Self> {
        let mut body = Vec::with_capacity(512);
        response.write_json(&mut body).map_err(|e| {
            Error::protocol("llm-core", format!("cannot write the answer: {e}"), None)
        })?;
        Ok(Self {
            body: Bytes::from(body),
            usage: response.usage.clone(),
        })
    }
}

/// The body's length and the usage: the answer's text is the caller's data, not a log's.
impl fmt::Debug for ChatJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatJson")
            .field("body_len", &self.body.len())
            .field("usage", &self.usage)
            .finish()
    }
}

/// The future a [`ChatProvider`] method returns (what `#[async_trait]` makes of an
/// `async fn`). A provider that only forwards to another returns the other's future as it
/// is, as the impls for `Arc<P>` and `Box<P>` do, instead of boxing an `async` block that
/// awaits it (one allocation and one layer of polling less per call).
pub type ProviderFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Forwards to `P` (its futures as they are; see [`ProviderFuture`]).
impl<P: ChatProvider + ?Sized> ChatProvider for Arc<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn chat<'a, 'b, 'c>(&'a self, request: &'b ChatRequest) -> ProviderFuture<'c, ChatResponse>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        (**self).chat(request)
    }

    fn stream<'a, 'b, 'c>(&'a self, request: &'b ChatRequest) -> ProviderFuture<'c, ChatStream>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        (**self).stream(request)
    }

    fn chat_json<'a, 'b, 'c>(&'a self, request: &'b ChatRequest) -> ProviderFuture<'c, ChatJson>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        (**self).chat_json(request)
    }
}

/// Forwards to `P` (its futures as they are; see [`ProviderFuture`]).
impl<P: ChatProvider + ?Sized> ChatProvider for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn chat<'a, 'b, 'c>(&'a self, request: &'b ChatRequest) -> ProviderFuture<'c, ChatResponse>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        (**self).chat(request)
    }

    fn stream<'a, 'b, 'c>(&'a self, request: &'b ChatRequest) -> ProviderFuture<'c, ChatStream>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        (**self).stream(request)
    }

    fn chat_json<'a, 'b, 'c>(&'a self, request: &'b ChatRequest) -> ProviderFuture<'c, ChatJson>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        (**self).chat_json(request)
    }
}

// Compile-time checks: the trait stays dyn-compatible and the types that cross task and
// thread boundaries stay `Send + Sync + 'static`.
#[expect(
    dead_code,
    reason = "only compiled, to prove ChatProvider is dyn-compatible"
)]
fn assert_dyn_compatible(_: &dyn ChatProvider) {}

const _: () = {
    const fn send_sync_static<T: Send + Sync + 'static>() {}
    const fn send_static<T: Send + 'static>() {}
    send_sync_static::<Error>();
    send_sync_static::<ChatRequest>();
    send_sync_static::<ChatResponse>();
    send_sync_static::<ChatChunk>();
    send_sync_static::<Arc<dyn ChatProvider>>();
    send_static::<ChatStream>();
};
