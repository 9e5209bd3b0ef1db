//! DashScope error codes → [`ErrorKind`], for both the native API and compatible mode.
//!
//! Reference: Alibaba Cloud Model Studio "error codes". The native body is
//! `{"code": "<Code>", "message": "…", "request_id": "…"}`; compatible mode uses the OpenAI
//! envelope with the same codes (native spelling or snake_case) in `error.code`.

use std::time::SystemTime;

use http::{HeaderMap, StatusCode};
use llm_core::{
    Error, ErrorKind, SecretString, UpstreamError,
    kit::{body_excerpt, scrub},
    retry_after,
};
use serde::Deserialize;

/// The kind a DashScope error code stands for, when the code alone decides it.
pub(crate) fn kind_of_code(code: &str, message: &str) -> Option<ErrorKind> {
    let lower = message.to_ascii_lowercase();
    Some(match code {
        "InvalidApiKey" | "invalid_api_key" => ErrorKind::Authentication,
        // An overdue bill (HTTP 400) and a used-up allocation (HTTP 429) are not waits.
        "Arrearage" | "arrearage" | "Throttling.AllocationQuota" | "insufficient_quota" => {
            ErrorKind::QuotaExhausted
        }
        "DataInspectionFailed" | "data_inspection_failed" => ErrorKind::ContentFiltered,
        "ModelNotFound" | "model_not_found" | "WorkSpaceNotFound" => ErrorKind::NotFound,
        code if code.starts_with("Throttling") || code == "rate_limit_exceeded" => {
            ErrorKind::RateLimited
        }
        code if code.starts_with("AccessDenied")
            || code.ends_with(".AccessDenied")
            || code == "access_denied" =>
        {
            ErrorKind::Permission
        }
        code if code.starts_with("InternalError")
            || code.starts_with("ServiceUnavailable")
            || code == "internal_error" =>
        {
            ErrorKind::UpstreamServer
        }
        "InvalidParameter" | "invalid_parameter" | "invalid_parameter_error"
            if lower.contains("input length")
                || lower.contains("context length")
                || lower.contains("too long")
                || lower.contains("max input") =>
        {
            ErrorKind::ContextLengthExceeded
        }
        code if code.starts_with("InvalidParameter")
            || code.starts_with("BadRequest")
            || code == "InvalidURL"
            || code == "invalid_request_error" =>
        {
            ErrorKind::InvalidRequest
        }
        _ => return None,
    })
}

/// The native error body (also the data of an `event:error` stream frame).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NativeError {
    #[serde(default)]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
}

/// Build the error for a native error body; `status` is `None` inside a stream.
pub(crate) fn native(
    provider: &str,
    status: Option<StatusCode>,
    headers: Option<&HeaderMap>,
    error: &NativeError,
    fallback: &str,
    secrets: &[&SecretString],
) -> Error {
    let message = scrub(error.message.as_deref().unwrap_or(fallback), secrets);
    let code = error.code.as_deref().unwrap_or_default();
    let kind = kind_of_code(code, &message).unwrap_or_else(|| match status {
        Some(status) => ErrorKind::from_http_status(status),
        None => ErrorKind::UpstreamServer,
    });
    let retry_after = match kind {
        ErrorKind::RateLimited | ErrorKind::UpstreamServer => headers
            .and_then(|h| retry_after::from_headers(h, SystemTime::now()))
            .or_else(|| retry_after::from_message(&message)),
        _ => None,
    };
    let mut upstream = UpstreamError::new(provider.to_owned(), status, kind, message);
    upstream.code = error.code.clone();
    upstream.retry_after = retry_after;
    if let Some(id) = &error.request_id {
        tracing::debug!(provider, request_id = %id, code, "dashscope error");
    }
    Error::from(upstream)
}

/// A native HTTP error answer.
pub(crate) fn from_response(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SecretString],
) -> Error {
    let error = serde_json::from_slice::<NativeError>(body).unwrap_or_default();
    native(
        provider,
        Some(status),
        Some(headers),
        &error,
        &body_excerpt(body, status),
        secrets,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code() {
        let cases = [
            (
                "InvalidApiKey",
                "Invalid API-key provided.",
                ErrorKind::Authentication,
            ),
            (
                "Throttling",
                "Requests throttling triggered.",
                ErrorKind::RateLimited,
            ),
            (
                "Throttling.RateQuota",
                "Requests rate limit exceeded",
                ErrorKind::RateLimited,
            ),
            (
                "Throttling.AllocationQuota",
                "Allocated quota exceeded",
                ErrorKind::QuotaExhausted,
            ),
            (
                "Arrearage",
                "Access denied, please make sure your account is in good standing.",
                ErrorKind::QuotaExhausted,
            ),
            (
                "DataInspectionFailed",
                "Input data may contain inappropriate content.",
                ErrorKind::ContentFiltered,
            ),
            (
                "data_inspection_failed",
                "Output data may contain inappropriate content.",
                ErrorKind::ContentFiltered,
            ),
            (
                "InvalidParameter",
                "Required parameter(s) missing or invalid",
                ErrorKind::InvalidRequest,
            ),
            (
                "InvalidParameter",
                "url error, please check url",
                ErrorKind::InvalidRequest,
            ),
            (
                "InvalidParameter",
                "Range of input length should be [1, 129024]",
                ErrorKind::ContextLengthExceeded,
            ),
            ("BadRequest.EmptyInput", "", ErrorKind::InvalidRequest),
            ("BadRequest.EmptyModel", "", ErrorKind::InvalidRequest),
            ("InvalidURL", "", ErrorKind::InvalidRequest),
            ("AccessDenied", "", ErrorKind::Permission),
            ("AccessDenied.Unpurchased", "", ErrorKind::Permission),
            ("Model.AccessDenied", "", ErrorKind::Permission),
            ("Workspace.AccessDenied", "", ErrorKind::Permission),
            ("ModelNotFound", "", ErrorKind::NotFound),
            ("WorkSpaceNotFound", "", ErrorKind::NotFound),
            ("InternalError", "", ErrorKind::UpstreamServer),
            ("InternalError.Algo", "", ErrorKind::UpstreamServer),
            ("InternalError.Timeout", "", ErrorKind::UpstreamServer),
            ("ServiceUnavailable", "", ErrorKind::UpstreamServer),
        ];
        for (code, message, kind) in cases {
            assert_eq!(kind_of_code(code, message), Some(kind), "{code} {message}");
        }
        assert_eq!(kind_of_code("SomethingNew", ""), None);
    }

    #[test]
    fn unknown_codes_fall_back_to_the_status_and_keys_are_scrubbed() {
        let key = SecretString::from("sk-PLANTED-qwen-0123456789");
        let error = from_response(
            "qwen",
            StatusCode::SERVICE_UNAVAILABLE,
            &HeaderMap::new(),
            br#"{"code":"Overloaded.New","message":"busy for sk-PLANTED-qwen-0123456789","request_id":"r"}"#,
            &[&key],
        );
        assert_eq!(error.kind(), ErrorKind::UpstreamServer);
        assert!(!error.to_string().contains("PLANTED"), "{error}");
        let proxy = from_response(
            "qwen",
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html>bad</html>",
            &[],
        );
        assert!(proxy.to_string().contains("<html>bad</html>"), "{proxy}");
    }
}
