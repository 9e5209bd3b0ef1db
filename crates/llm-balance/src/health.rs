//! Per-deployment health: atomics only, read at pick time, written after each attempt.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use llm_core::{Error, ErrorKind};
use tokio::time::Instant;

use crate::{CooldownPolicy, Deployment};

/// Milliseconds since a router's start, on tokio's clock (so tests can pause time).
/// Readings start at 1 so that 0 can mean "never".
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
        }
    }

    pub(crate) fn now_ms(self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    pub(crate) fn instant(self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms.saturating_sub(1))
    }
}

const RPM_WINDOW_MS: u64 = 60_000;

/// The health of one deployment.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// 0 when healthy; else the clock reading until which the deployment rests. Stays set
    /// after it passes until a probe succeeds.
    cooldown_until: AtomicU64,
    /// A probe is in flight after a cooldown.
    probing: AtomicBool,
    consecutive_failures: AtomicU32,
    in_flight: AtomicU32,
    /// Latency EWMA in microseconds, as f64 bits; 0 before the first sample.
    ewma_us: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    /// 0 for none, else the index of the last error's kind in `ErrorKind::ALL`, plus one.
    last_error: AtomicU8,
    /// The current rpm/tpm window (clock ms / 60 000) and its counts.
    window: AtomicU64,
    window_requests: AtomicU64,
    window_tokens: AtomicU64,
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
        let until = self.cooldown_until.load(Ordering::Acquire);
        let probe = if until == 0 {
            false
        } else if now < until {
            return Err(Unavailable::Cooling(until));
        } else if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            true
        } else {
            return Err(Unavailable::Probing);
        };
        if rpm.is_some() || tpm.is_some() {
            self.roll_window(now);
            let requests = self.window_requests.load(Ordering::Acquire);
            let tokens = self.window_tokens.load(Ordering::Acquire);
            if rpm.is_some_and(|limit| requests >= limit)
                || tpm.is_some_and(|limit| tokens >= limit)
            {
                if probe {
                    self.probing.store(false, Ordering::Release);
                }
                let next_window = (now / RPM_WINDOW_MS + 1) * RPM_WINDOW_MS;
                return Err(Unavailable::Limited(next_window));
            }
            self.window_requests.fetch_add(1, Ordering::AcqRel);
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(probe)
    }

    fn roll_window(&self, now: u64) {
        let window = now / RPM_WINDOW_MS;
        let current = self.window.load(Ordering::Acquire);
        if current != window
            && self
                .window
                .compare_exchange(current, window, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.window_requests.store(0, Ordering::Release);
            self.window_tokens.store(0, Ordering::Release);
        }
    }

    pub(crate) fn add_tokens(&self, tokens: u64) {
        self.window_tokens.fetch_add(tokens, Ordering::AcqRel);
    }

    fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// The deployment answered (a stream's first content, or a whole answer): it is healthy.
    pub(crate) fn mark_responsive(&self, latency: Duration, probe: bool) {
        self.consecutive_failures.store(0, Ordering::Release);
        if probe {
            self.cooldown_until.store(0, Ordering::Release);
            self.probing.store(false, Ordering::Release);
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
        self.last_error.store(
            u8::try_from(index + 1).unwrap_or(u8::MAX),
            Ordering::Release,
        );
        if CooldownPolicy::counts(kind) {
            let consecutive = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
            if let Some(rest) = policy.for_kind(kind, error.retry_after(), consecutive) {
                let until =
                    now.saturating_add(u64::try_from(rest.as_millis()).unwrap_or(u64::MAX / 2));
                // A re-cool keeps the later deadline.
                self.cooldown_until
                    .fetch_max(until.max(1), Ordering::AcqRel);
            }
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(crate) fn ewma_us(&self) -> f64 {
        f64::from_bits(self.ewma_us.load(Ordering::Acquire))
    }

    pub(crate) fn cooldown_until(&self) -> u64 {
        self.cooldown_until.load(Ordering::Acquire)
    }

    pub(crate) fn is_probing(&self) -> bool {
        self.probing.load(Ordering::Acquire)
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

    pub(crate) fn last_error(&self) -> Option<ErrorKind> {
        let index = usize::from(self.last_error.load(Ordering::Acquire));
        index
            .checked_sub(1)
            .and_then(|i| ErrorKind::ALL.get(i).copied())
    }
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

    pub(crate) fn responsive(&mut self, latency: Duration) {
        self.deployment.health.mark_responsive(latency, self.probe);
        // Once the deployment answered, the probe is settled.
        self.probe = false;
    }

    /// The attempt succeeded. `latency` is its latency sample, unless one was already taken
    /// with [`Permit::responsive`] (streams sample the time to first content).
    pub(crate) fn succeed(mut self, latency: Option<Duration>, tokens: u64) {
        let health = &self.deployment.health;
        if let Some(latency) = latency {
            health.mark_responsive(latency, self.probe);
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
                self.deployment
                    .health
                    .probing
                    .store(false, Ordering::Release);
            }
        }
    }
}
