//! A retry budget, so an outage cannot turn into a retry storm (tower's `TpsBudget` idea,
//! reqwest's default of about 20% extra load).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// How many retries the router may add to its traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudgetConfig {
    /// Retries allowed per request, on average over the window (0.2 = 20% extra load).
    pub ratio: f64,
    /// Retries always allowed per second, so a quiet router can still fail over.
    pub min_per_second: u32,
    /// The accounting window.
    pub window: Duration,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 10,
            window: Duration::from_secs(10),
        }
    }
}

/// The budget's live counters (lock-free; windows roll on demand).
#[derive(Debug)]
pub(crate) struct RetryBudget {
    config: RetryBudgetConfig,
    window_ms: u64,
    window: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    pub(crate) fn new(config: RetryBudgetConfig) -> Self {
        Self {
            config,
            window_ms: u64::try_from(config.window.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            window: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    fn roll(&self, now_ms: u64) {
        let window = now_ms / self.window_ms;
        let current = self.window.load(Ordering::Acquire);
        if current != window
            && self
                .window
                .compare_exchange(current, window, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.requests.store(0, Ordering::Release);
            self.retries.store(0, Ordering::Release);
        }
    }

    /// Count a new request.
    pub(crate) fn deposit(&self, now_ms: u64) {
        self.roll(now_ms);
        self.requests.fetch_add(1, Ordering::AcqRel);
    }

    /// Take one retry from the budget, if there is one left.
    pub(crate) fn try_withdraw(&self, now_ms: u64) -> bool {
        self.roll(now_ms);
        let requests = self.requests.load(Ordering::Acquire) as f64;
        let floor = f64::from(self.config.min_per_second) * self.config.window.as_secs_f64();
        let allowed = floor + self.config.ratio * requests;
        let taken = self.retries.fetch_add(1, Ordering::AcqRel);
        if (taken as f64) < allowed {
            true
        } else {
            self.retries.fetch_sub(1, Ordering::AcqRel);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_floor() {
        let budget = RetryBudget::new(RetryBudgetConfig {
            ratio: 0.5,
            min_per_second: 1,
            window: Duration::from_secs(2),
        });
        // Floor: 2 retries in a 2 s window with no traffic.
        assert!(budget.try_withdraw(1));
        assert!(budget.try_withdraw(1));
        assert!(!budget.try_withdraw(1));
        // Ten requests add five more.
        for _ in 0..10 {
            budget.deposit(1);
        }
        let granted = (0..10).filter(|_| budget.try_withdraw(1)).count();
        assert_eq!(granted, 5);
        // A new window starts afresh.
        assert!(budget.try_withdraw(2_001));
    }
}
