//! A deployment: one provider instance with one credential, and its settings.

use std::{fmt, sync::Arc, time::Duration};

use llm_core::ChatProvider;

use crate::health::Health;

/// Per-deployment timeouts, enforced by the router whatever the provider does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeploymentTimeouts {
    /// From the call to the first content of a stream.
    pub first_token: Duration,
    /// Between two chunks of a committed stream.
    pub idle: Duration,
    /// A whole non-streaming call.
    pub total: Duration,
}

impl Default for DeploymentTimeouts {
    fn default() -> Self {
        Self {
            first_token: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// How a deployment takes part in balancing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentConfig {
    /// A unique label for logs, status and errors, such as `openai/gpt-4o/sk-…abcd`. Never
    /// the raw key.
    pub id: String,
    /// The model group it serves: the name requests use in `model`.
    pub model: String,
    /// The masked credential (for example from [`llm_core::mask_key`]), shown in status.
    pub key_hint: Option<String>,
    /// Where it sends requests (base URL, region or project; never a credential), shown
    /// in status so each key can be told apart by account.
    pub endpoint: Option<String>,
    /// Share of traffic relative to the group's other deployments (at least 1).
    pub weight: u32,
    /// For `first_available`: lower numbers are tried first.
    pub priority: u32,
    /// Requests per minute this deployment may take.
    pub rpm: Option<u64>,
    /// Tokens per minute this deployment may use (counted from reported usage).
    pub tpm: Option<u64>,
    /// Timeouts.
    pub timeouts: DeploymentTimeouts,
    /// Its identity in state shared between replicas: the same on every replica that
    /// serves this deployment, different for any other (another key, account, endpoint or
    /// model). `None` uses `id`. The factory derives it from provider, endpoint, model and
    /// a keyed hash of the credential; never put a raw key here.
    pub shared_key: Option<String>,
}

impl DeploymentConfig {
    /// A deployment labelled `id` serving the group `model`, with weight 1 and priority 0.
    #[must_use]
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            key_hint: None,
            endpoint: None,
            weight: 1,
            priority: 0,
            rpm: None,
            tpm: None,
            timeouts: DeploymentTimeouts::default(),
            shared_key: None,
        }
    }
}

/// A provider instance taking part in balancing, with its live health.
pub struct Deployment {
    pub(crate) config: DeploymentConfig,
    pub(crate) provider: Arc<dyn ChatProvider>,
    pub(crate) health: Health,
}

impl Deployment {
    /// A deployment of `provider`.
    #[must_use]
    pub fn new(provider: Arc<dyn ChatProvider>, config: DeploymentConfig) -> Self {
        Self {
            config,
            provider,
            health: Health::default(),
        }
    }

    /// Its settings.
    #[must_use]
    pub fn config(&self) -> &DeploymentConfig {
        &self.config
    }

    /// Its label.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Its provider.
    #[must_use]
    pub fn provider(&self) -> &Arc<dyn ChatProvider> {
        &self.provider
    }

    /// Requests in flight right now.
    #[must_use]
    pub fn in_flight(&self) -> u32 {
        self.health.in_flight()
    }

    /// Its latency EWMA in microseconds (0 before the first answer).
    #[must_use]
    pub fn latency_ewma_us(&self) -> f64 {
        self.health.ewma_us()
    }

    /// Its identity in shared state: [`DeploymentConfig::shared_key`], else its id.
    #[must_use]
    pub fn shared_key(&self) -> &str {
        self.config.shared_key.as_deref().unwrap_or(&self.config.id)
    }

    pub(crate) fn weight(&self) -> u64 {
        u64::from(self.config.weight.max(1))
    }
}

impl fmt::Debug for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("config", &self.config)
            .field("provider", &self.provider.name())
            .field("health", &self.health)
            .finish()
    }
}
