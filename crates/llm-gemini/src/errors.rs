//! Gemini (and Vertex AI) error bodies → [`llm_core::Error`].
//!
//! Body: `{"error": {"code", "message", "status", "details": [...]}}` (sometimes wrapped in a
//! one-element array). Classified by `status` and the details' `reason`, not the HTTP
//! status alone: an invalid API key is **400 `INVALID_ARGUMENT`** with reason
//! `API_KEY_INVALID` (→ Authentication); `RESOURCE_EXHAUSTED` is a rate limit
//! (`RetryInfo.retryDelay` → `retry_after`) unless it is spent credit or a daily quota
//! (→ QuotaExhausted).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};
use llm_core::{
    Error, ErrorKind, SecretString, UpstreamError,
    kit::{body_excerpt, scrub},
    retry_after,
};
use serde_json::Value;

/// The kind of an error object, given the HTTP status (`None` inside a stream).
fn classify(status: Option<StatusCode>, grpc: &str, reasons: &[&str], message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    if reasons.contains(&"API_KEY_INVALID")
        || reasons.contains(&"API_KEY_SERVICE_BLOCKED")
        || lower.contains("api key not valid")
        || lower.contains("api key expired")
        || grpc == "UNAUTHENTICATED"
    {
        return ErrorKind::Authentication;
    }
    match grpc {
        "RESOURCE_EXHAUSTED" => {
            let spent = status == Some(StatusCode::PAYMENT_REQUIRED)
                || lower.contains("credit")
                || lower.contains("billing")
                || reasons.iter().any(|r| r.contains("BILLING"))
                || lower.contains("perday")
                || lower.contains("per day");
            if spent {
                ErrorKind::QuotaExhausted
            } else {
                ErrorKind::RateLimited
            }
        }
        "INVALID_ARGUMENT"
            if lower.contains("exceeds the maximum number of tokens")
                || lower.contains("input token count")
                || lower.contains("too long") =>
        {
            ErrorKind::ContextLengthExceeded
        }
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
        "PERMISSION_DENIED" => ErrorKind::Permission,
        "NOT_FOUND" => ErrorKind::NotFound,
        "UNAVAILABLE" | "INTERNAL" | "UNKNOWN" | "ABORTED" | "DATA_LOSS" => {
            ErrorKind::UpstreamServer
        }
        "DEADLINE_EXCEEDED" => ErrorKind::UpstreamServer,
        _ => status.map_or(ErrorKind::UpstreamServer, ErrorKind::from_http_status),
    }
}

/// `"27s"` / `"1.5s"` → a duration.
fn parse_delay(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// The error an `error` object stands for.
pub(crate) fn from_error_object(
    provider: &str,
    status: Option<StatusCode>,
    headers: Option<&HeaderMap>,
    error: &Value,
    secrets: &[&SecretString],
) -> Error {
    let message = scrub(
        error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error"),
        secrets,
    );
    let grpc = error
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let details: &[Value] = error
        .get("details")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let reasons: Vec<&str> = details
        .iter()
        .filter_map(|d| d.get("reason").and_then(Value::as_str))
        .collect();
    // A quota's id names its period (`GenerateRequestsPerDayPerProjectPerModel-FreeTier`).
    let quota_ids: String = details
        .iter()
        .flat_map(|d| {
            d.get("violations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|v| v.get("quotaId").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let status = status.or_else(|| {
        error
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
    });
    let kind = classify(status, grpc, &reasons, &format!("{message} {quota_ids}"));
    let retry_after = match kind {
        ErrorKind::RateLimited | ErrorKind::UpstreamServer => details
            .iter()
            .filter_map(|d| d.get("retryDelay").and_then(Value::as_str))
            .find_map(parse_delay)
            .or_else(|| headers.and_then(|h| retry_after::from_headers(h, SystemTime::now())))
            .or_else(|| retry_after::from_message(&message)),
        _ => None,
    };
    let mut upstream = UpstreamError::new(provider.to_owned(), status, kind, message);
    upstream.code = reasons
        .first()
        .map(|r| (*r).to_owned())
        .or_else(|| (!grpc.is_empty()).then(|| grpc.to_owned()));
    upstream.error_type = (!grpc.is_empty()).then(|| grpc.to_owned());
    upstream.retry_after = retry_after;
    Error::from(upstream)
}

/// An HTTP error answer.
pub(crate) fn from_response(
    provider: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&SecretString],
) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|value| match value {
        Value::Array(items) => items.iter().find_map(|item| item.get("error")),
        other => other.get("error"),
    });
    match error {
        Some(error) => from_error_object(provider, Some(status), Some(headers), error, secrets),
        None => {
            let message = scrub(&body_excerpt(body, status), secrets);
            let mut upstream = UpstreamError::new(
                provider.to_owned(),
                Some(status),
                ErrorKind::from_http_status(status),
                message,
            );
            upstream.retry_after = retry_after::from_headers(headers, SystemTime::now());
            Error::from(upstream)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn err(status: u16, body: &Value) -> Error {
        from_response(
            "gemini",
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.to_string().as_bytes(),
            &[],
        )
    }

    #[test]
    fn every_documented_error() {
        let invalid_key = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}});
        assert_eq!(err(400, &invalid_key).kind(), ErrorKind::Authentication);
        assert_eq!(err(400, &invalid_key).code(), Some("API_KEY_INVALID"));
        let rate = json!({"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
                        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "27s"}]}});
        let limited = err(429, &rate);
        assert_eq!(limited.kind(), ErrorKind::RateLimited);
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(27)));
        let daily = json!({"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}});
        assert_eq!(err(429, &daily).kind(), ErrorKind::QuotaExhausted);
        let credits = json!({"error": {"code": 402, "message": "Your prepaid credits are used up.", "status": "RESOURCE_EXHAUSTED"}});
        assert_eq!(err(402, &credits).kind(), ErrorKind::QuotaExhausted);
        for (status, grpc, kind) in [
            (400, "INVALID_ARGUMENT", ErrorKind::InvalidRequest),
            (400, "FAILED_PRECONDITION", ErrorKind::InvalidRequest),
            (401, "UNAUTHENTICATED", ErrorKind::Authentication),
            (403, "PERMISSION_DENIED", ErrorKind::Permission),
            (404, "NOT_FOUND", ErrorKind::NotFound),
            (500, "INTERNAL", ErrorKind::UpstreamServer),
            (503, "UNAVAILABLE", ErrorKind::UpstreamServer),
            (504, "DEADLINE_EXCEEDED", ErrorKind::UpstreamServer),
        ] {
            let body = json!({"error": {"code": status, "message": "m", "status": grpc}});
            assert_eq!(err(status, &body).kind(), kind, "{grpc}");
        }
        let long = json!({"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}});
        assert_eq!(err(400, &long).kind(), ErrorKind::ContextLengthExceeded);
        assert_eq!(
            err(502, &json!("<html>bad gateway</html>")).kind(),
            ErrorKind::UpstreamServer
        );
    }
}
