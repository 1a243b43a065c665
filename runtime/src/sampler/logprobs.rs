//! Log-probabilities of the most likely tokens.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A heap key ordered by logit, then by *descending* id, so that among equal logits the
/// lowest id is the "largest" and is kept.
#[derive(Debug, Clone, Copy)]
struct Key {
    logit: f32,
    id: u32,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.logit
            .total_cmp(&other.logit)
            .then(other.id.cmp(&self.id))
    }
}

/// The `k` tokens with the largest logits, most likely first (ties: lowest id first),
/// each with its natural-log probability under the softmax over *all* `logits`.
///
/// Numerically stable (log-sum-exp around the maximum, accumulated in `f64`). NaN logits
/// count as `-inf`. Returns fewer than `k` entries when `logits` is shorter; an empty
/// vector for `k == 0`. Allocates `O(k)`, not `O(vocab)`.
pub fn log_softmax_top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    if k == 0 || logits.is_empty() {
        return Vec::new();
    }
    let clean = |x: f32| if x.is_nan() { f32::NEG_INFINITY } else { x };
    let max = logits
        .iter()
        .map(|&x| clean(x))
        .fold(f32::NEG_INFINITY, f32::max);
    let log_z = if max == f32::NEG_INFINITY {
        // All tokens impossible: report them as equally likely rather than NaN.
        (logits.len() as f64).ln()
    } else {
        // exp in f32 (relative error ~1e-7), accumulated in f64.
        let sum: f64 = logits.iter().map(|&x| (clean(x) - max).exp() as f64).sum();
        max as f64 + sum.ln()
    };

    // Min-heap of the best k seen so far.
    let k = k.min(logits.len());
    let mut heap: BinaryHeap<Reverse<Key>> = BinaryHeap::with_capacity(k + 1);
    for (i, &x) in logits.iter().enumerate() {
        let key = Key {
            logit: clean(x),
            id: i as u32,
        };
        if heap.len() < k {
            heap.push(Reverse(key));
        } else if let Some(Reverse(worst)) = heap.peek() {
            if key > *worst {
                heap.pop();
                heap.push(Reverse(key));
            }
        }
    }
    let mut best: Vec<Key> = heap.into_iter().map(|Reverse(k)| k).collect();
    best.sort_unstable_by(|a, b| b.cmp(a));
    best.into_iter()
        .map(|key| {
            let lp = if max == f32::NEG_INFINITY {
                -log_z
            } else {
                key.logit as f64 - log_z
            };
            (key.id, lp as f32)
        })
        .collect()
}
