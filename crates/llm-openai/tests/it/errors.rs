//! Error answers over HTTP: every documented status and body, mapped to its kind.

use std::time::{Duration, SystemTime};

use llm_core::{ChatProvider, ChatRequest, ErrorKind, TimeoutPhase};
use serde_json::Value;
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

use crate::support::{KEY, error_body, openai, openai_with, short_timeouts};

async fn failing(status: u16, body: Value, headers: &[(&str, String)]) -> llm_core::Error {
    let server = MockServer::start().await;
    let mut template = ResponseTemplate::new(status).set_body_json(body);
    for (name, value) in headers {
        template = template.insert_header(*name, value.as_str());
    }
    // Exactly one call: the provider itself never retries; failover is the router's job.
    Mock::given(method("POST"))
        .respond_with(template)
        .expect(1)
        .mount(&server)
        .await;
    let err = openai(&server.uri())
        .chat(&ChatRequest::from("hi"))
        .await
        .unwrap_err();
    server.verify().await;
    err
}

#[tokio::test]
async fn each_documented_status_maps_to_its_kind() {
    let cases = [
        (
            401,
            error_body(
                "Incorrect API key provided: sk-abc***xyz.",
                Some("invalid_request_error"),
                Some("invalid_api_key"),
            ),
            ErrorKind::Authentication,
            502,
        ),
        (
            403,
            error_body(
                "Country, region, or territory not supported",
                Some("invalid_request_error"),
                Some("unsupported_country_region_territory"),
            ),
            ErrorKind::Permission,
            403,
        ),
        (
            404,
            error_body(
                "The model `gpt-9` does not exist or you do not have access to it.",
                Some("invalid_request_error"),
                Some("model_not_found"),
            ),
            ErrorKind::NotFound,
            404,
        ),
        (
            400,
            error_body(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 130511 tokens.",
                Some("invalid_request_error"),
                Some("context_length_exceeded"),
            ),
            ErrorKind::ContextLengthExceeded,
            400,
        ),
        (
            400,
            error_body(
                "Invalid value for 'temperature': expected a number between 0 and 2.",
                Some("invalid_request_error"),
                Some("invalid_value"),
            ),
            ErrorKind::InvalidRequest,
            400,
        ),
        (
            429,
            error_body(
                "You exceeded your current quota, please check your plan and billing details.",
                Some("insufficient_quota"),
                Some("insufficient_quota"),
            ),
            ErrorKind::QuotaExhausted,
            429,
        ),
        (
            500,
            error_body(
                "The server had an error while processing your request. Sorry about that!",
                Some("server_error"),
                None,
            ),
            ErrorKind::UpstreamServer,
            502,
        ),
        (
            503,
            error_body(
                "The engine is currently overloaded, please try again later",
                Some("server_error"),
                None,
            ),
            ErrorKind::UpstreamServer,
            503,
        ),
    ];
    for (status, body, kind, gateway_status) in cases {
        let message = body["error"]["message"].as_str().unwrap().to_owned();
        let err = failing(status, body, &[]).await;
        assert_eq!(err.kind(), kind, "{status}: {err}");
        assert_eq!(err.http_status().as_u16(), gateway_status, "{status}");
        let upstream = err.upstream().expect("an upstream error");
        assert_eq!(upstream.status.map(|s| s.as_u16()), Some(status));
        assert_eq!(upstream.message, message, "the upstream message is kept");
        assert_eq!(err.retry_after(), None);
    }
}

#[tokio::test]
async fn rate_limits_carry_retry_after_in_each_form() {
    let body = || {
        error_body(
            "Rate limit reached for gpt-4o on requests per min (RPM): Limit 3.",
            Some("requests"),
            Some("rate_limit_exceeded"),
        )
    };
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
    type Case<'a> = (&'a [(&'a str, String)], Duration, Duration);
    let cases: [Case<'_>; 5] = [
        (
            &[("retry-after", "7".into())],
            Duration::from_secs(7),
            Duration::from_secs(7),
        ),
        (
            &[("retry-after", date)],
            Duration::from_secs(27),
            Duration::from_secs(31),
        ),
        (
            &[
                ("retry-after-ms", "1500".into()),
                ("retry-after", "2".into()),
            ],
            Duration::from_millis(1500),
            Duration::from_millis(1500),
        ),
        (
            &[("x-ms-retry-after-ms", "2500".into())],
            Duration::from_millis(2500),
            Duration::from_millis(2500),
        ),
        (
            &[("retry-after", "0.25".into())],
            Duration::from_millis(250),
            Duration::from_millis(250),
        ),
    ];
    for (headers, low, high) in cases {
        let err = failing(429, body(), headers).await;
        assert_eq!(err.kind(), ErrorKind::RateLimited);
        let wait = err.retry_after().expect("a retry_after");
        assert!(wait >= low && wait <= high, "{headers:?}: {wait:?}");
        assert_eq!(err.code(), Some("rate_limit_exceeded"));
    }
    // With no header, OpenAI's message hint is used.
    let hinted = error_body(
        "Rate limit reached for gpt-4o. Please try again in 6.5s. Visit https://platform.openai.com/account/rate-limits",
        Some("tokens"),
        Some("rate_limit_exceeded"),
    );
    assert_eq!(
        failing(429, hinted, &[]).await.retry_after(),
        Some(Duration::from_millis(6500))
    );
    // Quota exhaustion never carries a wait, whatever the headers say.
    let quota = error_body(
        "You exceeded your current quota",
        Some("insufficient_quota"),
        Some("insufficient_quota"),
    );
    let err = failing(429, quota, &[("retry-after", "20".into())]).await;
    assert_eq!(
        (err.kind(), err.retry_after()),
        (ErrorKind::QuotaExhausted, None)
    );
}

#[tokio::test]
async fn a_timeout_before_headers_is_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let err = openai_with(&server.uri(), short_timeouts())
        .chat(&ChatRequest::from("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
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
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = openai(&format!("http://127.0.0.1:{port}"))
        .chat(&ChatRequest::from("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert_eq!(err.to_string(), "could not connect to openai");
}

#[tokio::test]
async fn the_key_appears_in_no_error_debug_or_display() {
    let server = MockServer::start().await;
    let body = error_body(
        &format!("Incorrect API key provided: {KEY}."),
        Some("invalid_request_error"),
        Some("invalid_api_key"),
    );
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(body))
        .mount(&server)
        .await;
    let provider = openai(&server.uri());
    let err = provider.chat(&ChatRequest::from("hi")).await.unwrap_err();
    let texts = [
        format!("{provider:?}"),
        format!("{err}"),
        format!("{err:?}"),
        format!("{:?}", llm_openai::OpenAiConfig::new(KEY)),
    ];
    for text in texts {
        assert!(
            !text.contains(KEY) && !text.contains("PLANTED-SECRET"),
            "leaked: {text}"
        );
    }
    assert!(err.to_string().contains("sk-…cdef"), "{err}");
    // The key travels only in the header: never in the URL.
    for request in server.received_requests().await.unwrap() {
        assert!(!request.url.as_str().contains(KEY));
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {KEY}").as_str()
        );
    }
}
