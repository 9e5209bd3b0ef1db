//! Balancer tests: deterministic, on `MockProvider`s, under paused tokio time (no sleeps).

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod concurrency;
mod failover;
mod health;
mod strategies;
mod streams;
mod support;
