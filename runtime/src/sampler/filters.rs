//! The sampling stages over a candidate buffer, mirroring llama.cpp's samplers.

use std::cmp::Ordering;

/// One candidate token during sampling.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    pub(super) id: u32,
    pub(super) logit: f32,
    pub(super) p: f32,
}

/// Descending by logit, ties broken by ascending id: a total order, so the result of
/// partial selection does not depend on the algorithm.
pub(super) fn by_logit_desc(a: &Candidate, b: &Candidate) -> Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// NaN logits are treated as impossible tokens and `+inf` as the largest finite value
/// (so softmax stays finite); `-0.0` becomes `0.0` so that `<=` and [`by_logit_desc`]
/// agree.
pub(super) fn sanitize(x: f32) -> f32 {
    if x.is_nan() {
        f32::NEG_INFINITY
    } else if x == 0.0 {
        0.0
    } else if x == f32::INFINITY {
        f32::MAX
    } else {
        x
    }
}

/// The candidate with the largest logit, ties to the lowest id.
pub(super) fn greedy_pick(cand: &[Candidate]) -> u32 {
    let mut best = cand[0];
    for c in &cand[1..] {
        if c.logit > best.logit || (c.logit == best.logit && c.id < best.id) {
            best = *c;
        }
    }
    best.id
}

/// Put the `k` best candidates, in descending order, at the front (`0 < k <= len`).
/// Partial selection, then a sort of the prefix only: O(n + k log k).
pub(super) fn sort_prefix(cand: &mut [Candidate], k: usize) {
    if k < cand.len() {
        cand.select_nth_unstable_by(k - 1, by_logit_desc);
    }
    cand[..k].sort_unstable_by(by_logit_desc);
}

/// Fill `out` with the `k` best of `logits` (NaN as `-inf`), in no particular order,
/// without materialising the whole vocabulary: one pass that keeps a buffer of at most
/// `2k` (min 64) entries and a running threshold, compacting with partial selection
/// when the buffer fills. Requires `0 < k`.
pub(super) fn collect_top(logits: &[f32], k: usize, out: &mut Vec<Candidate>) {
    out.clear();
    let cap = (2 * k).max(64);
    // Until the buffer first fills every token is taken; afterwards only those that
    // beat the current k-th best. Equal logits lose: they come later, so have larger ids.
    let mut threshold = f32::NEG_INFINITY;
    let mut primed = false;
    const BLOCK: usize = 64;
    for (b, block) in logits.chunks(BLOCK).enumerate() {
        // Most blocks hold nothing above the threshold: test the whole block with a
        // branch-free (vectorisable) reduction before looking at single tokens.
        // NaN compares false, as `-inf` would.
        if primed && !block.iter().fold(false, |any, &l| any | (l > threshold)) {
            continue;
        }
        for (j, &l) in block.iter().enumerate() {
            let l = sanitize(l);
            if primed && l <= threshold {
                continue;
            }
            out.push(Candidate {
                id: (b * BLOCK + j) as u32,
                logit: l,
                p: 0.0,
            });
            if out.len() == cap {
                out.select_nth_unstable_by(k - 1, by_logit_desc);
                out.truncate(k);
                threshold = out[k - 1].logit;
                primed = true;
            }
        }
    }
    if out.len() > k {
        out.select_nth_unstable_by(k - 1, by_logit_desc);
        out.truncate(k);
    }
}

/// Extend the sorted prefix `cand[..from]` to `cand[..to]`: select the next `to - from`
/// best among the rest and sort them. Requires `from < to <= len`.
fn extend_sorted(cand: &mut [Candidate], from: usize, to: usize) {
    sort_prefix(&mut cand[from..], to - from);
}

/// Fill `p` with the softmax of the candidates' logits; returns the max logit.
pub(super) fn softmax_in_place(cand: &mut [Candidate]) {
    let max = cand
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    if max.is_infinite() {
        // All impossible (share equally), or some infinitely likely (share among those):
        // never NaN.
        let n = cand.iter().filter(|c| c.logit == max).count();
        let p = 1.0 / n as f32;
        cand.iter_mut()
            .for_each(|c| c.p = if c.logit == max { p } else { 0.0 });
        return;
    }
    let mut sum = 0.0f64;
    for c in cand.iter_mut() {
        c.p = (c.logit - max).exp();
        sum += c.p as f64;
    }
    let inv = (1.0 / sum) as f32;
    cand.iter_mut().for_each(|c| c.p *= inv);
}

/// Top-p (nucleus) filter, as llama.cpp's `llama_sampler_top_p_apply` (min_keep 0):
/// keep candidates up to and including the first at which the cumulative probability
/// reaches `p`. Sorts lazily: the best 256 first, then a prefix twice as long each time
/// the nucleus turns out larger, so a small nucleus never sorts the whole vocabulary.
pub(super) fn apply_top_p(cand: &mut Vec<Candidate>, sorted: &mut usize, p: f32) {
    if cand.is_empty() {
        return;
    }
    softmax_in_place(cand);
    let mut cum = 0.0f64;
    let mut last = cand.len();
    for i in 0..cand.len() {
        if i == *sorted {
            let to = (2 * i).max(256).min(cand.len());
            extend_sorted(cand, i, to);
            *sorted = to;
        }
        cum += cand[i].p as f64;
        if cum >= p as f64 {
            last = i + 1;
            break;
        }
    }
    cand.truncate(last);
    *sorted = (*sorted).min(last);
}

/// Min-p filter, as llama.cpp's `llama_sampler_min_p_apply` (min_keep 0): keep tokens
/// with `logit >= max_logit + ln(p)`; always keeps the best one.
pub(super) fn apply_min_p(cand: &mut Vec<Candidate>, sorted: bool, p: f32) {
    if cand.is_empty() {
        return;
    }
    let max = if sorted {
        cand[0].logit
    } else {
        cand.iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let min_logit = max + p.ln();
    if min_logit > max {
        // p > 1: nothing passes; llama.cpp then keeps the first (best) token.
        if !sorted {
            sort_prefix(cand, 1);
        }
        cand.truncate(1);
        return;
    }
    cand.retain(|c| c.logit >= min_logit);
}

/// Draw from the softmax of the candidates with uniform `r` in `[0, 1)`, as llama.cpp's
/// `llama_sampler_dist_apply`.
pub(super) fn draw(cand: &mut [Candidate], r: f64) -> u32 {
    if cand.len() == 1 {
        return cand[0].id;
    }
    let max = cand
        .iter()
        .map(|c| c.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    if max.is_infinite() {
        // All impossible, or some infinitely likely (e.g. a tiny temperature pushed
        // logits to +inf): the lowest id among the best.
        return cand
            .iter()
            .filter(|c| c.logit == max)
            .map(|c| c.id)
            .min()
            .unwrap_or(0);
    }
    let mut sum = 0.0f64;
    for c in cand.iter_mut() {
        c.p = (c.logit - max).exp();
        sum += c.p as f64;
    }
    let target = sum * r;
    let mut run = 0.0f64;
    let mut last_possible = cand[0].id;
    for c in cand.iter() {
        if c.p > 0.0 {
            run += c.p as f64;
            last_possible = c.id;
            if run > target {
                return c.id;
            }
        }
    }
    // Only reachable through rounding at r close to 1.
    last_possible
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(logits: &[f32]) -> Vec<Candidate> {
        logits
            .iter()
            .enumerate()
            .map(|(i, &l)| Candidate {
                id: i as u32,
                logit: l,
                p: 0.0,
            })
            .collect()
    }

    #[test]
    fn top_p_lazy_sort_extends_past_first_prefix() {
        // 1000 equal logits: the first 256 hold 25.6% of the mass, so top-p 0.5 must
        // sort beyond the initial prefix and keep exactly 500, lowest ids first.
        let mut c = cands(&vec![0.0; 1000]);
        let mut sorted = 0;
        apply_top_p(&mut c, &mut sorted, 0.5);
        assert_eq!(c.len(), 500);
        let ids: Vec<u32> = c.iter().map(|c| c.id).collect();
        assert_eq!(ids, (0..500).collect::<Vec<u32>>());
    }

    #[test]
    fn collect_top_matches_full_sort() {
        // Many ties and NaNs: the kept set must be exactly the first k of a full sort.
        let logits: Vec<f32> = (0..5000u32)
            .map(|i| match i % 7 {
                0 => f32::NAN,
                r => (i.wrapping_mul(2_654_435_761) >> 28) as f32 + r as f32 * 0.5,
            })
            .collect();
        let mut all = cands(&logits);
        all.iter_mut().for_each(|c| c.logit = sanitize(c.logit));
        all.sort_by(by_logit_desc);
        for k in [1, 5, 31, 32, 33, 100, 4999, 5000] {
            let mut out = Vec::new();
            collect_top(&logits, k, &mut out);
            out.sort_by(by_logit_desc);
            let got: Vec<u32> = out.iter().map(|c| c.id).collect();
            let want: Vec<u32> = all[..k].iter().map(|c| c.id).collect();
            assert_eq!(got, want, "k = {k}");
        }
    }

    #[test]
    fn min_p_above_one_keeps_best() {
        let mut c = cands(&[0.0, 3.0, 1.0]);
        apply_min_p(&mut c, false, 2.0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].id, 1);
    }

    #[test]
    fn draw_with_infinite_logits() {
        let mut c = cands(&[1.0, f32::INFINITY, 2.0, f32::INFINITY]);
        assert_eq!(draw(&mut c, 0.5), 1);
    }

    #[test]
    fn draw_skips_impossible_tokens() {
        let mut c = cands(&[f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]);
        assert_eq!(draw(&mut c, 0.0), 1);
        assert_eq!(draw(&mut c, 0.999_999), 1);
    }
}
