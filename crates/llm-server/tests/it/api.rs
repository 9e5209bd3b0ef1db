//! The endpoints, through to OpenAI-format upstreams on wiremock.

use llm_factory::{LlmFactory, ModelConfig, ProviderType};
use llm_server::GatewayOptions;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_partial_json, header, method, path},
};

use crate::support::{Gateway, chat_body, client, mock_factory, sse_data};

const UPSTREAM_KEY: &str = "sk-upstream-PLANTED-0123456789";

async fn openai_upstream() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {UPSTREAM_KEY}").as_str()))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            concat!(
                "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
                "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
                "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
                "data: [DONE]\n\n"
            ),
            "text/event-stream",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {UPSTREAM_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c0", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        })))
        .mount(&server)
        .await;
    server
}

async fn openai_gateway(upstream: &MockServer) -> Gateway {
    let factory = LlmFactory::new(ModelConfig {
        api_base: Some(format!("{}/v1", upstream.uri())),
        aliases: vec!["gpt4".into()],
        ..ModelConfig::new(ProviderType::OpenAi, "gpt-4o", UPSTREAM_KEY)
    })
    .unwrap();
    Gateway::start(factory, GatewayOptions::default()).await
}

#[tokio::test]
async fn chat_and_stream_through_to_an_openai_upstream() {
    let upstream = openai_upstream().await;
    let gateway = openai_gateway(&upstream).await;
    let response = gateway.post_chat(&chat_body("gpt4", "hi", false)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello");
    assert_eq!(body["usage"]["total_tokens"], 4);

    // Streaming with usage asked for: chunks, the usage chunk, then [DONE].
    let mut request = chat_body("gpt-4o", "hi", true);
    request["stream_options"] = json!({"include_usage": true});
    let response = gateway.post_chat(&request).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello");
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 5);

    // Without include_usage the usage chunk is not passed on.
    let response = gateway.post_chat(&chat_body("gpt-4o", "hi", true)).await;
    let events = sse_data(&response.text().await.unwrap());
    assert!(
        events.iter().all(|e| !e.contains("\"usage\"")),
        "{events:?}"
    );

    // `load_balance_strategy` is consumed by the gateway and never sent upstream.
    let mut request = chat_body("gpt-4o", "hi", false);
    request["load_balance_strategy"] = json!("first_available");
    let response = gateway.post_chat(&request).await;
    assert_eq!(response.status(), 200);
    for received in upstream.received_requests().await.unwrap() {
        let sent: Value = serde_json::from_slice(&received.body).unwrap();
        assert!(sent.get("load_balance_strategy").is_none(), "{sent}");
    }
}

#[tokio::test]
async fn models_and_status() {
    let upstream = openai_upstream().await;
    let gateway = openai_gateway(&upstream).await;
    gateway.post_chat(&chat_body("gpt-4o", "hi", false)).await;
    let models: Value = gateway.get_json("/v1/models").await;
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-4o", "gpt4"]);
    assert_eq!(models["data"][0]["object"], "model");

    let response = client()
        .get(gateway.url("/v1/providers/status"))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(!text.contains("PLANTED"), "the key never appears: {text}");
    let status: Value = serde_json::from_str(&text).unwrap();
    let first = &status["data"][0];
    assert_eq!(first["key"], "sk-…6789");
    assert_eq!(first["state"], "healthy");
    assert_eq!(first["successes"], 1);
}

async fn error(gateway: &Gateway, body: reqwest::Body) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = client()
        .post(gateway.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.unwrap(), headers)
}

/// A JSON chat request for `model`: status, body, headers.
async fn chat(
    gateway: &Gateway,
    model: &str,
    text: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    error(
        gateway,
        serde_json::to_vec(&chat_body(model, text, false))
            .unwrap()
            .into(),
    )
    .await
}

#[tokio::test]
async fn bad_input_gets_the_right_status_and_an_openai_error_body() {
    let gateway = Gateway::start(
        mock_factory(),
        GatewayOptions {
            max_body_bytes: 64 * 1024,
            ..GatewayOptions::default()
        },
    )
    .await;
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        ("malformed JSON", b"{\"model\": ".to_vec(), 400, None),
        ("not an object", b"[1,2]".to_vec(), 400, None),
        ("missing messages", br#"{"model":"mock-echo"}"#.to_vec(), 400, None),
        ("empty messages", br#"{"model":"mock-echo","messages":[]}"#.to_vec(), 400, Some("messages")),
        ("wrong type", br#"{"model":"mock-echo","messages":[{"role":"user","content":"x"}],"max_tokens":"many"}"#.to_vec(), 400, Some("max_tokens")),
        ("negative max_tokens", br#"{"model":"mock-echo","messages":[{"role":"user","content":"x"}],"max_tokens":-5}"#.to_vec(), 400, Some("max_tokens")),
        ("unknown role", br#"{"model":"mock-echo","messages":[{"role":"wizard","content":"x"}]}"#.to_vec(), 400, Some("messages[0].role")),
        ("huge n", br#"{"model":"mock-echo","messages":[{"role":"user","content":"x"}],"n":100000}"#.to_vec(), 400, Some("n")),
        ("unknown strategy", br#"{"model":"mock-echo","messages":[{"role":"user","content":"x"}],"load_balance_strategy":"fastest"}"#.to_vec(), 400, Some("load_balance_strategy")),
        ("invalid UTF-8", b"{\"model\":\"mock-echo\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec(), 400, None),
        ("unknown model", br#"{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}"#.to_vec(), 404, None),
        ("header injection in model", b"{\"model\":\"x\\r\\nx-evil: 1\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}".to_vec(), 400, Some("model")),
        ("oversized body", vec![b' '; 128 * 1024], 413, None),
    ];
    for (name, body, status, param) in cases {
        let (got, body, headers) = error(&gateway, body.into()).await;
        assert_eq!(got, status, "{name}: {body}");
        crate::support::assert_openai_error(name, &body);
        if let Some(param) = param {
            assert_eq!(body["error"]["param"], param, "{name}: {body}");
        }
        assert!(!headers.contains_key("x-evil"), "{name}");
    }
    // The server is still healthy.
    gateway.assert_live().await;
    let (status, body, _) = chat(&gateway, "mock-echo", "still here").await;
    assert_eq!(
        (status, body["choices"][0]["message"]["content"].as_str()),
        (200, Some("still here"))
    );
    // Unknown endpoints are OpenAI-shaped 404s too.
    let missing = client()
        .get(gateway.url("/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_url");
}

#[tokio::test]
async fn upstream_failures_map_to_gateway_statuses() {
    let upstream = MockServer::start().await;
    Mock::given(path("/limited/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "7").set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})))
        .mount(&upstream)
        .await;
    Mock::given(path("/revoked/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}),
        ))
        .mount(&upstream)
        .await;
    Mock::given(path("/broken/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error": {"message": "The server had an error", "type": "server_error"}}),
        ))
        .mount(&upstream)
        .await;
    Mock::given(path("/filtered/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "This model's maximum context length is 8192 tokens", "code": "context_length_exceeded"}})))
        .mount(&upstream)
        .await;
    let entry = |model: &str, prefix: &str| ModelConfig {
        api_base: Some(format!("{}/{prefix}/v1", upstream.uri())),
        ..ModelConfig::new(ProviderType::OpenAi, model, UPSTREAM_KEY)
    };
    // A short deadline: the router must not wait out a 7 s Retry-After here.
    let factory = LlmFactory::new(llm_factory::FactoryConfig {
        providers: vec![
            entry("limited", "limited"),
            entry("revoked", "revoked"),
            entry("broken", "broken"),
            entry("too-long", "filtered"),
        ],
        router: llm_factory::RouterSettings {
            timeout: Some(5.0),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    let gateway = Gateway::start(factory, GatewayOptions::default()).await;
    let call = |model: &'static str| {
        let gateway = &gateway;
        async move { chat(gateway, model, "hi").await }
    };
    let (status, body, headers) = call("limited").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body["error"]["type"], "api_error");
    let (status, body, _) = call("revoked").await;
    assert_eq!(status, 502, "every upstream credential rejected: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("authentication"),
        "{body}"
    );
    let (status, body, _) = call("broken").await;
    assert_eq!(status, 503, "{body}");
    let (status, body, _) = call("too-long").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("context_length_exceeded")),
        "{body}"
    );
    let text = body.to_string();
    assert!(!text.contains("PLANTED"), "{text}");
}

#[tokio::test]
async fn a_slow_upstream_hits_the_request_deadline_with_504() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(10)))
        .mount(&upstream)
        .await;
    let factory = LlmFactory::new(ModelConfig {
        api_base: Some(format!("{}/v1", upstream.uri())),
        ..ModelConfig::new(ProviderType::OpenAi, "gpt-4o", UPSTREAM_KEY)
    })
    .unwrap();
    let gateway = Gateway::start(
        factory,
        GatewayOptions {
            request_timeout: std::time::Duration::from_millis(300),
            ..GatewayOptions::default()
        },
    )
    .await;
    let (status, body, _) = chat(&gateway, "gpt-4o", "hi").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["type"], "timeout_error");
}

/// With the router's deadline shorter than the gateway's request timeout (the defaults'
/// order: the gateway then runs no timer of its own), a slow upstream is still a 504 at
/// the router's deadline.
#[tokio::test]
async fn a_slow_upstream_hits_the_routers_deadline_with_504() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(10)))
        .mount(&upstream)
        .await;
    let factory = LlmFactory::builder()
        .router(llm_factory::RouterSettings {
            timeout: Some(0.3),
            ..llm_factory::RouterSettings::default()
        })
        .model(ModelConfig {
            api_base: Some(format!("{}/v1", upstream.uri())),
            ..ModelConfig::new(ProviderType::OpenAi, "gpt-4o", UPSTREAM_KEY)
        })
        .build()
        .unwrap();
    let gateway = Gateway::start(factory, GatewayOptions::default()).await;
    let started = std::time::Instant::now();
    let (status, body, _) = chat(&gateway, "gpt-4o", "hi").await;
    assert_eq!(status, 504, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("timed out")),
        "{body}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn the_router_mounts_under_any_prefix() {
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "my app" }))
        .nest("/llm", llm_server::router(mock_factory()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let models: Value = client()
        .get(format!("http://{addr}/llm/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "mock-echo");
    let answer: Value = client()
        .post(format!("http://{addr}/llm/v1/chat/completions"))
        .json(&chat_body("mock-echo", "mounted", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "mounted");
    assert_eq!(
        client()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "my app"
    );
    server.abort();
}

/// `request` written as is on a new connection to `addr`, and everything the server
/// sent until it closed.
async fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        socket.read_to_end(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    String::from_utf8(answer).unwrap()
}

/// `text` with what differs between two answers to the same request blanked: the `date`
/// header, generated request ids, answer ids and `created` times.
fn comparable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if !line.to_ascii_lowercase().starts_with("date:") {
            out.push_str(line);
        }
    }
    for (start, width) in [("req_", 24), ("\"id\":\"", 0), ("\"created\":", 0)] {
        let mut blanked = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(start) {
            blanked.push_str(&rest[..at + start.len()]);
            rest = &rest[at + start.len()..];
            let end = match width {
                0 => rest.find(['"', ',', '}']).unwrap_or(rest.len()),
                n => rest
                    .char_indices()
                    .take(n)
                    .take_while(|(_, c)| c.is_ascii_hexdigit())
                    .count(),
            };
            blanked.push('…');
            rest = &rest[end..];
        }
        blanked.push_str(rest);
        out = blanked;
    }
    out
}

#[tokio::test]
async fn routed_and_direct_paths_answer_alike() {
    // `llm-server` serves chat completions on `serve`'s direct path (the middleware and
    // the handler called as functions); mounted in an axum app, the router serves them.
    // Every answer, byte for byte but for dates and ids, must be the same.
    let keyed = GatewayOptions {
        api_keys: vec!["gw-key-0123456789".into()],
        ..GatewayOptions::default()
    };
    let small = GatewayOptions {
        max_body_bytes: 2048,
        ..GatewayOptions::default()
    };
    let chat = |extra: &str, body: &str| {
        format!(
            "POST /v1/chat/completions{extra}\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let echo = r#"{"model":"mock-echo","messages":[{"role":"user","content":"alike"}]}"#;
    let story = r#"{"model":"mock-story","messages":[{"role":"user","content":"go"}],"stream":true,"stream_options":{"include_usage":true}}"#;
    let big = format!(
        r#"{{"model":"mock-echo","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(4096)
    );
    let cases: Vec<(&str, u16, &GatewayOptions, String)> = vec![
        ("answer", 200, &small, chat(" HTTP/1.1", echo)),
        ("stream", 200, &small, chat(" HTTP/1.1", story)),
        ("query", 200, &small, chat("?api-version=1 HTTP/1.1", echo)),
        (
            "client id",
            200,
            &small,
            chat(" HTTP/1.1\r\nx-request-id: my-id-1", echo),
        ),
        ("malformed", 400, &small, chat(" HTTP/1.1", r#"{"model":"#)),
        (
            "wrong type",
            400,
            &small,
            chat(" HTTP/1.1", r#"{"model":"mock-echo","messages":"hi"}"#),
        ),
        (
            "unknown model",
            404,
            &small,
            chat(
                " HTTP/1.1",
                r#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#,
            ),
        ),
        ("too large", 413, &small, chat(" HTTP/1.1", &big)),
        (
            "bad strategy",
            400,
            &small,
            chat(
                " HTTP/1.1",
                r#"{"model":"mock-echo","messages":[{"role":"user","content":"x"}],"load_balance_strategy":"nope"}"#,
            ),
        ),
        ("no key", 401, &keyed, chat(" HTTP/1.1", echo)),
        (
            "wrong key",
            401,
            &keyed,
            chat(" HTTP/1.1\r\nauthorization: Bearer gw-key-wrong", echo),
        ),
        (
            "key",
            200,
            &keyed,
            chat(" HTTP/1.1\r\nauthorization: Bearer gw-key-0123456789", echo),
        ),
        (
            "wrong method",
            405,
            &small,
            "GET /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n".into(),
        ),
    ];
    for (name, status, options, request) in &cases {
        let mut answers = Vec::new();
        for direct in [false, true] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let gateway =
                llm_server::Gateway::with_options(mock_factory(), GatewayOptions::clone(options));
            let server = if direct {
                tokio::spawn(async move {
                    llm_server::serve(
                        listener,
                        gateway,
                        llm_server::ConnectionLimits::default(),
                        std::future::pending(),
                    )
                    .await
                    .unwrap();
                })
            } else {
                let router = gateway.router();
                tokio::spawn(async move { axum::serve(listener, router).await.unwrap() })
            };
            answers.push(comparable(&raw_exchange(addr, request).await));
            server.abort();
        }
        assert!(
            answers[0].starts_with(&format!("HTTP/1.1 {status} ")),
            "{name}: {}",
            answers[0]
        );
        assert_eq!(answers[0], answers[1], "{name}: routed, then direct");
    }
}
