//! Where and how an OpenAI-compatible request is sent: the one seam between OpenAI, Azure
//! OpenAI and the OpenAI-compatible providers (DeepSeek, Qwen compatible mode).

use std::{borrow::Cow, fmt};

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, header::AUTHORIZATION};
use llm_core::{
    ChatChunk, ChatRequest, ChatResponse, Error, ErrorKind, ExposeSecret, Extra, Message, Result,
    SecretString,
};

use crate::{
    config::{AzureAuth, AzureOpenAiConfig, OpenAiConfig},
    error::ErrorInfo,
};

/// An OpenAI-compatible endpoint: its URL, its auth headers and what its body carries.
///
/// Implement it for another OpenAI-compatible service and hand it to
/// [`OpenAiCompatClient::new`](crate::OpenAiCompatClient::new). The required methods say
/// where and how to send; the default methods are the hooks where compatible flavours
/// differ (DeepSeek and Qwen's compatible mode use them): a request check, rewritten
/// messages, extra body fields, error classification, and chunk / response fix-ups.
#[async_trait]
pub trait Endpoint: Send + Sync + fmt::Debug {
    /// The name used in logs, errors and status output.
    fn name(&self) -> &str;

    /// The chat-completions URL for `model` (the upstream model or deployment name).
    fn chat_url(&self, model: &str) -> String;

    /// Write the authentication (and any fixed) headers. Header values made from secrets
    /// must be marked sensitive.
    ///
    /// # Errors
    ///
    /// When a credential cannot be obtained or is not a valid header value.
    async fn write_headers(&self, headers: &mut HeaderMap) -> Result<()>;

    /// Secrets to scrub from upstream error messages before they are kept.
    fn secrets(&self) -> Vec<&SecretString>;

    /// Whether streamed requests may carry `stream_options.include_usage`.
    fn supports_stream_usage(&self) -> bool {
        true
    }

    /// Refuse what this flavour cannot express, before anything is sent.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRequest`] saying what is not supported.
    fn check_request(&self, request: &ChatRequest, model: &str) -> Result<()> {
        let _ = (request, model);
        Ok(())
    }

    /// The messages to send when they must differ from the request's (a flavour that needs
    /// a field replayed or removed). Return only the changed messages owned; `None` sends
    /// the request's messages as they are, with no copy.
    fn messages<'a>(&self, request: &'a ChatRequest, model: &str) -> Option<Vec<Cow<'a, Message>>> {
        let _ = (request, model);
        None
    }

    /// Top-level body fields this flavour adds; they win over the request's pass-through
    /// fields of the same name.
    fn extra_body(&self, request: &ChatRequest, model: &str, stream: bool) -> Option<Extra> {
        let _ = (request, model, stream);
        None
    }

    /// The kind of an error answer, given what the generic OpenAI classification chose.
    fn classify_error(&self, error: &ErrorInfo<'_>, kind: ErrorKind) -> ErrorKind {
        let _ = error;
        kind
    }

    /// Adjust a streamed chunk (usage fields, finish reasons) before it is passed on.
    fn fix_chunk(&self, chunk: &mut ChatChunk) {
        let _ = chunk;
    }

    /// Adjust a complete answer before it is returned.
    fn fix_response(&self, response: &mut ChatResponse) {
        let _ = response;
    }

    /// Whether a whole answer may be passed on as the upstream wrote it, when its bytes
    /// hold exactly what reading it would give (see
    /// [`ChatProvider::chat_json`](llm_core::ChatProvider::chat_json)). Only for a flavour
    /// whose [`Endpoint::fix_response`] changes nothing; `false` by default.
    fn relays_answers(&self) -> bool {
        false
    }
}

/// Check a base URL and return it without a trailing slash: `http(s)://host[/path]`, no
/// query, fragment or credentials.
///
/// # Errors
///
/// [`ErrorKind::Configuration`] naming `field` and what is wrong.
pub fn validate_base_url<'a>(base: &'a str, field: &str) -> Result<&'a str> {
    validate_base(base, field)
}

/// A header value made from a secret, marked sensitive so it is never logged.
///
/// # Errors
///
/// [`ErrorKind::Configuration`](llm_core::ErrorKind) when the secret contains characters a
/// header cannot carry (the secret itself is not in the message).
pub fn secret_header(prefix: &str, secret: &SecretString) -> Result<HeaderValue> {
    let mut value =
        HeaderValue::try_from(format!("{prefix}{}", secret.expose_secret())).map_err(|_| {
            Error::config("the API key contains characters not allowed in an HTTP header")
        })?;
    value.set_sensitive(true);
    Ok(value)
}

fn plain_header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue)> {
    let value = HeaderValue::try_from(value)
        .map_err(|_| Error::config(format!("`{name}` is not a valid HTTP header value")))?;
    Ok((HeaderName::from_static(name), value))
}

/// An OpenAI-compatible endpoint at `{base}/chat/completions` with `Authorization: Bearer`
/// and optional fixed headers: the OpenAI API itself, and the part a compatible flavour
/// (DeepSeek, Qwen's compatible mode) shares with it — embed one and delegate the required
/// [`Endpoint`] methods to it, overriding only the hooks the flavour needs.
///
/// ```
/// use llm_core::SecretString;
/// use llm_openai::{BearerEndpoint, Endpoint};
///
/// let endpoint = BearerEndpoint::new("acme", "https://api.acme.example/v1/", &SecretString::from("sk-0123456789"))?
///     .with_header("x-acme-team", "research")?;
/// assert_eq!(endpoint.chat_url("any"), "https://api.acme.example/v1/chat/completions");
/// assert!(!format!("{endpoint:?}").contains("0123456789"));
/// # Ok::<_, llm_core::Error>(())
/// ```
#[derive(Debug)]
pub struct BearerEndpoint {
    name: String,
    url: String,
    auth: HeaderValue,
    key: SecretString,
    fixed: Vec<(HeaderName, HeaderValue)>,
}

impl BearerEndpoint {
    /// `name` at `{base}/chat/completions`, authenticated with `key`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] for an invalid base URL or a key that cannot be sent
    /// as a header.
    pub fn new(name: impl Into<String>, base: &str, key: &SecretString) -> Result<Self> {
        let base = validate_base(base, "base_url")?;
        Ok(Self {
            name: name.into(),
            url: format!("{base}/chat/completions"),
            auth: secret_header("Bearer ", key)?,
            key: key.clone(),
            fixed: Vec::new(),
        })
    }

    /// The same endpoint sending `name: value` on every request.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`] when `value` is not a valid header value.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Result<Self> {
        self.fixed.push(plain_header(name, value)?);
        Ok(self)
    }

    /// The OpenAI API of `config`.
    pub(crate) fn openai(config: &OpenAiConfig) -> Result<Self> {
        let name = config.name.clone().unwrap_or_else(|| "openai".to_owned());
        let mut endpoint = Self::new(name, &config.base_url, &config.api_key)?;
        if let Some(org) = &config.organization {
            endpoint = endpoint.with_header("openai-organization", org)?;
        }
        if let Some(project) = &config.project {
            endpoint = endpoint.with_header("openai-project", project)?;
        }
        Ok(endpoint)
    }
}

#[async_trait]
impl Endpoint for BearerEndpoint {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat_url(&self, _model: &str) -> String {
        self.url.clone()
    }

    async fn write_headers(&self, headers: &mut HeaderMap) -> Result<()> {
        headers.insert(AUTHORIZATION, self.auth.clone());
        for (name, value) in &self.fixed {
            headers.insert(name.clone(), value.clone());
        }
        Ok(())
    }

    fn secrets(&self) -> Vec<&SecretString> {
        vec![&self.key]
    }

    fn relays_answers(&self) -> bool {
        true
    }
}

/// Azure OpenAI: the classic deployments path with `api-version`, or the v1 path.
#[derive(Debug)]
pub(crate) struct AzureEndpoint {
    name: String,
    base: String,
    deployment: Option<String>,
    api_version: Option<String>,
    auth: AzureAuth,
    /// Prepared header for key and fixed-token auth.
    header: Option<(HeaderName, HeaderValue)>,
}

impl AzureEndpoint {
    pub(crate) fn new(config: &AzureOpenAiConfig) -> Result<Self> {
        let base = validate_base(&config.endpoint, "endpoint")?;
        if let Some(version) = &config.api_version
            && (version.is_empty()
                || !version
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return Err(Error::config(format!(
                "api_version `{version}` is not a valid Azure OpenAI API version"
            )));
        }
        let header = match &config.auth {
            AzureAuth::ApiKey(key) => {
                Some((HeaderName::from_static("api-key"), secret_header("", key)?))
            }
            AzureAuth::EntraToken(token) => Some((AUTHORIZATION, secret_header("Bearer ", token)?)),
            AzureAuth::TokenProvider(_) => None,
        };
        Ok(Self {
            name: config
                .name
                .clone()
                .unwrap_or_else(|| "azure-openai".to_owned()),
            base: base.to_owned(),
            deployment: config.deployment.clone(),
            api_version: config.api_version.clone(),
            auth: config.auth.clone(),
            header,
        })
    }
}

#[async_trait]
impl Endpoint for AzureEndpoint {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat_url(&self, model: &str) -> String {
        match &self.api_version {
            Some(version) => {
                let deployment = self.deployment.as_deref().unwrap_or(model);
                format!(
                    "{}/openai/deployments/{}/chat/completions?api-version={version}",
                    self.base,
                    encode_path_segment(deployment)
                )
            }
            None => format!("{}/openai/v1/chat/completions", self.base),
        }
    }

    async fn write_headers(&self, headers: &mut HeaderMap) -> Result<()> {
        match (&self.header, &self.auth) {
            (Some((name, value)), _) => {
                headers.insert(name.clone(), value.clone());
            }
            (None, AzureAuth::TokenProvider(provider)) => {
                let token = provider.token().await?;
                headers.insert(AUTHORIZATION, secret_header("Bearer ", &token)?);
            }
            (None, AzureAuth::ApiKey(_) | AzureAuth::EntraToken(_)) => {
                return Err(Error::config("azure credential header was not prepared"));
            }
        }
        Ok(())
    }

    fn secrets(&self) -> Vec<&SecretString> {
        match &self.auth {
            AzureAuth::ApiKey(secret) | AzureAuth::EntraToken(secret) => vec![secret],
            AzureAuth::TokenProvider(_) => Vec::new(),
        }
    }

    fn supports_stream_usage(&self) -> bool {
        // `stream_options` arrived with API version 2024-09-01-preview; older versions
        // reject the field. Versions are dates, so they compare as strings.
        self.api_version
            .as_deref()
            .is_none_or(|version| version.get(..10).is_some_and(|date| date >= "2024-09-01"))
    }

    fn relays_answers(&self) -> bool {
        true
    }
}

/// Check a base URL and return it without a trailing slash.
fn validate_base<'a>(base: &'a str, field: &str) -> Result<&'a str> {
    let trimmed = base.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| {
            Error::config(format!(
                "{field} `{base}` must start with https:// or http://"
            ))
        })?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err(Error::config(format!("{field} `{base}` has no host")));
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(Error::config(format!(
            "{field} `{base}` must not contain a query or fragment"
        )));
    }
    if rest
        .split('/')
        .next()
        .is_some_and(|host| host.contains('@'))
    {
        return Err(Error::config(format!(
            "{field} must not carry credentials in the URL; use the key setting"
        )));
    }
    Ok(trimmed)
}

/// Percent-encode a path segment (deployment names are user-chosen).
fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_validated() {
        assert_eq!(
            validate_base("https://api.openai.com/v1/", "b").unwrap(),
            "https://api.openai.com/v1"
        );
        for bad in [
            "api.openai.com",
            "https://",
            "ftp://x",
            "https://a b",
            "https://x/v1?k=1",
            "https://user:pw@host",
        ] {
            let err = validate_base(bad, "base_url").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{bad}");
            if bad.contains("pw") {
                assert!(!err.to_string().contains("pw"), "{err}");
            }
        }
    }

    #[test]
    fn azure_paths() {
        let mut config =
            AzureOpenAiConfig::with_key("https://contoso.openai.azure.com/", "0123456789abcdef");
        config.api_version = Some("2024-10-21".into());
        let classic = AzureEndpoint::new(&config).unwrap();
        assert_eq!(
            classic.chat_url("gpt 4o"),
            "https://contoso.openai.azure.com/openai/deployments/gpt%204o/chat/completions?api-version=2024-10-21"
        );
        assert!(classic.supports_stream_usage());
        config.api_version = Some("2024-02-15-preview".into());
        assert!(!AzureEndpoint::new(&config).unwrap().supports_stream_usage());
        config.api_version = None;
        let v1 = AzureEndpoint::new(&config).unwrap();
        assert_eq!(
            v1.chat_url("x"),
            "https://contoso.openai.azure.com/openai/v1/chat/completions"
        );
        config.api_version = Some("2024-10-21&evil=1".into());
        assert!(AzureEndpoint::new(&config).is_err());
    }

    #[test]
    fn secret_headers_are_sensitive_and_checked() {
        let value = secret_header("Bearer ", &SecretString::from("sk-abc")).unwrap();
        assert!(value.is_sensitive());
        let err = secret_header("", &SecretString::from("bad\nkey-SECRET")).unwrap_err();
        assert!(!err.to_string().contains("SECRET"));
    }
}
