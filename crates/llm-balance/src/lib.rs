//! The balancer of LLM Factory: many deployments (one provider instance and one credential
//! each) behaving as one reliable [`ChatProvider`](llm_core::ChatProvider).
//!
//! - **Groups**: a request's `model` resolves to the deployments serving it (or an alias of
//!   them); no model means every deployment.
//! - **Strategies** ([`StrategyKind`]): `round_robin` (smooth weighted), `random`
//!   (weighted), `first_available` (priority), `least_busy`, `latency` (power of two
//!   choices over EWMA), per router or per request ([`RouteOptions`]).
//! - **Health** per deployment, lock-free: cooldowns by [`CooldownPolicy`] (Retry-After
//!   honoured and capped, long rests for bad credentials, exponential backoff after
//!   repeated transient failures), one probe after a cooldown, rpm/tpm limits.
//! - **Failover**: every candidate that is not resting, pass after pass with jittered
//!   backoff, then fallback groups (and larger-context groups on context overflow), within a
//!   deadline and a [retry budget](RetryBudgetConfig); non-retryable errors return at once;
//!   when all rest, wait for the first if that fits the deadline, else fail with the shortest
//!   `Retry-After`.
//! - **Streams** are held until their first content: before it, any failure fails over
//!   invisibly; after it, a failure ends the stream with one error item.
//!
//! ```
//! use std::sync::Arc;
//! use llm_balance::{Deployment, DeploymentConfig, Router, RouterConfig, StrategyKind};
//! use llm_core::{ChatProvider, ChatRequest, ErrorKind, MockConfig, MockFailure, MockProvider};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let dead = MockProvider::new("dead", MockConfig {
//!     failure: Some(MockFailure::always(ErrorKind::Authentication)),
//!     ..MockConfig::default()
//! });
//! let router = Router::builder()
//!     .config(RouterConfig { strategy: StrategyKind::FirstAvailable, ..RouterConfig::default() })
//!     .deployment(Deployment::new(Arc::new(dead), DeploymentConfig::new("key-1", "gpt-4o")))
//!     .deployment(Deployment::new(Arc::new(MockProvider::echo("gpt-4o")), DeploymentConfig::new("key-2", "gpt-4o")))
//!     .build()?;
//!
//! // The first key is rejected; the router fails over to the second.
//! let answer = router.chat(&ChatRequest::new("gpt-4o", vec![llm_core::Message::user("hi")])).await?;
//! assert_eq!(answer.text().as_deref(), Some("hi"));
//! assert_eq!(router.status()[0].last_error, Some("authentication"));
//! # Ok::<_, llm_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Shared state
//!
//! The half of a deployment's health that replicas of a gateway should agree on (cooldown
//! deadline and trips, probe ownership, rpm/tpm window; [`SharedCell`]) sits behind
//! [`SharedState`]: [`LocalState`] (the default) keeps it to this process; `RedisState`
//! (feature `redis`) shares it through Redis, reconciled in the background so that the
//! request path never waits on it. Times are Unix milliseconds. See `docs/scale-out.md`.
//!
//! # Features
//!
//! - `redis`: `RedisState` and `RedisStateConfig` (redis-rs).

mod budget;
mod cooldown;
mod deployment;
mod group;
mod health;
#[cfg(feature = "redis")]
mod redis_state;
mod router;
mod shared;
mod status;
mod strategy;
mod stream;
mod window;

pub use budget::RetryBudgetConfig;
pub use cooldown::CooldownPolicy;
pub use deployment::{Deployment, DeploymentConfig, DeploymentTimeouts};
pub use group::Group;
#[cfg(feature = "redis")]
pub use redis_state::{RedisState, RedisStateConfig, mask_redis_url, redis_url_password};
pub use router::{RouteOptions, Router, RouterBuilder, RouterConfig};
pub use shared::{LocalState, SharedCell, SharedDeployment, SharedState, SharedStateStatus};
pub use status::{DeploymentStatus, HealthState};
pub use strategy::{
    FirstAvailable, Latency, LeastBusy, RandomSource, RoundRobin, SplitMix64, Strategy,
    StrategyKind, WeightedRandom,
};

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
