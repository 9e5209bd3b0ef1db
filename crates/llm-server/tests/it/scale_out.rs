//! Scale-out: two gateway processes share deployments' health through a real
//! `redis-server` on 127.0.0.1 (started here; `.ci/run` installs the Debian package).
//!
//! Without `redis-server` on the machine these tests say so and pass, so that
//! `cargo test --workspace` works with nothing but the Rust toolchain; CI sets
//! `LLM_FACTORY_REQUIRE_REDIS=1`, which turns a missing server into a failure.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::support::{client, free_port, wait_for_port};

const COOLING_KEY: &str = "sk-scale-cooling-000000000001";
const HEALTHY_KEY: &str = "sk-scale-healthy-000000000002";
const LATER_KEY: &str = "sk-scale-later-00000000000003";
const LIMITED_KEY: &str = "sk-scale-limited-000000000004";
const REDIS_PASSWORD: &str = "PLANTED-redis-password-0123456789";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-scale-out-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `redis-server` of our own on 127.0.0.1, without persistence.
struct Redis {
    binary: PathBuf,
    port: u16,
    password: Option<&'static str>,
    child: Option<Child>,
}

impl Redis {
    /// `None` (with a notice) when `redis-server` is missing and not required.
    #[expect(
        clippy::disallowed_methods,
        clippy::print_stderr,
        reason = "the test finds redis-server on PATH, learns whether CI requires it, and says when it skips"
    )]
    fn start(password: Option<&'static str>) -> Option<Self> {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([
                "/usr/bin".into(),
                "/usr/sbin".into(),
                "/usr/local/bin".into(),
            ])
            .map(|dir| dir.join("redis-server"))
            .find(|path| path.exists());
        let Some(binary) = found else {
            assert!(
                std::env::var_os("LLM_FACTORY_REQUIRE_REDIS").is_none(),
                "redis-server is required (LLM_FACTORY_REQUIRE_REDIS is set) but not installed: apt-get install redis-server"
            );
            eprintln!(
                "NOTICE: redis-server is not installed; the scale-out tests did not run (apt-get install redis-server)"
            );
            return None;
        };
        let mut redis = Self {
            binary,
            port: free_port(),
            password,
            child: None,
        };
        redis.spawn();
        Some(redis)
    }

    fn spawn(&mut self) {
        let mut command = Command::new(&self.binary);
        if let Some(password) = self.password {
            command.args(["--requirepass", password]);
        }
        let child = command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut answer = [0u8; 7];
                let auth = self
                    .password
                    .map(|p| format!("AUTH {p}\r\n"))
                    .unwrap_or_default();
                let mut ok = [0u8; 5];
                if stream.write_all(auth.as_bytes()).is_ok()
                    && (auth.is_empty() || stream.read_exact(&mut ok).is_ok())
                    && stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop (`true`) or resume the server without closing its sockets: a Redis that is
    /// slow rather than gone.
    fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn url(&self) -> String {
        match self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A gateway process.
struct Replica {
    child: Child,
    port: u16,
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    /// A gateway serving `providers` (YAML list items) with `router` settings; the Redis
    /// URL comes from YAML or, with `redis_from_env`, from `LLM_FACTORY_REDIS_URL`.
    async fn start(
        dir: &std::path::Path,
        name: &str,
        providers: &str,
        router: &str,
        redis: &str,
        redis_from_env: bool,
    ) -> Self {
        let config = dir.join(format!("{name}.yaml"));
        let shared = if redis_from_env {
            String::new()
        } else {
            format!("  shared_state: '{redis}'\n")
        };
        std::fs::write(
            &config,
            format!("providers:\n{providers}router:\n{router}{shared}"),
        )
        .unwrap();
        let port = free_port();
        let log = dir.join(format!("{name}.err"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_llm-server"));
        command
            .env_clear()
            .env("HOME", dir)
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(&config)
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if redis_from_env {
            command.env("LLM_FACTORY_REDIS_URL", redis);
        }
        let child = command.spawn().unwrap();
        wait_for_port(port).await;
        Self {
            child,
            port,
            log,
            http: client(),
        }
    }

    async fn status(&self) -> Value {
        self.http
            .get(format!(
                "http://127.0.0.1:{}/v1/providers/status",
                self.port
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Wait until the replica shares its state (at most 10 s).
    async fn until_shared(&self) {
        let started = Instant::now();
        loop {
            let status = self.status().await;
            if status["shared_state"]["connected"] == true {
                assert_eq!(status["shared_state"]["backend"], "redis");
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the replica did not connect to Redis: {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn state_of(&self, key_tail: &str) -> String {
        let status = self.status().await;
        status["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"].as_str().unwrap().ends_with(key_tail))
            .map(|d| d["state"].as_str().unwrap().to_owned())
            .unwrap()
    }

    async fn ask(&self, model: &str) -> reqwest::Response {
        self.http
            .post(format!(
                "http://127.0.0.1:{}/v1/chat/completions",
                self.port
            ))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
    }

    /// What it logged (the gateway logs to stderr).
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// An OpenAI-shaped upstream: `COOLING_KEY` and `LATER_KEY` are always rate limited
/// (Retry-After 30 s); the others answer.
async fn upstream() -> MockServer {
    let server = MockServer::start().await;
    for key in [COOLING_KEY, LATER_KEY] {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(header("authorization", format!("Bearer {key}").as_str()))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "30")
                    .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})),
            )
            .mount(&server)
            .await;
    }
    for key in [HEALTHY_KEY, LIMITED_KEY] {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(header("authorization", format!("Bearer {key}").as_str()))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(llm_core::testing::openai_format::completion("ok", (3, 2))),
            )
            .mount(&server)
            .await;
    }
    server
}

async fn calls_with(server: &MockServer, key: &str) -> usize {
    let bearer = format!("Bearer {key}");
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| {
            r.headers
                .get("authorization")
                .is_some_and(|v| v.to_str().unwrap_or("") == bearer)
        })
        .count()
}

/// Two entries of one model: `first` tried first, `HEALTHY_KEY` after it.
fn pair(model: &str, first: &str, base: &str) -> String {
    format!(
        "  - {{provider: openai, model_name: {model}, api_key: {first}, api_base: '{base}', priority: 0}}\n\
         \x20 - {{provider: openai, model_name: {model}, api_key: {HEALTHY_KEY}, api_base: '{base}', priority: 1}}\n"
    )
}

/// Replica A meets a rate limit; replica B must skip that deployment from then on. Returns
/// how long B took to see the cooldown.
async fn cooldown_propagates(
    a: &Replica,
    b: &Replica,
    model: &str,
    key: &str,
    server: &MockServer,
) -> Duration {
    let before = calls_with(server, key).await;
    let answer = a.ask(model).await;
    assert_eq!(answer.status(), 200, "A fails over to the healthy key");
    let seen_by_a = Instant::now();
    assert_eq!(calls_with(server, key).await, before + 1);
    assert_eq!(a.state_of(&key[key.len() - 4..]).await, "cooling_down");
    // How long until B's status shows it.
    let propagated = loop {
        if b.state_of(&key[key.len() - 4..]).await == "cooling_down" {
            break seen_by_a.elapsed();
        }
        assert!(
            seen_by_a.elapsed() < Duration::from_secs(5),
            "replica B never learnt the cooldown"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    // 100 ms after A saw the 429, B skips the deployment: no second call reaches it.
    tokio::time::sleep(Duration::from_millis(100).saturating_sub(seen_by_a.elapsed())).await;
    for _ in 0..3 {
        assert_eq!(b.ask(model).await.status(), 200);
    }
    assert_eq!(
        calls_with(server, key).await,
        before + 1,
        "replica B called a deployment replica A had seen rate limited"
    );
    propagated
}

#[tokio::test]
async fn a_rate_limit_seen_by_one_replica_is_skipped_by_the_other_within_100_ms() {
    // A Redis with a password, which must never show.
    let Some(redis) = Redis::start(Some(REDIS_PASSWORD)) else {
        return;
    };
    let server = upstream().await;
    let dir = scratch("cooldown");
    let providers = pair("shared-m", COOLING_KEY, &server.uri());
    let router = "  strategy: first_available\n";
    let a = Replica::start(&dir, "a", &providers, router, &redis.url(), false).await;
    // B takes the URL from LLM_FACTORY_REDIS_URL.
    let b = Replica::start(&dir, "b", &providers, router, &redis.url(), true).await;
    a.until_shared().await;
    b.until_shared().await;
    let propagated = cooldown_propagates(&a, &b, "shared-m", COOLING_KEY, &server).await;
    println!("scale-out: a cooldown reached the other replica in {propagated:?}");
    assert!(
        propagated <= Duration::from_millis(100),
        "the cooldown took {propagated:?} to reach replica B"
    );
    // B also knows why, and for how long.
    let status = b.status().await;
    let cooled = status["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["state"] == "cooling_down")
        .unwrap();
    assert_eq!(cooled["last_error"], "rate_limited");
    assert!(cooled["cooldown_remaining_ms"].as_u64().unwrap() > 25_000);
    let shared = &status["shared_state"];
    assert_eq!(shared["shared"], true);
    assert!(shared["staleness_ms"].as_u64().unwrap() < 1_000, "{shared}");
    // The password shows nowhere: status, metrics, logs.
    let metrics = b
        .http
        .get(format!("http://127.0.0.1:{}/metrics", b.port))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("llm_shared_state_connected{backend=\"redis\"} 1"),
        "{metrics}"
    );
    for shown in [status.to_string(), metrics, a.log(), b.log()] {
        assert!(!shown.contains(REDIS_PASSWORD), "{shown}");
    }
    assert!(a.log().contains("redis://***@127.0.0.1"), "{}", a.log());
}

#[tokio::test]
async fn an_rpm_limit_holds_across_both_replicas() {
    const RPM: usize = 200;
    let Some(redis) = Redis::start(None) else {
        return;
    };
    let server = upstream().await;
    let dir = scratch("rpm");
    let providers = format!(
        "  - {{provider: openai, model_name: limited, api_key: {LIMITED_KEY}, api_base: '{}', rpm: {RPM}}}\n",
        server.uri()
    );
    // Over the limit, answer at once (429 with Retry-After) rather than wait.
    let router = "  max_wait: 0\n";
    let a = Replica::start(&dir, "a", &providers, router, &redis.url(), false).await;
    let b = Replica::start(&dir, "b", &providers, router, &redis.url(), false).await;
    a.until_shared().await;
    b.until_shared().await;
    // The window is the wall-clock minute: start the burst early enough in one.
    let minute = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let into_minute = u64::try_from(minute() % 60_000).unwrap();
    if into_minute > 50_000 {
        tokio::time::sleep(Duration::from_millis(60_000 - into_minute + 200)).await;
    }
    let first_minute = minute() / 60_000;
    let started = Instant::now();
    // Eight clients per replica send twice the limit in all.
    let mut clients = Vec::new();
    for worker in 0..16 {
        let port = if worker % 2 == 0 { a.port } else { b.port };
        clients.push(tokio::spawn(async move {
            let http = client();
            let mut seen = Vec::new();
            for _ in 0..(2 * RPM / 16) {
                let response = http
                    .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
                    .json(&json!({"model": "limited", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .unwrap();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                seen.push((response.status().as_u16(), retry_after));
            }
            seen
        }));
    }
    let mut answers = Vec::new();
    for handle in clients {
        answers.extend(handle.await.unwrap());
    }
    let elapsed = started.elapsed();
    assert_eq!(
        minute() / 60_000,
        first_minute,
        "the burst straddled two minutes (it took {elapsed:?})"
    );
    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 429)
        .collect();
    println!(
        "scale-out: rpm {RPM} over two replicas: {ok} answered, {} limited, in {elapsed:?}",
        limited.len()
    );
    assert_eq!(
        ok + limited.len(),
        answers.len(),
        "never a 5xx: {answers:?}"
    );
    assert!(
        (RPM * 95 / 100..=RPM * 105 / 100).contains(&ok),
        "{ok} requests passed a limit of {RPM} per minute"
    );
    assert_eq!(calls_with(&server, LIMITED_KEY).await, ok);
    for (_, retry_after) in limited {
        let seconds = retry_after.expect("a 429 carries Retry-After");
        assert!((1..=60).contains(&seconds), "Retry-After {seconds}");
    }
}

// Several threads: the load must not stall while the test itself kills or starts Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_frozen_then_killed_and_restarted_loses_no_request_and_sharing_resumes() {
    let Some(mut redis) = Redis::start(None) else {
        return;
    };
    let server = upstream().await;
    let dir = scratch("restart");
    // `steady` carries the load (with an rpm far above it, so leases are in play);
    // `later` is rate limited after the restart.
    let providers = format!(
        "  - {{provider: openai, model_name: steady, api_key: {LIMITED_KEY}, api_base: '{base}', rpm: 1000000}}\n{}",
        pair("later", LATER_KEY, &server.uri()),
        base = server.uri()
    );
    let router = "  strategy: first_available\n";
    let a = Replica::start(&dir, "a", &providers, router, &redis.url(), false).await;
    let b = Replica::start(&dir, "b", &providers, router, &redis.url(), false).await;
    a.until_shared().await;
    b.until_shared().await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for port in [a.port, b.port, a.port, b.port] {
        let stop = std::sync::Arc::clone(&stop);
        load.push(tokio::spawn(async move {
            let http = client();
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let started = Instant::now();
                let response = http
                    .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
                    .json(&json!({"model": "steady", "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await
                    .unwrap();
                seen.push((response.status().as_u16(), started.elapsed()));
            }
            seen
        }));
    }
    let disconnected = || async {
        let started = Instant::now();
        loop {
            let status = a.status().await;
            if status["shared_state"]["connected"] == false {
                assert!(status["shared_state"]["last_error"].is_string(), "{status}");
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "{status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Slow: Redis stops answering but keeps its sockets open. The replicas time out
    // (100 ms), serve on their own state, and come back when it answers again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.freeze(true);
    disconnected().await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    redis.freeze(false);
    a.until_shared().await;
    b.until_shared().await;
    // Gone: killed, then restarted empty on the same port.
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    disconnected().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.spawn();
    a.until_shared().await;
    b.until_shared().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut answers = Vec::new();
    for handle in load {
        answers.extend(handle.await.unwrap());
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 200)
        .collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    let slowest = answers.iter().map(|(_, took)| *took).max().unwrap();
    println!(
        "scale-out: {} requests through a Redis outage, none failed, slowest {slowest:?}",
        answers.len()
    );
    // A hang detector, not a timing test: a request waiting on Redis would take its
    // timeouts (100 ms) or an outage (1 s and more).
    assert!(slowest < Duration::from_secs(1), "slowest {slowest:?}");
    assert!(answers.len() > 50, "the load ran: {}", answers.len());
    // Sharing resumed: a cooldown seen by A reaches B.
    cooldown_propagates(&a, &b, "later", LATER_KEY, &server).await;
    let shared = &a.status().await["shared_state"];
    assert!(shared["disconnects"].as_u64().unwrap() >= 2, "{shared}");
    // One warning per outage (two here), not one per request or per reconnect attempt;
    // and one line each time sharing starts or resumes.
    for replica in [&a, &b] {
        let log = replica.log();
        assert_eq!(log.matches("Redis is unreachable").count(), 2, "{log}");
        assert_eq!(log.matches("connected to Redis").count(), 3, "{log}");
    }
}

/// Replicas find the master through Redis Sentinel (`redis+sentinel://`), with the
/// master's password in the URL.
#[tokio::test]
async fn replicas_find_the_master_through_sentinel() {
    let Some(master) = Redis::start(Some(REDIS_PASSWORD)) else {
        return;
    };
    let dir = scratch("sentinel");
    let port = free_port();
    let config = dir.join("sentinel.conf");
    std::fs::write(
        &config,
        format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {} 1\nsentinel auth-pass mymaster {REDIS_PASSWORD}\n",
            master.port
        ),
    )
    .unwrap();
    let mut sentinel = Command::new(&master.binary)
        .arg(&config)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port).await;
    let server = upstream().await;
    let providers = pair("sentinel-m", COOLING_KEY, &server.uri());
    let router = "  strategy: first_available\n";
    let url = format!("redis+sentinel://:{REDIS_PASSWORD}@127.0.0.1:{port}/mymaster/0");
    let a = Replica::start(&dir, "a", &providers, router, &url, false).await;
    let b = Replica::start(&dir, "b", &providers, router, &url, false).await;
    a.until_shared().await;
    b.until_shared().await;
    cooldown_propagates(&a, &b, "sentinel-m", COOLING_KEY, &server).await;
    for shown in [a.status().await.to_string(), a.log(), b.log()] {
        assert!(!shown.contains(REDIS_PASSWORD), "{shown}");
    }
    let _ = sentinel.kill();
    let _ = sentinel.wait();
}

/// Two routers in one process stand for two replicas of one deployment (one upstream key):
/// only one probes after a cooldown, and its success ends the cooldown for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_probes_and_its_success_ends_the_cooldown_everywhere() {
    use std::sync::Arc;

    use llm_core::{
        ChatProvider, ChatRequest, ErrorKind, FailWhen, MockConfig, MockFailure, MockProvider,
        SecretString,
    };
    use llm_factory::balance::{
        CooldownPolicy, Deployment, DeploymentConfig, RedisState, RedisStateConfig, Router,
        RouterConfig,
    };

    let Some(redis) = Redis::start(None) else {
        return;
    };
    // The first call is rate limited (rest 300 ms); every call takes 400 ms.
    let upstream = Arc::new(MockProvider::new(
        "upstream",
        MockConfig {
            model: "m".into(),
            latency: Duration::from_millis(400),
            failure: Some(
                MockFailure::always(ErrorKind::RateLimited)
                    .when(FailWhen::FirstCalls(1))
                    .retry_after(Duration::from_millis(300)),
            ),
            ..MockConfig::default()
        },
    ));
    let replica = |name: &str| {
        let state =
            RedisState::new(RedisStateConfig::new(SecretString::from(redis.url()))).unwrap();
        Router::builder()
            .name(name)
            .config(RouterConfig {
                max_wait: Duration::ZERO,
                cooldown: CooldownPolicy {
                    max_retry_after: Duration::from_secs(5),
                    ..CooldownPolicy::default()
                },
                ..RouterConfig::default()
            })
            .deployment(Deployment::new(
                Arc::clone(&upstream) as Arc<dyn ChatProvider>,
                DeploymentConfig {
                    shared_key: Some("upstream-key-1".into()),
                    ..DeploymentConfig::new(format!("{name}/key-1"), "m")
                },
            ))
            .shared_state(Arc::new(state))
            .build()
            .unwrap()
    };
    let (a, b) = (replica("a"), replica("b"));
    let request = ChatRequest::new("m", vec![llm_core::Message::user("hi")]);
    let until = |router: &Router, state: &str| {
        let router = router.clone();
        let state = state.to_owned();
        async move {
            let started = Instant::now();
            loop {
                let shared = router.shared_state();
                let now = serde_json::to_value(&router.status()[0]).unwrap();
                if shared.connected && now["state"] == state.as_str() {
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "never {state}: {now}"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    until(&a, "healthy").await;
    until(&b, "healthy").await;
    // A meets the rate limit; B learns the cooldown.
    assert_eq!(a.chat(&request).await.unwrap_err().http_status(), 429);
    until(&b, "cooling_down").await;
    // After the rest, A probes (the call takes 400 ms); B sees the probe and keeps off.
    until(&a, "awaiting_probe").await;
    let probe = tokio::spawn({
        let a = a.clone();
        let request = request.clone();
        async move { a.chat(&request).await }
    });
    until(&b, "probing").await;
    let refused = b.chat(&request).await.unwrap_err();
    assert_eq!(upstream.calls(), 2, "B called while A probed: {refused}");
    assert!(refused.to_string().contains("probed"), "{refused}");
    // A's probe succeeds: the deployment is healthy for B too, without a probe of B's.
    probe.await.unwrap().unwrap();
    until(&b, "healthy").await;
    assert_eq!(upstream.calls(), 2);
    b.chat(&request).await.unwrap();
    assert_eq!(upstream.calls(), 3);
}
