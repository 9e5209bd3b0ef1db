//! Router overhead: one request through the router (resolve, strategy order, health check,
//! permit, bookkeeping) against a bare call to the same instant mock.
//!
//! ```text
//! cargo bench -p llm-balance --bench pick
//! ```

#![expect(
    clippy::panic,
    reason = "a benchmark that cannot set up should stop loudly"
)]

use std::sync::Arc;

use llm_balance::{Deployment, DeploymentConfig, RouteOptions, Router, StrategyKind};
use llm_core::{ChatProvider, ChatRequest, MockProvider};

fn main() {
    divan::main();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

fn router(size: usize) -> Router {
    Router::builder()
        .deployments((0..size).map(|i| {
            Deployment::new(
                Arc::new(MockProvider::echo("gpt-4o")),
                DeploymentConfig::new(format!("d{i}"), "gpt-4o"),
            )
        }))
        .build()
        .unwrap_or_else(|e| panic!("router: {e}"))
}

#[divan::bench]
fn bare_mock(bencher: divan::Bencher<'_, '_>) {
    let rt = runtime();
    let mock = MockProvider::echo("gpt-4o");
    let request = ChatRequest::new("gpt-4o", vec![llm_core::Message::user("hi")]);
    bencher.bench_local(|| rt.block_on(mock.chat(&request)));
}

#[divan::bench(args = [1, 16, 1000])]
fn routed(bencher: divan::Bencher<'_, '_>, size: usize) {
    let rt = runtime();
    let router = router(size);
    let request = ChatRequest::new("gpt-4o", vec![llm_core::Message::user("hi")]);
    bencher.bench_local(|| rt.block_on(router.chat(&request)));
}

#[divan::bench(args = ["round_robin", "random", "first_available", "least_busy", "latency"])]
fn strategy_16(bencher: divan::Bencher<'_, '_>, name: &str) {
    let rt = runtime();
    let router = router(16);
    let options = RouteOptions::strategy(name.parse::<StrategyKind>().unwrap_or_default());
    let request = ChatRequest::new("gpt-4o", vec![llm_core::Message::user("hi")]);
    bencher.bench_local(|| rt.block_on(router.chat_with(&request, &options)));
}
