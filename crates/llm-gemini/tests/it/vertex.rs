//! Vertex AI with real credentials: a service-account key made here (its own RSA key),
//! loaded through google-cloud-auth, which signs a JWT the mock upstream checks arrives as
//! the bearer token.

use aws_lc_rs::{
    encoding::AsDer,
    rsa::{KeyPair, KeySize},
};
use futures_util::StreamExt;
use llm_core::{ChatProvider, ChatRequest, ErrorKind};
use llm_gemini::{GeminiConfig, GeminiProvider, VertexCredentials};
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, Request, ResponseTemplate,
    matchers::{method, path},
};

use crate::{error, response, sse};

const PATH: &str =
    "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-flash";

fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[(n >> (18 - 6 * i)) as usize & 63]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn decode_url_safe(text: &str) -> Vec<u8> {
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let values: Vec<u32> = text
        .bytes()
        .filter(|b| *b != b'=')
        .map(|b| URL.iter().position(|c| *c == b).unwrap() as u32)
        .collect();
    let mut out = Vec::new();
    for chunk in values.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, v)| n | v << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// A service-account key file's JSON, with a fresh RSA key.
fn service_account() -> String {
    let key = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let der = key.as_der().unwrap();
    let body = base64(der.as_ref(), STANDARD, true);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    json!({
        "type": "service_account",
        "project_id": "my-proj",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": "gateway@my-proj.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "universe_domain": "googleapis.com"
    })
    .to_string()
}

/// The claims of the bearer JWT a request carried.
fn bearer_claims(request: &Request) -> Value {
    let auth = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let token = auth.strip_prefix("Bearer ").unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a signed JWT");
    let header: Value = serde_json::from_slice(&decode_url_safe(parts[0])).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "0123456789abcdef");
    serde_json::from_slice(&decode_url_safe(parts[1])).unwrap()
}

fn vertex(server: &MockServer, credentials: VertexCredentials) -> GeminiProvider {
    GeminiProvider::new(GeminiConfig {
        base_url: Some(server.uri()),
        model: Some("gemini-2.5-flash".into()),
        ..GeminiConfig::vertex("my-proj", "us-central1", credentials)
    })
    .unwrap()
}

#[tokio::test]
async fn a_service_account_key_signs_the_bearer_token_vertex_receives() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{PATH}:generateContent")))
        .respond_with(ResponseTemplate::new(200).set_body_json(response(
            json!([{"text": "Vertex says hi."}]),
            Some("STOP"),
            Some((5, 4)),
        )))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{PATH}:streamGenerateContent")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            sse(&[
                response(json!([{"text": "Vertex "}]), None, None),
                response(json!([{"text": "streams."}]), Some("STOP"), Some((5, 2))),
            ]),
            "text/event-stream",
        ))
        .mount(&server)
        .await;
    let key = service_account();
    let provider = vertex(
        &server,
        VertexCredentials::ServiceAccountJson(key.clone().into()),
    );
    assert!(!format!("{provider:?}").contains("PRIVATE KEY"));
    let answer = provider.chat(&ChatRequest::from("hi")).await.unwrap();
    assert_eq!(answer.text().as_deref(), Some("Vertex says hi."));
    let text: String = provider
        .stream(&ChatRequest::from("hi"))
        .await
        .unwrap()
        .filter_map(|c| async move { c.ok().and_then(|c| c.content().map(str::to_owned)) })
        .collect()
        .await;
    assert_eq!(text, "Vertex streams.");
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert!(request.headers.get("x-goog-api-key").is_none());
        let claims = bearer_claims(request);
        assert_eq!(claims["iss"], "gateway@my-proj.iam.gserviceaccount.com");
        assert_eq!(claims["sub"], "gateway@my-proj.iam.gserviceaccount.com");
        assert!(
            claims["scope"]
                .as_str()
                .is_some_and(|s| s.contains("cloud-platform"))
                || claims["aud"].is_string(),
            "{claims}"
        );
    }
    assert_eq!(received[1].url.query(), Some("alt=sse"));

    // Made outside any runtime (a blocking caller, a sync `main`): the credentials are
    // built on first use, inside the runtime.
    let outside = {
        let key = key.clone();
        let base = server.uri();
        std::thread::spawn(move || {
            GeminiProvider::new(GeminiConfig {
                base_url: Some(base),
                model: Some("gemini-2.5-flash".into()),
                ..GeminiConfig::vertex(
                    "my-proj",
                    "us-central1",
                    VertexCredentials::ServiceAccountJson(key.into()),
                )
            })
        })
        .join()
        .unwrap()
        .unwrap()
    };
    assert_eq!(
        outside
            .chat(&ChatRequest::from("hi"))
            .await
            .unwrap()
            .text()
            .as_deref(),
        Some("Vertex says hi.")
    );

    // The same key from a file (one file per deployment, so projects pool).
    let dir = std::env::temp_dir().join(format!("llm-gemini-sa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sa.json");
    std::fs::write(&file, &key).unwrap();
    let from_file = vertex(&server, VertexCredentials::ServiceAccountFile(file.clone()));
    assert!(from_file.chat(&ChatRequest::from("hi")).await.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn bad_credentials_are_clear_configuration_errors_and_vertex_errors_classify() {
    let err = GeminiProvider::new(GeminiConfig::vertex(
        "p",
        "us-central1",
        VertexCredentials::ServiceAccountJson("{not json -----BEGIN PRIVATE KEY".to_owned().into()),
    ))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Configuration);
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
    let missing = GeminiProvider::new(GeminiConfig::vertex(
        "p",
        "us-central1",
        VertexCredentials::ServiceAccountFile("/nonexistent/sa.json".into()),
    ))
    .unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/sa.json"),
        "{missing}"
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            json!([]),
        )))
        .mount(&server)
        .await;
    let provider = vertex(
        &server,
        VertexCredentials::ServiceAccountJson(service_account().into()),
    );
    let err = provider.chat(&ChatRequest::from("hi")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
}

#[tokio::test]
async fn vertex_carries_tool_calls_signatures_images_json_mode_and_errors_like_ai_studio() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("{PATH}:generateContent")))
        .respond_with(ResponseTemplate::new(200).set_body_json(response(
            json!([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "fc_9"}, "thoughtSignature": "c2lnbmVk"}]),
            Some("STOP"),
            Some((20, 5)),
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{PATH}:generateContent")))
        .respond_with(ResponseTemplate::new(200).set_body_json(response(
            json!([{"text": "21°C"}]),
            Some("STOP"),
            None,
        )))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{PATH}:streamGenerateContent")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            sse(&[json!({"promptFeedback": {"blockReason": "SAFETY"}})]),
            "text/event-stream",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{PATH}:generateContent")))
        .respond_with(ResponseTemplate::new(429).set_body_json(error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute_per_project_per_base_model.",
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "4s"}]),
        )))
        .mount(&server)
        .await;
    let provider = vertex(
        &server,
        VertexCredentials::ServiceAccountJson(service_account().into()),
    );
    let tools = vec![llm_core::Tool::function(
        "get_weather",
        "Weather",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false, "$schema": "x"}),
    )];
    let question = llm_core::Message::user_parts(vec![
        llm_core::ContentPart::text("Weather here?"),
        llm_core::ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
    ]);
    let first = provider
        .chat(&ChatRequest {
            tools: Some(tools.clone()),
            response_format: Some(llm_core::ResponseFormat::JsonObject),
            ..ChatRequest::new("m", vec![question.clone()])
        })
        .await
        .unwrap();
    assert_eq!(
        first.choices[0].finish_reason,
        Some(llm_core::FinishReason::ToolCalls)
    );
    let calls = first.choices[0].message.tool_calls.clone().unwrap();
    let mut assistant = llm_core::Message::assistant("");
    assistant.content = None;
    assistant.tool_calls = Some(calls.clone());
    let second = provider
        .chat(&ChatRequest {
            tools: Some(tools),
            ..ChatRequest::new(
                "m",
                vec![
                    question,
                    assistant,
                    llm_core::Message::tool(&calls[0].id, "21"),
                ],
            )
        })
        .await
        .unwrap();
    assert_eq!(second.text().as_deref(), Some("21°C"));
    let bodies: Vec<Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        bodies[0]["contents"][0]["parts"][1]["inlineData"]["mimeType"],
        "image/png"
    );
    assert_eq!(
        bodies[0]["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert!(
        bodies[0]["tools"][0]["functionDeclarations"][0]["parameters"]
            .get("additionalProperties")
            .is_none()
    );
    let model_turn = &bodies[1]["contents"][1]["parts"][0];
    assert_eq!(model_turn["functionCall"]["id"], "fc_9");
    assert_eq!(model_turn["thoughtSignature"], "c2lnbmVk");
    assert_eq!(
        bodies[1]["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"result": 21}, "id": "fc_9"})
    );
    let Err(blocked) = provider.stream(&ChatRequest::from("bad")).await else {
        panic!("a blocked prompt fails the stream call");
    };
    assert_eq!(blocked.kind(), ErrorKind::ContentFiltered);
    let limited = provider
        .chat(&ChatRequest::from("again"))
        .await
        .unwrap_err();
    assert_eq!(limited.kind(), ErrorKind::RateLimited);
    assert_eq!(
        limited.retry_after(),
        Some(std::time::Duration::from_secs(4))
    );
}
