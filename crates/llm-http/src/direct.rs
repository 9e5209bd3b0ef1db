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
//!
//! Plain-HTTP upstreams (a local model server, a sidecar, the benchmarks' mock) skip
//! hyper-util's pool as well: [`PlainPool`] keeps their HTTP/1.1 connections itself, which
//! costs a fraction of hyper-util's pool per request, and the task that uses a connection
//! drives its I/O ([`Conn`]).

use std::{
    collections::{HashMap, VecDeque},
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
use hyper::{body::Incoming, client::conn::http1};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use llm_core::{Error, Result, TimeoutPhase, kit::LazyDeadline};
use parking_lot::Mutex;
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

/// How long an idle upstream connection is kept (hyper-util's and reqwest's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a plain-HTTP connection beyond `max_idle_per_host` is kept idle (see
/// [`PlainPool`]): long enough to carry a busy gateway from one moment to the next
/// without reconnecting, short enough that a burst's connections are closed (and their
/// memory freed) seconds after it.
const SURPLUS_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// hyper-util's pooled client with the settings of [`crate::http_client_with`], and the
/// pool of plain-HTTP connections.
#[derive(Clone)]
pub(crate) struct DirectClient {
    client: Client<ConnectWithin<HttpsConnector<HttpConnector>>, Full<Bytes>>,
    pub(crate) plain: Arc<PlainPool>,
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
        let plain = Arc::new(PlainPool::new(
            ConnectWithin {
                inner: http.clone(),
                limit: timeouts.connect,
            },
            max_idle_per_host,
            IDLE_TIMEOUT,
            SURPLUS_IDLE_TIMEOUT,
        ));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(max_idle_per_host)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(ConnectWithin {
                inner: https,
                limit: timeouts.connect,
            });
        Self {
            client,
            plain,
            connect: timeouts.connect,
        }
    }

    /// POST `body` to `uri` with `headers` (plus the default `user-agent` and `accept`
    /// when the caller set none), and wait for the response headers. A plain-HTTP target
    /// (`plain`) goes over a connection of [`PlainPool`], and its lease comes back with the
    /// response, to be returned when the body has been read to its end; anything else
    /// goes through hyper-util's client.
    pub(crate) async fn post(
        &self,
        provider: &str,
        uri: Uri,
        plain: Option<Arc<PlainTarget>>,
        mut headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<(http::Response<Incoming>, Option<Lease>)> {
        headers
            .entry(USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT_VALUE));
        headers
            .entry(ACCEPT)
            .or_insert(HeaderValue::from_static("*/*"));
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = http::Method::POST;
        if let Some(plain) = plain {
            headers.entry(HOST).or_insert_with(|| plain.host.clone());
            *request.uri_mut() = plain.origin.clone();
            *request.headers_mut() = headers;
            return self.post_plain(provider, uri, plain, request).await;
        }
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        self.client
            .request(request)
            .await
            .map(|response| (response, None))
            .map_err(|e| self.send_error(provider, e))
    }

    /// Send `request` (origin-form URI, `host` set) over a pooled connection to `plain`'s
    /// authority, or a new one to `uri`. A request that a reused connection closed before
    /// sending (the server had just closed it) is sent again on the next connection, as
    /// hyper-util does; on a new connection that is an error.
    async fn post_plain(
        &self,
        provider: &str,
        uri: Uri,
        plain: Arc<PlainTarget>,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(http::Response<Incoming>, Option<Lease>)> {
        loop {
            let (mut conn, reused) = match self.plain.checkout(&plain.key) {
                Some(Kept::Live(conn)) => (conn, true),
                Some(Kept::Socket(socket)) => match Conn::over(socket).await {
                    Ok(conn) => (conn, true),
                    Err(_) => continue,
                },
                None => {
                    let conn = self.plain.connect(uri.clone()).await.map_err(|err| {
                        if is_timeout(&*err) {
                            self.connect_timeout(provider)
                        } else {
                            Error::connection(provider.to_owned(), err)
                        }
                    })?;
                    (conn, false)
                }
            };
            // A pooled connection was ready when it went back (see `Lease`); a new one is
            // once its driver has run.
            let ready = if conn.sender.is_ready() {
                Ok(())
            } else {
                std::future::poll_fn(|cx| {
                    conn.drive(cx);
                    conn.sender.poll_ready(cx)
                })
                .await
            };
            if let Err(err) = ready {
                if reused {
                    continue;
                }
                return Err(Error::connection(provider.to_owned(), err));
            }
            // A request for an event stream is written one turn of the scheduler later
            // (see `waits_a_turn`).
            let mut wait_turn = waits_a_turn(&request);
            let sent = conn.sender.try_send_request(request);
            let mut sent = std::pin::pin!(sent);
            // The connection's I/O runs here, in the caller's task (nothing is spawned):
            // the request is written and the answer read as this future is polled.
            let answered = std::future::poll_fn(|cx| {
                if wait_turn {
                    wait_turn = false;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                conn.drive(cx);
                sent.as_mut().poll(cx)
            })
            .await;
            match answered {
                Ok(response) => {
                    let lease = Lease {
                        conn: Some(conn),
                        pool: Arc::clone(&self.plain),
                        key: Arc::clone(&plain.key),
                    };
                    return Ok((response, Some(lease)));
                }
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(Error::connection(provider.to_owned(), err.into_error())),
                },
            }
        }
    }

    fn send_error(&self, provider: &str, err: hyper_util::client::legacy::Error) -> Error {
        if err.is_connect() && timed_out(&err) {
            self.connect_timeout(provider)
        } else {
            Error::connection(provider.to_owned(), err)
        }
    }

    /// The connect timeout ran out (both paths report it the same way).
    fn connect_timeout(&self, provider: &str) -> Error {
        Error::Timeout {
            provider: provider.to_owned().into(),
            phase: TimeoutPhase::Connect,
            after: self.connect,
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

/// What a plain-HTTP [`crate::Target`] needs for [`PlainPool`], worked out once per target:
/// the request URI in origin form (`/v1/chat/completions`: HTTP/1 sends the path, the
/// authority goes in `host`), the `host` header, and the pool key (the authority).
#[derive(Debug)]
pub(crate) struct PlainTarget {
    origin: Uri,
    host: HeaderValue,
    key: Arc<str>,
}

impl PlainTarget {
    /// The plain-HTTP parts of `uri`; `None` for another scheme.
    pub(crate) fn of(uri: &Uri) -> Option<Self> {
        let host = host_header(uri)?;
        let authority = uri.authority()?;
        let origin = uri
            .path_and_query()
            .cloned()
            .map_or_else(|| Uri::from_static("/"), Uri::from);
        Some(Self {
            origin,
            host,
            key: Arc::from(authority.as_str()),
        })
    }
}

/// The request-sending half of a plain-HTTP upstream connection.
type Sender = http1::SendRequest<Full<Bytes>>;

/// The I/O half: hyper's connection state machine over the socket.
type Driver = http1::Connection<TokioIo<tokio::net::TcpStream>, Full<Bytes>>;

/// A plain-HTTP/1.1 upstream connection whose I/O is not a task of its own: whoever holds
/// it drives it ([`Conn::drive`]) while waiting on it. The request is written, and the
/// answer read into its body, in the task that sends the request and reads the body, so a
/// streamed chunk reaches the gateway's client without waking a second task (hyper-util
/// spawns one per connection; each chunk then crossed from it to the reader through a
/// wake-up). While the connection is idle in the pool nobody drives it; a close by the
/// server is noticed when it is next driven (see [`PlainPool::checkout`]).
struct Conn {
    sender: Sender,
    /// `None` once the connection has ended.
    driver: Option<Pin<Box<Driver>>>,
}

impl Conn {
    /// hyper's HTTP/1.1 client state over `io` (no I/O happens here).
    async fn over(io: TokioIo<tokio::net::TcpStream>) -> hyper::Result<Self> {
        let (sender, driver) = http1::handshake(io).await?;
        Ok(Self {
            sender,
            driver: Some(Box::pin(driver)),
        })
    }

    /// Let the connection do the I/O it can: write a queued request, read an answer into
    /// its body, notice a close. `false` once it has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(driver) = &mut self.driver else {
            return false;
        };
        match driver.as_mut().poll(cx) {
            Poll::Pending => true,
            Poll::Ready(ended) => {
                if let Err(err) = ended {
                    tracing::debug!(error = %err, "an upstream connection ended with an error");
                }
                self.driver = None;
                false
            }
        }
    }

    /// Whether the connection is open and ready for a request, once it has processed what
    /// it already read (a finished answer's end, or the server's close). Driven with a
    /// waker that wakes nobody: the caller does not wait on it.
    fn settle(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        self.drive(&mut cx) && self.sender.is_ready()
    }
}

/// An idle connection and when it became idle.
struct IdleConnection {
    kept: Kept,
    since: std::time::Instant,
}

/// How an idle connection is kept: whole, or as its bare socket.
enum Kept {
    /// Ready for a request at once, with hyper's state: its 8 KiB read and write buffers
    /// and its request queue (≈ 28 KiB in all).
    Live(Conn),
    /// Only the socket, once the connection has been idle for the pool's
    /// `surplus_timeout` (see [`tend`]); hyper's state is made again (no I/O) when it is
    /// taken.
    Socket(TokioIo<tokio::net::TcpStream>),
}

impl Conn {
    /// The bare socket, with hyper's buffers freed; `None` when the connection has ended
    /// or had read bytes that no request asked for (it is closed).
    fn into_socket(self) -> Option<TokioIo<tokio::net::TcpStream>> {
        let Self { sender, driver } = self;
        drop(sender);
        let parts = Pin::into_inner(driver?).into_parts();
        parts.read_buf.is_empty().then_some(parts.io)
    }
}

/// The idle HTTP/1.1 connections to plain-HTTP upstreams.
///
/// Per authority, up to `max_idle_per_host` connections are kept for `idle_timeout`
/// (the warm set); connections returned beyond that are kept only for `surplus_timeout`.
/// A fixed cap alone made a gateway busier than the cap reconnect all the time: at 256
/// concurrent requests and a cap of 64, every fifth request opened a new upstream
/// connection and closed another (`ss` counted ≈ 2,400 `TIME_WAIT` sockets a second),
/// because answers come back in batches and each batch overflowed the cap that the next
/// batch of requests then lacked. The surplus is bounded by how many requests were in
/// flight a moment ago (the gateway's `max_concurrency`), and for no longer than
/// `surplus_timeout`: a task closes it when nothing else comes by (see [`tend`]), so
/// the memory of a burst's connections is freed seconds after the burst. The same task
/// strips the warm connections idle that long down to their sockets ([`Kept`]).
///
/// It replaces hyper-util's pool for `http://` targets because on the gateway's hot path
/// that pool cost about 6,000 instructions per request (`callgrind`): its key hashed with
/// SipHash a byte at a time at checkout and again at return, a task spawned per response
/// to return the connection once the body is read, its checkout future and connection
/// bookkeeping. Here the body hands its connection back when it has been read to its end
/// ([`Lease`]), and the key is the target's authority, worked out once per target. A
/// connection is taken newest first; expired ones are dropped as they are met, and one the
/// server closed while it was idle is found out when used ([`PlainPool::checkout`]). HTTPS
/// stays with hyper-util (its connections may be HTTP/2, shared by many requests).
pub(crate) struct PlainPool {
    idle: Mutex<IdleHosts>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    surplus_timeout: Duration,
    connector: ConnectWithin<HttpConnector>,
}

/// The idle connections per authority, oldest first, and whether a [`tend`] task runs.
#[derive(Default)]
struct IdleHosts {
    hosts: HashMap<Arc<str>, VecDeque<IdleConnection>, foldhash::fast::RandomState>,
    tending: bool,
}

impl PlainPool {
    fn new(
        connector: ConnectWithin<HttpConnector>,
        max_idle_per_host: usize,
        idle_timeout: Duration,
        surplus_timeout: Duration,
    ) -> Self {
        Self {
            idle: Mutex::new(IdleHosts::default()),
            max_idle_per_host,
            idle_timeout,
            surplus_timeout: surplus_timeout.min(idle_timeout),
            connector,
        }
    }

    /// The newest idle connection to `key` that has not expired. It is not polled here:
    /// if the server closed it while it was idle, the request sent on it finds that out
    /// before writing (hyper reads before it writes) and comes back unsent, to be sent on
    /// the next connection ([`DirectClient::post`]); polling every connection here to find
    /// out first cost more than that rare retry.
    fn checkout(&self, key: &str) -> Option<Kept> {
        let now = std::time::Instant::now();
        let mut idle = self.idle.lock();
        let connections = idle.hosts.get_mut(key)?;
        let connection = connections.pop_back()?;
        if now.saturating_duration_since(connection.since) > self.idle_timeout {
            // The newest is expired: so are the older ones.
            connections.clear();
            return None;
        }
        Some(connection.kept)
    }

    /// Keep `conn` (open and ready) for the next request to `key`; expired connections
    /// are dropped on the way. A [`tend`] task is started if none runs (and there is a
    /// runtime): it closes the surplus and strips the rest down to their sockets once they
    /// have been idle for `surplus_timeout`.
    fn put(self: &Arc<Self>, key: &Arc<str>, conn: Conn) {
        if self.max_idle_per_host == 0 {
            return;
        }
        let now = std::time::Instant::now();
        let mut idle = self.idle.lock();
        let IdleHosts { hosts, tending } = &mut *idle;
        let connections = match hosts.get_mut(&**key) {
            Some(connections) => connections,
            None => hosts.entry(Arc::clone(key)).or_default(),
        };
        let mut expired = Vec::new();
        self.prune(connections, now, &mut expired);
        connections.push_back(IdleConnection {
            kept: Kept::Live(conn),
            since: now,
        });
        let runtime = if *tending {
            None
        } else {
            tokio::runtime::Handle::try_current().ok()
        };
        if runtime.is_some() {
            *tending = true;
        }
        drop(idle);
        drop(expired);
        if let Some(runtime) = runtime {
            // Spawned without the lock: a task dropped at once (the runtime is shutting
            // down) takes it to clear the flag.
            runtime.spawn(tend(Tending(Some(Arc::downgrade(self)))));
        }
    }

    /// Move the oldest of `connections` to `expired` while they have expired: the surplus
    /// beyond `max_idle_per_host` after `surplus_timeout`, the rest after `idle_timeout`.
    /// (The caller drops them, closing them, once it has let go of the lock.)
    fn prune(
        &self,
        connections: &mut VecDeque<IdleConnection>,
        now: std::time::Instant,
        expired: &mut Vec<IdleConnection>,
    ) {
        while let Some(oldest) = connections.front() {
            let limit = if connections.len() > self.max_idle_per_host {
                self.surplus_timeout
            } else {
                self.idle_timeout
            };
            if now.saturating_duration_since(oldest.since) <= limit {
                break;
            }
            expired.extend(connections.pop_front());
        }
    }

    /// A new HTTP/1.1 connection to `uri`'s authority (TCP within the connect timeout).
    async fn connect(&self, uri: Uri) -> std::result::Result<Conn, BoxError> {
        use tower::ServiceExt as _;
        let io: TokioIo<tokio::net::TcpStream> = self.connector.clone().oneshot(uri).await?;
        Ok(Conn::over(io).await?)
    }

    /// How many of `key`'s idle connections are kept whole (tests).
    #[cfg(test)]
    pub(crate) fn live_count(&self, key: &str) -> usize {
        self.idle.lock().hosts.get(key).map_or(0, |connections| {
            connections
                .iter()
                .filter(|c| matches!(c.kept, Kept::Live(_)))
                .count()
        })
    }

    /// How many idle connections `key` has (tests).
    #[cfg(test)]
    pub(crate) fn idle_count(&self, key: &str) -> usize {
        self.idle.lock().hosts.get(key).map_or(0, VecDeque::len)
    }
}

/// Look after the idle connections of the pool `tending` names while any are live or in
/// surplus, waking every half `surplus_timeout`: close the expired ones and the surplus
/// idle for `surplus_timeout`, and strip the others idle that long down to their sockets
/// ([`Kept::Socket`]: an idle connection then holds a few hundred bytes instead of
/// ≈ 28 KiB). It ends when nothing is left to do (the next connection put back starts a
/// new one) or the pool is gone. Without it a burst's connections, and their buffers,
/// would stay until the next request to the same host came by.
async fn tend(mut tending: Tending) {
    let Some(pool) = tending.0.clone() else {
        return;
    };
    loop {
        let Some(tick) = pool.upgrade().map(|pool| pool.surplus_timeout / 2) else {
            return;
        };
        tokio::time::sleep(tick).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let now = std::time::Instant::now();
        let mut expired = Vec::new();
        let mut idle = pool.idle.lock();
        let mut more = false;
        for connections in idle.hosts.values_mut() {
            pool.prune(connections, now, &mut expired);
            more |= connections.len() > pool.max_idle_per_host;
            if !connections.iter().any(|c| matches!(c.kept, Kept::Live(_))) {
                continue;
            }
            let mut kept = VecDeque::with_capacity(connections.len());
            for IdleConnection {
                kept: connection,
                since,
            } in connections.drain(..)
            {
                let connection = match connection {
                    Kept::Live(conn)
                        if now.saturating_duration_since(since) >= pool.surplus_timeout =>
                    {
                        // A connection that ended while idle is closed here.
                        let Some(socket) = conn.into_socket() else {
                            continue;
                        };
                        Kept::Socket(socket)
                    }
                    Kept::Live(conn) => {
                        more = true;
                        Kept::Live(conn)
                    }
                    socket @ Kept::Socket(_) => socket,
                };
                kept.push_back(IdleConnection {
                    kept: connection,
                    since,
                });
            }
            *connections = kept;
        }
        if !more {
            idle.tending = false;
            tending.0 = None;
        }
        drop(idle);
        drop(expired);
        if !more {
            return;
        }
    }
}

/// Clears the pool's `tending` flag when a [`tend`] task is dropped before it ends by
/// itself (its runtime shut down, perhaps before it first ran), so that the next
/// connection put back starts another.
struct Tending(Option<std::sync::Weak<PlainPool>>);

impl Drop for Tending {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take().and_then(|pool| pool.upgrade()) {
            pool.idle.lock().tending = false;
        }
    }
}

/// How long a returned connection may take to finish its last exchange (see [`Lease`]).
const SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// A plain-HTTP connection lent to one response, driven by the body that reads it
/// ([`DirectBody`]) and handed back to its [`PlainPool`] when it is dropped: by the body
/// when it has read the end, or with the body or the response otherwise.
pub(crate) struct Lease {
    conn: Option<Conn>,
    pool: Arc<PlainPool>,
    key: Arc<str>,
}

impl Lease {
    /// Drive the connection (see [`Conn::drive`]).
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(conn) = &mut self.conn {
            conn.drive(cx);
        }
    }
}

impl Drop for Lease {
    /// Return the connection once it is ready for the next request: at once when it has
    /// finished the exchange (the usual case, also for a stream whose reader stopped at
    /// `[DONE]` with the chunked body's end already read), else from a small task that
    /// drives it there, for at most [`SETTLE_LIMIT`]. A body dropped half-read makes hyper
    /// drain what has arrived or close the connection, so that task ends at once.
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if conn.sender.is_ready() || conn.settle() {
            self.pool.put(&self.key, conn);
        } else if conn.driver.is_some()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (pool, key) = (Arc::clone(&self.pool), Arc::clone(&self.key));
            runtime.spawn(async move {
                let ready = std::future::poll_fn(|cx| {
                    if conn.drive(cx) {
                        conn.sender.poll_ready(cx).map(|r| r.is_ok())
                    } else {
                        Poll::Ready(false)
                    }
                });
                if let Ok(true) = tokio::time::timeout(SETTLE_LIMIT, ready).await {
                    pool.put(&key, conn);
                }
            });
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Whether `err` or an error in its chain of sources is an I/O timeout.
fn is_timeout(err: &(dyn StdError + 'static)) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        || timed_out(err)
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
    /// The plain-HTTP connection to return once the body has ended.
    lease: Option<Lease>,
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
        lease: Option<Lease>,
        provider: std::borrow::Cow<'static, str>,
        idle: Duration,
    ) -> Self {
        Self {
            body,
            lease,
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
        // Whether the connection was driven since the body last had nothing.
        let mut driven = false;
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
                Poll::Ready(None) => {
                    // The connection goes back for the next request now.
                    drop(this.lease.take());
                    return Poll::Ready(None);
                }
                Poll::Pending if this.lease.is_some() && !driven => {
                    // Nothing in the body yet: let the connection read what has arrived
                    // (and hand over what it already read, now that the body asked for
                    // more), then look again before waiting.
                    driven = true;
                    if let Some(lease) = &mut this.lease {
                        lease.drive(cx);
                    }
                }
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

/// Whether `request` (to a plain-HTTP upstream) is written one turn of the scheduler after
/// it is queued rather than at once: a request for an event stream (`accept:
/// text/event-stream`).
///
/// A plain-HTTP upstream usually runs on the same machine (a local model server, a sidecar),
/// and on loopback the write that hands it a request also wakes it: when its core is idle
/// that is an inter-processor interrupt, paid by the writer. A gateway streaming answers
/// leaves the upstream's core idle between requests (a streamed answer costs it far more than
/// the upstream), and `perf` put 15 % of its CPU in those wake-ups (`sendto` →
/// `sock_def_readable`). Waiting one turn lets the requests that became ready together be
/// written together, so one wake-up serves several: at 16 concurrent streams, +14 to +22 %
/// chunks/s in turns against the same build without it. Requests for a whole answer are
/// written at once: for them the wait bought +7 % requests/s at concurrency 64 but cost 6 %
/// at 256 (each request's state held across the turn), and nothing at 1 or 16; letting only
/// the first eight of a turn wait still cost 3–10 % at 256 for +1–3 % at 64.
fn waits_a_turn<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(ACCEPT)
        .is_some_and(|accept| accept.as_bytes().starts_with(b"text/event-stream"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use llm_core::testing::CountingServer;

    use super::*;

    fn pool_to(
        upstream: &CountingServer,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> (Arc<PlainPool>, Uri, Arc<str>) {
        let connector = ConnectWithin {
            inner: HttpConnector::new(),
            limit: Duration::from_secs(5),
        };
        let (uri, key) = target_of(upstream);
        let pool = PlainPool::new(
            connector,
            max_idle,
            idle_timeout,
            Duration::from_millis(100),
        );
        (Arc::new(pool), uri, key)
    }

    /// `upstream`'s URI and pool key.
    fn target_of(upstream: &CountingServer) -> (Uri, Arc<str>) {
        let uri: Uri = format!("http://{}/", upstream.addr()).parse().unwrap();
        let key = Arc::from(uri.authority().unwrap().as_str());
        (uri, key)
    }

    #[test]
    fn only_requests_for_an_event_stream_wait_a_turn() {
        let request = |accept: Option<&'static str>| {
            let mut request = Request::new(());
            if let Some(accept) = accept {
                request
                    .headers_mut()
                    .insert(ACCEPT, HeaderValue::from_static(accept));
            }
            request
        };
        assert!(waits_a_turn(&request(Some("text/event-stream"))));
        assert!(waits_a_turn(&request(Some(
            "text/event-stream; charset=utf-8"
        ))));
        assert!(!waits_a_turn(&request(Some("application/json"))));
        assert!(!waits_a_turn(&request(Some("*/*"))));
        assert!(!waits_a_turn(&request(None)));
    }

    #[test]
    fn plain_targets_are_worked_out_once() {
        let target = PlainTarget::of(&"http://127.0.0.1:8080/v1/chat?x=1".parse().unwrap())
            .expect("plain HTTP");
        assert_eq!(target.origin, "/v1/chat?x=1");
        assert_eq!(target.host, "127.0.0.1:8080");
        assert_eq!(&*target.key, "127.0.0.1:8080");
        let bare = PlainTarget::of(&"http://example.com".parse().unwrap()).unwrap();
        assert_eq!(bare.origin, "/");
        assert_eq!(bare.host, "example.com");
        assert!(PlainTarget::of(&"https://example.com/v1".parse().unwrap()).is_none());
    }

    /// `max_idle_per_host` connections are kept for the idle timeout and the surplus for the
    /// surplus timeout (closed by `tend` with nothing else coming by), expired ones are
    /// never handed out, and one the server closed while idle is found closed when driven.
    #[tokio::test]
    async fn the_pool_is_bounded_and_expires_idle_connections() {
        let upstream = CountingServer::start("{}".to_owned(), Duration::ZERO)
            .await
            .unwrap();
        let (pool, uri, key) = pool_to(&upstream, 2, Duration::from_secs(60));
        let mut senders = Vec::new();
        for _ in 0..3 {
            senders.push(pool.connect(uri.clone()).await.unwrap());
        }
        for sender in senders {
            pool.put(&key, sender);
        }
        assert_eq!(pool.idle_count(&key), 3, "the surplus is kept for a moment");
        let waited = Instant::now();
        while pool.idle_count(&key) > 2 && waited.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pool.idle_count(&key), 2, "`tend` closed the surplus");
        assert!(
            waited.elapsed() >= Duration::from_millis(100),
            "not before it expired"
        );
        assert_eq!(
            upstream.open_at_most(2, Duration::from_secs(5)).await,
            Ok(2),
            "the surplus connection closed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(pool.idle_count(&key), 2, "the warm set stays");
        assert!(pool.checkout(&key).is_some());
        assert!(pool.checkout(&key).is_some());
        assert!(pool.checkout(&key).is_none(), "empty");
        assert!(pool.checkout("127.0.0.1:1").is_none(), "another host");

        // Expired: kept no longer than the idle timeout.
        let (pool, uri, key) = pool_to(&upstream, 2, Duration::from_millis(50));
        pool.put(&key, pool.connect(uri.clone()).await.unwrap());
        assert_eq!(pool.idle_count(&key), 1);
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(pool.checkout(&key).is_none(), "expired");

        // Closed while idle (the server went away): taken as it is, and found closed as
        // soon as it is driven (a request sent on it comes back unsent: see
        // `connections_closed_by_the_upstream_are_not_reused` in lib.rs).
        let (pool, uri, key) = pool_to(&upstream, 2, Duration::from_secs(60));
        let mut conn = pool.connect(uri).await.unwrap();
        assert!(conn.settle(), "a new connection is ready");
        pool.put(&key, conn);
        drop(upstream);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut conn = match pool.checkout(&key).expect("kept while idle") {
            Kept::Live(conn) => conn,
            Kept::Socket(socket) => Conn::over(socket).await.unwrap(),
        };
        assert!(!conn.settle(), "closed");
        assert!(pool.checkout(&key).is_none(), "taken");
    }

    /// Send one request on `conn` and read its answer to the end, driving the connection
    /// here as `DirectClient::post` and `DirectBody` do.
    async fn exchange(conn: &mut Conn) -> Vec<u8> {
        let request = Request::post("/")
            .header(HOST, "upstream")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        std::future::poll_fn(|cx| {
            conn.drive(cx);
            conn.sender.poll_ready(cx)
        })
        .await
        .unwrap();
        let sent = conn.sender.send_request(request);
        let mut sent = std::pin::pin!(sent);
        let response = std::future::poll_fn(|cx| {
            conn.drive(cx);
            sent.as_mut().poll(cx)
        })
        .await
        .unwrap();
        let mut body = response.into_body();
        let mut read = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| {
            conn.drive(cx);
            Pin::new(&mut body).poll_frame(cx)
        })
        .await
        {
            if let Ok(data) = frame.unwrap().into_data() {
                read.extend_from_slice(&data);
            }
        }
        read
    }

    /// Wait (up to 5 s) until `key` has no live idle connection left.
    async fn until_stripped(pool: &PlainPool, key: &str) {
        let waited = Instant::now();
        while pool.live_count(key) > 0 && waited.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pool.live_count(key), 0, "stripped to its socket");
    }

    /// A `tend` task dropped with its runtime clears the flag, so that a pool used on in
    /// another runtime is tended there.
    #[test]
    fn a_pool_is_tended_again_after_its_runtime_shut_down() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        let (pool, key) = first.block_on(async {
            let upstream = CountingServer::start("{}".to_owned(), Duration::ZERO)
                .await
                .unwrap();
            let (pool, uri, key) = pool_to(&upstream, 2, Duration::from_secs(60));
            pool.put(&key, pool.connect(uri).await.unwrap());
            assert!(pool.idle.lock().tending, "a task tends the pool");
            (pool, key)
        });
        drop(first);
        assert!(!pool.idle.lock().tending, "cleared with the runtime");
        drop(pool.checkout(&key));

        runtime().block_on(async {
            let upstream = CountingServer::start("{}".to_owned(), Duration::ZERO)
                .await
                .unwrap();
            let (uri, key) = target_of(&upstream);
            pool.put(&key, pool.connect(uri).await.unwrap());
            until_stripped(&pool, &key).await;
        });
    }

    /// A connection idle for the surplus timeout keeps only its socket (hyper's buffers
    /// freed) and is made whole again when taken, on the same TCP connection; one the
    /// server closed while it was kept so is found closed when driven.
    #[tokio::test]
    async fn idle_connections_are_stripped_to_their_sockets() {
        let upstream = CountingServer::start("{\"ok\":1}".to_owned(), Duration::ZERO)
            .await
            .unwrap();
        let (pool, uri, key) = pool_to(&upstream, 2, Duration::from_secs(60));
        let mut conn = pool.connect(uri).await.unwrap();
        assert_eq!(exchange(&mut conn).await, b"{\"ok\":1}");
        assert!(conn.settle(), "ready for the next request");
        pool.put(&key, conn);
        assert_eq!(pool.live_count(&key), 1, "whole at first");
        until_stripped(&pool, &key).await;
        assert_eq!(pool.idle_count(&key), 1, "still kept");

        for round in 0..2 {
            let Some(Kept::Socket(socket)) = pool.checkout(&key) else {
                panic!("round {round}: kept as its socket");
            };
            let mut conn = Conn::over(socket).await.unwrap();
            assert_eq!(exchange(&mut conn).await, b"{\"ok\":1}", "round {round}");
            assert_eq!(upstream.accepted(), 1, "round {round}: the same connection");
            assert!(conn.settle());
            pool.put(&key, conn);
            until_stripped(&pool, &key).await;
        }

        drop(upstream);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(Kept::Socket(socket)) = pool.checkout(&key) else {
            panic!("kept as its socket");
        };
        let mut conn = Conn::over(socket).await.unwrap();
        assert!(!conn.settle(), "found closed when driven");
    }
}
