//! How long a deployment rests after a failure: one exhaustive table.

use std::time::Duration;

use llm_core::ErrorKind;

/// Cooldown rules, per [`ErrorKind`].
///
/// | kind | cooldown |
/// |---|---|
/// | `RateLimited` | the upstream's `Retry-After`, capped at `max_retry_after`; `rate_limited` without one |
/// | `Authentication`, `Permission`, `QuotaExhausted`, `NotFound` | `credential` (the key or deployment is unusable) |
/// | `UpstreamServer`, `Timeout`, `Connection` | none until `failure_threshold` consecutive failures, then `backoff_base` doubling per further failure up to `backoff_max` |
/// | `Protocol` | `protocol` (short) |
/// | `InvalidRequest`, `ContextLengthExceeded`, `ContentFiltered`, `Configuration`, `AllAttemptsFailed` | none: not the deployment's fault |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownPolicy {
    /// Cooldown after a rate limit without `Retry-After`.
    pub rate_limited: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Cooldown of a rejected or exhausted credential, or a missing deployment.
    pub credential: Duration,
    /// Consecutive transient failures before the deployment cools down.
    pub failure_threshold: u32,
    /// First transient-failure cooldown.
    pub backoff_base: Duration,
    /// Longest transient-failure cooldown.
    pub backoff_max: Duration,
    /// Cooldown after an unparsable answer or a cut stream.
    pub protocol: Duration,
}

impl Default for CooldownPolicy {
    fn default() -> Self {
        Self {
            rate_limited: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
            credential: Duration::from_secs(300),
            failure_threshold: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            protocol: Duration::from_secs(1),
        }
    }
}

impl CooldownPolicy {
    /// Whether a failure of `kind` says something about the deployment's health (and so
    /// counts as a consecutive failure).
    #[must_use]
    pub const fn counts(kind: ErrorKind) -> bool {
        match kind {
            ErrorKind::InvalidRequest
            | ErrorKind::ContextLengthExceeded
            | ErrorKind::ContentFiltered
            | ErrorKind::Configuration
            | ErrorKind::AllAttemptsFailed => false,
            ErrorKind::Authentication
            | ErrorKind::Permission
            | ErrorKind::NotFound
            | ErrorKind::RateLimited
            | ErrorKind::QuotaExhausted
            | ErrorKind::Timeout
            | ErrorKind::Connection
            | ErrorKind::UpstreamServer
            | ErrorKind::Protocol => true,
        }
    }

    /// The cooldown after a failure of `kind`, given the upstream's `retry_after` and the
    /// deployment's consecutive failures including this one.
    #[must_use]
    pub fn for_kind(
        &self,
        kind: ErrorKind,
        retry_after: Option<Duration>,
        consecutive_failures: u32,
    ) -> Option<Duration> {
        match kind {
            ErrorKind::RateLimited => {
                Some(retry_after.map_or(self.rate_limited, |wait| wait.min(self.max_retry_after)))
            }
            ErrorKind::Authentication
            | ErrorKind::Permission
            | ErrorKind::QuotaExhausted
            | ErrorKind::NotFound => Some(self.credential),
            ErrorKind::UpstreamServer | ErrorKind::Timeout | ErrorKind::Connection => {
                let over = consecutive_failures.checked_sub(self.failure_threshold)?;
                let factor = 1u32.checked_shl(over.min(20)).unwrap_or(u32::MAX);
                Some(
                    self.backoff_base
                        .saturating_mul(factor)
                        .min(self.backoff_max),
                )
            }
            ErrorKind::Protocol => Some(self.protocol),
            ErrorKind::InvalidRequest
            | ErrorKind::ContextLengthExceeded
            | ErrorKind::ContentFiltered
            | ErrorKind::Configuration
            | ErrorKind::AllAttemptsFailed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_rule() {
        let policy = CooldownPolicy::default();
        let secs = Duration::from_secs;
        assert_eq!(
            policy.for_kind(ErrorKind::RateLimited, Some(secs(7)), 1),
            Some(secs(7))
        );
        assert_eq!(
            policy.for_kind(ErrorKind::RateLimited, Some(secs(3600)), 1),
            Some(secs(60)),
            "capped"
        );
        assert_eq!(
            policy.for_kind(ErrorKind::RateLimited, None, 1),
            Some(secs(5))
        );
        for kind in [
            ErrorKind::Authentication,
            ErrorKind::Permission,
            ErrorKind::QuotaExhausted,
            ErrorKind::NotFound,
        ] {
            assert_eq!(
                policy.for_kind(kind, Some(secs(1)), 1),
                Some(secs(300)),
                "{kind}"
            );
        }
        for kind in [
            ErrorKind::UpstreamServer,
            ErrorKind::Timeout,
            ErrorKind::Connection,
        ] {
            assert_eq!(policy.for_kind(kind, None, 1), None, "{kind}");
            assert_eq!(policy.for_kind(kind, None, 2), None, "{kind}");
            assert_eq!(policy.for_kind(kind, None, 3), Some(secs(1)), "{kind}");
            assert_eq!(policy.for_kind(kind, None, 4), Some(secs(2)), "{kind}");
            assert_eq!(policy.for_kind(kind, None, 6), Some(secs(8)), "{kind}");
            assert_eq!(
                policy.for_kind(kind, None, 40),
                Some(secs(60)),
                "{kind}: capped"
            );
        }
        assert_eq!(policy.for_kind(ErrorKind::Protocol, None, 1), Some(secs(1)));
        for kind in [
            ErrorKind::InvalidRequest,
            ErrorKind::ContextLengthExceeded,
            ErrorKind::ContentFiltered,
            ErrorKind::Configuration,
            ErrorKind::AllAttemptsFailed,
        ] {
            assert_eq!(policy.for_kind(kind, Some(secs(9)), 9), None, "{kind}");
            assert!(!CooldownPolicy::counts(kind));
        }
    }
}
