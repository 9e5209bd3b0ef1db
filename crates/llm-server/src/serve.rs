//! The gateway's own HTTP/1.1 connection handling, with the bounds a server in front of
//! paid keys needs against slow and idle clients (what nginx's `client_header_timeout`,
//! `keepalive_timeout`, `send_timeout` and `worker_connections` do):
//!
//! - **header timeout**: a new connection must deliver a complete request head within
//!   `header_timeout` of being accepted, and a kept-alive one within `header_timeout` of
//!   the first byte of its next request;
//! - **keep-alive timeout**: a connection idle between requests (no byte of a next request)
//!   for `keep_alive_timeout` is closed;
//! - **send timeout**: a connection whose client stopped reading (our writes blocked on a
//!   full send buffer) for `send_timeout` is closed; a stream that is sending is never idle;
//! - **connection cap**: at `max_connections` open connections, the oldest idle one is
//!   closed for each new client; when none is idle the newest is refused (accepted and
//!   closed). Accepting never stops and never spins: when the process is out of file
//!   descriptors it closes an idle connection, pauses briefly and logs once a second.
//!
//! The timers are one sweep over the open connections every ~¼ of the shortest timeout,
//! not a timer per connection or per chunk; the request path touches two atomics per
//! request. The gateway speaks HTTP/1.1 only (no HTTP/2), so these limits cover every
//! connection it has.

use std::{
    collections::HashMap,
    future::Future,
    io,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
    time::{Duration, Instant},
};

use axum::{body::Body, extract::Request};
use futures_util::{future::Either, task::AtomicWaker};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use llm_factory::ServerSettings;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, watch},
};
use tower::ServiceExt as _;

use crate::{Gateway, handlers};

/// The connection bounds of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From accept (or from the first byte of a kept-alive connection's next request) to a
    /// complete request head. Default 30 s.
    pub header_timeout: Duration,
    /// Idle time between requests. Default 75 s.
    pub keep_alive_timeout: Duration,
    /// How long writes to a client that does not read may stay blocked. Default 60 s.
    pub send_timeout: Duration,
    /// Open client connections at most. Default: from the file-descriptor limit
    /// ([`default_max_connections`]).
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
            max_connections: default_max_connections(),
        }
    }
}

impl ConnectionLimits {
    /// Limits from a configuration's `server:` section, defaults elsewhere.
    #[must_use]
    pub fn from_settings(settings: &ServerSettings) -> Self {
        let defaults = Self::default();
        let secs = |value: Option<f64>, default: Duration| {
            value
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .filter(|d| !d.is_zero())
                .unwrap_or(default)
        };
        Self {
            header_timeout: secs(settings.header_timeout, defaults.header_timeout),
            keep_alive_timeout: secs(settings.keep_alive_timeout, defaults.keep_alive_timeout),
            send_timeout: secs(settings.send_timeout, defaults.send_timeout),
            max_connections: settings
                .max_connections
                .unwrap_or(defaults.max_connections)
                .max(1),
        }
    }

    fn sweep_every(&self) -> Duration {
        let shortest = self
            .header_timeout
            .min(self.keep_alive_timeout)
            .min(self.send_timeout);
        (shortest / 4).clamp(Duration::from_millis(25), Duration::from_secs(1))
    }
}

/// File descriptors kept for the listener, upstream sockets' bursts, logs and files.
const FD_MARGIN: u64 = 64;

/// Raise the soft file-descriptor limit to the hard one (as servers do at start) and
/// return the limit now in force, if it can be read.
pub fn raise_fd_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// The default connection cap: half the file descriptors left after a margin (each
/// client connection may hold one upstream socket), at least 16.
#[must_use]
pub fn default_max_connections() -> usize {
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(limit.saturating_sub(FD_MARGIN) / 2)
        .unwrap_or(usize::MAX)
        .max(16)
}

/// Why the gateway closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    HeaderTimeout = 0,
    KeepAliveTimeout = 1,
    SendTimeout = 2,
    /// Closed while idle to make room for a new client at the cap.
    Evicted = 3,
    /// A new client refused at the cap with nothing idle to close.
    Refused = 4,
}

const REASONS: [&str; 5] = [
    "header_timeout",
    "keep_alive_timeout",
    "send_timeout",
    "evicted_at_cap",
    "refused_at_cap",
];

/// Connection counters of this process, read at scrape time.
#[derive(Debug, Default)]
struct Stats {
    open: AtomicUsize,
    max: AtomicUsize,
    accepted: AtomicU64,
    closed: [AtomicU64; 5],
}

static STATS: Stats = Stats {
    open: AtomicUsize::new(0),
    max: AtomicUsize::new(0),
    accepted: AtomicU64::new(0),
    closed: [
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    ],
};

/// A snapshot of the connection counters of [`serve`] in this process.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Open client connections.
    pub open: usize,
    /// The cap (0 when [`serve`] is not running).
    pub max: usize,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections the gateway closed, by limit: `header_timeout`, `keep_alive_timeout`,
    /// `send_timeout`, `evicted_at_cap`, `refused_at_cap`.
    pub closed: std::collections::BTreeMap<&'static str, u64>,
}

/// The connection counters now.
#[must_use]
pub fn connection_stats() -> ConnectionStats {
    ConnectionStats {
        open: STATS.open.load(Ordering::Relaxed),
        max: STATS.max.load(Ordering::Relaxed),
        accepted: STATS.accepted.load(Ordering::Relaxed),
        closed: REASONS
            .iter()
            .zip(&STATS.closed)
            .map(|(name, count)| (*name, count.load(Ordering::Relaxed)))
            .collect(),
    }
}

fn count_close(reason: Reason) {
    STATS.closed[reason as usize].fetch_add(1, Ordering::Relaxed);
}

/// Milliseconds since `base`, never 0 (0 means "not set").
fn ms_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// One connection's state, shared by its IO wrapper, its requests and the sweeper.
#[derive(Debug)]
struct Conn {
    accepted_ms: u64,
    /// Requests being served (from the head to the end of the response body).
    in_flight: AtomicU32,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// When the connection last became idle (after its last response), in ms.
    idle_since_ms: AtomicU64,
    /// When the first byte of a next request head arrived while idle (0: none).
    head_started_ms: AtomicU64,
    /// Since when our writes are blocked (0: not blocked).
    blocked_since_ms: AtomicU64,
    /// Set once it is being closed.
    closing: AtomicBool,
    kill: Notify,
}

/// The clock of one [`serve`] run.
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> u64 {
        ms_since(self.0)
    }
}

impl Conn {
    fn close(&self, reason: Reason) -> bool {
        if self.closing.swap(true, Ordering::AcqRel) {
            return false;
        }
        count_close(reason);
        self.kill.notify_one();
        true
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Why the connection must close now, if it must.
    fn overdue(&self, now: u64, limits: &ConnectionLimits) -> Option<Reason> {
        let past = |since: u64, limit: Duration| {
            since != 0 && u128::from(now.saturating_sub(since)) > limit.as_millis()
        };
        // Writes blocked on a client that does not read: also after the response body was
        // handed over whole (a body of known length is dropped before its bytes are out).
        let blocked = self.blocked_since_ms.load(Ordering::Acquire);
        if blocked != 0 || !self.is_idle() {
            return past(blocked, limits.send_timeout).then_some(Reason::SendTimeout);
        }
        // A new connection's first head is timed from accept, not from its first byte:
        // one byte every so often must not buy more time.
        if self.requests.load(Ordering::Acquire) == 0 {
            return past(self.accepted_ms, limits.header_timeout).then_some(Reason::HeaderTimeout);
        }
        let head = self.head_started_ms.load(Ordering::Acquire);
        if head != 0 {
            return past(head, limits.header_timeout).then_some(Reason::HeaderTimeout);
        }
        let idle = self.idle_since_ms.load(Ordering::Acquire);
        past(idle, limits.keep_alive_timeout).then_some(Reason::KeepAliveTimeout)
    }
}

/// The open connections.
#[derive(Debug, Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    all_closed: Notify,
}

impl Registry {
    fn insert(&self, conn: Arc<Conn>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut conns = self.conns.lock();
        conns.insert(id, conn);
        STATS.open.store(conns.len(), Ordering::Relaxed);
        id
    }

    fn remove(&self, id: u64) {
        let mut conns = self.conns.lock();
        conns.remove(&id);
        STATS.open.store(conns.len(), Ordering::Relaxed);
        if conns.is_empty() {
            self.all_closed.notify_waiters();
        }
    }

    fn len(&self) -> usize {
        self.conns.lock().len()
    }

    /// Close the connection idle the longest; whether there was one.
    fn evict_oldest_idle(&self) -> bool {
        let victim = self
            .conns
            .lock()
            .values()
            .filter(|c| c.is_idle() && !c.closing.load(Ordering::Acquire))
            .min_by_key(|c| c.idle_since_ms.load(Ordering::Acquire).max(c.accepted_ms))
            .cloned();
        victim.is_some_and(|conn| conn.close(Reason::Evicted))
    }

    fn sweep(&self, now: u64, limits: &ConnectionLimits) {
        let overdue: Vec<(Arc<Conn>, Reason)> = self
            .conns
            .lock()
            .values()
            .filter_map(|c| c.overdue(now, limits).map(|r| (Arc::clone(c), r)))
            .collect();
        for (conn, reason) in overdue {
            conn.close(reason);
        }
    }
}

/// The socket, watched: the first byte of an idle connection's next head, and writes
/// blocked on a client that does not read.
struct Watched {
    io: TcpStream,
    conn: Arc<Conn>,
    clock: Clock,
    /// Bytes were read since the last write: the next write answers a request and goes out
    /// at once.
    read_since_write: bool,
    /// The length of the write deferred by the last yield (see [`Watched::defer`]).
    deferred: Option<usize>,
    /// Yields since the last write.
    yields: u8,
    /// The connection task's waker, and whether something woke it since the last yield.
    wake: Arc<TaskWake>,
}

/// The most times a write is deferred before it goes out regardless.
const MAX_WRITE_YIELDS: u8 = 32;

/// The waker a connection's future is polled with: it records that the task was woken
/// (by the upstream handing over a chunk, a timer, the client) before waking the task
/// itself, so that [`Watched::defer`] can tell a turn in which something happened from a
/// turn in which nothing did.
struct TaskWake {
    /// The task's own waker, registered at every poll.
    task: AtomicWaker,
    /// Set by every wake-up through this waker; cleared by [`Watched::defer`].
    woken: AtomicBool,
}

impl TaskWake {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            task: AtomicWaker::new(),
            woken: AtomicBool::new(false),
        })
    }
}

impl Wake for TaskWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// A connection's future, polled with its [`TaskWake`].
struct WithTaskWake<F> {
    inner: F,
    wake: Arc<TaskWake>,
    /// A waker made once from `wake` (the same waker at every poll, so what the inner
    /// future stored stays valid and is not cloned again).
    waker: Waker,
}

impl<F> WithTaskWake<F> {
    fn new(inner: F, wake: Arc<TaskWake>) -> Self {
        let waker = Waker::from(Arc::clone(&wake));
        Self { inner, wake, waker }
    }
}

impl<F: Future + Unpin> Future for WithTaskWake<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.wake.task.register(cx.waker());
        Pin::new(&mut this.inner).poll(&mut Context::from_waker(&this.waker))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.read_since_write = true;
        }
        if buf.filled().len() > before
            && this.conn.is_idle()
            && this.conn.head_started_ms.load(Ordering::Relaxed) == 0
        {
            this.conn
                .head_started_ms
                .store(this.clock.now(), Ordering::Release);
        }
        polled
    }
}

impl Watched {
    fn track<T>(&self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        let blocked = &self.conn.blocked_since_ms;
        match &polled {
            Poll::Pending => {
                if blocked.load(Ordering::Relaxed) == 0 {
                    blocked.store(self.clock.now(), Ordering::Release);
                }
            }
            Poll::Ready(_) => {
                if blocked.load(Ordering::Relaxed) != 0 {
                    blocked.store(0, Ordering::Release);
                }
            }
        }
        polled
    }

    /// Whether to hold a write of `len` bytes for one turn of the scheduler.
    ///
    /// A write that answers a request (bytes were read since the last write) goes out at
    /// once. A later write on the same response (the next pieces of a stream) yields first,
    /// once, and again as long as something happened meanwhile (the pending length grew,
    /// or anything woke the connection's task: the upstream connection handing over a
    /// chunk, even one that is not passed on): the tasks woken before us run, and every
    /// chunk already received leaves in one `writev` instead of one each. Nothing waits
    /// for a timer: after a turn in which nothing happened, the write goes out.
    fn defer(&mut self, len: usize) -> bool {
        if self.read_since_write || self.yields >= MAX_WRITE_YIELDS {
            return false;
        }
        let woken = self.wake.woken.swap(false, Ordering::AcqRel);
        if self.deferred.is_some_and(|before| len <= before) && !woken {
            return false;
        }
        self.deferred = Some(len);
        self.yields += 1;
        // Wakes the task without marking it woken by something else.
        self.wake.task.wake();
        true
    }

    fn wrote<T>(&mut self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if matches!(polled, Poll::Ready(Ok(_))) {
            self.read_since_write = false;
            self.deferred = None;
            self.yields = 0;
        }
        self.track(polled)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.defer(buf.len()) {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.defer(bufs.iter().map(|b| b.len()).sum()) {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.track(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Marks a request in flight until its response body is done (or dropped).
struct InFlight {
    conn: Arc<Conn>,
    clock: Clock,
}

impl InFlight {
    fn start(conn: &Arc<Conn>, clock: Clock) -> Self {
        conn.requests.fetch_add(1, Ordering::Relaxed);
        conn.head_started_ms.store(0, Ordering::Release);
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Self {
            conn: Arc::clone(conn),
            clock,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn
            .idle_since_ms
            .store(self.clock.now(), Ordering::Release);
        self.conn.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that ends its request's time in flight when it is done.
struct Tracked {
    body: Body,
    guard: Option<InFlight>,
}

impl HttpBody for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.guard = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serve `app` on `listener` with the bounds of `limits` until `shutdown` resolves; then
/// stop accepting, let every connection finish its current request (a graceful HTTP/1.1
/// shutdown: no new requests on kept-alive connections) and return once all are closed.
///
/// `app` is a [`Gateway`] (its chat completions take the direct path) or any axum
/// [`Router`](axum::Router).
///
/// # Errors
///
/// None today: accept errors (out of file descriptors, aborted handshakes) are logged
/// once a second and retried after a short pause, so a client can never stop the server.
/// The `Result` leaves room for listener failures that should end it.
pub async fn serve(
    listener: TcpListener,
    app: impl Into<Gateway>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let app: Gateway = app.into();
    let clock = Clock(Instant::now());
    let registry = Arc::new(Registry::default());
    STATS.max.store(limits.max_connections, Ordering::Relaxed);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sweeper = {
        let registry = Arc::clone(&registry);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(limits.sweep_every());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => registry.sweep(clock.now(), &limits),
                    _ = stop.wait_for(|stopping| *stopping) => break,
                }
            }
        })
    };
    let mut builder = http1::Builder::new();
    // One flat write buffer: frames are copied into it (small SSE events), and a held
    // write (see `Watched::defer`) is not cut by the vectored queue's limit of 16 frames.
    builder.keep_alive(true).writev(false);
    let mut shutdown = pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(error) => {
                // Out of file descriptors (or another resource): make room, pause, go on.
                let out_of_fds = matches!(error.raw_os_error(), Some(23 | 24));
                if out_of_fds {
                    registry.evict_oldest_idle();
                }
                if last_accept_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(%error, open = registry.len(), "accept failed; pausing briefly");
                    last_accept_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(if out_of_fds { 50 } else { 5 })).await;
                continue;
            }
        };
        STATS.accepted.fetch_add(1, Ordering::Relaxed);
        if registry.len() >= limits.max_connections && !registry.evict_oldest_idle() {
            count_close(Reason::Refused);
            drop(tcp);
            continue;
        }
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let now = clock.now();
        let conn = Arc::new(Conn {
            accepted_ms: now,
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(now),
            head_started_ms: AtomicU64::new(0),
            blocked_since_ms: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            kill: Notify::new(),
        });
        let id = registry.insert(Arc::clone(&conn));
        let wake = TaskWake::new();
        let io = TokioIo::new(Watched {
            io: tcp,
            conn: Arc::clone(&conn),
            clock,
            read_since_write: false,
            deferred: None,
            yields: 0,
            wake: Arc::clone(&wake),
        });
        let service = {
            let app = app.clone();
            let conn = Arc::clone(&conn);
            hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let guard = InFlight::start(&conn, clock);
                let request = request.map(Body::new);
                let response = match app.direct(&request) {
                    Some(state) => Either::Left(handlers::chat_direct(Arc::clone(state), request)),
                    None => Either::Right(app.router.clone().oneshot(request)),
                };
                async move {
                    let response = match response {
                        Either::Left(direct) => direct.await,
                        Either::Right(routed) => routed.await?,
                    };
                    // The body wrapped in place (no second box): one frame poll each.
                    Ok::<_, std::convert::Infallible>(response.map(|body| Tracked {
                        body,
                        guard: Some(guard),
                    }))
                }
            })
        };
        let connection = builder.serve_connection(io, service);
        let registry = Arc::clone(&registry);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let connection = pin!(connection);
            let mut connection = WithTaskWake::new(connection, wake);
            let mut draining = false;
            loop {
                tokio::select! {
                    result = &mut connection => {
                        if let Err(error) = result {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                        break;
                    }
                    () = conn.kill.notified() => break,
                    _ = stop.wait_for(|stopping| *stopping), if !draining => {
                        draining = true;
                        connection.inner.as_mut().graceful_shutdown();
                    }
                }
            }
            registry.remove(id);
        });
    }
    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    // Wait for the connections to finish their requests.
    loop {
        let mut closed = pin!(registry.all_closed.notified());
        closed.as_mut().enable();
        if registry.len() == 0 {
            break;
        }
        closed.await;
    }
    STATS.max.store(0, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::AtomicUsize,
        task::{Wake, Waker},
    };

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn write(watched: &mut Watched, cx: &mut Context<'_>, bufs: &[&[u8]]) -> Poll<usize> {
        // As `WithTaskWake` does at every poll of the connection.
        watched.wake.task.register(cx.waker());
        let slices: Vec<io::IoSlice<'_>> = bufs.iter().map(|b| io::IoSlice::new(b)).collect();
        match Pin::new(watched).poll_write_vectored(cx, &slices) {
            Poll::Ready(Ok(n)) => Poll::Ready(n),
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => Poll::Pending,
        }
    }

    /// An answer to a request goes out at once; a later write on the same response yields
    /// (waking itself) until nothing new joined it, then goes out with everything gathered.
    #[tokio::test]
    async fn writes_after_the_answer_wait_one_turn_to_gather_what_is_ready() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let clock = Clock(Instant::now());
        let mut watched = Watched {
            io: server,
            conn: Arc::new(Conn {
                accepted_ms: 0,
                in_flight: AtomicU32::new(1),
                requests: AtomicU64::new(1),
                idle_since_ms: AtomicU64::new(0),
                head_started_ms: AtomicU64::new(0),
                blocked_since_ms: AtomicU64::new(0),
                closing: AtomicBool::new(false),
                kill: Notify::new(),
            }),
            clock,
            read_since_write: false,
            deferred: None,
            yields: 0,
            wake: TaskWake::new(),
        };
        let wakes = Arc::new(CountingWaker::default());
        let waker = Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);

        // A request arrives: the answer's first write is not held.
        client.write_all(b"GET").await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::io::AsyncReadExt::read(&mut watched, &mut buf)
            .await
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(write(&mut watched, &mut cx, &[b"head"]), Poll::Ready(4));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 0);

        // The next piece yields once; a second piece joins it and it yields again; with
        // nothing new, both leave in one write.
        assert!(write(&mut watched, &mut cx, &[b"one"]).is_pending());
        assert!(write(&mut watched, &mut cx, &[b"one", b"two"]).is_pending());
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2);
        assert_eq!(
            write(&mut watched, &mut cx, &[b"one", b"two"]),
            Poll::Ready(6)
        );
        // A yield is not a blocked client.
        assert_eq!(watched.conn.blocked_since_ms.load(Ordering::Relaxed), 0);

        // A turn in which something woke the connection (an upstream chunk that was not
        // passed on) holds the write again although it did not grow; the yields' own
        // wake-ups do not count.
        let other = Waker::from(Arc::clone(&watched.wake));
        assert!(write(&mut watched, &mut cx, &[b"three"]).is_pending());
        other.wake_by_ref();
        assert!(write(&mut watched, &mut cx, &[b"three"]).is_pending());
        // The other wake came while the task was already woken by the yield: it only marks it.
        assert_eq!(wakes.0.load(Ordering::Relaxed), 4, "one wake-up per yield");
        assert_eq!(write(&mut watched, &mut cx, &[b"three"]), Poll::Ready(5));

        // A source that keeps growing is held at most MAX_WRITE_YIELDS turns.
        let piece = [b'x'; 8];
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut held = 0;
        loop {
            pieces.push(&piece);
            match write(&mut watched, &mut cx, &pieces) {
                Poll::Pending => held += 1,
                Poll::Ready(n) => {
                    assert_eq!(n, pieces.len() * piece.len());
                    break;
                }
            }
        }
        assert_eq!(held, usize::from(MAX_WRITE_YIELDS));

        let mut received = vec![0u8; 4 + 6 + 5 + pieces.len() * piece.len()];
        client.read_exact(&mut received).await.unwrap();
        assert!(received.starts_with(b"headonetwothree"));
    }
}
