//! Streams: mid-stream errors, client disconnects, graceful shutdown.

use std::time::Duration;

use futures_util::StreamExt;
use llm_factory::{LlmFactory, ModelConfig, ProviderType};
use llm_server::GatewayOptions;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::oneshot,
};

use crate::support::{Gateway, chat_body, client, mock_factory, sse_data};

/// A raw upstream that streams one chunk and then either cuts the connection or waits for
/// the client to go away (reporting when it does).
async fn raw_upstream(cut: bool) -> (String, oneshot::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        let chunk = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"partial\"},\"finish_reason\":null}]}\n\n";
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(chunk.as_bytes()).await.unwrap();
        socket.flush().await.unwrap();
        if cut {
            return;
        }
        // Wait for the gateway to drop the connection (read returns 0 or fails).
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = closed_tx.send(());
    });
    (url, closed_rx)
}

fn upstream_factory(url: &str) -> LlmFactory {
    LlmFactory::new(ModelConfig {
        api_base: Some(url.to_owned()),
        ..ModelConfig::new(
            ProviderType::OpenAi,
            "gpt-4o",
            "sk-PLANTED-stream-0123456789abcdef",
        )
    })
    .unwrap()
}

#[tokio::test]
async fn a_mid_stream_failure_is_one_error_event_and_no_done() {
    let (url, _closed) = raw_upstream(true).await;
    let gateway = Gateway::start(upstream_factory(&url), GatewayOptions::default()).await;
    let response = gateway.post_chat(&chat_body("gpt-4o", "hi", true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.len(), 2, "{events:?}");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["content"], "partial");
    let error: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(error["error"]["type"], "api_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ended before [DONE]"),
        "{error}"
    );
    assert!(!events.iter().any(|e| e == "[DONE]"));
}

#[tokio::test]
async fn a_client_disconnect_cancels_the_upstream_call() {
    let (url, closed) = raw_upstream(false).await;
    let gateway = Gateway::start(upstream_factory(&url), GatewayOptions::default()).await;
    let response = gateway.post_chat(&chat_body("gpt-4o", "hi", true)).await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("partial"));
    assert_eq!(gateway.factory.status()[0].in_flight, 1);
    drop(body);
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the upstream saw its connection dropped")
        .unwrap();
    assert_eq!(gateway.factory.status()[0].in_flight, 0);
}

#[tokio::test]
async fn graceful_shutdown_completes_an_in_flight_stream() {
    let mut gateway = Gateway::start(mock_factory(), GatewayOptions::default()).await;
    let response = gateway
        .post_chat(&chat_body("mock-story", "go", true))
        .await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("one"));
    gateway.shutdown();
    let mut rest = Vec::new();
    while let Some(piece) = body.next().await {
        rest.extend_from_slice(&piece.unwrap());
    }
    let events = sse_data(&String::from_utf8(rest).unwrap());
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "the stream finished: {events:?}"
    );
    let task = gateway.task.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server stopped after draining")
        .unwrap();
    // New connections are refused once it stopped.
    assert!(
        client()
            .get(gateway.url("/health/live"))
            .send()
            .await
            .is_err()
    );
}
