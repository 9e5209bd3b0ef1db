//! Integration tests of llm-qwen against local mock upstreams speaking DashScope's native
//! API (wiremock, and llm-core's scripted raw-TCP server for split, cut and stalled
//! streams) and its OpenAI-compatible mode.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod compat;
mod native;
mod native_wire;

pub(crate) const KEY: &str = "sk-test-PLANTED-SECRET-qwen-0123456789";
