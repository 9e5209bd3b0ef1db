//! The one error type of the workspace, and the classification every layer branches on.
//!
//! [`Error`] says what happened; [`ErrorKind`] is what callers branch on. Every classifier is
//! an exhaustive `match` without a wildcard arm, so a new kind must declare how it retries,
//! which HTTP status the gateway answers with and which OpenAI error `type` it carries.

use std::{borrow::Cow, fmt, path::PathBuf, time::Duration};

use http::StatusCode;

/// A boxed error used as the `source` of transport and parse failures, so no third-party
/// error type appears in the public API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when talking to a provider.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The provider answered with an error: an HTTP error status, or an error frame inside
    /// a successful stream.
    #[error("{0}")]
    Upstream(Box<UpstreamError>),
    /// The provider did not answer in time.
    #[error("request to {provider} timed out: {phase} after {after:?}")]
    Timeout {
        /// The provider (and deployment) that timed out.
        provider: Cow<'static, str>,
        /// Which timeout fired.
        phase: TimeoutPhase,
        /// The configured limit.
        after: Duration,
    },
    /// No connection could be made, or it broke before an answer arrived.
    #[error("could not connect to {provider}")]
    Connection {
        /// The provider (and deployment).
        provider: Cow<'static, str>,
        /// The transport error.
        #[source]
        source: BoxError,
    },
    /// The provider sent something that could not be parsed, or its stream ended early.
    #[error("{provider} sent an unparsable response: {detail}")]
    Protocol {
        /// The provider (and deployment).
        provider: Cow<'static, str>,
        /// What was wrong.
        detail: Box<str>,
        /// The parse error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The request cannot be served as asked (checked locally, before any upstream call).
    #[error("invalid request: {0}")]
    InvalidRequest(Box<str>),
    /// The configuration is wrong.
    #[error("configuration error: {0}")]
    Config(Box<ConfigError>),
    /// The requested model (or model group, or alias) is not configured.
    #[error("{0}")]
    ModelNotFound(Box<str>),
    /// Every deployment that was tried failed; each attempt is listed.
    #[error("{}", AttemptsDisplay(.0))]
    AllAttemptsFailed(Box<[Attempt]>),
}

impl Error {
    /// An [`Error::InvalidRequest`] with `message`.
    #[must_use]
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into().into_boxed_str())
    }

    /// An [`Error::Protocol`] for `provider`.
    #[must_use]
    pub fn protocol(
        provider: impl Into<Cow<'static, str>>,
        detail: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Self::Protocol {
            provider: provider.into(),
            detail: detail.into().into_boxed_str(),
            source,
        }
    }

    /// An [`Error::Connection`] for `provider`.
    #[must_use]
    pub fn connection(provider: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self::Connection {
            provider: provider.into(),
            source: source.into(),
        }
    }

    /// An [`Error::Config`] with only a message.
    #[must_use]
    pub fn config(message: impl Into<String>) -> Self {
        Self::Config(Box::new(ConfigError::new(message)))
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Upstream(upstream) => upstream.kind,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Connection { .. } => ErrorKind::Connection,
            Self::Protocol { .. } => ErrorKind::Protocol,
            Self::InvalidRequest(_) => ErrorKind::InvalidRequest,
            Self::Config(_) => ErrorKind::Configuration,
            Self::ModelNotFound(_) => ErrorKind::NotFound,
            Self::AllAttemptsFailed(_) => ErrorKind::AllAttemptsFailed,
        }
    }

    /// Whether another attempt (on another deployment, or later) may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            // No deployment serves the model: asking another cannot help.
            Self::ModelNotFound(_) => false,
            Self::Upstream(_)
            | Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::Protocol { .. }
            | Self::InvalidRequest(_)
            | Self::Config(_)
            | Self::AllAttemptsFailed(_) => self.kind().is_retryable(),
        }
    }

    /// How long the upstream asked us to wait. For [`Error::AllAttemptsFailed`], the shortest
    /// wait of the attempts that carried one.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Upstream(upstream) => upstream.retry_after,
            Self::AllAttemptsFailed(attempts) => attempts
                .iter()
                .filter_map(|attempt| attempt.retry_after)
                .min(),
            Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::Protocol { .. }
            | Self::InvalidRequest(_)
            | Self::Config(_)
            | Self::ModelNotFound(_) => None,
        }
    }

    /// The HTTP status the gateway answers with for this error.
    #[must_use]
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::Upstream(upstream) => match (upstream.kind, upstream.status) {
                // Keep the upstream's own 503 rather than flattening it into a 502.
                (ErrorKind::UpstreamServer, Some(StatusCode::SERVICE_UNAVAILABLE)) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                (kind, _) => kind.http_status(),
            },
            Self::AllAttemptsFailed(attempts) => all_attempts_status(attempts),
            Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::Protocol { .. }
            | Self::InvalidRequest(_)
            | Self::Config(_)
            | Self::ModelNotFound(_) => self.kind().http_status(),
        }
    }

    /// The OpenAI error `type` for this error.
    #[must_use]
    pub fn openai_type(&self) -> &'static str {
        self.kind().openai_type()
    }

    /// The error `code`: the upstream's own code where it sent one, else the kind's default.
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Upstream(upstream) => upstream
                .code
                .as_deref()
                .or_else(|| upstream.kind.default_code()),
            Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::Protocol { .. }
            | Self::InvalidRequest(_)
            | Self::Config(_)
            | Self::ModelNotFound(_)
            | Self::AllAttemptsFailed(_) => self.kind().default_code(),
        }
    }

    /// The upstream error details, when the provider answered with an error.
    #[must_use]
    pub fn upstream(&self) -> Option<&UpstreamError> {
        match self {
            Self::Upstream(upstream) => Some(upstream),
            Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::Protocol { .. }
            | Self::InvalidRequest(_)
            | Self::Config(_)
            | Self::ModelNotFound(_)
            | Self::AllAttemptsFailed(_) => None,
        }
    }

    /// The attempts of an [`Error::AllAttemptsFailed`]; empty for other errors.
    #[must_use]
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            Self::AllAttemptsFailed(attempts) => attempts,
            Self::Upstream(_)
            | Self::Timeout { .. }
            | Self::Connection { .. }
            | Self::Protocol { .. }
            | Self::InvalidRequest(_)
            | Self::Config(_)
            | Self::ModelNotFound(_) => &[],
        }
    }
}

impl From<UpstreamError> for Error {
    fn from(upstream: UpstreamError) -> Self {
        Self::Upstream(Box::new(upstream))
    }
}

impl From<ConfigError> for Error {
    fn from(config: ConfigError) -> Self {
        Self::Config(Box::new(config))
    }
}

fn all_attempts_status(attempts: &[Attempt]) -> StatusCode {
    let all = |pred: fn(ErrorKind) -> bool| {
        !attempts.is_empty() && attempts.iter().all(|attempt| pred(attempt.kind))
    };
    if all(|kind| matches!(kind, ErrorKind::RateLimited)) {
        StatusCode::TOO_MANY_REQUESTS
    } else if all(|kind| {
        matches!(
            kind,
            ErrorKind::Authentication | ErrorKind::Permission | ErrorKind::QuotaExhausted
        )
    }) {
        StatusCode::BAD_GATEWAY
    } else if all(|kind| matches!(kind, ErrorKind::Timeout)) {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// An error answer from a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamError {
    /// The provider (and deployment) that answered.
    pub provider: Cow<'static, str>,
    /// The HTTP status; `None` for an error frame inside a successful stream.
    pub status: Option<StatusCode>,
    /// The classification.
    pub kind: ErrorKind,
    /// The provider's message, with any secret removed.
    pub message: String,
    /// The provider's error code (`context_length_exceeded`, `DeploymentNotFound`, ...).
    pub code: Option<String>,
    /// The provider's error type (`invalid_request_error`, ...).
    pub error_type: Option<String>,
    /// The request parameter the provider blamed.
    pub param: Option<String>,
    /// How long the provider asked us to wait.
    pub retry_after: Option<Duration>,
}

impl UpstreamError {
    /// An upstream error with `kind` and `message` and nothing else set.
    #[must_use]
    pub fn new(
        provider: impl Into<Cow<'static, str>>,
        status: Option<StatusCode>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            provider: provider.into(),
            status,
            kind,
            message: message.into(),
            code: None,
            error_type: None,
            param: None,
            retry_after: None,
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} returned HTTP {}", self.provider, status.as_u16())?,
            None => write!(f, "{} sent an error in the stream", self.provider)?,
        }
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for UpstreamError {}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Establishing the connection.
    Connect,
    /// Waiting for the response headers or the first token.
    FirstByte,
    /// Waiting between two chunks of a stream.
    Idle,
    /// The whole non-streaming request.
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::FirstByte => "no first byte",
            Self::Idle => "stream idle",
            Self::Total => "no complete answer",
        })
    }
}

/// A configuration problem, located as precisely as the loader can.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConfigError {
    /// What is wrong.
    pub message: String,
    /// The file it came from.
    pub file: Option<PathBuf>,
    /// The 1-based line in that file.
    pub line: Option<usize>,
    /// The field path, such as `providers[1].api_key`.
    pub field: Option<String>,
}

impl ConfigError {
    /// A configuration error with only a message.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    /// The same error located at `field`.
    #[must_use]
    pub fn at_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The same error located in `file`, at `line` when known.
    #[must_use]
    pub fn in_file(mut self, file: impl Into<PathBuf>, line: Option<usize>) -> Self {
        self.file = Some(file.into());
        self.line = line;
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One failed attempt of a request that was failed over.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// The deployment's label (provider, model and masked key; never the key).
    pub deployment: String,
    /// The classification of its failure.
    pub kind: ErrorKind,
    /// The failure's one-line description.
    pub message: String,
    /// The wait the upstream asked for, if any.
    pub retry_after: Option<Duration>,
}

impl Attempt {
    /// Record `error` as an attempt on `deployment`.
    #[must_use]
    pub fn new(deployment: impl Into<String>, error: &Error) -> Self {
        Self {
            deployment: deployment.into(),
            kind: error.kind(),
            message: error.to_string(),
            retry_after: error.retry_after(),
        }
    }
}

impl Attempt {
    /// An entry that explains why a deployment was not (or no longer) tried, such as a
    /// cooldown or an exhausted retry budget.
    #[must_use]
    pub fn note(
        deployment: impl Into<String>,
        kind: ErrorKind,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            deployment: deployment.into(),
            kind,
            message: message.into(),
            retry_after,
        }
    }
}

struct AttemptsDisplay<'a>(&'a [Attempt]);

impl fmt::Display for AttemptsDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "all {} attempts failed", self.0.len())?;
        for (i, attempt) in self.0.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(
                f,
                "{sep}{} ({}): {}",
                attempt.deployment, attempt.kind, attempt.message
            )?;
        }
        Ok(())
    }
}

/// What callers branch on. Each kind has one row in the failover table.
///
/// Deliberately exhaustive (not `#[non_exhaustive]`): the balancer's cooldown table and the
/// gateway's status mapping match on it without a wildcard, so adding a kind fails to
/// compile until every table has declared what the new kind means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or unsupported. Not retried.
    InvalidRequest,
    /// The credential was rejected. Retried on another deployment; the key cools down long.
    Authentication,
    /// The credential may not do this. Retried elsewhere; long cooldown.
    Permission,
    /// The model or deployment does not exist. Retried elsewhere; long cooldown.
    NotFound,
    /// Too many requests; carries `retry_after` when the upstream said how long to wait.
    RateLimited,
    /// Out of credit or quota. Retried elsewhere; long cooldown and no `Retry-After`.
    QuotaExhausted,
    /// The prompt does not fit the model's context window. Not retried (only an explicitly
    /// configured larger-context fallback applies).
    ContextLengthExceeded,
    /// A content filter blocked the prompt or the answer. Not retried.
    ContentFiltered,
    /// The upstream did not answer in time.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// The upstream failed (5xx, overloaded).
    UpstreamServer,
    /// The upstream sent something unparsable or cut a stream short.
    Protocol,
    /// The configuration is wrong. Not retried.
    Configuration,
    /// Every attempt failed.
    AllAttemptsFailed,
}

impl ErrorKind {
    /// Every kind, for tables and exhaustive tests.
    pub const ALL: [Self; 14] = [
        Self::InvalidRequest,
        Self::Authentication,
        Self::Permission,
        Self::NotFound,
        Self::RateLimited,
        Self::QuotaExhausted,
        Self::ContextLengthExceeded,
        Self::ContentFiltered,
        Self::Timeout,
        Self::Connection,
        Self::UpstreamServer,
        Self::Protocol,
        Self::Configuration,
        Self::AllAttemptsFailed,
    ];

    /// The kind's name in `snake_case`, as used in logs, metrics and status output.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Authentication => "authentication",
            Self::Permission => "permission",
            Self::NotFound => "not_found",
            Self::RateLimited => "rate_limited",
            Self::QuotaExhausted => "quota_exhausted",
            Self::ContextLengthExceeded => "context_length_exceeded",
            Self::ContentFiltered => "content_filtered",
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::UpstreamServer => "upstream_server",
            Self::Protocol => "protocol",
            Self::Configuration => "configuration",
            Self::AllAttemptsFailed => "all_attempts_failed",
        }
    }

    /// Whether another attempt (another deployment, or later) may succeed.
    #[must_use]
    pub const fn is_retryable(self) -> bool {
        match self {
            Self::InvalidRequest
            | Self::ContextLengthExceeded
            | Self::ContentFiltered
            | Self::Configuration
            | Self::AllAttemptsFailed => false,
            Self::Authentication
            | Self::Permission
            | Self::NotFound
            | Self::RateLimited
            | Self::QuotaExhausted
            | Self::Timeout
            | Self::Connection
            | Self::UpstreamServer
            | Self::Protocol => true,
        }
    }

    /// The HTTP status the gateway answers with. An upstream credential that was rejected
    /// is a 502: the gateway's caller cannot fix it (the gateway's own key check answers 401
    /// itself).
    #[must_use]
    pub const fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidRequest | Self::ContextLengthExceeded | Self::ContentFiltered => {
                StatusCode::BAD_REQUEST
            }
            Self::Permission => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RateLimited | Self::QuotaExhausted => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Authentication | Self::Connection | Self::UpstreamServer | Self::Protocol => {
                StatusCode::BAD_GATEWAY
            }
            Self::Configuration => StatusCode::INTERNAL_SERVER_ERROR,
            Self::AllAttemptsFailed => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The OpenAI error `type`.
    #[must_use]
    pub const fn openai_type(self) -> &'static str {
        match self {
            Self::InvalidRequest
            | Self::NotFound
            | Self::ContextLengthExceeded
            | Self::ContentFiltered => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::RateLimited => "rate_limit_error",
            Self::QuotaExhausted => "insufficient_quota",
            Self::Timeout => "timeout_error",
            Self::Connection | Self::Protocol | Self::UpstreamServer | Self::AllAttemptsFailed => {
                "api_error"
            }
            Self::Configuration => "server_error",
        }
    }

    /// The `code` sent when the upstream gave none.
    #[must_use]
    pub const fn default_code(self) -> Option<&'static str> {
        match self {
            Self::ContextLengthExceeded => Some("context_length_exceeded"),
            Self::ContentFiltered => Some("content_filter"),
            Self::QuotaExhausted => Some("insufficient_quota"),
            Self::RateLimited => Some("rate_limit_exceeded"),
            Self::NotFound => Some("model_not_found"),
            Self::Authentication => Some("invalid_api_key"),
            Self::Timeout => Some("timeout"),
            Self::AllAttemptsFailed => Some("all_attempts_failed"),
            Self::InvalidRequest
            | Self::Permission
            | Self::Connection
            | Self::UpstreamServer
            | Self::Protocol
            | Self::Configuration => None,
        }
    }

    /// The kind an HTTP error status means when the body says nothing more precise.
    #[must_use]
    pub fn from_http_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Authentication,
            402 => Self::QuotaExhausted,
            403 => Self::Permission,
            404 => Self::NotFound,
            408 => Self::Timeout,
            409 | 425 | 500..=599 => Self::UpstreamServer,
            429 => Self::RateLimited,
            400..=499 => Self::InvalidRequest,
            // A success or redirect status where an error was expected.
            _ => Self::Protocol,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small() {
        assert!(
            size_of::<Error>() <= 64,
            "Error is {} bytes",
            size_of::<Error>()
        );
    }

    #[test]
    fn retry_table_matches_the_design() {
        let not_retried = [
            ErrorKind::InvalidRequest,
            ErrorKind::ContextLengthExceeded,
            ErrorKind::ContentFiltered,
            ErrorKind::Configuration,
            ErrorKind::AllAttemptsFailed,
        ];
        for kind in ErrorKind::ALL {
            assert_eq!(kind.is_retryable(), !not_retried.contains(&kind), "{kind}");
        }
    }

    #[test]
    fn statuses_match_the_design() {
        use ErrorKind as K;
        let expected = [
            (K::InvalidRequest, 400),
            (K::Authentication, 502),
            (K::Permission, 403),
            (K::NotFound, 404),
            (K::RateLimited, 429),
            (K::QuotaExhausted, 429),
            (K::ContextLengthExceeded, 400),
            (K::ContentFiltered, 400),
            (K::Timeout, 504),
            (K::Connection, 502),
            (K::UpstreamServer, 502),
            (K::Protocol, 502),
            (K::Configuration, 500),
            (K::AllAttemptsFailed, 503),
        ];
        assert_eq!(expected.len(), K::ALL.len());
        for (kind, status) in expected {
            assert_eq!(kind.http_status().as_u16(), status, "{kind}");
        }
    }

    #[test]
    fn upstream_503_stays_503() {
        let err = Error::from(UpstreamError::new(
            "openai",
            Some(StatusCode::SERVICE_UNAVAILABLE),
            ErrorKind::UpstreamServer,
            "overloaded",
        ));
        assert_eq!(err.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.openai_type(), "api_error");
        assert_eq!(err.to_string(), "openai returned HTTP 503: overloaded");
    }

    #[test]
    fn status_classification() {
        let cases = [
            (400, ErrorKind::InvalidRequest),
            (401, ErrorKind::Authentication),
            (402, ErrorKind::QuotaExhausted),
            (403, ErrorKind::Permission),
            (404, ErrorKind::NotFound),
            (408, ErrorKind::Timeout),
            (413, ErrorKind::InvalidRequest),
            (422, ErrorKind::InvalidRequest),
            (429, ErrorKind::RateLimited),
            (500, ErrorKind::UpstreamServer),
            (503, ErrorKind::UpstreamServer),
            (529, ErrorKind::UpstreamServer),
            (200, ErrorKind::Protocol),
        ];
        for (status, kind) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(ErrorKind::from_http_status(status), kind, "{status}");
        }
    }

    fn attempt(kind: ErrorKind, retry_after: Option<u64>) -> Attempt {
        Attempt {
            deployment: format!("openai/gpt-4o/sk-…{}", kind.as_str().len()),
            kind,
            message: format!("failed with {kind}"),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn all_attempts_failed_status_and_retry_after() {
        let limited = Error::AllAttemptsFailed(
            vec![
                attempt(ErrorKind::RateLimited, Some(30)),
                attempt(ErrorKind::RateLimited, Some(7)),
                attempt(ErrorKind::RateLimited, None),
            ]
            .into(),
        );
        assert_eq!(limited.http_status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));

        let creds = Error::AllAttemptsFailed(
            vec![
                attempt(ErrorKind::Authentication, None),
                attempt(ErrorKind::QuotaExhausted, None),
            ]
            .into(),
        );
        assert_eq!(creds.http_status(), StatusCode::BAD_GATEWAY);

        let timeouts = Error::AllAttemptsFailed(vec![attempt(ErrorKind::Timeout, None)].into());
        assert_eq!(timeouts.http_status(), StatusCode::GATEWAY_TIMEOUT);

        let mixed = Error::AllAttemptsFailed(
            vec![
                attempt(ErrorKind::Timeout, None),
                attempt(ErrorKind::RateLimited, Some(1)),
            ]
            .into(),
        );
        assert_eq!(mixed.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = mixed.to_string();
        assert!(text.starts_with("all 2 attempts failed: "), "{text}");
        assert!(
            text.contains("(timeout)") && text.contains("(rate_limited)"),
            "{text}"
        );
    }

    #[test]
    fn config_error_names_file_line_and_field() {
        let err = Error::from(
            ConfigError::new("missing environment variable `OPENAI_API_KEY`")
                .at_field("providers[0].api_key")
                .in_file("config.yaml", Some(4)),
        );
        assert_eq!(
            err.to_string(),
            "configuration error: config.yaml:4: providers[0].api_key: missing environment variable `OPENAI_API_KEY`"
        );
        assert_eq!(err.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn codes_prefer_the_upstream() {
        let mut upstream = UpstreamError::new(
            "azure-openai",
            Some(StatusCode::NOT_FOUND),
            ErrorKind::NotFound,
            "The API deployment for this resource does not exist.",
        );
        assert_eq!(
            Error::from(upstream.clone()).code(),
            Some("model_not_found")
        );
        upstream.code = Some("DeploymentNotFound".to_owned());
        assert_eq!(Error::from(upstream).code(), Some("DeploymentNotFound"));
    }
}
