//! Connection bounds of the `llm-server` binary, over real sockets: half-open heads, idle
//! keep-alive connections, clients that stop reading, the connection cap, live streams
//! that outlast every timeout, and an oversized upstream answer. Each test runs its own
//! gateway process, so its open file descriptors (`/proc/PID/fd`) and peak memory are its
//! own.

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::free_port;

const KEY: &str = "sk-upstream-PLANTED-0123456789";

/// A gateway process; killed on drop.
struct Gateway {
    child: Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Start the binary with `server` settings and `providers` (YAML).
    fn start(name: &str, server: &str, providers: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("llm-conn-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!("server:\n{server}\nproviders:\n{providers}"),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_llm-server"))
            .env_clear()
            .arg("--config")
            .arg(&config)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the gateway did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: TempDir(dir),
        }
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(Iterator::count)
            .unwrap_or(0)
    }

    /// Peak resident memory in MiB (`VmHWM`).
    fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            / 1024
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }

    /// One request on its own connection, `Connection: close`; status and body.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let mut stream = self.connect();
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        (
            status,
            if chunked {
                dechunk(body)
            } else {
                body.to_owned()
            },
        )
    }

    fn connections(&self) -> Value {
        let (status, body) = self.request("GET", "/v1/providers/status", None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["connections"].clone()
    }

    /// Wait until `done` holds, up to `limit`.
    fn wait_for(&self, limit: Duration, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < limit, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The open fds return to `idle` (the count before the test's connections).
    fn assert_fds_return_to(&self, idle: usize) {
        let started = Instant::now();
        while self.fds() > idle {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "fds {} did not return to the idle count {idle}",
                self.fds()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A chunked body's data.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Whether the server closed `stream` (EOF or reset), waiting up to the read timeout.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0_u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                return true;
            }
            Err(_) => return false,
        }
    }
}

const MOCK: &str = "  - provider: mock\n    model_name: mock-echo\n";

#[test]
fn half_open_heads_are_closed_after_the_header_timeout() {
    let gateway = Gateway::start(
        "heads",
        "  header_timeout: 1\n  keep_alive_timeout: 30\n  max_connections: 1000",
        MOCK,
    );
    let idle = gateway.fds();
    let mut halves: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = gateway.connect();
            stream
                .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    // A slow drip: a byte now and then must not buy time.
    let mut drip = gateway.connect();
    let started = Instant::now();
    for byte in b"GET /health/live HTTP/1.1\r\n" {
        if drip.write_all(&[*byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_by_server(&mut drip), "the slow drip was not closed");
    assert!(started.elapsed() < Duration::from_secs(6));
    for stream in &mut halves {
        assert!(closed_by_server(stream), "a half-open head was not closed");
    }
    let connections = gateway.connections();
    assert!(
        connections["closed"]["header_timeout"].as_u64().unwrap() >= 201,
        "{connections}"
    );
    drop(halves);
    drop(drip);
    gateway.assert_fds_return_to(idle);
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_keep_alive_timeout() {
    let gateway = Gateway::start(
        "idle",
        "  header_timeout: 1\n  keep_alive_timeout: 3\n  max_connections: 1000",
        MOCK,
    );
    let idle = gateway.fds();
    let mut kept: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut stream = gateway.connect();
            stream
                .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            let mut buf = [0_u8; 1024];
            let n = stream.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            stream
        })
        .collect();
    let answered = Instant::now();
    // Past the header timeout the idle connections are still open: idle is not a head.
    std::thread::sleep(Duration::from_millis(1800));
    for stream in &kept {
        stream.set_nonblocking(true).unwrap();
        let mut buf = [0_u8; 16];
        let still_open = matches!(
            (&*stream).read(&mut buf),
            Err(e) if e.kind() == ErrorKind::WouldBlock
        );
        assert!(still_open, "closed before the keep-alive timeout");
        stream.set_nonblocking(false).unwrap();
    }
    for stream in &mut kept {
        assert!(
            closed_by_server(stream),
            "an idle connection was not closed"
        );
    }
    assert!(answered.elapsed() >= Duration::from_secs(3));
    let connections = gateway.connections();
    assert!(
        connections["closed"]["keep_alive_timeout"]
            .as_u64()
            .unwrap()
            >= 50,
        "{connections}"
    );
    drop(kept);
    gateway.assert_fds_return_to(idle);
}

#[test]
fn at_the_connection_cap_a_new_client_is_still_served() {
    let gateway = Gateway::start(
        "cap",
        "  header_timeout: 60\n  keep_alive_timeout: 60\n  max_connections: 50",
        MOCK,
    );
    let idle = gateway.fds();
    let crowd: Vec<TcpStream> = (0..350).map(|_| gateway.connect()).collect();
    gateway.wait_for(Duration::from_secs(10), "the crowd to be accepted", |g| {
        g.connections()["accepted"].as_u64().unwrap_or(0) >= 350
    });
    let chat =
        json!({"model": "mock-echo", "messages": [{"role": "user", "content": "still here?"}]});
    let (status, body) = gateway.request("POST", "/v1/chat/completions", Some(&chat));
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "still here?");
    let connections = gateway.connections();
    assert!(connections["open"].as_u64().unwrap() <= 50, "{connections}");
    assert_eq!(connections["max"], 50);
    assert!(
        connections["closed"]["evicted_at_cap"].as_u64().unwrap() >= 300,
        "{connections}"
    );
    // The process holds no more sockets than the cap allows.
    assert!(
        gateway.fds() <= idle + 50 + 2,
        "fds {} with idle {idle}",
        gateway.fds()
    );
    drop(crowd);
    gateway.assert_fds_return_to(idle);
}

#[test]
fn a_live_stream_longer_than_every_timeout_is_not_cut() {
    let words: Vec<String> = (0..16).map(|i| format!("w{i}")).collect();
    let reply = words.join(" ");
    let gateway = Gateway::start(
        "stream",
        "  header_timeout: 1\n  keep_alive_timeout: 1\n  send_timeout: 1\n  max_connections: 100",
        &format!(
            "  - provider: mock\n    model_name: mock-slow\n    options: {{reply: \"{reply}\", chunk_delay_ms: 250}}\n"
        ),
    );
    let idle = gateway.fds();
    let started = Instant::now();
    let chat = json!({"model": "mock-slow", "stream": true, "messages": [{"role": "user", "content": "go"}]});
    let (status, body) = gateway.request("POST", "/v1/chat/completions", Some(&chat));
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "the stream outlasts the timeouts"
    );
    let text: String = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, reply);
    assert!(body.contains("data: [DONE]"), "{body}");
    gateway.assert_fds_return_to(idle);
}

#[test]
fn a_client_that_stops_reading_is_closed_after_the_send_timeout() {
    let gateway = Gateway::start(
        "send",
        "  header_timeout: 5\n  keep_alive_timeout: 5\n  send_timeout: 1\n  max_connections: 100",
        MOCK,
    );
    let idle = gateway.fds();
    // A 7 MiB answer (the echo of a 7 MiB prompt) to a client with a tiny receive window
    // that never reads: the gateway's writes block.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime
        .block_on(socket.connect(([127, 0, 0, 1], gateway.port).into()))
        .unwrap()
        .into_std()
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    let prompt = "x".repeat(7 * 1024 * 1024);
    let body = json!({"model": "mock-echo", "messages": [{"role": "user", "content": prompt}]})
        .to_string();
    let mut writer = &stream;
    write!(
        writer,
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    writer.write_all(body.as_bytes()).unwrap();
    gateway.wait_for(Duration::from_secs(15), "the send timeout", |g| {
        g.connections()["closed"]["send_timeout"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    });
    drop(stream);
    gateway.assert_fds_return_to(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mib_upstream_answer_is_an_error_and_memory_stays_bounded() {
    use axum::{Router, body::Body, routing::post};
    use futures_util::stream;

    // An OpenAI-compatible upstream answering a chat with 300 MiB (chunked, made as it is
    // sent, so the test process holds none of it).
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            let head = bytes::Bytes::from_static(
                br#"{"id":"chatcmpl-big","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":""#,
            );
            let piece = bytes::Bytes::from(vec![b'a'; 1024 * 1024]);
            let body = stream::iter(
                std::iter::once(head)
                    .chain(std::iter::repeat_n(piece, 300))
                    .map(Ok::<_, std::convert::Infallible>),
            );
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(body))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let gateway = Gateway::start(
        "big",
        "  max_connections: 100",
        &format!(
            "  - provider: openai\n    model_name: big\n    api_key: {KEY}\n    api_base: http://{upstream}/v1\n"
        ),
    );
    let chat = json!({"model": "big", "messages": [{"role": "user", "content": "everything"}]});
    let (status, body) = tokio::task::spawn_blocking(move || {
        let result = gateway.request("POST", "/v1/chat/completions", Some(&chat));
        (result, gateway)
    })
    .await
    .map(|(result, gateway)| {
        let peak = gateway.peak_rss_mib();
        assert!(peak < 150, "peak RSS {peak} MiB");
        result
    })
    .unwrap();
    assert!(matches!(status, 502 | 503), "{status}: {body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("byte limit"),
        "{error}"
    );
    assert!(!body.contains("PLANTED"));
}
