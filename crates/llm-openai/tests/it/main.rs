//! Integration tests of llm-openai against local mock upstreams (wiremock, and a scripted
//! raw-TCP server for split, cut and stalled streams). One binary keeps link time down.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod azure;
mod chat;
mod conformance;
mod errors;
mod stream;
mod support;
