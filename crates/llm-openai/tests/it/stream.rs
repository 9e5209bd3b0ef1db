//! Streaming calls: framing, tool-call fragments, usage, in-band errors, truncation, stalls.

use std::time::Duration;

use futures_util::StreamExt;
use llm_core::{
    ChatProvider, ChatRequest, ChatStreamExt, ErrorKind, FinishReason, Message, Role, TimeoutPhase,
    testing::{Script, ScriptedServer},
};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

use crate::support::{
    KEY, chunk, error_body, openai, openai_with, pieces, short_timeouts, sse, text_frames,
    tool_frames,
};

fn sse_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream; charset=utf-8")
}

#[tokio::test]
async fn sends_stream_with_include_usage_and_returns_chunks_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("accept", "text/event-stream"))
        .and(body_json(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "写一个故事"}],
            "stream": true,
            "stream_options": {"include_usage": true}
        })))
        .respond_with(sse_response(sse(
            &text_frames(&["从前", "有座山"], (9, 2)),
            true,
        )))
        .expect(1)
        .mount(&server)
        .await;

    let stream = openai(&server.uri())
        .stream(&ChatRequest::from("写一个故事"))
        .await
        .unwrap();
    let chunks: Vec<_> = stream.map(Result::unwrap).collect().await;
    assert_eq!(chunks.len(), 5, "role, two pieces, finish, usage");
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    let text: String = chunks.iter().filter_map(|c| c.content()).collect();
    assert_eq!(text, "从前有座山");
    assert_eq!(chunks[3].choices[0].finish_reason, Some(FinishReason::Stop));
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage.as_ref().unwrap().total_tokens, 11);
    assert!(
        chunks
            .iter()
            .all(|c| c.id == "chatcmpl-AbC1" && c.object == "chat.completion.chunk")
    );
}

#[tokio::test]
async fn frames_split_across_tcp_writes_decode_the_same() {
    let frames = text_frames(&["Hel", "lo ", "wörld ", "你好"], (5, 4));
    let body = sse(&frames, true).replace("\n\n", "\r\n\r\n");
    for size in [1, 2, 7, 64] {
        let server = ScriptedServer::start(vec![Script::sse(
            pieces(&body, size),
            Duration::from_micros(200),
        )])
        .await
        .unwrap();
        let response = openai(&server.url())
            .stream(&ChatRequest::from("hi"))
            .await
            .unwrap()
            .collect_response()
            .await
            .unwrap();
        assert_eq!(
            response.text().as_deref(),
            Some("Hello wörld 你好"),
            "write size {size}"
        );
        assert_eq!(response.usage.unwrap().completion_tokens, 4);
        // What we sent arrived intact too.
        let received = server.received().await;
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].target, "/v1/chat/completions");
        let sent: Value = serde_json::from_slice(&received[0].body).unwrap();
        assert_eq!(sent["stream"], true);
    }
}

#[tokio::test]
async fn parallel_tool_calls_are_reassembled_by_index() {
    let server = MockServer::start().await;
    let frames = tool_frames(&[
        ("call_a", "get_weather", &["{\"city\"", ": \"Pa", "ris\"}"]),
        ("call_b", "get_weather", &["{\"city\": ", "\"Lyon\"}"]),
        ("call_c", "get_time", &["{}"]),
    ]);
    Mock::given(method("POST"))
        .respond_with(sse_response(sse(&frames, true)))
        .expect(1)
        .mount(&server)
        .await;
    let stream = openai(&server.uri())
        .stream(&ChatRequest::from("weather?"))
        .await
        .unwrap();
    let chunks: Vec<_> = stream.map(Result::unwrap).collect().await;
    // Fragments arrive interleaved: a later fragment of call 0 follows call 1's.
    let indices: Vec<u32> = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
        .map(|d| d.index)
        .collect();
    assert_eq!(indices, [0, 1, 2, 0, 1, 2, 0, 1, 0]);

    let replay: llm_core::ChatStream =
        Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
    let response = replay.collect_response().await.unwrap();
    let calls = response.choices[0].message.tool_calls.as_ref().unwrap();
    let summary: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.function.name.as_str(),
                c.function.arguments.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("call_a", "get_weather", r#"{"city": "Paris"}"#),
            ("call_b", "get_weather", r#"{"city": "Lyon"}"#),
            ("call_c", "get_time", "{}"),
        ]
    );
    assert_eq!(
        response.choices[0].finish_reason,
        Some(FinishReason::ToolCalls)
    );
}

#[tokio::test]
async fn in_band_error_after_content_ends_the_stream_with_one_error() {
    let server = MockServer::start().await;
    let mut frames = vec![chunk(json!({"role": "assistant", "content": "Once"}), None)];
    frames.push(error_body(
        "The server had an error while processing your request.",
        Some("server_error"),
        None,
    ));
    // Whatever follows an error frame is never passed on.
    frames.push(chunk(json!({"content": "ghost"}), None));
    Mock::given(method("POST"))
        .respond_with(sse_response(sse(&frames, true)))
        .mount(&server)
        .await;
    let items: Vec<_> = openai(&server.uri())
        .stream(&ChatRequest::from("story"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().content(), Some("Once"));
    let err = items[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UpstreamServer);
    assert_eq!(
        err.to_string(),
        "openai sent an error in the stream: The server had an error while processing your request."
    );
}

#[tokio::test]
async fn a_stream_cut_before_done_is_a_protocol_error() {
    let frames = vec![
        chunk(json!({"role": "assistant", "content": "Half"}), None),
        chunk(json!({"content": " an answer"}), None),
    ];
    let mut body = sse(&frames, false);
    // Also cut in the middle of the next frame.
    body.push_str("data: {\"id\":\"chatcmpl-AbC1\",\"cho");
    let server = ScriptedServer::start(vec![Script::sse(pieces(&body, 40), Duration::ZERO)])
        .await
        .unwrap();
    let items: Vec<_> = openai(&server.url())
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 3);
    let err = items[2].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(
        err.to_string().contains("cut off in the middle of a frame"),
        "{err}"
    );

    // `collect_response` surfaces the failure instead of returning half an answer.
    let server = ScriptedServer::start(vec![Script::sse(
        pieces(&sse(&frames, false), 40),
        Duration::ZERO,
    )])
    .await
    .unwrap();
    let err = openai(&server.url())
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.to_string().contains("ended before [DONE]"), "{err}");
}

#[tokio::test]
async fn a_stalled_stream_times_out_as_idle_and_a_silent_upstream_as_first_byte() {
    // Two chunks, then silence with the connection open.
    let body = sse(
        &[chunk(json!({"role": "assistant", "content": "Hi"}), None)],
        false,
    );
    let server = ScriptedServer::start(vec![Script::new(vec![
        llm_core::testing::Step::Write(Script::head(200, "text/event-stream", &[])),
        llm_core::testing::Step::Write(body.into()),
        llm_core::testing::Step::Hang,
    ])])
    .await
    .unwrap();
    let provider = openai_with(&server.url(), short_timeouts());
    let items: Vec<_> = provider
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 2);
    match items[1].as_ref().unwrap_err() {
        llm_core::Error::Timeout { phase, .. } => assert_eq!(*phase, TimeoutPhase::Idle),
        other => panic!("expected an idle timeout, got {other}"),
    }

    let silent = ScriptedServer::start(vec![Script::hang()]).await.unwrap();
    let err = openai_with(&silent.url(), short_timeouts())
        .stream(&ChatRequest::from("hi"))
        .await
        .err()
        .expect("a timeout");
    assert!(
        matches!(
            err,
            llm_core::Error::Timeout {
                phase: TimeoutPhase::FirstByte,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.http_status(), http::StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_json_answer_to_a_stream_request_is_a_clear_protocol_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(crate::support::completion("hi", (1, 1))),
        )
        .mount(&server)
        .await;
    let err = openai(&server.uri())
        .stream(&ChatRequest::from("hi"))
        .await
        .err()
        .expect("an error");
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(
        err.to_string().contains("expected an event stream"),
        "{err}"
    );
}

#[tokio::test]
async fn keep_alive_comments_and_empty_lines_are_ignored() {
    let server = MockServer::start().await;
    let mut body = String::from(": keep-alive\n\n");
    body.push_str(&sse(&text_frames(&["ok"], (1, 1)), false));
    body.push_str(": keep-alive\n\ndata: [DONE]\n\n");
    Mock::given(method("POST"))
        .respond_with(sse_response(body))
        .mount(&server)
        .await;
    let response = openai(&server.uri())
        .stream(&ChatRequest::new("gpt-4o", vec![Message::user("hi")]))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(response.text().as_deref(), Some("ok"));
}
