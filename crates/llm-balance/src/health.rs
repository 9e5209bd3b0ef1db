//! Per-deployment health: atomics only, read at pick time, written after each attempt. The
//! local half lives here; the half replicas share (cooldown, trips, probe, rpm/tpm window)
//! in the deployment's [`SharedCell`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use llm_core::{Error, ErrorKind};
use tokio::time::Instant;

use crate::{CooldownPolicy, Deployment, shared::SharedCell};

/// Unix milliseconds (the same scale in every replica), advanced on tokio's clock from the
/// router's start (so tests can pause time). Never 0, so that 0 can mean "never".
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
    unix_base: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let unix_base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX / 4)
            })
            .max(1);
        Self {
            base: Instant::now(),
            unix_base,
        }
    }

    pub(crate) fn now_ms(self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis())
            .unwrap_or(u64::MAX / 4)
            .saturating_add(self.unix_base)
    }

    pub(crate) fn instant(self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms.saturating_sub(self.unix_base))
    }
}

/// The health of one deployment.
#[derive(Debug)]
pub(crate) struct Health {
    /// The shared half: cooldown, trips, probe, rpm/tpm window.
    pub(crate) cell: Arc<SharedCell>,
    consecutive_failures: AtomicU32,
    /// The last outcomes (at most [`CooldownPolicy::RECENT`]), newest in bit 0, 1 for a
    /// counted failure; a marker bit sits just above the oldest, so its position is how
    /// many outcomes are recorded. Starts as 1 (the marker alone: none yet).
    recent: AtomicU64,
    in_flight: AtomicU32,
    /// Latency EWMA in microseconds, as f64 bits; 0 before the first sample.
    ewma_us: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    /// 0 for none, else the index of the last error's kind in `ErrorKind::ALL`, plus one.
    last_error: AtomicU8,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            cell: Arc::default(),
            consecutive_failures: AtomicU32::new(0),
            recent: AtomicU64::new(1),
            in_flight: AtomicU32::new(0),
            ewma_us: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: AtomicU8::new(0),
        }
    }
}

/// Why a deployment cannot take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Cooling down until this clock reading.
    Cooling(u64),
    /// Its probe is in flight.
    Probing,
    /// Over its rpm or tpm limit until this clock reading.
    Limited(u64),
    /// Its share of the rpm quota is on its way from the shared store; look again at this
    /// clock reading (a round trip away).
    Leasing(u64),
}

/// The weight of the EWMA's newest sample.
const EWMA_ALPHA: f64 = 0.3;

impl Health {
    /// Reserve the deployment for one attempt, or say why not.
    pub(crate) fn try_acquire(
        &self,
        now: u64,
        rpm: Option<u64>,
        tpm: Option<u64>,
    ) -> Result<bool, Unavailable> {
        let cell = &*self.cell;
        let until = cell.cooldown_until.load(Ordering::Acquire);
        let probe = if until == 0 {
            false
        } else if now < until {
            return Err(Unavailable::Cooling(until));
        } else if cell.probe_elsewhere_until.load(Ordering::Acquire) > now {
            // Another replica probes it.
            return Err(Unavailable::Probing);
        } else if cell
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            cell.wake();
            true
        } else {
            return Err(Unavailable::Probing);
        };
        if let Err(unavailable) = cell.admit(now, rpm, tpm) {
            if probe {
                cell.probing.store(false, Ordering::Release);
            }
            return Err(unavailable);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(probe)
    }

    pub(crate) fn add_tokens(&self, tokens: u64) {
        self.cell.add_tokens(tokens);
    }

    fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The deployment answered (a stream's first content, or a whole answer): it is healthy.
    pub(crate) fn mark_responsive(&self, latency: Duration, probe: bool, now: u64) {
        self.consecutive_failures.store(0, Ordering::Release);
        self.push_outcome(false);
        if probe {
            let cell = &*self.cell;
            cell.trips.store(0, Ordering::Release);
            cell.cooldown_until.store(0, Ordering::Release);
            cell.cool_kind.store(0, Ordering::Release);
            cell.recovered_at.fetch_max(now, Ordering::AcqRel);
            cell.probing.store(false, Ordering::Release);
            cell.wake();
        }
        let sample = latency.as_secs_f64() * 1e6;
        let _ = self
            .ewma_us
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                let old = f64::from_bits(bits);
                let new = if bits == 0 {
                    sample
                } else {
                    old + EWMA_ALPHA * (sample - old)
                };
                Some(new.max(1.0).to_bits())
            });
    }

    pub(crate) fn record_failure(
        &self,
        error: &Error,
        policy: &CooldownPolicy,
        now: u64,
        probe: bool,
    ) {
        let kind = error.kind();
        self.failures.fetch_add(1, Ordering::Relaxed);
        let index = ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        let kind_code = u8::try_from(index + 1).unwrap_or(u8::MAX);
        self.last_error.store(kind_code, Ordering::Release);
        let cell = &*self.cell;
        let cooled_before = cell.cooldown_until.load(Ordering::Acquire);
        if CooldownPolicy::counts(kind) {
            let consecutive = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
            let (recent_failures, recent) = self.push_outcome(true);
            let millis = |rest: Duration| u64::try_from(rest.as_millis()).unwrap_or(u64::MAX / 2);
            if let Some(rest) = policy.immediate(kind, error.retry_after()) {
                // A re-cool keeps the later deadline.
                cell.cooldown_until
                    .fetch_max(now.saturating_add(millis(rest)).max(1), Ordering::AcqRel);
            } else if probe {
                // The probe failed: rest again, longer.
                let trip = cell.trips.fetch_add(1, Ordering::AcqRel).saturating_add(1);
                let until = now.saturating_add(millis(policy.transient(trip))).max(1);
                cell.cooldown_until.fetch_max(until, Ordering::AcqRel);
            } else if policy.trips(consecutive, recent_failures, recent) {
                // Only the failure that finds the deployment in rotation trips it; failures
                // of calls that were already in flight do not extend the rest.
                let trip = cell.trips.load(Ordering::Acquire).saturating_add(1);
                let until = now.saturating_add(millis(policy.transient(trip))).max(1);
                if cell
                    .cooldown_until
                    .compare_exchange(0, until, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    cell.trips.store(trip, Ordering::Release);
                }
            }
        }
        if cell.cooldown_until.load(Ordering::Acquire) != cooled_before {
            // A cooldown started or grew: the other replicas should learn it now.
            cell.cool_kind.store(kind_code, Ordering::Release);
            cell.wake();
        }
        if probe {
            cell.probing.store(false, Ordering::Release);
            cell.wake();
        }
    }

    /// Record one outcome; returns the failures among the recent outcomes and how many
    /// recent outcomes there are.
    fn push_outcome(&self, failed: bool) -> (u32, u32) {
        let full = 1u64 << CooldownPolicy::RECENT;
        let push = |bits: u64| {
            let shifted = (bits << 1) | u64::from(failed);
            // Past the window: drop the oldest outcome, keep the marker at the top.
            if shifted >= full << 1 {
                (shifted & (full - 1)) | full
            } else {
                shifted
            }
        };
        let previous = self
            .recent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| Some(push(bits)))
            .unwrap_or(1);
        outcomes(push(previous))
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(crate) fn ewma_us(&self) -> f64 {
        f64::from_bits(self.ewma_us.load(Ordering::Acquire))
    }

    pub(crate) fn cooldown_until(&self) -> u64 {
        self.cell.cooldown_until.load(Ordering::Acquire)
    }

    /// A probe is in flight, here or (as far as this replica knows) in another replica.
    pub(crate) fn is_probing(&self, now: u64) -> bool {
        self.cell.probing.load(Ordering::Acquire)
            || self.cell.probe_elsewhere_until.load(Ordering::Acquire) > now
    }

    pub(crate) fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Acquire)
    }

    pub(crate) fn trips(&self) -> u32 {
        self.cell.trips.load(Ordering::Acquire)
    }

    pub(crate) fn recent_failure_percent(&self) -> u8 {
        let (failures, recorded) = outcomes(self.recent.load(Ordering::Acquire));
        u8::try_from(failures * 100 / recorded.max(1)).unwrap_or(100)
    }

    /// The kind of this replica's last failure, else of the failure that started a cooldown
    /// learnt from another replica.
    pub(crate) fn last_error(&self) -> Option<ErrorKind> {
        let local = self.last_error.load(Ordering::Acquire);
        let code = if local == 0 {
            self.cell.cool_kind.load(Ordering::Acquire)
        } else {
            local
        };
        usize::from(code)
            .checked_sub(1)
            .and_then(|i| ErrorKind::ALL.get(i).copied())
    }
}

/// Failures and outcomes recorded in a `recent` history word (see [`Health`]).
fn outcomes(bits: u64) -> (u32, u32) {
    let recorded = 63u32.saturating_sub(bits.leading_zeros());
    (bits.count_ones().saturating_sub(1), recorded)
}

/// One attempt's hold on a deployment: counted in flight until it is resolved or dropped.
/// Dropping it unresolved (a cancelled request) releases a probe without judging the
/// deployment.
#[derive(Debug)]
pub(crate) struct Permit {
    deployment: Arc<Deployment>,
    probe: bool,
    resolved: bool,
}

impl Permit {
    pub(crate) fn new(deployment: Arc<Deployment>, probe: bool) -> Self {
        Self {
            deployment,
            probe,
            resolved: false,
        }
    }

    pub(crate) fn deployment(&self) -> &Arc<Deployment> {
        &self.deployment
    }

    pub(crate) fn responsive(&mut self, latency: Duration, now: u64) {
        self.deployment
            .health
            .mark_responsive(latency, self.probe, now);
        // Once the deployment answered, the probe is settled.
        self.probe = false;
    }

    /// The attempt succeeded. `latency` is its latency sample, unless one was already taken
    /// with [`Permit::responsive`] (streams sample the time to first content).
    pub(crate) fn succeed(mut self, latency: Option<Duration>, tokens: u64, now: u64) {
        let health = &self.deployment.health;
        if let Some(latency) = latency {
            health.mark_responsive(latency, self.probe, now);
        }
        health.successes.fetch_add(1, Ordering::Relaxed);
        health.add_tokens(tokens);
        self.finish();
    }

    pub(crate) fn fail(mut self, error: &Error, policy: &CooldownPolicy, now: u64) {
        self.deployment
            .health
            .record_failure(error, policy, now, self.probe);
        self.finish();
    }

    fn finish(&mut self) {
        self.resolved = true;
        self.deployment.health.release();
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.resolved {
            self.deployment.health.release();
            if self.probe {
                let cell = &self.deployment.health.cell;
                cell.probing.store(false, Ordering::Release);
                cell.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use llm_core::{MockProvider, UpstreamError};

    use super::*;
    use crate::DeploymentConfig;

    fn error(kind: ErrorKind, retry_after: Option<u64>) -> Error {
        let mut upstream = UpstreamError::new("t", None, kind, "x");
        upstream.retry_after = retry_after.map(Duration::from_secs);
        Error::from(upstream)
    }

    #[test]
    fn a_re_cool_keeps_the_later_deadline() {
        let health = Health::default();
        let policy = CooldownPolicy::default();
        health.record_failure(
            &error(ErrorKind::Authentication, None),
            &policy,
            1_000,
            false,
        );
        assert_eq!(health.cooldown_until(), 301_000);
        // A shorter rate-limit rest reported by a request that was already in flight.
        health.record_failure(
            &error(ErrorKind::RateLimited, Some(7)),
            &policy,
            2_000,
            false,
        );
        assert_eq!(health.cooldown_until(), 301_000);
        // A longer one extends it.
        health.record_failure(
            &error(ErrorKind::RateLimited, Some(60)),
            &policy,
            290_000,
            false,
        );
        assert_eq!(health.cooldown_until(), 350_000);
    }

    #[test]
    fn one_probe_at_a_time_and_a_dropped_probe_is_released() {
        let deployment = Arc::new(Deployment::new(
            Arc::new(MockProvider::echo("m")),
            DeploymentConfig::new("d", "m"),
        ));
        let health = &deployment.health;
        health.record_failure(
            &error(ErrorKind::Authentication, None),
            &CooldownPolicy::default(),
            1,
            false,
        );
        assert_eq!(
            health.try_acquire(100, None, None),
            Err(Unavailable::Cooling(300_001))
        );
        assert_eq!(
            health.try_acquire(300_001, None, None),
            Ok(true),
            "the first caller probes"
        );
        assert_eq!(
            health.try_acquire(300_002, None, None),
            Err(Unavailable::Probing)
        );
        // The probe's request is cancelled: the permit is dropped unresolved.
        drop(Permit::new(Arc::clone(&deployment), true));
        assert_eq!(health.in_flight(), 0);
        assert_eq!(
            health.try_acquire(300_003, None, None),
            Ok(true),
            "a new probe may go"
        );
        let permit = Permit::new(Arc::clone(&deployment), true);
        permit.succeed(Some(Duration::from_millis(20)), 10, 300_004);
        assert_eq!(health.cooldown_until(), 0);
        assert_eq!(
            health.try_acquire(300_004, None, None),
            Ok(false),
            "full traffic"
        );
        assert_eq!(health.successes(), 1);
    }

    #[test]
    fn ewma_moves_towards_new_samples() {
        let health = Health::default();
        health.mark_responsive(Duration::from_millis(100), false, 1);
        assert!((health.ewma_us() - 100_000.0).abs() < 1.0);
        health.mark_responsive(Duration::from_millis(200), false, 2);
        assert!((health.ewma_us() - 130_000.0).abs() < 1.0);
    }

    #[test]
    fn tpm_limits_count_reported_tokens() {
        let health = Health::default();
        assert_eq!(health.try_acquire(1, None, Some(100)), Ok(false));
        health.add_tokens(100);
        assert_eq!(
            health.try_acquire(2, None, Some(100)),
            Err(Unavailable::Limited(60_000))
        );
        assert_eq!(
            health.try_acquire(60_000, None, Some(100)),
            Ok(false),
            "a new window"
        );
    }
}
