//! Claude on Bedrock with the standard AWS credential chain, in a gateway process of its
//! own (the chain reads the process environment): a Bedrock API key from
//! `AWS_BEARER_TOKEN_BEDROCK`, and SigV4 from `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`. Instance metadata is disabled and `HOME`
//! is empty, so nothing outside the test is consulted.

use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::{
    logs::PLANTED,
    support::{client, free_port, wait_for_port},
};

const ENV_BEARER: &str = "ABSK-env-PLANTED-bearer-0123456789";
const ENV_SECRET: &str = "env/PLANTED/secret/access/key/0123456789";
const ENV_TOKEN: &str = "env-PLANTED-session-token-0123456789";

struct Process {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A gateway serving one Claude entry without keys (the chain decides) against `base`,
/// with `vars` as its whole environment.
async fn gateway(name: &str, base: &str, vars: &[(&str, &str)]) -> Process {
    let dir = std::env::temp_dir().join(format!("llm-aws-chain-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "providers:\n  - provider: claude\n    model_name: claude-chain\n    deployment: 'us.anthropic.claude-haiku-4-5-20251001-v1:0'\n    region: us-east-2\n    api_base: '{base}'\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_llm-server"));
    command
        .env_clear()
        .env("HOME", &dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .arg("--config")
        .arg(&config)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    let child = command.spawn().unwrap();
    wait_for_port(port).await;
    Process { child, port, dir }
}

async fn ask(process: &Process) -> Value {
    client()
        .post(format!(
            "http://127.0.0.1:{}/v1/chat/completions",
            process.port
        ))
        .json(&json!({"model": "claude-chain", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Stop the process and return everything it printed.
fn output(mut process: Process) -> String {
    let _ = process.child.kill();
    let child = std::mem::replace(&mut process.child, Command::new("true").spawn().unwrap());
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn upstream() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(
            "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "chain ok"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}
        })))
        .mount(&server)
        .await;
    server
}

fn authorization(server_requests: &[wiremock::Request]) -> String {
    server_requests[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_chain_takes_a_bedrock_api_key_from_aws_bearer_token_bedrock() {
    let upstream = upstream().await;
    let process = gateway(
        "bearer",
        &upstream.uri(),
        &[("AWS_BEARER_TOKEN_BEDROCK", ENV_BEARER)],
    )
    .await;
    let answer = ask(&process).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"], "chain ok",
        "{answer}"
    );
    let requests = upstream.received_requests().await.unwrap();
    assert_eq!(authorization(&requests), format!("Bearer {ENV_BEARER}"));
    let printed = output(process);
    assert!(!printed.contains(PLANTED), "{printed}");
}

#[tokio::test]
async fn the_chain_signs_with_keys_from_the_environment() {
    let upstream = upstream().await;
    let process = gateway(
        "sigv4",
        &upstream.uri(),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE000001"),
            ("AWS_SECRET_ACCESS_KEY", ENV_SECRET),
            ("AWS_SESSION_TOKEN", ENV_TOKEN),
        ],
    )
    .await;
    let answer = ask(&process).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"], "chain ok",
        "{answer}"
    );
    let requests = upstream.received_requests().await.unwrap();
    let signed = authorization(&requests);
    assert!(
        signed.starts_with("AWS4-HMAC-SHA256 Credential=AKIAENVEXAMPLE000001/")
            && signed.contains("/us-east-2/bedrock/aws4_request"),
        "{signed}"
    );
    assert_eq!(
        requests[0].headers.get("x-amz-security-token").unwrap(),
        ENV_TOKEN
    );
    let status: Value = client()
        .get(format!(
            "http://127.0.0.1:{}/v1/providers/status",
            process.port
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!status.to_string().contains(PLANTED), "{status}");
    let printed = output(process);
    assert!(!printed.contains(PLANTED), "{printed}");
}
