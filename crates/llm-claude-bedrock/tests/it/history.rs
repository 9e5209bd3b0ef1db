//! Converse's invariants, each broken by an OpenAI-shaped history that real clients send
//! (`../shared/wire-formats.md` §8.2), and the Converse request that comes out.

use llm_claude_bedrock::bedrock_tool_name;
use llm_core::{
    ChatProvider, ChatRequest, Content, ContentPart, ErrorKind, FunctionCall, Message, Role, Tool,
    ToolCall, ToolChoice, ToolChoiceMode, ToolKind, testing::ScriptedServer,
};
use serde_json::{Value, json};

use crate::{answer, provider, sent};

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: id.into(),
        kind: ToolKind::Function,
        function: FunctionCall {
            name: name.into(),
            arguments: arguments.into(),
        },
    }
}

fn assistant_calls(content: Option<&str>, calls: Vec<ToolCall>) -> Message {
    let mut message = Message::assistant(content.unwrap_or_default());
    if content.is_none() {
        message.content = None;
    }
    message.tool_calls = Some(calls);
    message
}

/// Send `request` and return the Converse body Bedrock received.
async fn converse_body(request: &ChatRequest) -> Value {
    let server = ScriptedServer::start(vec![answer(
        json!([{"text": "It is sunny."}]),
        "end_turn",
        json!({"inputTokens": 50, "outputTokens": 5, "totalTokens": 55}),
    )])
    .await
    .unwrap();
    provider(&server).chat(request).await.unwrap();
    sent(&server).await.1
}

/// weather(Paris) and weather(Rome) called in parallel, both answered.
fn parallel_history() -> Vec<Message> {
    vec![
        Message::user("Weather in Paris and Rome?"),
        assistant_calls(
            None,
            vec![
                call("call_paris", "get_weather", r#"{"city":"Paris"}"#),
                call("call_rome", "get_weather", r#"{"city":"Rome"}"#),
            ],
        ),
        Message::tool("call_paris", r#"{"temp": 21}"#),
        Message::tool("call_rome", "Sunny, 25°C"),
    ]
}

fn weather_tool() -> Tool {
    Tool::function(
        "get_weather",
        "Get the weather",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )
}

#[tokio::test]
async fn tool_config_is_sent_when_the_history_has_tool_blocks_but_the_request_has_no_tools() {
    let body = converse_body(&ChatRequest::new("m", parallel_history())).await;
    assert_eq!(
        body["toolConfig"],
        json!({"tools": [{"toolSpec": {
            "name": "get_weather",
            "description": "A tool used earlier in this conversation.",
            "inputSchema": {"json": {"type": "object", "properties": {}}}
        }}]})
    );
}

#[tokio::test]
async fn tool_choice_none_keeps_the_tools_the_history_needs_and_sends_no_choice() {
    let request = ChatRequest {
        tools: Some(vec![weather_tool()]),
        tool_choice: Some(ToolChoice::Mode(ToolChoiceMode::None)),
        ..ChatRequest::new("m", parallel_history())
    };
    let body = converse_body(&request).await;
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"],
        json!(["city"])
    );
    assert!(body["toolConfig"].get("toolChoice").is_none(), "{body:#}");

    // Without tool blocks in the history, `none` means: no tools at all.
    let request = ChatRequest {
        tools: Some(vec![weather_tool()]),
        tool_choice: Some(ToolChoice::Mode(ToolChoiceMode::None)),
        ..ChatRequest::new("m", vec![Message::user("Hi")])
    };
    let body = converse_body(&request).await;
    assert!(body.get("toolConfig").is_none(), "{body:#}");

    // `required` and a named tool map to any / tool.
    let request = ChatRequest {
        tools: Some(vec![weather_tool()]),
        tool_choice: Some(ToolChoice::Mode(ToolChoiceMode::Required)),
        ..ChatRequest::new("m", vec![Message::user("Hi")])
    };
    assert_eq!(
        converse_body(&request).await["toolConfig"]["toolChoice"],
        json!({"any": {}})
    );
    let request = ChatRequest {
        tools: Some(vec![weather_tool()]),
        tool_choice: Some(
            serde_json::from_value(
                json!({"type": "function", "function": {"name": "get_weather"}}),
            )
            .unwrap(),
        ),
        ..ChatRequest::new("m", vec![Message::user("Hi")])
    };
    assert_eq!(
        converse_body(&request).await["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "get_weather"}})
    );
}

#[tokio::test]
async fn parallel_tool_results_go_in_one_user_message_and_roles_alternate() {
    let mut history = parallel_history();
    // A client that adds the user's next words after the tool results, and a client that
    // sends two user messages in a row.
    history.push(Message::user("And in Oslo?"));
    history.push(Message::user("Be quick."));
    let body = converse_body(&ChatRequest::new("m", history)).await;
    let messages = body["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(
        messages[2]["content"],
        json!([
            {"toolResult": {"toolUseId": "call_paris", "content": [{"json": {"temp": 21}}], "status": "success"}},
            {"toolResult": {"toolUseId": "call_rome", "content": [{"text": "Sunny, 25°C"}], "status": "success"}},
            {"text": "And in Oslo?"},
            {"text": "Be quick."}
        ])
    );
    assert_eq!(
        messages[1]["content"],
        json!([
            {"toolUse": {"toolUseId": "call_paris", "name": "get_weather", "input": {"city": "Paris"}}},
            {"toolUse": {"toolUseId": "call_rome", "name": "get_weather", "input": {"city": "Rome"}}}
        ])
    );
}

#[tokio::test]
async fn tool_results_lead_their_user_turn_even_after_user_text() {
    // Some clients put the user's text between the call and its results.
    let history = vec![
        Message::user("Weather?"),
        assistant_calls(
            None,
            vec![call("call_1", "get_weather", r#"{"city":"Paris"}"#)],
        ),
        Message::user("(take your time)"),
        Message::tool("call_1", "Sunny"),
    ];
    let body = converse_body(&ChatRequest::new("m", history)).await;
    assert_eq!(
        body["messages"][2]["content"],
        json!([
            {"toolResult": {"toolUseId": "call_1", "content": [{"text": "Sunny"}], "status": "success"}},
            {"text": "(take your time)"}
        ])
    );
}

#[tokio::test]
async fn blank_text_blocks_are_never_sent() {
    let history = vec![
        Message::user("Weather?"),
        // The OpenAI SDKs send `content: ""` with tool calls.
        assistant_calls(
            Some(""),
            vec![call("call_1", "get_weather", r#"{"city":"Paris"}"#)],
        ),
        // An empty tool result.
        Message::tool("call_1", ""),
        // Whitespace-only assistant text and parts.
        Message::assistant("  \n"),
        Message::user_parts(vec![ContentPart::text(" "), ContentPart::text("Thanks!")]),
    ];
    let body = converse_body(&ChatRequest::new("m", history)).await;
    let text = body.to_string();
    assert!(!text.contains(r#""text":"""#), "{body:#}");
    assert!(!text.contains(r#""text":" ""#), "{body:#}");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"text": "Weather?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [], "status": "success"}},
                {"text": "Thanks!"}
            ]}
        ])
    );
}

#[tokio::test]
async fn tool_names_are_sanitized_and_callers_get_their_own_names_back() {
    let dotted = "mcp.github.search_issues";
    let long = format!("tool_{}", "x".repeat(80));
    let sanitized = bedrock_tool_name(dotted).into_owned();
    assert_ne!(sanitized, dotted);
    let history = vec![
        Message::user("Find issues"),
        assistant_calls(None, vec![call("call:1/ü", dotted, r#"{"q":"bug"}"#)]),
        Message::tool("call:1/ü", "[]"),
    ];
    let server = ScriptedServer::start(vec![answer(
        json!([{"toolUse": {"toolUseId": "tooluse_2", "name": sanitized, "input": {"q": "crash"}}}]),
        "tool_use",
        json!({"inputTokens": 5, "outputTokens": 5, "totalTokens": 10}),
    )])
    .await
    .unwrap();
    let request = ChatRequest {
        tools: Some(vec![
            Tool::function(dotted, "Search issues", json!({"type": "object"})),
            Tool::function(long.as_str(), "Long", json!({"type": "object"})),
        ]),
        ..ChatRequest::new("m", history)
    };
    let response = provider(&server).chat(&request).await.unwrap();
    let (_, body) = sent(&server).await;
    let names: Vec<&str> = body["toolConfig"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["toolSpec"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], sanitized);
    assert_eq!(names[1].len(), 64);
    for name in &names {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{name}"
        );
    }
    let tool_use = &body["messages"][1]["content"][0]["toolUse"];
    assert_eq!(tool_use["name"], sanitized.as_str());
    // The id is made valid the same way for the call and its result.
    let id = tool_use["toolUseId"].as_str().unwrap();
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b)),
        "{id}"
    );
    assert_eq!(
        body["messages"][2]["content"][0]["toolResult"]["toolUseId"],
        id
    );
    // The answer names the caller's tool.
    let calls = response.choices[0].message.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].function.name, dotted);
}

#[tokio::test]
async fn tool_input_is_always_an_object() {
    let history = vec![
        Message::user("Go"),
        assistant_calls(
            None,
            vec![
                call("call_a", "now", ""),
                call("call_b", "echo", "[1, 2]"),
                call("call_c", "nothing", "null"),
            ],
        ),
        Message::tool("call_a", "12:00"),
        Message::tool("call_b", "ok"),
        Message::tool("call_c", "ok"),
    ];
    let body = converse_body(&ChatRequest::new("m", history)).await;
    let inputs: Vec<&Value> = body["messages"][1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["toolUse"]["input"])
        .collect();
    assert_eq!(inputs, [&json!({}), &json!({"value": [1, 2]}), &json!({})]);

    // Arguments that are not JSON are the caller's error, said before any call.
    let server = ScriptedServer::start(vec![]).await.unwrap();
    let request = ChatRequest::new(
        "m",
        vec![
            Message::user("Go"),
            assistant_calls(None, vec![call("call_x", "f", "{not json")]),
            Message::tool("call_x", "ok"),
        ],
    );
    let error = provider(&server).chat(&request).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert!(server.received().await.is_empty());
}

#[tokio::test]
async fn a_conversation_that_starts_with_the_assistant_gets_a_user_turn_first() {
    let history = vec![
        Message::system("You are a concierge."),
        Message::assistant("Welcome! How can I help?"),
        Message::user("A table for two."),
    ];
    let body = converse_body(&ChatRequest::new("m", history)).await;
    let roles: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(body["system"], json!([{"text": "You are a concierge."}]));
}

#[tokio::test]
async fn reasoning_and_its_signature_survive_a_round_trip_through_our_history() {
    // 1. The answer carries reasoning and a signature.
    let server = ScriptedServer::start(vec![answer(
        json!([
            {"reasoningContent": {"reasoningText": {"text": "Need the weather tool.", "signature": "sig-123"}}},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}
        ]),
        "tool_use",
        json!({"inputTokens": 5, "outputTokens": 5, "totalTokens": 10}),
    )])
    .await
    .unwrap();
    let first = ChatRequest {
        tools: Some(vec![weather_tool()]),
        reasoning_effort: Some("medium".into()),
        ..ChatRequest::new("m", vec![Message::user("Weather in Paris?")])
    };
    let response = provider(&server).chat(&first).await.unwrap();
    let message = response.choices[0].message.clone();
    assert_eq!(
        message.reasoning_content.as_deref(),
        Some("Need the weather tool.")
    );
    assert_eq!(
        message.extra["thinking_blocks"],
        json!([{"type": "thinking", "thinking": "Need the weather tool.", "signature": "sig-123"}])
    );

    // 2. The client sends the message back as JSON, as an OpenAI SDK client would.
    let echoed: Message = serde_json::from_value(serde_json::to_value(&message).unwrap()).unwrap();
    assert_eq!(echoed.role, Role::Assistant);
    let second = ChatRequest {
        tools: Some(vec![weather_tool()]),
        reasoning_effort: Some("medium".into()),
        ..ChatRequest::new(
            "m",
            vec![
                Message::user("Weather in Paris?"),
                echoed,
                Message::tool("tooluse_1", "Sunny"),
            ],
        )
    };
    let body = converse_body(&second).await;
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"reasoningContent": {"reasoningText": {"text": "Need the weather tool.", "signature": "sig-123"}}},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}
        ])
    );
}

#[tokio::test]
async fn cache_control_breakpoints_become_cache_points() {
    let mut system = Message::new(Role::System, "");
    system.content = Some(Content::Parts(vec![serde_json::from_value(
        json!({"type": "text", "text": "A long policy document.", "cache_control": {"type": "ephemeral"}}),
    )
    .unwrap()]));
    let mut user = Message::user("First question about the document.");
    user.extra.insert(
        "cache_control".into(),
        json!({"type": "ephemeral", "ttl": "1h"}),
    );
    let body = converse_body(&ChatRequest::new("m", vec![system, user])).await;
    assert_eq!(
        body["system"],
        json!([{"text": "A long policy document."}, {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"text": "First question about the document."}, {"cachePoint": {"type": "default", "ttl": "1h"}}])
    );
}

#[tokio::test]
async fn a_tool_result_marked_is_error_has_status_error() {
    let mut failed = Message::tool("call_1", "clock broken");
    failed.extra.insert("is_error".into(), json!(true));
    let history = vec![
        Message::user("Time?"),
        assistant_calls(None, vec![call("call_1", "get_time", "{}")]),
        failed,
    ];
    let body = converse_body(&ChatRequest::new("m", history)).await;
    assert_eq!(
        body["messages"][2]["content"][0]["toolResult"]["status"],
        "error"
    );
}
