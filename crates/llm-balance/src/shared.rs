//! What gateway replicas share about a deployment, and the interface that shares it.
//!
//! A deployment's health has two halves. The **local** half (load in flight, latency,
//! counters, the recent outcomes that decide when it trips) only means something inside one
//! process. The **shared** half is what every replica should agree on: the cooldown
//! (deadline in Unix milliseconds, trips in a row, and why), who probes it after a cooldown,
//! and its rpm/tpm window. That half lives in a [`SharedCell`], read and written lock-free
//! on the request path; a [`SharedState`] keeps the cells of every replica in step.
//!
//! - [`LocalState`] keeps them to this process: today's single-gateway behaviour.
//! - `RedisState` (feature `redis`) reconciles them through Redis in the background: the
//!   request path never waits on it (see `docs/scale-out.md`).

use std::{
    fmt,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
};

use serde::Serialize;
use tokio::sync::Notify;

use crate::{health::Unavailable, window::WindowCounters};

/// The length of an rpm/tpm window: the wall-clock minute.
pub(crate) const MINUTE_MS: u64 = 60_000;

/// How long a request waits for a lease of its deployment's rpm quota that is on its way
/// (one round trip to the shared store) before the router looks again.
pub(crate) const LEASE_WAIT_MS: u64 = 2;

/// The shared half of one deployment's health: its local copy, which the request path
/// reads and writes with atomics only.
pub struct SharedCell {
    /// 0 when healthy; else the Unix millisecond until which the deployment rests. Stays
    /// set after it passes until a probe succeeds.
    pub(crate) cooldown_until: AtomicU64,
    /// Trips in a row (transient cooldowns whose probe failed add one).
    pub(crate) trips: AtomicU32,
    /// The kind of the failure that started the cooldown, as its index in
    /// `ErrorKind::ALL` plus one (0 for none).
    pub(crate) cool_kind: AtomicU8,
    /// A probe of this process is in flight.
    pub(crate) probing: AtomicBool,
    /// Until when another replica holds the probe (Unix ms; 0 for none).
    pub(crate) probe_elsewhere_until: AtomicU64,
    /// When a probe of this process last succeeded (Unix ms), so the shared cooldown it
    /// ended is cleared for everyone.
    pub(crate) recovered_at: AtomicU64,
    /// Requests (`first`) and tokens (`second`) this process counted in the current minute.
    pub(crate) minute: WindowCounters,
    /// Whether the rpm/tpm window is shared right now (the backend is connected).
    pub(crate) shared: AtomicBool,
    /// Requests admitted on local counts while not shared, not yet added to the shared
    /// window.
    pub(crate) unsynced_requests: AtomicU64,
    /// Tokens reported and not yet added to the shared window.
    pub(crate) unsynced_tokens: AtomicU64,
    /// The minute (`unix ms / 60 000`) of `lease_left`.
    pub(crate) lease_window: AtomicU64,
    /// Requests this process may still admit this minute: quota leased from the shared
    /// window.
    pub(crate) lease_left: AtomicU64,
    /// The minute plus one whose shared request count reached the limit (0 for none).
    pub(crate) full_window: AtomicU64,
    /// The shared token count of `tokens_window` (this process's flushed tokens included).
    pub(crate) shared_tokens: AtomicU64,
    /// The minute of `shared_tokens`.
    pub(crate) tokens_window: AtomicU64,
    /// A lease is wanted (the local quota runs low).
    pub(crate) want_lease: AtomicBool,
    /// When a request first found no lease left and waited (Unix ms; 0 when none waits).
    pub(crate) lease_wanted_at: AtomicU64,
    /// Wakes the backend's sync task; unset for [`LocalState`].
    wake: OnceLock<Arc<Notify>>,
}

impl Default for SharedCell {
    fn default() -> Self {
        Self {
            cooldown_until: AtomicU64::new(0),
            trips: AtomicU32::new(0),
            cool_kind: AtomicU8::new(0),
            probing: AtomicBool::new(false),
            probe_elsewhere_until: AtomicU64::new(0),
            recovered_at: AtomicU64::new(0),
            minute: WindowCounters::new(MINUTE_MS),
            shared: AtomicBool::new(false),
            unsynced_requests: AtomicU64::new(0),
            unsynced_tokens: AtomicU64::new(0),
            lease_window: AtomicU64::new(0),
            lease_left: AtomicU64::new(0),
            full_window: AtomicU64::new(0),
            shared_tokens: AtomicU64::new(0),
            tokens_window: AtomicU64::new(0),
            want_lease: AtomicBool::new(false),
            lease_wanted_at: AtomicU64::new(0),
            wake: OnceLock::new(),
        }
    }
}

impl fmt::Debug for SharedCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCell")
            .field(
                "cooldown_until",
                &self.cooldown_until.load(Ordering::Relaxed),
            )
            .field("trips", &self.trips.load(Ordering::Relaxed))
            .field("probing", &self.probing.load(Ordering::Relaxed))
            .field("shared", &self.shared.load(Ordering::Relaxed))
            .field("lease_left", &self.lease_left.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How long a request may wait for a lease that is slow to come (the store is slow or just
/// died) before it is admitted on local counts instead; reconciled later like requests
/// admitted while the store is unreachable.
pub(crate) const LEASE_GRACE_MS: u64 = 10;

/// The rpm quota leased at a time: a fiftieth of the limit (at least one request), so
/// quota held by a replica that goes idle is at most 2 % of the limit.
pub(crate) fn lease_chunk(rpm: u64) -> u64 {
    (rpm / 50).max(1)
}

impl SharedCell {
    /// Attach the cell to a backend that `wake` wakes. Returns `false` when the cell is
    /// already attached (a deployment belongs to one router).
    pub fn attach(&self, wake: Arc<Notify>) -> bool {
        self.wake.set(wake).is_ok()
    }

    /// Ask the backend to reconcile soon (a cooldown started, a probe was claimed, quota
    /// runs low). Free when there is no backend.
    pub(crate) fn wake(&self) {
        if let Some(wake) = self.wake.get() {
            wake.notify_one();
        }
    }

    fn attached(&self) -> bool {
        self.wake.get().is_some()
    }

    /// Count one request against the rpm/tpm limits, or say until when it must wait.
    pub(crate) fn admit(
        &self,
        now: u64,
        rpm: Option<u64>,
        tpm: Option<u64>,
    ) -> Result<(), Unavailable> {
        if rpm.is_none() && tpm.is_none() {
            return Ok(());
        }
        self.minute.roll(now);
        let next_minute = self.minute.next_start(now);
        if self.shared.load(Ordering::Acquire) {
            let window = now / MINUTE_MS;
            if let Some(limit) = tpm {
                let shared = if self.tokens_window.load(Ordering::Acquire) == window {
                    self.shared_tokens.load(Ordering::Acquire)
                } else {
                    0
                };
                if shared + self.unsynced_tokens.load(Ordering::Acquire) >= limit {
                    return Err(Unavailable::Limited(next_minute));
                }
            }
            if let Some(limit) = rpm {
                let leased = self.lease_window.load(Ordering::Acquire);
                if leased != window
                    && self
                        .lease_window
                        .compare_exchange(leased, window, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    self.lease_left.store(0, Ordering::Release);
                    self.lease_wanted_at.store(0, Ordering::Release);
                }
                let taken =
                    self.lease_left
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                            left.checked_sub(1)
                        });
                match taken {
                    Ok(left) => {
                        if left.saturating_sub(1) <= lease_chunk(limit) / 2 {
                            self.want_lease.store(true, Ordering::Release);
                            self.wake();
                        }
                    }
                    Err(_) => {
                        if self.full_window.load(Ordering::Acquire) == window + 1 {
                            return Err(Unavailable::Limited(next_minute));
                        }
                        let since = self.lease_wanted_at.load(Ordering::Acquire);
                        if since == 0 {
                            let _ = self.lease_wanted_at.compare_exchange(
                                0,
                                now,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            );
                        } else if now.saturating_sub(since) >= LEASE_GRACE_MS {
                            // The store is slow or gone: never hold a request for it.
                            self.minute.first.fetch_add(1, Ordering::AcqRel);
                            self.unsynced_requests.fetch_add(1, Ordering::AcqRel);
                            return Ok(());
                        }
                        self.want_lease.store(true, Ordering::Release);
                        self.wake();
                        return Err(Unavailable::Leasing(now + LEASE_WAIT_MS));
                    }
                }
            }
            self.minute.first.fetch_add(1, Ordering::AcqRel);
            return Ok(());
        }
        // Local counts: this process alone (no backend, or it is unreachable).
        let requests = self.minute.first.load(Ordering::Acquire);
        let tokens = self.minute.second.load(Ordering::Acquire);
        if rpm.is_some_and(|limit| requests >= limit) || tpm.is_some_and(|limit| tokens >= limit) {
            return Err(Unavailable::Limited(next_minute));
        }
        self.minute.first.fetch_add(1, Ordering::AcqRel);
        if self.attached() {
            self.unsynced_requests.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Count tokens a request used.
    pub(crate) fn add_tokens(&self, tokens: u64) {
        if tokens == 0 {
            return;
        }
        self.minute.second.fetch_add(tokens, Ordering::AcqRel);
        if self.attached() {
            self.unsynced_tokens.fetch_add(tokens, Ordering::AcqRel);
        }
    }
}

/// Whether and how fresh the shared state is, for `/v1/providers/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SharedStateStatus {
    /// `memory` (this process only) or `redis`.
    pub backend: &'static str,
    /// Whether state is shared with other replicas right now.
    pub shared: bool,
    /// Whether the backend is reachable (always `true` for `memory`).
    pub connected: bool,
    /// Milliseconds since the last successful reconciliation (`None` for `memory`, or
    /// before the first).
    pub staleness_ms: Option<u64>,
    /// The longest staleness the backend aims for when connected, in milliseconds.
    pub refresh_ms: Option<u64>,
    /// Why the backend is unreachable, when it is (never a credential).
    pub last_error: Option<String>,
    /// Times the backend was lost since start.
    pub disconnects: u64,
}

impl SharedStateStatus {
    /// The status of [`LocalState`].
    #[must_use]
    pub fn memory() -> Self {
        Self {
            backend: "memory",
            shared: false,
            connected: true,
            staleness_ms: None,
            refresh_ms: None,
            last_error: None,
            disconnects: 0,
        }
    }
}

/// One deployment as the shared state sees it.
#[derive(Debug, Clone)]
pub struct SharedDeployment {
    /// Its identity, the same on every replica (see
    /// [`DeploymentConfig::shared_key`](crate::DeploymentConfig::shared_key)).
    pub key: String,
    /// Its shared half.
    pub cell: Arc<SharedCell>,
    /// Its requests-per-minute limit.
    pub rpm: Option<u64>,
    /// Its tokens-per-minute limit.
    pub tpm: Option<u64>,
}

/// Where the shared half of deployments' health lives. The router calls it only at build
/// time and for status; the request path touches the [`SharedCell`]s alone.
pub trait SharedState: Send + Sync + fmt::Debug {
    /// Take charge of a router's deployments. Called once per router, when it is built
    /// (possibly outside an async runtime: start background work lazily, in
    /// [`SharedState::start`]).
    fn attach(&self, deployments: Vec<SharedDeployment>);

    /// Called on every routed request: start background work if it has not started and an
    /// async runtime is available. Must be cheap (an atomic load once started).
    fn start(&self) {}

    /// Whether and how fresh the shared state is.
    fn status(&self) -> SharedStateStatus;
}

/// State kept in this process only: each replica learns alone (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalState;

impl SharedState for LocalState {
    fn attach(&self, _deployments: Vec<SharedDeployment>) {}

    fn status(&self) -> SharedStateStatus {
        SharedStateStatus::memory()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_windows_admit_from_leases_and_wait_for_more() {
        let cell = SharedCell::default();
        assert!(cell.attach(Arc::new(Notify::new())));
        cell.shared.store(true, Ordering::Release);
        let now = 10 * MINUTE_MS + 5;
        // No lease yet: wait for one (a round trip), unless the minute is full.
        assert_eq!(
            cell.admit(now, Some(100), None),
            Err(Unavailable::Leasing(now + LEASE_WAIT_MS))
        );
        assert!(cell.want_lease.load(Ordering::Acquire));
        // A lease slow to come does not hold requests for long: past the grace they are
        // admitted on local counts, to be added to the shared window later.
        assert_eq!(cell.admit(now + LEASE_GRACE_MS, Some(100), None), Ok(()));
        assert_eq!(cell.unsynced_requests.load(Ordering::Acquire), 1);
        cell.unsynced_requests.store(0, Ordering::Release);
        cell.lease_wanted_at.store(0, Ordering::Release);
        cell.lease_left.store(2, Ordering::Release);
        assert_eq!(cell.admit(now, Some(100), None), Ok(()));
        assert_eq!(cell.admit(now, Some(100), None), Ok(()));
        cell.full_window.store(11, Ordering::Release);
        assert_eq!(
            cell.admit(now, Some(100), None),
            Err(Unavailable::Limited(11 * MINUTE_MS))
        );
        // A new minute forgets the old lease and the full mark.
        cell.lease_left.store(5, Ordering::Release);
        let later = 11 * MINUTE_MS + 1;
        assert_eq!(
            cell.admit(later, Some(100), None),
            Err(Unavailable::Leasing(later + LEASE_WAIT_MS))
        );
        // Requests admitted on local counts while unshared are remembered for the store.
        cell.shared.store(false, Ordering::Release);
        assert_eq!(cell.admit(later, Some(100), None), Ok(()));
        assert_eq!(cell.unsynced_requests.load(Ordering::Acquire), 1);
    }

    #[test]
    fn shared_token_counts_limit() {
        let cell = SharedCell::default();
        assert!(cell.attach(Arc::new(Notify::new())));
        cell.shared.store(true, Ordering::Release);
        let now = 3 * MINUTE_MS;
        cell.tokens_window.store(3, Ordering::Release);
        cell.shared_tokens.store(90, Ordering::Release);
        assert_eq!(cell.admit(now, None, Some(100)), Ok(()));
        cell.add_tokens(10);
        assert_eq!(
            cell.admit(now, None, Some(100)),
            Err(Unavailable::Limited(4 * MINUTE_MS))
        );
    }
}
