//! Project automation, in Rust rather than shell (matklad's xtask convention).
//!
//! ```text
//! cargo xtask ci [--quick]   the CI gate: fmt, clippy, features, tests, docs, cargo-deny
//! cargo xtask bench          benchmarks (BENCHMARKS.md)
//! cargo xtask soak           the soak run (docs/reliability.md)
//! cargo xtask docs           the scenario table of docs/reliability.md
//! ```
//!
//! The tidy checks (READMEs, crate docs, conformance wiring, no `println!`/`todo!` in
//! libraries, workspace dependencies) are `#[test]`s in this crate, so the test command
//! runs them.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::disallowed_methods,
    reason = "a command-line tool prints its progress and reads its environment"
)]

mod bench;
mod ci;
mod reliability;
mod sdk;
mod soak;
#[cfg(test)]
mod tidy;

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::main(&args[1..]),
        Some("sdk") => sdk::main(),
        Some("bench") => bench::main(&args[1..]),
        Some("soak") => soak::main(&args[1..]),
        Some("docs") => reliability::main(),
        Some("help" | "--help" | "-h") | None => {
            print_help();
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <task>\n\n\
         tasks:\n  \
         ci [--quick]   fmt, clippy, feature isolation, tests, examples, SDK check, benchmark\n                 \
         smoke, docs, fuzz (with nightly), cargo-deny (--quick skips feature isolation,\n                 \
         the SDK check, the benchmark smoke, fuzz and cargo-deny)\n  \
         sdk            the OpenAI Python SDK against `llm-server --demo`\n  \
         bench [--quick] gateway overhead, throughput, memory and streaming (writes BENCHMARKS.md)\n  \
         soak [--minutes N] [--concurrency C] [--percent P]\n                 \
         N minutes of mixed load with faults; RSS, fds and tokio tasks must stay flat\n                 \
         (writes the soak section of docs/reliability.md; not in CI)\n  \
         docs           rewrite the scenario table of docs/reliability.md from the fault suite"
    );
}

/// The workspace root.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The cargo that runs us, so the same toolchain builds everything.
fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(project_root());
    if env::var_os("CI").is_some() {
        // Incremental artifacts only cost time and disk on a one-shot build.
        command.env("CARGO_INCREMENTAL", "0");
    }
    command
}

/// Print and run `command`; fail with its description when it fails.
fn run(mut command: Command) -> Result<(), String> {
    let shown = describe(&command);
    println!("$ {shown}");
    let status = command
        .status()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

fn describe(command: &Command) -> String {
    let envs: Vec<String> = command
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v?.to_str()?)))
        .collect();
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let program = Path::new(command.get_program())
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    [envs, vec![program], args].concat().join(" ")
}

/// The first of `paths` that exists; when none does and we are root, the first of
/// `packages` that `apt-get` installs (after an `apt-get update` if none installs at first).
fn system_binary(paths: &[&str], packages: &[&str]) -> Option<PathBuf> {
    let find = || paths.iter().map(PathBuf::from).find(|p| p.exists());
    if let Some(found) = find() {
        return Some(found);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return None;
    }
    let install = |package: &&str| {
        println!("$ apt-get install -y {package}");
        Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !packages.iter().any(install) {
        let _ = Command::new("apt-get").args(["update", "-q"]).status();
        let _ = packages.iter().any(install);
    }
    find()
}
