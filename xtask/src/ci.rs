//! `cargo xtask ci`: the gate every change passes, in the order that fails fastest.

use std::{
    fs,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use crate::{cargo, project_root};

/// The test command of the README's quick start; CI runs exactly this.
pub(crate) const TEST_COMMAND: [&str; 3] = ["cargo", "test", "--workspace"];

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let quick = match args {
        [] => false,
        [flag] if flag == "--quick" => true,
        other => {
            return Err(format!(
                "unexpected arguments {other:?}; usage: cargo xtask ci [--quick]"
            ));
        }
    };

    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    crate::run(fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    crate::run(clippy)?;

    if !quick {
        feature_isolation()?;
    }

    // The scale-out tests run two gateways on a real redis-server; here it is required.
    redis_server()?;
    let mut test = cargo();
    test.args(&TEST_COMMAND[1..])
        .env("LLM_FACTORY_REQUIRE_REDIS", "1");
    let totals = run_tests(test)?;

    run_examples()?;
    if !quick {
        crate::sdk::main()?;
        // The benchmark smoke: a short run that fails on any gateway error.
        crate::bench::main(&["--quick".to_owned()])?;
    }

    let mut doc = cargo();
    doc.env("RUSTDOCFLAGS", "-D warnings").args([
        "doc",
        "--workspace",
        "--no-deps",
        "--all-features",
        "--locked",
    ]);
    crate::run(doc)?;

    if !quick {
        fuzz(20)?;
        deny()?;
    }
    println!("xtask ci: all checks passed");
    // The plain closing line: how many tests ran, over every test binary and doctest.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    Ok(())
}

/// The redis-server binary of the scale-out tests and benchmark, installed with apt-get
/// (Debian package `redis-server`) when missing and we are root.
pub(crate) fn redis_server() -> Result<std::path::PathBuf, String> {
    crate::system_binary(
        &[
            "/usr/bin/redis-server",
            "/usr/sbin/redis-server",
            "/usr/local/bin/redis-server",
        ],
        &["redis-server"],
    )
    .ok_or_else(|| {
        "redis-server is not installed and could not be (needs root and apt-get): apt-get install redis-server"
            .to_owned()
    })
}

/// Test counts summed over every `test result:` line of a cargo test run.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    /// Add the counts of one `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            if let (Some(count), Some(label)) = (words.next(), words.next())
                && let Ok(count) = count.parse::<u64>()
            {
                match label {
                    "passed" => self.passed += count,
                    "failed" => self.failed += count,
                    "ignored" => self.ignored += count,
                    _ => {}
                }
            }
        }
    }
}

/// Run the test command, echoing its output as it comes, and count the tests.
fn run_tests(mut command: Command) -> Result<Totals, String> {
    let shown = crate::describe(&command);
    println!("$ {shown}");
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| format!("reading `{shown}` output: {e}"))?;
            println!("{line}");
            totals.add_line(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for `{shown}`: {e}"))?;
    if !status.success() {
        return Err(format!("`{shown}` failed ({status})"));
    }
    if totals.passed == 0 {
        return Err(format!("`{shown}` ran no test"));
    }
    Ok(totals)
}

/// Run every example offline (no provider variables), as a user would.
fn run_examples() -> Result<(), String> {
    let dir = project_root().join("examples/examples");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            if path.extension()? != "rs" {
                return None;
            }
            Some(path.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    for name in names {
        let mut example = cargo();
        example.args(["run", "--quiet", "-p", "examples", "--example", &name]);
        // Offline: no `{PROVIDER}_MODEL` of any provider, built-in or registered.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().ends_with("_MODEL") {
                example.env_remove(name);
            }
        }
        crate::run(example)?;
    }
    Ok(())
}

/// Provider features of `llm-factory`, read from its manifest.
fn factory_provider_features() -> Result<Vec<String>, String> {
    let path = project_root().join("crates/llm-factory/Cargo.toml");
    let manifest = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(provider_features(&manifest))
}

/// The `[features]` of a manifest other than `default` and `blocking`.
fn provider_features(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    let mut features = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if in_features && let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !matches!(name, "default" | "blocking") && !name.starts_with('#') {
                features.push(name.to_owned());
            }
        }
    }
    features
}

/// Each provider feature builds alone, and pulls in no other provider's SDK.
fn feature_isolation() -> Result<(), String> {
    // No provider at all must build too (a user with only custom providers), warning-free:
    // code only a provider feature uses must be gated with it.
    let mut bare = cargo();
    bare.args([
        "clippy",
        "-p",
        "llm-factory",
        "--no-default-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    crate::run(bare)?;
    for feature in &factory_provider_features()? {
        let mut check = cargo();
        check.args([
            "clippy",
            "-p",
            "llm-factory",
            "--no-default-features",
            "--features",
            feature,
            "--locked",
            "--",
            "-D",
            "warnings",
        ]);
        crate::run(check)?;

        let output = cargo()
            .args([
                "tree",
                "-p",
                "llm-factory",
                "--no-default-features",
                "--features",
                feature,
                "-e",
                "normal,build",
                "--prefix",
                "none",
                "--locked",
            ])
            .output()
            .map_err(|e| format!("cannot run cargo tree: {e}"))?;
        if !output.status.success() {
            return Err(format!("cargo tree failed for feature `{feature}`"));
        }
        let tree = String::from_utf8_lossy(&output.stdout);
        // The AWS SDK's crates (not `aws-lc-rs`, rustls' crypto, which every TLS stack here uses).
        const AWS: &[&str] = &[
            "aws-sdk-",
            "aws-config",
            "aws-smithy-",
            "aws-sigv4",
            "aws-runtime",
            "aws-types",
            "aws-credential-types",
        ];
        const GOOGLE: &[&str] = &["google-cloud-"];
        let forbidden: Vec<&str> = match feature.as_str() {
            "claude-bedrock" => GOOGLE.to_vec(),
            "gemini" => AWS.to_vec(),
            _ => [AWS, GOOGLE].concat(),
        };
        for prefix in &forbidden {
            if let Some(line) = tree.lines().find(|line| line.starts_with(prefix)) {
                return Err(format!(
                    "feature `{feature}` pulls in `{line}`: another provider's SDK leaked into it"
                ));
            }
        }
    }
    Ok(())
}

/// `cargo deny check bans licenses sources`, installing cargo-deny when it is missing.
/// The cargo-fuzz targets (`fuzz/`: request parser, SSE decoder, config loader), each for
/// `seconds`, when a nightly toolchain is present — cargo-fuzz needs one, and it cannot be
/// fetched here; cargo-fuzz itself is installed when missing. Without nightly the step says
/// so and passes: the property tests of the test run cover the same three parsers.
fn fuzz(seconds: u32) -> Result<(), String> {
    // The rustup proxy, not the toolchain's cargo that runs us: `+nightly` must work.
    let rustup_cargo = || {
        let mut command = Command::new("cargo");
        command
            .current_dir(project_root())
            .env_remove("CARGO")
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTFLAGS");
        command
    };
    let nightly = rustup_cargo()
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !nightly {
        println!(
            "fuzz: skipped, no nightly toolchain on this machine (the property tests cover the same parsers)"
        );
        return Ok(());
    }
    let installed = rustup_cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !installed {
        let mut install = cargo();
        install.args(["install", "--locked", "cargo-fuzz"]);
        crate::run(install)?;
    }
    for target in ["request", "sse", "config"] {
        let mut run = rustup_cargo();
        run.args([
            "+nightly",
            "fuzz",
            "run",
            "-O",
            target,
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=4096",
        ]);
        crate::run(run)?;
    }
    Ok(())
}

fn deny() -> Result<(), String> {
    let installed = cargo()
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !installed {
        let mut install = cargo();
        install.args(["install", "--locked", "cargo-deny"]);
        crate::run(install)?;
    }
    let mut check = cargo();
    check.args([
        "deny",
        "--all-features",
        "check",
        "bans",
        "licenses",
        "sources",
    ]);
    crate::run(check)?;

    // The advisory database cannot be fetched here: check it only when a local copy exists,
    // and report without failing.
    let advisory_db = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cargo")))
        .map(|home| home.join("advisory-dbs"));
    if advisory_db.is_some_and(|path| path.exists()) {
        let mut advisories = cargo();
        advisories.args(["deny", "check", "--disable-fetch", "advisories"]);
        if let Err(message) = crate::run(advisories) {
            println!("advisories (reported, not failing): {message}");
        }
    } else {
        println!("advisories: skipped, no local advisory database");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_quick_start_has_the_ci_test_command() {
        let readme = fs::read_to_string(project_root().join("README.md")).unwrap();
        let command = TEST_COMMAND.join(" ");
        assert!(
            readme.lines().any(|line| line.trim() == command),
            "README.md must show `{command}` on a line of its own"
        );
    }

    #[test]
    fn totals_sum_every_result_line() {
        let mut totals = Totals::default();
        for line in [
            "test result: ok. 48 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.05s",
            "running 3 tests",
            "test result: FAILED. 5 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.63s",
        ] {
            totals.add_line(line);
        }
        assert_eq!(
            totals,
            Totals {
                passed: 53,
                failed: 1,
                ignored: 2
            }
        );
    }

    #[test]
    fn ci_script_calls_xtask_ci() {
        let script = fs::read_to_string(project_root().join(".ci/run")).unwrap();
        assert!(
            script
                .lines()
                .any(|line| line.trim() == "exec cargo xtask ci"),
            "{script}"
        );
    }

    #[test]
    fn provider_features_are_read_from_the_manifest() {
        let manifest = "[package]\nname = \"x\"\n\n[features]\ndefault = [\"openai\", \"gemini\"]\nopenai = [\"dep:llm-openai\"]\ngemini = [\"dep:llm-gemini\"]\nblocking = []\n\n[dependencies]\nserde = \"1\"\n";
        assert_eq!(provider_features(manifest), ["openai", "gemini"]);
        assert!(factory_provider_features().is_ok());
    }
}
