//! The status snapshot behind `/v1/providers/status`.

use serde::Serialize;

use crate::{Deployment, health::Clock};

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HealthState {
    /// Taking traffic.
    Healthy,
    /// Resting after failures.
    CoolingDown,
    /// Its cooldown ended; the next request will probe it.
    AwaitingProbe,
    /// A probe is in flight.
    Probing,
}

/// One deployment's health, as the balancer sees it. Keys appear only masked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DeploymentStatus {
    /// The deployment's label.
    pub id: String,
    /// The provider's name.
    pub provider: String,
    /// The model group it serves.
    pub model: String,
    /// The masked credential.
    pub key: Option<String>,
    /// Where it sends requests: base URL, region or project (never a credential).
    pub endpoint: Option<String>,
    /// Where it stands.
    pub state: HealthState,
    /// Milliseconds of cooldown left.
    pub cooldown_remaining_ms: u64,
    /// Requests in flight.
    pub in_flight: u32,
    /// Successful attempts.
    pub successes: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Cooldowns in a row (a failed probe adds one); 0 once a probe succeeds.
    pub trips: u32,
    /// Failures among its recent outcomes, in percent (0 before the first outcome).
    pub recent_failure_percent: u8,
    /// Latency EWMA in milliseconds (time to first content for streams).
    pub latency_ewma_ms: Option<f64>,
    /// The kind of the last failure.
    pub last_error: Option<&'static str>,
    /// Its weight.
    pub weight: u32,
    /// Its priority.
    pub priority: u32,
}

impl DeploymentStatus {
    pub(crate) fn of(deployment: &Deployment, clock: Clock) -> Self {
        let health = &deployment.health;
        let now = clock.now_ms();
        let until = health.cooldown_until();
        let state = if until == 0 {
            HealthState::Healthy
        } else if now < until {
            HealthState::CoolingDown
        } else if health.is_probing(now) {
            HealthState::Probing
        } else {
            HealthState::AwaitingProbe
        };
        let ewma = health.ewma_us();
        Self {
            id: deployment.config.id.clone(),
            provider: deployment.provider.name().to_owned(),
            model: deployment.config.model.clone(),
            key: deployment.config.key_hint.clone(),
            endpoint: deployment.config.endpoint.clone(),
            state,
            cooldown_remaining_ms: until.saturating_sub(now),
            in_flight: health.in_flight(),
            successes: health.successes(),
            failures: health.failures(),
            consecutive_failures: health.consecutive_failures(),
            trips: health.trips(),
            recent_failure_percent: health.recent_failure_percent(),
            latency_ewma_ms: (ewma > 0.0).then_some(ewma / 1000.0),
            last_error: health.last_error().map(llm_core::ErrorKind::as_str),
            weight: deployment.config.weight,
            priority: deployment.config.priority,
        }
    }
}
