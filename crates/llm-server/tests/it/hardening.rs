//! Gateway keys, load shedding, request ids, health and metrics.

use futures_util::StreamExt;
use llm_factory::core::SecretString;
use llm_server::GatewayOptions;
use serde_json::Value;

use crate::support::{Gateway, chat_body, client, mock_factory};

const GATEWAY_KEY: &str = "gw-PLANTED-key-0123456789";

#[tokio::test]
async fn gateway_keys_guard_everything_but_health() {
    let gateway = Gateway::start(
        mock_factory(),
        GatewayOptions {
            api_keys: vec![
                SecretString::from("gw-PLANTED-other-000"),
                SecretString::from(GATEWAY_KEY),
            ],
            ..GatewayOptions::default()
        },
    )
    .await;
    let post = |key: Option<&str>| {
        let mut request = client()
            .post(gateway.url("/v1/chat/completions"))
            .json(&chat_body("mock-echo", "hi", false));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    for key in [
        None,
        Some("wrong"),
        Some(""),
        Some("gw-PLANTED-key-012345678"),
    ] {
        let response = post(key).await.unwrap();
        assert_eq!(response.status(), 401, "{key:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "authentication_error");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        assert!(!body.to_string().contains("PLANTED"));
    }
    assert_eq!(post(Some(GATEWAY_KEY)).await.unwrap().status(), 200);
    for path in ["/v1/models", "/v1/providers/status", "/metrics"] {
        assert_eq!(gateway.status_of(path).await, 401, "{path}");
    }
    // Every method on a guarded path, and the Anthropic door's paths.
    for path in [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
    ] {
        assert_eq!(gateway.status_of(path).await, 401, "GET {path}");
        let response = client()
            .post(gateway.url(path))
            .json(&chat_body("mock-echo", "hi", false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "POST {path}");
    }
    for path in ["/health/live", "/health/ready"] {
        assert_eq!(gateway.status_of(path).await, 200, "{path} stays open");
    }
    assert_eq!(
        gateway.status_of("/v1/unknown").await,
        404,
        "an unknown path needs no key"
    );
}

#[tokio::test]
async fn without_keys_the_gateway_is_open() {
    let gateway = Gateway::start(mock_factory(), GatewayOptions::default()).await;
    let response = gateway
        .post_chat(&chat_body("mock-echo", "hi", false))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn load_is_shed_with_503_when_every_slot_is_busy() {
    let gateway = Gateway::start(
        mock_factory(),
        GatewayOptions {
            max_concurrency: 1,
            ..GatewayOptions::default()
        },
    )
    .await;
    // An open stream holds the only slot.
    let open = gateway
        .post_chat(&chat_body("mock-story", "go", true))
        .await;
    let mut stream = open.bytes_stream();
    stream.next().await.unwrap().unwrap();
    let shed = gateway
        .post_chat(&chat_body("mock-echo", "hi", false))
        .await;
    assert_eq!(shed.status(), 503);
    let body: Value = shed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server_overloaded");
    // Health is not behind the limit.
    gateway.assert_live().await;
    // Once the stream is done, the slot is free again.
    while stream.next().await.is_some() {}
    let after = gateway
        .post_chat(&chat_body("mock-echo", "hi", false))
        .await;
    assert_eq!(after.status(), 200);
}

#[tokio::test]
async fn request_ids_are_kept_or_made() {
    let gateway = Gateway::start(mock_factory(), GatewayOptions::default()).await;
    let kept = client()
        .get(gateway.url("/v1/models"))
        .header("x-request-id", "client-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "client-abc-123");
    let made = client()
        .get(gateway.url("/v1/models"))
        .send()
        .await
        .unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.starts_with("req_") && id.len() > 10, "{id}");
    let unsafe_id = client()
        .get(gateway.url("/v1/models"))
        .header("x-request-id", "a b<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(unsafe_id.headers()["x-request-id"], "a b<script>");
}

#[tokio::test]
async fn readiness_and_metrics() {
    let gateway = Gateway::start(mock_factory(), GatewayOptions::default()).await;
    let ready: Value = gateway.get_json("/health/ready").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["available_deployments"], 2);
    let mut request = chat_body("mock-story", "go", true);
    request["stream_options"] = serde_json::json!({"include_usage": true});
    gateway.post_chat(&request).await.text().await.unwrap();
    gateway.post_chat(&chat_body("nope", "x", false)).await;
    let metrics = client()
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "llm_requests_total",
        "llm_errors_total",
        "llm_time_to_first_token_seconds_bucket",
        "llm_request_duration_seconds_bucket",
        "llm_tokens_total",
        "llm_deployment_healthy{deployment=\"story\"",
        "llm_gateway_tokio_alive_tasks",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
}
