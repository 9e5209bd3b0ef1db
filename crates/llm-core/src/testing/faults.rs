//! A fault-injection upstream speaking the OpenAI Chat Completions wire format.

use std::{
    fmt, io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::{JoinHandle, JoinSet},
};

/// How a 429 tells the client when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfter {
    /// No hint.
    None,
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <HTTP-date>`, this many seconds from now.
    HttpDate(u64),
    /// `retry-after-ms: <milliseconds>` (OpenAI).
    Millis(u64),
    /// `x-ms-retry-after-ms: <milliseconds>` (Azure OpenAI).
    AzureMillis(u64),
}

/// One fault, applied to one request. "Chunks" are content chunks of a stream: after the
/// role chunk, each carries one word; `n = 0` fails before any content (the gateway can
/// still fail over), `n >= 1` after content was relayed (the stream is committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer normally.
    None,
    /// HTTP 429 with an OpenAI error body and the given hint.
    RateLimited(RetryAfter),
    /// This HTTP status (500, 502, 503, 529, ...) with an OpenAI error body.
    Status(u16),
    /// Read the request, then reset the connection (TCP RST) before any response byte.
    ResetBeforeHeaders,
    /// Read the request and never answer.
    TimeoutBeforeHeaders,
    /// Stream `n` content chunks, then go silent with the connection open. Non-streaming:
    /// send the head, then go silent.
    StallAfter(usize),
    /// Stream `n` content chunks, then close the connection mid-body. Non-streaming: close
    /// after half of the promised body.
    CutAfter(usize),
    /// Stream `n` content chunks, then a frame that is not JSON. Non-streaming: a body that
    /// is not JSON.
    MalformedAfter(usize),
    /// Stream `n` content chunks, then an in-band `{"error": ...}` frame. Non-streaming: a
    /// 200 whose body is an error object.
    InBandErrorAfter(usize),
    /// A 200 whose stream starts with an `event: error` frame. Non-streaming: as
    /// `InBandErrorAfter(0)`.
    ErrorEvent,
    /// A 200 stream of `: keep-alive` comments only, forever. Non-streaming: headers, then
    /// a space (one chunk) every 100 ms, the way some servers keep a connection warm,
    /// forever.
    KeepAliveOnly,
    /// A normal answer, sent in small pieces with this pause before each.
    SlowDrip(Duration),
}

/// A short description, for messages and tables.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::RateLimited(RetryAfter::None) => f.write_str("429 without Retry-After"),
            Self::RateLimited(RetryAfter::Seconds(s)) => write!(f, "429 Retry-After: {s}"),
            Self::RateLimited(RetryAfter::HttpDate(s)) => {
                write!(f, "429 Retry-After: HTTP-date (+{s} s)")
            }
            Self::RateLimited(RetryAfter::Millis(ms)) => write!(f, "429 retry-after-ms: {ms}"),
            Self::RateLimited(RetryAfter::AzureMillis(ms)) => {
                write!(f, "429 x-ms-retry-after-ms: {ms}")
            }
            Self::Status(status) => write!(f, "HTTP {status}"),
            Self::ResetBeforeHeaders => f.write_str("connection reset before headers"),
            Self::TimeoutBeforeHeaders => f.write_str("timeout before headers"),
            Self::StallAfter(n) => write!(f, "stall after {n} chunks"),
            Self::CutAfter(n) => write!(f, "cut after {n} chunks"),
            Self::MalformedAfter(n) => write!(f, "malformed JSON frame after {n} chunks"),
            Self::InBandErrorAfter(n) => write!(f, "in-band error frame after {n} chunks"),
            Self::ErrorEvent => f.write_str("200 then an error event"),
            Self::KeepAliveOnly => f.write_str("keep-alive comments only"),
            Self::SlowDrip(pause) => write!(f, "slow drip ({pause:?} per piece)"),
        }
    }
}

/// Which requests a [`FaultServer`] faults.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Plan {
    /// Every request gets this fault ([`Fault::None`]: a healthy upstream).
    Always(Fault),
    /// About `percent` % of requests, chosen by a hash of the request number and `seed`, get
    /// one of `faults` (in turn); the others are answered normally.
    Random {
        /// The share of faulted requests, 0 to 100.
        percent: u8,
        /// Selects which requests fail.
        seed: u64,
        /// The faults used, in turn.
        faults: Vec<Fault>,
    },
}

/// Counters of what a [`FaultServer`] did.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    faulted: AtomicU64,
}

/// A raw-TCP HTTP/1.1 upstream on `127.0.0.1` that answers OpenAI Chat Completions requests
/// (JSON, or SSE with chunked transfer encoding when the body asks for `"stream": true`)
/// and injects the faults of its [`Plan`], which can be changed while it runs. One request
/// per connection. It can also stop listening, so connections are refused, and listen
/// again on the same port. Dropping it stops it.
///
/// Every request must carry `Authorization: Bearer <key>` or `api-key: <key>` with the
/// server's expected key, or it gets a 401 (so a test proves the key was sent).
#[derive(Debug)]
pub struct FaultServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct State {
    label: String,
    key: String,
    plan: Mutex<Plan>,
    counters: Counters,
}

impl FaultServer {
    /// Start a healthy server that answers as `label` and expects `key`.
    ///
    /// # Errors
    ///
    /// When no port on 127.0.0.1 can be bound.
    pub async fn start(label: &str, key: &str) -> io::Result<Self> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), label, key).await
    }

    /// As [`FaultServer::start`], listening on `addr`.
    ///
    /// # Errors
    ///
    /// When `addr` cannot be bound.
    pub async fn start_at(addr: SocketAddr, label: &str, key: &str) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            label: label.to_owned(),
            key: key.to_owned(),
            plan: Mutex::new(Plan::Always(Fault::None)),
            counters: Counters::default(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(Self {
            addr,
            state,
            task: Mutex::new(Some(task)),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT/v1`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The label it answers as (the `content` of its answers starts with it).
    #[must_use]
    pub fn label(&self) -> &str {
        &self.state.label
    }

    /// Replace the plan; requests already being answered keep their fault.
    pub async fn set(&self, plan: Plan) {
        *self.state.plan.lock().await = plan;
    }

    /// Fault every request with `fault`.
    pub async fn fail_with(&self, fault: Fault) {
        self.set(Plan::Always(fault)).await;
    }

    /// Answer every request normally.
    pub async fn heal(&self) {
        self.set(Plan::Always(Fault::None)).await;
    }

    /// Stop listening: new connections are refused until [`FaultServer::listen`].
    pub async fn refuse(&self) {
        if let Some(task) = self.task.lock().await.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listen again on the same port.
    ///
    /// # Errors
    ///
    /// When the port cannot be bound again.
    pub async fn listen(&self) -> io::Result<()> {
        let mut task = self.task.lock().await;
        if task.is_none() {
            let listener = TcpListener::bind(self.addr).await?;
            *task = Some(tokio::spawn(accept_loop(listener, Arc::clone(&self.state))));
        }
        Ok(())
    }

    /// Requests received (with any fault, or none).
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.state.counters.requests.load(Ordering::Acquire)
    }

    /// Requests that got a fault.
    #[must_use]
    pub fn faulted(&self) -> u64 {
        self.state.counters.faulted.load(Ordering::Acquire)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.try_lock()
            && let Some(task) = task.take()
        {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    // Dropping the set (when the loop is aborted) aborts every connection task.
    let mut connections = JoinSet::new();
    while let Ok((socket, _)) = listener.accept().await {
        let _ = socket.set_nodelay(true);
        connections.spawn(serve(socket, Arc::clone(&state)));
        while connections.try_join_next().is_some() {}
    }
}

/// What the request asked for.
struct Asked {
    stream: bool,
    model: String,
    authorized: bool,
}

async fn serve(mut socket: TcpStream, state: Arc<State>) {
    let Some(asked) = read_request(&mut socket, &state.key).await else {
        return;
    };
    let number = state.counters.requests.fetch_add(1, Ordering::AcqRel) + 1;
    if !asked.authorized {
        let body = error_body("Incorrect API key provided.", "invalid_request_error");
        let _ = write_full(&mut socket, 401, &[], body.as_bytes()).await;
        return;
    }
    let fault = match &*state.plan.lock().await {
        Plan::Always(fault) => *fault,
        Plan::Random {
            percent,
            seed,
            faults,
        } => {
            let hash = crate::mock::splitmix64(seed ^ number);
            if hash % 100 < u64::from(*percent) && !faults.is_empty() {
                let index = usize::try_from((hash / 100) % faults.len() as u64).unwrap_or(0);
                faults.get(index).copied().unwrap_or(Fault::None)
            } else {
                Fault::None
            }
        }
    };
    if fault != Fault::None {
        state.counters.faulted.fetch_add(1, Ordering::AcqRel);
    }
    let _ = respond(&mut socket, &state.label, &asked, fault).await;
}

async fn respond(
    socket: &mut TcpStream,
    label: &str,
    asked: &Asked,
    fault: Fault,
) -> io::Result<()> {
    match fault {
        Fault::RateLimited(hint) => {
            let header;
            let headers: Vec<(&str, &str)> = match hint {
                RetryAfter::None => vec![],
                RetryAfter::Seconds(s) => {
                    header = s.to_string();
                    vec![("retry-after", header.as_str())]
                }
                RetryAfter::HttpDate(s) => {
                    header = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(s));
                    vec![("retry-after", header.as_str())]
                }
                RetryAfter::Millis(ms) => {
                    header = ms.to_string();
                    vec![("retry-after-ms", header.as_str())]
                }
                RetryAfter::AzureMillis(ms) => {
                    header = ms.to_string();
                    vec![("x-ms-retry-after-ms", header.as_str())]
                }
            };
            let body = error_body("Rate limit reached for requests.", "requests");
            write_full(socket, 429, &headers, body.as_bytes()).await
        }
        Fault::Status(status) => {
            let body = error_body(
                "The server had an error while processing your request.",
                "server_error",
            );
            write_full(socket, status, &[], body.as_bytes()).await
        }
        Fault::ResetBeforeHeaders => {
            socket.set_zero_linger()?;
            Ok(())
        }
        Fault::TimeoutBeforeHeaders => std::future::pending().await,
        Fault::None | Fault::SlowDrip(_) if !asked.stream => {
            let body = answer_json(label, &asked.model);
            match fault {
                Fault::SlowDrip(pause) => {
                    write_head(socket, 200, "application/json", Some(body.len())).await?;
                    for piece in body.as_bytes().chunks(16) {
                        tokio::time::sleep(pause).await;
                        write_flush(socket, piece).await?;
                    }
                    Ok(())
                }
                _ => write_full(socket, 200, &[], body.as_bytes()).await,
            }
        }
        Fault::StallAfter(_) if !asked.stream => {
            write_head(socket, 200, "application/json", Some(64)).await?;
            std::future::pending().await
        }
        Fault::CutAfter(_) if !asked.stream => {
            let body = answer_json(label, &asked.model);
            write_head(socket, 200, "application/json", Some(body.len())).await?;
            write_flush(socket, &body.as_bytes()[..body.len() / 2]).await
        }
        Fault::MalformedAfter(_) if !asked.stream => {
            write_full(socket, 200, &[], br#"{"id": "chatcmpl-x", "choices": [{"#).await
        }
        Fault::InBandErrorAfter(_) | Fault::ErrorEvent if !asked.stream => {
            let body = error_body("The model is overloaded.", "server_error");
            write_full(socket, 200, &[], body.as_bytes()).await
        }
        Fault::KeepAliveOnly if !asked.stream => {
            write_head(socket, 200, "application/json", None).await?;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                write_flush(socket, b"1\r\n \r\n").await?;
            }
        }
        _ => stream(socket, label, asked, fault).await,
    }
}

/// The SSE answer, in chunked transfer encoding, with `fault` applied.
async fn stream(
    socket: &mut TcpStream,
    label: &str,
    asked: &Asked,
    fault: Fault,
) -> io::Result<()> {
    write_head(socket, 200, "text/event-stream", None).await?;
    let model = serde_json::to_string(&asked.model).unwrap_or_default();
    let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
    let frame = |delta: &str, finish: &str| {
        chunk(&format!(
            "data: {{\"id\":\"chatcmpl-fault\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":{model},\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        ))
    };
    match fault {
        Fault::ErrorEvent => {
            let body = error_body("The model is overloaded.", "server_error");
            write_flush(
                socket,
                chunk(&format!("event: error\ndata: {body}\n\n")).as_bytes(),
            )
            .await?;
            return write_flush(socket, b"0\r\n\r\n").await;
        }
        Fault::KeepAliveOnly => loop {
            write_flush(socket, chunk(": keep-alive\n\n").as_bytes()).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        },
        _ => {}
    }
    let pause = match fault {
        Fault::SlowDrip(pause) => pause,
        _ => Duration::ZERO,
    };
    send(
        socket,
        pause,
        frame(r#"{"role":"assistant","content":""}"#, "null"),
    )
    .await?;
    let words = answer_words(label);
    for (sent, word) in words.iter().enumerate() {
        match fault {
            Fault::StallAfter(n) if sent == n => return std::future::pending().await,
            Fault::CutAfter(n) if sent == n => return socket.shutdown().await,
            Fault::MalformedAfter(n) if sent == n => {
                send(
                    socket,
                    pause,
                    chunk("data: {\"id\":\"chatcmpl-fault\",\"choices\":[{\"delta\":\n\n"),
                )
                .await?;
                return write_flush(socket, b"0\r\n\r\n").await;
            }
            Fault::InBandErrorAfter(n) if sent == n => {
                let body = error_body("The model is overloaded.", "server_error");
                send(socket, pause, chunk(&format!("data: {body}\n\n"))).await?;
                return write_flush(socket, b"0\r\n\r\n").await;
            }
            _ => {}
        }
        let text = serde_json::to_string(word).unwrap_or_default();
        send(
            socket,
            pause,
            frame(&format!("{{\"content\":{text}}}"), "null"),
        )
        .await?;
    }
    send(socket, pause, frame("{}", "\"stop\"")).await?;
    let usage = format!(
        "data: {{\"id\":\"chatcmpl-fault\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":{model},\"choices\":[],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":{},\"total_tokens\":{}}}}}\n\n",
        words.len(),
        words.len() + 5
    );
    send(socket, pause, chunk(&usage)).await?;
    send(socket, pause, chunk("data: [DONE]\n\n")).await?;
    write_flush(socket, b"0\r\n\r\n").await
}

/// Write `bytes` after `pause`.
async fn send(socket: &mut TcpStream, pause: Duration, bytes: String) -> io::Result<()> {
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
    write_flush(socket, bytes.as_bytes()).await
}

/// The answer's words: `"<label> "`, `"says "`, `"hello "`, `"to "`, `"you."`.
fn answer_words(label: &str) -> Vec<String> {
    let mut words = vec![format!("{label} ")];
    words.extend(["says ", "hello ", "to ", "you."].map(str::to_owned));
    words
}

/// The text every successful answer carries: `"<label> says hello to you."`.
#[must_use]
pub fn answer_text(label: &str) -> String {
    answer_words(label).concat()
}

fn answer_json(label: &str, model: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer_text(label)},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    })
    .to_string()
}

fn error_body(message: &str, kind: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        .to_string()
}

async fn write_flush(socket: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    socket.write_all(bytes).await?;
    socket.flush().await
}

async fn write_head(
    socket: &mut TcpStream,
    status: u16,
    content_type: &str,
    length: Option<usize>,
) -> io::Result<()> {
    let framing = length.map_or_else(
        || "transfer-encoding: chunked".to_owned(),
        |n| format!("content-length: {n}"),
    );
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\n{framing}\r\nconnection: close\r\n\r\n",
        super::server::reason(status)
    );
    write_flush(socket, head.as_bytes()).await
}

async fn write_full(
    socket: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let bytes = super::server::full_response(status, "application/json", headers, body);
    write_flush(socket, &bytes).await?;
    socket.shutdown().await
}

/// Read one request: whether it asks for a stream, its model, and whether it carries `key`.
async fn read_request(socket: &mut TcpStream, key: &str) -> Option<Asked> {
    let (buf, head_end) = super::server::read_head(socket).await?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut length = 0usize;
    let mut authorized = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("authorization") {
            authorized |= value.strip_prefix("Bearer ") == Some(key);
        } else if name.eq_ignore_ascii_case("api-key") {
            authorized |= value == key;
        }
    }
    let body = super::server::read_body(socket, buf[head_end + 4..].to_vec(), length).await;
    if body.len() < length {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    Some(Asked {
        stream: json.get("stream").and_then(serde_json::Value::as_bool) == Some(true),
        model: json
            .get("model")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        authorized,
    })
}
