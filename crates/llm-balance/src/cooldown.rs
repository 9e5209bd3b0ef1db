//! How long a deployment rests after a failure: one exhaustive table.

use std::time::Duration;

use llm_core::ErrorKind;

/// Cooldown rules, per [`ErrorKind`].
///
/// | kind | cooldown |
/// |---|---|
/// | `RateLimited` | at once: the upstream's `Retry-After`, capped at `max_retry_after`; `rate_limited` without one |
/// | `Authentication`, `Permission`, `QuotaExhausted`, `NotFound` | at once: `credential` (the key or deployment is unusable) |
/// | `UpstreamServer`, `Timeout`, `Connection`, `Protocol` | transient: none until the deployment *trips* (see below); then `backoff_base`, doubling for each trip whose probe failed, up to `backoff_max` |
/// | `InvalidRequest`, `ContextLengthExceeded`, `ContentFiltered`, `Configuration`, `AllAttemptsFailed` | none: not the deployment's fault |
///
/// A deployment trips on a transient failure when its last `failure_threshold` outcomes all
/// failed **and** at least `failure_percent` % of its last [`CooldownPolicy::RECENT`]
/// outcomes failed. The second condition keeps a flaky but mostly working deployment (one
/// failing 30 % of calls at random) in rotation, where consecutive failures alone would rest
/// it every few dozen calls; a deployment that goes dead trips once half of its recent
/// outcomes are failures. Failures reported while it already rests do not extend the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownPolicy {
    /// Cooldown after a rate limit without `Retry-After`.
    pub rate_limited: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Cooldown of a rejected or exhausted credential, or a missing deployment.
    pub credential: Duration,
    /// Consecutive transient failures before the deployment may trip.
    pub failure_threshold: u32,
    /// The share of failures, in percent, among the recent outcomes at or above which the
    /// deployment may trip.
    pub failure_percent: u8,
    /// The first transient-failure cooldown.
    pub backoff_base: Duration,
    /// The longest transient-failure cooldown.
    pub backoff_max: Duration,
}

impl Default for CooldownPolicy {
    fn default() -> Self {
        Self {
            rate_limited: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
            credential: Duration::from_secs(300),
            failure_threshold: 3,
            failure_percent: 60,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl CooldownPolicy {
    /// How many recent outcomes (successes and counted failures) the failure rate is taken
    /// over.
    pub const RECENT: u32 = 32;

    /// Whether a failure of `kind` says something about the deployment's health (and so
    /// counts as a failure in its recent outcomes).
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

    /// Whether `kind` is a transient failure, which rests a deployment only once it trips.
    #[must_use]
    pub const fn is_transient(kind: ErrorKind) -> bool {
        matches!(
            kind,
            ErrorKind::UpstreamServer
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::Protocol
        )
    }

    /// The rest that a failure of `kind` imposes at once, given the upstream's
    /// `retry_after`: rate limits and unusable credentials. `None` for transient kinds (see
    /// [`CooldownPolicy::trips`]) and for kinds that are not the deployment's fault.
    #[must_use]
    pub fn immediate(&self, kind: ErrorKind, retry_after: Option<Duration>) -> Option<Duration> {
        match kind {
            ErrorKind::RateLimited => {
                Some(retry_after.map_or(self.rate_limited, |wait| wait.min(self.max_retry_after)))
            }
            ErrorKind::Authentication
            | ErrorKind::Permission
            | ErrorKind::QuotaExhausted
            | ErrorKind::NotFound => Some(self.credential),
            ErrorKind::UpstreamServer
            | ErrorKind::Timeout
            | ErrorKind::Connection
            | ErrorKind::Protocol
            | ErrorKind::InvalidRequest
            | ErrorKind::ContextLengthExceeded
            | ErrorKind::ContentFiltered
            | ErrorKind::Configuration
            | ErrorKind::AllAttemptsFailed => None,
        }
    }

    /// Whether a deployment trips, given its consecutive failures and its failures among
    /// `recent` recent outcomes (this failure included in both).
    ///
    /// The share is taken over at least [`Self::MIN_OUTCOMES`] outcomes (missing ones count
    /// as successes): a fresh deployment whose first three calls happen to fail (one in 37
    /// for a deployment failing 30 % of calls) is not rested for it; one failing every call
    /// rests after six.
    #[must_use]
    pub fn trips(&self, consecutive: u32, recent_failures: u32, recent: u32) -> bool {
        consecutive >= self.failure_threshold.max(1)
            && u64::from(recent_failures) * 100
                >= u64::from(self.failure_percent) * u64::from(recent.max(Self::MIN_OUTCOMES))
    }

    /// The fewest outcomes the failure share is judged over.
    pub const MIN_OUTCOMES: u32 = 10;

    /// The rest after the `trip`-th trip in a row (1 for the first; a failed probe adds one).
    #[must_use]
    pub fn transient(&self, trip: u32) -> Duration {
        let factor = 1u32
            .checked_shl(trip.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
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
            policy.immediate(ErrorKind::RateLimited, Some(secs(7))),
            Some(secs(7))
        );
        assert_eq!(
            policy.immediate(ErrorKind::RateLimited, Some(secs(3600))),
            Some(secs(60)),
            "capped"
        );
        assert_eq!(
            policy.immediate(ErrorKind::RateLimited, None),
            Some(secs(5))
        );
        for kind in [
            ErrorKind::Authentication,
            ErrorKind::Permission,
            ErrorKind::QuotaExhausted,
            ErrorKind::NotFound,
        ] {
            assert_eq!(
                policy.immediate(kind, Some(secs(1))),
                Some(secs(300)),
                "{kind}"
            );
            assert!(!CooldownPolicy::is_transient(kind));
        }
        for kind in [
            ErrorKind::UpstreamServer,
            ErrorKind::Timeout,
            ErrorKind::Connection,
            ErrorKind::Protocol,
        ] {
            assert_eq!(policy.immediate(kind, Some(secs(9))), None, "{kind}");
            assert!(CooldownPolicy::is_transient(kind) && CooldownPolicy::counts(kind));
        }
        for kind in [
            ErrorKind::InvalidRequest,
            ErrorKind::ContextLengthExceeded,
            ErrorKind::ContentFiltered,
            ErrorKind::Configuration,
            ErrorKind::AllAttemptsFailed,
        ] {
            assert_eq!(policy.immediate(kind, Some(secs(9))), None, "{kind}");
            assert!(!CooldownPolicy::counts(kind) && !CooldownPolicy::is_transient(kind));
        }
    }

    #[test]
    fn tripping_needs_consecutive_failures_and_a_high_recent_rate() {
        let policy = CooldownPolicy::default();
        assert!(!policy.trips(2, 2, 2), "two failures are not a pattern");
        assert!(
            !policy.trips(3, 3, 3),
            "a fresh deployment's first three failures may be bad luck"
        );
        assert!(
            policy.trips(6, 6, 6),
            "a fresh deployment failing every call rests after six"
        );
        assert!(
            !policy.trips(3, 9, 32),
            "a 30 % flaky deployment stays in rotation"
        );
        assert!(!policy.trips(3, 16, 32), "half is not enough");
        assert!(
            policy.trips(3, 20, 32),
            "60 % of the recent outcomes failed"
        );
    }

    #[test]
    fn each_trip_in_a_row_doubles_the_rest_up_to_the_cap() {
        let policy = CooldownPolicy::default();
        let rests: Vec<u64> = [1, 2, 3, 4, 40]
            .iter()
            .map(|trip| policy.transient(*trip).as_secs())
            .collect();
        assert_eq!(rests, [1, 2, 4, 8, 60]);
    }
}
