//! Configuration of the OpenAI and Azure OpenAI providers.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use llm_core::{Result, SecretString, mask_key};
pub use llm_http::{Limits, Timeouts};

/// The public OpenAI API.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// An OpenAI deployment (also any server that speaks the OpenAI API with Bearer keys).
///
/// ```
/// use llm_openai::OpenAiConfig;
///
/// let config = OpenAiConfig {
///     model: Some("gpt-4o".into()),
///     ..OpenAiConfig::new("sk-proj-0123456789abcdef")
/// };
/// assert!(!format!("{config:?}").contains("0123456789"));
/// ```
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The API key, sent as `Authorization: Bearer`.
    pub api_key: SecretString,
    /// The API base, up to and including `/v1`.
    pub base_url: String,
    /// The model sent upstream; overrides the request's `model` when set.
    pub model: Option<String>,
    /// `OpenAI-Organization` header.
    pub organization: Option<String>,
    /// `OpenAI-Project` header.
    pub project: Option<String>,
    /// The name used in logs, errors and status output (default `openai`).
    pub name: Option<String>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Size bounds on upstream answers.
    pub limits: Limits,
}

impl OpenAiConfig {
    /// A config for the public OpenAI API with `api_key`.
    #[must_use]
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: SecretString::from(api_key.into()),
            base_url: OPENAI_BASE_URL.to_owned(),
            model: None,
            organization: None,
            project: None,
            name: None,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("api_key", &mask_key(&self.api_key))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("organization", &self.organization)
            .field("project", &self.project)
            .field("name", &self.name)
            .field("timeouts", &self.timeouts)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Supplies Microsoft Entra ID bearer tokens (for example from `azure_identity`), asked
/// before every request so the supplier can cache and refresh.
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// A currently valid token for the scope `https://cognitiveservices.azure.com/.default`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Authentication`](llm_core::ErrorKind) or
    /// [`ErrorKind::Connection`](llm_core::ErrorKind) when no token can be had.
    async fn token(&self) -> Result<SecretString>;
}

/// How to authenticate to Azure OpenAI.
#[derive(Clone)]
#[non_exhaustive]
pub enum AzureAuth {
    /// A resource key, sent as the `api-key` header.
    ApiKey(SecretString),
    /// A fixed Entra ID token, sent as `Authorization: Bearer`.
    EntraToken(SecretString),
    /// Entra ID tokens from a supplier, sent as `Authorization: Bearer`.
    TokenProvider(Arc<dyn TokenProvider>),
}

impl fmt::Debug for AzureAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(key) => f.debug_tuple("ApiKey").field(&mask_key(key)).finish(),
            Self::EntraToken(token) => f.debug_tuple("EntraToken").field(&mask_key(token)).finish(),
            Self::TokenProvider(provider) => {
                f.debug_tuple("TokenProvider").field(provider).finish()
            }
        }
    }
}

/// An Azure OpenAI deployment.
///
/// With `api_version` set, requests go to the classic path
/// `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`; without it,
/// to the v1 path `{endpoint}/openai/v1/chat/completions`, which needs no version and takes
/// the deployment name as `model` in the body.
///
/// ```
/// use llm_openai::AzureOpenAiConfig;
///
/// let config = AzureOpenAiConfig {
///     deployment: Some("gpt-4o-prod".into()),
///     api_version: Some("2024-10-21".into()),
///     ..AzureOpenAiConfig::with_key("https://contoso.openai.azure.com", "0123456789abcdef0123")
/// };
/// assert!(!format!("{config:?}").contains("456789abcdef"));
/// ```
#[derive(Debug, Clone)]
pub struct AzureOpenAiConfig {
    /// The resource endpoint, such as `https://contoso.openai.azure.com`.
    pub endpoint: String,
    /// Key or Entra ID.
    pub auth: AzureAuth,
    /// The deployment; defaults to the model (config, then request).
    pub deployment: Option<String>,
    /// The API version for the classic path; `None` selects the v1 path.
    pub api_version: Option<String>,
    /// The model name reported when the upstream reports none; also the deployment default.
    pub model: Option<String>,
    /// The name used in logs, errors and status output (default `azure-openai`).
    pub name: Option<String>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Size bounds on upstream answers.
    pub limits: Limits,
}

impl AzureOpenAiConfig {
    /// A config for `endpoint` authenticated with a resource key.
    #[must_use]
    pub fn with_key(endpoint: impl Into<String>, api_key: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            auth: AzureAuth::ApiKey(SecretString::from(api_key.into())),
            deployment: None,
            api_version: None,
            model: None,
            name: None,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
        }
    }
}
