//! Q4_K, Q5_K and Q6_K: ports of ggml's `quantize_row_q{4,5,6}_K_ref` (no importance
//! matrix) and `quantize_row_q{4,5,6}_K_impl` (with one).
//!
//! Each function quantizes one row `x` (a multiple of 256 elements) into `out`.

use bytemuck::Zeroable;
use half::f16;
use pith_runtime::quant::blocks::{BlockQ4K, BlockQ5K, BlockQ6K};
use pith_runtime::quant::QK_K;

use super::helpers::{
    cmax, cmin, fp16_to_fp32, fp32_to_fp16, make_qkx2_quants, make_qkx3_quants, make_qp_quants,
    make_qx_quants, nearest_int, Search, GROUP_MAX_EPS,
};
use super::put_block;

/// ggml's `get_scale_min_k4`.
fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs 8 six-bit scales and mins into the 12 `scales` bytes of Q4_K/Q5_K.
fn pack_scales_mins(scales: &mut [u8; 12], ls: &[u8; 8], lm: &[u8; 8]) {
    for j in 0..QK_K / 32 {
        let (lsj, lmj) = (ls[j], lm[j]);
        if j < 4 {
            scales[j] = lsj;
            scales[j + 4] = lmj;
        } else {
            scales[j + 4] = (lsj & 0xF) | ((lmj & 0xF) << 4);
            scales[j - 4] |= (lsj >> 4) << 6;
            scales[j] |= (lmj >> 4) << 6;
        }
    }
}

/// The sub-block scales and mins of one Q4_K/Q5_K super-block, found by the search ggml's
/// `_ref` (`make_qkx2_quants`) or `_impl` (`make_qkx3_quants`) runs, plus the quants.
struct SubBlocks {
    scales: [f32; 8],
    mins: [f32; 8],
    l: [u8; QK_K],
}

/// The `_ref` path of Q4_K/Q5_K: returns `(d, dmin, ls, lm)` before packing.
fn ref_scales(x: &[f32], search: Search, sb: &mut SubBlocks) -> (f32, f32, [u8; 8], [u8; 8]) {
    let mut weights = [0.0f32; 32];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..QK_K / 32 {
        let xg = &x[32 * j..32 * (j + 1)];
        let mut sum_x2 = 0.0f32;
        for &v in xg {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, &v) in weights.iter_mut().zip(xg) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(xg, &weights, &mut sb.l[32 * j..32 * (j + 1)], search);
        sb.scales[j] = scale;
        sb.mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..QK_K / 32 {
        ls[j] = cmin(63, nearest_int(inv_scale * sb.scales[j]) as u8);
        lm[j] = cmin(63, nearest_int(inv_min * sb.mins[j]) as u8);
    }
    (max_scale / 63.0, max_min / 63.0, ls, lm)
}

/// The `_impl` path of Q4_K/Q5_K (with an importance matrix `qw` for this super-block).
fn impl_scales(
    x: &[f32],
    qw: &[f32],
    nmax: i32,
    sb: &mut SubBlocks,
) -> (f32, f32, [u8; 8], [u8; 8]) {
    let search = Search {
        nmax,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    };
    let mut weights = [0.0f32; 32];
    let mut sw = [0.0f32; 8];
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    let sigma2 = 2.0 * sum_x2 / QK_K as f32;
    for j in 0..QK_K / 32 {
        let xg = &x[32 * j..32 * (j + 1)];
        for l in 0..32 {
            weights[l] = qw[32 * j + l] * (sigma2 + xg[l] * xg[l]).sqrt();
        }
        let mut sumw = 0.0f32;
        for &w in &weights {
            sumw += w;
        }
        sw[j] = sumw;
        let (scale, min) = make_qkx3_quants(xg, &weights, &mut sb.l[32 * j..32 * (j + 1)], search);
        sb.scales[j] = scale;
        sb.mins[j] = min;
    }
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let d_block = make_qp_quants(63, &sb.scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &sb.mins, &mut lm, &sw);
    // Q5_K's `_impl` clamps the stored bytes to 63 (they exceed it only when make_qp_quants
    // wrapped a negative level); Q4_K's does not.
    if nmax == 31 {
        for j in 0..8 {
            ls[j] = cmin(63, ls[j]);
            lm[j] = cmin(63, lm[j]);
        }
    }
    (d_block, m_block, ls, lm)
}

/// Requantizes the 32-element groups against the stored scales/mins; `nmax` 15 or 31.
fn requantize_k(x: &[f32], scales: &[u8; 12], d: f16, dmin: f16, nmax: i32, l: &mut [u8; QK_K]) {
    let d_all = fp16_to_fp32(d.to_bits());
    let m_all = fp16_to_fp32(dmin.to_bits());
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, scales);
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = m_all * m as f32;
        for ii in 0..32 {
            let li = nearest_int((x[32 * j + ii] + dm) / d);
            l[32 * j + ii] = cmax(0, cmin(nmax, li)) as u8;
        }
    }
}

/// ggml's `quantize_row_q4_K_ref` / `quantize_row_q4_K_impl`.
pub(crate) fn quantize_row_q4_k(x: &[f32], out: &mut [u8], imatrix: Option<&[f32]>) {
    const SEARCH: Search = Search {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    for (ib, xs) in x.chunks_exact(QK_K).enumerate() {
        let mut sb = SubBlocks {
            scales: [0.0; 8],
            mins: [0.0; 8],
            l: [0; QK_K],
        };
        let (d, dmin, ls, lm) = match imatrix {
            None => ref_scales(xs, SEARCH, &mut sb),
            Some(qw) => impl_scales(xs, &qw[QK_K * ib..QK_K * (ib + 1)], 15, &mut sb),
        };
        let mut y = BlockQ4K::zeroed();
        pack_scales_mins(&mut y.scales, &ls, &lm);
        y.d = f16::from_bits(fp32_to_fp16(d));
        y.dmin = f16::from_bits(fp32_to_fp16(dmin));
        requantize_k(xs, &y.scales, y.d, y.dmin, 15, &mut sb.l);
        for (n, q) in y.qs.chunks_exact_mut(32).enumerate() {
            let j = 64 * n;
            for i in 0..32 {
                q[i] = sb.l[j + i] | (sb.l[j + i + 32] << 4);
            }
        }
        put_block(out, ib, &y);
    }
}

/// ggml's `quantize_row_q5_K_ref` / `quantize_row_q5_K_impl`.
pub(crate) fn quantize_row_q5_k(x: &[f32], out: &mut [u8], imatrix: Option<&[f32]>) {
    const SEARCH: Search = Search {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    for (ib, xs) in x.chunks_exact(QK_K).enumerate() {
        let mut sb = SubBlocks {
            scales: [0.0; 8],
            mins: [0.0; 8],
            l: [0; QK_K],
        };
        let (d, dmin, ls, lm) = match imatrix {
            None => ref_scales(xs, SEARCH, &mut sb),
            Some(qw) => impl_scales(xs, &qw[QK_K * ib..QK_K * (ib + 1)], 31, &mut sb),
        };
        let mut y = BlockQ5K::zeroed();
        pack_scales_mins(&mut y.scales, &ls, &lm);
        y.d = f16::from_bits(fp32_to_fp16(d));
        y.dmin = f16::from_bits(fp32_to_fp16(dmin));
        requantize_k(xs, &y.scales, y.d, y.dmin, 31, &mut sb.l);

        let (mut m1, mut m2) = (1u8, 2u8);
        for n in 0..QK_K / 64 {
            let base = 64 * n;
            for j in 0..32 {
                let mut l1 = sb.l[base + j];
                if l1 > 15 {
                    l1 -= 16;
                    y.qh[j] |= m1;
                }
                let mut l2 = sb.l[base + j + 32];
                if l2 > 15 {
                    l2 -= 16;
                    y.qh[j] |= m2;
                }
                y.qs[32 * n + j] = l1 | (l2 << 4);
            }
            m1 = m1.wrapping_shl(2);
            m2 = m2.wrapping_shl(2);
        }
        put_block(out, ib, &y);
    }
}

/// ggml's `quantize_row_q6_K_ref` / `quantize_row_q6_K_impl` (the importance weights are
/// used as they are, without ggml's `sigma2` term, which is commented out there).
pub(crate) fn quantize_row_q6_k(x: &[f32], out: &mut [u8], imatrix: Option<&[f32]>) {
    for (ib, xs) in x.chunks_exact(QK_K).enumerate() {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; QK_K / 16];
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for g in 0..QK_K / 16 {
            let xg = &xs[16 * g..16 * (g + 1)];
            let qw = imatrix.map(|qw| &qw[QK_K * ib + 16 * g..QK_K * ib + 16 * (g + 1)]);
            let scale = make_qx_quants(32, xg, &mut l[16 * g..16 * (g + 1)], 1, qw);
            scales[g] = scale;
            let abs_scale = scale.abs();
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }

        let mut y = BlockQ6K::zeroed();
        if max_abs_scale < GROUP_MAX_EPS {
            y.d = f16::from_bits(fp32_to_fp16(0.0));
            put_block(out, ib, &y);
            continue;
        }

        let iscale = -128.0f32 / max_scale;
        y.d = f16::from_bits(fp32_to_fp16(1.0 / iscale));
        for g in 0..QK_K / 16 {
            y.scales[g] = cmin(127, nearest_int(iscale * scales[g])) as i8;
        }
        let d_all = fp16_to_fp32(y.d.to_bits());
        for j in 0..QK_K / 16 {
            let d = d_all * y.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let li = nearest_int(xs[16 * j + ii] / d);
                l[16 * j + ii] = (cmax(-32, cmin(31, li)) + 32) as i8;
            }
        }

        for h in 0..QK_K / 128 {
            let j = 128 * h;
            let (ql, qh) = (
                &mut y.ql[64 * h..64 * (h + 1)],
                &mut y.qh[32 * h..32 * (h + 1)],
            );
            for i in 0..32 {
                let q1 = (l[j + i] as u8) & 0xF;
                let q2 = (l[j + i + 32] as u8) & 0xF;
                let q3 = (l[j + i + 64] as u8) & 0xF;
                let q4 = (l[j + i + 96] as u8) & 0xF;
                ql[i] = q1 | (q3 << 4);
                ql[i + 32] = q2 | (q4 << 4);
                qh[i] = ((l[j + i] as u8) >> 4)
                    | (((l[j + i + 32] as u8) >> 4) << 2)
                    | (((l[j + i + 64] as u8) >> 4) << 4)
                    | (((l[j + i + 96] as u8) >> 4) << 6);
            }
        }
        put_block(out, ib, &y);
    }
}
