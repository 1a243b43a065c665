//! Q2_K and Q3_K: ports of ggml's `quantize_row_q2_K_ref` / `quantize_row_q2_K_impl` and
//! `quantize_row_q3_K_ref` / `quantize_row_q3_K_impl`.
//!
//! Each function quantizes one row `x` (a multiple of 256 elements) into `out`.

use bytemuck::Zeroable;
use half::f16;
use pith_runtime::quant::blocks::{BlockQ2K, BlockQ3K};
use pith_runtime::quant::QK_K;

use super::helpers::{
    cmax, cmin, fp16_to_fp32, fp32_to_fp16, make_q3_quants, make_qkx2_quants, make_qkx3_quants,
    make_qp_quants, make_qx_quants, nearest_int, Search,
};
use super::put_block;

/// Packs 256 two-bit quants `l` into `qs` as ggml's Q2_K/Q3_K do.
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for j in (0..QK_K).step_by(128) {
        for i in 0..32 {
            qs[j / 4 + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

/// Requantizes a Q2_K block's quants against its stored (fp16-rounded) scales.
fn q2k_requantize(x: &[f32], y: &BlockQ2K, l: &mut [u8; QK_K]) {
    let d_all = fp16_to_fp32(y.d.to_bits());
    let m_all = fp16_to_fp32(y.dmin.to_bits());
    for j in 0..QK_K / 16 {
        let d = d_all * (y.scales[j] & 0xF) as f32;
        if d == 0.0 {
            continue;
        }
        let dm = m_all * (y.scales[j] >> 4) as f32;
        for ii in 0..16 {
            let li = nearest_int((x[16 * j + ii] + dm) / d);
            l[16 * j + ii] = cmax(0, cmin(3, li)) as u8;
        }
    }
}

/// ggml's `quantize_row_q2_K_ref` (no importance matrix) / `quantize_row_q2_K_impl`.
pub(crate) fn quantize_row_q2_k(x: &[f32], out: &mut [u8], imatrix: Option<&[f32]>) {
    for (ib, xs) in x.chunks_exact(QK_K).enumerate() {
        let y = match imatrix {
            None => q2k_ref_block(xs),
            Some(qw) => q2k_impl_block(xs, &qw[QK_K * ib..QK_K * (ib + 1)]),
        };
        put_block(out, ib, &y);
    }
}

fn q2k_ref_block(x: &[f32]) -> BlockQ2K {
    const Q4SCALE: f32 = 15.0;
    const SEARCH: Search = Search {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let mut y = BlockQ2K::zeroed();
    let mut l = [0u8; QK_K];
    let mut weights = [0.0f32; 16];
    let mut mins = [0.0f32; QK_K / 16];
    let mut scales = [0.0f32; QK_K / 16];

    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..QK_K / 16 {
        let xg = &x[16 * j..16 * (j + 1)];
        for (w, &v) in weights.iter_mut().zip(xg) {
            *w = v.abs();
        }
        let (scale, min) = make_qkx2_quants(xg, &weights, &mut l[16 * j..16 * (j + 1)], SEARCH);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for j in 0..QK_K / 16 {
            y.scales[j] = nearest_int(iscale * scales[j]) as u8;
        }
        y.d = f16::from_bits(fp32_to_fp16(max_scale / Q4SCALE));
    } else {
        y.scales = [0; QK_K / 16];
        y.d = f16::from_bits(fp32_to_fp16(0.0));
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for j in 0..QK_K / 16 {
            let li = nearest_int(iscale * mins[j]);
            y.scales[j] |= (li << 4) as u8;
        }
        y.dmin = f16::from_bits(fp32_to_fp16(max_min / Q4SCALE));
    } else {
        y.dmin = f16::from_bits(fp32_to_fp16(0.0));
    }
    q2k_requantize(x, &y, &mut l);
    pack_2bit(&l, &mut y.qs);
    y
}

fn q2k_impl_block(x: &[f32], qw: &[f32]) -> BlockQ2K {
    const SEARCH: Search = Search {
        nmax: 3,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    };
    let mut y = BlockQ2K::zeroed();
    let mut l = [0u8; QK_K];
    let mut mins = [0.0f32; QK_K / 16];
    let mut scales = [0.0f32; QK_K / 16];
    let mut sw = [0.0f32; QK_K / 16];
    let mut weight = [0.0f32; 16];
    let mut ls = [0u8; QK_K / 16];
    let mut lm = [0u8; QK_K / 16];

    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = sumx2 / QK_K as f32;
    for j in 0..QK_K / 16 {
        let xg = &x[16 * j..16 * (j + 1)];
        for i in 0..16 {
            weight[i] = qw[16 * j + i] * (sigma2 + xg[i] * xg[i]).sqrt();
        }
        for &w in &weight {
            sw[j] += w;
        }
        let (scale, min) = make_qkx3_quants(xg, &weight, &mut l[16 * j..16 * (j + 1)], SEARCH);
        scales[j] = scale;
        mins[j] = min;
    }

    let dm = make_qp_quants(15, &scales, &mut ls, &sw);
    let mm = make_qp_quants(15, &mins, &mut lm, &sw);
    // ggml then reads the rounded values back for the requantization below.
    y.d = f16::from_bits(fp32_to_fp16(dm));
    y.dmin = f16::from_bits(fp32_to_fp16(mm));
    for j in 0..QK_K / 16 {
        y.scales[j] = ls[j] | (lm[j] << 4);
    }
    q2k_requantize(x, &y, &mut l);
    pack_2bit(&l, &mut y.qs);
    y
}

/// Unpacks the signed 6-bit scale `j` of a Q3_K block, as ggml's quantizers do.
fn q3k_scale(scales: &[u8; 12], j: usize) -> i8 {
    let mut sc: i8 = if j < 8 {
        (scales[j] & 0xF) as i8
    } else {
        (scales[j - 8] >> 4) as i8
    };
    sc = ((sc as i32 | ((((scales[8 + j % 4] >> (2 * (j / 4))) & 3) as i32) << 4)) - 32) as i8;
    sc
}

/// Packs the 16 six-bit Q3_K scales `l(j)` (already offset by 32) as ggml does.
fn q3k_pack_scales(scales: &mut [u8; 12], l: impl Fn(usize) -> i32) {
    *scales = [0; 12];
    for j in 0..QK_K / 16 {
        let mut lj = l(j);
        if j < 8 {
            scales[j] = (lj & 0xF) as u8;
        } else {
            scales[j - 8] |= ((lj & 0xF) << 4) as u8;
        }
        lj >>= 4;
        scales[j % 4 + 8] |= (lj << (2 * (j / 4))) as u8;
    }
}

/// Requantizes against the stored scales and packs `hmask`/`qs` (shared by ref and impl).
fn q3k_finish(x: &[f32], y: &mut BlockQ3K, l: &mut [i8; QK_K]) {
    let d_all = fp16_to_fp32(y.d.to_bits());
    for j in 0..QK_K / 16 {
        let sc = q3k_scale(&y.scales, j);
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let li = nearest_int(x[16 * j + ii] / d);
            l[16 * j + ii] = (cmax(-4, cmin(3, li)) + 4) as i8;
        }
    }

    y.hmask = [0; QK_K / 8];
    let mut m = 0usize;
    let mut hm: u8 = 1;
    for lj in l.iter_mut() {
        if *lj > 3 {
            y.hmask[m] |= hm;
            *lj -= 4;
        }
        m += 1;
        if m == QK_K / 8 {
            m = 0;
            hm = hm.wrapping_shl(1);
        }
    }
    let mut lu = [0u8; QK_K];
    for (u, &v) in lu.iter_mut().zip(l.iter()) {
        *u = v as u8;
    }
    pack_2bit(&lu, &mut y.qs);
}

/// ggml's `quantize_row_q3_K_ref` (no importance matrix) / `quantize_row_q3_K_impl`.
pub(crate) fn quantize_row_q3_k(x: &[f32], out: &mut [u8], imatrix: Option<&[f32]>) {
    for (ib, xs) in x.chunks_exact(QK_K).enumerate() {
        let y = match imatrix {
            None => q3k_ref_block(xs),
            Some(qw) => q3k_impl_block(xs, &qw[QK_K * ib..QK_K * (ib + 1)]),
        };
        put_block(out, ib, &y);
    }
}

fn q3k_ref_block(x: &[f32]) -> BlockQ3K {
    let mut y = BlockQ3K::zeroed();
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];

    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for j in 0..QK_K / 16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * (j + 1)], &mut l[16 * j..], true);
        let scale = scales[j].abs();
        if scale > amax {
            amax = scale;
            max_scale = scales[j];
        }
    }

    y.scales = [0; 12];
    if max_scale != 0.0 {
        let iscale = -32.0f32 / max_scale;
        q3k_pack_scales(&mut y.scales, |j| {
            let lj = nearest_int(iscale * scales[j]) as i8 as i32;
            cmax(-32, cmin(31, lj)) + 32
        });
        y.d = f16::from_bits(fp32_to_fp16(1.0 / iscale));
    } else {
        y.d = f16::from_bits(fp32_to_fp16(0.0));
    }
    q3k_finish(x, &mut y, &mut l);
    y
}

fn q3k_impl_block(x: &[f32], qw: &[f32]) -> BlockQ3K {
    let mut y = BlockQ3K::zeroed();
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; QK_K / 16];
    let mut weight = [0.0f32; 16];
    let mut sw = [0.0f32; QK_K / 16];
    let mut ls = [0i8; QK_K / 16];

    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = 2.0 * sumx2 / QK_K as f32;

    for j in 0..QK_K / 16 {
        let xg = &x[16 * j..16 * (j + 1)];
        for i in 0..16 {
            weight[i] = qw[16 * j + i] * (sigma2 + xg[i] * xg[i]).sqrt();
        }
        let mut sumw = 0.0f32;
        for &w in &weight {
            sumw += w;
        }
        sw[j] = sumw;
        scales[j] = make_qx_quants(4, xg, &mut l[16 * j..16 * (j + 1)], 1, Some(&weight));
    }

    let d_block = make_qx_quants(32, &scales, &mut ls, 1, Some(&sw));
    q3k_pack_scales(&mut y.scales, |j| ls[j] as i32);
    y.d = f16::from_bits(fp32_to_fp16(d_block));
    q3k_finish(x, &mut y, &mut l);
    y
}
