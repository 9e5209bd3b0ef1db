//! A retry budget for repeat attempts (a later pass over deployments a request already
//! tried), so an outage cannot turn into a retry storm (tower's `TpsBudget` idea,
//! reqwest's default of about 20% extra load).

use std::{sync::atomic::Ordering, time::Duration};

use crate::window::WindowCounters;

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

/// The budget's live counters: requests (`first`) and retries (`second`) this window.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    config: RetryBudgetConfig,
    counters: WindowCounters,
}

impl RetryBudget {
    pub(crate) fn new(config: RetryBudgetConfig) -> Self {
        let window_ms = u64::try_from(config.window.as_millis()).unwrap_or(u64::MAX);
        Self {
            config,
            counters: WindowCounters::new(window_ms),
        }
    }

    /// Count a new request.
    pub(crate) fn deposit(&self, now_ms: u64) {
        self.counters.roll(now_ms);
        self.counters.first.fetch_add(1, Ordering::AcqRel);
    }

    /// Take one retry from the budget, if there is one left.
    pub(crate) fn try_withdraw(&self, now_ms: u64) -> bool {
        self.counters.roll(now_ms);
        let requests = self.counters.first.load(Ordering::Acquire) as f64;
        let floor = f64::from(self.config.min_per_second) * self.config.window.as_secs_f64();
        let allowed = floor + self.config.ratio * requests;
        let retries = &self.counters.second;
        let taken = retries.fetch_add(1, Ordering::AcqRel);
        if (taken as f64) < allowed {
            true
        } else {
            retries.fetch_sub(1, Ordering::AcqRel);
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
