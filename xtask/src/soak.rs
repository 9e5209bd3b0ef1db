//! `cargo xtask soak [--minutes N] [--concurrency C] [--percent P]`: the release gateway
//! under N minutes (default 10) of mixed load — JSON and streams, every tenth stream
//! dropped by its client after the first bytes — against three fault-injecting upstreams
//! (`fault-upstream`, P % of requests faulted with every fault kind; default 10). Samples
//! the gateway's RSS, open file descriptors and live tokio tasks (from `/metrics`) after
//! each 30-second segment, and checks that fds and tasks return to their idle baseline and
//! RSS stays flat. Writes `target/soak/report.md` and the soak section of
//! `docs/reliability.md`; fails when a check fails. Not part of CI.

use std::{
    fmt::Write as _,
    fs,
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use crate::{
    bench::{free_port, load_with, pinned, rss_kib, serde_json_lite::num, spawn, start},
    project_root,
};

/// One sample of the gateway's resources.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: f64,
    rss_kib: u64,
    fds: usize,
    tasks: u64,
    requests: u64,
    errors: u64,
}

const KEY_PREFIX: &str = "sk-soak-PLANTED-";
const SEGMENT_S: f64 = 30.0;

pub(crate) fn main(args: &[String]) -> Result<(), String> {
    let value = |name: &str, default: f64| -> Result<f64, String> {
        match args.iter().position(|a| a == name) {
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number")),
            None => Ok(default),
        }
    };
    let minutes = value("--minutes", 10.0)?;
    let concurrency = value("--concurrency", 32.0)? as usize;
    let percent = value("--percent", 10.0)? as u8;
    let root = project_root();
    crate::bench::build_release_tools()?;
    let bin = root.join("target/release");
    let dir = root.join("target/soak");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let _upstreams = spawn(
        &bin.join("fault-upstream"),
        &[
            "--ports".to_owned(),
            list.join(","),
            "--percent".to_owned(),
            percent.to_string(),
            "--key-prefix".to_owned(),
            KEY_PREFIX.to_owned(),
        ],
        1,
        &[],
        &ports,
    )?;
    let config = dir.join("config.yaml");
    let mut yaml = String::from("providers:\n");
    for (i, port) in ports.iter().enumerate() {
        let _ = write!(
            yaml,
            "  - provider: openai\n    model_name: gpt-4o\n    api_key: {KEY_PREFIX}{i}\n    api_base: http://127.0.0.1:{port}/v1\n    timeout: 2\n    first_token_timeout: 1\n    idle_timeout: 1\n"
        );
    }
    yaml.push_str("router:\n  cooldown:\n    rate_limited: 0.5\n    backoff_base: 0.5\nserver:\n  max_concurrency: 4096\n");
    fs::write(&config, yaml).map_err(|e| e.to_string())?;

    let port = free_port()?;
    let log_path = dir.join("gateway.log");
    let log = fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut command = pinned(&bin.join("llm-server"), 0);
    command
        .args([
            "--config",
            &config.display().to_string(),
            "--port",
            &port.to_string(),
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(log));
    let gateway = start(command, &[port])?;
    thread::sleep(Duration::from_secs(1));
    let pid = gateway.pid();
    let started = Instant::now();
    let sample = |requests: u64, errors: u64| -> Result<Sample, String> {
        Ok(Sample {
            at_s: started.elapsed().as_secs_f64(),
            rss_kib: rss_kib(pid),
            fds: open_fds(pid)?,
            tasks: alive_tasks(port)?,
            requests,
            errors,
        })
    };
    let idle = sample(0, 0)?;
    println!("idle: {idle:?}");
    let mut samples = Vec::new();
    let (mut requests, mut errors, mut cancelled) = (0u64, 0u64, 0u64);
    let segments = ((minutes * 60.0) / SEGMENT_S).ceil().max(1.0) as usize;
    for segment in 0..segments {
        let report = load_with(
            &bin,
            port,
            concurrency,
            SEGMENT_S,
            &["--mixed", "--cancel-every", "10"],
        )?;
        requests += num(&report, "requests") as u64;
        errors += num(&report, "errors") as u64;
        cancelled += num(&report, "cancelled") as u64;
        let now = sample(requests, errors)?;
        println!("segment {}/{segments}: {now:?}", segment + 1);
        samples.push(now);
    }
    // Let every timeout and cooldown run out, then read the idle figures again.
    thread::sleep(Duration::from_secs(5));
    let end = sample(requests, errors)?;
    println!("end: {end:?}");
    let leaked = fs::read_to_string(&log_path)
        .map_err(|e| e.to_string())?
        .lines()
        .filter(|l| l.contains("PLANTED"))
        .count();
    drop(gateway);

    let first = samples.first().copied().unwrap_or(idle);
    let checks = [
        (
            "open fds back to the idle baseline (±2)",
            end.fds <= idle.fds + 2,
        ),
        (
            "tokio tasks back to the idle baseline",
            end.tasks <= idle.tasks,
        ),
        (
            "RSS flat: the end within 10 % (or 4 MiB) of the first loaded sample",
            end.rss_kib <= first.rss_kib + (first.rss_kib / 10).max(4096),
        ),
        ("no key in the gateway's log", leaked == 0),
        ("requests were served", requests > 0),
    ];
    let report = markdown(
        minutes,
        concurrency,
        percent,
        &idle,
        &samples,
        &end,
        (requests, errors, cancelled),
        &checks,
    );
    fs::write(dir.join("report.md"), &report).map_err(|e| e.to_string())?;
    update_doc(&root.join("docs/reliability.md"), &report)?;
    println!("{report}");
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| *name)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("soak checks failed: {}", failed.join("; ")))
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one report from one run's figures"
)]
fn markdown(
    minutes: f64,
    concurrency: usize,
    percent: u8,
    idle: &Sample,
    samples: &[Sample],
    end: &Sample,
    (requests, errors, cancelled): (u64, u64, u64),
    checks: &[(&str, bool)],
) -> String {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Run of `cargo xtask soak --minutes {minutes}` on {} (gateway pinned to one core): {concurrency} \
         closed-loop clients, JSON and streams alternating, every tenth stream dropped by its \
         client after the first bytes; three upstreams each faulting {percent} % of requests at \
         random with every fault kind.\n",
        crate::bench::machine()
    );
    let _ = writeln!(md, "| figure | value |\n|---|---|");
    let _ = writeln!(md, "| duration | {:.1} min |", end.at_s / 60.0);
    let _ = writeln!(md, "| requests answered | {requests} |");
    let _ = writeln!(
        md,
        "| client-visible failures | {errors} ({:.3} %; committed streams cut by a fault, and requests whose every attempt failed) |",
        errors as f64 * 100.0 / (requests + errors).max(1) as f64
    );
    let _ = writeln!(md, "| streams dropped by the client | {cancelled} |");
    let _ = writeln!(
        md,
        "| RSS idle → first loaded sample → end | {:.1} → {:.1} → {:.1} MiB |",
        mib(idle.rss_kib),
        mib(samples.first().map_or(0, |s| s.rss_kib)),
        mib(end.rss_kib)
    );
    let _ = writeln!(md, "| open fds idle → end | {} → {} |", idle.fds, end.fds);
    let _ = writeln!(
        md,
        "| tokio tasks idle → end | {} → {} |",
        idle.tasks, end.tasks
    );
    let _ = writeln!(md, "\nPer 30-second segment (sampled right after it):\n");
    let _ = writeln!(
        md,
        "| at | RSS MiB | fds | tasks | requests so far | failures so far |\n|---|---|---|---|---|---|"
    );
    for s in samples {
        let _ = writeln!(
            md,
            "| {:.0} s | {:.1} | {} | {} | {} | {} |",
            s.at_s,
            mib(s.rss_kib),
            s.fds,
            s.tasks,
            s.requests,
            s.errors
        );
    }
    let _ = writeln!(md, "\nChecks:\n");
    for (name, ok) in checks {
        let _ = writeln!(md, "- {} {name}", if *ok { "✅" } else { "❌" });
    }
    md
}

const BEGIN: &str = "<!-- soak:begin (written by `cargo xtask soak`) -->";
const END: &str = "<!-- soak:end -->";

/// Replace the soak section of the reliability doc.
fn update_doc(path: &Path, report: &str) -> Result<(), String> {
    let doc = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err(format!("{} has no soak markers", path.display()));
    };
    let updated = format!("{}{BEGIN}\n{report}{}", &doc[..begin], &doc[end..]);
    fs::write(path, updated).map_err(|e| format!("{}: {e}", path.display()))
}

fn open_fds(pid: u32) -> Result<usize, String> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .map_err(|e| format!("cannot list the gateway's fds: {e}"))
}

/// `llm_gateway_tokio_alive_tasks` from the gateway's `/metrics`.
fn alive_tasks(port: u16) -> Result<u64, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("metrics: {e}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nhost: soak\r\n\r\n")
        .map_err(|e| format!("metrics: {e}"))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| format!("metrics: {e}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("llm_gateway_tokio_alive_tasks "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .ok_or_else(|| "no llm_gateway_tokio_alive_tasks in /metrics".to_owned())
}
