//! The candidate-scale searches of `make_qx_quants` and `make_qkx2/3_quants`, evaluated
//! several candidates at a time.
//!
//! ggml tries its candidate scales one after the other; each candidate's sums run over the
//! group's elements in order, a chain of dependent float additions. Here the sums of
//! several candidates are accumulated side by side (arrays the compiler turns into SIMD
//! lanes), each lane still adding its terms in ggml's order, so every lane's value is the
//! one ggml computes; the accept/reject decisions then run in ggml's order on those values.
//! The results are therefore bit-identical to the one-at-a-time port (checked against it in
//! the tests below, and against llama-quantize in `quantize/tests/quants_llama.rs`).
//!
//! One wrinkle: in `make_qkx2/3_quants` an accepted candidate moves the minimum, which the
//! later candidates' levels depend on. A batch is computed for the current minimum; when a
//! candidate is accepted with a different minimum, the rest of its batch is discarded and
//! the search resumes after it.

use super::helpers::{cmax, cmin, nearest_int, Search};

/// Candidates per batch in the `make_qkx*` search.
const QKX_LANES: usize = 8;
/// The 18 candidates of `make_qx_quants` (`is` in -9..=9 without 0), padded to 20.
const QX_LANES: usize = 20;
/// Largest group the searches handle (ggml uses 16 and 32).
pub(crate) const MAX_GROUP: usize = 32;

/// The state of ggml's `make_qkx2/3_quants` after its first pass, where the candidate
/// loop starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QkxStart {
    /// The group's maximum.
    pub max: f32,
    /// Sum of the weights.
    pub sum_w: f32,
    /// Weighted sum of the values.
    pub sum_x: f32,
    /// Weighted error of the first pass.
    pub best_error: f32,
    /// The first pass's scale.
    pub scale: f32,
    /// The (non-positive) minimum.
    pub min: f32,
}

/// The `for (int is = 0; is <= nstep; ++is)` loop of `make_qkx2_quants` /
/// `make_qkx3_quants`, given the state after the first pass. Updates `l`, and returns the
/// final `(scale, min)`.
#[inline(always)]
fn qkx_body(x: &[f32], weights: &[f32], l: &mut [u8], p: Search, start: QkxStart) -> (f32, f32) {
    let QkxStart {
        max,
        sum_w,
        sum_x,
        mut best_error,
        mut scale,
        mut min,
    } = start;
    let n = x.len();
    assert!(n <= MAX_GROUP && weights.len() == n && l.len() == n);
    let nmax = p.nmax;
    let mut is0 = 0i32;
    while is0 <= p.nstep {
        let range = max - min;
        let mut iscale = [0.0f32; QKX_LANES];
        for (c, s) in iscale.iter_mut().enumerate() {
            *s = (p.rmin + p.rdelta * (is0 + c as i32) as f32 + nmax as f32) / range;
        }
        let mut lq = [[0u8; QKX_LANES]; MAX_GROUP];
        let mut sum_l = [0.0f32; QKX_LANES];
        let mut sum_l2 = [0.0f32; QKX_LANES];
        let mut sum_xl = [0.0f32; QKX_LANES];
        for i in 0..n {
            let xm = x[i] - min;
            let (w, xi) = (weights[i], x[i]);
            for c in 0..QKX_LANES {
                let li = cmax(0, cmin(nmax, nearest_int(iscale[c] * xm)));
                lq[i][c] = li as u8;
                let lf = li as f32;
                sum_l[c] += w * lf;
                sum_l2[c] += w * lf * lf;
                sum_xl[c] += w * lf * xi;
            }
        }
        let mut d = [0.0f32; QKX_LANES];
        let mut this_scale = [0.0f32; QKX_LANES];
        let mut this_min = [0.0f32; QKX_LANES];
        for c in 0..QKX_LANES {
            d[c] = sum_w * sum_l2[c] - sum_l[c] * sum_l[c];
            this_scale[c] = (sum_w * sum_xl[c] - sum_x * sum_l[c]) / d[c];
            this_min[c] = (sum_l2[c] * sum_x - sum_l[c] * sum_xl[c]) / d[c];
            if this_min[c] > 0.0 {
                this_min[c] = 0.0;
                this_scale[c] = sum_xl[c] / sum_l2[c];
            }
        }
        let mut err = [0.0f32; QKX_LANES];
        for i in 0..n {
            let (w, xi) = (weights[i], x[i]);
            for c in 0..QKX_LANES {
                let mut diff = this_scale[c] * lq[i][c] as f32 + this_min[c] - xi;
                diff = if p.use_mad { diff.abs() } else { diff * diff };
                err[c] += w * diff;
            }
        }
        let mut next = is0 + QKX_LANES as i32;
        for c in 0..QKX_LANES {
            let is = is0 + c as i32;
            if is > p.nstep {
                break;
            }
            if d[c] > 0.0 && err[c] < best_error {
                for i in 0..n {
                    l[i] = lq[i][c];
                }
                best_error = err[c];
                scale = this_scale[c];
                let moved = this_min[c].to_bits() != min.to_bits();
                min = this_min[c];
                if moved {
                    next = is + 1;
                    break;
                }
            }
        }
        is0 = next;
    }
    (scale, min)
}

/// The `for (int is = -9; is <= 9; ++is)` loop of `make_qx_quants` with per-element weights
/// `w`, given the first pass's `scale` and `best`. Updates `l`; returns the final scale.
#[inline(always)]
fn qx_body(
    nmax: i32,
    x: &[f32],
    w: &[f32],
    l: &mut [i8],
    max: f32,
    mut scale: f32,
    mut best: f32,
) -> f32 {
    let n = x.len();
    assert!(n <= MAX_GROUP && w.len() == n && l.len() == n);
    let mut iscale = [0.0f32; QX_LANES];
    for (c, s) in iscale.iter_mut().enumerate() {
        *s = -(nmax as f32 + 0.1f32 * lane_is(c) as f32) / max;
    }
    let mut sumlx = [0.0f32; QX_LANES];
    let mut suml2 = [0.0f32; QX_LANES];
    for i in 0..n {
        let (wi, xi) = (w[i], x[i]);
        let wx = wi * xi;
        for c in 0..QX_LANES {
            let li = cmax(-nmax, cmin(nmax - 1, nearest_int(iscale[c] * xi)));
            let lf = li as f32;
            sumlx[c] += wx * lf;
            suml2[c] += wi * lf * lf;
        }
    }
    for c in 0..18 {
        if suml2[c] > 0.0 && sumlx[c] * sumlx[c] > best * suml2[c] {
            for i in 0..n {
                let li = nearest_int(iscale[c] * x[i]);
                l[i] = (nmax + cmax(-nmax, cmin(nmax - 1, li))) as i8;
            }
            scale = sumlx[c] / suml2[c];
            best = scale * sumlx[c];
        }
    }
    scale
}

/// [`qkx_body`] compiled for AVX2 (wider lanes; no FMA, so the same bits).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn qkx_avx2(
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    p: Search,
    start: QkxStart,
) -> (f32, f32) {
    qkx_body(x, weights, l, p, start)
}

/// [`qx_body`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn qx_avx2(
    nmax: i32,
    x: &[f32],
    w: &[f32],
    l: &mut [i8],
    max: f32,
    scale: f32,
    best: f32,
) -> f32 {
    qx_body(nmax, x, w, l, max, scale, best)
}

/// Whether the AVX2 builds can run (std caches the CPUID result).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// The `for (int is = 0; is <= nstep; ++is)` loop of `make_qkx2_quants` /
/// `make_qkx3_quants`, from the state after the first pass. Updates `l`, and returns the
/// final `(scale, min)`.
pub(crate) fn qkx_candidates(
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    p: Search,
    start: QkxStart,
) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 support was just checked.
        return unsafe { qkx_avx2(x, weights, l, p, start) };
    }
    qkx_body(x, weights, l, p, start)
}

/// The `for (int is = -9; is <= 9; ++is)` loop of `make_qx_quants` with per-element weights
/// `w`, given the first pass's `scale` and `best`. Updates `l`; returns the final scale.
pub(crate) fn qx_candidates(
    nmax: i32,
    x: &[f32],
    w: &[f32],
    l: &mut [i8],
    max: f32,
    scale: f32,
    best: f32,
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 support was just checked.
        return unsafe { qx_avx2(nmax, x, w, l, max, scale, best) };
    }
    qx_body(nmax, x, w, l, max, scale, best)
}

/// ggml's `is` for lane `c`: -9..=-1 then 1..=9 (lanes 18 and 19 are padding).
fn lane_is(c: usize) -> i32 {
    let c = c as i32;
    if c < 9 {
        c - 9
    } else {
        c - 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's candidate loop of `make_qkx2/3_quants`, one candidate at a time (the oracle).
    fn qkx_reference(
        x: &[f32],
        weights: &[f32],
        l: &mut [u8],
        p: Search,
        start: QkxStart,
    ) -> (f32, f32) {
        let QkxStart {
            max,
            sum_w,
            sum_x,
            mut best_error,
            mut scale,
            mut min,
        } = start;
        let n = x.len();
        let mut laux = vec![0u8; n];
        for is in 0..=p.nstep {
            let iscale = (p.rmin + p.rdelta * is as f32 + p.nmax as f32) / (max - min);
            let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
            for i in 0..n {
                let li = cmax(0, cmin(p.nmax, nearest_int(iscale * (x[i] - min))));
                laux[i] = li as u8;
                let (w, lf) = (weights[i], li as f32);
                sum_l += w * lf;
                sum_l2 += w * lf * lf;
                sum_xl += w * lf * x[i];
            }
            let d = sum_w * sum_l2 - sum_l * sum_l;
            if d > 0.0 {
                let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
                let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
                if this_min > 0.0 {
                    this_min = 0.0;
                    this_scale = sum_xl / sum_l2;
                }
                let mut cur_error = 0.0f32;
                for i in 0..n {
                    let mut diff = this_scale * laux[i] as f32 + this_min - x[i];
                    diff = if p.use_mad { diff.abs() } else { diff * diff };
                    cur_error += weights[i] * diff;
                }
                if cur_error < best_error {
                    l.copy_from_slice(&laux);
                    best_error = cur_error;
                    scale = this_scale;
                    min = this_min;
                }
            }
        }
        (scale, min)
    }

    /// ggml's candidate loop of `make_qx_quants`, one candidate at a time (the oracle).
    fn qx_reference(
        nmax: i32,
        x: &[f32],
        w: &[f32],
        l: &mut [i8],
        max: f32,
        mut scale: f32,
        mut best: f32,
    ) -> f32 {
        for is in -9..=9 {
            if is == 0 {
                continue;
            }
            let iscale = -(nmax as f32 + 0.1f32 * is as f32) / max;
            let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
            for i in 0..x.len() {
                let li = cmax(-nmax, cmin(nmax - 1, nearest_int(iscale * x[i])));
                let lf = li as f32;
                sumlx += w[i] * x[i] * lf;
                suml2 += w[i] * lf * lf;
            }
            if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
                for i in 0..x.len() {
                    let li = nearest_int(iscale * x[i]);
                    l[i] = (nmax + cmax(-nmax, cmin(nmax - 1, li))) as i8;
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        scale
    }

    struct Rng(u64);
    impl Rng {
        fn f(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    /// A group of `n` values: mixed signs, one-sided, sparse or tied, at several scales.
    fn group(rng: &mut Rng, n: usize, kind: u32) -> Vec<f32> {
        let scale = [1e-3f32, 0.05, 1.0, 40.0][(kind / 4 % 4) as usize];
        (0..n)
            .map(|i| {
                let v = rng.f();
                scale
                    * match kind % 4 {
                        0 => v,
                        1 => v.abs() + 0.2,
                        2 => {
                            if i % 5 == 0 {
                                v
                            } else {
                                0.0
                            }
                        }
                        _ => (v * 4.0).round() / 4.0,
                    }
            })
            .collect()
    }

    #[test]
    fn batched_qkx_search_matches_one_at_a_time() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let searches = [
            (15, -1.0, 0.1, 20, false),
            (31, -0.5, 0.1, 15, false),
            (3, -0.5, 0.1, 15, true),
            (15, -0.9, 0.05, 36, false),
            (3, -0.9, 0.05, 36, false),
        ];
        for iter in 0..4000u32 {
            let (nmax, rmin, rdelta, nstep, use_mad) = searches[iter as usize % searches.len()];
            let p = Search {
                nmax,
                rmin,
                rdelta,
                nstep,
                use_mad,
            };
            let n = if nmax == 3 { 16 } else { 32 };
            let x = group(&mut rng, n, iter / 5);
            let w: Vec<f32> = x.iter().map(|v| v.abs() + rng.f().abs()).collect();
            let min = x.iter().cloned().fold(x[0], f32::min).min(0.0);
            let max = x.iter().cloned().fold(x[0], f32::max);
            if max == min {
                continue;
            }
            let (sum_w, sum_x) = x
                .iter()
                .zip(&w)
                .skip(1)
                .fold((w[0], w[0] * x[0]), |(sw, sx), (&xi, &wi)| {
                    (sw + wi, sx + wi * xi)
                });
            let iscale = nmax as f32 / (max - min);
            let scale = 1.0 / iscale;
            let mut l0 = vec![0u8; n];
            let mut best = 0.0f32;
            for i in 0..n {
                l0[i] = cmax(0, cmin(nmax, nearest_int(iscale * (x[i] - min)))) as u8;
                let diff = scale * l0[i] as f32 + min - x[i];
                best += w[i] * if use_mad { diff.abs() } else { diff * diff };
            }
            let start = QkxStart {
                max,
                sum_w,
                sum_x,
                best_error: best,
                scale,
                min,
            };
            let mut want_l = l0.clone();
            let want = qkx_reference(&x, &w, &mut want_l, p, start);
            let mut got_l = l0.clone();
            let got = qkx_body(&x, &w, &mut got_l, p, start);
            assert_eq!(
                (got.0.to_bits(), got.1.to_bits(), &got_l),
                (want.0.to_bits(), want.1.to_bits(), &want_l),
                "{iter}"
            );
            let mut got_l = l0.clone();
            let got = qkx_candidates(&x, &w, &mut got_l, p, start);
            assert_eq!(
                (got.0.to_bits(), got.1.to_bits(), &got_l),
                (want.0.to_bits(), want.1.to_bits(), &want_l),
                "{iter}"
            );
        }
    }

    #[test]
    fn batched_qx_search_matches_one_at_a_time() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        for iter in 0..4000u32 {
            let nmax = [4, 8, 16, 32][iter as usize % 4];
            let n = if iter % 3 == 0 { 16 } else { 32 };
            let x = group(&mut rng, n, iter / 4);
            let w: Vec<f32> = x.iter().map(|v| v * v + rng.f().abs() * 0.1).collect();
            let (mut max, mut amax) = (0.0f32, 0.0f32);
            for &v in &x {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax < 1e-15 {
                continue;
            }
            let (scale, best) = (1.0 / (-(nmax as f32) / max), rng.f().abs());
            let l0: Vec<i8> = (0..n).map(|i| (i % 7) as i8).collect();
            let mut want_l = l0.clone();
            let want = qx_reference(nmax, &x, &w, &mut want_l, max, scale, best);
            let mut got_l = l0.clone();
            let got = qx_body(nmax, &x, &w, &mut got_l, max, scale, best);
            assert_eq!((got.to_bits(), &got_l), (want.to_bits(), &want_l), "{iter}");
            let mut got_l = l0.clone();
            let got = qx_candidates(nmax, &x, &w, &mut got_l, max, scale, best);
            assert_eq!((got.to_bits(), &got_l), (want.to_bits(), &want_l), "{iter}");
        }
    }
}
