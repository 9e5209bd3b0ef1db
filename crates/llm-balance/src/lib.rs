//! The balancer of LLM Factory: **not implemented yet**; this crate holds no code.
//!
//! It will hold the `Router`, itself a `llm_core::ChatProvider`, that makes many
//! deployments (one provider instance and one credential each) behave as one reliable
//! provider: model groups and aliases, the strategies `round_robin`, `random`,
//! `first_available`, `weighted`, `least_busy` and `latency`, per-deployment health with
//! cooldowns and probes, the one failover loop (pool-bounded rotation, fallback groups,
//! deadline, retry budget) and the stream commit rule.
