//! Strategies: the order in which a group's deployments are tried.

use std::{
    fmt,
    str::FromStr,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use llm_core::Error;
use serde::{Deserialize, Serialize};

use crate::group::{Group, to_u32};

/// A source of random numbers for the randomized strategies; inject a seeded one in tests.
pub trait RandomSource: Send + Sync + fmt::Debug {
    /// The next random 64-bit value.
    fn next_u64(&self) -> u64;

    /// A value in `0..bound` (`bound` > 0).
    fn below(&self, bound: u64) -> u64 {
        // Lemire's multiply-shift: unbiased enough for load balancing, no division.
        let product = u128::from(self.next_u64()) * u128::from(bound.max(1));
        u64::try_from(product >> 64).unwrap_or(0)
    }
}

/// SplitMix64 over an atomic counter: lock-free, fast, and deterministic for a seed.
#[derive(Debug)]
pub struct SplitMix64 {
    state: AtomicU64,
}

impl SplitMix64 {
    /// A generator that yields the same sequence for the same `seed`.
    #[must_use]
    pub fn seeded(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from the clock.
    #[must_use]
    pub fn from_time() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x5EED, |d| d.as_nanos());
        Self::seeded(u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(0x5EED))
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Orders a group's deployments for one request, most preferred first.
///
/// `out` is cleared and receives every member index once. Implementations are cheap and
/// lock-free; the router skips members that are cooling down as it walks the order.
pub trait Strategy: Send + Sync + fmt::Debug {
    /// Write the order of `group`'s members into `out`.
    fn order(&self, group: &Group, random: &dyn RandomSource, out: &mut Vec<u32>);
}

/// The built-in strategies, by the names the configuration and the HTTP API use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StrategyKind {
    /// Smooth weighted round robin: deterministic, spreads heavier members out.
    #[default]
    RoundRobin,
    /// A weighted random first choice.
    Random,
    /// The same as `random` (the name some configurations use).
    Weighted,
    /// By priority, lowest number first: a primary and its standbys.
    FirstAvailable,
    /// The member with the fewest requests in flight.
    LeastBusy,
    /// Power of two choices over latency EWMA times load.
    Latency,
}

impl StrategyKind {
    /// Every name accepted by [`StrategyKind::from_str`].
    pub const NAMES: [&'static str; 6] = [
        "round_robin",
        "random",
        "weighted",
        "first_available",
        "least_busy",
        "latency",
    ];

    /// The strategy's name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::Random => "random",
            Self::Weighted => "weighted",
            Self::FirstAvailable => "first_available",
            Self::LeastBusy => "least_busy",
            Self::Latency => "latency",
        }
    }

    pub(crate) fn strategy(self) -> &'static dyn Strategy {
        match self {
            Self::RoundRobin => &RoundRobin,
            Self::Random | Self::Weighted => &WeightedRandom,
            Self::FirstAvailable => &FirstAvailable,
            Self::LeastBusy => &LeastBusy,
            Self::Latency => &Latency,
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StrategyKind {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        Ok(match name {
            "round_robin" => Self::RoundRobin,
            "random" => Self::Random,
            "weighted" => Self::Weighted,
            "first_available" => Self::FirstAvailable,
            "least_busy" => Self::LeastBusy,
            "latency" | "latency_based" => Self::Latency,
            other => {
                return Err(Error::invalid_request(format!(
                    "unknown load_balance_strategy `{other}`; expected one of {}",
                    Self::NAMES.join(", ")
                )));
            }
        })
    }
}

/// `first`, then every other member in ring order after it.
fn ring_from(first: u32, len: usize, out: &mut Vec<u32>) {
    let len32 = to_u32(len);
    let first = first.min(len32);
    // Two plain ranges rather than a modulo per element: this runs on every request.
    out.extend(first..len32);
    out.extend(0..first);
}

/// Smooth weighted round robin.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobin;

impl Strategy for RoundRobin {
    fn order(&self, group: &Group, _random: &dyn RandomSource, out: &mut Vec<u32>) {
        out.clear();
        if group.sequence.is_empty() {
            return;
        }
        let position = group.cursor.fetch_add(1, Ordering::Relaxed) % group.sequence.len();
        ring_from(group.sequence[position], group.deployments().len(), out);
    }
}

/// A weighted random first choice, the rest in ring order after it.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightedRandom;

impl Strategy for WeightedRandom {
    fn order(&self, group: &Group, random: &dyn RandomSource, out: &mut Vec<u32>) {
        out.clear();
        let total = group.total_weight();
        if total == 0 {
            return;
        }
        let ticket = random.below(total);
        let first = group.weight_prefix.partition_point(|&sum| sum <= ticket);
        ring_from(to_u32(first), group.deployments().len(), out);
    }
}

/// Priority order.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstAvailable;

impl Strategy for FirstAvailable {
    fn order(&self, group: &Group, _random: &dyn RandomSource, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&group.by_priority);
    }
}

/// Fewest requests in flight first; ties go round robin so idle members share the load.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeastBusy;

impl Strategy for LeastBusy {
    fn order(&self, group: &Group, _random: &dyn RandomSource, out: &mut Vec<u32>) {
        out.clear();
        let members = group.deployments();
        if members.is_empty() {
            return;
        }
        let start = group.cursor.fetch_add(1, Ordering::Relaxed) % members.len();
        let mut best = start;
        let mut best_load = u32::MAX;
        for step in 0..members.len() {
            let i = (start + step) % members.len();
            let load = members[i].in_flight();
            if load < best_load {
                best = i;
                best_load = load;
            }
        }
        ring_from(to_u32(best), members.len(), out);
    }
}

/// Power of two choices: of two random members, the one with the lower cost, where cost is
/// the latency EWMA times (in-flight + 1) (tower's `PeakEwma` idea). Members without a
/// latency sample cost nothing, so new members get explored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency;

impl Strategy for Latency {
    fn order(&self, group: &Group, random: &dyn RandomSource, out: &mut Vec<u32>) {
        out.clear();
        let members = group.deployments();
        let len = members.len() as u64;
        if len == 0 {
            return;
        }
        let a = random.below(len) as usize;
        let b = if len > 1 {
            (a + 1 + random.below(len - 1) as usize) % members.len()
        } else {
            a
        };
        let cost = |i: usize| members[i].latency_ewma_us() * f64::from(members[i].in_flight() + 1);
        let first = if cost(b) < cost(a) { b } else { a };
        ring_from(to_u32(first), members.len(), out);
    }
}
