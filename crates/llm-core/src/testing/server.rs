use std::{
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::{JoinHandle, JoinSet},
};

/// One step of a scripted response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Write these bytes and flush them as one TCP write.
    Write(Bytes),
    /// Pause.
    Sleep(Duration),
    /// Keep the connection open without writing, until the server is dropped.
    Hang,
}

/// What the server does with one connection: the steps in order, then close.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// The steps.
    pub steps: Vec<Step>,
}

impl Script {
    /// A script from raw steps.
    #[must_use]
    pub fn new(steps: Vec<Step>) -> Self {
        Self { steps }
    }

    /// A response head for `status` with `headers`, for a body that ends when the connection
    /// closes.
    #[must_use]
    pub fn head(status: u16, content_type: &str, headers: &[(&str, &str)]) -> Bytes {
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\nconnection: close\r\n",
            reason(status)
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        Bytes::from(head)
    }

    /// An SSE response: the head, then each piece as its own TCP write with `pause` before
    /// it, then close. Pieces may split frames anywhere, even inside a UTF-8 character.
    #[must_use]
    pub fn sse(pieces: Vec<Bytes>, pause: Duration) -> Self {
        let mut steps = vec![Step::Write(Self::head(200, "text/event-stream", &[]))];
        for piece in pieces {
            if !pause.is_zero() {
                steps.push(Step::Sleep(pause));
            }
            steps.push(Step::Write(piece));
        }
        Self { steps }
    }

    /// A full response with a body, written at once (with `content-length`).
    #[must_use]
    pub fn full(status: u16, content_type: &str, headers: &[(&str, &str)], body: &[u8]) -> Self {
        Self {
            steps: vec![Step::Write(Bytes::from(full_response(
                status,
                content_type,
                headers,
                body,
            )))],
        }
    }

    /// A response whose `content-length` promises more than is sent before the connection
    /// closes: a body cut short.
    #[must_use]
    pub fn cut_body(status: u16, content_type: &str, body: &[u8], sent: usize) -> Self {
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            reason(status),
            body.len()
        )
        .into_bytes();
        head.extend_from_slice(&body[..sent.min(body.len())]);
        Self {
            steps: vec![Step::Write(Bytes::from(head))],
        }
    }

    /// Accept the connection and never answer.
    #[must_use]
    pub fn hang() -> Self {
        Self {
            steps: vec![Step::Hang],
        }
    }

    /// Close the connection without a response.
    #[must_use]
    pub fn close() -> Self {
        Self { steps: Vec::new() }
    }
}

/// A whole HTTP/1.1 response with `content-length` and `connection: close`.
pub(crate) fn full_response(
    status: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub(crate) fn reason(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("Status")
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The request line's method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A raw-TCP HTTP/1.1 server on `127.0.0.1` that plays one [`Script`] per connection (the
/// last script repeats) and records each request. Dropping it stops it.
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl ScriptedServer {
    /// Start a server playing `scripts`.
    ///
    /// # Errors
    ///
    /// When no port on 127.0.0.1 can be bound.
    pub async fn start(scripts: Vec<Script>) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let task = tokio::spawn(async move {
            let mut served = 0usize;
            // Dropping the set (when the server is dropped) aborts every connection task.
            let mut connections = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                let script = scripts
                    .get(served)
                    .or_else(|| scripts.last())
                    .cloned()
                    .unwrap_or_default();
                served += 1;
                let log = Arc::clone(&log);
                connections.spawn(serve(socket, script, log));
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            received,
            task,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received so far.
    pub async fn received(&self) -> Vec<Recorded> {
        self.received.lock().await.clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A keep-alive HTTP/1.1 upstream on 127.0.0.1 that answers every request with one JSON
/// `body` after `delay`, and counts its open connections: for tests of connection pools
/// (a burst opens one connection per concurrent request when `delay` keeps them busy).
#[derive(Debug)]
pub struct CountingServer {
    addr: SocketAddr,
    open: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl CountingServer {
    /// Start the server.
    ///
    /// # Errors
    ///
    /// When no port on 127.0.0.1 can be bound.
    pub async fn start(body: String, delay: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let open = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let answer = Bytes::from(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ));
        let (counted, peaked, all) = (Arc::clone(&open), Arc::clone(&peak), Arc::clone(&accepted));
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                all.fetch_add(1, Ordering::SeqCst);
                let now = counted.fetch_add(1, Ordering::SeqCst) + 1;
                peaked.fetch_max(now, Ordering::SeqCst);
                let (open, answer) = (Arc::clone(&counted), answer.clone());
                connections.spawn(async move {
                    while read_request(&mut socket).await.is_some() {
                        tokio::time::sleep(delay).await;
                        if socket.write_all(&answer).await.is_err() {
                            break;
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(Self {
            addr,
            open,
            peak,
            accepted,
            task,
        })
    }

    /// The address to connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far (a client that reuses its connections opens few).
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    #[must_use]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The most connections open at once so far.
    #[must_use]
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Wait (checking every 20 ms) until at most `bound` connections are open: `Ok` with
    /// how many are, or `Err` with how many still were after `within`.
    ///
    /// # Errors
    ///
    /// The number of open connections when more than `bound` stayed open for `within`.
    pub async fn open_at_most(&self, bound: usize, within: Duration) -> Result<usize, usize> {
        let started = tokio::time::Instant::now();
        loop {
            let open = self.open();
            if open <= bound {
                return Ok(open);
            }
            if started.elapsed() >= within {
                return Err(open);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: TcpStream, script: Script, log: Arc<Mutex<Vec<Recorded>>>) {
    if let Some(request) = read_request(&mut socket).await {
        log.lock().await.push(request);
    }
    for step in script.steps {
        match step {
            Step::Write(bytes) => {
                if socket.write_all(&bytes).await.is_err() || socket.flush().await.is_err() {
                    return;
                }
            }
            Step::Sleep(pause) => tokio::time::sleep(pause).await,
            Step::Hang => std::future::pending::<()>().await,
        }
    }
    let _ = socket.shutdown().await;
}

/// Read a request head (at most 64 KiB): the bytes read so far and where the head ends.
pub(crate) async fn read_head(socket: &mut TcpStream) -> Option<(Vec<u8>, usize)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some((buf, end));
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Read the rest of a body of `length` bytes after `body`'s first bytes.
pub(crate) async fn read_body(socket: &mut TcpStream, mut body: Vec<u8>, length: usize) -> Vec<u8> {
    let mut chunk = [0u8; 8192];
    while body.len() < length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body
}

async fn read_request(socket: &mut TcpStream) -> Option<Recorded> {
    let (buf, head_end) = read_head(socket).await?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body = read_body(socket, buf[head_end + 4..].to_vec(), length).await;
    Some(Recorded {
        method,
        target,
        headers,
        body: Bytes::from(body),
    })
}
