//! Gateway tests over a real socket: reqwest → llm-server → factory → router → provider
//! crates → local mock upstreams.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod anthropic;
mod api;
mod aws_chain;
mod bad_input;
mod connections;
mod faults;
mod hardening;
mod logs;
mod providers;
mod scale_out;
mod secrets;
mod seed;
mod streaming;
mod support;
