use serde_json::{Value, json};

use super::*;

/// `value` without `null` members, so fixtures that spell out `"x": null` compare equal to
/// our output, which omits absent optional fields.
fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(fixture: &Value) -> T {
    let parsed: T = serde_json::from_value(fixture.clone()).unwrap();
    let back = serde_json::to_value(&parsed).unwrap();
    assert_eq!(strip_nulls(back), strip_nulls(fixture.clone()));
    parsed
}

#[test]
fn response_fixture_round_trips() {
    let fixture = json!({
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1732600000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_f33640a400",
        "service_tier": "default",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": null, "annotations": []},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16,
            "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0,
              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        }
    });
    let response: ChatResponse = round_trip(&fixture);
    assert_eq!(response.text().as_deref(), Some("Hello! How can I help?"));
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.unwrap();
    assert_eq!(usage.cached_tokens(), Some(3));
    assert_eq!(usage.reasoning_tokens(), Some(2));
    // Unknown fields are kept, not dropped.
    assert_eq!(response.choices[0].message.extra["annotations"], json!([]));
}

#[test]
fn tool_call_response_round_trips() {
    let fixture = json!({
        "id": "chatcmpl-T", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_Ab12", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
        }}]
    });
    let response: ChatResponse = round_trip(&fixture);
    let message = &response.choices[0].message;
    assert_eq!(message.content, None);
    assert_eq!(
        message.tool_calls.as_ref().unwrap()[0].function.arguments,
        "{\"city\":\"Paris\"}"
    );
    // `content: null` is written out, as OpenAI does for tool-call messages.
    let back = serde_json::to_value(&response).unwrap();
    assert_eq!(back["choices"][0]["message"]["content"], Value::Null);
    assert!(
        back["choices"][0]["message"]
            .as_object()
            .unwrap()
            .contains_key("content")
    );
}

#[test]
fn azure_extras_round_trip() {
    let fixture = json!({
        "id": "", "object": "", "created": 0, "model": "",
        "choices": [],
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
            "hate": {"filtered": false, "severity": "safe"}}}]
    });
    let chunk: ChatChunk = round_trip(&fixture);
    assert!(chunk.choices.is_empty());
    assert!(!chunk.has_content());
}

#[test]
fn chunk_fixtures_round_trip() {
    let fixtures = [
        json!({"id":"chatcmpl-AbC1","object":"chat.completion.chunk","created":1732600000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_f33640a400","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}),
        json!({"id":"chatcmpl-AbC1","object":"chat.completion.chunk","created":1732600000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hello!"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x1y2"}),
        json!({"id":"chatcmpl-AbC1","object":"chat.completion.chunk","created":1732600000,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}),
        json!({"id":"chatcmpl-T1","object":"chat.completion.chunk","created":1732600001,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_Ab12","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}),
        json!({"id":"d","object":"chat.completion.chunk","created":1,"model":"deepseek-reasoner","choices":[{"index":0,"delta":{"reasoning_content":"Let me think"},"finish_reason":null}]}),
    ];
    let chunks: Vec<ChatChunk> = fixtures.iter().map(round_trip).collect();
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert!(
        !chunks[0].has_content(),
        "an empty first delta is not content"
    );
    assert!(chunks[1].has_content());
    assert_eq!(chunks[1].extra["obfuscation"], "x1y2");
    assert_eq!(chunks[2].usage.as_ref().unwrap().total_tokens, 11);
    assert!(chunks[3].has_content(), "a tool-call delta is content");
    assert!(chunks[4].has_content(), "reasoning is content");
}

/// `deserialize_in_place` (a stream translator parses each chunk where it is queued) gives
/// what `deserialize` gives, whatever the place held before, and keeps its rules.
#[test]
fn chunks_parsed_in_place_are_the_chunks_parsed_anew() {
    let mut place = ChatChunk::new(
        "old",
        7,
        "old-model",
        vec![ChunkChoice::new(3, Delta::content("old"), None)],
    );
    place.system_fingerprint = Some("fp_old".to_owned());
    place.usage = Some(Usage::new(1, 2));
    place.extra.insert("stale".to_owned(), json!(true));
    let frames = [
        r#"{"id":"chatcmpl-AbC1","object":"chat.completion.chunk","created":1732600000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello!"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"x1y2"}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
        r#"{"z":1,"\u0069d":"c1","choices":[{"delta":{"content":"hi","x":[1]},"index":0,"finish_reason":null,"cfr":{}}],"a":{"b":2}}"#,
        "{}",
    ];
    for frame in frames {
        let mut reader = serde_json::Deserializer::from_str(frame);
        serde::Deserialize::deserialize_in_place(&mut reader, &mut place).unwrap();
        reader.end().unwrap();
        assert_eq!(
            place,
            serde_json::from_str::<ChatChunk>(frame).unwrap(),
            "{frame}"
        );
    }
    for (frame, expected) in [
        (r#"{"id":"a","id":"b"}"#, "duplicate field `id`"),
        (r#"{"created":"3"}"#, "invalid type: string \"3\""),
        (r#"["id"]"#, "struct ChatChunk"),
    ] {
        let mut reader = serde_json::Deserializer::from_str(frame);
        let error = serde::Deserialize::deserialize_in_place(&mut reader, &mut place)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{frame}: {error}");
    }
}

#[test]
fn chunk_finish_reason_is_always_written() {
    let chunk = ChatChunk::new(
        "id",
        1,
        "m",
        vec![ChunkChoice::new(0, Delta::content("x"), None)],
    );
    let value = serde_json::to_value(&chunk).unwrap();
    assert_eq!(value["object"], "chat.completion.chunk");
    assert!(
        value["choices"][0]
            .as_object()
            .unwrap()
            .contains_key("finish_reason")
    );
    assert!(!value.as_object().unwrap().contains_key("usage"));
}

#[test]
fn unknown_enum_values_do_not_fail() {
    let chunk: ChatChunk = serde_json::from_value(json!({
        "id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "insufficient_system_resource"}]
    }))
    .unwrap();
    assert_eq!(
        chunk.choices[0].finish_reason,
        Some(FinishReason::Other(
            "insufficient_system_resource".to_owned()
        ))
    );
    let back = serde_json::to_value(&chunk).unwrap();
    assert_eq!(
        back["choices"][0]["finish_reason"],
        "insufficient_system_resource"
    );
    // A missing `object` defaults to the right value.
    assert_eq!(chunk.object, ChatChunk::OBJECT);
}

#[test]
fn request_fixture_round_trips_with_unknown_fields_kept() {
    let fixture = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
            ], "name": "alice"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
        ],
        "temperature": 0.7, "top_p": 0.9, "n": 1, "stop": ["\n\n", "END"],
        "max_tokens": 1000, "max_completion_tokens": 900,
        "presence_penalty": 0.1, "frequency_penalty": -0.1,
        "logit_bias": {"50256": -100}, "logprobs": true, "top_logprobs": 2, "seed": 42,
        "user": "u-1", "stream": true, "stream_options": {"include_usage": true, "include_obfuscation": false},
        "tools": [{"type": "function", "function": {"name": "look", "description": "Look closer",
            "parameters": {"type": "object", "properties": {}}, "strict": true}}],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}},
        "reasoning_effort": "low",
        "metadata": {"trace": "abc"},
        "load_balance_strategy": "round_robin"
    });
    let request: ChatRequest = round_trip(&fixture);
    assert_eq!(request.extra["load_balance_strategy"], "round_robin");
    assert_eq!(request.extra["metadata"], json!({"trace": "abc"}));
    assert!(request.include_usage());
    assert_eq!(request.stop.as_ref().unwrap().as_vec(), ["\n\n", "END"]);
    assert_eq!(request.messages[1].text().as_deref(), Some("Be brief."));
    assert_eq!(
        request.stream_options.as_ref().unwrap().extra["include_obfuscation"],
        false
    );
}

#[test]
fn tool_choice_forms() {
    for (value, expected) in [
        (json!("auto"), ToolChoice::Mode(ToolChoiceMode::Auto)),
        (json!("none"), ToolChoice::Mode(ToolChoiceMode::None)),
        (
            json!("required"),
            ToolChoice::Mode(ToolChoiceMode::Required),
        ),
    ] {
        assert_eq!(
            serde_json::from_value::<ToolChoice>(value).unwrap(),
            expected
        );
    }
    let allowed = json!({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}});
    assert_eq!(
        serde_json::from_value::<ToolChoice>(allowed.clone()).unwrap(),
        ToolChoice::Other(allowed)
    );
}

#[test]
fn bad_messages_get_clear_errors() {
    let unknown_role = serde_json::from_value::<ChatRequest>(json!({
        "messages": [{"role": "wizard", "content": "hi"}]
    }))
    .unwrap_err()
    .to_string();
    assert!(
        unknown_role.contains("unknown variant `wizard`"),
        "{unknown_role}"
    );

    let wrong_content = serde_json::from_value::<ChatRequest>(json!({
        "messages": [{"role": "user", "content": 42}]
    }))
    .unwrap_err()
    .to_string();
    assert!(
        wrong_content.contains("a string or an array of content parts"),
        "{wrong_content}"
    );

    let bad_part = serde_json::from_value::<ChatRequest>(json!({
        "messages": [{"role": "user", "content": [{"type": "hologram"}]}]
    }))
    .unwrap_err()
    .to_string();
    assert!(
        bad_part.contains("unknown variant `hologram`"),
        "{bad_part}"
    );

    let missing = serde_json::from_value::<ChatRequest>(json!({"model": "x"}))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing field `messages`"), "{missing}");
}

#[test]
fn string_converts_to_one_user_message() {
    let request = ChatRequest::from("你好");
    assert_eq!(request.model, None);
    assert_eq!(request.messages, vec![Message::user("你好")]);
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        json!({"messages": [{"role": "user", "content": "你好"}]})
    );
}

#[test]
fn request_json_snapshots() {
    let text = ChatRequest {
        stop: Some(Stop::One("END".into())),
        max_tokens: Some(64),
        ..ChatRequest::new(
            "gpt-4o",
            vec![Message::system("Be brief."), Message::user("Hello")],
        )
    };
    insta::assert_json_snapshot!("request_text", text);

    let tools = ChatRequest {
        tools: Some(vec![Tool::function(
            "get_weather",
            "Weather for a city",
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        )]),
        tool_choice: Some(ToolChoice::Mode(ToolChoiceMode::Auto)),
        ..ChatRequest::new(
            "gpt-4o",
            vec![
                Message::user("Weather in Paris?"),
                Message {
                    content: None,
                    tool_calls: Some(vec![ToolCall {
                        id: "call_1".into(),
                        kind: ToolKind::Function,
                        function: FunctionCall {
                            name: "get_weather".into(),
                            arguments: r#"{"city":"Paris"}"#.into(),
                        },
                    }]),
                    ..Message::assistant("")
                },
                Message::tool("call_1", "18°C, sunny"),
            ],
        )
    };
    insta::assert_json_snapshot!("request_tools", tools);

    let image = ChatRequest::new(
        "gpt-4o",
        vec![Message::user_parts(vec![
            ContentPart::text("What is this?"),
            ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
        ])],
    );
    insta::assert_json_snapshot!("request_image", image);

    let json_mode = ChatRequest {
        response_format: Some(ResponseFormat::JsonObject),
        ..ChatRequest::new("gpt-4o", vec![Message::user("List three colours as JSON")])
    };
    insta::assert_json_snapshot!("request_json_mode", json_mode);
}

/// The one-pass `Deserialize` (what `#[serde(flatten)]` meant, without its buffering):
/// unknown keys kept, escaped keys recognised, duplicates and missing required
/// fields refused as the derive refuses them, `null` for an optional field is `None`.
#[test]
fn one_pass_deserialization_keeps_the_derives_rules() {
    let chunk: ChatChunk = serde_json::from_str(
        r#"{"z":1,"\u0069d":"c1","choices":[{"delta":{"content":"hi","x":[1]},"index":0,"finish_reason":null,"cfr":{}}],"usage":null,"a":{"b":2}}"#,
    )
    .unwrap();
    assert_eq!(chunk.id, "c1");
    assert_eq!(chunk.object, ChatChunk::OBJECT);
    assert_eq!(chunk.usage, None);
    assert_eq!(chunk.extra.keys().collect::<Vec<_>>(), ["a", "z"]);
    assert_eq!(chunk.choices[0].delta.extra["x"], json!([1]));
    assert_eq!(chunk.choices[0].extra["cfr"], json!({}));
    assert_eq!(chunk.content(), Some("hi"));

    let duplicate = serde_json::from_str::<ChatResponse>(r#"{"id":"a","id":"b"}"#)
        .unwrap_err()
        .to_string();
    assert!(duplicate.contains("duplicate field `id`"), "{duplicate}");

    let missing = serde_json::from_str::<ChatResponse>(r#"{"choices":[{"index":0}]}"#)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("missing field `message`"), "{missing}");

    let wrong = serde_json::from_str::<Usage>(r#"{"prompt_tokens":"3"}"#)
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("invalid type: string \"3\""), "{wrong}");

    let not_an_object = serde_json::from_str::<Message>(r#"["user","hi"]"#)
        .unwrap_err()
        .to_string();
    assert!(not_an_object.contains("struct Message"), "{not_an_object}");

    // What a derive without flatten would also accept: a request read through a `Value`.
    let request: ChatRequest = serde_json::from_value(json!({
        "messages": [{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}],
        "stream_options": {"include_usage": true, "include_obfuscation": false},
        "metadata": {"k": "v"}
    }))
    .unwrap();
    assert!(request.include_usage());
    assert_eq!(
        request.messages[0].extra["cache_control"]["type"],
        "ephemeral"
    );
    assert_eq!(request.extra["metadata"]["k"], "v");
}
