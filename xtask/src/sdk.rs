//! `cargo xtask sdk`: the official OpenAI Python SDK against the running gateway, twice:
//! `llm-server --demo` (the mock provider), and `llm-server --config` serving Qwen (native
//! API and compatible mode), DeepSeek, Gemini (AI Studio and Vertex AI, with a
//! service-account key made for the run) and Claude on Bedrock (SigV4 with static keys, and
//! a Bedrock API key) deployments whose upstream is `provider-mock`,
//! which speaks each provider's own wire format. Installs the pinned SDK into
//! `target/sdk-venv` (from PyPI) on first use.

use std::{fs, path::Path, process::Command};

use crate::{
    bench::{free_port, spawn},
    cargo, project_root, run,
};

/// The SDK version whose wire behaviour `shared/wire-formats.md` records.
const OPENAI_PYTHON: &str = "openai==3.57.0";

/// The Anthropic SDK version `shared/wire-formats.md` records.
const ANTHROPIC_PYTHON: &str = "anthropic==2.14.0";

/// The key `provider-mock` expects; a planted fake, never a real one.
const MOCK_KEY: &str = "sk-mock-sdk-PLANTED-0123456789";

/// The gateway key of the provider run (both SDKs send it).
const GATEWAY_KEY: &str = "sk-gateway-sdk-PLANTED-0123456789";

/// The models the Anthropic SDK runs against: OpenAI-shaped providers (DeepSeek, which
/// reasons; Qwen's compatible mode, which does not) and two others.
const ANTHROPIC_MODELS: [&str; 4] = [
    "deepseek-flash",
    "qwen-compat",
    "gemini-studio",
    "claude-sigv4",
];

/// The models the provider run serves, each on its own provider and wire format.
const PROVIDER_MODELS: [&str; 7] = [
    "qwen-plus",
    "qwen-compat",
    "deepseek-flash",
    "gemini-studio",
    "gemini-vertex",
    "claude-sigv4",
    "claude-apikey",
];

pub(crate) fn main() -> Result<(), String> {
    let root = project_root();
    let python = venv(&root)?;
    let mut build = cargo();
    build.args([
        "build",
        "--quiet",
        "-p",
        "llm-server",
        "--bin",
        "llm-server",
        "-p",
        "bench",
        "--bin",
        "provider-mock",
    ]);
    run(build)?;
    let gateway = root.join("target/debug/llm-server");
    let scripts = root.join("crates/llm-server/tests/sdk");

    // The demo.
    let port = free_port()?;
    println!("$ {} --demo --port {port}", gateway.display());
    let demo = spawn(
        &gateway,
        &["--demo".into(), "--port".into(), port.to_string()],
        0,
        &[],
        &[port],
    )?;
    let mut check = Command::new(&python);
    check
        .arg(scripts.join("openai_python.py"))
        .arg(format!("http://127.0.0.1:{port}/v1"));
    run(check)?;
    drop(demo);

    // Qwen (native and compatible mode) and DeepSeek, each against its own wire format.
    let upstream_port = free_port()?;
    let upstream = spawn(
        &root.join("target/debug/provider-mock"),
        &[
            "--port".into(),
            upstream_port.to_string(),
            "--key".into(),
            MOCK_KEY.into(),
        ],
        1,
        &[],
        &[upstream_port],
    )?;
    // A Vertex AI deployment's service-account key, with a key made now.
    let service_account = root.join("target/sdk-service-account.json");
    let mut write_key = Command::new(root.join("target/debug/provider-mock"));
    write_key
        .arg("--write-service-account")
        .arg(&service_account);
    run(write_key)?;
    let config = root.join("target/sdk-providers.yaml");
    fs::write(&config, providers_config(upstream_port, &service_account))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let mut validate = Command::new(&gateway);
    validate.arg("--config").arg(&config).arg("check");
    let checked = validate
        .output()
        .map_err(|e| format!("cannot run llm-server check: {e}"))?;
    let listing = String::from_utf8_lossy(&checked.stdout);
    print!("{listing}");
    let base = format!("http://127.0.0.1:{upstream_port}");
    if !checked.status.success()
        || !listing.contains(&format!("{base}/api/v1 (native API)"))
        || !listing.contains(&format!("{base}/compatible-mode/v1 (compatible mode)"))
        || !listing.contains(&format!("{base} (AI Studio, v1beta)"))
        || !listing.contains("(Vertex AI, project mock-project, location us-central1)")
        || listing.contains("PLANTED")
    {
        return Err(format!(
            "llm-server check did not list every endpoint (or showed a key):\n{listing}{}",
            String::from_utf8_lossy(&checked.stderr)
        ));
    }
    let port = free_port()?;
    println!(
        "$ {} --config {} --port {port}",
        gateway.display(),
        config.display()
    );
    let server = spawn(
        &gateway,
        &[
            "--config".into(),
            config.display().to_string(),
            "--port".into(),
            port.to_string(),
        ],
        0,
        &[],
        &[port],
    )?;
    let mut check = Command::new(&python);
    check
        .arg(scripts.join("providers_python.py"))
        .arg(format!("http://127.0.0.1:{port}/v1"))
        .arg(GATEWAY_KEY)
        .args(PROVIDER_MODELS);
    let mut result = run(check);
    if result.is_ok() {
        // The Anthropic door, with the official Anthropic SDK: OpenAI-shaped providers
        // (DeepSeek, Qwen compatible mode) and two others (Gemini, Claude on Bedrock).
        let mut check = Command::new(&python);
        check
            .arg(scripts.join("anthropic_python.py"))
            .arg(format!("http://127.0.0.1:{port}"))
            .arg(GATEWAY_KEY)
            .arg("deepseek-limited")
            .args(ANTHROPIC_MODELS);
        result = run(check);
    }
    drop(server);
    drop(upstream);
    result
}

/// The gateway configuration of the provider run.
fn providers_config(upstream_port: u16, service_account: &Path) -> String {
    let base = format!("http://127.0.0.1:{upstream_port}");
    let key_file = service_account.display();
    format!(
        "server:\n\
         \x20 api_keys: [{GATEWAY_KEY}]\n\
         providers:\n\
         \x20 - provider: qwen\n\
         \x20   model_name: qwen-plus\n\
         \x20   api_key: {MOCK_KEY}\n\
         \x20   api_base: {base}/api/v1\n\
         \x20 - provider: qwen\n\
         \x20   model_name: qwen-compat\n\
         \x20   deployment: qwen-plus\n\
         \x20   api_key: {MOCK_KEY}\n\
         \x20   api_base: {base}/compatible-mode/v1\n\
         \x20 - provider: deepseek\n\
         \x20   model_name: deepseek-flash\n\
         \x20   api_key: {MOCK_KEY}\n\
         \x20   api_base: {base}\n\
         \x20 - provider: deepseek\n\
         \x20   model_name: deepseek-limited\n\
         \x20   deployment: deepseek-flash\n\
         \x20   api_key: {MOCK_KEY}\n\
         \x20   api_base: {base}\n\
         \x20 - provider: gemini\n\
         \x20   model_name: gemini-studio\n\
         \x20   deployment: gemini-2.5-flash\n\
         \x20   api_key: {MOCK_KEY}\n\
         \x20   api_base: {base}\n\
         \x20 - provider: gemini\n\
         \x20   model_name: gemini-vertex\n\
         \x20   deployment: gemini-3-pro-preview\n\
         \x20   project: mock-project\n\
         \x20   location: us-central1\n\
         \x20   credentials_file: {key_file}\n\
         \x20   api_base: {base}\n\
         \x20 - provider: claude\n\
         \x20   model_name: claude-sigv4\n\
         \x20   deployment: us.anthropic.claude-sonnet-4-5-20250929-v1:0\n\
         \x20   region: us-east-1\n\
         \x20   aws_access_key_id: AKIAIOSFODNN7EXAMPLE\n\
         \x20   aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n\
         \x20   api_base: {base}\n\
         \x20 - provider: claude\n\
         \x20   model_name: claude-apikey\n\
         \x20   deployment: global.anthropic.claude-sonnet-4-5-20250929-v1:0\n\
         \x20   region: us-west-2\n\
         \x20   api_key: {MOCK_KEY}\n\
         \x20   api_base: {base}\n"
    )
}

/// The virtual environment with the pinned SDK; its Python.
fn venv(root: &Path) -> Result<std::path::PathBuf, String> {
    let venv = root.join("target/sdk-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let mut create = Command::new("python3");
        create.args(["-m", "venv"]).arg(&venv);
        run(create)?;
    }
    let installed = Command::new(&python)
        .args([
            "-c",
            "import openai, anthropic, sys; sys.exit(0 if (openai.__version__, anthropic.__version__) == ('3.57.0', '2.14.0') else 1)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let mut pip = Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            OPENAI_PYTHON,
            ANTHROPIC_PYTHON,
        ]);
        run(pip)?;
    }
    Ok(python)
}
