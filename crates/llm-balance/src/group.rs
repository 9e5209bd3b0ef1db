//! A model group: the deployments a request's `model` resolves to, with the precomputed
//! views the strategies read.

use std::sync::{Arc, atomic::AtomicUsize};

use crate::Deployment;

/// The largest weight used for the round-robin sequence (longer sequences cost memory,
/// not accuracy that anyone could notice).
const MAX_WEIGHT: u64 = 100;

/// The deployments serving one model name.
#[derive(Debug)]
pub struct Group {
    name: String,
    members: Vec<Arc<Deployment>>,
    /// The smooth weighted round-robin sequence (nginx's algorithm), one entry per weight
    /// unit.
    pub(crate) sequence: Vec<u32>,
    /// Round-robin position.
    pub(crate) cursor: AtomicUsize,
    /// Member indices in priority order (lowest number first, then configuration order).
    pub(crate) by_priority: Vec<u32>,
    /// Running sums of weights, for weighted random picks.
    pub(crate) weight_prefix: Vec<u64>,
}

impl Group {
    pub(crate) fn new(name: impl Into<String>, members: Vec<Arc<Deployment>>) -> Self {
        let weights: Vec<u64> = members.iter().map(|d| d.weight().min(MAX_WEIGHT)).collect();
        let sequence = smooth_weighted_sequence(&weights);
        let mut by_priority: Vec<u32> = (0..members.len()).map(to_u32).collect();
        by_priority.sort_by_key(|&i| members[i as usize].config.priority);
        let mut total = 0;
        let weight_prefix = members
            .iter()
            .map(|d| {
                total += d.weight();
                total
            })
            .collect();
        Self {
            name: name.into(),
            members,
            sequence,
            cursor: AtomicUsize::new(0),
            by_priority,
            weight_prefix,
        }
    }

    /// The group's name (the model name requests use; empty for the default group).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its deployments, in configuration order.
    #[must_use]
    pub fn deployments(&self) -> &[Arc<Deployment>] {
        &self.members
    }

    /// The sum of its weights.
    #[must_use]
    pub fn total_weight(&self) -> u64 {
        self.weight_prefix.last().copied().unwrap_or(0)
    }
}

pub(crate) fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// nginx's smooth weighted round robin, unrolled over one period: each step adds every
/// weight to its running score, picks the highest score and subtracts the total from it.
/// Weights 5, 1, 1 give `a a b a c a a`, spreading the heavy member out.
fn smooth_weighted_sequence(weights: &[u64]) -> Vec<u32> {
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let weights: Vec<i64> = weights
        .iter()
        .map(|w| i64::try_from(w / divisor).unwrap_or(1).max(1))
        .collect();
    let total: i64 = weights.iter().sum();
    let mut scores = vec![0i64; weights.len()];
    let mut sequence = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, weight) in weights.iter().enumerate() {
            scores[i] += weight;
            if scores[i] > scores[best] {
                best = i;
            }
        }
        scores[best] -= total;
        sequence.push(to_u32(best));
    }
    sequence
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_sequences() {
        assert_eq!(smooth_weighted_sequence(&[1, 1, 1]), [0, 1, 2]);
        assert_eq!(smooth_weighted_sequence(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_weighted_sequence(&[2, 4]), [1, 0, 1]);
        assert_eq!(smooth_weighted_sequence(&[3]), [0]);
    }
}
