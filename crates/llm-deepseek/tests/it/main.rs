//! Integration tests of llm-deepseek against local mock upstreams (wiremock, and the
//! scripted raw-TCP server of llm-core for split, cut and stalled streams).

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod conformance;
mod wire;

pub(crate) const KEY: &str = "sk-test-PLANTED-SECRET-deepseek-0123456789";
