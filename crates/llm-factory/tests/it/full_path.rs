//! The full path: factory → router → llm-openai → wiremock, async and blocking.

use futures_util::StreamExt;
use llm_factory::{ChatOptions, LlmFactory, ModelConfig, ProviderType, StrategyKind};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

const GOOD_KEY: &str = "sk-good-0123456789abcdef";
const BAD_KEY: &str = "sk-revoked-0123456789abcd";

fn completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
}

fn sse(pieces: &[&str]) -> String {
    let mut body = String::new();
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    body.push_str(&format!(
        "data: {}\n\n",
        chunk(json!({"role": "assistant", "content": ""}), Value::Null)
    ));
    for piece in pieces {
        body.push_str(&format!(
            "data: {}\n\n",
            chunk(json!({"content": piece}), Value::Null)
        ));
    }
    body.push_str(&format!("data: {}\n\n", chunk(json!({}), json!("stop"))));
    body.push_str(&format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
    ));
    body
}

/// An OpenAI-compatible upstream where `BAD_KEY` is rejected and `GOOD_KEY` answers.
async fn upstream() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", format!("Bearer {BAD_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}})))
        .mount(&server)
        .await;
    // The config's defaults are applied to requests that set neither.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {GOOD_KEY}").as_str()))
        .and(body_json(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "你好"}], "max_tokens": 4096, "temperature": 0.7})))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("你好！")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {GOOD_KEY}").as_str()))
        .and(body_json(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "写一个故事"}], "max_tokens": 4096, "temperature": 0.7,
            "stream": true, "stream_options": {"include_usage": true}})))
        .respond_with(ResponseTemplate::new(200).set_body_raw(sse(&["从前", "有座山"]), "text/event-stream"))
        .mount(&server)
        .await;
    server
}

/// Two keys (the revoked one first) for one model, with request defaults.
fn config(server: &MockServer) -> ModelConfig {
    ModelConfig {
        provider: ProviderType::OpenAi,
        model_name: "gpt-4o".into(),
        api_keys: vec![BAD_KEY.into(), GOOD_KEY.into()],
        api_base: Some(format!("{}/v1", server.uri())),
        max_tokens: Some(4096),
        temperature: Some(0.7),
        ..ModelConfig::default()
    }
}

#[tokio::test]
async fn async_chat_and_stream_fail_over_from_a_revoked_key() {
    let server = upstream().await;
    let factory = LlmFactory::builder()
        .model(config(&server))
        .strategy(StrategyKind::FirstAvailable)
        .build()
        .unwrap();
    let answer = factory.chat("你好").await.unwrap();
    assert_eq!(answer.text().as_deref(), Some("你好！"));
    assert_eq!(answer.usage.unwrap().total_tokens, 7);

    // The revoked key now rests; the stream goes straight to the good one.
    let options = ChatOptions::strategy("round_robin".parse().unwrap());
    let mut stream = factory.stream_with("写一个故事", &options).await.unwrap();
    let mut text = String::new();
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        text.push_str(chunk.content().unwrap_or_default());
        usage = usage.or(chunk.usage);
    }
    assert_eq!(text, "从前有座山");
    assert_eq!(usage.unwrap().total_tokens, 7);

    let status = factory.status();
    assert_eq!(status[0].key.as_deref(), Some("sk-…abcd"));
    assert_eq!(status[0].last_error, Some("authentication"));
    assert_eq!(status[1].successes, 2);
    let revoked_calls = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.headers["authorization"] == format!("Bearer {BAD_KEY}").as_str())
        .count();
    assert_eq!(
        revoked_calls, 1,
        "a rejected key is not retried while it cools down"
    );
}

#[tokio::test]
async fn azure_from_yaml_through_to_the_upstream() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt4o-prod/chat/completions"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", GOOD_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion("from azure")))
        .expect(1)
        .mount(&server)
        .await;
    let yaml = format!(
        "providers:\n  - provider: azure_openai\n    model_name: gpt-4o\n    deployment: gpt4o-prod\n    api_key: ${{AZURE_KEY}}\n    api_base: {}\n    api_version: \"2024-10-21\"\n    aliases: [gpt4]\n",
        server.uri()
    );
    let file = crate::support::temp_file("config.yaml", &yaml);
    let factory = LlmFactory::builder()
        .vars(crate::support::vars(&[("AZURE_KEY", GOOD_KEY)]))
        .yaml_file(&file)
        .build()
        .unwrap();
    let request = llm_factory::ChatRequest::new("gpt4", vec![llm_factory::Message::user("hi")]);
    assert_eq!(
        factory.chat(request).await.unwrap().text().as_deref(),
        Some("from azure")
    );
}

#[cfg(feature = "blocking")]
#[test]
fn blocking_chat_and_stream_drive_the_same_path() {
    // The mock upstream runs on its own runtime; the blocking factory on its thread.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(upstream());
    let factory = llm_factory::blocking::LlmFactory::new(config(&server)).unwrap();
    let answer = factory
        .chat_with("你好", &ChatOptions::strategy(StrategyKind::FirstAvailable))
        .unwrap();
    assert_eq!(answer.text().as_deref(), Some("你好！"));

    let chunks: Vec<_> = factory
        .stream("写一个故事")
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let text: String = chunks.iter().filter_map(|c| c.content()).collect();
    assert_eq!(text, "从前有座山");
    assert!(chunks.last().unwrap().usage.is_some());

    // Errors before the first chunk come from `stream` itself.
    let err = factory
        .stream(llm_factory::ChatRequest::new(
            "gpt-5",
            vec![llm_factory::Message::user("hi")],
        ))
        .unwrap_err();
    assert_eq!(err.kind(), llm_factory::ErrorKind::NotFound);
    drop(factory);
    drop(runtime);
}

#[cfg(feature = "blocking")]
#[test]
fn dropping_a_blocking_stream_cancels_it() {
    use std::time::Duration;

    let factory = llm_factory::blocking::LlmFactory::new(ModelConfig {
        provider: ProviderType::Mock,
        model_name: "mock-echo".into(),
        ..ModelConfig::default()
    })
    .unwrap();
    let mut chunks = factory.stream("one two three four five").unwrap();
    assert_eq!(chunks.next().unwrap().unwrap().content(), Some("one"));
    drop(chunks);
    // The deployment is released once the forwarding task sees the iterator gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while factory.status()[0].in_flight != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream was not cancelled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(feature = "blocking")]
#[tokio::test]
#[should_panic(expected = "Cannot block the current thread from within a runtime")]
async fn the_blocking_api_panics_inside_a_runtime_as_documented() {
    let factory = llm_factory::blocking::LlmFactory::new(ModelConfig {
        provider: ProviderType::Mock,
        model_name: "mock-echo".into(),
        ..ModelConfig::default()
    })
    .unwrap();
    let _ = factory.chat("hi");
}

/// `server.max_idle_upstream_connections` bounds the idle connections an entry keeps: a
/// burst of concurrent requests opens one connection each, and when it is over all but
/// the bound close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_bounded_by_the_server_setting() {
    use std::time::Duration;

    // Each answer takes 200 ms, so the burst needs one connection per request.
    let upstream = llm_core::testing::CountingServer::start(
        completion("pooled").to_string(),
        Duration::from_millis(200),
    )
    .await
    .unwrap();
    let yaml = format!(
        "providers:\n  - provider: openai\n    model_name: gpt-4o\n    api_key: {GOOD_KEY}\n    api_base: http://{}/v1\nserver:\n  max_idle_upstream_connections: 2\n",
        upstream.addr()
    );
    let file = crate::support::temp_file("config.yaml", &yaml);
    let factory = LlmFactory::builder().yaml_file(&file).build().unwrap();
    let calls = (0..8).map(|_| {
        let factory = factory.clone();
        async move {
            let request =
                llm_factory::ChatRequest::new("gpt-4o", vec![llm_factory::Message::user("hi")]);
            factory.chat(request).await.unwrap().text()
        }
    });
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.iter().all(|a| a.as_deref() == Some("pooled")));
    assert_eq!(upstream.peak(), 8, "one connection per concurrent call");
    assert_eq!(
        upstream.open_at_most(2, Duration::from_secs(5)).await,
        Ok(2),
        "idle connections after the burst (Err: stayed above the bound of 2)"
    );
}
