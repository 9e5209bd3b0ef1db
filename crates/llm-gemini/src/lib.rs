//! Gemini for LLM Factory: Google AI Studio (the Gemini API, API key) and Vertex AI
//! (OAuth2 from `google-cloud-auth`: a service account per deployment, or Application
//! Default Credentials).
//!
//! - **AI Studio**: `{base}/{version}/models/{model}:generateContent` and
//!   `:streamGenerateContent?alt=sse`, base `https://generativelanguage.googleapis.com`,
//!   version `v1beta` (or `v1`); the key goes in the `x-goog-api-key` header, never in a URL.
//! - **Vertex AI**: `https://{location}-aiplatform.googleapis.com/v1/projects/{project}/
//!   locations/{location}/publishers/google/models/{model}:…` (`global` uses
//!   `aiplatform.googleapis.com`; the base can be overridden), `Authorization: Bearer` from
//!   the credentials, which cache and refresh tokens themselves.
//!
//! Mapping (both ways): system → `systemInstruction`; assistant → role `model`; tool
//! results → `functionResponse` parts, matched to their call by id (the name is looked up);
//! tools → `functionDeclarations` with their JSON Schema rewritten into what Gemini accepts
//! ([`schema`]); tool calls get stable ids that carry Gemini 3's thought signatures through
//! an OpenAI-shaped history; streamed parallel calls get distinct increasing indexes;
//! images as `inlineData` (data URLs) or `fileData` (`gs://`, `https://`); JSON mode →
//! `responseMimeType` / `responseSchema`; `thought: true` parts → `reasoning_content`;
//! finish reasons and usage (thoughts, cached tokens) as the crate docs of
//! [`GeminiProvider`] say; a blocked prompt is a `ContentFiltered` error; errors are
//! classified by `status` and `details[].reason` (an invalid key is a 400
//! `INVALID_ARGUMENT` / `API_KEY_INVALID`, and becomes Authentication).
//!
//! Unknown request fields (`safetySettings`, `cachedContent`, `labels`, …) are forwarded
//! into the body as they came, except OpenAI bookkeeping fields Gemini would refuse
//! (`store`, `metadata`, `service_tier`, …); `thinkingConfig` goes into `generationConfig`;
//! `reasoning_effort` becomes a `thinkingConfig`. `user` has no Gemini field and is not
//! sent; `logit_bias` is refused.
//!
//! ```no_run
//! use llm_core::{ChatProvider, ChatRequest};
//! use llm_gemini::{GeminiConfig, GeminiProvider};
//!
//! # async fn run() -> llm_core::Result<()> {
//! let provider = GeminiProvider::new(GeminiConfig {
//!     model: Some("gemini-2.5-flash".into()),
//!     ..GeminiConfig::api_key(std::env::var("GEMINI_API_KEY").unwrap_or_default())
//! })?;
//! let answer = provider.chat(&ChatRequest::from("Say hello")).await?;
//! println!("{}", answer.text().unwrap_or_default());
//! # Ok(())
//! # }
//! ```

mod errors;
mod ids;
mod request;
mod response;
pub mod schema;

use std::{fmt, path::PathBuf};

use async_trait::async_trait;
use google_cloud_auth::credentials::{CacheableResource, Credentials};
use http::{
    HeaderMap, HeaderName, HeaderValue,
    header::{ACCEPT, CONTENT_TYPE},
};
use llm_core::{
    ChatProvider, ChatRequest, ChatResponse, ChatStream, Error, ExposeSecret, Result, SecretString,
    kit::{fail_before_first_chunk, sse_chat_stream},
    mask_key,
};
pub use llm_http::{Limits, Timeouts};
use llm_http::{Target, Transport, http_client, reqwest, validate_base};

/// The Gemini API (AI Studio) host.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The OAuth2 scope Vertex AI needs.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where Vertex AI credentials come from.
#[derive(Clone)]
#[non_exhaustive]
pub enum VertexCredentials {
    /// Application Default Credentials: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file, or
    /// the metadata server.
    ApplicationDefault,
    /// A service-account key file (JSON).
    ServiceAccountFile(PathBuf),
    /// A service-account key held in memory (JSON text).
    ServiceAccountJson(SecretString),
}

impl fmt::Debug for VertexCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApplicationDefault => f.write_str("ApplicationDefault"),
            Self::ServiceAccountFile(path) => {
                f.debug_tuple("ServiceAccountFile").field(path).finish()
            }
            Self::ServiceAccountJson(_) => f.write_str("ServiceAccountJson(<redacted>)"),
        }
    }
}

/// How a deployment authenticates, which also picks the front door.
#[derive(Clone)]
#[non_exhaustive]
pub enum GeminiAuth {
    /// AI Studio with an API key (`x-goog-api-key`).
    ApiKey(SecretString),
    /// Vertex AI in `project` / `location`.
    Vertex {
        /// The Google Cloud project.
        project: String,
        /// The location (`us-central1`, `europe-west4`, `global`, …).
        location: String,
        /// The credentials.
        credentials: VertexCredentials,
    },
}

impl fmt::Debug for GeminiAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(key) => f.debug_tuple("ApiKey").field(&mask_key(key)).finish(),
            Self::Vertex {
                project,
                location,
                credentials,
            } => f
                .debug_struct("Vertex")
                .field("project", project)
                .field("location", location)
                .field("credentials", credentials)
                .finish(),
        }
    }
}

/// A Gemini deployment.
///
/// ```
/// use llm_gemini::GeminiConfig;
///
/// let config = GeminiConfig::api_key("AIzaSy0123456789abcdef");
/// assert!(!format!("{config:?}").contains("0123456789"));
/// ```
#[derive(Debug, Clone)]
pub struct GeminiConfig {
    /// The key, or Vertex AI's project, location and credentials.
    pub auth: GeminiAuth,
    /// The base URL: the host for AI Studio (default [`GEMINI_BASE_URL`]); for Vertex AI
    /// the regional endpoint by default.
    pub base_url: Option<String>,
    /// The API version: `v1beta` (AI Studio default) or `v1`; Vertex AI default `v1`.
    pub api_version: Option<String>,
    /// The model sent upstream; overrides the request's `model` when set.
    pub model: Option<String>,
    /// The name used in logs, errors and status output (default `gemini`).
    pub name: Option<String>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Size bounds on upstream answers.
    pub limits: Limits,
}

impl GeminiConfig {
    /// AI Studio with `api_key`.
    #[must_use]
    pub fn api_key(api_key: impl Into<String>) -> Self {
        Self::with_auth(GeminiAuth::ApiKey(SecretString::from(api_key.into())))
    }

    /// Vertex AI in `project` / `location` with `credentials`.
    #[must_use]
    pub fn vertex(
        project: impl Into<String>,
        location: impl Into<String>,
        credentials: VertexCredentials,
    ) -> Self {
        Self::with_auth(GeminiAuth::Vertex {
            project: project.into(),
            location: location.into(),
            credentials,
        })
    }

    fn with_auth(auth: GeminiAuth) -> Self {
        Self {
            auth,
            base_url: None,
            api_version: None,
            model: None,
            name: None,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
        }
    }

    /// The base URL requests go to: [`Self::base_url`], or the front door's default.
    #[must_use]
    pub fn base(&self) -> String {
        match (&self.base_url, &self.auth) {
            (Some(base), _) => base.trim_end_matches('/').to_owned(),
            (None, GeminiAuth::ApiKey(_)) => GEMINI_BASE_URL.to_owned(),
            (None, GeminiAuth::Vertex { location, .. }) if location == "global" => {
                "https://aiplatform.googleapis.com".to_owned()
            }
            (None, GeminiAuth::Vertex { location, .. }) => {
                format!("https://{location}-aiplatform.googleapis.com")
            }
        }
    }

    /// The URL prefix up to `models/`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) for an invalid base, version,
    /// project or location.
    pub fn endpoint(&self) -> Result<String> {
        let segment = |value: &str, field: &str| {
            if !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                Ok(())
            } else {
                Err(Error::config(format!("{field} `{value}` is not valid")))
            }
        };
        let base = self.base();
        match &self.auth {
            GeminiAuth::ApiKey(_) => {
                let base = validate_base(&base)?;
                let version = self.api_version.as_deref().unwrap_or("v1beta");
                segment(version, "api_version")?;
                Ok(format!("{base}/{version}/models/"))
            }
            GeminiAuth::Vertex {
                project, location, ..
            } => {
                segment(project, "project")?;
                segment(location, "location")?;
                let base = validate_base(&base)?;
                let version = self.api_version.as_deref().unwrap_or("v1");
                segment(version, "api_version")?;
                Ok(format!(
                    "{base}/{version}/projects/{project}/locations/{location}/publishers/google/models/"
                ))
            }
        }
    }
}

/// How requests are authenticated.
enum Auth {
    Key {
        key: SecretString,
        header: HeaderValue,
    },
    /// google-cloud-auth's credentials start a token-cache task when they are built, so
    /// they are built inside the runtime: at once when the provider is made in one, else on
    /// first use (the key is checked when the provider is made either way).
    Vertex {
        source: VertexCredentials,
        credentials: tokio::sync::OnceCell<Credentials>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key { key, .. } => f.debug_tuple("Key").field(&mask_key(key)).finish(),
            Self::Vertex { source, .. } => f.debug_tuple("Vertex").field(source).finish(),
        }
    }
}

/// Gemini on AI Studio or Vertex AI.
///
/// ```
/// use llm_core::ChatProvider;
/// use llm_gemini::{GeminiConfig, GeminiProvider};
///
/// let provider = GeminiProvider::new(GeminiConfig::api_key("AIzaSy0123456789abcdef"))?;
/// assert_eq!(provider.name(), "gemini");
/// assert!(!format!("{provider:?}").contains("0123456789"));
/// # Ok::<_, llm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct GeminiProvider {
    transport: Transport,
    auth: Auth,
    prefix: String,
    model: Option<String>,
    /// `:generateContent` and `:streamGenerateContent?alt=sse` for the configured model.
    urls: Option<(Target, Target)>,
}

impl GeminiProvider {
    /// A provider for `config`, with its own connection pool.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](llm_core::ErrorKind) for an invalid base URL, a key that
    /// cannot be sent as a header, unreadable or invalid credentials, or an HTTP client
    /// that cannot be built.
    pub fn new(config: GeminiConfig) -> Result<Self> {
        let http = http_client(&config.timeouts)?;
        Self::with_http_client(config, http)
    }

    /// A provider for `config` sharing `http`'s connection pool.
    ///
    /// # Errors
    ///
    /// As [`GeminiProvider::new`].
    pub fn with_http_client(
        config: GeminiConfig,
        http: impl Into<llm_http::HttpClient>,
    ) -> Result<Self> {
        let prefix = config.endpoint()?;
        let auth = match config.auth {
            GeminiAuth::ApiKey(key) => {
                let mut header = HeaderValue::try_from(key.expose_secret()).map_err(|_| {
                    Error::config("the API key contains characters not allowed in an HTTP header")
                })?;
                header.set_sensitive(true);
                Auth::Key { key, header }
            }
            GeminiAuth::Vertex { credentials, .. } => {
                let source = checked(credentials)?;
                let built = tokio::sync::OnceCell::new();
                if tokio::runtime::Handle::try_current().is_ok() {
                    let _ = built.set(vertex_credentials(&source)?);
                }
                Auth::Vertex {
                    source,
                    credentials: built,
                }
            }
        };
        let name = config.name.unwrap_or_else(|| "gemini".to_owned());
        let urls = config
            .model
            .as_deref()
            .map(|model| urls(&prefix, model))
            .transpose()?
            .map(|(chat, streamed)| (Target::from(chat), Target::from(streamed)));
        Ok(Self {
            transport: Transport::new(name, http, config.timeouts).with_limits(config.limits),
            auth,
            prefix,
            model: config.model,
            urls,
        })
    }

    fn model<'a>(&'a self, request: &'a ChatRequest) -> Result<&'a str> {
        llm_core::kit::upstream_model(self.model.as_deref(), request, self.transport.name())
    }

    fn secrets(&self) -> Vec<&SecretString> {
        match &self.auth {
            Auth::Key { key, .. } => vec![key],
            Auth::Vertex { .. } => Vec::new(),
        }
    }

    async fn headers(&self, stream: bool) -> Result<HeaderMap> {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        match &self.auth {
            Auth::Key { header, .. } => {
                headers.insert(HeaderName::from_static("x-goog-api-key"), header.clone());
            }
            Auth::Vertex {
                source,
                credentials,
            } => {
                let credentials = credentials
                    .get_or_try_init(|| async { vertex_credentials(source) })
                    .await?;
                let fetched = credentials
                    .headers(http::Extensions::new())
                    .await
                    .map_err(|e| {
                        // The library's errors name the source, never the token.
                        Error::from(llm_core::UpstreamError::new(
                            self.transport.name().to_owned(),
                            None,
                            llm_core::ErrorKind::Authentication,
                            format!("cannot get Google Cloud credentials: {e}"),
                        ))
                    })?;
                match fetched {
                    CacheableResource::New { data, .. } => {
                        for (name, value) in &data {
                            let mut value = value.clone();
                            value.set_sensitive(true);
                            headers.insert(name.clone(), value);
                        }
                    }
                    CacheableResource::NotModified => {
                        return Err(Error::config(
                            "Google Cloud credentials returned no headers",
                        ));
                    }
                }
            }
        }
        Ok(headers)
    }

    async fn send(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<llm_http::Response> {
        let body = request::body(request, model, self.transport.name())?;
        let body = serde_json::to_vec(&body).map_err(|e| {
            Error::invalid_request(format!("the request cannot be serialized: {e}"))
        })?;
        let url = match (&self.urls, self.model.as_deref()) {
            (Some((chat, streamed)), Some(configured)) if configured == model => {
                if stream {
                    streamed.clone()
                } else {
                    chat.clone()
                }
            }
            _ => {
                let (chat, streamed) = urls(&self.prefix, model)?;
                Target::from(if stream { streamed } else { chat })
            }
        };
        let headers = self.headers(stream).await?;
        let name = self.transport.name();
        let secrets = self.secrets();
        self.transport
            .post(url, headers, body, |status, headers, body| {
                errors::from_response(name, status, headers, body, &secrets)
            })
            .await
    }
}

/// The two URLs of `model` under `prefix`.
fn urls(prefix: &str, model: &str) -> Result<(reqwest::Url, reqwest::Url)> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if model.is_empty()
        || !model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
    {
        return Err(Error::invalid_request(format!(
            "`{model}` is not a Gemini model id"
        )));
    }
    let parse = |url: String| {
        reqwest::Url::parse(&url).map_err(|e| Error::config(format!("invalid Gemini URL: {e}")))
    };
    Ok((
        parse(format!("{prefix}{model}:generateContent"))?,
        parse(format!("{prefix}{model}:streamGenerateContent?alt=sse"))?,
    ))
}

/// The credentials with a key file read and every key checked to be a service-account key
/// (so a bad key fails when the provider is made, not on its first request).
fn checked(credentials: VertexCredentials) -> Result<VertexCredentials> {
    let json = match &credentials {
        VertexCredentials::ApplicationDefault => return Ok(credentials),
        VertexCredentials::ServiceAccountFile(path) => {
            SecretString::from(std::fs::read_to_string(path).map_err(|e| {
                Error::config(format!(
                    "cannot read the credentials file {}: {e}",
                    path.display()
                ))
            })?)
        }
        VertexCredentials::ServiceAccountJson(json) => json.clone(),
    };
    let value: serde_json::Value = serde_json::from_str(json.expose_secret()).map_err(|e| {
        Error::config(format!(
            "the service-account key is not JSON ({})",
            json_error_kind(&e)
        ))
    })?;
    let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    if field("type") != Some("service_account")
        || field("private_key").is_none()
        || field("client_email").is_none()
    {
        return Err(Error::config(
            "the credentials are not a service-account key (type service_account with private_key and client_email)",
        ));
    }
    Ok(VertexCredentials::ServiceAccountJson(json))
}

fn vertex_credentials(credentials: &VertexCredentials) -> Result<Credentials> {
    use google_cloud_auth::credentials::{self, service_account};

    let from_json = |json: &str| -> Result<Credentials> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            Error::config(format!(
                "the service-account key is not JSON ({})",
                json_error_kind(&e)
            ))
        })?;
        service_account::Builder::new(value)
            .with_access_specifier(service_account::AccessSpecifier::from_scopes([
                CLOUD_PLATFORM,
            ]))
            .build()
            .map_err(|e| Error::config(format!("invalid service-account key: {e}")))
    };
    match credentials {
        VertexCredentials::ApplicationDefault => credentials::Builder::default()
            .with_scopes([CLOUD_PLATFORM])
            .build()
            .map_err(|e| Error::config(format!("no Application Default Credentials: {e}"))),
        VertexCredentials::ServiceAccountFile(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::config(format!(
                    "cannot read the credentials file {}: {e}",
                    path.display()
                ))
            })?;
            from_json(&text)
        }
        VertexCredentials::ServiceAccountJson(json) => from_json(json.expose_secret()),
    }
}

/// What is wrong with a key file's JSON, without echoing its text (which holds a key).
fn json_error_kind(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "invalid syntax",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "cut off",
    }
}

#[async_trait]
impl ChatProvider for GeminiProvider {
    fn name(&self) -> &str {
        self.transport.name()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let model = self.model(request)?;
        // Pinned where it is made: the timeout's wrappers would copy the call's large
        // future on the way to its first poll.
        let call = std::pin::pin!(async {
            let response = self.send(request, model, false).await?;
            let body = self.transport.read_body(response).await?;
            response::parse_response(self.transport.name(), &body, model, &self.secrets())
        });
        self.transport.within_total(call).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let model = self.model(request)?;
        let response = self.send(request, model, true).await?;
        self.transport.expect_event_stream(&response)?;
        let translator = response::GeminiTranslator::new(
            self.transport.name().to_owned(),
            self.secrets().into_iter().cloned().collect(),
            model.to_owned(),
        );
        // A blocked prompt is a 200 stream whose one frame says so: fail the call.
        fail_before_first_chunk(sse_chat_stream(
            self.transport.body_stream(response),
            translator,
        ))
        .await
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
    fn front_door_urls() {
        let studio = GeminiConfig::api_key("k");
        assert_eq!(
            studio.endpoint().unwrap(),
            "https://generativelanguage.googleapis.com/v1beta/models/"
        );
        let v1 = GeminiConfig {
            api_version: Some("v1".into()),
            ..GeminiConfig::api_key("k")
        };
        assert_eq!(
            v1.endpoint().unwrap(),
            "https://generativelanguage.googleapis.com/v1/models/"
        );
        let vertex = GeminiConfig::vertex(
            "my-proj",
            "europe-west4",
            VertexCredentials::ApplicationDefault,
        );
        assert_eq!(
            vertex.endpoint().unwrap(),
            "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-proj/locations/europe-west4/publishers/google/models/"
        );
        let global = GeminiConfig::vertex("p", "global", VertexCredentials::ApplicationDefault);
        assert!(
            global
                .endpoint()
                .unwrap()
                .starts_with("https://aiplatform.googleapis.com/v1/projects/p/locations/global/")
        );
        let (chat, stream) = urls(&studio.endpoint().unwrap(), "models/gemini-2.5-flash").unwrap();
        assert_eq!(
            chat.as_str(),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(stream.query(), Some("alt=sse"));
        assert!(urls("https://x/", "../evil").is_err());
        let bad = GeminiConfig::vertex("p/../q", "us", VertexCredentials::ApplicationDefault);
        assert!(bad.endpoint().is_err());
    }
}
