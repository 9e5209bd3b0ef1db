//! Bad input to the HTTP API: each gets the right 4xx with an OpenAI error body, loses
//! nothing, and the server stays healthy. (The table of hand-picked cases is in `api.rs`;
//! this file adds the large-body cases over a real socket and a property test of the whole
//! request parser, run in-process against the same router.)

use axum::body::Body;
use http_body_util::BodyExt;
use llm_server::GatewayOptions;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{
    logs::assert_no_secret_logged,
    support::{Gateway, assert_openai_error, chat_body, client, mock_factory},
};

#[tokio::test]
async fn bodies_over_ten_megabytes_get_413_and_the_server_stays_healthy() {
    // The default limit (8 MiB): a real 10 MB+ request, JSON-shaped, streamed by the client.
    let gateway = Gateway::start(mock_factory(), GatewayOptions::default()).await;
    let big = "x".repeat(10 * 1024 * 1024 + 1);
    let body = serde_json::to_vec(&chat_body("mock-echo", &big, false)).unwrap();
    assert!(body.len() > 10 * 1024 * 1024);
    for chunked in [false, true] {
        let request = client()
            .post(gateway.url("/v1/chat/completions"))
            .header("content-type", "application/json");
        let request = if chunked {
            // No content-length: the limit must hold while reading a chunked body.
            let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
                body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
            request.body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                pieces,
            )))
        } else {
            request.body(body.clone())
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 413, "chunked: {chunked}");
        let error: Value = response.json().await.unwrap();
        assert_openai_error("oversized", &error);
    }
    // Still healthy, and a normal request right after is answered.
    let answer = gateway
        .post_chat(&chat_body("mock-echo", "after the flood", false))
        .await;
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "after the flood"
    );
    assert_no_secret_logged();
}

#[tokio::test]
async fn a_declared_length_of_a_gigabyte_is_refused_before_reading() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gateway = Gateway::start(mock_factory(), GatewayOptions::default()).await;
    let mut socket = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    socket
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000000\r\n\r\n{\"model\":")
        .await
        .unwrap();
    // The answer comes without the gigabyte being sent.
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") || !answer.ends_with(b"}") {
        // Well before the 10 s a drain could take.
        let n = tokio::time::timeout(std::time::Duration::from_secs(3), socket.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("request_too_large"), "{text}");
    gateway.assert_live().await;
}

#[tokio::test]
async fn more_malformed_requests_get_openai_errors() {
    let gateway = Gateway::start(mock_factory(), GatewayOptions::default()).await;
    // (A JSON body under another content type is accepted on purpose: `curl -d` sends
    // `application/x-www-form-urlencoded`.)
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>, &str, u16)> = vec![
        ("empty body", Vec::new(), "application/json", 400),
        (
            "messages not an array",
            br#"{"model":"mock-echo","messages":"hello"}"#.to_vec(),
            "application/json",
            400,
        ),
        (
            "content of the wrong type",
            br#"{"model":"mock-echo","messages":[{"role":"user","content":42}]}"#.to_vec(),
            "application/json",
            400,
        ),
        (
            "stream not a boolean",
            br#"{"model":"mock-echo","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#
                .to_vec(),
            "application/json",
            400,
        ),
        (
            "n of zero",
            br#"{"model":"mock-echo","messages":[{"role":"user","content":"x"}],"n":0}"#.to_vec(),
            "application/json",
            400,
        ),
        (
            "model of the wrong type",
            br#"{"model":7,"messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            "application/json",
            400,
        ),
        (
            "NUL in the model name",
            b"{\"model\":\"mock\\u0000echo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"
                .to_vec(),
            "application/json",
            400,
        ),
        (
            "a model name of 10,000 characters",
            format!(
                r#"{{"model":"{}","messages":[{{"role":"user","content":"x"}}]}}"#,
                "m".repeat(10_000)
            )
            .into_bytes(),
            "application/json",
            400,
        ),
        (
            "nesting 10,000 deep",
            deep.into_bytes(),
            "application/json",
            400,
        ),
        (
            "trailing garbage",
            br#"{"model":"mock-echo","messages":[{"role":"user","content":"x"}]} extra"#.to_vec(),
            "application/json",
            400,
        ),
    ];
    for (what, body, content_type, status) in cases {
        let response = client()
            .post(gateway.url("/v1/chat/completions"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{what}");
        let body: Value = response.json().await.unwrap();
        assert_openai_error(what, &body);
    }
    gateway.assert_live().await;
    assert_no_secret_logged();
}

/// Arbitrary JSON values, biased towards the shape of a chat request.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("user"),
            Just("system"),
            Just("assistant"),
            Just("tool"),
            Just("mock-echo"),
            Just("text"),
            Just("image_url")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("model".to_owned()),
                    Just("messages".to_owned()),
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("stream".to_owned()),
                    Just("n".to_owned()),
                    Just("max_tokens".to_owned()),
                    Just("tools".to_owned()),
                    Just("stream_options".to_owned()),
                    Just("load_balance_strategy".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A request body: arbitrary bytes, arbitrary JSON, or a valid request with one field
/// replaced by an arbitrary value.
fn request_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        (
            prop_oneof![
                Just("model"),
                Just("messages"),
                Just("stream"),
                Just("n"),
                Just("max_tokens"),
                Just("temperature"),
                Just("tools"),
                Just("stream_options"),
                Just("load_balance_strategy")
            ],
            json_value()
        )
            .prop_map(|(field, value)| {
                let mut body = chat_body("mock-echo", "hi", false);
                body[field] = value;
                serde_json::to_vec(&body).unwrap()
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the body, the gateway answers 200 (a valid request) or a 4xx with an OpenAI
    /// error body — never a 5xx, never a panic — and stays able to answer.
    #[test]
    fn any_body_gets_an_answer_or_a_4xx_openai_error(body in request_body()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let app = llm_server::router(mock_factory());
            let request = http::Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let streaming = response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            if status == 200 {
                if !streaming {
                    let body: Value = serde_json::from_slice(&bytes).unwrap();
                    prop_assert!(body["choices"].is_array(), "{body}");
                }
            } else {
                prop_assert!((400..500).contains(&status), "{status}: {bytes:?}");
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                assert_openai_error("a property case", &body);
            }
            Ok(())
        })?;
    }
}
