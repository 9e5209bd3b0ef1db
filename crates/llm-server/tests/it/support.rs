use std::{net::SocketAddr, sync::Arc, time::Duration};

use llm_factory::{
    DeploymentConfig, LlmFactory, ModelConfig, ProviderType,
    core::{ChatProvider, MockConfig, MockProvider},
};
use llm_server::{ConnectionLimits, GatewayOptions};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A running gateway on 127.0.0.1; stops when dropped (or gracefully via `shutdown`).
pub(crate) struct Gateway {
    pub(crate) addr: SocketAddr,
    pub(crate) factory: LlmFactory,
    shutdown: Option<oneshot::Sender<()>>,
    pub(crate) task: Option<JoinHandle<()>>,
}

impl Gateway {
    pub(crate) async fn start(factory: LlmFactory, options: GatewayOptions) -> Self {
        crate::logs::install();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        // As `llm-server` runs it: `serve`, with its direct path to chat completions
        // (`routed_and_direct_paths_answer_alike` in api.rs holds it to the router's).
        let app = llm_server::Gateway::with_options(factory.clone(), options);
        let task = tokio::spawn(async move {
            llm_server::serve(listener, app, ConnectionLimits::default(), async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            factory,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `POST /v1/chat/completions` with `body` as JSON.
    pub(crate) async fn post_chat(&self, body: &serde_json::Value) -> reqwest::Response {
        client()
            .post(self.url("/v1/chat/completions"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `GET path`, parsed as JSON.
    pub(crate) async fn get_json(&self, path: &str) -> serde_json::Value {
        client()
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The status of `GET path`, without credentials.
    pub(crate) async fn status_of(&self, path: &str) -> u16 {
        client()
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Assert the gateway still answers `/health/live` with 200.
    pub(crate) async fn assert_live(&self) {
        assert_eq!(
            self.status_of("/health/live").await,
            200,
            "the gateway is no longer healthy"
        );
    }

    pub(crate) fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A factory with an instant echo model and a slow story model.
pub(crate) fn mock_factory() -> LlmFactory {
    let story = MockProvider::new(
        "story",
        MockConfig {
            model: "mock-story".into(),
            reply: llm_factory::core::MockReply::Text("one two three four five six".into()),
            chunk_delay: Duration::from_millis(100),
            ..MockConfig::default()
        },
    );
    LlmFactory::builder()
        .model(ModelConfig {
            provider: ProviderType::Mock,
            model_name: "mock-echo".into(),
            ..ModelConfig::default()
        })
        .provider(
            Arc::new(story) as Arc<dyn ChatProvider>,
            DeploymentConfig::new("story", "mock-story"),
        )
        .build()
        .unwrap()
}

pub(crate) fn chat_body(model: &str, text: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}], "stream": stream})
}

/// The `data:` payloads of an SSE body.
pub(crate) fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|frame| {
            let data: Vec<&str> = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// Assert an OpenAI error body: `error.message` (non-empty), `type`, `param`, `code`.
pub(crate) fn assert_openai_error(what: &str, body: &serde_json::Value) {
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: {body}"));
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert!(error["type"].is_string(), "{what}: {body}");
    assert!(
        error.contains_key("param") && error.contains_key("code"),
        "{what}: {body}"
    );
}

/// A port free on 127.0.0.1 right now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something listens on `port` (a gateway process starting), at most 30 s.
pub(crate) async fn wait_for_port(port: u16) {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing listens on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
