//! The HTTP half of the LLM Factory provider kit: one reqwest transport shared by every
//! HTTP provider crate, so a provider holds only its wire format.
//!
//! - [`Timeouts`] and [`http_client`]: a reqwest client (rustls, one pool per account).
//! - [`Transport`]: POSTs a body, classifies transport failures ([`transport_error`]),
//!   reads error bodies bounded and hands them to the provider's classifier, reads success
//!   bodies bounded by [`Limits::max_body_bytes`] (a larger answer is a
//!   [`ErrorKind::Protocol`](llm_core::ErrorKind) failure detected while reading, never
//!   after buffering it), and turns a streamed body into the byte stream that
//!   [`llm_core::kit::sse_chat_stream`] drives.
//!
//! Who enforces which timeout: the transport enforces the connect timeout always, and the
//! first-byte, idle and total timeouts when they are bounded. A provider built for a router
//! (as `llm-factory` builds them) gets [`Timeouts::connect_only`]: the router owns
//! first-token, idle and total timeouts, so no second set of timers runs per request.
//!
//! ```no_run
//! use http::HeaderMap;
//! use llm_http::{Timeouts, Transport, http_client};
//!
//! # async fn run() -> llm_core::Result<()> {
//! let timeouts = Timeouts::default();
//! let transport = Transport::new("example", http_client(&timeouts)?, timeouts);
//! let url = "https://api.example.com/v1/chat".parse().map_err(|_| llm_core::Error::config("bad url"))?;
//! let response = transport
//!     .post(url, HeaderMap::new(), b"{}".to_vec(), |status, _headers, body| {
//!         llm_core::Error::protocol("example", format!("HTTP {status}: {} bytes", body.len()), None)
//!     })
//!     .await?;
//! let body = transport.read_body(response).await?;
//! # let _ = body;
//! # Ok(())
//! # }
//! ```

use std::{borrow::Cow, fmt, time::Duration};

use bytes::Bytes;
use futures_core::Stream;
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use llm_core::{Error, Result, TimeoutPhase};
/// The HTTP client crate the transport is built on.
pub use reqwest;

/// Timeouts of one provider instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// From sending the request to the response headers (for streams: to the stream start).
    pub first_byte: Duration,
    /// Between two reads of a response body (a stalled stream).
    pub idle: Duration,
    /// The whole non-streaming call.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

impl Timeouts {
    /// A value standing for "not enforced here".
    pub const UNBOUNDED: Duration = Duration::MAX;

    /// Only a connect timeout: first-byte, idle and total are enforced by the caller (the
    /// router in `llm-balance` does, per deployment).
    #[must_use]
    pub fn connect_only(connect: Duration) -> Self {
        Self {
            connect,
            first_byte: Self::UNBOUNDED,
            idle: Self::UNBOUNDED,
            total: Self::UNBOUNDED,
        }
    }
}

/// Whether `limit` is enforced (a timer is set) or left to the caller.
fn bounded(limit: Duration) -> bool {
    limit < Duration::from_secs(u64::from(u32::MAX))
}

/// `future` within `limit`, or `on_timeout`; no timer when `limit` is unbounded (as
/// [`Timeouts::UNBOUNDED`] is: the caller enforces it). For providers whose I/O is not a
/// [`Transport`] (an SDK's client) but keeps the same timeout rules.
///
/// # Errors
///
/// `future`'s error, or `on_timeout()` when the limit passed.
pub async fn within<T>(
    limit: Duration,
    future: impl Future<Output = Result<T>>,
    on_timeout: impl FnOnce() -> Error,
) -> Result<T> {
    if bounded(limit) {
        tokio::time::timeout(limit, future)
            .await
            .unwrap_or_else(|_| Err(on_timeout()))
    } else {
        future.await
    }
}

/// Size bounds on what an upstream can make a provider hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest non-streaming answer read (default 32 MiB).
    pub max_body_bytes: usize,
    /// The largest error body kept (default 64 KiB): error envelopes are small; anything
    /// longer is a proxy page, and only its beginning is read.
    pub max_error_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 * 1024 * 1024,
            max_error_body_bytes: 64 * 1024,
        }
    }
}

/// `base` without a trailing slash, checked to be `http(s)://host[/path]` without
/// credentials, query or fragment (what every provider's `api_base` must be).
///
/// # Errors
///
/// [`ErrorKind::Configuration`](llm_core::ErrorKind) naming the base otherwise.
pub fn validate_base(base: &str) -> Result<&str> {
    let trimmed = base.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .ok_or_else(|| {
            Error::config(format!(
                "api_base `{base}` must start with https:// or http://"
            ))
        })?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || rest.contains(['?', '#', ' ']) {
        return Err(Error::config(
            "api_base must be http(s)://host[/path] without credentials, query or fragment",
        ));
    }
    Ok(trimmed)
}

/// The most idle connections kept per upstream host by a client made by [`http_client`]:
/// a burst of concurrent requests opens as many connections, and all but this many close
/// when it is over instead of staying open (and holding their buffers) until they time out.
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 64;

/// A reqwest client with the connect timeout (and, when bounded, the idle-read timeout) of
/// `timeouts`, to share among the providers of several keys: one connection pool per
/// account, not per key. It keeps at most [`DEFAULT_MAX_IDLE_PER_HOST`] idle connections
/// per host.
///
/// # Errors
///
/// [`ErrorKind::Configuration`](llm_core::ErrorKind) when the TLS stack cannot be set up.
pub fn http_client(timeouts: &Timeouts) -> Result<reqwest::Client> {
    http_client_with(timeouts, DEFAULT_MAX_IDLE_PER_HOST)
}

/// [`http_client`] keeping at most `max_idle_per_host` idle connections per host.
///
/// # Errors
///
/// As [`http_client`].
pub fn http_client_with(timeouts: &Timeouts, max_idle_per_host: usize) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .user_agent(concat!("llm-factory/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(max_idle_per_host);
    if bounded(timeouts.idle) {
        builder = builder.read_timeout(timeouts.idle);
    }
    builder
        .build()
        .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))
}

/// A transport failure from reqwest, classified; `phase` says what was being waited for
/// and `limit` is that phase's timeout.
#[must_use]
pub fn transport_error(
    provider: &str,
    err: reqwest::Error,
    phase: TimeoutPhase,
    limit: Duration,
) -> Error {
    if err.is_timeout() {
        let phase = if err.is_connect() {
            TimeoutPhase::Connect
        } else {
            phase
        };
        Error::Timeout {
            provider: Cow::Owned(provider.to_owned()),
            phase,
            after: limit,
        }
    } else if err.is_body() || err.is_decode() {
        Error::protocol(
            provider.to_owned(),
            "the response body was cut off",
            Some(Box::new(err.without_url())),
        )
    } else {
        Error::connection(provider.to_owned(), err.without_url())
    }
}

/// The HTTP transport of one provider instance. See the [crate docs](crate).
#[derive(Clone)]
pub struct Transport {
    name: Cow<'static, str>,
    http: reqwest::Client,
    timeouts: Timeouts,
    limits: Limits,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("name", &self.name)
            .field("timeouts", &self.timeouts)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A body stream whose failures are already classified.
pub type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

impl Transport {
    /// A transport named `name` (for errors and logs) over `http`.
    #[must_use]
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        http: reqwest::Client,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            name: name.into(),
            http,
            timeouts,
            limits: Limits::default(),
        }
    }

    /// The same transport with other size limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The provider name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as a shareable value, for errors.
    #[must_use]
    pub fn name_cow(&self) -> Cow<'static, str> {
        self.name.clone()
    }

    /// The timeouts.
    #[must_use]
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The size limits.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn timeout(&self, phase: TimeoutPhase, after: Duration) -> Error {
        Error::Timeout {
            provider: self.name.clone(),
            phase,
            after,
        }
    }

    /// POST `body` to `url` with `headers` and wait for the response headers (within the
    /// first-byte timeout). A non-success answer's body is read (bounded) and handed to
    /// `classify` with its status and headers; what it returns is the error.
    ///
    /// # Errors
    ///
    /// A classified transport failure, or `classify`'s error for a non-success status.
    pub async fn post(
        &self,
        url: reqwest::Url,
        headers: HeaderMap,
        body: Vec<u8>,
        classify: impl FnOnce(StatusCode, &HeaderMap, &[u8]) -> Error,
    ) -> Result<reqwest::Response> {
        let first_byte = self.timeouts.first_byte;
        let sent = async {
            self.http
                .post(url)
                .headers(headers)
                .body(body)
                .send()
                .await
                .map_err(|e| transport_error(&self.name, e, TimeoutPhase::FirstByte, first_byte))
        };
        let response = within(first_byte, sent, || {
            self.timeout(TimeoutPhase::FirstByte, first_byte)
        })
        .await?;
        let status = response.status();
        tracing::debug!(
            provider = %self.name,
            status = status.as_u16(),
            upstream_request_id = response
                .headers()
                .get("x-request-id")
                .or_else(|| response.headers().get("apim-request-id"))
                .or_else(|| response.headers().get("x-dashscope-request-id"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            "upstream answered"
        );
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let limit = self.limits.max_error_body_bytes;
        let body = within(
            first_byte,
            async { Ok(read_limited(response, limit).await) },
            || self.timeout(TimeoutPhase::FirstByte, first_byte),
        )
        .await
        .unwrap_or_default();
        Err(classify(status, &headers, &body))
    }

    /// Read a whole success body, at most [`Limits::max_body_bytes`] of it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`](llm_core::ErrorKind) when the body is larger (detected as the
    /// bytes arrive) or cut off; a classified transport failure otherwise.
    pub async fn read_body(&self, response: reqwest::Response) -> Result<Bytes> {
        let limit = self.limits.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(self.too_large(limit));
        }
        let total = self.timeouts.total;
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| transport_error(&self.name, e, TimeoutPhase::Total, total))?;
            if body.len() + chunk.len() > limit {
                return Err(self.too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    fn too_large(&self, limit: usize) -> Error {
        Error::protocol(
            self.name.clone(),
            format!("the response is larger than the {limit}-byte limit"),
            None,
        )
    }

    /// Run a whole non-streaming call (send and read) within the total timeout.
    ///
    /// # Errors
    ///
    /// `call`'s error, or a Total timeout.
    pub async fn within_total<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let total = self.timeouts.total;
        within(total, call, || self.timeout(TimeoutPhase::Total, total)).await
    }

    /// Check that a streamed answer is an event stream (an empty content type is allowed).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`](llm_core::ErrorKind) naming the content type otherwise.
    pub fn expect_event_stream(&self, response: &reqwest::Response) -> Result<()> {
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type.is_empty() || content_type.starts_with("text/event-stream") {
            Ok(())
        } else {
            Err(Error::protocol(
                self.name.clone(),
                format!("expected an event stream, got `{content_type}`"),
                None,
            ))
        }
    }

    /// A streamed body as classified byte pieces (the idle timeout is the client's read
    /// timeout: no timer per piece).
    #[must_use]
    pub fn body_stream(&self, response: reqwest::Response) -> BodyStream {
        let name = self.name.clone();
        let idle = self.timeouts.idle;
        Box::pin(
            response
                .bytes_stream()
                .map_err(move |e| transport_error(&name, e, TimeoutPhase::Idle, idle)),
        )
    }
}

/// Read at most `limit` bytes of a body; a transport error ends the read with what arrived.
pub async fn read_limited(response: reqwest::Response, limit: usize) -> Bytes {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use llm_core::ErrorKind;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{method, path},
    };

    use super::*;

    fn transport(limits: Limits, timeouts: Timeouts) -> Transport {
        Transport::new("kit", http_client(&timeouts).unwrap(), timeouts).with_limits(limits)
    }

    #[tokio::test]
    async fn bodies_are_bounded_while_reading() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/big"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 4096]))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/err"))
            .respond_with(ResponseTemplate::new(500).set_body_bytes(vec![b'e'; 4096]))
            .mount(&server)
            .await;
        let small = transport(
            Limits {
                max_body_bytes: 1000,
                max_error_body_bytes: 100,
            },
            Timeouts::connect_only(Duration::from_secs(5)),
        );
        let url = |p: &str| format!("{}{p}", server.uri()).parse().unwrap();
        let response = small
            .post(url("/big"), HeaderMap::new(), Vec::new(), |_, _, _| {
                Error::config("unexpected")
            })
            .await
            .unwrap();
        let err = small.read_body(response).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol);
        assert!(err.to_string().contains("1000-byte limit"), "{err}");

        let mut seen = 0;
        let err = small
            .post(
                url("/err"),
                HeaderMap::new(),
                Vec::new(),
                |status, _, body| {
                    seen = body.len();
                    Error::protocol("kit", format!("HTTP {status}"), None)
                },
            )
            .await
            .unwrap_err();
        assert_eq!(seen, 100);
        assert!(err.to_string().contains("500"), "{err}");

        let roomy = transport(Limits::default(), Timeouts::default());
        let response = roomy
            .post(url("/big"), HeaderMap::new(), Vec::new(), |_, _, _| {
                Error::config("unexpected")
            })
            .await
            .unwrap();
        assert_eq!(roomy.read_body(response).await.unwrap().len(), 4096);
    }

    #[tokio::test]
    async fn first_byte_timeouts_are_classified() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let timeouts = Timeouts {
            first_byte: Duration::from_millis(100),
            ..Timeouts::default()
        };
        let t = transport(Limits::default(), timeouts);
        let err = t
            .post(
                server.uri().parse().unwrap(),
                HeaderMap::new(),
                Vec::new(),
                |_, _, _| Error::config("unexpected"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(bounded(Duration::from_secs(600)));
        assert!(!bounded(Timeouts::UNBOUNDED));
    }

    /// After a burst of concurrent requests, the client keeps at most its bound of idle
    /// connections open to the upstream.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_are_bounded_per_host() {
        // Each answer takes 200 ms, so the burst needs one connection per request.
        let upstream =
            llm_core::testing::CountingServer::start("{}".to_owned(), Duration::from_millis(200))
                .await
                .unwrap();
        let addr = upstream.addr();
        let timeouts = Timeouts::connect_only(Duration::from_secs(5));
        let t = Transport::new("kit", http_client_with(&timeouts, 2).unwrap(), timeouts);
        let calls = (0..8).map(|_| {
            let t = t.clone();
            async move {
                let response = t
                    .post(
                        format!("http://{addr}/").parse().unwrap(),
                        HeaderMap::new(),
                        Vec::new(),
                        |_, _, _| Error::config("unexpected"),
                    )
                    .await
                    .unwrap();
                t.read_body(response).await.unwrap()
            }
        });
        let bodies = futures_util::future::join_all(calls).await;
        assert!(bodies.iter().all(|b| &b[..] == b"{}"));
        assert_eq!(upstream.peak(), 8, "one connection per concurrent call");
        assert_eq!(
            upstream.open_at_most(2, Duration::from_secs(5)).await,
            Ok(2),
            "connections open after the burst (Err: stayed above the bound of 2)"
        );
    }

    #[tokio::test]
    async fn refused_connections_are_connection_errors() {
        let t = transport(Limits::default(), Timeouts::default());
        let err = t
            .post(
                "http://127.0.0.1:9/".parse().unwrap(),
                HeaderMap::new(),
                Vec::new(),
                |_, _, _| Error::config("unexpected"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection);
    }
}
