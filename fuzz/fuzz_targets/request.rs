//! Any bytes as a `POST /v1/chat/completions` body, through the whole gateway router
//! in-process (mock provider): the answer is a 200 or a 4xx OpenAI error, never a 5xx or a
//! panic.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use llm_factory::{LlmFactory, ModelConfig, ProviderType};
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn app() -> axum::Router {
    static APP: OnceLock<axum::Router> = OnceLock::new();
    APP.get_or_init(|| {
        runtime().block_on(async {
            let factory = LlmFactory::builder()
                .model(ModelConfig {
                    provider: ProviderType::Mock,
                    model_name: "mock-echo".into(),
                    ..ModelConfig::default()
                })
                .build()
                .unwrap();
            llm_server::router(factory)
        })
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let app = app();
    runtime().block_on(async {
        let request = http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Body::from(data.to_vec()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            status == 200 || (400..500).contains(&status),
            "{status}: {body:?}"
        );
        if status != 200 {
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(error["error"]["message"].is_string(), "{error}");
        }
    });
});
