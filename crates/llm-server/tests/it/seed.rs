//! The original LLM Factory's example configuration (its YAML with an Azure `openai` entry
//! and a `qwen` entry, and its `.env` with `QWEN_*` variables) loads, passes
//! `llm-server check` with each deployment's endpoint shown, and serves both providers.

use std::{path::PathBuf, process::Command};

use futures_util::StreamExt;
use llm_factory::LlmFactory;
use llm_server::GatewayOptions;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path, query_param},
};

use crate::support::{Gateway, client};

const AZURE_KEY: &str = "azure-PLANTED-0123456789abcdef";
const QWEN_KEY: &str = "sk-qwen-PLANTED-0123456789";

/// The seed's YAML as printed, with the Qwen base pointed at the local mock.
fn seed_yaml(qwen_base: &str) -> String {
    format!(
        r#"providers:
  - provider: "openai"
    model_name: "gpt-4o"
    api_key: "${{OPENAI_API_KEY}}"  # 支持从环境变量读取
    api_base: "${{OPENAI_API_BASE}}"
    api_version: "2024-02-01"
    max_tokens: 4096
    temperature: 0.7

  - provider: "qwen"
    model_name: "qwen-turbo"
    api_key: "${{QWEN_API_KEY}}"
    api_base: "{qwen_base}"
    max_tokens: 2000
"#
    )
}

/// A file in a directory of its own, removed on drop.
struct Temp(PathBuf);

impl Temp {
    fn new(test: &str, name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("llm-server-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        Self(file)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn upstreams() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt-4o/chat/completions"))
        .and(query_param("api-version", "2024-02-01"))
        .and(header("api-key", AZURE_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            llm_core::testing::openai_format::completion("Azure answers.", (9, 3)),
        ))
        .mount(&server)
        .await;
    let native = |text: &str, finish: &str| {
        json!({"output": {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}]},
            "usage": {"input_tokens": 9, "output_tokens": 2, "total_tokens": 11}, "request_id": "seed-1"})
    };
    Mock::given(method("POST"))
        .and(path("/api/v1/services/aigc/text-generation/generation"))
        .and(header("authorization", format!("Bearer {QWEN_KEY}").as_str()))
        .and(header("x-dashscope-sse", "enable"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(
                "id:1\nevent:result\n:HTTP_STATUS/200\ndata:{}\n\nid:2\nevent:result\n:HTTP_STATUS/200\ndata:{}\n\n",
                native("通义", "null"),
                native("千问", "stop")
            ),
            "text/event-stream",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/services/aigc/text-generation/generation"))
        .and(header(
            "authorization",
            format!("Bearer {QWEN_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(native("通义千问", "stop")))
        .mount(&server)
        .await;
    server
}

fn check(args: &[&str], vars: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llm-server"));
    command.env_clear().args(args);
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "check failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !stdout.contains("PLANTED"),
        "a key in check output: {stdout}"
    );
    stdout
}

#[tokio::test]
async fn the_seed_yaml_checks_and_serves_azure_and_qwen() {
    let upstream = upstreams().await;
    let qwen_base = format!("{}/api/v1", upstream.uri());
    let file = Temp::new("seed-yaml", "config.yaml", &seed_yaml(&qwen_base));
    let uri = upstream.uri();
    let vars = [
        ("OPENAI_API_KEY", AZURE_KEY),
        ("OPENAI_API_BASE", uri.as_str()),
        ("QWEN_API_KEY", QWEN_KEY),
    ];
    let listing = check(&["--config", file.path().to_str().unwrap(), "check"], &vars);
    assert!(
        listing.contains("configuration ok: 2 deployment(s)"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!(
            "endpoint {} (deployment gpt-4o, api-version 2024-02-01)",
            upstream.uri()
        )),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("endpoint {qwen_base} (native API)")),
        "{listing}"
    );

    let factory = LlmFactory::builder()
        .vars(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
        .yaml_file(file.path())
        .build()
        .unwrap();
    let gateway = Gateway::start(factory, GatewayOptions::default()).await;
    for (model, text) in [("gpt-4o", "Azure answers."), ("qwen-turbo", "通义千问")] {
        let answer: Value = gateway
            .post_chat(&json!({"model": model, "messages": [{"role": "user", "content": "你好"}]}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], text, "{answer}");
    }
    let response = gateway
        .post_chat(&json!({"model": "qwen-turbo", "stream": true, "messages": [{"role": "user", "content": "你好"}]}))
        .await;
    let body: Vec<_> = response.bytes_stream().collect().await;
    let body: String = body
        .into_iter()
        .map(|b| String::from_utf8_lossy(&b.unwrap()).into_owned())
        .collect();
    assert!(body.contains("通义") && body.contains("千问"), "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");

    // The seed's defaults reached the upstream: max_tokens 2000 for Qwen.
    let qwen_body: Value = upstream
        .received_requests()
        .await
        .unwrap()
        .iter()
        .find(|r| r.url.path().contains("text-generation"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .unwrap();
    assert_eq!(qwen_body["parameters"]["max_tokens"], 2000);

    let status: Value = client()
        .get(gateway.url("/v1/providers/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoints: Vec<&str> = status["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(endpoints.len(), 2);
    assert!(
        endpoints.contains(&format!("{qwen_base} (native API)").as_str()),
        "{status}"
    );
}

#[test]
fn the_seed_dotenv_checks_with_each_azure_account_named() {
    let env = Temp::new(
        "seed-env",
        ".env",
        "# Azure OpenAI 配置\n\
         OPENAI_API_KEYS=\"azure-PLANTED-key-1111,azure-PLANTED-key-2222\"\n\
         OPENAI_API_BASES=\"https://account1.openai.azure.com,https://account2.openai.azure.com\"\n\
         OPENAI_MODEL=\"gpt-4o\"\n\
         OPENAI_API_VERSION=\"2024-02-15-preview\"\n\n\
         # 可选：其他提供商配置\n\
         QWEN_API_KEYS=\"sk-PLANTED-qwen-aaaa,sk-PLANTED-qwen-bbbb\"\n\
         QWEN_MODEL=\"qwen-turbo\"\n\
         QWEN_API_BASE=\"https://dashscope-intl.aliyuncs.com/compatible-mode/v1\"\n",
    );
    let listing = check(&["--env-file", env.path().to_str().unwrap(), "check"], &[]);
    assert!(
        listing.contains("configuration ok: 4 deployment(s)"),
        "{listing}"
    );
    for account in ["account1", "account2"] {
        assert!(
            listing.contains(&format!(
                "endpoint https://{account}.openai.azure.com (deployment gpt-4o, api-version 2024-02-15-preview)"
            )),
            "{listing}"
        );
    }
    assert_eq!(
        listing
            .matches(
                "endpoint https://dashscope-intl.aliyuncs.com/compatible-mode/v1 (compatible mode)"
            )
            .count(),
        2,
        "{listing}"
    );
}
