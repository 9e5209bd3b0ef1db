//! Benchmark tools for LLM Factory, driven by `cargo xtask bench`:
//!
//! - `bench-upstream`: a fast mock OpenAI upstream (JSON and SSE);
//! - `bench-proxy`: a bare pass-through proxy, the one-hop floor the gateway is judged
//!   against;
//! - `fault-upstream`: fault-injecting OpenAI upstreams for `cargo xtask soak`;
//! - `bench-load`: a closed-loop load generator reporting requests/s, latency percentiles
//!   and, for streams, time to first byte and chunks/s, as JSON.
//!
//! ```
//! assert_eq!(bench::percentile(&mut vec![5, 1, 3, 2, 4], 50.0), 3);
//! ```

/// The `p`-th percentile (nearest rank) of `samples`, sorting them in place; 0 when empty.
#[must_use]
pub fn percentile(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// The value of `--name` in `args`, parsed, or `default`.
///
/// # Errors
///
/// When the value does not parse.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match args.iter().position(|a| a == name) {
        Some(i) => {
            let value = args
                .get(i + 1)
                .ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?;
            value
                .parse()
                .map_err(|e| anyhow::anyhow!("{name} {value}: {e}"))
        }
        None => Ok(default),
    }
}
