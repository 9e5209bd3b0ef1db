//! Errors as OpenAI-shaped HTTP responses.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use llm_factory::Error;
use serde_json::json;

/// An error the gateway answers with: `{"error":{"message","type","param","code"}}` and the
/// status its kind maps to (429 with `Retry-After`).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<String>,
    code: Option<String>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            kind,
            param: None,
            code: code.map(str::to_owned),
            retry_after_secs: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message,
        )
    }

    pub(crate) fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The OpenAI error type.
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// The body of an error event inside a stream.
    pub(crate) fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status =
            StatusCode::from_u16(error.http_status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let param = error.upstream().and_then(|u| u.param.clone());
        Self {
            status,
            message: error.to_string(),
            kind: error.openai_type(),
            param,
            code: error.code().map(str::to_owned),
            // Whole seconds, rounded up, so a client never retries early.
            retry_after_secs: (status == StatusCode::TOO_MANY_REQUESTS)
                .then(|| error.retry_after())
                .flatten()
                .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after_secs
            && let Ok(value) = HeaderValue::try_from(seconds.to_string())
        {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }
}

/// Why a request body is not the JSON a route expects.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body or one of its fields is not what the route takes: the path of the field
    /// (`None` for the body itself) and serde's explanation.
    Invalid {
        path: Option<String>,
        detail: String,
    },
    /// A valid object followed by more data.
    Trailing(String),
}

/// `body` as a `T`. It is parsed without path tracking; only a body that fails is parsed
/// again, with `serde_path_to_error`, to say which field is wrong.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    llm_factory::core::kit::json_from_slice(body).map_err(|_| explain_body::<T>(body))
}

#[cold]
fn explain_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> BodyError {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    if let Err(e) = serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        let path = e.path().to_string();
        return BodyError::Invalid {
            path: (path != ".").then_some(path),
            detail: e.into_inner().to_string(),
        };
    }
    BodyError::Trailing(
        deserializer
            .end()
            .err()
            .map_or_else(|| "trailing characters".to_owned(), |e| e.to_string()),
    )
}
