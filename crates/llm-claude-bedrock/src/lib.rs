//! Claude on AWS Bedrock for LLM Factory: OpenAI-shaped chat through Converse and
//! ConverseStream, on `aws-sdk-bedrockruntime` (SigV4 signing, event-stream decoding and
//! the credential chain are the SDK's).
//!
//! - **Credentials** ([`BedrockAuth`]): the standard AWS chain by default (environment,
//!   profile, SSO, web identity, ECS / IMDS), which also picks up a Bedrock API key from
//!   `AWS_BEARER_TOKEN_BEDROCK`; static keys per deployment, so several accounts pool; or a
//!   Bedrock API key sent as `Authorization: Bearer`. The region is per deployment;
//!   [`ClaudeBedrockConfig::base_url`] overrides the endpoint. Model ids, inference-profile
//!   ids (`us.`, `eu.`, `global.` …) and ARNs pass through unchanged (the SDK encodes them
//!   as one path segment).
//! - **Requests**: system and developer messages → `system`; text; images as base64 data
//!   URLs (a remote `http(s)` URL is an InvalidRequest — Converse takes bytes, and we do
//!   not fetch on a caller's behalf); tools ↔ `toolConfig` / `toolUse` / `toolResult`,
//!   keeping Converse's invariants that OpenAI-shaped histories break:
//!   - `toolConfig` is sent whenever the history holds tool blocks, also when the request
//!     declares no tools (the tools the history used are declared) or says
//!     `tool_choice: "none"` (Converse has no `none`: the tools are declared and no choice
//!     is sent; without tool blocks in the history `none` leaves the tools out);
//!   - the results of parallel calls go in one user turn, before any user text; consecutive
//!     messages of one role are merged, and a conversation that starts with the assistant
//!     gets a short user turn before it;
//!   - blank text blocks are never sent (an assistant turn with `content: ""` and tool
//!     calls, an empty tool result — which becomes an empty content list);
//!   - tool names outside `[a-zA-Z0-9_-]{1,64}` (dotted MCP names, long names) are
//!     sanitized with a hash suffix and mapped back in answers, so callers get their own
//!     names; tool-call ids likewise; `input` is always an object;
//!   - streamed tool input is keyed by `contentBlockIndex` and surfaced as OpenAI
//!     tool-call deltas with a stable `index` (0, 1, … across the answer) and `id`.
//!
//!   `max_tokens` / `max_completion_tokens` → `maxTokens`; `temperature` **above 1.0 is
//!   clamped to 1.0** (Converse's maximum; OpenAI's scale goes to 2.0; below 0 or above 2
//!   is refused); `top_p`; `stop` → `stopSequences`; `response_format` `json_schema` →
//!   `outputConfig.textFormat` (the schema as a string), `json_object` → a system
//!   instruction (Converse has no JSON switch); `reasoning_effort` → a thinking budget
//!   (`low` 1024, `medium` 4096, `high` 16384 tokens; `maxTokens` defaults to the budget
//!   plus 8192); `cache_control` on a text part or a message → a `cachePoint` block after
//!   it. `n` > 1, `logprobs`, `logit_bias` and non-zero penalties are refused; `seed`,
//!   `user` and `parallel_tool_calls` have no Converse field and are not sent. Unknown
//!   request fields: Converse's own (`guardrailConfig`, `performanceConfig`,
//!   `requestMetadata`, `additionalModelResponseFieldPaths`,
//!   `additionalModelRequestFields`) are used as such, OpenAI bookkeeping (`store`,
//!   `metadata`, …) is dropped, anything else (`top_k`, `thinking`, `anthropic_beta`)
//!   goes into `additionalModelRequestFields`.
//! - **Answers**: text, tool calls, `reasoningContent` → `reasoning_content`, with every
//!   reasoning block (and its signature) in the assistant message's `thinking_blocks`
//!   (`[{"type":"thinking","thinking","signature"}]`, `{"type":"redacted_thinking","data"}`),
//!   which are sent back as `reasoningContent` when the message returns in a later
//!   history; streams give each block in a delta's `thinking_blocks` once its signature
//!   arrives. stopReason: `end_turn`, `stop_sequence` → `stop`; `max_tokens`,
//!   `model_context_window_exceeded` → `length`; `tool_use` → `tool_calls`;
//!   `guardrail_intervened`, `content_filtered` → `content_filter`; `malformed_*` →
//!   `stop` (logged). Usage: `prompt_tokens` = input + cache read + cache write tokens,
//!   `cached_tokens` = cache reads, `cache_write_tokens` = cache writes (streams: from the
//!   `metadata` event after `messageStop`).
//! - **Errors** by exception type: ThrottlingException → RateLimited;
//!   ModelNotReadyException (a 429) → UpstreamServer, not a rate limit;
//!   ValidationException → ContextLengthExceeded when it says the input is too long,
//!   NotFound when the model id cannot be called as configured (an inference profile is
//!   needed), else InvalidRequest; AccessDenied → Permission; the AWS front door's
//!   signature / token errors → Authentication; ResourceNotFound → NotFound;
//!   ServiceQuotaExceeded → QuotaExhausted; ModelTimeout → Timeout; ServiceUnavailable,
//!   InternalServer, ModelError, ModelStreamError → UpstreamServer. Exception frames
//!   inside a stream become the stream's error item; a stream that ends before
//!   `messageStop`, and a non-streaming body that is cut or unparsable, are Protocol
//!   errors, never an empty answer.
//!
//! ```no_run
//! use llm_claude_bedrock::{BedrockAuth, ClaudeBedrockConfig, ClaudeBedrockProvider};
//! use llm_core::{ChatProvider, ChatRequest};
//!
//! # async fn run() -> llm_core::Result<()> {
//! let provider = ClaudeBedrockProvider::new(ClaudeBedrockConfig {
//!     region: Some("us-east-1".into()),
//!     model: Some("us.anthropic.claude-sonnet-4-5-20250929-v1:0".into()),
//!     ..ClaudeBedrockConfig::new(BedrockAuth::default())
//! })?;
//! let answer = provider.chat(&ChatRequest::from("Say hello")).await?;
//! println!("{}", answer.text().unwrap_or_default());
//! # Ok(())
//! # }
//! ```

mod document;
mod errors;
mod request;
mod response;
#[cfg(feature = "test-util")]
pub mod testing;

use std::{collections::HashMap, fmt, time::Duration};

use async_trait::async_trait;
use aws_sdk_bedrockruntime::{
    Client,
    config::{
        BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
        StalledStreamProtectionConfig, Token,
        interceptors::BeforeDeserializationInterceptorContextMut, retry::RetryConfig,
        timeout::TimeoutConfig,
    },
    error::SdkError,
    operation::RequestId,
    primitives::event_stream::EventReceiver,
    types::{
        ConverseStreamOutput, GuardrailConfiguration, GuardrailStreamConfiguration,
        error::ConverseStreamOutputError,
    },
};
use aws_smithy_types::body::SdkBody;
use futures_util::stream;
use llm_core::{
    ChatChunk, ChatProvider, ChatRequest, ChatResponse, ChatStream, Error, ExposeSecret, Result,
    SecretString, TimeoutPhase,
    kit::{Next, Outbox, fail_before_first_chunk, upstream_model},
    mask_key,
};
use llm_http::validate_base;
pub use llm_http::{Limits, Timeouts};

use crate::response::{Step, Translator};

/// How a deployment authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum BedrockAuth {
    /// The standard AWS credential chain: environment variables, the shared config and
    /// credentials files (`profile`, default `AWS_PROFILE` / `default`), SSO, web identity,
    /// ECS and EC2 instance metadata; a Bedrock API key in `AWS_BEARER_TOKEN_BEDROCK` is
    /// used when set. The region comes from the chain when none is configured.
    DefaultChain {
        /// A named profile of the shared config files.
        profile: Option<String>,
    },
    /// Static keys of one account (an IAM user, or temporary credentials with a session
    /// token).
    StaticKeys {
        /// `AKIA…` / `ASIA…`.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: SecretString,
        /// The session token of temporary credentials.
        session_token: Option<SecretString>,
    },
    /// A Bedrock API key, sent as `Authorization: Bearer`.
    ApiKey(SecretString),
}

impl Default for BedrockAuth {
    fn default() -> Self {
        Self::DefaultChain { profile: None }
    }
}

impl fmt::Debug for BedrockAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DefaultChain { profile } => f
                .debug_struct("DefaultChain")
                .field("profile", profile)
                .finish(),
            Self::StaticKeys {
                access_key_id,
                secret_access_key,
                session_token,
            } => f
                .debug_struct("StaticKeys")
                .field(
                    "access_key_id",
                    &mask_key(&SecretString::from(access_key_id.as_str())),
                )
                .field("secret_access_key", &mask_key(secret_access_key))
                .field(
                    "session_token",
                    &session_token.as_ref().map(|_| "<redacted>"),
                )
                .finish(),
            Self::ApiKey(key) => f.debug_tuple("ApiKey").field(&mask_key(key)).finish(),
        }
    }
}

/// A Claude-on-Bedrock deployment.
///
/// ```
/// use llm_claude_bedrock::{BedrockAuth, ClaudeBedrockConfig};
///
/// let config = ClaudeBedrockConfig::new(BedrockAuth::ApiKey("ABSKQmVkcm9ja0FQSUtleS1zecret".into()));
/// assert!(!format!("{config:?}").contains("zecret"));
/// ```
#[derive(Debug, Clone)]
pub struct ClaudeBedrockConfig {
    /// The credentials.
    pub auth: BedrockAuth,
    /// The AWS region (`us-east-1`, …); required for static keys and API keys, else taken
    /// from the credential chain when unset.
    pub region: Option<String>,
    /// Overrides the endpoint (default `https://bedrock-runtime.{region}.amazonaws.com`).
    pub base_url: Option<String>,
    /// The model or inference-profile id sent upstream; overrides the request's `model`.
    pub model: Option<String>,
    /// The name used in logs, errors and status output (default `claude-bedrock`).
    pub name: Option<String>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Size bounds on non-streaming answers.
    pub limits: Limits,
}

impl ClaudeBedrockConfig {
    /// A configuration with `auth` and defaults for the rest.
    #[must_use]
    pub fn new(auth: BedrockAuth) -> Self {
        Self {
            auth,
            region: None,
            base_url: None,
            model: None,
            name: None,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
        }
    }

    /// The endpoint requests go to, for status output: the override, or the regional
    /// default (`None` when the region comes from the credential chain).
    #[must_use]
    pub fn endpoint(&self) -> Option<String> {
        self.base_url.clone().or_else(|| {
            self.region
                .as_ref()
                .map(|region| format!("https://bedrock-runtime.{region}.amazonaws.com"))
        })
    }
}

/// Claude on AWS Bedrock (Converse / ConverseStream).
///
/// ```
/// use llm_claude_bedrock::{BedrockAuth, ClaudeBedrockConfig, ClaudeBedrockProvider};
/// use llm_core::ChatProvider;
///
/// let provider = ClaudeBedrockProvider::new(ClaudeBedrockConfig {
///     region: Some("eu-west-1".into()),
///     ..ClaudeBedrockConfig::new(BedrockAuth::StaticKeys {
///         access_key_id: "AKIAEXAMPLE123456".into(),
///         secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzecret".into(),
///         session_token: None,
///     })
/// })?;
/// assert_eq!(provider.name(), "claude-bedrock");
/// assert!(!format!("{provider:?}").contains("zecret"));
/// # Ok::<_, llm_core::Error>(())
/// ```
pub struct ClaudeBedrockProvider {
    name: String,
    model: Option<String>,
    timeouts: Timeouts,
    limits: Limits,
    /// Built at once for static keys and API keys; on first use for the credential chain
    /// (loading it is async).
    client: tokio::sync::OnceCell<Client>,
    auth: BedrockAuth,
    region: Option<String>,
    base_url: Option<String>,
}

impl fmt::Debug for ClaudeBedrockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaudeBedrockProvider")
            .field("name", &self.name)
            .field("model", &self.model)
            .field("auth", &self.auth)
            .field("region", &self.region)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ClaudeBedrockProvider {
    /// A provider for `config`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) for static keys or an API key
    /// without a region, an empty key, or a base URL that is not `http(s)://host[/path]`.
    pub fn new(config: ClaudeBedrockConfig) -> Result<Self> {
        if let Some(base) = &config.base_url {
            validate_base(base)?;
        }
        if let Some(region) = &config.region
            && (region.is_empty()
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(Error::config(format!("region `{region}` is not valid")));
        }
        let provider = Self {
            name: config.name.unwrap_or_else(|| "claude-bedrock".to_owned()),
            model: config.model,
            timeouts: config.timeouts,
            limits: config.limits,
            client: tokio::sync::OnceCell::new(),
            auth: config.auth,
            region: config.region,
            base_url: config.base_url,
        };
        if let Some(builder) = provider.static_builder()? {
            let _ = provider.client.set(provider.finish(builder));
        }
        Ok(provider)
    }

    /// The SDK config builder for static keys and API keys (`None` for the chain).
    fn static_builder(&self) -> Result<Option<aws_sdk_bedrockruntime::config::Builder>> {
        let region = || {
            self.region
                .clone()
                .map(Region::new)
                .ok_or_else(|| Error::config("Claude on Bedrock with explicit keys needs a region"))
        };
        Ok(match &self.auth {
            BedrockAuth::DefaultChain { .. } => None,
            BedrockAuth::StaticKeys {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                if access_key_id.is_empty() || secret_access_key.expose_secret().is_empty() {
                    return Err(Error::config(
                        "Claude on Bedrock static keys need an access key id and a secret access key",
                    ));
                }
                Some(
                    aws_sdk_bedrockruntime::config::Builder::new()
                        .behavior_version(BehaviorVersion::latest())
                        .region(region()?)
                        .credentials_provider(Credentials::new(
                            access_key_id.clone(),
                            secret_access_key.expose_secret(),
                            session_token.as_ref().map(|t| t.expose_secret().to_owned()),
                            None,
                            "llm-factory",
                        )),
                )
            }
            BedrockAuth::ApiKey(key) => {
                if key.expose_secret().is_empty() {
                    return Err(Error::config("the Bedrock API key is empty"));
                }
                Some(
                    aws_sdk_bedrockruntime::config::Builder::new()
                        .behavior_version(BehaviorVersion::latest())
                        .region(region()?)
                        .bearer_token(Token::new(key.expose_secret(), None))
                        .auth_scheme_preference([
                            aws_smithy_runtime_api::client::auth::http::HTTP_BEARER_AUTH_SCHEME_ID,
                        ]),
                )
            }
        })
    }

    /// Our settings on top of a builder: no SDK retries (the router retries and fails
    /// over), no stalled-stream protection (the idle timeout is ours), the connect timeout,
    /// the endpoint override.
    fn finish(&self, mut builder: aws_sdk_bedrockruntime::config::Builder) -> Client {
        builder = builder
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.timeouts.connect)
                    .build(),
            );
        if let Some(base) = &self.base_url {
            builder = builder.endpoint_url(base.trim_end_matches('/'));
        }
        Client::from_conf(builder.build())
    }

    async fn client(&self) -> Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                let BedrockAuth::DefaultChain { profile } = &self.auth else {
                    // Built in `new` for every other kind of credentials.
                    return Err(Error::config("the Bedrock client was not built"));
                };
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(region) = &self.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(profile) = profile {
                    loader = loader.profile_name(profile);
                }
                let shared = loader.load().await;
                if shared.region().is_none() {
                    return Err(Error::config(
                        "Claude on Bedrock needs a region: set `region` on the entry, or AWS_REGION / a profile's region",
                    ));
                }
                Ok(self.finish(aws_sdk_bedrockruntime::config::Builder::from(&shared)))
            })
            .await
    }

    fn secrets(&self) -> Vec<&SecretString> {
        match &self.auth {
            BedrockAuth::DefaultChain { .. } => Vec::new(),
            BedrockAuth::StaticKeys {
                secret_access_key,
                session_token,
                ..
            } => std::iter::once(secret_access_key)
                .chain(session_token.as_ref())
                .collect(),
            BedrockAuth::ApiKey(key) => vec![key],
        }
    }

    /// The upstream model, the Converse input, and the sanitized → caller tool names.
    fn prepare<'a>(
        &'a self,
        request: &'a ChatRequest,
    ) -> Result<(&'a str, request::Converse, HashMap<String, String>)> {
        let model = upstream_model(self.model.as_deref(), request, &self.name)?;
        let mut converse = request::converse(request, &self.name)?;
        let names = std::mem::take(&mut converse.names);
        Ok((model, converse, names))
    }
}

/// The name a tool is declared under on Bedrock: `name` itself when it matches
/// `[a-zA-Z0-9_-]{1,64}`, else the allowed characters (others become `_`) cut to fit, with
/// a hash of the original appended. Answers give callers their own names back.
///
/// ```
/// assert_eq!(llm_claude_bedrock::bedrock_tool_name("get_weather"), "get_weather");
/// assert!(llm_claude_bedrock::bedrock_tool_name("mcp.github.search").starts_with("mcp_github_search_"));
/// ```
#[must_use]
pub fn bedrock_tool_name(name: &str) -> std::borrow::Cow<'_, str> {
    request::tool_name(name)
}

/// `work` within `limit` (none when the router enforces it), else a `phase` timeout.
async fn within<T>(
    limit: Duration,
    phase: TimeoutPhase,
    provider: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    llm_http::within(limit, work, || Error::Timeout {
        provider: provider.to_owned().into(),
        phase,
        after: limit,
    })
    .await
}

/// Bounds a non-streaming answer's body: the SDK reads it whole before parsing it.
#[derive(Debug)]
struct BodyLimit(usize);

impl Intercept for BodyLimit {
    fn name(&self) -> &'static str {
        "llm-claude-bedrock body limit"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> std::result::Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let body = context.response_mut().take_body();
        *context.response_mut().body_mut() =
            SdkBody::from_body_1_x(http_body_util::Limited::new(body, self.0));
        Ok(())
    }
}

/// Applies a [`Converse`](request::Converse) to a Converse or ConverseStream fluent
/// builder; `$guardrail` is the operation's guardrail type (they differ).
macro_rules! apply {
    ($builder:expr, $converse:expr, $guardrail:ty) => {{
        let c = $converse;
        $builder
            .set_messages(Some(c.messages))
            .set_system(c.system)
            .set_inference_config(c.inference)
            .set_tool_config(c.tools)
            .set_additional_model_request_fields(c.additional)
            .set_output_config(c.output)
            .set_performance_config(c.performance)
            .set_additional_model_response_field_paths(c.response_field_paths)
            .set_request_metadata(c.metadata)
            .set_guardrail_config(c.guardrail.map(|g| {
                <$guardrail>::builder()
                    .guardrail_identifier(g.identifier)
                    .guardrail_version(g.version)
                    .set_trace(g.trace)
                    .build()
            }))
    }};
}

#[async_trait]
impl ChatProvider for ClaudeBedrockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let (model, converse, names) = self.prepare(request)?;
        let secrets = self.secrets();
        let cx = errors::Context {
            provider: &self.name,
            secrets: &secrets,
            timeout: (TimeoutPhase::Total, self.timeouts.total),
        };
        within(
            self.timeouts.total,
            TimeoutPhase::Total,
            &self.name,
            async {
                let client = Box::pin(self.client()).await?;
                let call = apply!(
                    client.converse().model_id(model),
                    converse,
                    GuardrailConfiguration
                )
                .customize()
                .interceptor(BodyLimit(self.limits.max_body_bytes));
                let answer = Box::pin(call.send())
                    .await
                    .map_err(|e| errors::from_operation(&cx, e))?;
                let id = response::answer_id(answer.request_id());
                response::chat_response(answer, id, model, &names, &self.name)
            },
        )
        .await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let (model, converse, names) = self.prepare(request)?;
        let secrets = self.secrets();
        let cx = errors::Context {
            provider: &self.name,
            secrets: &secrets,
            timeout: (TimeoutPhase::FirstByte, self.timeouts.first_byte),
        };
        let output = within(
            self.timeouts.first_byte,
            TimeoutPhase::FirstByte,
            &self.name,
            async {
                let client = Box::pin(self.client()).await?;
                let call = apply!(
                    client.converse_stream().model_id(model),
                    converse,
                    GuardrailStreamConfiguration
                );
                Box::pin(call.send())
                    .await
                    .map_err(|e| errors::from_operation(&cx, e))
            },
        )
        .await?;
        let id = response::answer_id(output.request_id());
        let driver = Driver {
            receiver: output.stream,
            translator: Translator::new(self.name.clone(), id, model.to_owned(), names),
            outbox: Outbox::default(),
            idle: self.timeouts.idle,
            secrets: secrets.into_iter().cloned().collect(),
        };
        let stream: ChatStream = Box::pin(stream::unfold(driver, |mut driver| async move {
            let item = driver.next().await?;
            Some((item, driver))
        }));
        fail_before_first_chunk(stream).await
    }
}

/// Reads events off a ConverseStream and hands out chunks under the kit's rule (an
/// [`Outbox`]): in order, at most one error and nothing after it.
struct Driver {
    receiver: EventReceiver<ConverseStreamOutput, ConverseStreamOutputError>,
    translator: Translator,
    outbox: Outbox,
    idle: Duration,
    secrets: Vec<SecretString>,
}

impl Driver {
    async fn next(&mut self) -> Option<Result<ChatChunk>> {
        loop {
            match self.outbox.take() {
                Next::Item(item) => return Some(item),
                Next::End => return None,
                Next::More => self.advance().await,
            }
        }
    }

    async fn advance(&mut self) {
        let receiver = &mut self.receiver;
        let received = within(
            self.idle,
            TimeoutPhase::Idle,
            self.translator.provider(),
            async { Ok(receiver.recv().await) },
        )
        .await;
        let result = match received {
            Ok(result) => result,
            Err(timeout) => return self.outbox.fail(timeout),
        };
        match result {
            Ok(Some(event)) => match self.translator.on_event(event, &mut self.outbox.pending) {
                Ok(Step::More) => {}
                Ok(Step::Done) => self.outbox.finish(),
                Err(error) => self.outbox.fail(error),
            },
            Ok(None) => match self.translator.on_end() {
                Ok(()) => self.outbox.finish(),
                Err(error) => self.outbox.fail(error),
            },
            Err(error) => {
                let provider = self.translator.provider();
                let error = match error {
                    // The SDK reports a body that ends mid-frame, or a frame whose CRC
                    // fails, as a response error: the stream was cut or broken.
                    SdkError::ResponseError(_) => Error::protocol(
                        provider.to_owned(),
                        format!(
                            "the event stream was cut off or is malformed: {}",
                            aws_sdk_bedrockruntime::error::DisplayErrorContext(&error)
                        ),
                        None,
                    ),
                    other => {
                        let secrets: Vec<&SecretString> = self.secrets.iter().collect();
                        let cx = errors::Context {
                            provider,
                            secrets: &secrets,
                            timeout: (TimeoutPhase::Idle, self.idle),
                        };
                        errors::from_stream_exception(&cx, other)
                    }
                };
                self.outbox.fail(error);
            }
        }
    }
}

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
