//! The OpenAI-compatible client and the OpenAI and Azure OpenAI providers built on it.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use http::{
    HeaderMap, HeaderValue,
    header::{ACCEPT, CONTENT_TYPE},
};
use llm_core::{
    ChatJson, ChatProvider, ChatRequest, ChatResponse, ChatStream, Error, Result, SecretString,
    kit::sse_chat_stream,
};
use llm_http::{Target, Transport};

use crate::{
    config::{AzureOpenAiConfig, OpenAiConfig, Timeouts},
    endpoint::{AzureEndpoint, BearerEndpoint, Endpoint},
    error::{self, ErrorEnvelope},
    relay,
    stream::ChunkTranslator,
    wire::{BodyMode, WireRequest},
};

pub use llm_http::{http_client, http_client_with};

/// A client for any OpenAI-compatible chat-completions endpoint: the transport shared by
/// [`OpenAiProvider`], [`AzureOpenAiProvider`] and the OpenAI-compatible providers of other
/// crates (DeepSeek, Qwen compatible mode), which bring their own [`Endpoint`].
pub struct OpenAiCompatClient {
    endpoint: Arc<dyn Endpoint>,
    transport: Transport,
    model: Option<String>,
    /// The chat URL for `model`, parsed once: URL parsing (with IDNA) is a measurable share
    /// of a request's CPU time.
    url: Option<Target>,
}

impl fmt::Debug for OpenAiCompatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The endpoint's own Debug shows credentials only as masked or redacted values.
        f.debug_struct("OpenAiCompatClient")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("timeouts", self.transport.timeouts())
            .finish_non_exhaustive()
    }
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
        http: impl Into<llm_http::HttpClient>,
    ) -> Self {
        let name = endpoint.name().to_owned();
        Self::with_transport(
            Arc::new(endpoint),
            model,
            Transport::new(name, http, timeouts),
        )
    }

    /// A client for a shared `endpoint` over `transport` (whose size limits then apply).
    #[must_use]
    pub fn with_transport(
        endpoint: Arc<dyn Endpoint>,
        model: Option<String>,
        transport: Transport,
    ) -> Self {
        let url = model.as_deref().and_then(|model| {
            reqwest::Url::parse(&endpoint.chat_url(model))
                .ok()
                .map(Target::from)
        });
        Self {
            endpoint,
            transport,
            model,
            url,
        }
    }

    /// The endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &Arc<dyn Endpoint> {
        &self.endpoint
    }

    /// The chat URL for `model`: the parsed one for the configured model, else parsed now.
    fn url_for(&self, model: &str) -> Result<Target> {
        match (&self.url, &self.model) {
            (Some(url), Some(configured)) if configured == model => Ok(url.clone()),
            _ => reqwest::Url::parse(&self.endpoint.chat_url(model))
                .map(Target::from)
                .map_err(|e| {
                    Error::config(format!(
                        "{} has an invalid chat URL: {e}",
                        self.endpoint.name()
                    ))
                }),
        }
    }

    /// The model sent upstream for `request`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRequest`](llm_core::ErrorKind) when neither the configuration
    /// nor the request names one.
    pub fn upstream_model<'a>(&'a self, request: &'a ChatRequest) -> Result<&'a str> {
        llm_core::kit::upstream_model(self.model.as_deref(), request, self.endpoint.name())
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
    ) -> Result<llm_http::Response> {
        if request.messages.is_empty() {
            return Err(Error::invalid_request("`messages` must not be empty"));
        }
        let endpoint = &*self.endpoint;
        endpoint.check_request(request, model)?;
        let mode = BodyMode {
            stream,
            include_usage: endpoint.supports_stream_usage(),
        };
        let mut wire = WireRequest::new(request, Some(model), mode);
        if let Some(messages) = endpoint.messages(request, model) {
            wire = wire.with_messages(messages);
        }
        if let Some(extra) = endpoint.extra_body(request, model, stream) {
            wire = wire.with_extra(extra);
        }
        let body = wire.to_json().map_err(|e| {
            Error::invalid_request(format!("the request cannot be serialized: {e}"))
        })?;
        let mut headers = HeaderMap::new();
        endpoint.write_headers(&mut headers).await?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        self.transport
            .post(
                self.url_for(model)?,
                headers,
                body,
                |status, headers, body| {
                    error::from_response(endpoint, status, headers, body, &self.secrets())
                },
            )
            .await
    }

    /// Send a request for a whole answer and read the successful answer's body.
    async fn whole_answer(&self, request: &ChatRequest, model: &str) -> Result<bytes::Bytes> {
        let response = self.send(request, model, false).await?;
        self.transport.read_body(response).await
    }

    fn parse_response(&self, body: &[u8], model: &str) -> Result<ChatResponse> {
        match llm_core::kit::json_from_slice::<ChatResponse>(body) {
            Ok(mut response) if !response.choices.is_empty() => {
                if response.model.is_empty() {
                    model.clone_into(&mut response.model);
                }
                ChatResponse::OBJECT.clone_into(&mut response.object);
                self.endpoint.fix_response(&mut response);
                Ok(response)
            }
            parsed => {
                if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
                    return Err(error::in_band(
                        &*self.endpoint,
                        &envelope.error,
                        &self.secrets(),
                    ));
                }
                let detail = match parsed {
                    Ok(_) => "the response has no choices".to_owned(),
                    Err(e) if e.is_eof() => "the response body was cut off".to_owned(),
                    Err(e) => format!("the response is not a chat.completion: {e}"),
                };
                Err(Error::protocol(self.transport.name_cow(), detail, None))
            }
        }
    }
}

#[async_trait]
impl ChatProvider for OpenAiCompatClient {
    fn name(&self) -> &str {
        self.transport.name()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let model = self.upstream_model(request)?;
        // Pinned where it is made (see `chat_json`).
        let call = std::pin::pin!(async {
            let body = self.whole_answer(request, model).await?;
            self.parse_response(&body, model)
        });
        self.transport.within_total(call).await
    }

    /// The upstream's answer as it came, when the endpoint allows it and the answer holds
    /// exactly what reading it would give (see the `relay` module); else the answer read
    /// and written again, with the errors of [`ChatProvider::chat`].
    async fn chat_json(&self, request: &ChatRequest) -> Result<ChatJson> {
        let model = self.upstream_model(request)?;
        // Pinned where it is made: the call's future is ≈ 3 KB, and the timeout and its
        // wrappers would each copy it whole on the way to the first poll.
        let call = std::pin::pin!(async {
            let body = self.whole_answer(request, model).await?;
            if self.endpoint.relays_answers()
                && let Some(usage) = relay::check(&body)
            {
                return Ok(ChatJson::new(body, usage));
            }
            ChatJson::from_response(&self.parse_response(&body, model)?)
        });
        self.transport.within_total(call).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let model = self.upstream_model(request)?;
        let response = self.send(request, model, true).await?;
        self.transport.expect_event_stream(&response)?;
        let translator = ChunkTranslator::new(Arc::clone(&self.endpoint), model.to_owned());
        Ok(sse_chat_stream(
            self.transport.body_stream(response),
            translator,
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
    pub fn with_http_client(
        config: OpenAiConfig,
        http: impl Into<llm_http::HttpClient>,
    ) -> Result<Self> {
        let endpoint = BearerEndpoint::openai(&config)?;
        let transport = Transport::new(endpoint.name().to_owned(), http, config.timeouts)
            .with_limits(config.limits);
        Ok(Self {
            client: OpenAiCompatClient::with_transport(Arc::new(endpoint), config.model, transport),
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
    pub fn with_http_client(
        config: AzureOpenAiConfig,
        http: impl Into<llm_http::HttpClient>,
    ) -> Result<Self> {
        let endpoint = AzureEndpoint::new(&config)?;
        // The deployment is what Azure routes by; it is also the v1 path's body `model`.
        let model = config.deployment.clone().or_else(|| config.model.clone());
        let transport = Transport::new(endpoint.name().to_owned(), http, config.timeouts)
            .with_limits(config.limits);
        Ok(Self {
            client: OpenAiCompatClient::with_transport(Arc::new(endpoint), model, transport),
        })
    }
}

/// `ChatProvider` by forwarding to the wrapped client, its futures as they are (see
/// [`llm_core::ProviderFuture`]).
macro_rules! delegate_chat_provider {
    ($($provider:ty),*) => {$(
        impl ChatProvider for $provider {
            fn name(&self) -> &str {
                self.client.name()
            }

            fn chat<'a, 'b, 'c>(
                &'a self,
                request: &'b ChatRequest,
            ) -> llm_core::ProviderFuture<'c, ChatResponse>
            where
                'a: 'c,
                'b: 'c,
                Self: 'c,
            {
                self.client.chat(request)
            }

            fn stream<'a, 'b, 'c>(
                &'a self,
                request: &'b ChatRequest,
            ) -> llm_core::ProviderFuture<'c, ChatStream>
            where
                'a: 'c,
                'b: 'c,
                Self: 'c,
            {
                self.client.stream(request)
            }

            fn chat_json<'a, 'b, 'c>(
                &'a self,
                request: &'b ChatRequest,
            ) -> llm_core::ProviderFuture<'c, llm_core::ChatJson>
            where
                'a: 'c,
                'b: 'c,
                Self: 'c,
            {
                self.client.chat_json(request)
            }
        }
    )*};
}

delegate_chat_provider!(OpenAiProvider, AzureOpenAiProvider);
