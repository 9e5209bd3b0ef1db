//! Bedrock errors → [`Error`], by exception type (the `x-amzn-ErrorType` header, or the
//! `:exception-type` of an event-stream frame) first and HTTP status only for unknown
//! types: `ModelNotReadyException` is a 429 that is not throttling, and a
//! `ValidationException` may mean the prompt is too long.

use std::{borrow::Cow, time::Duration};

use aws_sdk_bedrockruntime::{
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::error::ConverseStreamOutputError,
};
use http::StatusCode;
use llm_core::{Error, ErrorKind, SecretString, TimeoutPhase, UpstreamError, kit::scrub};

/// Phrases of a ValidationException that says the prompt does not fit the context window.
const CONTEXT_LENGTH: &[&str] = &[
    "too long",
    "too many input tokens",
    "context window",
    "context length",
    "maximum context",
    "prompt is too long",
    "exceeds the maximum number of tokens",
];

/// Phrases of a ValidationException that says this deployment's model id cannot be called
/// as configured (a base id where an inference profile is needed, a model not enabled):
/// another deployment may serve the request, so it is NotFound, not InvalidRequest.
const MODEL_UNAVAILABLE: &[&str] = &[
    "on-demand throughput",
    "inference profile",
    "model identifier is invalid",
    "don't have access to the model",
];

/// The kind for an exception `code` (its shape name) with `message` and HTTP `status`.
pub(crate) fn classify(code: Option<&str>, message: &str, status: Option<u16>) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    match code.map(|c| c.trim_start_matches('#')) {
        Some("ThrottlingException" | "throttlingException" | "TooManyRequestsException") => {
            ErrorKind::RateLimited
        }
        Some("ServiceQuotaExceededException") => ErrorKind::QuotaExhausted,
        Some("ValidationException" | "validationException") => {
            if CONTEXT_LENGTH.iter().any(|p| lower.contains(p)) {
                ErrorKind::ContextLengthExceeded
            } else if MODEL_UNAVAILABLE.iter().any(|p| lower.contains(p)) {
                ErrorKind::NotFound
            } else {
                ErrorKind::InvalidRequest
            }
        }
        Some("AccessDeniedException") => ErrorKind::Permission,
        Some(
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "ExpiredTokenException"
            | "ExpiredToken"
            | "MissingAuthenticationTokenException"
            | "InvalidClientTokenId",
        ) => ErrorKind::Authentication,
        Some("ResourceNotFoundException") => ErrorKind::NotFound,
        Some("ModelTimeoutException" | "modelTimeoutException") => ErrorKind::Timeout,
        // Not throttling although it is a 429: the model is being loaded; retry elsewhere
        // or later without treating the key as rate limited.
        Some(
            "ModelNotReadyException"
            | "ServiceUnavailableException"
            | "serviceUnavailableException"
            | "InternalServerException"
            | "internalServerException"
            | "ModelErrorException"
            | "ModelStreamErrorException"
            | "modelStreamErrorException",
        ) => ErrorKind::UpstreamServer,
        Some("ConflictException") => ErrorKind::InvalidRequest,
        _ => status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .map_or(ErrorKind::UpstreamServer, ErrorKind::from_http_status),
    }
}

/// Everything the error mapping needs besides the error.
pub(crate) struct Context<'a> {
    pub(crate) provider: &'a str,
    pub(crate) secrets: &'a [&'a SecretString],
    /// Which of our timeouts an SDK timeout stands for, and its length.
    pub(crate) timeout: (TimeoutPhase, Duration),
}

/// An error answer, classified; `retry_after` from the response headers when present.
fn upstream(
    cx: &Context<'_>,
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    retry_after: Option<Duration>,
) -> Error {
    let message = scrub(message.unwrap_or("(no message)"), cx.secrets);
    let kind = classify(code, &message, status);
    let mut error = UpstreamError::new(
        cx.provider.to_owned(),
        status.and_then(|s| StatusCode::from_u16(s).ok()),
        kind,
        message,
    );
    error.code = code.map(str::to_owned);
    error.retry_after = retry_after;
    Error::Upstream(Box::new(error))
}

/// An operation's error (Converse, or ConverseStream before its stream starts).
pub(crate) fn from_operation<E>(
    cx: &Context<'_>,
    error: SdkError<E, aws_sdk_bedrockruntime::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match error {
        SdkError::ServiceError(context) => {
            let raw = context.raw();
            let status = raw.status().as_u16();
            let mut headers = http::HeaderMap::new();
            for (name, value) in raw.headers() {
                if name.contains("retry-after")
                    && let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(name.as_bytes()),
                        http::HeaderValue::from_str(value),
                    )
                {
                    headers.insert(name, value);
                }
            }
            let retry_after =
                llm_core::retry_after::from_headers(&headers, std::time::SystemTime::now());
            let err = context.err();
            upstream(cx, err.code(), err.message(), Some(status), retry_after)
        }
        other => from_transport(cx, other),
    }
}

/// An exception frame inside a ConverseStream: its type from the modeled variant (the SDK
/// gives no code for those), or the frame's own for unmodeled ones.
pub(crate) fn from_stream_exception(
    cx: &Context<'_>,
    error: SdkError<ConverseStreamOutputError, aws_smithy_types::event_stream::RawMessage>,
) -> Error {
    match error {
        SdkError::ServiceError(context) => {
            let err = context.err();
            let code = match err {
                ConverseStreamOutputError::ThrottlingException(_) => Some("ThrottlingException"),
                ConverseStreamOutputError::ValidationException(_) => Some("ValidationException"),
                ConverseStreamOutputError::InternalServerException(_) => {
                    Some("InternalServerException")
                }
                ConverseStreamOutputError::ModelStreamErrorException(_) => {
                    Some("ModelStreamErrorException")
                }
                ConverseStreamOutputError::ServiceUnavailableException(_) => {
                    Some("ServiceUnavailableException")
                }
                other => other.code(),
            };
            upstream(cx, code, err.message(), None, None)
        }
        other => from_transport(cx, other),
    }
}

/// Errors that are not an upstream answer: building the request, credentials, timeouts,
/// the connection, an unparsable or cut answer.
fn from_transport<E, R>(cx: &Context<'_>, error: SdkError<E, R>) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let detail = scrub(&DisplayErrorContext(&error).to_string(), cx.secrets);
    let provider: Cow<'static, str> = Cow::Owned(cx.provider.to_owned());
    match error {
        SdkError::TimeoutError(_) => Error::Timeout {
            provider,
            phase: cx.timeout.0,
            after: cx.timeout.1,
        },
        SdkError::DispatchFailure(failure) if failure.is_timeout() => Error::Timeout {
            provider,
            phase: TimeoutPhase::Connect,
            after: cx.timeout.1,
        },
        SdkError::DispatchFailure(_) => Error::connection(provider, detail),
        SdkError::ResponseError(_) => Error::protocol(
            provider,
            format!("the answer could not be read or parsed (cut off or malformed): {detail}"),
            None,
        ),
        SdkError::ConstructionFailure(_) => {
            let lower = detail.to_ascii_lowercase();
            if lower.contains("credential") || lower.contains("identity") || lower.contains("token")
            {
                Error::Upstream(Box::new(UpstreamError::new(
                    provider,
                    None,
                    ErrorKind::Authentication,
                    format!("no usable AWS credentials or Bedrock API key: {detail}"),
                )))
            } else {
                Error::invalid_request(format!("{}: {detail}", cx.provider))
            }
        }
        other => Error::connection(
            provider,
            scrub(&DisplayErrorContext(&other).to_string(), cx.secrets),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_types_decide_before_status() {
        assert_eq!(
            classify(Some("ThrottlingException"), "Too many requests", Some(429)),
            ErrorKind::RateLimited
        );
        assert_eq!(
            classify(Some("ModelNotReadyException"), "loading", Some(429)),
            ErrorKind::UpstreamServer
        );
        assert_eq!(
            classify(
                Some("ValidationException"),
                "Input is too long for requested model.",
                Some(400)
            ),
            ErrorKind::ContextLengthExceeded
        );
        assert_eq!(
            classify(
                Some("ValidationException"),
                "Malformed input request",
                Some(400)
            ),
            ErrorKind::InvalidRequest
        );
        assert_eq!(classify(None, "", Some(503)), ErrorKind::UpstreamServer);
        assert_eq!(classify(None, "", Some(429)), ErrorKind::RateLimited);
    }
}
