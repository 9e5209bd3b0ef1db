//! No secret and no prompt text in logs (captured at debug level), responses or status.

use std::{io::Write, sync::Arc};

use llm_factory::{LlmFactory, ModelConfig, ProviderType, core::SecretString};
use llm_server::GatewayOptions;
use serde_json::json;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

use crate::support::{Gateway, chat_body, client};

const UPSTREAM_KEY: &str = "sk-upstream-PLANTED-0123456789";
const GATEWAY_KEY: &str = "gw-PLANTED-gateway-0123456789";
const PROMPT: &str = "my-private-prompt-PROMPTLEAK";

#[derive(Clone, Default)]
#[expect(
    clippy::disallowed_types,
    reason = "a test log sink; not on any request path"
)]
struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// A current-thread runtime: the gateway's tasks run on this thread, under this subscriber.
#[tokio::test]
async fn secrets_and_prompts_never_reach_logs_or_responses() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // An upstream that rejects the key and echoes it back, as a careless one might.
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"message": format!("Incorrect API key provided: {UPSTREAM_KEY}"), "code": "invalid_api_key"}})))
        .mount(&upstream)
        .await;
    let factory = LlmFactory::new(vec![
        ModelConfig {
            api_base: Some(format!("{}/v1", upstream.uri())),
            ..ModelConfig::new(ProviderType::OpenAi, "gpt-4o", UPSTREAM_KEY)
        },
        ModelConfig {
            provider: ProviderType::Mock,
            model_name: "mock-echo".into(),
            ..ModelConfig::default()
        },
    ])
    .unwrap();
    let gateway = Gateway::start(
        factory,
        GatewayOptions {
            api_keys: vec![SecretString::from(GATEWAY_KEY)],
            ..GatewayOptions::default()
        },
    )
    .await;

    let mut bodies = Vec::new();
    for (model, stream, key) in [
        ("gpt-4o", false, GATEWAY_KEY),
        ("gpt-4o", true, GATEWAY_KEY),
        ("mock-echo", false, GATEWAY_KEY),
        ("mock-echo", false, "gw-wrong-0000"),
    ] {
        let response = client()
            .post(gateway.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body(model, PROMPT, stream))
            .send()
            .await
            .unwrap();
        bodies.push(response.text().await.unwrap());
    }
    for path in ["/v1/providers/status", "/v1/models", "/metrics"] {
        bodies.push(
            client()
                .get(gateway.url(path))
                .bearer_auth(GATEWAY_KEY)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    bodies.push(format!("{:?}", gateway.factory));

    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request"), "logs were captured: {logs}");
    assert!(
        logs.contains("attempt failed"),
        "debug events were captured: {logs}"
    );
    for text in bodies.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains("PLANTED"), "a key leaked into: {text}");
    }
    // Prompts are the caller's business (the echo mock returns them); logs never carry them.
    assert!(
        !logs.contains(PROMPT),
        "the prompt leaked into the logs: {logs}"
    );
    // The masked form is what people see.
    assert!(bodies.iter().any(|b| b.contains("sk-…6789")), "{bodies:?}");
}
