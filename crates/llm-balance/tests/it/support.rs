use std::{sync::Arc, time::Duration};

use llm_balance::{Deployment, DeploymentConfig, Router, RouterConfig, SplitMix64};
use llm_core::{ChatRequest, ErrorKind, FailWhen, Message, MockConfig, MockFailure, MockProvider};

/// A mock that reports `id` as its model, so a response tells who answered.
pub(crate) fn healthy(id: &str) -> Arc<MockProvider> {
    Arc::new(MockProvider::new(
        id.to_owned(),
        MockConfig {
            model: id.to_owned(),
            ..MockConfig::default()
        },
    ))
}

pub(crate) fn failing(id: &str, kind: ErrorKind, when: FailWhen) -> Arc<MockProvider> {
    failing_with(id, MockFailure::always(kind).when(when))
}

pub(crate) fn failing_with(id: &str, failure: MockFailure) -> Arc<MockProvider> {
    Arc::new(MockProvider::new(
        id.to_owned(),
        MockConfig {
            model: id.to_owned(),
            failure: Some(failure),
            ..MockConfig::default()
        },
    ))
}

pub(crate) fn slow(id: &str, latency: Duration) -> Arc<MockProvider> {
    Arc::new(MockProvider::new(
        id.to_owned(),
        MockConfig {
            model: id.to_owned(),
            latency,
            ..MockConfig::default()
        },
    ))
}

pub(crate) fn deployment(provider: &Arc<MockProvider>, group: &str) -> Deployment {
    Deployment::new(
        Arc::clone(provider) as Arc<dyn llm_core::ChatProvider>,
        DeploymentConfig::new(llm_core::ChatProvider::name(provider.as_ref()), group),
    )
}

pub(crate) fn with(
    provider: &Arc<MockProvider>,
    group: &str,
    edit: impl FnOnce(&mut DeploymentConfig),
) -> Deployment {
    let mut config = DeploymentConfig::new(llm_core::ChatProvider::name(provider.as_ref()), group);
    edit(&mut config);
    Deployment::new(
        Arc::clone(provider) as Arc<dyn llm_core::ChatProvider>,
        config,
    )
}

pub(crate) fn router(deployments: Vec<Deployment>, config: RouterConfig) -> Router {
    Router::builder()
        .config(config)
        .deployments(deployments)
        .random_source(Arc::new(SplitMix64::seeded(42)))
        .build()
        .unwrap()
}

pub(crate) fn request(model: &str) -> ChatRequest {
    ChatRequest::new(model, vec![Message::user("hello there")])
}

/// Which deployment answered each of `n` chat calls.
pub(crate) async fn answers(router: &Router, model: &str, n: usize) -> Vec<String> {
    use llm_core::ChatProvider;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(router.chat(&request(model)).await.unwrap().model);
    }
    out
}
