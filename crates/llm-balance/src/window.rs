//! Fixed time windows with two counters, rolled over lock-free when a reading falls in a
//! new window (for rpm/tpm limits and the retry budget).

use std::sync::atomic::{AtomicU64, Ordering};

/// Two counters that reset together when the window changes.
#[derive(Debug)]
pub(crate) struct WindowCounters {
    length_ms: u64,
    window: AtomicU64,
    pub(crate) first: AtomicU64,
    pub(crate) second: AtomicU64,
}

impl WindowCounters {
    pub(crate) fn new(length_ms: u64) -> Self {
        Self {
            length_ms: length_ms.max(1),
            window: AtomicU64::new(0),
            first: AtomicU64::new(0),
            second: AtomicU64::new(0),
        }
    }

    /// Reset both counters if `now_ms` falls in a later window than the last reading. A
    /// race at the boundary may lose a count or two, which limits and budgets tolerate.
    pub(crate) fn roll(&self, now_ms: u64) {
        let window = now_ms / self.length_ms;
        let current = self.window.load(Ordering::Acquire);
        if current != window
            && self
                .window
                .compare_exchange(current, window, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.first.store(0, Ordering::Release);
            self.second.store(0, Ordering::Release);
        }
    }

    /// The clock reading at which the next window starts.
    pub(crate) fn next_start(&self, now_ms: u64) -> u64 {
        (now_ms / self.length_ms + 1) * self.length_ms
    }
}
