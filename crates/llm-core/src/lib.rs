//! The core of LLM Factory: OpenAI-shaped chat types, the [`ChatProvider`] trait every
//! backend implements, the one [`Error`] type with its classification, the shared SSE
//! decoder, key masking, and a deterministic [`MockProvider`].
//!
//! Provider crates (`llm-openai`, ...) depend on this crate alone; so can your own
//! providers, without pulling in an HTTP stack.
//!
//! ```
//! use futures_util::StreamExt;
//! use llm_core::{ChatProvider, ChatRequest, ChatStreamExt, MockProvider};
//!
//! # futures_util::FutureExt::now_or_never(async {
//! let provider = MockProvider::echo("mock-echo");
//!
//! // One request, one answer.
//! let answer = provider.chat(&ChatRequest::from("hello world")).await?;
//! assert_eq!(answer.text().as_deref(), Some("hello world"));
//!
//! // The same as a stream, folded back into one answer.
//! let stream = provider.stream(&ChatRequest::from("hello world")).await?;
//! let folded = stream.collect_response().await?;
//! assert_eq!(folded.text(), answer.text());
//! # Ok::<_, llm_core::Error>(())
//! # }).unwrap().unwrap();
//! ```
//!
//! # Features
//!
//! - `test-util`: the [`testing`] module: conformance checks every provider crate runs
//!   against its mock upstream, and a scripted raw-TCP upstream for split and cut streams.
//!
//! # Main items
//!
//! - [`ChatRequest`], [`ChatResponse`], [`ChatChunk`] and their parts;
//! - [`ChatProvider`] and [`ChatStream`], with [`ChatStreamExt::collect_response`];
//! - [`Error`] and [`ErrorKind`], with [`retry_after`] parsing;
//! - [`sse::Decoder`], and the provider kit's stream driver [`kit::sse_chat_stream`];
//! - [`mask_key`] and [`redact`];
//! - [`MockProvider`].

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
pub mod kit;
mod mock;
mod provider;
pub mod retry_after;
mod secret;
pub mod sse;
mod stream;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod types;

pub use async_trait::async_trait;
pub use error::{
    Attempt, BoxError, ConfigError, Error, ErrorKind, Result, TimeoutPhase, UpstreamError,
};
pub use mock::{FailWhen, MockConfig, MockFailure, MockProvider, MockReply};
pub use provider::{ChatJson, ChatProvider, ChatStream, ProviderFuture};
pub use secrecy::{ExposeSecret, SecretString};
pub use secret::{mask_key, redact};
pub use stream::{ChatStreamExt, Collector};
pub use types::*;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
