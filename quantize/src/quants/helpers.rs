//! Ports of the helper routines at the top of ggml's `ggml-quants.c` (the "2-6 bit
//! quantization in super-blocks" section): `nearest_int`, `make_qx_quants`,
//! `make_q3_quants`, `make_qkx2_quants`, `make_qkx3_quants`, `make_qp_quants`, plus ggml's
//! scalar `fp32 → fp16` conversion and the C float → integer conversions the reference
//! quantizers rely on.
//!
//! Every expression keeps ggml's operand order and `f32` precision: Rust never contracts
//! `a * b + c` into a fused multiply-add and never reassociates, and ggml's own base library
//! (where these functions live) is built without FMA, so the same inputs give the same bits.

/// ggml's `GROUP_MAX_EPS`: a group whose largest magnitude is below this is all zeros.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

use super::search::{qkx_candidates, qx_candidates, QkxStart, MAX_GROUP};

/// ggml's `nearest_int`: round to nearest (ties to even) through the `1.5 * 2^23` trick.
///
/// Only meaningful for `|fval| <= 4194303`; outside that range it returns the same garbage
/// ggml's does (the C `assert` is compiled out in release builds).
#[inline(always)]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0f32;
    let i = val.to_bits() as i32;
    (i & 0x007f_ffff).wrapping_sub(0x0040_0000)
}

/// C's `(int)f` as x86-64 compiles it (`cvttss2si`): truncation toward zero, and the
/// "integer indefinite" value `i32::MIN` for NaN and out-of-range inputs. Casting the result
/// on to a narrower integer type with `as` truncates, as the C conversion does.
#[inline(always)]
pub(crate) fn c_f32_to_i32(v: f32) -> i32 {
    if v.is_nan() || !(-2_147_483_648.0f32..2_147_483_648.0f32).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

/// `(int)roundf(v)` as x86-64 compiles it: round half away from zero, then
/// [`c_f32_to_i32`]. Computed without a libm call (`f32::round` is one on baseline x86-64):
/// `v - trunc(v)` is exact for every `|v| < 2^31`, so the half test is exact too.
#[inline(always)]
pub(crate) fn c_roundf_to_i32(v: f32) -> i32 {
    if v.is_nan() || !(-2_147_483_648.0f32..2_147_483_648.0f32).contains(&v) {
        return i32::MIN;
    }
    let t = v as i32;
    let frac = v - t as f32;
    // Branch-free: the half test is a coin flip on real data.
    t.wrapping_add((frac >= 0.5) as i32)
        .wrapping_sub((frac <= -0.5) as i32)
}

/// ggml's `ggml_compute_fp32_to_fp16` (`GGML_FP32_TO_FP16`): round to nearest even, NaN to
/// a quiet NaN (`0x7e00` with the sign), overflow to infinity.
#[inline(always)]
pub(crate) fn fp32_to_fp16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 0x1.0p+112f
    let scale_to_zero = f32::from_bits(0x0880_0000); // 0x1.0p-110f
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;

    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let mut bias = shl1_w & 0xFF00_0000;
    if bias < 0x7100_0000 {
        bias = 0x7100_0000;
    }

    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    let magnitude = if shl1_w > 0xFF00_0000 {
        0x7E00
    } else {
        nonsign
    };
    ((sign >> 16) | magnitude) as u16
}

/// ggml's `GGML_FP16_TO_FP32` (exact).
#[inline(always)]
pub(crate) fn fp16_to_fp32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// `MIN(a, b)` / `MAX(a, b)` exactly as ggml's macros, including their NaN behaviour.
#[inline(always)]
pub(crate) fn cmin<T: PartialOrd>(a: T, b: T) -> T {
    if a < b {
        a
    } else {
        b
    }
}

/// See [`cmin`].
#[inline(always)]
pub(crate) fn cmax<T: PartialOrd>(a: T, b: T) -> T {
    if a > b {
        a
    } else {
        b
    }
}

/// The per-element error weight of `make_qx_quants` when no explicit weights are given.
#[inline(always)]
fn qx_weight(qw: Option<&[f32]>, rmse_type: i32, x: f32, i: usize) -> f32 {
    match qw {
        Some(w) => w[i],
        None => match rmse_type {
            1 => x * x,
            2 => 1.0,
            3 => x.abs(),
            _ => x.abs().sqrt(),
        },
    }
}

/// ggml's `make_qx_quants`: symmetric quantization of `x` to `[0, 2*nmax)` in `l`, returning
/// the scale. `rmse_type` 0 skips the search; a negative value returns early, as in ggml.
pub(crate) fn make_qx_quants(
    nmax: i32,
    x: &[f32],
    l: &mut [i8],
    rmse_type: i32,
    qw: Option<&[f32]>,
) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &xi in x {
        let ax = xi.abs();
        if ax > amax {
            amax = ax;
            max = xi;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let iscale = (-nmax) as f32 / max;
    if rmse_type == 0 {
        for i in 0..n {
            let li = nearest_int(iscale * x[i]);
            l[i] = (nmax + cmax(-nmax, cmin(nmax - 1, li))) as i8;
        }
        return 1.0 / iscale;
    }
    let mut rmse_type = rmse_type;
    let mut return_early = false;
    if rmse_type < 0 {
        rmse_type = -rmse_type;
        return_early = true;
    }
    let mut wbuf = [0.0f32; MAX_GROUP];
    for i in 0..n {
        wbuf[i] = qx_weight(qw, rmse_type, x[i], i);
    }
    let w = &wbuf[..n];
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let mut li = nearest_int(iscale * x[i]);
        li = cmax(-nmax, cmin(nmax - 1, li));
        l[i] = (li + nmax) as i8;
        let lf = li as f32;
        sumlx += w[i] * x[i] * lf;
        suml2 += w[i] * lf * lf;
    }
    let scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 {
            0.5 * (scale + 1.0 / iscale)
        } else {
            1.0 / iscale
        };
    }
    let best = scale * sumlx;
    qx_candidates(nmax, x, w, &mut l[..n], max, scale, best)
}

/// ggml's `make_q3_quants`: as [`make_qx_quants`] with an iterative per-element refinement
/// (`do_rmse`), weights `x²`.
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8], do_rmse: bool) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &xi in x {
        let ax = xi.abs();
        if ax > amax {
            amax = ax;
            max = xi;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let iscale = (-nmax) as f32 / max;
    if do_rmse {
        let mut sumlx = 0.0f32;
        let mut suml2 = 0.0f32;
        for i in 0..n {
            let mut li = nearest_int(iscale * x[i]);
            li = cmax(-nmax, cmin(nmax - 1, li));
            l[i] = li as i8;
            let w = x[i] * x[i];
            let lf = li as f32;
            sumlx += w * x[i] * lf;
            suml2 += w * lf * lf;
        }
        for _itry in 0..5 {
            let mut n_changed = 0;
            for i in 0..n {
                let w = x[i] * x[i];
                let li = l[i] as f32;
                let mut slx = sumlx - w * x[i] * li;
                if slx > 0.0 {
                    let mut sl2 = suml2 - w * li * li;
                    let mut new_l = nearest_int(x[i] * sl2 / slx);
                    new_l = cmax(-nmax, cmin(nmax - 1, new_l));
                    if new_l != l[i] as i32 {
                        let nl = new_l as f32;
                        slx += w * x[i] * nl;
                        sl2 += w * nl * nl;
                        if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            l[i] = new_l as i8;
                            sumlx = slx;
                            suml2 = sl2;
                            n_changed += 1;
                        }
                    }
                }
            }
            if n_changed == 0 {
                break;
            }
        }
        for li in l[..n].iter_mut() {
            *li = (*li as i32 + nmax) as i8;
        }
        return if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
    }
    for i in 0..n {
        let mut li = nearest_int(iscale * x[i]);
        li = cmax(-nmax, cmin(nmax - 1, li));
        l[i] = (li + nmax) as i8;
    }
    1.0 / iscale
}

/// Parameters of the scale search in [`make_qkx2_quants`] / [`make_qkx3_quants`].
#[derive(Clone, Copy)]
pub(crate) struct Search {
    /// Levels (`nmax`): quants are in `0..=nmax`.
    pub nmax: i32,
    /// First offset added to `nmax` when trying scales.
    pub rmin: f32,
    /// Step between tried offsets.
    pub rdelta: f32,
    /// Number of steps (`nstep + 1` scales are tried).
    pub nstep: i32,
    /// Minimise the absolute error instead of the squared error.
    pub use_mad: bool,
}

/// ggml's `make_qkx2_quants`: asymmetric quantization (`scale * l - the_min`) with a weighted
/// least-squares search over `nstep + 1` candidate scales. Returns `(scale, the_min)`.
pub(crate) fn make_qkx2_quants(x: &[f32], weights: &[f32], l: &mut [u8], p: Search) -> (f32, f32) {
    qkx_search(x, weights, l, p, true)
}

/// ggml's `make_qkx3_quants` with explicit weights (every caller in ggml passes them). It
/// differs from [`make_qkx2_quants`] only in the degenerate-range test (`max <= min`).
pub(crate) fn make_qkx3_quants(x: &[f32], weights: &[f32], l: &mut [u8], p: Search) -> (f32, f32) {
    qkx_search(x, weights, l, p, false)
}

/// The shared body of `make_qkx2_quants` (`qkx2 == true`: empty range when `max == min`)
/// and `make_qkx3_quants` (empty range when `max <= min`).
#[inline(always)]
fn qkx_search(x: &[f32], weights: &[f32], l: &mut [u8], p: Search, qkx2: bool) -> (f32, f32) {
    let n = x.len();
    // Equal lengths up front let the compiler drop the bounds checks in the hot loops.
    let (weights, l) = (&weights[..n], &mut l[..n]);
    let nmax = p.nmax;
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    let empty = if qkx2 { max == min } else { max <= min };
    if empty {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let iscale = nmax as f32 / (max - min);
    let scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let li = nearest_int(iscale * (x[i] - min));
        l[i] = cmax(0, cmin(nmax, li)) as u8;
        let mut diff = scale * l[i] as f32 + min - x[i];
        diff = if p.use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    let start = QkxStart {
        max,
        sum_w,
        sum_x,
        best_error,
        scale,
        min,
    };
    let (scale, min) = qkx_candidates(x, weights, l, p, start);
    (scale, -min)
}

/// ggml's `make_qp_quants`: quantizes the non-negative sub-block scales (or mins) `x` to
/// `0..=nmax` with weights `quant_weights`, returning the super-block scale.
pub(crate) fn make_qp_quants(nmax: i32, x: &[f32], l: &mut [u8], quant_weights: &[f32]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    for &xi in x {
        max = cmax(max, xi);
    }
    if max < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for i in 0..n {
        l[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * l[i] as f32;
        let w = quant_weights[i];
        best_mse += w * diff * diff;
    }
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1f32 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let mut li = nearest_int(iscale_is * x[i]);
            li = cmin(nmax, li);
            let diff = x[i] - scale_is * li as f32;
            let w = quant_weights[i];
            mse += w * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let mut li = nearest_int(iscale * x[i]);
        li = cmin(nmax, li);
        l[i] = li as u8;
        let w = quant_weights[i];
        // ggml accumulates the `int` value here, not the stored `uint8_t`.
        let lf = li as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    for _itry in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = quant_weights[i];
            let li = l[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let mut new_l = nearest_int(x[i] * sl2 / slx);
                new_l = cmin(nmax, new_l);
                if new_l != l[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-7.4), -7);
        assert_eq!(nearest_int(31.6), 32);
    }

    #[test]
    fn fp16_conversion_matches_ieee_round_to_nearest_even() {
        // half's conversion is IEEE round-to-nearest-even; ggml's bit trick must agree on
        // every finite and infinite value (they differ only in NaN payloads).
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let f = f32::from_bits((state >> 32) as u32);
            if f.is_nan() {
                assert_eq!(fp32_to_fp16(f) & 0x7fff, 0x7e00);
                continue;
            }
            assert_eq!(
                fp32_to_fp16(f),
                half::f16::from_f32(f).to_bits(),
                "{f:e} ({:#x})",
                f.to_bits()
            );
        }
        assert_eq!(fp32_to_fp16(65520.0), 0x7c00);
        assert_eq!(fp32_to_fp16(65519.99), 0x7bff);
        assert_eq!(fp32_to_fp16(f32::NEG_INFINITY), 0xfc00);
    }

    #[test]
    fn rounding_matches_roundf() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let check = |v: f32| {
            assert_eq!(c_roundf_to_i32(v), c_f32_to_i32(v.round()), "{v:e}");
        };
        for v in [
            0.5,
            -0.5,
            1.5,
            -2.5,
            0.49999997,
            -0.49999997,
            126.5,
            8388607.5,
            2.1e9,
        ] {
            check(v);
        }
        for v in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            3e9,
            -2_147_483_648.0,
        ] {
            check(v);
        }
        for _ in 0..1_000_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bits = state as u32;
            check(f32::from_bits(bits));
            check(((bits >> 8) as f32 / 65536.0 - 128.0) * 1.0001);
        }
    }

    #[test]
    fn c_conversion_mimics_cvttss2si() {
        assert_eq!(c_f32_to_i32(8.9), 8);
        assert_eq!(c_f32_to_i32(-8.9), -8);
        assert_eq!(c_f32_to_i32(f32::NAN), i32::MIN);
        assert_eq!(c_f32_to_i32(3e9), i32::MIN);
        assert_eq!(c_f32_to_i32(-3e9), i32::MIN);
    }
}
