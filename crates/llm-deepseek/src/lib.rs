//! DeepSeek for LLM Factory, on the OpenAI-compatible client of `llm-openai`.
//!
//! What DeepSeek does differently, handled here:
//! - model ids are configuration: `deepseek-chat` / `deepseek-reasoner` and newer ids
//!   (`deepseek-flash`, `deepseek-v4-pro`, …) are plain strings; newer ids think by
//!   default ([`DeepSeekConfig::thinks_by_default`]);
//! - `reasoning_content` on messages and deltas both ways, and in thinking mode it is
//!   replayed on earlier assistant tool-call turns that lack it (from a bounded
//!   [`ReasoningCache`] of the answers this provider relayed), while for the legacy
//!   `deepseek-reasoner` it is removed from input (which that model rejects);
//! - `thinking` and `reasoning_effort` pass through as sent;
//! - usage `prompt_cache_hit_tokens` → `prompt_tokens_details.cached_tokens`;
//! - finish reason `insufficient_system_resource` → `length` (the output was cut short);
//! - `: keep-alive` comments and blank keep-alive lines are ignored;
//! - 402 (insufficient balance) → [`ErrorKind::QuotaExhausted`]; 422 → InvalidRequest;
//!   "Content Exists Risk" → ContentFiltered;
//!   errors are classified by status, since DeepSeek's `type`/`code` fields are unreliable;
//! - a `json_schema` response format is refused with a clear InvalidRequest (DeepSeek takes
//!   `json_object` only).
//!
//! ```no_run
//! use llm_core::{ChatProvider, ChatRequest};
//! use llm_deepseek::{DeepSeekConfig, DeepSeekProvider};
//!
//! # async fn run() -> llm_core::Result<()> {
//! let provider = DeepSeekProvider::new(DeepSeekConfig {
//!     model: Some("deepseek-flash".into()),
//!     ..DeepSeekConfig::new(std::env::var("DEEPSEEK_API_KEY").unwrap_or_default())
//! })?;
//! let answer = provider.chat(&ChatRequest::from("Say hello")).await?;
//! println!("{}", answer.text().unwrap_or_default());
//! # Ok(())
//! # }
//! ```

mod reasoning;

use std::{borrow::Cow, collections::BTreeMap, fmt, sync::Arc};

use async_trait::async_trait;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use llm_core::{
    ChatChunk, ChatProvider, ChatRequest, ChatResponse, ChatStream, Error, ErrorKind, FinishReason,
    Message, PromptTokensDetails, ResponseFormat, Result, SecretString, Usage, mask_key,
};
use llm_openai::{
    BearerEndpoint, Endpoint, ErrorInfo, HttpClient, Limits, OpenAiCompatClient, Timeouts,
    http_client,
};
pub use reasoning::{ReasoningCache, ThinkingMode};

/// The public DeepSeek API (`/v1` may be appended; both work).
pub const DEEPSEEK_BASE_URL: &str = "https://api.deepseek.com";

/// A DeepSeek deployment.
///
/// ```
/// use llm_deepseek::DeepSeekConfig;
///
/// let config = DeepSeekConfig::new("sk-0123456789abcdef");
/// assert!(!format!("{config:?}").contains("0123456789"));
/// ```
#[derive(Clone)]
pub struct DeepSeekConfig {
    /// The API key, sent as `Authorization: Bearer`.
    pub api_key: SecretString,
    /// The API base, `https://api.deepseek.com` (with or without `/v1`).
    pub base_url: String,
    /// The model sent upstream; overrides the request's `model` when set.
    pub model: Option<String>,
    /// Whether models other than `deepseek-chat` / `deepseek-reasoner` think when the
    /// request does not say (`thinking: {"type": …}`); true for current DeepSeek models.
    pub thinks_by_default: bool,
    /// The name used in logs, errors and status output (default `deepseek`).
    pub name: Option<String>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Size bounds on upstream answers.
    pub limits: Limits,
    /// Where the reasoning of tool-call answers is kept for replay; share one among the
    /// keys of a pool so a tool loop may move between keys.
    pub reasoning_cache: Arc<ReasoningCache>,
}

impl DeepSeekConfig {
    /// A config for the public DeepSeek API with `api_key`.
    #[must_use]
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: SecretString::from(api_key.into()),
            base_url: DEEPSEEK_BASE_URL.to_owned(),
            model: None,
            thinks_by_default: true,
            name: None,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            reasoning_cache: Arc::default(),
        }
    }
}

impl fmt::Debug for DeepSeekConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepSeekConfig")
            .field("api_key", &mask_key(&self.api_key))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("thinks_by_default", &self.thinks_by_default)
            .field("name", &self.name)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// DeepSeek's flavour of the OpenAI API: the Bearer endpoint plus its hooks.
struct DeepSeekEndpoint {
    bearer: BearerEndpoint,
    thinks_by_default: bool,
    cache: Arc<ReasoningCache>,
}

impl fmt::Debug for DeepSeekEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeepSeekEndpoint")
            .field("bearer", &self.bearer)
            .field("thinks_by_default", &self.thinks_by_default)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Endpoint for DeepSeekEndpoint {
    fn name(&self) -> &str {
        self.bearer.name()
    }

    fn chat_url(&self, model: &str) -> String {
        self.bearer.chat_url(model)
    }

    async fn write_headers(&self, headers: &mut HeaderMap) -> Result<()> {
        self.bearer.write_headers(headers).await
    }

    fn secrets(&self) -> Vec<&SecretString> {
        self.bearer.secrets()
    }

    fn check_request(&self, request: &ChatRequest, _model: &str) -> Result<()> {
        if matches!(
            request.response_format,
            Some(ResponseFormat::JsonSchema { .. })
        ) {
            return Err(Error::invalid_request(format!(
                "{} does not support response_format `json_schema`: use `json_object` (JSON mode) and describe the schema in the prompt",
                self.bearer.name()
            )));
        }
        Ok(())
    }

    fn messages<'a>(&self, request: &'a ChatRequest, model: &str) -> Option<Vec<Cow<'a, Message>>> {
        let mode = ThinkingMode::of(request, model, self.thinks_by_default);
        reasoning::messages(request, mode, &self.cache)
    }

    fn classify_error(&self, error: &ErrorInfo<'_>, kind: ErrorKind) -> ErrorKind {
        // DeepSeek's `type` / `code` fields are unreliable (`invalid_request_error` on a 401):
        // the status decides.
        if error
            .message
            .to_ascii_lowercase()
            .contains("content exists risk")
        {
            return ErrorKind::ContentFiltered;
        }
        match error.status {
            Some(StatusCode::PAYMENT_REQUIRED) => ErrorKind::QuotaExhausted,
            Some(StatusCode::UNPROCESSABLE_ENTITY) => ErrorKind::InvalidRequest,
            _ => kind,
        }
    }

    fn fix_chunk(&self, chunk: &mut ChatChunk) {
        for choice in &mut chunk.choices {
            fix_finish(&mut choice.finish_reason);
        }
        if let Some(usage) = &mut chunk.usage {
            fix_usage(usage);
        }
    }

    fn fix_response(&self, response: &mut ChatResponse) {
        for choice in &mut response.choices {
            fix_finish(&mut choice.finish_reason);
        }
        if let Some(usage) = &mut response.usage {
            fix_usage(usage);
        }
    }
}

fn fix_finish(reason: &mut Option<FinishReason>) {
    if let Some(FinishReason::Other(other)) = reason
        && other == "insufficient_system_resource"
    {
        *reason = Some(FinishReason::Length);
    }
}

/// `prompt_cache_hit_tokens` → `prompt_tokens_details.cached_tokens` (kept as sent too).
fn fix_usage(usage: &mut Usage) {
    let Some(hit) = usage
        .extra
        .get("prompt_cache_hit_tokens")
        .and_then(serde_json::Value::as_u64)
    else {
        return;
    };
    let details = usage
        .prompt_tokens_details
        .get_or_insert_with(PromptTokensDetails::default);
    details.cached_tokens.get_or_insert(hit);
}

/// DeepSeek (`Authorization: Bearer`, `{base}/chat/completions`).
///
/// ```
/// use llm_core::ChatProvider;
/// use llm_deepseek::{DeepSeekConfig, DeepSeekProvider};
///
/// let provider = DeepSeekProvider::new(DeepSeekConfig::new("sk-0123456789abcdef"))?;
/// assert_eq!(provider.name(), "deepseek");
/// assert!(!format!("{provider:?}").contains("0123456789"));
/// # Ok::<_, llm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct DeepSeekProvider {
    client: OpenAiCompatClient,
    cache: Arc<ReasoningCache>,
}

impl DeepSeekProvider {
    /// A provider for `config`, with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] for an invalid base URL, a key that cannot be sent as a
    /// header, or an HTTP client that cannot be built.
    pub fn new(config: DeepSeekConfig) -> Result<Self> {
        let http = http_client(&config.timeouts)?;
        Self::with_http_client(config, http)
    }

    /// A provider for `config` sharing `http`'s connection pool.
    ///
    /// # Errors
    ///
    /// As [`DeepSeekProvider::new`].
    pub fn with_http_client(config: DeepSeekConfig, http: impl Into<HttpClient>) -> Result<Self> {
        let name = config.name.clone().unwrap_or_else(|| "deepseek".to_owned());
        let endpoint = DeepSeekEndpoint {
            bearer: BearerEndpoint::new(name, &config.base_url, &config.api_key)?,
            thinks_by_default: config.thinks_by_default,
            cache: Arc::clone(&config.reasoning_cache),
        };
        let transport =
            llm_openai::Transport::new(endpoint.name().to_owned(), http, config.timeouts)
                .with_limits(config.limits);
        Ok(Self {
            client: OpenAiCompatClient::with_transport(
                Arc::new(endpoint),
                config.model.clone(),
                transport,
            ),
            cache: config.reasoning_cache,
        })
    }
}

/// Collects a streamed answer's reasoning and tool-call ids per choice, to remember them.
#[derive(Debug, Default)]
struct Recorder {
    choices: BTreeMap<u32, (String, Vec<String>)>,
}

impl Recorder {
    fn observe(&mut self, chunk: &ChatChunk) {
        for choice in &chunk.choices {
            let delta = &choice.delta;
            if delta.reasoning_content.is_none() && delta.tool_calls.is_none() {
                continue;
            }
            let (reasoning, ids) = self.choices.entry(choice.index).or_default();
            if let Some(piece) = &delta.reasoning_content {
                reasoning.push_str(piece);
            }
            ids.extend(
                delta
                    .tool_calls
                    .iter()
                    .flatten()
                    .filter_map(|call| call.id.clone()),
            );
        }
    }

    fn record(self, cache: &ReasoningCache) {
        for (reasoning, ids) in self.choices.values() {
            cache.insert(ids.iter().map(String::as_str), reasoning);
        }
    }
}

#[async_trait]
impl ChatProvider for DeepSeekProvider {
    fn name(&self) -> &str {
        self.client.name()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let response = self.client.chat(request).await?;
        for choice in &response.choices {
            let message = &choice.message;
            if let (Some(reasoning), Some(calls)) =
                (&message.reasoning_content, &message.tool_calls)
            {
                self.cache
                    .insert(calls.iter().map(|call| call.id.as_str()), reasoning);
            }
        }
        Ok(response)
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let stream = self.client.stream(request).await?;
        let cache = Arc::clone(&self.cache);
        let mut recorder = Some(Recorder::default());
        Ok(Box::pin(stream.map(move |item| {
            if let (Ok(chunk), Some(rec)) = (&item, recorder.as_mut()) {
                rec.observe(chunk);
                let finished = chunk.choices.iter().any(|c| c.finish_reason.is_some());
                if finished && let Some(rec) = recorder.take() {
                    rec.record(&cache);
                }
            }
            item
        })))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn usage_and_finish_fix_ups() {
        let mut usage: Usage = serde_json::from_value(json!({
            "prompt_tokens": 14, "completion_tokens": 5, "total_tokens": 19,
            "prompt_cache_hit_tokens": 10, "prompt_cache_miss_tokens": 4
        }))
        .unwrap();
        fix_usage(&mut usage);
        assert_eq!(usage.cached_tokens(), Some(10));
        let mut reason = Some(FinishReason::from("insufficient_system_resource"));
        fix_finish(&mut reason);
        assert_eq!(reason, Some(FinishReason::Length));
    }
}

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
