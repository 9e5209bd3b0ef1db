//! The direct path: hyper-util's pooled client with rustls, without reqwest's layers.
//!
//! reqwest wraps every request in a redirect layer, a retry layer, a URL round trip, proxy
//! matching and a boxed, timer-wrapped body; on the gateway's hot path those layers cost
//! about a fifth of its CPU per request (see `docs/performance.md`). A client made by
//! [`http_client`](crate::http_client) therefore sends requests through hyper-util's client
//! directly, set up as the reqwest client would be: rustls with the platform verifier
//! (the system's roots), TLS 1.2 and 1.3, HTTP/2 or HTTP/1.1 by ALPN; the connect timeout
//! over name lookup, TCP and TLS handshake; no Nagle delay, keep-alive probes, the
//! idle-connection bound; the default `user-agent` and `accept` headers; no redirects (the
//! reqwest client is built without them too); the idle read timeout as one lazily-moved
//! timer per body. It is not used when a proxy is configured in the environment (reqwest
//! honours `HTTP_PROXY` and friends; this path does not), nor for a reqwest client handed
//! in by the caller, whose settings are the caller's.

use std::{
    error::Error as StdError,
    future::Future,
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_core::Stream;
use http::{
    HeaderMap, HeaderValue, Request, Uri,
    header::{ACCEPT, HOST, USER_AGENT},
};
use http_body::Body as _;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use llm_core::{Error, Result, TimeoutPhase, kit::LazyDeadline};
use rustls::{ClientConfig, crypto::CryptoProvider, pki_types::CertificateDer};
use tokio::time::Instant;

use crate::{Timeouts, bounded};

/// The environment variables through which reqwest picks up a proxy.
const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The `user-agent` every client made here sends.
pub(crate) const USER_AGENT_VALUE: &str = concat!("llm-factory/", env!("CARGO_PKG_VERSION"));

type BoxError = Box<dyn StdError + Send + Sync>;

/// hyper-util's pooled client with the settings of [`crate::http_client_with`].
#[derive(Clone)]
pub(crate) struct DirectClient {
    client: Client<ConnectWithin<HttpsConnector<HttpConnector>>, Full<Bytes>>,
    connect: Duration,
}

/// The TLS settings reqwest's rustls client uses: the process's crypto provider (or
/// aws-lc-rs), TLS 1.2 and 1.3, the platform verifier over the system's roots and `extra`.
/// ALPN is set by the connector.
pub(crate) fn tls_config(extra: Vec<CertificateDer<'static>>) -> Result<ClientConfig> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = if extra.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
    }
    .map_err(|e| Error::config(format!("cannot set up TLS certificate checks: {e}")))?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The default TLS settings, built once per process (the system's roots are read once).
fn default_tls() -> Option<ClientConfig> {
    static DEFAULT: OnceLock<Option<ClientConfig>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| match tls_config(Vec::new()) {
            Ok(config) => Some(config),
            Err(err) => {
                tracing::debug!(error = %err, "the direct HTTP path is off: {err}");
                None
            }
        })
        .clone()
}

impl DirectClient {
    /// The direct client for `timeouts` and `max_idle_per_host`, or `None` when the
    /// environment names a proxy (those requests go through reqwest) or TLS cannot be set
    /// up (no system roots: reqwest reports that).
    #[expect(
        clippy::disallowed_methods,
        reason = "reads the variables reqwest reads for its proxy, to know when it would use one"
    )]
    pub(crate) fn unless_proxied(timeouts: &Timeouts, max_idle_per_host: usize) -> Option<Self> {
        let proxied = PROXY_VARS
            .iter()
            .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        if proxied {
            return None;
        }
        Some(Self::new(timeouts, max_idle_per_host, default_tls()?))
    }

    /// The direct client for `timeouts`, `max_idle_per_host` and `tls`.
    pub(crate) fn new(timeouts: &Timeouts, max_idle_per_host: usize, tls: ClientConfig) -> Self {
        let mut http = HttpConnector::new();
        // https:// URLs reach this connector through the TLS one.
        http.enforce_http(false);
        // reqwest's defaults: no Nagle delay, keep-alive probes after 15 s every 15 s.
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(15)));
        http.set_keepalive_interval(Some(Duration::from_secs(15)));
        http.set_keepalive_retries(Some(3));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(ConnectWithin {
                inner: https,
                limit: timeouts.connect,
            });
        Self {
            client,
            connect: timeouts.connect,
        }
    }

    /// POST `body` to `uri` with `headers` (plus the default `user-agent` and `accept`
    /// when the caller set none, and `host` when given and not set), and wait for the
    /// response headers.
    pub(crate) async fn post(
        &self,
        provider: &str,
        uri: Uri,
        host: Option<HeaderValue>,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<http::Response<Incoming>> {
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT_VALUE));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        if let Some(host) = host {
            headers.entry(HOST).or_insert(host);
        }
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        self.client
            .request(request)
            .await
            .map_err(|e| self.send_error(provider, e))
    }

    fn send_error(&self, provider: &str, err: hyper_util::client::legacy::Error) -> Error {
        if err.is_connect() && timed_out(&err) {
            Error::Timeout {
                provider: provider.to_owned().into(),
                phase: TimeoutPhase::Connect,
                after: self.connect,
            }
        } else {
            Error::connection(provider.to_owned(), err)
        }
    }
}

/// The `host` header hyper-util would set on an HTTP/1 request to a plain-HTTP `uri`: the
/// host, with the port unless it is 80. `None` for other schemes.
pub(crate) fn host_header(uri: &Uri) -> Option<HeaderValue> {
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        return None;
    }
    let host = uri.host()?;
    let value = match uri.port_u16() {
        Some(port) if port != 80 => HeaderValue::try_from(format!("{host}:{port}")),
        _ => HeaderValue::try_from(host),
    };
    value.ok()
}

/// A connector whose whole connect (name lookup, TCP, TLS handshake) is bounded by `limit`,
/// as reqwest's connect timeout is; running out is an I/O `TimedOut` error.
#[derive(Clone)]
struct ConnectWithin<C> {
    inner: C,
    limit: Duration,
}

impl<C> tower::Service<Uri> for ConnectWithin<C>
where
    C: tower::Service<Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, connect).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect timed out after {limit:?}"),
                )) as BoxError),
            }
        })
    }
}

/// Whether an I/O error in `err`'s chain of sources is a timeout (how the connector reports
/// its connect timeout).
fn timed_out(err: &(dyn StdError + 'static)) -> bool {
    let mut source = err.source();
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// A direct response body as classified byte pieces, with the idle read timeout (one timer
/// per body, moved only when it fires).
pub(crate) struct DirectBody {
    body: Incoming,
    provider: std::borrow::Cow<'static, str>,
    idle: Option<Idle>,
    /// Set once the idle timeout was reported: the body ends there.
    done: bool,
}

struct Idle {
    limit: Duration,
    last_read: Instant,
    deadline: LazyDeadline,
}

impl DirectBody {
    pub(crate) fn new(
        body: Incoming,
        provider: std::borrow::Cow<'static, str>,
        idle: Duration,
    ) -> Self {
        Self {
            body,
            provider,
            idle: bounded(idle).then(|| Idle {
                limit: idle,
                last_read: Instant::now(),
                deadline: LazyDeadline::default(),
            }),
            done: false,
        }
    }
}

impl Stream for DirectBody {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(idle) = &mut this.idle {
                        idle.last_read = Instant::now();
                    }
                    match frame.into_data() {
                        Ok(data) if data.is_empty() => {}
                        Ok(data) => return Poll::Ready(Some(Ok(data))),
                        // Trailers carry nothing a provider reads.
                        Err(_) => {}
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    return Poll::Ready(Some(Err(Error::protocol(
                        this.provider.clone(),
                        "the response body was cut off",
                        Some(Box::new(err)),
                    ))));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    let Some(idle) = &mut this.idle else {
                        return Poll::Pending;
                    };
                    let due = idle.last_read + idle.limit;
                    return match idle.deadline.poll_until(cx, due) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(()) => {
                            // Reported once; the stream ends after it.
                            let limit = idle.limit;
                            this.done = true;
                            Poll::Ready(Some(Err(Error::Timeout {
                                provider: this.provider.clone(),
                                phase: TimeoutPhase::Idle,
                                after: limit,
                            })))
                        }
                    };
                }
            }
        }
    }
}
