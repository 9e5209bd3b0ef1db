//! OpenAI and Azure OpenAI for LLM Factory, and the OpenAI-compatible client that other
//! OpenAI-compatible providers (DeepSeek, Qwen compatible mode) reuse.
//!
//! - [`OpenAiProvider`]: `POST {base}/chat/completions` with `Authorization: Bearer`.
//! - [`AzureOpenAiProvider`]: `POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`
//!   with `api-key`, or the v1 path `{endpoint}/openai/v1/chat/completions`; Entra ID
//!   bearer tokens fixed or from a [`TokenProvider`].
//! - [`OpenAiCompatClient`] with an [`Endpoint`] of your own for any other compatible API;
//!   the endpoint's default methods are the hooks where compatible flavours differ.
//!
//! Transport, timeouts and body bounds come from the provider kit (`llm-http`), stream
//! driving from `llm_core::kit`: this crate holds only the OpenAI wire format.
//!
//! Streams ask for `stream_options.include_usage`, so a usage chunk (empty `choices`) ends
//! every stream whose upstream supports it; skip it if your caller did not ask for usage.
//! Azure's filter-result chunks are dropped, error bodies become classified
//! [`llm_core::Error`]s, in-band `data: {"error": …}` frames end a stream with an error,
//! and a stream that closes before `data: [DONE]` ends with an
//! [`ErrorKind::Protocol`](llm_core::ErrorKind) error, never as a silently short answer.
//!
//! ```no_run
//! use llm_core::{ChatProvider, ChatRequest};
//! use llm_openai::{OpenAiConfig, OpenAiProvider};
//!
//! # async fn run() -> llm_core::Result<()> {
//! let provider = OpenAiProvider::new(OpenAiConfig {
//!     model: Some("gpt-4o-mini".into()),
//!     ..OpenAiConfig::new(std::env::var("OPENAI_API_KEY").unwrap_or_default())
//! })?;
//! let answer = provider.chat(&ChatRequest::from("Say hello")).await?;
//! println!("{}", answer.text().unwrap_or_default());
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! None: TLS is rustls with the platform's root certificates.

mod config;
mod endpoint;
mod error;
mod head;
mod provider;
mod relay;
mod stream;
mod wire;

pub use config::{
    AzureAuth, AzureOpenAiConfig, Limits, OPENAI_BASE_URL, OpenAiConfig, Timeouts, TokenProvider,
};
pub use endpoint::{BearerEndpoint, Endpoint, secret_header, validate_base_url};
pub use error::ErrorInfo;
pub use llm_http::{HttpClient, Response, Transport};
pub use provider::{
    AzureOpenAiProvider, OpenAiCompatClient, OpenAiProvider, http_client, http_client_with,
};
/// The HTTP client crate, for [`OpenAiProvider::with_http_client`] and friends.
pub use reqwest;

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
