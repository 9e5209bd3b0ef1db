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

/// Standard base64 with padding.
#[must_use]
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A Google service-account key file (JSON) for `project` with a fresh RSA key: the
/// credentials of a Vertex AI deployment in tests (the mock upstream accepts its JWTs).
///
/// # Errors
///
/// When no RSA key can be generated.
pub fn service_account_json(project: &str) -> anyhow::Result<String> {
    use aws_lc_rs::{encoding::AsDer, rsa::KeyPair};

    let key = KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("cannot generate an RSA key"))?;
    let der = key
        .as_der()
        .map_err(|_| anyhow::anyhow!("cannot encode the RSA key"))?;
    let body = base64(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(serde_json::json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": "mock-key-1",
        "private_key": pem,
        "client_email": format!("gateway@{project}.iam.gserviceaccount.com"),
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string())
}
