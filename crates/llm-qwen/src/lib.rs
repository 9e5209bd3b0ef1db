//! Qwen on Alibaba Cloud Model Studio (DashScope) for LLM Factory: the native API and the
//! OpenAI-compatible mode.
//!
//! - **Native** (`{base}/services/aigc/text-generation/generation`, base
//!   `https://dashscope.aliyuncs.com/api/v1` by default): `input.messages`, `parameters`
//!   with `result_format: "message"`, streams with `X-DashScope-SSE: enable` and
//!   `incremental_output: true` (cumulative text when a caller turns it off is diffed into
//!   deltas), no-space `data:` frames, `finish_reason` the string `"null"` mid-stream, no
//!   `[DONE]`, cumulative usage reported once at the end, `event:error` frames inside a 200
//!   stream, streamed parallel tool calls, `enable_thinking` / `enable_search` / `top_k` /
//!   `thinking_budget` … passed into `parameters`. VL and Omni models go to
//!   `…/multimodal-generation/generation` with `[{"image": …}, {"text": …}]` content.
//! - **Compatible mode** (`…/compatible-mode/v1/chat/completions`) on the shared
//!   OpenAI-compatible client, with DashScope's error codes classified.
//!
//! The API follows the base URL (a path with `/compatible-mode` is compatible mode),
//! or [`QwenConfig::api`]. Regional hosts (`dashscope-intl.aliyuncs.com`,
//! `dashscope-us.aliyuncs.com`, `cn-hongkong.dashscope.aliyuncs.com`, workspace gateways)
//! work by base URL alone; a bare host gets the API's path appended. Keys are region-bound.
//!
//! QwQ and QVQ answer only streams: their non-streaming calls are streamed and folded.
//! On other non-streaming calls `enable_thinking` is sent as `false` on both APIs when the caller
//! set it or the model can think ([`is_thinking_family`]): DashScope refuses thinking on
//! non-streaming calls, and some of those models think by default. In-stream `DataInspectionFailed`
//! ends the stream with a [`ContentFiltered`](llm_core::ErrorKind::ContentFiltered) error
//! (the gateway sends it as an error event), not with a `content_filter` finish reason.
//!
//! ```no_run
//! use llm_core::{ChatProvider, ChatRequest};
//! use llm_qwen::{QwenConfig, QwenProvider};
//!
//! # async fn run() -> llm_core::Result<()> {
//! let provider = QwenProvider::new(QwenConfig {
//!     model: Some("qwen-plus".into()),
//!     ..QwenConfig::new(std::env::var("DASHSCOPE_API_KEY").unwrap_or_default())
//! })?;
//! let answer = provider.chat(&ChatRequest::from("你好")).await?;
//! println!("{}", answer.text().unwrap_or_default());
//! # Ok(())
//! # }
//! ```

mod compat;
mod errors;
mod native;

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use llm_core::{
    ChatJson, ChatProvider, ChatRequest, ChatResponse, ChatStream, ChatStreamExt, Error, Result,
    SecretString, mask_key,
};
use llm_http::{Limits, Timeouts, Transport, http_client};
use llm_openai::{BearerEndpoint, OpenAiCompatClient, validate_base_url};

use crate::{compat::CompatEndpoint, native::NativeClient};
/// Timeouts and size bounds of the transport (from the provider kit).
pub use llm_http::{Limits as TransportLimits, Timeouts as TransportTimeouts};

/// The native API base of the China (Beijing) region.
pub const DASHSCOPE_BASE_URL: &str = "https://dashscope.aliyuncs.com/api/v1";

/// Which DashScope API a deployment speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QwenApi {
    /// `…/api/v1/services/aigc/…/generation`.
    Native,
    /// `…/compatible-mode/v1/chat/completions`.
    Compatible,
}

impl QwenApi {
    /// The API a base URL points at: compatible mode when its path has
    /// `/compatible-mode`, else native.
    #[must_use]
    pub fn of_base(base: &str) -> Self {
        if base.contains("/compatible-mode") {
            Self::Compatible
        } else {
            Self::Native
        }
    }
}

/// Whether `model` belongs to a family that can think (Qwen3 and later hybrid models, QwQ,
/// QVQ), so a non-streaming call must say `enable_thinking: false`: DashScope refuses
/// thinking on non-streaming calls, and some of these models think by default.
#[must_use]
pub fn is_thinking_family(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    model.starts_with("qwen3")
        || model.starts_with("qwq")
        || model.starts_with("qvq")
        || model.contains("-latest")
        || model.contains("thinking")
}

/// The `enable_thinking` to send on a non-streaming call that asked for `asked`: `false`
/// when the caller asked for thinking (refused there) or the model may think by default;
/// nothing otherwise (models without thinking get no new parameter).
pub(crate) fn non_streaming_thinking(asked: Option<bool>, model: &str) -> Option<bool> {
    match asked {
        Some(_) => Some(false),
        None => is_thinking_family(model).then_some(false),
    }
}

/// Whether DashScope answers `model` only as a stream (QwQ, QVQ): a non-streaming call is
/// served by streaming and folding the answer.
#[must_use]
pub fn is_stream_only(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    model.starts_with("qwq") || model.starts_with("qvq")
}

/// Whether DashScope serves `model` on the multimodal path (Qwen-VL, QVQ, Omni).
#[must_use]
pub fn is_multimodal_model(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    model.starts_with("qvq")
        || model.contains("omni")
        || model.split(['-', '.', '_']).any(|token| token == "vl")
}

/// A Qwen deployment.
///
/// ```
/// use llm_qwen::{QwenApi, QwenConfig};
///
/// let config = QwenConfig {
///     base_url: "https://dashscope-intl.aliyuncs.com/compatible-mode/v1".into(),
///     ..QwenConfig::new("sk-0123456789abcdef")
/// };
/// assert_eq!(config.resolved_api(), QwenApi::Compatible);
/// assert!(!format!("{config:?}").contains("0123456789"));
/// ```
#[derive(Clone)]
pub struct QwenConfig {
    /// The API key, sent as `Authorization: Bearer`.
    pub api_key: SecretString,
    /// The base: `https://dashscope.aliyuncs.com/api/v1` (native),
    /// `…/compatible-mode/v1` (compatible), or a bare regional host.
    pub base_url: String,
    /// The API; `None` follows the base URL.
    pub api: Option<QwenApi>,
    /// The model sent upstream; overrides the request's `model` when set.
    pub model: Option<String>,
    /// Native API: whether the model is on the multimodal path; `None` guesses from the
    /// model name ([`is_multimodal_model`]).
    pub multimodal: Option<bool>,
    /// `X-DashScope-WorkSpace`, for keys of a sub-workspace.
    pub workspace: Option<String>,
    /// The name used in logs, errors and status output (default `qwen`).
    pub name: Option<String>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Size bounds on upstream answers.
    pub limits: Limits,
}

impl QwenConfig {
    /// A config for the native API in the China (Beijing) region with `api_key`.
    #[must_use]
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: SecretString::from(api_key.into()),
            base_url: DASHSCOPE_BASE_URL.to_owned(),
            api: None,
            model: None,
            multimodal: None,
            workspace: None,
            name: None,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
        }
    }

    /// The API this config speaks.
    #[must_use]
    pub fn resolved_api(&self) -> QwenApi {
        self.api.unwrap_or_else(|| QwenApi::of_base(&self.base_url))
    }
}

impl fmt::Debug for QwenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QwenConfig")
            .field("api_key", &mask_key(&self.api_key))
            .field("base_url", &self.base_url)
            .field("api", &self.api)
            .field("model", &self.model)
            .field("multimodal", &self.multimodal)
            .field("workspace", &self.workspace)
            .field("name", &self.name)
            .field("timeouts", &self.timeouts)
            .field("limits", &self.limits)
            .finish()
    }
}

/// `base` with the API's path appended when it is a bare host.
fn with_default_path(base: &str, api: QwenApi) -> String {
    let after_scheme = base.split_once("://").map_or(base, |(_, rest)| rest);
    if after_scheme.contains('/') {
        return base.to_owned();
    }
    match api {
        QwenApi::Native => format!("{base}/api/v1"),
        QwenApi::Compatible => format!("{base}/compatible-mode/v1"),
    }
}

#[derive(Debug)]
enum Api {
    Native(NativeClient),
    Compatible(OpenAiCompatClient),
}

/// Qwen on DashScope, native API or compatible mode.
///
/// ```
/// use llm_core::ChatProvider;
/// use llm_qwen::{QwenConfig, QwenProvider};
///
/// let provider = QwenProvider::new(QwenConfig::new("sk-0123456789abcdef"))?;
/// assert_eq!(provider.name(), "qwen");
/// assert!(!format!("{provider:?}").contains("0123456789"));
/// # Ok::<_, llm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct QwenProvider {
    api: Api,
    name: String,
    model: Option<String>,
    multimodal: Option<bool>,
}

impl QwenProvider {
    /// A provider for `config`, with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) for an invalid base URL, a key or
    /// workspace that cannot be sent as a header, or an HTTP client that cannot be built.
    pub fn new(config: QwenConfig) -> Result<Self> {
        let http = http_client(&config.timeouts)?;
        Self::with_http_client(config, http)
    }

    /// A provider for `config` sharing `http`'s connection pool.
    ///
    /// # Errors
    ///
    /// As [`QwenProvider::new`].
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the config is consumed by convention"
    )]
    pub fn with_http_client(
        config: QwenConfig,
        http: impl Into<llm_http::HttpClient>,
    ) -> Result<Self> {
        let api = config.resolved_api();
        let base = validate_base_url(&config.base_url, "api_base")?;
        let base = with_default_path(base, api);
        let name = config.name.clone().unwrap_or_else(|| "qwen".to_owned());
        let transport =
            Transport::new(name.clone(), http, config.timeouts).with_limits(config.limits);
        let workspace = config
            .workspace
            .as_deref()
            .map(|ws| {
                http::HeaderValue::try_from(ws).map_err(|_| {
                    Error::config("the DashScope workspace is not a valid header value")
                })
            })
            .transpose()?;
        let api = match api {
            QwenApi::Native => Api::Native(NativeClient::new(
                transport,
                &base,
                config.api_key.clone(),
                workspace,
            )?),
            QwenApi::Compatible => {
                let mut bearer = BearerEndpoint::new(name.clone(), &base, &config.api_key)?;
                if let Some(workspace) = &config.workspace {
                    bearer = bearer.with_header("x-dashscope-workspace", workspace)?;
                }
                let endpoint = CompatEndpoint { bearer };
                Api::Compatible(OpenAiCompatClient::with_transport(
                    Arc::new(endpoint),
                    config.model.clone(),
                    transport,
                ))
            }
        };
        Ok(Self {
            api,
            name,
            model: config.model.clone(),
            multimodal: config.multimodal,
        })
    }

    /// The API this provider speaks.
    #[must_use]
    pub fn api(&self) -> QwenApi {
        match self.api {
            Api::Native(_) => QwenApi::Native,
            Api::Compatible(_) => QwenApi::Compatible,
        }
    }

    fn model<'a>(&'a self, request: &'a ChatRequest) -> Result<&'a str> {
        llm_core::kit::upstream_model(self.model.as_deref(), request, &self.name)
    }

    fn multimodal(&self, model: &str) -> bool {
        self.multimodal
            .unwrap_or_else(|| is_multimodal_model(model))
    }
}

#[async_trait]
impl ChatProvider for QwenProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let model = self.model(request)?;
        if is_stream_only(model) {
            // QwQ / QVQ answer only streams: stream and fold the answer.
            return self.stream(request).await?.collect_response().await;
        }
        match &self.api {
            Api::Native(client) => client.chat(request, model, self.multimodal(model)).await,
            Api::Compatible(client) => client.chat(request).await,
        }
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        match &self.api {
            Api::Native(client) => {
                let model = self.model(request)?;
                client.stream(request, model, self.multimodal(model)).await
            }
            Api::Compatible(client) => client.stream(request).await,
        }
    }

    /// Compatible mode passes on DashScope's answer as it came when it can (see
    /// [`ChatProvider::chat_json`]); the native API's answers are written from the
    /// translated [`ChatResponse`].
    async fn chat_json(&self, request: &ChatRequest) -> Result<ChatJson> {
        match &self.api {
            Api::Compatible(client) if !is_stream_only(self.model(request)?) => {
                client.chat_json(request).await
            }
            _ => ChatJson::from_response(&self.chat(request).await?),
        }
    }
}

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis_and_paths_follow_the_base() {
        assert_eq!(QwenApi::of_base(DASHSCOPE_BASE_URL), QwenApi::Native);
        assert_eq!(
            QwenApi::of_base("https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
            QwenApi::Compatible
        );
        assert_eq!(
            with_default_path("https://dashscope-intl.aliyuncs.com", QwenApi::Native),
            "https://dashscope-intl.aliyuncs.com/api/v1"
        );
        assert_eq!(
            with_default_path("https://dashscope-us.aliyuncs.com", QwenApi::Compatible),
            "https://dashscope-us.aliyuncs.com/compatible-mode/v1"
        );
        assert_eq!(
            with_default_path("http://127.0.0.1:9/api/v1", QwenApi::Native),
            "http://127.0.0.1:9/api/v1"
        );
    }

    #[test]
    fn multimodal_models() {
        for model in [
            "qwen-vl-max",
            "qwen3-vl-plus",
            "qwen2.5-vl-72b-instruct",
            "qvq-max",
            "qwen-omni-turbo",
            "qwen3-omni-flash",
        ] {
            assert!(is_multimodal_model(model), "{model}");
        }
        for model in [
            "qwen-plus",
            "qwen-max",
            "qwen3-235b-a22b",
            "qwq-plus",
            "qwen-long",
        ] {
            assert!(!is_multimodal_model(model), "{model}");
        }
    }
}
