//! Fault-injecting OpenAI upstreams for the soak run: one per `--ports` entry, each answering
//! as `u<i>` with key `<key-prefix><i>`, and faulting `--percent` % of requests at random
//! with a mix of every fault kind (rate limits, 5xx, resets, timeouts, stalls, cuts,
//! malformed and in-band error frames, keep-alive-only streams).
//!
//! ```text
//! fault-upstream --ports 9001,9002,9003 --percent 10 --key-prefix sk-soak- [--seed 7]
//! ```

use std::{net::SocketAddr, time::Duration};

use llm_core::testing::{Fault, FaultServer, Plan, RetryAfter};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let ports: String = bench::arg(&args, "--ports", String::new())?;
    let percent: u8 = bench::arg(&args, "--percent", 10)?;
    let seed: u64 = bench::arg(&args, "--seed", 7)?;
    let key_prefix: String = bench::arg(&args, "--key-prefix", "sk-soak-".to_owned())?;
    let faults = vec![
        Fault::RateLimited(RetryAfter::Millis(300)),
        Fault::Status(500),
        Fault::Status(503),
        Fault::Status(529),
        Fault::ResetBeforeHeaders,
        Fault::TimeoutBeforeHeaders,
        Fault::StallAfter(0),
        Fault::StallAfter(2),
        Fault::CutAfter(0),
        Fault::CutAfter(2),
        Fault::MalformedAfter(1),
        Fault::InBandErrorAfter(2),
        Fault::ErrorEvent,
        Fault::KeepAliveOnly,
        Fault::SlowDrip(Duration::from_millis(5)),
    ];
    let mut servers = Vec::new();
    for (i, port) in ports.split(',').filter(|p| !p.is_empty()).enumerate() {
        let addr = SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>()?));
        let server =
            FaultServer::start_at(addr, &format!("u{i}"), &format!("{key_prefix}{i}")).await?;
        server
            .set(Plan::Random {
                percent,
                seed: seed + i as u64,
                faults: faults.clone(),
            })
            .await;
        servers.push(server);
    }
    anyhow::ensure!(!servers.is_empty(), "--ports lists no port");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
