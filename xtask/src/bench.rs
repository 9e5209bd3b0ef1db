//! `cargo xtask bench [--quick]`: the gateway's overhead, throughput, memory and streaming,
//! measured on loopback against a fast mock upstream, with the direct path and two floors:
//! our bare one-hop proxy and nginx (one worker, keep-alive upstream, no access log;
//! installed with apt-get when missing and running as root; full runs only). The gateway
//! runs at `warn`, and also as users start it (default logging, the INFO access log
//! included). Writes `BENCHMARKS.md` (full runs) and JSON under `target/bench/`.
//!
//! `--quick` is the CI smoke: it fails on any gateway error, and when the gateway's CPU per
//! request exceeds [`SMOKE_CPU_RATIO`] times the one-hop proxy's at concurrency 16 in the
//! same run (a ratio, so a slow machine does not fail it; measured in turns, the median of
//! five rounds, so a burst of a neighbour's noise does not either).
//!
//! A full run measures the hot-path goals that compare the gateway with a floor (CPU per
//! request against the one-hop proxy, p50 at concurrency 1, chunks/s against direct) once
//! more at the end, in turns ([`GoalTurns`]), and judges them on that.
//!
//! Layout: the gateway (and the one-hop proxy) pinned to core 0; the mock upstream and the
//! load generator pinned to core 1, so the gateway's figures are per core.

use std::{
    fmt::Write as _,
    fs,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::{cargo, project_root, run};

/// The CI smoke fails when the gateway's CPU per request is above this multiple of the
/// one-hop proxy's (concurrency 16, same run), as issue 14 asks. The gateway measures
/// 1.66–1.69× today in quick runs on this VM (see BENCHMARKS.md; 2.5× before the direct
/// path, 1.8–2.0× before the direct JSON writers). The goal is 1.5×.
const SMOKE_CPU_RATIO: f64 = 2.0;

/// A child process killed on drop.
pub(crate) struct Proc {
    child: Child,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A command running `binary` pinned to `core` when taskset exists.
pub(crate) fn pinned(binary: &Path, core: u32) -> Command {
    if has_taskset() {
        let mut command = Command::new("taskset");
        command.args(["-c", &core.to_string()]).arg(binary);
        command
    } else {
        Command::new(binary)
    }
}

/// Start `binary` with `args` (output discarded), pinned to `core` when taskset exists,
/// and wait until it listens on every port of `ready_on`.
pub(crate) fn spawn(
    binary: &Path,
    args: &[String],
    core: u32,
    envs: &[(&str, &str)],
    ready_on: &[u16],
) -> Result<Proc, String> {
    let mut command = pinned(binary, core);
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    start(command, ready_on)
}

/// Start `command` and wait until it listens on every port of `ready_on`; killed on drop.
pub(crate) fn start(mut command: Command, ready_on: &[u16]) -> Result<Proc, String> {
    let child = command
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", crate::describe(&command)))?;
    let proc = Proc { child };
    for port in ready_on {
        wait_for_port(*port)?;
    }
    Ok(proc)
}

fn wait_for_port(port: u16) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(1));
    }
    Err(format!("nothing listened on port {port} within 30 s"))
}

/// Resident memory of `pid` in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time of `pid` (user + system) in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which may contain spaces, in parentheses.
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One load run's JSON report.
fn load(
    bin: &Path,
    port: u16,
    concurrency: usize,
    seconds: f64,
    stream: bool,
) -> Result<serde_json_lite::Object, String> {
    load_with(
        bin,
        port,
        concurrency,
        seconds,
        if stream { &["--stream"] } else { &[] },
    )
}

/// One `bench-load` run with `extra` arguments (`--stream`, `--mixed`, `--cancel-every N`).
pub(crate) fn load_with(
    bin: &Path,
    port: u16,
    concurrency: usize,
    seconds: f64,
    extra: &[&str],
) -> Result<serde_json_lite::Object, String> {
    let mut args = vec![
        "--url".to_owned(),
        format!("http://127.0.0.1:{port}/v1/chat/completions"),
        "--concurrency".to_owned(),
        concurrency.to_string(),
        "--seconds".to_owned(),
        seconds.to_string(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let output = pinned(&bin.join("bench-load"), 1)
        .args(&args)
        .output()
        .map_err(|e| format!("bench-load: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "bench-load failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json_lite::parse(&String::from_utf8_lossy(&output.stdout))
}

/// A very small JSON reader for bench-load's flat report (xtask keeps no dependencies).
pub(crate) mod serde_json_lite {
    use std::collections::BTreeMap;

    pub(crate) type Object = BTreeMap<String, String>;

    pub(crate) fn parse(text: &str) -> Result<Object, String> {
        let body = text
            .trim()
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .ok_or("not a JSON object")?;
        let mut object = Object::new();
        let mut rest = body;
        while let Some(start) = rest.find('"') {
            let after = &rest[start + 1..];
            let end = after.find('"').ok_or("unterminated key")?;
            let key = after[..end].to_owned();
            let value_start = &after[end + 1..];
            let value_start = value_start
                .trim_start()
                .strip_prefix(':')
                .ok_or("missing colon")?
                .trim_start();
            let (value, next) = if let Some(string) = value_start.strip_prefix('"') {
                let mut end = 0;
                let bytes = string.as_bytes();
                while end < bytes.len()
                    && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\'))
                {
                    end += 1;
                }
                (
                    string[..end].to_owned(),
                    &string[(end + 1).min(string.len())..],
                )
            } else {
                let end = value_start.find(',').unwrap_or(value_start.len());
                (value_start[..end].trim().to_owned(), &value_start[end..])
            };
            object.insert(key, value);
            rest = next.trim_start().strip_prefix(',').unwrap_or(next);
        }
        Ok(object)
    }

    pub(crate) fn num(object: &Object, key: &str) -> f64 {
        object.get(key).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    }
}

use serde_json_lite::num;

fn gateway_config(
    dir: &Path,
    upstream: u16,
    deployments: usize,
    strategy: &str,
) -> Result<PathBuf, String> {
    gateway_config_with(dir, upstream, deployments, strategy, &Extra::default())
}

/// Settings added to a benchmark gateway's configuration.
#[derive(Default)]
struct Extra {
    /// `router.shared_state`.
    shared_state: Option<String>,
    /// `rpm` of every deployment.
    rpm: Option<u64>,
}

fn gateway_config_with(
    dir: &Path,
    upstream: u16,
    deployments: usize,
    strategy: &str,
    extra: &Extra,
) -> Result<PathBuf, String> {
    let mut yaml =
        String::from("providers:\n  - provider: openai\n    model_name: gpt-4o\n    api_keys:\n");
    for i in 0..deployments {
        let _ = writeln!(yaml, "      - sk-bench-{i:06}-0123456789abcdef");
    }
    if let Some(rpm) = extra.rpm {
        let _ = writeln!(yaml, "    rpm: {rpm}");
    }
    let _ = write!(
        yaml,
        "    api_base: http://127.0.0.1:{upstream}/v1\nrouter:\n  strategy: {strategy}\n"
    );
    if let Some(url) = &extra.shared_state {
        let _ = writeln!(yaml, "  shared_state: {url}");
    }
    yaml.push_str("server:\n  max_concurrency: 8192\n");
    let suffix = match (&extra.shared_state, extra.rpm) {
        (None, None) => "",
        (Some(_), None) => "-shared",
        (None, Some(_)) => "-rpm",
        (Some(_), Some(_)) => "-shared-rpm",
    };
    let path = dir.join(format!("gateway-{deployments}-{strategy}{suffix}.yaml"));
    fs::write(&path, yaml).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

struct Gateway {
    proc: Proc,
    port: u16,
    start_to_ready: Duration,
}

fn start_gateway(bin: &Path, config: &Path) -> Result<Gateway, String> {
    start_gateway_with(bin, config, Some("warn"))
}

/// The gateway with `RUST_LOG` set to `log`, or unset (its default logging) for `None`.
fn start_gateway_with(bin: &Path, config: &Path, log: Option<&str>) -> Result<Gateway, String> {
    let port = free_port()?;
    let started = Instant::now();
    let mut command = pinned(&bin.join("llm-server"), 0);
    command
        .args([
            "--config".to_owned(),
            config.display().to_string(),
            "--port".to_owned(),
            port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match log {
        Some(level) => command.env("RUST_LOG", level),
        None => command.env_remove("RUST_LOG"),
    };
    let proc = start(command, &[port])?;
    Ok(Gateway {
        proc,
        port,
        start_to_ready: started.elapsed(),
    })
}

/// How a set of rows loads a gateway.
struct Load<'a> {
    levels: &'a [usize],
    seconds: f64,
    stream: bool,
    ticks: f64,
}

/// One row per concurrency level of `load` against `gateway`, named `name`, with its CPU
/// per request; returns the errors the gateway answered.
fn gateway_rows(
    bin: &Path,
    gateway: &Gateway,
    name: &str,
    load: &Load<'_>,
    rows: &mut Vec<Row>,
) -> Result<f64, String> {
    let mut errors = 0.0;
    for &c in load.levels {
        let before = cpu_ticks(gateway.proc.pid());
        let report = self::load(bin, gateway.port, c, load.seconds, load.stream)?;
        errors += num(&report, "errors");
        let cpu = per_request(cpu_ticks(gateway.proc.pid()) - before, load.ticks, &report);
        rows.push(Row {
            name: name.to_owned(),
            concurrency: c,
            report,
            cpu_us_per_request: cpu,
        });
    }
    Ok(errors)
}

struct Row {
    name: String,
    concurrency: usize,
    report: serde_json_lite::Object,
    cpu_us_per_request: Option<f64>,
}

/// Build the release gateway and the bench tools (`target/release`).
pub(crate) fn build_release_tools() -> Result<(), String> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "llm-server",
        "-p",
        "bench",
    ]);
    run(build)
}

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let root = project_root();
    build_release_tools()?;
    let bin = root.join("target/release");
    let out_dir = root.join("target/bench");
    fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let seconds = if quick { 2.0 } else { 4.0 };
    let levels: &[usize] = if quick { &[1, 16] } else { &[1, 16, 64, 256] };
    let ticks = clock_ticks_per_second();
    let pinned = has_taskset();

    let upstream_port = free_port()?;
    let _upstream = spawn(
        &bin.join("bench-upstream"),
        &["--port".to_owned(), upstream_port.to_string()],
        1,
        &[],
        &[upstream_port],
    )?;

    let mut rows: Vec<Row> = Vec::new();
    let mut gateway_errors = 0.0;
    // Direct: load generator → upstream.
    for &c in levels {
        let report = load(&bin, upstream_port, c, seconds, false)?;
        rows.push(Row {
            name: "direct".into(),
            concurrency: c,
            report,
            cpu_us_per_request: None,
        });
    }
    // One-hop floor: load generator → bare proxy → upstream.
    {
        let (proxy, proxy_port) = start_proxy(&bin, upstream_port)?;
        for &c in levels {
            let before = cpu_ticks(proxy.pid());
            let report = load(&bin, proxy_port, c, seconds, false)?;
            let cpu = per_request(cpu_ticks(proxy.pid()) - before, ticks, &report);
            rows.push(Row {
                name: "one-hop proxy".into(),
                concurrency: c,
                report,
                cpu_us_per_request: cpu,
            });
        }
    }
    // The second floor: nginx as a reverse proxy.
    let nginx = if quick {
        None
    } else {
        nginx_floor(&out_dir, upstream_port)?
    };
    if let Some(nginx) = &nginx {
        for &c in levels {
            let before = cpu_ticks(nginx.proc.pid());
            let report = load(&bin, nginx.port, c, seconds, false)?;
            let cpu = per_request(cpu_ticks(nginx.proc.pid()) - before, ticks, &report);
            rows.push(Row {
                name: "nginx".into(),
                concurrency: c,
                report,
                cpu_us_per_request: cpu,
            });
        }
    }
    // The gateway, by deployment count and strategy.
    let configs: Vec<(usize, &str)> = if quick {
        vec![(16, "round_robin")]
    } else {
        vec![
            (1, "round_robin"),
            (16, "round_robin"),
            (1000, "round_robin"),
            (1, "latency"),
            (16, "latency"),
            (1000, "latency"),
        ]
    };
    let mut memory = Vec::new();
    let mut readiness = Vec::new();
    // (deployments, strategy, default logging): the last run is the gateway as users start
    // it, with its INFO access log.
    let mut runs: Vec<(usize, &str, bool)> = configs.iter().map(|(d, s)| (*d, *s, false)).collect();
    if !quick {
        runs.push((16, "round_robin", true));
    }
    for (deployments, strategy, default_logging) in runs {
        let config = gateway_config(&out_dir, upstream_port, deployments, strategy)?;
        let gateway = start_gateway_with(
            &bin,
            &config,
            if default_logging { None } else { Some("warn") },
        )?;
        let name = if default_logging {
            format!("gateway {deployments} × {strategy}, default logging")
        } else {
            format!("gateway {deployments} × {strategy}")
        };
        if !default_logging {
            readiness.push((deployments, gateway.start_to_ready));
        }
        let idle = rss_kib(gateway.proc.pid());
        let load = Load {
            levels,
            seconds,
            stream: false,
            ticks,
        };
        gateway_errors += gateway_rows(&bin, &gateway, &name, &load, &mut rows)?;
        let peak = rss_kib(gateway.proc.pid());
        memory.push((name.trim_start_matches("gateway ").to_owned(), idle, peak));
    }
    // Shared state through Redis: the same gateway local-only, with shared state, and with
    // every deployment's rpm leased from Redis too, measured in turns (three rounds of all
    // three at each concurrency, the median kept) so that drift of the machine does not
    // pass for a difference between them.
    let redis = if quick {
        crate::ci::redis_server().ok()
    } else {
        crate::ci::redis_server()
            .inspect_err(|e| println!("redis-server: {e}; the shared-state rows are left out"))
            .ok()
    };
    if let Some(binary) = redis {
        let port = free_port()?;
        let _redis = spawn(
            &binary,
            &[
                "--port".to_owned(),
                port.to_string(),
                "--bind".to_owned(),
                "127.0.0.1".to_owned(),
                "--save".to_owned(),
                String::new(),
                "--appendonly".to_owned(),
                "no".to_owned(),
            ],
            1,
            &[],
            &[port],
        )?;
        let url = format!("redis://127.0.0.1:{port}/0");
        let variants: [(&str, Extra); 3] = [
            (LOCAL, Extra::default()),
            (
                SHARED,
                Extra {
                    shared_state: Some(url.clone()),
                    rpm: None,
                },
            ),
            (
                SHARED_RPM,
                Extra {
                    shared_state: Some(url),
                    rpm: Some(100_000_000),
                },
            ),
        ];
        let mut gateways = Vec::new();
        for (name, extra) in &variants {
            let config = gateway_config_with(&out_dir, upstream_port, 16, "round_robin", extra)?;
            gateways.push((*name, start_gateway(&bin, &config)?));
        }
        // Let them connect before measuring.
        thread::sleep(Duration::from_millis(300));
        let rounds = if quick { 1 } else { 3 };
        for &c in levels {
            let mut runs: Vec<Vec<Row>> = (0..gateways.len()).map(|_| Vec::new()).collect();
            for _ in 0..rounds {
                for ((name, gateway), runs) in gateways.iter().zip(&mut runs) {
                    let load = Load {
                        levels: &[c],
                        seconds,
                        stream: false,
                        ticks,
                    };
                    gateway_errors += gateway_rows(&bin, gateway, name, &load, runs)?;
                }
            }
            for mut runs in runs {
                runs.sort_by(|a, b| num(&a.report, "rps").total_cmp(&num(&b.report, "rps")));
                let median = runs.len() / 2;
                rows.extend(runs.into_iter().nth(median));
            }
        }
    }
    // Streams: time to first byte and chunks relayed.
    let stream_levels: &[usize] = if quick { &[16] } else { &[1, 16, 64] };
    for &c in stream_levels {
        let report = load(&bin, upstream_port, c, seconds, true)?;
        rows.push(Row {
            name: "direct stream".into(),
            concurrency: c,
            report,
            cpu_us_per_request: None,
        });
    }
    let config = gateway_config(&out_dir, upstream_port, 1, "round_robin")?;
    let gateway = start_gateway(&bin, &config)?;
    let streams = Load {
        levels: stream_levels,
        seconds,
        stream: true,
        ticks,
    };
    gateway_errors += gateway_rows(&bin, &gateway, "gateway stream", &streams, &mut rows)?;
    drop(gateway);
    if let Some(nginx) = &nginx {
        for &c in stream_levels {
            let before = cpu_ticks(nginx.proc.pid());
            let report = load(&bin, nginx.port, c, seconds, true)?;
            let cpu = per_request(cpu_ticks(nginx.proc.pid()) - before, ticks, &report);
            rows.push(Row {
                name: "nginx stream".into(),
                concurrency: c,
                report,
                cpu_us_per_request: cpu,
            });
        }
    }
    drop(nginx);

    // The hot-path goals once more, measured in turns against their floors.
    let turns = if quick {
        None
    } else {
        let (turns, errors) = goal_turns(&bin, &out_dir, upstream_port, levels, seconds, ticks)?;
        gateway_errors += errors;
        Some(turns)
    };

    // Each provider's translation, against a mock speaking its format.
    if !quick {
        provider_rows(&bin, &out_dir, upstream_port, seconds, ticks, &mut rows)?;
    }

    // 1,000 open streams: RSS idle, at peak, and after.
    let open_streams = if quick {
        None
    } else {
        Some(open_streams(&bin, &out_dir)?)
    };

    let results = Results {
        rows: &rows,
        memory: &memory,
        readiness: &readiness,
        open: open_streams,
        turns: turns.as_ref(),
        pinned,
    };
    let json = to_json(&results);
    let json_path = out_dir.join(if quick { "quick.json" } else { "results.json" });
    fs::write(&json_path, &json).map_err(|e| e.to_string())?;
    println!("{}", table(&rows));
    println!("results: {}", json_path.display());
    if !quick {
        let markdown = report_markdown(&results);
        fs::write(root.join("BENCHMARKS.md"), markdown).map_err(|e| e.to_string())?;
        println!("wrote BENCHMARKS.md");
    }
    if gateway_errors > 0.0 {
        return Err(format!(
            "the gateway returned {gateway_errors} errors during the run"
        ));
    }
    let cpu_at = |name: &str| {
        rows.iter()
            .find(|r| r.name == name && r.concurrency == 16)
            .and_then(|r| r.cpu_us_per_request)
    };
    if let (Some(gateway), Some(proxy)) =
        (cpu_at("gateway 16 × round_robin"), cpu_at("one-hop proxy"))
    {
        println!(
            "CPU per request at concurrency 16: gateway {gateway:.1} µs, one-hop proxy {proxy:.1} µs, ratio {:.2}",
            gateway / proxy
        );
    }
    if quick {
        let (ratio, gateway, proxy) = smoke_ratio(&bin, &out_dir, upstream_port, ticks)?;
        println!(
            "smoke, in turns (median of {SMOKE_ROUNDS} rounds): gateway {gateway:.1} µs, one-hop proxy {proxy:.1} µs, ratio {ratio:.2} (limit {SMOKE_CPU_RATIO})"
        );
        if ratio > SMOKE_CPU_RATIO {
            return Err(format!(
                "the gateway spent {ratio:.2}× the one-hop proxy's CPU per request (limit {SMOKE_CPU_RATIO}×)"
            ));
        }
    }
    Ok(())
}

/// The one-hop proxy to `upstream_port`, pinned like the gateway, and its port.
fn start_proxy(bin: &Path, upstream_port: u16) -> Result<(Proc, u16), String> {
    let port = free_port()?;
    let proxy = spawn(
        &bin.join("bench-proxy"),
        &[
            "--port".to_owned(),
            port.to_string(),
            "--upstream".to_owned(),
            format!("127.0.0.1:{upstream_port}"),
        ],
        0,
        &[],
        &[port],
    )?;
    Ok((proxy, port))
}

/// Rounds of the smoke's measurement.
const SMOKE_ROUNDS: usize = 5;

/// The smoke's ratio: the gateway (16 deployments, round robin, at `warn`) and the one-hop
/// proxy at concurrency 16, measured in turns for [`SMOKE_ROUNDS`] rounds of 2 s each, the
/// median round kept, as (ratio, gateway µs, proxy µs). A burst of noise from the VM's
/// neighbours during one window then cannot fail CI, while a regression, which shows in
/// every round, still does.
fn smoke_ratio(
    bin: &Path,
    out_dir: &Path,
    upstream_port: u16,
    ticks: f64,
) -> Result<(f64, f64, f64), String> {
    let (proxy, proxy_port) = start_proxy(bin, upstream_port)?;
    let config = gateway_config(out_dir, upstream_port, 16, "round_robin")?;
    let gateway = start_gateway(bin, &config)?;
    let measure = |pid: u32, port: u16| -> Result<f64, String> {
        let before = cpu_ticks(pid);
        let report = load(bin, port, 16, 2.0, false)?;
        if num(&report, "errors") > 0.0 {
            return Err(format!(
                "errors during the smoke: {:?}",
                report.get("first_error")
            ));
        }
        per_request(cpu_ticks(pid) - before, ticks, &report)
            .ok_or_else(|| "no request completed during the smoke".to_owned())
    };
    let mut rounds = Vec::with_capacity(SMOKE_ROUNDS);
    for _ in 0..SMOKE_ROUNDS {
        let proxy_us = measure(proxy.pid(), proxy_port)?;
        let gateway_us = measure(gateway.proc.pid(), gateway.port)?;
        rounds.push(Turn {
            gateway: gateway_us,
            floor: proxy_us,
        });
    }
    let median = median_turn(&rounds, Turn::ratio).ok_or("no smoke round")?;
    Ok((median.ratio(), median.gateway, median.floor))
}

/// Rounds of each goal measured in turns in a full run.
const TURN_ROUNDS: usize = 5;

/// One round of a goal measured in turns: the gateway's figure and its floor's, taken one
/// right after the other.
#[derive(Clone, Copy)]
struct Turn {
    gateway: f64,
    floor: f64,
}

impl Turn {
    fn ratio(self) -> f64 {
        self.gateway / self.floor
    }

    fn excess(self) -> f64 {
        self.gateway - self.floor
    }
}

/// The median of `turns` by `key` (the middle round; `None` when there is none).
fn median_turn(turns: &[Turn], key: fn(Turn) -> f64) -> Option<Turn> {
    let mut sorted = turns.to_vec();
    sorted.sort_by(|a, b| key(*a).total_cmp(&key(*b)));
    sorted.get(sorted.len() / 2).copied()
}

/// The hot-path goals of issue 14 measured in turns: for each, [`TURN_ROUNDS`] rounds in
/// which the floor and the gateway run one right after the other (which goes first
/// alternates), so that this VM's drift from one minute to the next, which moves a figure
/// by ±10–30 % between rows taken minutes apart, lands on both sides of each ratio.
#[derive(Default)]
struct GoalTurns {
    /// CPU µs per non-stream request by concurrency: gateway 16 × round_robin (at `warn`)
    /// and the one-hop proxy.
    cpu: Vec<(usize, Vec<Turn>)>,
    /// p50 µs at concurrency 1, from the same runs as `cpu` at 1.
    p50: Vec<Turn>,
    /// Chunks/s at concurrency 16: through the gateway (1 deployment, as the stream rows)
    /// and direct.
    chunks: Vec<Turn>,
}

/// One round of a measurement in turns: `measure(false)` (the floor) and `measure(true)`
/// (the gateway) right after each other, the floor first in even rounds and the gateway
/// first in odd ones; returns (floor, gateway).
fn back_to_back<T>(
    round: usize,
    mut measure: impl FnMut(bool) -> Result<T, String>,
) -> Result<(T, T), String> {
    if round.is_multiple_of(2) {
        let floor = measure(false)?;
        Ok((floor, measure(true)?))
    } else {
        let gateway = measure(true)?;
        Ok((measure(false)?, gateway))
    }
}

/// Measure [`GoalTurns`] at `levels`, `seconds` per window; returns them and the errors the
/// gateway answered.
fn goal_turns(
    bin: &Path,
    out_dir: &Path,
    upstream_port: u16,
    levels: &[usize],
    seconds: f64,
    ticks: f64,
) -> Result<(GoalTurns, f64), String> {
    let (proxy, proxy_port) = start_proxy(bin, upstream_port)?;
    let gateway = start_gateway(
        bin,
        &gateway_config(out_dir, upstream_port, 16, "round_robin")?,
    )?;
    let streaming = start_gateway(
        bin,
        &gateway_config(out_dir, upstream_port, 1, "round_robin")?,
    )?;
    let mut errors = 0.0;
    // (report, CPU µs per request) of one window against `port`, whose process is `pid`.
    let mut window = |pid: Option<u32>, port: u16, c: usize, stream: bool, gateway: bool| {
        let before = pid.map(cpu_ticks);
        let report = load(bin, port, c, seconds, stream)?;
        if gateway {
            errors += num(&report, "errors");
        }
        let cpu = pid
            .zip(before)
            .and_then(|(pid, before)| per_request(cpu_ticks(pid) - before, ticks, &report));
        Ok::<_, String>((report, cpu.unwrap_or(f64::NAN)))
    };
    let mut turns = GoalTurns::default();
    for &c in levels {
        let mut cpu = Vec::with_capacity(TURN_ROUNDS);
        for round in 0..TURN_ROUNDS {
            let ((floor, floor_cpu), (mine, mine_cpu)) = back_to_back(round, |gateway_turn| {
                if gateway_turn {
                    window(Some(gateway.proc.pid()), gateway.port, c, false, true)
                } else {
                    window(Some(proxy.pid()), proxy_port, c, false, false)
                }
            })?;
            cpu.push(Turn {
                gateway: mine_cpu,
                floor: floor_cpu,
            });
            if c == 1 {
                turns.p50.push(Turn {
                    gateway: num(&mine, "p50_us"),
                    floor: num(&floor, "p50_us"),
                });
            }
        }
        turns.cpu.push((c, cpu));
    }
    for round in 0..TURN_ROUNDS {
        let (direct, mine) = back_to_back(round, |gateway_turn| {
            let (report, _) = if gateway_turn {
                window(None, streaming.port, 16, true, true)?
            } else {
                window(None, upstream_port, 16, true, false)?
            };
            Ok(num(&report, "chunks_per_s"))
        })?;
        turns.chunks.push(Turn {
            gateway: mine,
            floor: direct,
        });
    }
    Ok((turns, errors))
}

/// nginx listening on a free port as a one-worker reverse proxy to `upstream`, pinned like
/// the gateway; `None` (with a note) when nginx is missing and cannot be installed.
fn nginx_floor(dir: &Path, upstream: u16) -> Result<Option<Gateway>, String> {
    let Some(binary) = nginx_binary() else {
        println!(
            "nginx: not installed and could not be installed (needs root and apt-get); its floor rows are left out"
        );
        return Ok(None);
    };
    let port = free_port()?;
    let prefix = dir.join("nginx");
    fs::create_dir_all(prefix.join("tmp")).map_err(|e| e.to_string())?;
    let p = prefix.display();
    let config = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n\
         \x20 upstream mock {{ server 127.0.0.1:{upstream}; keepalive 512; }}\n\
         \x20 server {{\n    listen 127.0.0.1:{port};\n    keepalive_requests 1000000;\n    location / {{\n      proxy_pass http://mock;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n    }}\n  }}\n}}\n"
    );
    let path = prefix.join("nginx.conf");
    fs::write(&path, config).map_err(|e| format!("{}: {e}", path.display()))?;
    let started = Instant::now();
    let proc = spawn(
        &binary,
        &[
            "-e".to_owned(),
            prefix.join("error.log").display().to_string(),
            "-p".to_owned(),
            p.to_string(),
            "-c".to_owned(),
            path.display().to_string(),
        ],
        0,
        &[],
        &[port],
    )?;
    Ok(Some(Gateway {
        proc,
        port,
        start_to_ready: started.elapsed(),
    }))
}

/// The nginx binary, installed with apt-get (Debian package `nginx-light`, else `nginx`)
/// when missing and we are root.
fn nginx_binary() -> Option<PathBuf> {
    crate::system_binary(
        &["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"],
        &["nginx-light", "nginx"],
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn per_request(
    ticks_used: u64,
    ticks_per_second: f64,
    report: &serde_json_lite::Object,
) -> Option<f64> {
    let requests = num(report, "requests");
    (requests > 0.0).then(|| ticks_used as f64 / ticks_per_second * 1e6 / requests)
}

/// The providers of the per-provider rows: display name, gateway model name, YAML entry
/// (`{base}` is `provider-mock`'s address, `{openai}` the OpenAI mock's).
const PROVIDERS: [(&str, &str, &str); 6] = [
    (
        "OpenAI",
        "p-openai",
        "provider: openai\n    api_key: sk-mock\n    api_base: {openai}/v1",
    ),
    (
        "DeepSeek",
        "p-deepseek",
        "provider: deepseek\n    deployment: deepseek-flash\n    api_key: sk-mock\n    api_base: {base}",
    ),
    (
        "Qwen (DashScope native)",
        "p-qwen",
        "provider: qwen\n    deployment: qwen-plus\n    api_key: sk-mock\n    api_base: {base}/api/v1",
    ),
    (
        "Qwen (compatible mode)",
        "p-qwen-compat",
        "provider: qwen\n    deployment: qwen-plus\n    api_key: sk-mock\n    api_base: {base}/compatible-mode/v1",
    ),
    (
        "Gemini (AI Studio)",
        "p-gemini",
        "provider: gemini\n    deployment: gemini-2.5-flash\n    api_key: sk-mock\n    api_base: {base}",
    ),
    (
        "Claude on Bedrock (API key)",
        "p-claude",
        "provider: claude\n    deployment: global.anthropic.claude-sonnet-4-5-20250929-v1:0\n    region: us-west-2\n    api_key: sk-mock\n    api_base: {base}",
    ),
];

/// The prompt of the per-provider rows: `provider-mock` streams it back word by word, so
/// every provider's stream has 20 content chunks, as the OpenAI mock's has.
const TWENTY_WORDS: &str = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20";

/// CPU per request and per streamed answer for each provider, at concurrency 16, through
/// one gateway whose deployments point at `provider-mock` (and the OpenAI mock).
fn provider_rows(
    bin: &Path,
    out_dir: &Path,
    openai_port: u16,
    seconds: f64,
    ticks: f64,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let mock_port = free_port()?;
    let _mock = spawn(
        &bin.join("provider-mock"),
        &[
            "--port".to_owned(),
            mock_port.to_string(),
            "--key".to_owned(),
            "sk-mock".to_owned(),
        ],
        1,
        &[],
        &[mock_port],
    )?;
    let mut yaml = String::from("server:\n  max_concurrency: 8192\nproviders:\n");
    for (_, model, entry) in PROVIDERS {
        let entry = entry
            .replace("{base}", &format!("http://127.0.0.1:{mock_port}"))
            .replace("{openai}", &format!("http://127.0.0.1:{openai_port}"));
        let _ = writeln!(yaml, "  - model_name: {model}\n    {entry}");
    }
    let config = out_dir.join("gateway-providers.yaml");
    fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
    let gateway = start_gateway(bin, &config)?;
    let pid = gateway.proc.pid();
    for (name, model, _) in PROVIDERS {
        for stream in [false, true] {
            let mut extra = vec!["--model", model, "--prompt", TWENTY_WORDS];
            if stream {
                extra.push("--stream");
            }
            let before = cpu_ticks(pid);
            let report = load_with(bin, gateway.port, 16, seconds, &extra)?;
            if num(&report, "errors") > 0.0 {
                return Err(format!(
                    "{name} through the gateway failed: {:?}",
                    report.get("first_error")
                ));
            }
            let cpu = per_request(cpu_ticks(pid) - before, ticks, &report);
            rows.push(Row {
                name: format!("provider {name}{}", if stream { " stream" } else { "" }),
                concurrency: 16,
                report,
                cpu_us_per_request: cpu,
            });
        }
    }
    Ok(())
}

/// The per-provider table: CPU per request, per streamed answer and per chunk.
fn provider_section(rows: &[Row]) -> String {
    let mut out = String::from(
        "\n## Per provider (concurrency 16)\n\nOne gateway with one deployment per provider, each pointing at a mock that speaks that provider's documented format (`provider-mock`; OpenAI: `bench-upstream`); the prompt makes every stream 20 content chunks. CPU per chunk = the gateway's CPU per streamed answer ÷ the chunks the client received per answer (request handling included); marginal = (CPU per streamed answer − CPU per non-stream request) ÷ chunks.\n\n| provider | req/s | CPU µs/request | streams/s | chunks/answer | CPU µs/streamed answer | CPU µs/chunk | marginal µs/chunk |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, _, _) in PROVIDERS {
        let find = |suffix: &str| {
            rows.iter()
                .find(|r| r.name == format!("provider {name}{suffix}"))
        };
        let (Some(json), Some(stream)) = (find(""), find(" stream")) else {
            continue;
        };
        let (Some(cpu), Some(stream_cpu)) = (json.cpu_us_per_request, stream.cpu_us_per_request)
        else {
            continue;
        };
        let rps = num(&stream.report, "rps");
        let chunks = if rps > 0.0 {
            num(&stream.report, "chunks_per_s") / rps
        } else {
            f64::NAN
        };
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {cpu:.1} | {rps:.0} | {chunks:.1} | {stream_cpu:.1} | {:.1} | {:.1} |",
            num(&json.report, "rps"),
            stream_cpu / chunks,
            (stream_cpu - cpu) / chunks
        );
    }
    out
}

/// Hold 1,000 streams open through the gateway (the upstream paces 20 chunks 50 ms apart)
/// and sample the gateway's memory before, during and after.
fn open_streams(bin: &Path, out_dir: &Path) -> Result<OpenStreams, String> {
    let slow_port = free_port()?;
    let _slow = spawn(
        &bin.join("bench-upstream"),
        &[
            "--port".to_owned(),
            slow_port.to_string(),
            "--chunk-delay-ms".to_owned(),
            "50".to_owned(),
        ],
        1,
        &[],
        &[slow_port],
    )?;
    let config = gateway_config(out_dir, slow_port, 1, "round_robin")?;
    let gateway = start_gateway(bin, &config)?;
    let pid = gateway.proc.pid();
    let idle = rss_kib(pid);
    let port = gateway.port;
    let bin = bin.to_path_buf();
    let loader = thread::spawn(move || load(&bin, port, 1000, 6.0, true));
    let mut peak = idle;
    let started = Instant::now();
    while !loader.is_finished() && started.elapsed() < Duration::from_secs(60) {
        peak = peak.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(50));
    }
    let report = loader
        .join()
        .map_err(|_| "the load thread panicked".to_owned())??;
    thread::sleep(Duration::from_secs(2));
    let after_2s = rss_kib(pid);
    thread::sleep(Duration::from_secs(8));
    let after_10s = rss_kib(pid);
    Ok(OpenStreams {
        idle,
        peak,
        after_2s,
        after_10s,
        errors: num(&report, "errors"),
    })
}

/// RSS (KiB) around 1,000 concurrent streams.
#[derive(Clone, Copy)]
struct OpenStreams {
    idle: u64,
    peak: u64,
    after_2s: u64,
    after_10s: u64,
    errors: f64,
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| path | concurrency | req/s | p50 µs | p90 µs | p99 µs | TTFB p50 µs | TTFB p99 µs | chunks/s | CPU µs/req | errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let r = &row.report;
        let stream = r.get("stream").is_some_and(|s| s == "true");
        let dash = |v: f64| {
            if stream {
                format!("{v:.0}")
            } else {
                "–".to_owned()
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} | {:.0} |",
            row.name,
            row.concurrency,
            num(r, "rps"),
            num(r, "p50_us"),
            num(r, "p90_us"),
            num(r, "p99_us"),
            dash(num(r, "ttfb_p50_us")),
            dash(num(r, "ttfb_p99_us")),
            dash(num(r, "chunks_per_s")),
            row.cpu_us_per_request
                .map_or_else(|| "–".to_owned(), |c| format!("{c:.1}")),
            num(r, "errors"),
        );
    }
    out
}

/// Gateway minus direct at each percentile, per concurrency level.
fn added_latency(rows: &[Row], gateway: &str, baseline: &str) -> String {
    let mut out = String::new();
    for row in rows.iter().filter(|r| r.name == gateway) {
        if let Some(base) = rows
            .iter()
            .find(|r| r.name == baseline && r.concurrency == row.concurrency)
        {
            let d = |k: &str| num(&row.report, k) - num(&base.report, k);
            let _ = writeln!(
                out,
                "| {} | {} | {:+.0} | {:+.0} | {:+.0} |",
                gateway,
                row.concurrency,
                d("p50_us"),
                d("p90_us"),
                d("p99_us")
            );
        }
    }
    out
}

pub(crate) fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, Linux {}, {}",
        kernel.trim(),
        rustc.trim()
    )
}

/// The shared-state rows' names.
const SHARED: &str = "gateway 16 × round_robin, shared state (Redis)";
const SHARED_RPM: &str = "gateway 16 × round_robin, shared state + rpm leases";
const LOCAL: &str = "gateway 16 × round_robin, local (A/B with shared state)";

/// Requests per second with shared state on against local-only, per concurrency.
fn shared_state_section(rows: &[Row]) -> String {
    let mut md = String::from(
        "\n## Shared state (Redis)\n\nThe same gateway (16 deployments, round robin) local-only, with `router.shared_state` on a local `redis-server` \
         (pinned beside the upstream), and with an rpm on every deployment so that quota is leased from Redis too (see `docs/scale-out.md`). \
         The three run side by side and are measured in turns, three rounds per concurrency; each figure is the median round. \
         Goal: requests/s within 5 % of local-only.\n\n\
         | concurrency | local req/s | shared req/s | shared / local | shared + rpm req/s | shared + rpm / local | CPU µs/req local / shared / + rpm |\n|---|---|---|---|---|---|---|\n",
    );
    let find = |name: &str, c: usize| rows.iter().find(|r| r.name == name && r.concurrency == c);
    for local in rows.iter().filter(|r| r.name == LOCAL) {
        let c = local.concurrency;
        let base = num(&local.report, "rps");
        let rps = |name| find(name, c).map(|r| num(&r.report, "rps"));
        let cpu = |row: Option<&Row>| {
            row.and_then(|r| r.cpu_us_per_request)
                .map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
        };
        let cell = |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"));
        let ratio = |value: Option<f64>| {
            value
                .filter(|_| base > 0.0)
                .map_or_else(|| "–".to_owned(), |v| format!("{:.1} %", v / base * 100.0))
        };
        let _ = writeln!(
            md,
            "| {c} | {base:.0} | {} | {} | {} | {} | {} / {} / {} |",
            cell(rps(SHARED)),
            ratio(rps(SHARED)),
            cell(rps(SHARED_RPM)),
            ratio(rps(SHARED_RPM)),
            cpu(Some(local)),
            cpu(find(SHARED, c)),
            cpu(find(SHARED_RPM, c)),
        );
    }
    md
}

/// What a run measured, for its reports (`results.json`, BENCHMARKS.md).
struct Results<'a> {
    rows: &'a [Row],
    memory: &'a [(String, u64, u64)],
    readiness: &'a [(usize, Duration)],
    open: Option<OpenStreams>,
    turns: Option<&'a GoalTurns>,
    pinned: bool,
}

fn report_markdown(results: &Results<'_>) -> String {
    let Results {
        rows,
        memory,
        readiness,
        open,
        pinned,
        ..
    } = *results;
    let mut md = String::from(
        "# Benchmarks\n\nGenerated by `cargo xtask bench` (do not edit by hand; rerun it).\n\n",
    );
    let _ = writeln!(md, "Machine: {}.\n", machine());
    let _ = writeln!(
        md,
        "Method: everything on loopback. The mock upstream (`bench-upstream`, release) answers a fixed completion, or streams 20 chunks, at once. \
         `bench-load` runs closed-loop connections (each sends its next request when the previous answer is complete) for 4 s per row. \
         {} Gateway logging at `warn`, except the rows marked \"default logging\" (the gateway as it starts, INFO access log to stderr, here discarded). \
         Floors: our one-hop proxy (`bench-proxy`) and nginx (one worker, `master_process off`, keep-alive upstream, `proxy_buffering off`, no access log). Added latency = gateway − direct at the same concurrency and percentile.\n",
        if pinned {
            "The gateway and both floors are pinned to core 0 with `taskset`; the upstream and the load generator share core 1, so the gateway's figures are per core."
        } else {
            "`taskset` was not available: nothing is pinned."
        }
    );
    md.push_str("Commands: `cargo xtask bench` (full, writes this file and `target/bench/results.json`); `cargo xtask bench --quick` (CI smoke, `target/bench/quick.json`, fails on any gateway error and when the gateway's CPU per request exceeds 2× the one-hop proxy's at concurrency 16 in the same run, measured in turns, median of five rounds (the full run's ratios in turns are in the targets below; the smoke measured 2.5× before the gateway's bare hyper client, 1.36–1.41× before the direct path to chat completions; the goal is 1.5×).\n\n");
    md.push_str("## Latency and throughput\n\n");
    md.push_str(&table(rows));
    md.push_str("\n## Added latency (gateway − direct), µs\n\n| path | concurrency | p50 | p90 | p99 |\n|---|---|---|---|---|\n");
    for name in rows
        .iter()
        .map(|r| r.name.clone())
        .filter(|n| n.starts_with("gateway") && !n.contains("stream"))
        .collect::<std::collections::BTreeSet<_>>()
    {
        md.push_str(&added_latency(rows, &name, "direct"));
    }
    md.push_str(&added_latency(rows, "one-hop proxy", "direct"));
    md.push_str(&added_latency(rows, "nginx", "direct"));
    md.push_str(&cpu_ratios(rows));
    md.push_str("\n## Streams: added time to first byte (gateway − direct), µs\n\n| concurrency | TTFB p50 | TTFB p99 | chunks/s relayed (gateway / direct) |\n|---|---|---|---|\n");
    for row in rows.iter().filter(|r| r.name == "gateway stream") {
        if let Some(base) = rows
            .iter()
            .find(|r| r.name == "direct stream" && r.concurrency == row.concurrency)
        {
            let d = |k: &str| num(&row.report, k) - num(&base.report, k);
            let _ = writeln!(
                md,
                "| {} | {:+.0} | {:+.0} | {:.0} / {:.0} |",
                row.concurrency,
                d("ttfb_p50_us"),
                d("ttfb_p99_us"),
                num(&row.report, "chunks_per_s"),
                num(&base.report, "chunks_per_s")
            );
        }
    }
    md.push_str(&shared_state_section(rows));
    md.push_str(&provider_section(rows));
    md.push_str(&targets(results));
    md.push_str(OPTIMISED);
    md.push_str("\n## Memory and start-up\n\n| gateway | RSS idle MiB | RSS right after its load rows MiB |\n|---|---|---|\n");
    for (name, idle, peak) in memory {
        let _ = writeln!(
            md,
            "| {name} | {:.1} | {:.1} |",
            *idle as f64 / 1024.0,
            *peak as f64 / 1024.0
        );
    }
    if let Some(open) = open {
        let _ = writeln!(
            md,
            "\n1,000 concurrent open streams through one deployment: RSS idle {:.1} MiB, peak {:.1} MiB, 2 s after {:.1} MiB, 10 s after {:.1} MiB; {:.0} errors.",
            mib(open.idle),
            mib(open.peak),
            mib(open.after_2s),
            mib(open.after_10s),
            open.errors
        );
    }
    md.push_str("\nStart to ready (process spawn to the port accepting connections):");
    for (deployments, time) in readiness {
        let _ = write!(
            md,
            " {deployments} deployments {:.0} ms;",
            time.as_secs_f64() * 1000.0
        );
    }
    md.push('\n');
    md
}

/// What was changed because a measurement showed it, with before and after.
const OPTIMISED: &str = "\n## What was optimised earlier\n\n\
- **TCP_NODELAY on accepted connections** (gateway and mock upstream). Before: every streamed chunk after the first waited for a delayed ACK; a 20-chunk stream took 44 ms end to end at concurrency 16, direct or through the gateway. After: 1.4 ms direct, 8.4 ms through the gateway at concurrency 16 (see the stream rows).\n\
- **Failover order without a modulo per member** (`llm-balance`, divan bench `cargo bench -p llm-balance --bench pick`). Before: one routed call over 1,000 deployments cost 6.2 µs against 1.8 µs over one. After: 2.0 µs against 1.8 µs, which is why the 1 → 1,000 deployment rows above are flat.\n\
- **Chat URL parsed once per deployment** and **request bodies parsed without path tracking** (paths are recovered only for error messages): URL parsing with IDNA was 3.7 % of gateway CPU in a `perf` profile (`perf record -e cpu-clock`); the change was within noise on requests/s (3,865 → 3,864 at concurrency 1), so it is kept for the CPU it saves, not for a throughput claim.\n\n\
## What changed on the hot path (issue 14)\n\n\
Measured with the harness of this file (gateway 16 × round_robin pinned to core 0, upstream and load on core 1, 4 s per run, concurrency 16; CPU from `/proc/<pid>/stat`) before and after each change, with `perf record --call-graph dwarf` and `strace -c` of the gateway under load to choose them. This VM's run-to-run noise is about ± 7 %, so changes smaller than that were measured together and are listed as such. Starting point: 62 µs of CPU per request (38 µs of it in user space), 304 µs per 20-chunk streamed answer, 75 k chunks/s relayed.\n\n\
- **Streamed chunks leave in one write when they are ready together** (`serve.rs`, the socket wrapper). Profile: one `writev` per chunk, ≈ 58 % of the gateway's stream CPU in the kernel sending and waking (see the stream finding below). A write that does not answer a request (the next pieces of a stream) now waits one turn of the scheduler, and again while more joined it, so the upstream connection task hands over every chunk it already read; nothing waits for a timer. `writev` per 20-chunk answer ≈ 25 → 4; CPU per streamed answer 304 → 193 µs; 75 k → 119 k chunks/s. Requests, and chunks that arrive one at a time, go out at once as before.\n\
- **SSE written straight into the frame buffer** (`sse.rs`, replacing axum's `Sse`): profile: `Event::data` growing a `BytesMut` per event and the keep-alive timer reset per event. Events are now serialized with `serde_json::to_writer` into one buffer per burst, and the keep-alive timer moves only when it fires. 193 → 170 µs per streamed answer; 119 k → 135 k chunks/s.\n\
- **One-pass `Deserialize` for the types with an `extra` map** (`llm-core`, no `#[serde(flatten)]`), **request bodies parsed without path tracking** (re-parsed with it only to explain an error), **metrics handles registered once** (each `counter!` call looked its metric up by name and labels), **one idle timer per committed stream** instead of a `timeout` per chunk (`llm-balance`), and **request ids without `format!`**. Profile before: serde's flatten buffering and `serde_path_to_error` ≈ 13 % of user time, `register_counter` ≈ 1 %, a `Sleep` per chunk ≈ 2 % of stream time. Together (each alone is within noise): 62 → 53–55 µs per request; 170 → 150–167 µs per streamed answer.\n\
- **jemalloc in the gateway binary, with background purging** (feature `jemalloc`, default; libraries set no allocator). Profile: glibc `malloc`/`free` ≈ 9 % of CPU. 53 → 47 µs per request, ≈ 155 → 142 µs per streamed answer. And memory: after 1,000 concurrent streams glibc kept RSS at 60 MiB indefinitely although 40 MiB of it was free (`malloc_trim` from a debugger released it: fragmentation, not live data); jemalloc returns it, see the memory rows.\n\
- **At most 64 idle upstream connections per host** (`server.max_idle_upstream_connections`): after the 1,000-stream burst the pool kept all 1,000 upstream connections for 90 s; now 64.\n\
- **A streamed answer in two writes** (`serve.rs`). Profile: `strace` of a 20-chunk stream at concurrency 1 showed four writes to the client after the first change: hyper's vectored write queue holds at most 16 frames before it must flush, and the usage-only chunk the gateway drops (the client did not ask for usage) made a turn in which nothing joined the write, so the rest left before `[DONE]`. The server connection now writes through one flat buffer (hyper's `writev(false)`: frames are copied, without the 16-frame limit), and a held write is held again while anything woke the connection's task during the yield (a waker around the connection records it), not only while it grew; at most 32 turns. Writes to the client per answer 4 → 2 (the answer's first bytes still go out at once); CPU per streamed answer 148–157 → 122–123 µs; the kernel's share of the gateway's stream CPU 39 % → 27 %. Non-streamed requests unchanged (48.6 µs, within noise).\n\
- **The SSE driver polled in place** (`llm-core`, `sse_chat_stream`). Profile: `memcpy` inside `futures::stream::unfold` ≈ 2 % of stream CPU: the driver's state moved into and out of a new `async` block for every chunk. It is a hand-written `Stream` now: 122 → 110–121 µs per streamed answer, ≈ 195 k chunks/s.\n\
- **A bare hyper client in place of reqwest** (`llm-http`, the direct path). Profile: reqwest's layers around hyper's client (redirect policy and retry services, `Url` round trips, its boxed, timer-wrapped body, `memcpy` of its large request future) ≈ 25 % of user time. A client made by `llm_http::http_client` sends requests through hyper-util's pooled client, set up as reqwest's would be (rustls with the platform verifier, HTTP/2 or HTTP/1.1 by ALPN, the connect timeout through the TLS handshake, TCP settings, idle bound, default headers, the idle read timeout as one lazily-moved timer per body; no redirects on either path). A proxy in the environment and a caller's own `reqwest::Client` still go through reqwest. A/B against the plain-HTTP mock, two alternating rounds: 48.0 / 47.1 → 39.7 / 35.5 µs per request at concurrency 16 (req/s 20.8–21.2 k → 25.0–28.1 k), 128.7 / 138.0 → 119.3 / 119.3 µs at concurrency 1 (p50 220 / 241 → 218 / 206 µs), 111.1 / 106.9 → 97.3 / 97.9 µs per streamed answer (chunks/s 202–210 k → 230 k).\n\n\
- **Timeouts that do not double a future's size** (`llm-http`, `within` and `Transport::within_total`). Profile: `callgrind` of the gateway (instructions are repeatable whatever the VM's neighbours do) put 19 % of user-space instructions in `memcpy`, 8 % of them in one place: the async-trait box of the OpenAI client's `chat` future, copied three times per request, was 8.5 KB, because `within` and `within_total` were `async fn`s that kept their argument future beside the `Timeout` wrapping it (`-Zprint-type-sizes`). Built from combinators (`Either` of `Timeout` + `map`, or the future itself when unbounded), the same future is 2.0 KB, and `Transport::post`'s 2.2 → 1.3 KB. Instructions per request (concurrency 16, after warm-up): 106,600 → 96,300 (−9.6 %).\n\n\
- **Direct JSON writers, a vectorised SSE line search, one UTF-8 check per body, upstream URLs parsed once** (`llm-core`, `llm-openai`, `llm-http`, `llm-server`). Profile: `callgrind` per request and per 20-chunk streamed answer at concurrency 16: `serde_json`'s string escaping (a call per key, a byte at a time) 8 % of stream instructions and 5 % of a request's, the SSE decoder's byte loop for line ends 8.5 % of a stream's, `serde_json::from_slice` checking UTF-8 string by string 3.5 % of a request's, hyper-util formatting the `host` header and the direct path parsing the upstream URI on every request 3 %. Now `ChatChunk`, `ChatResponse` and `Message` have `write_json` (the same bytes as `serde_json`, keys as literals; every struct destructured without `..` so a new field cannot be forgotten; property tests against `serde_json::to_vec`), the OpenAI upstream body writes its messages with it, line ends are found with `memchr2`, bodies are checked for UTF-8 once and parsed as `str`, a stream frame is parsed as a chunk first (an error frame is recognised by its top-level `error` key instead of a substring scan of every frame), and a provider's chat URL is kept as an `llm_http::Target` (URL, URI and, for plain HTTP, the `host` header). Instructions per request 96,300 → 83,700 (−13 %), per streamed answer 514,400 → 427,800 (−17 %); the quick smoke's CPU ratio 1.73–1.97 → 1.68 at concurrency 16.\n\n\
- **Plain-HTTP upstream connections pooled, and driven, by the gateway itself** (`llm-http`, `direct::PlainPool`). Profile: `callgrind` per request and per 20-chunk streamed answer at concurrency 16: hyper-util's pool ≈ 6,000 instructions per request (its key hashed with SipHash a byte at a time at checkout and again at return, `Authority` comparisons, a task spawned per answer to return the connection once the body is read, its checkout future), and its connection task 13.5 % of a streamed answer's instructions (every chunk crossed from it to the reading task through a wake-up). Now an `http://` target's HTTP/1.1 connections are pooled per authority (worked out once per `Target`), handed back by the body that read the answer to its end, and driven by the task that sends the request and reads the body (no task per connection; a request sent on a connection the server closed while idle comes back unsent and goes on a new one, as with hyper-util). HTTPS stays with hyper-util (HTTP/2 by ALPN). Instructions per request 83,300 → 77,700, per streamed answer 427,800 → 419,000 (the pool) → 316,000 (driven in the task). Chunks that arrive together now leave together, as with nginx: against this mock, which sends its 20 chunks at once, the time to first byte is close to the whole answer's (nginx's is too, see its rows); a model's tokens, which arrive spaced in time, leave as they arrive.\n\n\
- **One middleware layer instead of two, and axum's `matched-path` feature off** (`llm-server`). Profile: each axum `from_fn` layer cloned its inner route service and boxed a future per request, and axum put a `MatchedPath` into every request's extensions (an allocation and a SipHash) that nothing reads. The request id, access line, gateway key and concurrency slot are now one layer (the key and slot on the same six paths as before). Instructions per request 77,700 → 76,800 (`matched-path`) → 74,550 (one layer).\n\n\
- **Fewer layers around the provider call** (`llm-core`, `llm-openai`, `llm-server`). Profile: each forwarding `ChatProvider` (`Arc<P>`, `Box<P>`, OpenAI and Azure over the compatible client) boxed an `async` block that awaited the next layer's boxed future, and every non-streamed call ran under the gateway's request timer although the router's own deadline for a whole request (300 s against 600 s by default) always answers first. Forwarders now return the inner future as it is (`llm_core::ProviderFuture`), and the gateway's timer runs only when it can fire first. 74,330 → 73,640 → 73,160 instructions per request.\n\n\
- **Log timestamps formatted once per second** (`llm-server`, the default INFO access line). Profile: `callgrind` at `RUST_LOG=info`: the access line added ≈ 11,000 instructions per request, ≈ 2,400 of them tracing-subscriber's RFC 3339 timestamp; the same text is now written from a per-thread cache of the date and time of day. 85,600 → 83,500 instructions per request at INFO.\n\n\
- **Connections beyond the idle bound kept 2 s, not closed at once** (`llm-http`, `PlainPool`). Profile: the gateway's CPU per request at concurrency 256 was twice its concurrency-64 figure, with the same instructions per request (`callgrind`: 72,700 against 73,300 at 16); `ss` counted ≈ 9,700 new `TIME_WAIT` sockets in a 4 s run, one upstream connection opened and closed for every fifth request: answers come back in batches, each batch overflowed the bound of 64 idle connections, and the next batch of requests had to connect again. Connections returned beyond the bound are now kept for 2 s (a task closes them when nothing comes by), and a connection idle that long is stripped to its socket (hyper's buffers and request queue, ≈ 28 KiB, freed; made again without I/O when taken: RSS 10 s after the 1,000-stream burst 17.5–18.5 → 16–16.5 MiB). `TIME_WAIT` sockets per 4 s run ≈ 9,700 → none beyond the load's own; CPU per request at concurrency 256 ≈ 73 → 47–58 µs (same-machine runs).\n\n\
- **jemalloc's decay 1 s instead of 10 s** (`.cargo/config.toml`, `JEMALLOC_SYS_WITH_MALLOC_CONF`). Profile: jemalloc's statistics 10 s after the 1,000-stream burst (`gdb` calling `malloc_stats_print`) showed ≈ 5 MiB of freed pages not yet returned, jemalloc returning them along a 10 s curve. RSS 10 s after the burst 20–21 → 17.5–18.5 MiB; minor page faults per request under steady load unchanged (0.005 at concurrency 16). With it, 4 and 8 KiB objects (hyper's buffers) in 32 KiB slabs: jemalloc keeps an extent record for every slab it ever made, and with one 8 KiB buffer per slab the burst left 8,100 of them (≈ 1 MiB of metadata); 8,100 → 3,600 records, RSS after the burst 16–16.5 → 15.9–16.2 MiB.\n\n\
- **tokio's current-thread runtime on one CPU** (`llm-server`'s `main`, and the same choice in `bench-proxy`, so the floor keeps the gateway's scheduler). Profile: `callgrind` at concurrency 1 put ≈ 3,600 instructions per request beyond the concurrency-16 figure in the multi-threaded scheduler (parking and unparking the worker, its timer and poll-time bookkeeping, `pow` in its EWMA). A/B in the same hour (gateway and proxy both switched; `TOKIO_WORKER_THREADS=1` forces the multi-threaded runtime): gateway 42.8 / 48.3 → 38.7 / 45.2 µs per request at concurrency 16, proxy 28.4 / 32.5 → 25.0 / 34.7 µs (noisy); 76,550 → 75,090 instructions per request at concurrency 1.\n\
- **A stream's repeated head read and written once; chunks parsed where they are queued** (`llm-openai`'s `head`, `llm-core`'s `ChunkHeadCache` and `deserialize_in_place`, one SSE event buffer per stream). Profile: `callgrind` per 20-chunk streamed answer at concurrency 16: `serde_json`'s string scanning and key matching ≈ 25 % of the answer's instructions, much of it the head every OpenAI frame repeats before `choices` (`id`, `object`, `created`, `model`, `system_fingerprint`); `memcpy` 9 %, most of it the 384-byte chunk copied through serde's return values and the translator's queue; the same head escaped and written again for every chunk. A frame that starts with the bytes of a head learned from a frame read whole is now read from `choices` on and the head's values copied in (a head field after the head, a duplicate, other first bytes or `choices` first fall back to the whole read; tests hold both reads equal), the head is written from a cache compared with each chunk, and a chunk is parsed in its queue slot. 315,700 → 265,400 instructions per streamed answer (−16 %); \n\
- **A frame that differs from a known one only in its text is not parsed** (`llm-openai`'s `head::Tail`). Profile: `callgrind` per 20-chunk streamed answer at concurrency 16: reading a frame's members after its head (`\"choices\":[{\"index\":0,\"delta\":{\"content\":\"…\"},…}]`) cost ≈ 2,700 instructions per frame, 89,000 of the answer's 265,000, for frames whose bytes differ only in the text. The bytes around the one choice's content string are learned from a frame read through the head, once a trial read of the same frame with another text in that place gives the same chunk with the other text and nothing else changed; a later frame with the same bytes around exactly one JSON string token is then that chunk with its text (an escape is decoded by `serde_json`; anything else, a control character, `null`, other bytes around it, is read as before; tests hold every such frame equal to the whole read). 265,000 → 230,000 instructions per streamed answer (−13 %); chunks/s +6 to +14 % in turns against the build before it.\n\
- **A request for an event stream is written one scheduler turn after it is queued** (`llm-http`, plain-HTTP upstreams). Profile: `perf record -e cpu-clock -g` of the gateway at 16 concurrent streams: 15 % of its CPU in `sendto` of the upstream request → `tcp_v4_rcv` → `sock_def_readable`, the wake-up of the upstream on its idle core (an inter-processor interrupt; with interrupts off it shows as `_raw_spin_unlock_irqrestore`). A streamed answer costs the gateway far more than the upstream, so the upstream's core sleeps between requests and every request woke it; nginx, which costs a fifth as much, keeps that core busy and pays almost none of it. Waiting one turn lets the requests that became ready together be written together, one wake-up for several. Chunks/s +14 to +22 % in turns against the same build without it; CPU per answer 51 → 45 µs. Requests for a whole answer are written at once: the same wait for them measured +7 % requests/s at concurrency 64, −6 % at 256 and nothing at 1 or 16. The stream rows above are the after.\n\
- **A whole answer passed on as the upstream wrote it** (`ChatProvider::chat_json`, `llm-openai`'s `relay`; OpenAI, Azure OpenAI, Qwen's compatible mode). Profile: `callgrind` at concurrency 64: reading the upstream's answer into a `ChatResponse` cost ≈ 8,450 instructions per request (`serde_json` allocating every string and matching every key), writing it again ≈ 1,575 and dropping it ≈ 550, for bytes that were already the answer. One pass over the bytes that builds nothing now checks that they hold exactly what the typed read would give (members of the expected types, nothing the typed path would fix up, fill in or read differently; anything else goes the typed way), ≈ 4,900 instructions. 70,100 → 64,600 instructions per request; in turns against the one-hop proxy, CPU per request 1.58–1.60× → 1.46–1.50× at concurrency 64 and 1.57–1.61× → 1.55–1.61× at 256 (same-hour runs on one VM). The full run right after it (at 7085d89) measured 1.17/1.36/1.47/1.53× in turns at concurrency 1/16/64/256.\n\
- **No tracing layer around an attempt nobody records** (`llm-balance`'s router). Profile: `callgrind` at concurrency 64: the `Instrumented` wrapper around each attempt (its span disabled at the default level) moved the attempt's future once more and polled through a span enter and exit: ≈ 1,000 instructions per request. The attempt is awaited directly when its span is disabled. 63,950 → 62,900 instructions per request.\n\
- **Chat completions skip axum's per-route layers** (`llm_server::Gateway`, `serve`'s direct path). Profile: `callgrind` at concurrency 64: 45 allocations per request, of which 12 were axum's (each routing layer a boxed service cloned per request and a boxed future: the route, the middleware layer, the handler's route, the request's extensions map), ≈ 5,000 instructions with their `memcpy`. `serve` now hands `POST /v1/chat/completions` to the same middleware and handler called as functions; every other path, and the router mounted in an app, go through axum as before (a test holds 13 exchanges byte for byte equal on both paths). With it, the OpenAI client's whole-answer call is pinned where it is made, so the total timeout's wrappers move a pointer instead of its ≈ 3 KB future. 64,400 → 58,000 instructions and 28 allocations per request; in turns against the one-hop proxy at concurrency 256 (A/B, 8 rounds), the gateway's CPU per request × 0.92 (1.46–1.61× → 1.33–1.48×). The full run right after it (at 9e44bf6) measured 1.15/1.21/1.30/1.40× in turns at concurrency 1/16/64/256.\n\n\
Where the remaining time goes (after; `callgrind` and `strace -c`): the gateway and the one-hop proxy make the same system calls per request (4.2: two reads, two writes, epoll), so at concurrency 64 the difference is user space: 58,000 instructions per request against the proxy's 42,000. The gateway adds the request's JSON parse (≈ 5,900 instructions: `serde_json` allocating every string) and the check of the upstream's answer (≈ 4,600), `memcpy` of futures (≈ 6,500: each `.await` moves a future into its parent's state), the middleware, the balancer, metrics and the router's deadline timer. At concurrency 256 the gateway, busier than the proxy, also spends ≈ 2 µs more per request in the kernel for the same system calls: its writes wake the upstream and the load generator on the other core, which sleep more often while it is the bottleneck. Per streamed answer (230,000 instructions, 23 events; 72,000 for a whole answer) the largest share is now the upstream connection's I/O (≈ 2,200 per chunk, half of it hyper's chunked decoder, which reads each chunk-size line a byte at a time), then making the chunk (≈ 1,000 with its tail known: five allocations, its choice and text, and the `id`, `object` and `model` copied from the head), the SSE decoder (≈ 800), writing it to the client (≈ 600) and dropping it (≈ 500); in the kernel, the wake-ups of the other core that a loopback write makes.\n\n\
Stream finding that motivated the first change (2026-11-30, `strace -c` and `perf record -g` of the gateway relaying 20-chunk streams at concurrency 16): the gateway made one `writev` per chunk (≈ 12 `writev` per `recvfrom`), and 58 % of its CPU was in the kernel sending and waking; nginx reads what the upstream sent at once and writes it in one go. The upstream body reaches us through hyper's client body channel one chunk per task wake-up, so the gateway's response body returned `Pending` after every chunk and hyper flushed each.\n";

/// The gateway's CPU per request (and per streamed answer) as a multiple of each floor's.
fn cpu_ratios(rows: &[Row]) -> String {
    let cpu = |name: &str, c: usize| {
        rows.iter()
            .find(|r| r.name == name && r.concurrency == c)
            .and_then(|r| r.cpu_us_per_request)
    };
    let ratio = |a: f64, b: Option<f64>| match b {
        Some(b) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    };
    let mut out = String::from(
        "\n## CPU per request against the floors (same run)\n\n| gateway | concurrency | µs | ÷ one-hop proxy | ÷ nginx |\n|---|---|---|---|---|\n",
    );
    for row in rows.iter().filter(|r| r.name.starts_with("gateway")) {
        let Some(mine) = row.cpu_us_per_request else {
            continue;
        };
        let (proxy, nginx) = if row.name.contains("stream") {
            (None, cpu("nginx stream", row.concurrency))
        } else {
            (
                cpu("one-hop proxy", row.concurrency),
                cpu("nginx", row.concurrency),
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {mine:.1} | {} | {} |",
            row.name,
            row.concurrency,
            ratio(mine, proxy),
            ratio(mine, nginx)
        );
    }
    out
}

/// Each target of the benchmark issue, against the measurement.
fn targets(results: &Results<'_>) -> String {
    let Results {
        rows,
        memory,
        readiness,
        open,
        turns,
        ..
    } = *results;
    let find = |name: &str, c: usize| rows.iter().find(|r| r.name == name && r.concurrency == c);
    let diff = |a: Option<&Row>, b: Option<&Row>, key: &str| match (a, b) {
        (Some(a), Some(b)) => num(&a.report, key) - num(&b.report, key),
        _ => f64::NAN,
    };
    let gateway1 = find("gateway 1 × round_robin", 1);
    let direct1 = find("direct", 1);
    let best_rps = rows
        .iter()
        .filter(|r| r.name.starts_with("gateway") && !r.name.contains("stream"))
        .map(|r| num(&r.report, "rps"))
        .fold(0.0, f64::max);
    let rps = |n: &str| find(n, 16).map_or(f64::NAN, |r| num(&r.report, "rps"));
    let scale = (rps("gateway 1000 × round_robin") / rps("gateway 1 × round_robin") - 1.0) * 100.0;
    let ttft = diff(
        find("gateway stream", 1),
        find("direct stream", 1),
        "ttfb_p99_us",
    );
    let idle = memory.iter().map(|(_, idle, _)| *idle).max().unwrap_or(0) as f64 / 1024.0;
    let ready = readiness
        .iter()
        .map(|(_, t)| t.as_secs_f64() * 1000.0)
        .fold(0.0, f64::max);
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    let mut out = String::from("\n## Targets\n\n");
    if turns.is_some() {
        let _ = writeln!(
            out,
            "The hot-path goals measured against a floor (CPU per request, added p50 at concurrency 1, chunks/s) are judged on a measurement in turns taken after the rows above: {TURN_ROUNDS} rounds in which the floor and the gateway run one right after the other, 4 s each (which goes first alternates), the median round kept. The rows above are taken minutes apart, and on this VM a figure drifts by 10–30 % from one minute to the next, which alone moves a ratio across its line; their ratios are shown beside each verdict.\n"
        );
    }
    out.push_str("| target | measured | |\n|---|---|---|\n");
    // The hot-path goals (gateway 16 × round_robin against the floors of the same run).
    let ratios: Vec<(usize, f64)> = rows
        .iter()
        .filter(|r| r.name == "gateway 16 × round_robin")
        .filter_map(|r| {
            let proxy = find("one-hop proxy", r.concurrency)?.cpu_us_per_request?;
            Some((r.concurrency, r.cpu_us_per_request? / proxy))
        })
        .collect();
    let listed = |ratios: &[(usize, f64)]| {
        ratios
            .iter()
            .map(|(c, r)| format!("{r:.2}× at {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let worst = |ratios: &[(usize, f64)]| ratios.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    let rounds = |turns: &[Turn], show: fn(Turn) -> String| {
        turns
            .iter()
            .map(|t| show(*t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match turns {
        Some(turns) if !turns.cpu.is_empty() => {
            let medians: Vec<(usize, f64)> = turns
                .cpu
                .iter()
                .filter_map(|(c, cpu)| Some((*c, median_turn(cpu, Turn::ratio)?.ratio())))
                .collect();
            let _ = writeln!(
                out,
                "| CPU per non-stream request ≤ 1.5× the one-hop proxy's at every concurrency | in turns: {} (rows above, minutes apart: {}) | {} |",
                listed(&medians),
                listed(&ratios),
                verdict(worst(&medians) <= 1.5)
            );
        }
        _ if !ratios.is_empty() => {
            let _ = writeln!(
                out,
                "| CPU per non-stream request ≤ 1.5× the one-hop proxy's at every concurrency | {} | {} |",
                listed(&ratios),
                verdict(worst(&ratios) <= 1.5)
            );
        }
        _ => {}
    }
    let gateway_p50 = diff(find("gateway 16 × round_robin", 1), direct1, "p50_us");
    let proxy_p50 = diff(find("one-hop proxy", 1), direct1, "p50_us");
    match turns.and_then(|t| Some((median_turn(&t.p50, Turn::excess)?, &t.p50))) {
        Some((median, all)) => {
            let _ = writeln!(
                out,
                "| added p50 at concurrency 1 ≤ the one-hop proxy's + 30 µs | in turns: gateway p50 − proxy p50 = {:+.0} µs (rounds: {}; rows above: added {gateway_p50:.0} µs against {proxy_p50:.0} µs) | {} |",
                median.excess(),
                rounds(all, |t| format!("{:.0} − {:.0}", t.gateway, t.floor)),
                verdict(median.excess() <= 30.0)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "| added p50 at concurrency 1 ≤ the one-hop proxy's + 30 µs ({:.0} µs) | {gateway_p50:.0} µs | {} |",
                proxy_p50 + 30.0,
                verdict(gateway_p50 <= proxy_p50 + 30.0)
            );
        }
    }
    if let Some(stream) = find("gateway stream", 16) {
        let rps = num(&stream.report, "rps");
        let chunks = num(&stream.report, "chunks_per_s");
        let per_answer = if rps > 0.0 { chunks / rps } else { f64::NAN };
        let cpu = stream.cpu_us_per_request.unwrap_or(f64::NAN);
        let per_chunk = cpu / per_answer;
        let marginal = find("gateway 16 × round_robin", 16)
            .and_then(|r| r.cpu_us_per_request)
            .map_or(f64::NAN, |json| (cpu - json) / per_answer);
        let _ = writeln!(
            out,
            "| CPU per streamed chunk ≤ 5 µs (concurrency 16; whole answer ÷ {per_answer:.0} chunks) | {per_chunk:.1} µs (marginal {marginal:.1} µs) | {} |",
            verdict(per_chunk <= 5.0)
        );
        let in_turns = turns.and_then(|t| Some((median_turn(&t.chunks, Turn::ratio)?, &t.chunks)));
        match (in_turns, find("direct stream", 16)) {
            (Some((median, all)), direct) => {
                let rows_share = direct.map_or(f64::NAN, |d| {
                    chunks / num(&d.report, "chunks_per_s") * 100.0
                });
                let _ = writeln!(
                    out,
                    "| chunks/s through the gateway ≥ 60 % of direct (concurrency 16) | in turns: {:.0} % (rounds, gateway / direct: {}; rows above: {rows_share:.0} %) | {} |",
                    median.ratio() * 100.0,
                    rounds(all, |t| format!("{:.0} / {:.0}", t.gateway, t.floor)),
                    verdict(median.ratio() >= 0.6)
                );
            }
            (None, Some(direct)) => {
                let share = chunks / num(&direct.report, "chunks_per_s") * 100.0;
                let _ = writeln!(
                    out,
                    "| chunks/s through the gateway ≥ 60 % of direct (concurrency 16) | {share:.0} % ({chunks:.0} / {:.0}) | {} |",
                    num(&direct.report, "chunks_per_s"),
                    verdict(share >= 60.0)
                );
            }
            (None, None) => {}
        }
    }
    let p50 = diff(gateway1, direct1, "p50_us");
    let p99 = diff(gateway1, direct1, "p99_us");
    let _ = writeln!(
        out,
        "| added p50 ≤ 40 µs at concurrency 1 | {p50:.0} µs | {} |",
        verdict(p50 <= 40.0)
    );
    let _ = writeln!(
        out,
        "| added p99 ≤ 100 µs at concurrency 1 | {p99:.0} µs | {} |",
        verdict(p99 <= 100.0)
    );
    let _ = writeln!(
        out,
        "| added time to first token p99 ≤ 250 µs | {ttft:.0} µs | {} |",
        verdict(ttft <= 250.0)
    );
    let _ = writeln!(
        out,
        "| ≥ 12,000 requests/s on one gateway core | {best_rps:.0} | {} |",
        verdict(best_rps >= 12_000.0)
    );
    let _ = writeln!(
        out,
        "| 1 → 1,000 deployments changes requests/s by ≤ 5 % (concurrency 16) | {scale:+.1} % | {} |",
        verdict(scale.abs() <= 5.0)
    );
    let _ = writeln!(
        out,
        "| RSS ≤ 15 MiB idle | {idle:.1} MiB | {} |",
        verdict(idle <= 15.0)
    );
    if let Some(open) = open {
        let (peak, before, after) = (mib(open.peak), mib(open.idle), mib(open.after_10s));
        let _ = writeln!(
            out,
            "| RSS ≤ 100 MiB with 1,000 open streams | {peak:.1} MiB | {} |",
            verdict(peak <= 100.0)
        );
        let _ = writeln!(
            out,
            "| RSS 10 s after 1,000 streams within 25 % of idle ({before:.1} MiB) | {after:.1} MiB ({:+.0} %) | {} |",
            (after / before - 1.0) * 100.0,
            verdict(after <= before * 1.25)
        );
    }
    let _ = writeln!(
        out,
        "| start to ready ≤ 100 ms | {ready:.0} ms | {} |",
        verdict(ready <= 100.0)
    );
    out
}

fn to_json(results: &Results<'_>) -> String {
    let Results {
        rows,
        memory,
        readiness,
        open,
        turns,
        pinned,
    } = *results;
    let mut out = format!(
        "{{\"machine\":{:?},\"pinned\":{pinned},\"rows\":[",
        machine()
    );
    for (i, row) in rows.iter().enumerate() {
        let fields: Vec<String> = row
            .report
            .iter()
            .map(|(k, v)| {
                let quoted =
                    v.parse::<f64>().is_err() && v != "true" && v != "false" && v != "null";
                if quoted {
                    format!("{k:?}:{v:?}")
                } else {
                    format!("{k:?}:{v}")
                }
            })
            .collect();
        let _ = write!(
            out,
            "{}{{\"path\":{:?},\"cpu_us_per_request\":{},{}}}",
            if i > 0 { "," } else { "" },
            row.name,
            row.cpu_us_per_request
                .map_or_else(|| "null".to_owned(), |c| format!("{c:.2}")),
            fields.join(",")
        );
    }
    out.push_str("],\"memory_kib\":[");
    for (i, (name, idle, peak)) in memory.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"gateway\":{name:?},\"idle\":{idle},\"after_load\":{peak}}}",
            if i > 0 { "," } else { "" }
        );
    }
    out.push_str("],\"start_to_ready_ms\":[");
    for (i, (n, t)) in readiness.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"deployments\":{n},\"ms\":{:.1}}}",
            if i > 0 { "," } else { "" },
            t.as_secs_f64() * 1000.0
        );
    }
    out.push(']');
    if let Some(o) = open {
        let _ = write!(
            out,
            ",\"open_streams_1000_kib\":{{\"idle\":{},\"peak\":{},\"after_2s\":{},\"after_10s\":{},\"errors\":{}}}",
            o.idle, o.peak, o.after_2s, o.after_10s, o.errors
        );
    }
    if let Some(turns) = turns {
        // A window in which nothing completed has no figure: `null`, not `NaN` (not JSON).
        let figure = |v: f64| {
            if v.is_finite() {
                format!("{v:.2}")
            } else {
                "null".to_owned()
            }
        };
        let list = |turns: &[Turn]| {
            turns
                .iter()
                .map(|t| {
                    format!(
                        "{{\"gateway\":{},\"floor\":{}}}",
                        figure(t.gateway),
                        figure(t.floor)
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push_str(",\"goal_turns\":{\"cpu_us_per_request\":[");
        for (i, (c, cpu)) in turns.cpu.iter().enumerate() {
            let _ = write!(
                out,
                "{}{{\"concurrency\":{c},\"floor\":\"one-hop proxy\",\"rounds\":[{}]}}",
                if i > 0 { "," } else { "" },
                list(cpu)
            );
        }
        let _ = write!(
            out,
            "],\"p50_us_concurrency_1\":{{\"floor\":\"one-hop proxy\",\"rounds\":[{}]}},\"chunks_per_s_concurrency_16\":{{\"floor\":\"direct\",\"rounds\":[{}]}}}}",
            list(&turns.p50),
            list(&turns.chunks)
        );
    }
    out.push('}');
    out
}
