//! OpenAI and Azure OpenAI error bodies → [`llm_core::Error`].
//!
//! Reference: <https://platform.openai.com/docs/guides/error-codes> and Azure OpenAI's
//! error envelope (same outer shape; `type` often null, `code` sometimes a numeric string).

use std::time::SystemTime;

use http::{HeaderMap, StatusCode};
use llm_core::{
    Error, ErrorKind, SecretString, UpstreamError,
    kit::{body_excerpt, scrub},
    retry_after,
};
use serde::Deserialize;
use serde_json::Value;

use crate::Endpoint;

/// What an OpenAI-shaped error said, for [`Endpoint::classify_error`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ErrorInfo<'a> {
    /// The HTTP status; `None` for an error frame inside a stream.
    pub status: Option<StatusCode>,
    /// `error.code` (a number is given as its text).
    pub code: Option<&'a str>,
    /// `error.type`.
    pub error_type: Option<&'a str>,
    /// `error.message`, as sent.
    pub message: &'a str,
}

/// `{"error": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub(crate) error: WireError,
}

/// The error object. Every field is optional: providers and proxies vary.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    param: Option<String>,
    /// A string, a number (Azure) or null.
    #[serde(default)]
    code: Option<Value>,
    /// Azure's inner error (`ResponsibleAIPolicyViolation` for content filtering).
    #[serde(default)]
    innererror: Option<Value>,
}

impl WireError {
    fn code(&self) -> Option<String> {
        match self.code.as_ref()? {
            Value::String(code) => Some(code.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }

    fn inner_code(&self) -> Option<&str> {
        self.innererror.as_ref()?.get("code")?.as_str()
    }
}

/// The kind for an error answer, from its status (`None` inside a stream) and body.
fn classify(status: Option<StatusCode>, error: &WireError, code: Option<&str>) -> ErrorKind {
    let kind = error.kind.as_deref();
    let message = error
        .message
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let is = |value: &str| code == Some(value) || kind == Some(value);
    if is("insufficient_quota") {
        ErrorKind::QuotaExhausted
    } else if is("context_length_exceeded")
        || message.contains("maximum context length")
        || message.contains("context window")
    {
        ErrorKind::ContextLengthExceeded
    } else if is("content_filter")
        || is("content_policy_violation")
        || error.inner_code() == Some("ResponsibleAIPolicyViolation")
    {
        ErrorKind::ContentFiltered
    } else if is("invalid_api_key") {
        ErrorKind::Authentication
    } else if is("model_not_found") || is("DeploymentNotFound") {
        ErrorKind::NotFound
    } else if let Some(status) = status {
        ErrorKind::from_http_status(status)
    } else if is("rate_limit_exceeded") || is("rate_limit_error") {
        ErrorKind::RateLimited
    } else if is("invalid_request_error") {
        ErrorKind::InvalidRequest
    } else {
        // An error frame inside a stream with nothing more precise: the server failed.
        ErrorKind::UpstreamServer
    }
}

fn build(
    endpoint: &dyn Endpoint,
    status: Option<StatusCode>,
    error: &WireError,
    fallback_message: &str,
    retry_after: Option<std::time::Duration>,
    secrets: &[&SecretString],
) -> Error {
    let provider = endpoint.name();
    let code = error.code();
    let kind = classify(status, error, code.as_deref());
    let kind = endpoint.classify_error(
        &ErrorInfo {
            status,
            code: code.as_deref(),
            error_type: error.kind.as_deref(),
            message: error.message.as_deref().unwrap_or(fallback_message),
        },
        kind,
    );
    let message = scrub(
        error.message.as_deref().unwrap_or(fallback_message),
        secrets,
    );
    let retry_after = match kind {
        // Quota exhaustion is not a wait: never pass a hint on.
        ErrorKind::QuotaExhausted => None,
        ErrorKind::RateLimited | ErrorKind::UpstreamServer => {
            retry_after.or_else(|| retry_after::from_message(&message))
        }
        _ => retry_after,
    };
    let mut upstream = UpstreamError::new(provider.to_owned(), status, kind, message);
    upstream.code = code;
    upstream.error_type = error.kind.clone();
    upstream.param = error.param.clone();
    upstream.retry_after = retry_after;
    Error::from(upstream)
}

/// An HTTP error answer.
pub(crate) fn from_response(
    endpoint: &dyn Endpoint,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SecretString],
) -> Error {
    let retry_after = retry_after::from_headers(headers, SystemTime::now());
    let error = serde_json::from_slice::<ErrorEnvelope>(body)
        .map(|envelope| envelope.error)
        .unwrap_or_default();
    // A proxy's plain-text or HTML page: keep a bounded, readable piece of it.
    let fallback = body_excerpt(body, status);
    build(
        endpoint,
        Some(status),
        &error,
        &fallback,
        retry_after,
        secrets,
    )
}

/// An `{"error": ...}` frame inside a successful stream.
pub(crate) fn in_band(
    endpoint: &dyn Endpoint,
    error: &WireError,
    secrets: &[&SecretString],
) -> Error {
    build(endpoint, None, error, "error in stream", None, secrets)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderValue;

    use super::*;
    use crate::{BearerEndpoint, OpenAiConfig};

    fn openai() -> BearerEndpoint {
        BearerEndpoint::openai(&OpenAiConfig::new("sk-test-0000")).unwrap()
    }

    fn err(status: u16, body: &str, headers: &[(&'static str, &str)]) -> Error {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        from_response(
            &openai(),
            StatusCode::from_u16(status).unwrap(),
            &map,
            body.as_bytes(),
            &[],
        )
    }

    #[test]
    fn documented_bodies() {
        let cases = [
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
                ErrorKind::ContextLengthExceeded,
            ),
            (
                400,
                r#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#,
                ErrorKind::InvalidRequest,
            ),
            (
                400,
                r#"{"error":{"message":"The response was filtered","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#,
                ErrorKind::ContentFiltered,
            ),
            (
                401,
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
                ErrorKind::Authentication,
            ),
            (
                401,
                r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key"}}"#,
                ErrorKind::Authentication,
            ),
            (
                403,
                r#"{"error":{"message":"Country, region, or territory not supported","type":"invalid_request_error","code":"unsupported_country_region_territory"}}"#,
                ErrorKind::Permission,
            ),
            (
                404,
                r#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#,
                ErrorKind::NotFound,
            ),
            (
                404,
                r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#,
                ErrorKind::NotFound,
            ),
            (
                429,
                r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
                ErrorKind::RateLimited,
            ),
            (
                429,
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
                ErrorKind::QuotaExhausted,
            ),
            (
                500,
                r#"{"error":{"message":"The server had an error","type":"server_error","code":null}}"#,
                ErrorKind::UpstreamServer,
            ),
            (
                503,
                r#"{"error":{"message":"The engine is currently overloaded","type":"service_unavailable_error","code":"server_is_overloaded"}}"#,
                ErrorKind::UpstreamServer,
            ),
            (
                502,
                "<html><body>Bad gateway</body></html>",
                ErrorKind::UpstreamServer,
            ),
            (413, "", ErrorKind::InvalidRequest),
        ];
        for (status, body, kind) in cases {
            let error = err(status, body, &[]);
            assert_eq!(error.kind(), kind, "{status} {body}");
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn upstream_fields_are_kept() {
        let error = err(
            400,
            r#"{"error":{"message":"Too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            &[],
        );
        let upstream = error.upstream().unwrap();
        assert_eq!(upstream.message, "Too long");
        assert_eq!(upstream.param.as_deref(), Some("messages"));
        assert_eq!(
            upstream.error_type.as_deref(),
            Some("invalid_request_error")
        );
        assert_eq!(error.code(), Some("context_length_exceeded"));
        assert_eq!(
            error.to_string(),
            "openai returned HTTP 400 (context_length_exceeded): Too long"
        );
    }

    #[test]
    fn azure_rate_limit_hint_in_message_when_no_header() {
        let body = r#"{"error":{"code":"429","message":"Requests have exceeded token rate limit. Please retry after 7 seconds."}}"#;
        assert_eq!(
            err(429, body, &[]).retry_after(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            err(429, body, &[("retry-after-ms", "7250")]).retry_after(),
            Some(Duration::from_millis(7250))
        );
        let quota = r#"{"error":{"message":"You exceeded your current quota, please try again in 20s","code":"insufficient_quota"}}"#;
        assert_eq!(
            err(429, quota, &[("retry-after", "20")]).retry_after(),
            None
        );
    }

    #[test]
    fn in_band_errors() {
        let frame: ErrorEnvelope = serde_json::from_str(r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}"#).unwrap();
        let error = in_band(&openai(), &frame.error, &[]);
        assert_eq!(error.kind(), ErrorKind::UpstreamServer);
        assert_eq!(error.upstream().unwrap().status, None);
        let limited: ErrorEnvelope = serde_json::from_str(
            r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#,
        )
        .unwrap();
        assert_eq!(
            in_band(&openai(), &limited.error, &[]).kind(),
            ErrorKind::RateLimited
        );
    }

    #[test]
    fn echoed_keys_are_scrubbed() {
        let key = SecretString::from("sk-live-VERYSECRET-abcd");
        let error = from_response(
            &openai(),
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            br#"{"error":{"message":"Incorrect API key provided: sk-live-VERYSECRET-abcd"}}"#,
            &[&key],
        );
        assert!(!error.to_string().contains("VERYSECRET"), "{error}");
        assert!(error.to_string().contains("sk-…abcd"), "{error}");
    }
}
