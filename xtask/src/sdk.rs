//! `cargo xtask sdk`: the official OpenAI Python SDK against the running `llm-server
//! --demo`. Installs the pinned SDK into `target/sdk-venv` (from PyPI) on first use.

use std::{
    net::{TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{cargo, project_root, run};

/// The SDK version whose wire behaviour `shared/wire-formats.md` records.
const OPENAI_PYTHON: &str = "openai==3.57.0";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn main() -> Result<(), String> {
    let root = project_root();
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
            "import openai, sys; sys.exit(0 if openai.__version__ == '3.57.0' else 1)",
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
        ]);
        run(pip)?;
    }

    let mut build = cargo();
    build.args([
        "build",
        "--quiet",
        "-p",
        "llm-server",
        "--bin",
        "llm-server",
    ]);
    run(build)?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let binary = root.join("target/debug/llm-server");
    println!("$ {} --demo --port {port}", binary.display());
    let server = Server(
        Command::new(&binary)
            .args(["--demo", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start llm-server: {e}"))?,
    );
    wait_for(port)?;
    let script = root.join("crates/llm-server/tests/sdk/openai_python.py");
    let mut check = Command::new(&python);
    check.arg(script).arg(format!("http://127.0.0.1:{port}/v1"));
    let result = run(check);
    drop(server);
    result
}

fn wait_for(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "llm-server did not listen on port {port} within 30 s"
    ))
}
