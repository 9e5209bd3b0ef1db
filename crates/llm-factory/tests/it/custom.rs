//! A user's own provider, in code and by name, balanced and failed over with built-in ones.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use llm_factory::{
    DeploymentConfig, LlmFactory, ModelConfig, ProviderType, StrategyKind,
    core::{
        ChatProvider, ChatRequest, ChatResponse, ChatStream, Error, ErrorKind, MockConfig,
        MockFailure, MockProvider, Result, async_trait,
    },
};

use crate::support::{temp_file, vars};

/// A provider written outside this workspace: it shouts the user's message back.
#[derive(Debug, Default)]
struct Shouter {
    calls: AtomicUsize,
}

#[async_trait]
impl ChatProvider for Shouter {
    fn name(&self) -> &str {
        "shouter"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let text = request
            .messages
            .last()
            .and_then(llm_factory::Message::text)
            .unwrap_or_default();
        let mut echo = MockProvider::new(
            "shouter",
            MockConfig {
                model: "shouter".into(),
                reply: llm_factory::core::MockReply::Text(text.to_uppercase()),
                ..MockConfig::default()
            },
        )
        .chat(request)
        .await?;
        echo.id = "shout-1".into();
        Ok(echo)
    }

    async fn stream(&self, _request: &ChatRequest) -> Result<ChatStream> {
        Err(Error::invalid_request(
            "`stream` is not supported by shouter",
        ))
    }
}

#[tokio::test]
async fn a_provider_in_code_fails_over_with_a_configured_one() {
    let broken = Arc::new(MockProvider::new(
        "broken",
        MockConfig {
            failure: Some(MockFailure::always(ErrorKind::UpstreamServer)),
            ..MockConfig::default()
        },
    ));
    let shouter = Arc::new(Shouter::default());
    let factory = LlmFactory::builder()
        .model(ModelConfig {
            provider: ProviderType::Mock,
            model_name: "chat".into(),
            priority: Some(2),
            ..ModelConfig::default()
        })
        .provider(
            broken.clone(),
            DeploymentConfig {
                priority: 0,
                ..DeploymentConfig::new("broken", "chat")
            },
        )
        .provider(
            shouter.clone(),
            DeploymentConfig {
                priority: 1,
                ..DeploymentConfig::new("shouter", "chat")
            },
        )
        .strategy(StrategyKind::FirstAvailable)
        .build()
        .unwrap();
    let answer = factory
        .chat(ChatRequest::new(
            "chat",
            vec![llm_factory::Message::user("hello")],
        ))
        .await
        .unwrap();
    assert_eq!(answer.text().as_deref(), Some("HELLO"));
    assert_eq!(
        (broken.calls(), shouter.calls.load(Ordering::Relaxed)),
        (1, 1)
    );
    let ids: Vec<String> = factory.status().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["mock/chat/0", "broken", "shouter"]);
}

#[tokio::test]
async fn a_registered_provider_is_named_by_yaml_and_env() {
    let seen_keys = Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let keys = seen_keys.clone();
    let builder = move || {
        let keys = keys.clone();
        LlmFactory::builder().register_provider("shouter", move |spec| {
            use llm_factory::core::ExposeSecret;
            if let Some(key) = spec.api_key {
                keys.try_lock()
                    .unwrap()
                    .push(key.expose_secret().to_owned());
            }
            Ok(Arc::new(Shouter::default()) as Arc<dyn ChatProvider>)
        })
    };
    let yaml = temp_file(
        "config.yaml",
        "providers:\n  - provider: shouter\n    model_name: loud\n    api_keys: [k-one-0123456789, k-two-0123456789]\n",
    );
    let factory = builder().vars(vars(&[])).yaml_file(&yaml).build().unwrap();
    assert_eq!(factory.status().len(), 2);
    assert_eq!(
        factory
            .chat(ChatRequest::new(
                "loud",
                vec![llm_factory::Message::user("hi")]
            ))
            .await
            .unwrap()
            .text()
            .as_deref(),
        Some("HI")
    );

    let from_env = builder()
        .vars(vars(&[
            ("SHOUTER_API_KEY", "k-env-0123456789"),
            ("SHOUTER_MODEL", "loud"),
        ]))
        .env()
        .build()
        .unwrap();
    assert_eq!(from_env.status()[0].provider, "shouter");
    assert_eq!(
        *seen_keys.lock().await,
        ["k-one-0123456789", "k-two-0123456789", "k-env-0123456789"]
    );
}
