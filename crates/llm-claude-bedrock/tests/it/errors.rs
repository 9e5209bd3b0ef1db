//! Every Bedrock exception → its ErrorKind, by exception type rather than status; and no
//! secret (secret access key, session token, API key) in any output.

use llm_claude_bedrock::{BedrockAuth, ClaudeBedrockConfig, ClaudeBedrockProvider};
use llm_core::{ChatProvider, ChatRequest, ErrorKind, testing::ScriptedServer};

use crate::{API_KEY, MODEL, REGION, SECRET_KEY, SESSION_TOKEN, error_answer, provider};

#[tokio::test]
async fn every_exception_maps_to_its_kind_on_chat_and_stream() {
    let cases: &[(u16, &str, &str, ErrorKind)] = &[
        (
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
            ErrorKind::RateLimited,
        ),
        // A 429 that is not throttling: the model is loading.
        (
            429,
            "ModelNotReadyException",
            "Model is not ready for inference. Wait and try again.",
            ErrorKind::UpstreamServer,
        ),
        (
            400,
            "ValidationException",
            "Input is too long for requested model.",
            ErrorKind::ContextLengthExceeded,
        ),
        (
            400,
            "ValidationException",
            "prompt is too long: 210000 tokens > 200000 maximum",
            ErrorKind::ContextLengthExceeded,
        ),
        (
            400,
            "ValidationException",
            "Malformed input request: 2 schema violations found, please reformat your input and try again.",
            ErrorKind::InvalidRequest,
        ),
        (
            400,
            "ValidationException",
            "Invocation of model ID anthropic.claude-sonnet-4-5-20250929-v1:0 with on-demand throughput isn't supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
            ErrorKind::NotFound,
        ),
        (
            400,
            "ServiceQuotaExceededException",
            "You have exceeded the number of tokens per day.",
            ErrorKind::QuotaExhausted,
        ),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
            ErrorKind::Permission,
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            ErrorKind::Authentication,
        ),
        (
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            ErrorKind::Authentication,
        ),
        (
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
            ErrorKind::Authentication,
        ),
        (
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
            ErrorKind::Authentication,
        ),
        (
            404,
            "ResourceNotFoundException",
            "Model not found.",
            ErrorKind::NotFound,
        ),
        (
            408,
            "ModelTimeoutException",
            "Model has timed out in processing the request.",
            ErrorKind::Timeout,
        ),
        (
            424,
            "ModelErrorException",
            "The model returned an error.",
            ErrorKind::UpstreamServer,
        ),
        (
            500,
            "InternalServerException",
            "The server encountered an internal error.",
            ErrorKind::UpstreamServer,
        ),
        (
            503,
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
            ErrorKind::UpstreamServer,
        ),
        // An unknown type falls back to the status.
        (
            502,
            "SomethingNewException",
            "Bad gateway.",
            ErrorKind::UpstreamServer,
        ),
    ];
    for &(status, kind, message, expected) in cases {
        for stream in [false, true] {
            let server = ScriptedServer::start(vec![error_answer(status, kind, message)])
                .await
                .unwrap();
            let request = ChatRequest::from("hi");
            let provider = provider(&server);
            let error = if stream {
                match provider.stream(&request).await {
                    Err(error) => error,
                    Ok(_) => panic!("{kind}: the stream should fail before it starts"),
                }
            } else {
                provider.chat(&request).await.unwrap_err()
            };
            assert_eq!(
                error.kind(),
                expected,
                "{kind} ({status}, stream {stream}): {error}"
            );
            let upstream = error
                .upstream()
                .unwrap_or_else(|| panic!("{kind}: {error:?}"));
            assert_eq!(upstream.status.map(|s| s.as_u16()), Some(status));
            assert_eq!(upstream.code.as_deref(), Some(kind));
            assert_eq!(upstream.message, message);
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    let server = ScriptedServer::start(vec![]).await.unwrap();
    let url = server.url();
    drop(server);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let provider = ClaudeBedrockProvider::new(ClaudeBedrockConfig {
        base_url: Some(url),
        region: Some(REGION.into()),
        model: Some(MODEL.into()),
        ..ClaudeBedrockConfig::new(BedrockAuth::ApiKey(API_KEY.into()))
    })
    .unwrap();
    let error = provider.chat(&ChatRequest::from("hi")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connection, "{error}");
}

#[tokio::test]
async fn secrets_never_appear_in_debug_output_or_errors() {
    // Careless upstreams echo what they rejected: each provider masks its own secrets.
    let echo = format!("The security token {SESSION_TOKEN} or key {SECRET_KEY} is invalid.");
    // Static keys with a session token.
    let server = ScriptedServer::start(vec![error_answer(
        403,
        "UnrecognizedClientException",
        &echo,
    )])
    .await
    .unwrap();
    let keys = provider(&server);
    let error = keys.chat(&ChatRequest::from("hi")).await.unwrap_err();
    // API key.
    let echo = format!("Invalid API key {API_KEY}.");
    let server2 = ScriptedServer::start(vec![error_answer(
        403,
        "UnrecognizedClientException",
        &echo,
    )])
    .await
    .unwrap();
    let config = ClaudeBedrockConfig {
        region: Some(REGION.into()),
        base_url: Some(server2.url()),
        ..ClaudeBedrockConfig::new(BedrockAuth::ApiKey(API_KEY.into()))
    };
    let bearer = ClaudeBedrockProvider::new(config.clone()).unwrap();
    let error2 = bearer
        .chat(&ChatRequest::new(
            MODEL,
            vec![llm_core::Message::user("hi")],
        ))
        .await
        .unwrap_err();
    let mut printed = vec![
        format!("{keys:?}"),
        format!("{bearer:?}"),
        format!("{config:?}"),
        format!("{:?}", crate::config(&server)),
        format!("{error}"),
        format!("{error:?}"),
        format!("{error2}"),
        format!("{error2:?}"),
    ];
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        printed.push(cause.to_string());
        source = cause.source();
    }
    for text in &printed {
        for secret in [SECRET_KEY, SESSION_TOKEN, API_KEY] {
            assert!(!text.contains(secret), "{secret} printed in {text}");
        }
    }
    // Masked, not dropped: the last characters identify the key.
    assert!(
        printed[1].contains(&API_KEY[API_KEY.len() - 4..]),
        "{}",
        printed[1]
    );
}
