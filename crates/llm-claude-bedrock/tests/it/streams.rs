//! ConverseStream: the signed request, and real event-stream frames back.

use bytes::Bytes;
use futures_util::StreamExt;
use llm_claude_bedrock::{
    BedrockAuth, ClaudeBedrockConfig, ClaudeBedrockProvider, bedrock_tool_name,
};
use llm_core::{
    ChatChunk, ChatProvider, ChatRequest, ChatStreamExt, ErrorKind, FinishReason, Message, Result,
    Role, Tool, testing::ScriptedServer,
};
use serde_json::{Value, json};

use crate::{
    ACCESS_KEY_ID, API_KEY, MODEL, REGION, SESSION_TOKEN, event, exception, provider, sent,
    stream_script, text_frames,
};

async fn collect(
    provider: &ClaudeBedrockProvider,
    request: &ChatRequest,
) -> Vec<Result<ChatChunk>> {
    provider.stream(request).await.unwrap().collect().await
}

fn ok(items: Vec<Result<ChatChunk>>) -> Vec<ChatChunk> {
    items.into_iter().map(Result::unwrap).collect()
}

#[tokio::test]
async fn text_stream_is_signed_and_decoded_from_frames_split_across_writes() {
    let usage = json!({"inputTokens": 12, "outputTokens": 5, "totalTokens": 17});
    let server = ScriptedServer::start(vec![stream_script(
        &text_frames(&["Hel", "lo, ", "wörld"], "end_turn", usage),
        7,
    )])
    .await
    .unwrap();
    let request = ChatRequest::new(
        "ignored",
        vec![Message::system("Be brief."), Message::user("Say hello")],
    );
    let chunks = ok(collect(&provider(&server), &request).await);

    let (recorded, body) = sent(&server).await;
    assert_eq!(recorded.method, "POST");
    // The model id is one URL-encoded path segment.
    assert_eq!(
        recorded.target,
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    );
    let authorization = recorded.header("authorization").unwrap();
    let date = recorded.header("x-amz-date").unwrap();
    assert_eq!(date.len(), 16, "{date}");
    assert!(
        authorization.starts_with(&format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{}/{REGION}/bedrock/aws4_request, SignedHeaders=",
            &date[..8]
        )),
        "{authorization}"
    );
    assert!(authorization.contains("Signature="), "{authorization}");
    assert!(
        authorization.contains("x-amz-security-token"),
        "{authorization}"
    );
    assert_eq!(recorded.header("x-amz-security-token"), Some(SESSION_TOKEN));
    assert_eq!(recorded.header("content-type"), Some("application/json"));
    assert_eq!(
        body,
        json!({
            "messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
            "system": [{"text": "Be brief."}]
        })
    );

    let text: String = chunks.iter().filter_map(ChatChunk::content).collect();
    assert_eq!(text, "Hello, wörld");
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert!(
        chunks
            .iter()
            .all(|c| c.id == chunks[0].id && c.model == MODEL)
    );
    assert_eq!(chunks[0].id, "chatcmpl-5d8c1c0e-stream");
    let finish = chunks
        .iter()
        .find_map(|c| c.choices.first().and_then(|ch| ch.finish_reason.clone()));
    assert_eq!(finish, Some(FinishReason::Stop));
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    let usage = last.usage.as_ref().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (12, 5, 17)
    );
}

#[tokio::test]
async fn arn_model_ids_are_encoded_as_one_path_segment() {
    let server = ScriptedServer::start(vec![stream_script(
        &text_frames(
            &["ok"],
            "end_turn",
            json!({"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}),
        ),
        64,
    )])
    .await
    .unwrap();
    let arn = "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc123";
    let provider = ClaudeBedrockProvider::new(ClaudeBedrockConfig {
        model: Some(arn.into()),
        ..crate::config(&server)
    })
    .unwrap();
    let _ = ok(collect(&provider, &ChatRequest::from("hi")).await);
    let (recorded, _) = sent(&server).await;
    assert_eq!(
        recorded.target,
        "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Aapplication-inference-profile%2Fabc123/converse-stream"
    );
}

fn tool_frames(second_name: &str) -> Vec<Bytes> {
    vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Checking both."}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_paris", "name": "get_weather"}}}),
        ),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_rome", "name": second_name}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\": \"Par"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"q\": "}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "is\"}"}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "\"rome\"}"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event("contentBlockStop", json!({"contentBlockIndex": 2})),
        event("messageStop", json!({"stopReason": "tool_use"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 402, "outputTokens": 53, "totalTokens": 455}}),
        ),
    ]
}

#[tokio::test]
async fn parallel_tool_use_stream_keys_input_by_content_block_index() {
    let sanitized = bedrock_tool_name("mcp.github.search").into_owned();
    let request = ChatRequest {
        tools: Some(vec![
            Tool::function("get_weather", "Weather", json!({"type": "object"})),
            Tool::function("mcp.github.search", "Search", json!({"type": "object"})),
        ]),
        ..ChatRequest::new("m", vec![Message::user("Weather in Paris; search rome")])
    };

    // Chunk by chunk: stable indexes, id and name on the first fragment only.
    let server = ScriptedServer::start(vec![stream_script(&tool_frames(&sanitized), 5)])
        .await
        .unwrap();
    let chunks = ok(collect(&provider(&server), &request).await);
    let deltas: Vec<Value> = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .flat_map(|c| c.delta.tool_calls.iter().flatten())
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    assert_eq!(deltas.len(), 6, "{deltas:#?}");
    assert_eq!(
        (
            &deltas[0]["index"],
            &deltas[0]["id"],
            &deltas[0]["function"]["name"]
        ),
        (&json!(0), &json!("tooluse_paris"), &json!("get_weather"))
    );
    assert_eq!(
        (
            &deltas[1]["index"],
            &deltas[1]["id"],
            &deltas[1]["function"]["name"]
        ),
        (
            &json!(1),
            &json!("tooluse_rome"),
            &json!("mcp.github.search")
        )
    );
    for delta in &deltas[2..] {
        assert!(delta.get("id").is_none() && delta["function"].get("name").is_none());
    }
    let indexes: Vec<&Value> = deltas[2..].iter().map(|d| &d["index"]).collect();
    assert_eq!(indexes, [&json!(0), &json!(1), &json!(0), &json!(1)]);

    // Folded: the arguments are whole JSON, not `{}`.
    let server = ScriptedServer::start(vec![stream_script(&tool_frames(&sanitized), 9)])
        .await
        .unwrap();
    let full = provider(&server)
        .stream(&request)
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    let calls = full.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "tooluse_paris");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(calls[1].function.name, "mcp.github.search");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[1].function.arguments).unwrap(),
        json!({"q": "rome"})
    );
    assert_eq!(
        full.choices[0].message.text().as_deref(),
        Some("Checking both.")
    );
    assert_eq!(full.choices[0].finish_reason, Some(FinishReason::ToolCalls));
    let usage = full.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (402, 53));
}

#[tokio::test]
async fn reasoning_streams_with_its_signature_and_cache_usage_after_message_stop() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "The user wants "}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "a greeting."}}}),
        ),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "EqQBCkYIBRgCKkD+sig"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 1})),
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"text": "Hello!"}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 2})),
        event("messageStop", json!({"stopReason": "max_tokens"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 10, "outputTokens": 30, "totalTokens": 1240, "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 200}, "metrics": {"latencyMs": 5}}),
        ),
    ];
    let server = ScriptedServer::start(vec![stream_script(&frames, 7)])
        .await
        .unwrap();
    let request = ChatRequest {
        reasoning_effort: Some("low".into()),
        ..ChatRequest::from("hi")
    };
    let chunks = ok(collect(&provider(&server), &request).await);
    let (_, body) = sent(&server).await;
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
    );
    // maxTokens must exceed the budget: defaulted above it.
    assert_eq!(body["inferenceConfig"]["maxTokens"], 1024 + 8192);

    let reasoning: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.delta.reasoning_content.as_deref())
        .collect();
    assert_eq!(reasoning, "The user wants a greeting.");
    let blocks: Vec<&Value> = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.delta.extra.get("thinking_blocks"))
        .collect();
    assert_eq!(
        blocks,
        [
            &json!([{"type": "thinking", "thinking": "The user wants a greeting.", "signature": "EqQBCkYIBRgCKkD+sig"}]),
            &json!([{"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="}]),
        ]
    );
    let finish = chunks
        .iter()
        .find_map(|c| c.choices.first().and_then(|ch| ch.finish_reason.clone()));
    assert_eq!(finish, Some(FinishReason::Length));
    // Usage arrives after messageStop; prompt tokens include cache reads and writes.
    let usage = chunks.last().unwrap().usage.clone().unwrap();
    assert_eq!(usage.prompt_tokens, 1210);
    assert_eq!(usage.completion_tokens, 30);
    assert_eq!(usage.total_tokens, 1240);
    assert_eq!(usage.cached_tokens(), Some(1000));
    assert_eq!(
        usage.prompt_tokens_details.unwrap().cache_write_tokens,
        Some(200)
    );
}

#[tokio::test]
async fn an_exception_frame_mid_stream_ends_it_with_a_classified_error() {
    for (kind, expected) in [
        ("throttlingException", ErrorKind::RateLimited),
        ("modelStreamErrorException", ErrorKind::UpstreamServer),
        ("internalServerException", ErrorKind::UpstreamServer),
        ("serviceUnavailableException", ErrorKind::UpstreamServer),
        ("validationException", ErrorKind::InvalidRequest),
    ] {
        let frames = vec![
            event("messageStart", json!({"role": "assistant"})),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Once upon"}}),
            ),
            exception(kind, "Something went wrong mid-stream."),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": " never sent"}}),
            ),
        ];
        let server = ScriptedServer::start(vec![stream_script(&frames, 11)])
            .await
            .unwrap();
        let items = collect(&provider(&server), &ChatRequest::from("hi")).await;
        assert_eq!(items.len(), 2, "{kind}: {items:#?}");
        assert_eq!(items[0].as_ref().unwrap().content(), Some("Once upon"));
        let error = items[1].as_ref().unwrap_err();
        assert_eq!(error.kind(), expected, "{kind}: {error}");
        assert!(error.to_string().contains("mid-stream"), "{error}");
    }
}

#[tokio::test]
async fn an_exception_before_any_content_fails_the_call() {
    let frames = vec![
        event("messageStart", json!({"role": "assistant"})),
        exception(
            "throttlingException",
            "Too many tokens, please wait before trying again.",
        ),
    ];
    let server = ScriptedServer::start(vec![stream_script(&frames, 11)])
        .await
        .unwrap();
    let Err(error) = provider(&server).stream(&ChatRequest::from("hi")).await else {
        panic!("the call should fail before any chunk");
    };
    assert_eq!(error.kind(), ErrorKind::RateLimited);
}

#[tokio::test]
async fn streams_cut_short_are_protocol_errors() {
    let whole = text_frames(
        &["Once upon", " a time"],
        "end_turn",
        json!({"inputTokens": 1, "outputTokens": 2, "totalTokens": 3}),
    );
    // Ends between frames before messageStop.
    let before_stop: Vec<Bytes> = whole[..2].to_vec();
    // Ends in the middle of a frame.
    let mut mid_frame: Vec<Bytes> = whole[..2].to_vec();
    mid_frame.push(whole[2].slice(..20));
    // A frame whose CRC does not match.
    let mut corrupt: Vec<Bytes> = whole[..2].to_vec();
    let mut bad = whole[2].to_vec();
    let at = bad.len() - 10;
    bad[at] ^= 0xff;
    corrupt.push(Bytes::from(bad));
    for (name, frames) in [
        ("before messageStop", before_stop),
        ("mid-frame", mid_frame),
        ("bad CRC", corrupt),
    ] {
        let server = ScriptedServer::start(vec![stream_script(&frames, 7)])
            .await
            .unwrap();
        let items = collect(&provider(&server), &ChatRequest::from("hi")).await;
        let (last, content) = items.split_last().unwrap();
        assert_eq!(content.len(), 1, "{name}: {items:#?}");
        assert_eq!(content[0].as_ref().unwrap().content(), Some("Once upon"));
        let error = last.as_ref().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Protocol, "{name}: {error}");
    }
}

#[tokio::test]
async fn a_stream_without_metadata_after_message_stop_is_whole() {
    let mut frames = text_frames(&["Done."], "end_turn", json!({}));
    frames.pop();
    let server = ScriptedServer::start(vec![stream_script(&frames, 7)])
        .await
        .unwrap();
    let full = provider(&server)
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(full.text().as_deref(), Some("Done."));
    assert!(full.usage.is_none());
}

#[tokio::test]
async fn bedrock_api_keys_go_as_bearer_tokens() {
    let server = ScriptedServer::start(vec![stream_script(
        &text_frames(
            &["Hi"],
            "end_turn",
            json!({"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}),
        ),
        7,
    )])
    .await
    .unwrap();
    let provider = ClaudeBedrockProvider::new(ClaudeBedrockConfig {
        region: Some(REGION.into()),
        base_url: Some(server.url()),
        model: Some(MODEL.into()),
        ..ClaudeBedrockConfig::new(BedrockAuth::ApiKey(API_KEY.into()))
    })
    .unwrap();
    let full = provider
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(full.text().as_deref(), Some("Hi"));
    let (recorded, _) = sent(&server).await;
    assert_eq!(
        recorded.header("authorization"),
        Some(format!("Bearer {API_KEY}").as_str())
    );
}
