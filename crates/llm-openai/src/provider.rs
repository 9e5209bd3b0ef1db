//! The OpenAI-compatible client and the OpenAI and Azure OpenAI providers built on it.

use std::{borrow::Cow, fmt, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{
    HeaderMap, HeaderValue,
    header::{ACCEPT, CONTENT_TYPE},
};
use llm_core::{
    ChatProvider, ChatRequest, ChatResponse, ChatStream, Error, Result, SecretString, TimeoutPhase,
};

use crate::{
    config::{AzureOpenAiConfig, OpenAiConfig, Timeouts},
    endpoint::{AzureEndpoint, Endpoint, OpenAiEndpoint},
    error::{self, ErrorEnvelope},
    stream::{ChunkTranslator, chat_stream},
    wire::{BodyMode, WireRequest},
};

/// The largest error body kept: error envelopes are small; anything longer is a proxy page.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A client for any OpenAI-compatible chat-completions endpoint: the transport shared by
/// [`OpenAiProvider`], [`AzureOpenAiProvider`] and the OpenAI-compatible providers of other
/// crates (DeepSeek, Qwen compatible mode), which bring their own [`Endpoint`].
pub struct OpenAiCompatClient {
    endpoint: Box<dyn Endpoint>,
    name: Cow<'static, str>,
    http: reqwest::Client,
    model: Option<String>,
    /// The chat URL for `model`, parsed once: URL parsing (with IDNA) is a measurable share
    /// of a request's CPU time.
    url: Option<reqwest::Url>,
    timeouts: Timeouts,
}

impl fmt::Debug for OpenAiCompatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The endpoint's own Debug shows credentials only as masked or redacted values.
        f.debug_struct("OpenAiCompatClient")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// A reqwest client with the connect and idle-read timeouts of `timeouts`, to share among
/// the providers of several keys (one connection pool per account, not per key).
///
/// # Errors
///
/// [`ErrorKind::Configuration`](llm_core::ErrorKind) when the TLS stack cannot be set up.
pub fn http_client(timeouts: &Timeouts) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .read_timeout(timeouts.idle)
        .user_agent(concat!("llm-factory/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))
}

impl OpenAiCompatClient {
    /// A client for `endpoint` with its own connection pool.
    ///
    /// `model` is sent upstream in place of the request's `model` when set.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) when the HTTP client cannot be built.
    pub fn new(
        endpoint: impl Endpoint + 'static,
        model: Option<String>,
        timeouts: Timeouts,
    ) -> Result<Self> {
        let http = http_client(&timeouts)?;
        Ok(Self::with_http_client(endpoint, model, timeouts, http))
    }

    /// A client for `endpoint` sharing an existing reqwest client (and its pool). The
    /// client's own timeouts apply in addition to `timeouts`' first-byte and total limits.
    #[must_use]
    pub fn with_http_client(
        endpoint: impl Endpoint + 'static,
        model: Option<String>,
        timeouts: Timeouts,
        http: reqwest::Client,
    ) -> Self {
        let url = model
            .as_deref()
            .and_then(|model| reqwest::Url::parse(&endpoint.chat_url(model)).ok());
        Self {
            name: Cow::Owned(endpoint.name().to_owned()),
            endpoint: Box::new(endpoint),
            http,
            model,
            url,
            timeouts,
        }
    }

    /// The chat URL for `model`: the parsed one for the configured model, else parsed now.
    fn url_for(&self, model: &str) -> Result<reqwest::Url> {
        match (&self.url, &self.model) {
            (Some(url), Some(configured)) if configured == model => Ok(url.clone()),
            _ => reqwest::Url::parse(&self.endpoint.chat_url(model))
                .map_err(|e| Error::config(format!("{} has an invalid chat URL: {e}", self.name))),
        }
    }

    /// The model sent upstream for `request`.
    fn upstream_model<'a>(&'a self, request: &'a ChatRequest) -> Result<&'a str> {
        self.model
            .as_deref()
            .or(request.model.as_deref())
            .filter(|model| !model.is_empty())
            .ok_or_else(|| {
                Error::invalid_request(format!(
                    "{} needs a model: set one in the request or in the provider's configuration",
                    self.name
                ))
            })
    }

    fn secrets(&self) -> Vec<&SecretString> {
        self.endpoint.secrets()
    }

    /// Send the request and return the successful response, or the classified error.
    async fn send(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<reqwest::Response> {
        if request.messages.is_empty() {
            return Err(Error::invalid_request("`messages` must not be empty"));
        }
        let mode = BodyMode {
            stream,
            include_usage: self.endpoint.supports_stream_usage(),
        };
        let body =
            serde_json::to_vec(&WireRequest::new(request, Some(model), mode)).map_err(|e| {
                Error::invalid_request(format!("the request cannot be serialized: {e}"))
            })?;
        let mut headers = HeaderMap::new();
        self.endpoint.write_headers(&mut headers).await?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        let first_byte = self.timeouts.first_byte;
        let sent = self
            .http
            .post(self.url_for(model)?)
            .headers(headers)
            .body(body)
            .send();
        let response = tokio::time::timeout(first_byte, sent)
            .await
            .map_err(|_| self.timeout(TimeoutPhase::FirstByte, first_byte))?
            .map_err(|e| error::transport(&self.name, e, TimeoutPhase::FirstByte, first_byte))?;
        let status = response.status();
        tracing::debug!(
            provider = %self.name,
            status = status.as_u16(),
            upstream_request_id = response
                .headers()
                .get("x-request-id")
                .or_else(|| response.headers().get("apim-request-id"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            "upstream answered"
        );
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = tokio::time::timeout(first_byte, read_limited(response, MAX_ERROR_BODY))
            .await
            .unwrap_or_default();
        Err(error::from_response(
            &self.name,
            status,
            &headers,
            &body,
            &self.secrets(),
        ))
    }

    fn timeout(&self, phase: TimeoutPhase, after: Duration) -> Error {
        Error::Timeout {
            provider: self.name.clone(),
            phase,
            after,
        }
    }

    fn parse_response(&self, body: &[u8], model: &str) -> Result<ChatResponse> {
        match serde_json::from_slice::<ChatResponse>(body) {
            Ok(mut response) if !response.choices.is_empty() => {
                if response.model.is_empty() {
                    model.clone_into(&mut response.model);
                }
                response.object = ChatResponse::OBJECT.to_owned();
                Ok(response)
            }
            parsed => {
                if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
                    return Err(error::in_band(&self.name, &envelope.error, &self.secrets()));
                }
                let detail = match parsed {
                    Ok(_) => "the response has no choices".to_owned(),
                    Err(e) if e.is_eof() => "the response body was cut off".to_owned(),
                    Err(e) => format!("the response is not a chat.completion: {e}"),
                };
                Err(Error::protocol(self.name.clone(), detail, None))
            }
        }
    }
}

/// Read at most `limit` bytes of a body; a transport error ends the read with what arrived.
async fn read_limited(response: reqwest::Response, limit: usize) -> Bytes {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Bytes::from(body)
}

#[async_trait]
impl ChatProvider for OpenAiCompatClient {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let model = self.upstream_model(request)?;
        let total = self.timeouts.total;
        let call = async {
            let response = self.send(request, model, false).await?;
            let body = response
                .bytes()
                .await
                .map_err(|e| error::transport(&self.name, e, TimeoutPhase::Total, total))?;
            self.parse_response(&body, model)
        };
        tokio::time::timeout(total, call)
            .await
            .map_err(|_| self.timeout(TimeoutPhase::Total, total))?
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let model = self.upstream_model(request)?;
        let response = self.send(request, model, true).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.is_empty() && !content_type.starts_with("text/event-stream") {
            return Err(Error::protocol(
                self.name.clone(),
                format!("expected an event stream, got `{content_type}`"),
                None,
            ));
        }
        let translator = ChunkTranslator::new(
            self.name.clone(),
            self.secrets().into_iter().cloned().collect(),
            model.to_owned(),
        );
        Ok(chat_stream(
            Box::pin(response.bytes_stream()),
            translator,
            self.timeouts.idle,
        ))
    }
}

/// OpenAI (`Authorization: Bearer`, `{base}/chat/completions`).
///
/// ```
/// use llm_core::ChatProvider;
/// use llm_openai::{OpenAiConfig, OpenAiProvider};
///
/// let provider = OpenAiProvider::new(OpenAiConfig::new("sk-proj-0123456789abcdef"))?;
/// assert_eq!(provider.name(), "openai");
/// assert!(!format!("{provider:?}").contains("0123456789"));
/// # Ok::<_, llm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct OpenAiProvider {
    client: OpenAiCompatClient,
}

impl OpenAiProvider {
    /// A provider for `config`, with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) for an invalid base URL, a key or
    /// header that cannot be sent, or an HTTP client that cannot be built.
    pub fn new(config: OpenAiConfig) -> Result<Self> {
        let http = http_client(&config.timeouts)?;
        Self::with_http_client(config, http)
    }

    /// A provider for `config` sharing `http`'s connection pool.
    ///
    /// # Errors
    ///
    /// As [`OpenAiProvider::new`].
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the config is consumed by convention"
    )]
    pub fn with_http_client(config: OpenAiConfig, http: reqwest::Client) -> Result<Self> {
        let endpoint = OpenAiEndpoint::new(&config)?;
        Ok(Self {
            client: OpenAiCompatClient::with_http_client(
                endpoint,
                config.model.clone(),
                config.timeouts,
                http,
            ),
        })
    }
}

/// Azure OpenAI (`api-key` or Entra ID bearer; the classic deployments path with
/// `api-version`, or the v1 path).
///
/// ```
/// use llm_core::ChatProvider;
/// use llm_openai::{AzureOpenAiConfig, AzureOpenAiProvider};
///
/// let config = AzureOpenAiConfig {
///     deployment: Some("gpt-4o".into()),
///     api_version: Some("2024-10-21".into()),
///     ..AzureOpenAiConfig::with_key("https://contoso.openai.azure.com", "0123456789abcdef0123")
/// };
/// let provider = AzureOpenAiProvider::new(config)?;
/// assert_eq!(provider.name(), "azure-openai");
/// # Ok::<_, llm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct AzureOpenAiProvider {
    client: OpenAiCompatClient,
}

impl AzureOpenAiProvider {
    /// A provider for `config`, with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) for an invalid endpoint or API
    /// version, a key that cannot be sent as a header, or an HTTP client that cannot be built.
    pub fn new(config: AzureOpenAiConfig) -> Result<Self> {
        let http = http_client(&config.timeouts)?;
        Self::with_http_client(config, http)
    }

    /// A provider for `config` sharing `http`'s connection pool.
    ///
    /// # Errors
    ///
    /// As [`AzureOpenAiProvider::new`].
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the config is consumed by convention"
    )]
    pub fn with_http_client(config: AzureOpenAiConfig, http: reqwest::Client) -> Result<Self> {
        let endpoint = AzureEndpoint::new(&config)?;
        // The deployment is what Azure routes by; it is also the v1 path's body `model`.
        let model = config.deployment.clone().or_else(|| config.model.clone());
        Ok(Self {
            client: OpenAiCompatClient::with_http_client(endpoint, model, config.timeouts, http),
        })
    }
}

macro_rules! delegate_chat_provider {
    ($($provider:ty),*) => {$(
        #[async_trait]
        impl ChatProvider for $provider {
            fn name(&self) -> &str {
                self.client.name()
            }

            async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
                self.client.chat(request).await
            }

            async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
                self.client.stream(request).await
            }
        }
    )*};
}

delegate_chat_provider!(OpenAiProvider, AzureOpenAiProvider);
