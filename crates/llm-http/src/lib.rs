//! The HTTP half of the LLM Factory provider kit: one transport shared by every HTTP
//! provider crate, so a provider holds only its wire format.
//!
//! - [`Timeouts`] and [`http_client`]: an [`HttpClient`] (one connection pool per account:
//!   a bare hyper client with rustls, and reqwest for proxies; see below).
//! - [`Transport`]: POSTs a body, classifies transport failures ([`transport_error`]),
//!   reads error bodies bounded and hands them to the provider's classifier, reads success
//!   bodies bounded by [`Limits::max_body_bytes`] (a larger answer is a
//!   [`ErrorKind::Protocol`](llm_core::ErrorKind) failure detected while reading, never
//!   after buffering it), and turns a streamed body into the byte stream that
//!   [`llm_core::kit::sse_chat_stream`] drives.
//! - [`Target`]: a request URL parsed once (the URL, the request URI and, for plain HTTP,
//!   the origin-form URI, `host` header and connection-pool key) that a provider keeps and
//!   sends with every request.
//!
//! The direct path: a client made by [`http_client`] sends requests through hyper-util's
//! pooled client instead of reqwest's layers (about a fifth of the gateway's CPU per
//! request), set up as the reqwest client would be: rustls with the platform verifier,
//! HTTP/2 or HTTP/1.1 by ALPN, the same connect timeout (lookup, TCP and TLS handshake),
//! TCP settings, idle bound and default headers, and no redirects (the reqwest half follows
//! none either). Plain-HTTP upstreams go over HTTP/1.1 connections the client pools
//! itself, with the same idle bound and idle timeout (90 s): hyper-util's pool cost about
//! 6,000 instructions per request. Such a connection is driven by the task that sends the
//! request and reads the body (no task of its own, so a streamed chunk needs no second
//! task's wake-up), goes back to the pool when its answer's body has been read to the end,
//! and a request that a reused connection closed before sending is sent again on another,
//! as hyper-util does. When the environment names a proxy (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `ALL_PROXY`, either case), and for a reqwest client handed in by the caller
//! ([`HttpClient::from`]), requests go through reqwest.
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
//! let url: llm_http::reqwest::Url =
//!     "https://api.example.com/v1/chat".parse().map_err(|_| llm_core::Error::config("bad url"))?;
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

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_core::Stream;
use futures_util::{StreamExt, TryStreamExt, future::Either};
use http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use llm_core::{Error, Result, TimeoutPhase};

mod direct;
use direct::{DirectBody, DirectClient};
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
/// The returned future holds `future` once: it is built from combinators, not an `async`
/// body, which would keep the argument and the timer around it side by side and double the
/// size that every caller's future carries (and copies when it is boxed).
///
/// # Errors
///
/// `future`'s error, or `on_timeout()` when the limit passed.
pub fn within<T, F>(
    limit: Duration,
    future: F,
    on_timeout: impl FnOnce() -> Error,
) -> impl Future<Output = Result<T>>
where
    F: Future<Output = Result<T>>,
{
    use futures_util::FutureExt as _;
    if bounded(limit) {
        Either::Left(
            tokio::time::timeout(limit, future)
                .map(|outcome| outcome.unwrap_or_else(|_| Err(on_timeout()))),
        )
    } else {
        Either::Right(future)
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
pub fn http_client(timeouts: &Timeouts) -> Result<HttpClient> {
    http_client_with(timeouts, DEFAULT_MAX_IDLE_PER_HOST)
}

/// [`http_client`] keeping at most `max_idle_per_host` idle connections per host.
///
/// # Errors
///
/// As [`http_client`].
pub fn http_client_with(timeouts: &Timeouts, max_idle_per_host: usize) -> Result<HttpClient> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .user_agent(direct::USER_AGENT_VALUE)
        .pool_max_idle_per_host(max_idle_per_host)
        // An API answers a POST; a redirect is an error to report, not to follow (and the
        // direct path follows none).
        .redirect(reqwest::redirect::Policy::none());
    if bounded(timeouts.idle) {
        builder = builder.read_timeout(timeouts.idle);
    }
    let reqwest = builder
        .build()
        .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
    Ok(HttpClient {
        reqwest,
        direct: DirectClient::unless_proxied(timeouts, max_idle_per_host),
    })
}

/// The HTTP client of a [`Transport`]: a reqwest client, and for a client made by
/// [`http_client`] the direct path (see the [crate docs](crate)).
/// Cloning shares the connection pools.
#[derive(Clone)]
pub struct HttpClient {
    reqwest: reqwest::Client,
    direct: Option<DirectClient>,
}

impl HttpClient {
    /// The reqwest half (every request when the client was handed in as a reqwest client).
    #[must_use]
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.reqwest
    }

    /// Whether requests go through the direct path (see the [crate docs](crate)).
    #[must_use]
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }
}

impl From<reqwest::Client> for HttpClient {
    /// A caller's reqwest client, used as it is for every request (its proxy, TLS,
    /// redirect and timeout settings are the caller's).
    fn from(reqwest: reqwest::Client) -> Self {
        Self {
            reqwest,
            direct: None,
        }
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("direct", &self.direct.is_some())
            .finish_non_exhaustive()
    }
}

/// A request URL parsed once for both paths of the [`HttpClient`]: a provider that sends
/// every request to the same URL keeps one and clones it (reference counts, no parsing)
/// instead of turning a URL string into a request URI per request.
///
/// ```
/// let target = llm_http::Target::from(
///     "https://api.example.com/v1/chat/completions".parse::<llm_http::reqwest::Url>().unwrap(),
/// );
/// assert_eq!(target.url().host_str(), Some("api.example.com"));
/// ```
#[derive(Debug, Clone)]
pub struct Target {
    url: Arc<reqwest::Url>,
    /// The same URL as hyper takes it, or why it is not one (reported when it is used).
    uri: std::result::Result<http::Uri, Arc<str>>,
    /// For a plain-HTTP URL, its origin-form URI, `host` header and connection-pool key
    /// (see `direct::PlainPool`; HTTPS goes through hyper-util, where a connection may be
    /// HTTP/2 and the authority goes in `:authority`).
    plain: Option<Arc<direct::PlainTarget>>,
}

impl Target {
    /// The URL.
    #[must_use]
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }
}

impl From<reqwest::Url> for Target {
    fn from(url: reqwest::Url) -> Self {
        let uri = url
            .as_str()
            .parse::<http::Uri>()
            .map_err(|e| Arc::from(e.to_string()));
        let plain = uri
            .as_ref()
            .ok()
            .and_then(direct::PlainTarget::of)
            .map(Arc::new);
        Self {
            url: Arc::new(url),
            uri,
            plain,
        }
    }
}

/// An upstream's response whose headers have arrived; the body is read through the
/// [`Transport`] ([`Transport::read_body`], [`Transport::body_stream`]).
#[derive(Debug)]
pub struct Response {
    inner: ResponseInner,
}

#[derive(Debug)]
enum ResponseInner {
    Reqwest(reqwest::Response),
    /// The response, and for a plain-HTTP upstream its connection's lease (see
    /// [`direct::PlainPool`]).
    Direct(http::Response<hyper::body::Incoming>, Option<direct::Lease>),
}

impl Response {
    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match &self.inner {
            ResponseInner::Reqwest(r) => r.status(),
            ResponseInner::Direct(r, _) => r.status(),
        }
    }

    /// The response headers.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        match &self.inner {
            ResponseInner::Reqwest(r) => r.headers(),
            ResponseInner::Direct(r, _) => r.headers(),
        }
    }

    /// The body as classified byte pieces; `phase` and `limit` name a reqwest read timeout,
    /// `idle` is the direct path's idle read timeout.
    fn into_pieces(
        self,
        provider: Cow<'static, str>,
        phase: TimeoutPhase,
        limit: Duration,
        idle: Duration,
    ) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        match self.inner {
            ResponseInner::Reqwest(r) => Either::Left(
                r.bytes_stream()
                    .map_err(move |e| transport_error(&provider, e, phase, limit)),
            ),
            ResponseInner::Direct(r, lease) => {
                Either::Right(DirectBody::new(r.into_body(), lease, provider, idle))
            }
        }
    }

    /// The announced body length, if any.
    fn content_length(&self) -> Option<u64> {
        match &self.inner {
            ResponseInner::Reqwest(r) => r.content_length(),
            ResponseInner::Direct(r, _) => {
                http_body::Body::size_hint(r.body()).exact().or_else(|| {
                    r.headers()
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                })
            }
        }
    }
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
    http: HttpClient,
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
    /// A transport named `name` (for errors and logs) over `http` (an [`HttpClient`] from
    /// [`http_client`], or a caller's `reqwest::Client`).
    #[must_use]
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        http: impl Into<HttpClient>,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            name: name.into(),
            http: http.into(),
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

    /// POST `body` to `url` (a [`Target`], or a `reqwest::Url` parsed for this request) with
    /// `headers` and wait for the response headers (within the first-byte timeout). A
    /// non-success answer's body is read (bounded) and handed to `classify` with its status
    /// and headers; what it returns is the error.
    ///
    /// # Errors
    ///
    /// A classified transport failure, or `classify`'s error for a non-success status.
    pub async fn post(
        &self,
        url: impl Into<Target>,
        headers: HeaderMap,
        body: Vec<u8>,
        classify: impl FnOnce(StatusCode, &HeaderMap, &[u8]) -> Error,
    ) -> Result<Response> {
        let first_byte = self.timeouts.first_byte;
        let target = url.into();
        let sent = async move {
            if let Some(direct) = &self.http.direct {
                let uri = target.uri.map_err(|e| {
                    Error::config(format!("{}: not a valid request URI: {e}", self.name))
                })?;
                let (response, lease) = direct
                    .post(&self.name, uri, target.plain, headers, body)
                    .await?;
                return Ok(Response {
                    inner: ResponseInner::Direct(response, lease),
                });
            }
            self.http
                .reqwest
                .post(target.url().clone())
                .headers(headers)
                .body(body)
                .send()
                .await
                .map(|r| Response {
                    inner: ResponseInner::Reqwest(r),
                })
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
            async { Ok(self.read_limited(response, limit).await) },
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
    pub async fn read_body(&self, response: Response) -> Result<Bytes> {
        let limit = self.limits.max_body_bytes;
        let length = response.content_length();
        if length.is_some_and(|length| length > limit as u64) {
            return Err(self.too_large(limit));
        }
        let total = self.timeouts.total;
        let pieces = response.into_pieces(
            self.name.clone(),
            TimeoutPhase::Total,
            total,
            self.timeouts.idle,
        );
        let mut pieces = std::pin::pin!(pieces);
        // One piece is the common case: hand it over without a copy.
        let mut body = match pieces.next().await.transpose()? {
            None => return Ok(Bytes::new()),
            Some(first) if first.len() > limit => return Err(self.too_large(limit)),
            Some(first) => match pieces.next().await.transpose()? {
                None => return Ok(first),
                Some(second) => {
                    let capacity = length.map_or(0, |l| usize::try_from(l).unwrap_or(0));
                    let mut body = Vec::with_capacity(capacity.max(first.len() + second.len()));
                    body.extend_from_slice(&first);
                    if body.len() + second.len() > limit {
                        return Err(self.too_large(limit));
                    }
                    body.extend_from_slice(&second);
                    body
                }
            },
        };
        while let Some(chunk) = pieces.next().await {
            let chunk = chunk?;
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
    pub fn within_total<T>(
        &self,
        call: impl Future<Output = Result<T>>,
    ) -> impl Future<Output = Result<T>> {
        let total = self.timeouts.total;
        within(total, call, move || {
            self.timeout(TimeoutPhase::Total, total)
        })
    }

    /// Check that a streamed answer is an event stream (an empty content type is allowed).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`](llm_core::ErrorKind) naming the content type otherwise.
    pub fn expect_event_stream(&self, response: &Response) -> Result<()> {
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
    pub fn body_stream(&self, response: Response) -> BodyStream {
        let idle = self.timeouts.idle;
        Box::pin(response.into_pieces(self.name.clone(), TimeoutPhase::Idle, idle, idle))
    }

    /// Read at most `limit` bytes of a body; a transport error ends the read with what
    /// arrived.
    pub async fn read_limited(&self, response: Response, limit: usize) -> Bytes {
        let idle = self.timeouts.idle;
        let pieces = response.into_pieces(self.name.clone(), TimeoutPhase::Idle, idle, idle);
        let mut pieces = std::pin::pin!(pieces);
        let mut body = Vec::new();
        while let Some(Ok(chunk)) = pieces.next().await {
            let room = limit.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= limit {
                break;
            }
        }
        Bytes::from(body)
    }
}

#[cfg(test)]
mod tests {
    use llm_core::ErrorKind;
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{body_bytes, header, method, path},
    };

    use super::*;

    /// The two ways a transport sends: the direct path of a client
    /// made by [`http_client_with`], and a caller's reqwest client (here the reqwest half of
    /// the same client, so both have the same settings).
    fn both(timeouts: &Timeouts, max_idle_per_host: usize) -> [(&'static str, HttpClient); 2] {
        let ours = http_client_with(timeouts, max_idle_per_host).unwrap();
        let reqwest = HttpClient::from(ours.reqwest().clone());
        assert!(!reqwest.is_direct());
        let direct = HttpClient {
            reqwest: ours.reqwest().clone(),
            // Whatever the environment of the test says about proxies.
            direct: Some(DirectClient::new(
                timeouts,
                max_idle_per_host,
                direct::tls_config(Vec::new()).unwrap(),
            )),
        };
        [("direct", direct), ("reqwest", reqwest)]
    }

    fn transports(limits: Limits, timeouts: Timeouts) -> [(&'static str, Transport); 2] {
        both(&timeouts, DEFAULT_MAX_IDLE_PER_HOST).map(|(name, http)| {
            (
                name,
                Transport::new("kit", http, timeouts).with_limits(limits),
            )
        })
    }

    fn unexpected(_: StatusCode, _: &HeaderMap, _: &[u8]) -> Error {
        Error::config("unexpected")
    }

    /// POST an empty body to `url` through `t`; a non-success answer is unexpected.
    async fn post_empty(t: &Transport, url: reqwest::Url) -> Result<Response> {
        t.post(url, HeaderMap::new(), Vec::new(), unexpected).await
    }

    /// An upstream that answers the first request on each connection with `head` and
    /// `body` bytes, then keeps the connection open without a word until `hold` has passed
    /// (closes it at once when `hold` is zero).
    async fn raw_upstream(head: &'static str, body: &'static [u8], hold: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = vec![0; 4096];
                    let _ = socket.read(&mut request).await;
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(body).await;
                    if !hold.is_zero() {
                        tokio::time::sleep(hold).await;
                    }
                });
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn both_paths_send_the_same_request() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat"))
            .and(header("user-agent", direct::USER_AGENT_VALUE))
            .and(header("accept", "*/*"))
            .and(header("content-type", "application/json"))
            .and(header("content-length", "7"))
            .and(header("host", server.address().to_string()))
            .and(body_bytes(b"{\"a\":1}".to_vec()))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"ok\":true}"))
            .expect(4)
            .mount(&server)
            .await;
        let target = Target::from(
            format!("{}/v1/chat", server.uri())
                .parse::<reqwest::Url>()
                .unwrap(),
        );
        for (path_name, t) in transports(Limits::default(), Timeouts::default()) {
            // A kept target, sent twice (the direct path reuses its parsed URI and host).
            for _ in 0..2 {
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
                let response = t
                    .post(target.clone(), headers, b"{\"a\":1}".to_vec(), unexpected)
                    .await
                    .unwrap_or_else(|e| panic!("{path_name}: {e}"));
                assert_eq!(response.status(), StatusCode::OK, "{path_name}");
                let body = t.read_body(response).await.unwrap();
                assert_eq!(&body[..], b"{\"ok\":true}", "{path_name}");
            }
        }
    }

    #[test]
    fn host_headers_are_what_hyper_util_would_write() {
        let host = |url: &str| {
            direct::host_header(&url.parse().unwrap()).map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            host("http://127.0.0.1:8080/v1").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            host("http://example.com:80/v1").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            host("http://example.com/v1").as_deref(),
            Some("example.com")
        );
        assert_eq!(host("http://[::1]:9000/v1").as_deref(), Some("[::1]:9000"));
        // HTTPS may be HTTP/2 (the authority goes in `:authority`): left to hyper-util.
        assert_eq!(host("https://example.com:8443/v1"), None);
    }

    #[tokio::test]
    async fn redirects_are_answers_not_followed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/moved"))
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("location", format!("{}/elsewhere", server.uri()).as_str()),
            )
            .mount(&server)
            .await;
        Mock::given(path("/elsewhere"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        for (path_name, t) in transports(Limits::default(), Timeouts::default()) {
            let mut seen = None;
            let err = t
                .post(
                    format!("{}/moved", server.uri())
                        .parse::<reqwest::Url>()
                        .unwrap(),
                    HeaderMap::new(),
                    b"{}".to_vec(),
                    |status, _, _| {
                        seen = Some(status);
                        Error::protocol("kit", format!("HTTP {status}"), None)
                    },
                )
                .await
                .unwrap_err();
            assert_eq!(seen, Some(StatusCode::TEMPORARY_REDIRECT), "{path_name}");
            assert_eq!(err.kind(), ErrorKind::Protocol, "{path_name}");
        }
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
        let url = |p: &str| format!("{}{p}", server.uri()).parse().unwrap();
        let small = Limits {
            max_body_bytes: 1000,
            max_error_body_bytes: 100,
        };
        for (path_name, small) in transports(small, Timeouts::connect_only(Duration::from_secs(5)))
        {
            let response = post_empty(&small, url("/big")).await.unwrap();
            let err = small.read_body(response).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{path_name}");
            assert!(
                err.to_string().contains("1000-byte limit"),
                "{path_name}: {err}"
            );

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
            assert_eq!(seen, 100, "{path_name}");
            assert!(err.to_string().contains("500"), "{path_name}: {err}");
        }

        for (path_name, roomy) in transports(Limits::default(), Timeouts::default()) {
            let response = post_empty(&roomy, url("/big")).await.unwrap();
            assert_eq!(
                roomy.read_body(response).await.unwrap().len(),
                4096,
                "{path_name}"
            );
        }
    }

    /// A body larger than the limit is refused as it arrives even when the upstream does
    /// not announce its length (chunked), and one that arrives in pieces is put together.
    #[tokio::test]
    async fn chunked_bodies_are_bounded_and_joined() {
        let chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        let body: &'static [u8] = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let url = raw_upstream(chunked, body, Duration::from_secs(5)).await;
        for (path_name, t) in transports(Limits::default(), Timeouts::default()) {
            let response = post_empty(&t, url.parse().unwrap()).await.unwrap();
            let body = t.read_body(response).await.unwrap();
            assert_eq!(&body[..], b"hello world", "{path_name}");
        }
        let limits = Limits {
            max_body_bytes: 8,
            ..Limits::default()
        };
        for (path_name, t) in transports(limits, Timeouts::default()) {
            let response = post_empty(&t, url.parse().unwrap()).await.unwrap();
            let err = t.read_body(response).await.unwrap_err();
            assert!(
                err.to_string().contains("8-byte limit"),
                "{path_name}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn cut_off_bodies_are_protocol_errors() {
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n";
        // Ten of the hundred bytes, then the connection closes.
        let url = raw_upstream(head, b"0123456789", Duration::ZERO).await;
        for (path_name, t) in transports(Limits::default(), Timeouts::default()) {
            let response = post_empty(&t, url.parse().unwrap()).await.unwrap();
            let err = t.read_body(response).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{path_name}: {err}");
            assert!(err.to_string().contains("cut off"), "{path_name}: {err}");
        }
    }

    /// A stream that stops sending is ended by the idle timeout, after what it sent.
    #[tokio::test]
    async fn stalled_streams_end_at_the_idle_timeout() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        let url = raw_upstream(head, b"6\r\ndata: \r\n", Duration::from_secs(30)).await;
        let timeouts = Timeouts {
            idle: Duration::from_millis(300),
            ..Timeouts::default()
        };
        for (path_name, t) in transports(Limits::default(), timeouts) {
            let started = std::time::Instant::now();
            let response = post_empty(&t, url.parse().unwrap()).await.unwrap();
            t.expect_event_stream(&response).unwrap();
            let mut pieces = t.body_stream(response);
            assert_eq!(&pieces.next().await.unwrap().unwrap()[..], b"data: ");
            let err = pieces.next().await.unwrap().unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Timeout {
                        phase: TimeoutPhase::Idle,
                        ..
                    }
                ),
                "{path_name}: {err:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{path_name}: not held until the upstream gave up"
            );
            if path_name == "direct" {
                // (reqwest's body would wait again; readers stop at the first error anyway.)
                assert!(pieces.next().await.is_none(), "ends after the timeout");
            }
        }
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
        for (path_name, t) in transports(Limits::default(), timeouts) {
            let err = post_empty(&t, server.uri().parse().unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Timeout, "{path_name}");
        }
        assert!(bounded(Duration::from_secs(600)));
        assert!(!bounded(Timeouts::UNBOUNDED));
    }

    /// After a burst of concurrent requests, the client keeps at most its bound of idle
    /// connections open to the upstream.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_are_bounded_per_host() {
        let timeouts = Timeouts::connect_only(Duration::from_secs(5));
        for (path_name, http) in both(&timeouts, 2) {
            // Each answer takes 200 ms, so the burst needs one connection per request.
            let upstream = llm_core::testing::CountingServer::start(
                "{}".to_owned(),
                Duration::from_millis(200),
            )
            .await
            .unwrap();
            let addr = upstream.addr();
            let t = Transport::new("kit", http, timeouts);
            let calls = (0..8).map(|_| {
                let t = t.clone();
                async move {
                    let response = post_empty(&t, format!("http://{addr}/").parse().unwrap())
                        .await
                        .unwrap();
                    t.read_body(response).await.unwrap()
                }
            });
            let bodies = futures_util::future::join_all(calls).await;
            assert!(bodies.iter().all(|b| &b[..] == b"{}"), "{path_name}");
            assert_eq!(
                upstream.peak(),
                8,
                "{path_name}: one connection per concurrent call"
            );
            assert_eq!(
                upstream.open_at_most(2, Duration::from_secs(5)).await,
                Ok(2),
                "{path_name}: connections open after the burst (Err: stayed above the bound of 2)"
            );
        }
    }

    /// The direct path keeps plain-HTTP connections: requests one after another use one
    /// connection, whether the body was read to its end or the response was dropped unread.
    #[tokio::test]
    async fn plain_http_connections_are_reused() {
        let upstream = llm_core::testing::CountingServer::start("{}".to_owned(), Duration::ZERO)
            .await
            .unwrap();
        let timeouts = Timeouts::default();
        let [(_, direct), _] = both(&timeouts, 4);
        let pool = Arc::clone(&direct.direct.as_ref().unwrap().plain);
        let t = Transport::new("kit", direct, timeouts);
        let key = upstream.addr().to_string();
        let target = Target::from(format!("http://{key}/v1").parse::<reqwest::Url>().unwrap());
        let send = || t.post(target.clone(), HeaderMap::new(), Vec::new(), unexpected);
        for _ in 0..3 {
            let response = send().await.unwrap();
            assert_eq!(&t.read_body(response).await.unwrap()[..], b"{}");
            assert_eq!(pool.idle_count(&key), 1, "returned at the body's end");
        }
        drop(send().await.unwrap());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while pool.idle_count(&key) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "an unread answer's connection stays out"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let response = send().await.unwrap();
        assert_eq!(&t.read_body(response).await.unwrap()[..], b"{}");
        assert_eq!(upstream.accepted(), 1, "one connection for five requests");
    }

    /// Connections the upstream closes after each answer are not reused, on both paths:
    /// closed at once, the close is seen before the connection goes back to the pool;
    /// closed a moment later, while the connection is idle in the pool, the next request
    /// finds that out before writing and is sent on a new connection.
    #[tokio::test]
    async fn connections_closed_by_the_upstream_are_not_reused() {
        const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
        let at_once = raw_upstream(HEAD, b"{}", Duration::ZERO).await;
        let later = raw_upstream(HEAD, b"{}", Duration::from_millis(10)).await;
        for (path_name, t) in transports(Limits::default(), Timeouts::default()) {
            for (url, pause) in [
                (&at_once, Duration::ZERO),
                (&later, Duration::from_millis(60)),
            ] {
                for round in 0..5 {
                    tokio::time::sleep(pause).await;
                    let response = post_empty(&t, url.parse().unwrap())
                        .await
                        .unwrap_or_else(|e| panic!("{path_name}, {pause:?}, round {round}: {e}"));
                    assert_eq!(
                        &t.read_body(response).await.unwrap()[..],
                        b"{}",
                        "{path_name}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn refused_connections_are_connection_errors() {
        for (path_name, t) in transports(Limits::default(), Timeouts::default()) {
            let err = post_empty(&t, "http://127.0.0.1:9/".parse().unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Connection, "{path_name}: {err}");
        }
    }

    /// The test CA in `testdata` (it signed `localhost.pem`; valid until 2126).
    const TEST_CA: &[u8] = include_bytes!("../testdata/ca.pem");

    fn test_ca() -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(TEST_CA).unwrap()
    }

    /// An HTTPS upstream on 127.0.0.1 with a certificate for `localhost` signed by the test
    /// CA, offering HTTP/2 and HTTP/1.1 by ALPN, answering every request with the HTTP
    /// version it arrived in. Returns its port.
    async fn tls_upstream() -> u16 {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use rustls::pki_types::PrivateKeyDer;

        let certs = CertificateDer::pem_slice_iter(include_bytes!("../testdata/localhost.pem"))
            .collect::<std::result::Result<Vec<_>, _>>()
            .unwrap();
        let key =
            PrivateKeyDer::from_pem_slice(include_bytes!("../testdata/localhost.key")).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        |request: http::Request<hyper::body::Incoming>| async move {
                            let version = format!("{:?}", request.version());
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(Bytes::from(version)),
                            ))
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        port
    }

    /// Both paths trusting the test CA besides the system's roots.
    fn trusting_the_test_ca() -> [(&'static str, Transport); 2] {
        let timeouts = Timeouts::default();
        let direct = HttpClient {
            reqwest: http_client(&timeouts).unwrap().reqwest().clone(),
            direct: Some(DirectClient::new(
                &timeouts,
                DEFAULT_MAX_IDLE_PER_HOST,
                direct::tls_config(vec![test_ca()]).unwrap(),
            )),
        };
        let reqwest = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(TEST_CA).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        [
            ("direct", Transport::new("kit", direct, timeouts)),
            ("reqwest", Transport::new("kit", reqwest, timeouts)),
        ]
    }

    /// HTTPS: the certificate is checked against the roots, and HTTP/2 is chosen by ALPN,
    /// on both paths alike.
    #[tokio::test]
    async fn https_upstreams_are_verified_and_speak_http2_by_alpn() {
        let port = tls_upstream().await;
        for (path_name, t) in trusting_the_test_ca() {
            let response = t
                .post(
                    format!("https://localhost:{port}/v1/chat")
                        .parse::<reqwest::Url>()
                        .unwrap(),
                    HeaderMap::new(),
                    b"{}".to_vec(),
                    unexpected,
                )
                .await
                .unwrap_or_else(|e| panic!("{path_name}: {e:?}"));
            let body = t.read_body(response).await.unwrap();
            assert_eq!(&body[..], b"HTTP/2.0", "{path_name}");

            // The certificate names localhost, not the address.
            let err = post_empty(&t, format!("https://127.0.0.1:{port}/").parse().unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Connection, "{path_name}: {err}");
        }

        // Without the test CA the same upstream is refused: the system's roots do not know it.
        for (path_name, t) in transports(Limits::default(), Timeouts::default()) {
            let err = post_empty(&t, format!("https://localhost:{port}/").parse().unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Connection, "{path_name}: {err}");
        }
    }

    /// A connect that does not finish (here: a TLS handshake the upstream never answers)
    /// is a Connect timeout after the connect limit, on both paths.
    #[tokio::test]
    async fn connects_are_bounded_through_the_tls_handshake() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let timeouts = Timeouts {
            connect: Duration::from_millis(300),
            ..Timeouts::default()
        };
        for (path_name, t) in transports(Limits::default(), timeouts) {
            let started = std::time::Instant::now();
            let err = post_empty(&t, format!("https://localhost:{port}/").parse().unwrap())
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Timeout {
                        phase: TimeoutPhase::Connect,
                        ..
                    }
                ),
                "{path_name}: {err:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(5), "{path_name}");
        }
    }

    #[test]
    fn debug_output_names_the_path_only() {
        let timeouts = Timeouts::default();
        let [(_, direct), (_, reqwest)] = both(&timeouts, 4);
        assert_eq!(format!("{direct:?}"), "HttpClient { direct: true, .. }");
        assert_eq!(format!("{reqwest:?}"), "HttpClient { direct: false, .. }");
    }
}
