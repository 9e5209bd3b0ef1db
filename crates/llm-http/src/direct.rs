//! The direct path: a bare hyper client for `http://` upstreams, without reqwest's layers.
//!
//! reqwest wraps every request in a redirect layer, a retry layer, a URL round trip, proxy
//! matching and a boxed, timer-wrapped body; on the gateway's hot path those layers cost
//! about a fifth of its CPU per request (see `docs/performance.md`). A client made by
//! [`http_client`](crate::http_client) therefore sends plain-HTTP requests through
//! hyper-util's pooled client directly, with what the reqwest client would have added done
//! here: the same connect timeout, TCP settings, idle-connection bound and default headers,
//! no redirects (the reqwest client is built without them too), and the idle read timeout
//! enforced by one lazily-moved timer per body. It is not used when a proxy is configured
//! in the environment (reqwest honours `HTTP_PROXY` and friends; this path does not), nor
//! for a reqwest client handed in by the caller, whose settings are the caller's.

use std::{
    error::Error as StdError,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_core::Stream;
use http::{
    HeaderMap, HeaderValue, Request, Uri,
    header::{ACCEPT, USER_AGENT},
};
use http_body::Body as _;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use llm_core::{Error, Result, TimeoutPhase, kit::LazyDeadline};
use tokio::time::Instant;

use crate::{Timeouts, bounded};

/// The environment variables through which reqwest picks up a proxy for `http://` URLs.
const PROXY_VARS: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// The `user-agent` every client made here sends.
pub(crate) const USER_AGENT_VALUE: &str = concat!("llm-factory/", env!("CARGO_PKG_VERSION"));

/// hyper-util's pooled HTTP/1.1 client with the settings of [`crate::http_client_with`].
#[derive(Clone)]
pub(crate) struct DirectClient {
    client: Client<HttpConnector, Full<Bytes>>,
    connect: Duration,
}

impl DirectClient {
    /// The direct client for `timeouts` and `max_idle_per_host`, or `None` when the
    /// environment names a proxy for plain HTTP (those requests go through reqwest).
    #[expect(
        clippy::disallowed_methods,
        reason = "reads the variables reqwest reads for its proxy, to know when it would use one"
    )]
    pub(crate) fn unless_proxied(timeouts: &Timeouts, max_idle_per_host: usize) -> Option<Self> {
        let proxied = PROXY_VARS
            .iter()
            .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
        (!proxied).then(|| Self::new(timeouts, max_idle_per_host))
    }

    /// The direct client for `timeouts` and `max_idle_per_host`.
    pub(crate) fn new(timeouts: &Timeouts, max_idle_per_host: usize) -> Self {
        let mut connector = HttpConnector::new();
        // reqwest's defaults: no Nagle delay, keep-alive probes after 15 s every 15 s.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeouts.connect));
        connector.set_keepalive(Some(Duration::from_secs(15)));
        connector.set_keepalive_interval(Some(Duration::from_secs(15)));
        connector.set_keepalive_retries(Some(3));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Self {
            client,
            connect: timeouts.connect,
        }
    }

    /// POST `body` to `uri` with `headers` (plus the default `user-agent` and `accept`
    /// when the caller set none), and wait for the response headers.
    pub(crate) async fn post(
        &self,
        provider: &str,
        uri: Uri,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<http::Response<Incoming>> {
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT_VALUE));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
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

/// Whether an I/O error in `err`'s chain of sources is a timeout (how hyper-util reports
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
