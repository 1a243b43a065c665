//! The 32-element "legacy" formats Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0: ports of ggml's
//! `quantize_row_*_ref` (no importance matrix) and `quantize_row_*_impl` (with one).
//!
//! Each function quantizes one row `x` into `out` (exactly `x.len() / 32` blocks).

use bytemuck::Zeroable;
use half::f16;
use pith_runtime::quant::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, QK};

use super::helpers::{
    c_f32_to_i32, c_roundf_to_i32, cmax, cmin, fp32_to_fp16, make_qkx3_quants, make_qx_quants,
    Search,
};
use super::put_block;

/// `GGML_FP32_TO_FP16` as a block field.
fn h(f: f32) -> f16 {
    f16::from_bits(fp32_to_fp16(f))
}

/// The sign-preserving absolute maximum of a block (ggml keeps the first one on ties).
fn signed_absmax(xb: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in xb {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Block minimum and maximum as ggml's Q4_1/Q5_1 compute them.
fn min_max(xb: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in xb {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `sigma2` of the `_impl` functions: the mean square of the whole row.
fn row_sigma2(x: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    sum_x2 / x.len() as f32
}

/// The importance weights of one block: `qw[j] * sqrt(sigma2 + x[j]^2)`.
fn block_weights(xb: &[f32], qw: &[f32], sigma2: f32) -> [f32; QK] {
    let mut weight = [0.0f32; QK];
    for j in 0..QK {
        weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
    }
    weight
}

/// ggml's `quantize_row_q4_0_ref` / `quantize_row_q4_0_impl`.
pub(crate) fn quantize_row_q4_0(x: &[f32], out: &mut [u8], imatrix: Option<&[f32]>) {
    let sigma2 = imatrix.map(|_| row_sigma2(x));
    for (ib, xb) in x.chunks_exact(QK).enumerate() {
        let mut y = BlockQ4_0::zeroed();
        if let (Some(qw), Some(sigma2)) = (imatrix, sigma2) {
            let weight = block_weights(xb, &qw[QK * ib..QK * (ib + 1)], sigma2);
            let mut l = [0i8; QK];
            let d = make_qx_quants(8, xb, &mut l, 1, Some(&weight));
            y.d = h(d);
            for j in 0..16 {
                y.qs[j] = (l[j] as u8) | ((l[j + 16] as u8) << 4);
            }
        } else {
            let max = signed_absmax(xb);
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = h(d);
            for j in 0..QK / 2 {
                let x0 = xb[j] * id;
                let x1 = xb[QK / 2 + j] * id;
                let xi0 = cmin(15, c_f32_to_i32(x0 + 8.5) as i8 as i32) as u8;
                let xi1 = cmin(15, c_f32_to_i32(x1 + 8.5) as i8 as i32) as u8;
                y.qs[j] = xi0 | (xi1 << 4);
            }
        }
        put_block(out, ib, &y);
    }
}

/// ggml's `quantize_row_q4_1_ref` / `quantize_row_q4_1_impl`.
pub(crate) fn quantize_row_q4_1(x: &[f32], out: &mut [u8], imatrix: Option<&[f32]>) {
    let sigma2 = imatrix.map(|_| row_sigma2(x));
    for (ib, xb) in x.chunks_exact(QK).enumerate() {
        let mut y = BlockQ4_1::zeroed();
        if let (Some(qw), Some(sigma2)) = (imatrix, sigma2) {
            let weight = block_weights(xb, &qw[QK * ib..QK * (ib + 1)], sigma2);
            let mut l = [0u8; QK];
            let (d, min) = make_qkx3_quants(xb, &weight, &mut l, IMPL_SEARCH_15);
            y.d = h(d);
            y.m = h(-min);
            for j in 0..16 {
                y.qs[j] = l[j] | (l[j + 16] << 4);
            }
        } else {
            let (min, max) = min_max(xb);
            let d = (max - min) / 15.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = h(d);
            y.m = h(min);
            for j in 0..QK / 2 {
                let x0 = (xb[j] - min) * id;
                let x1 = (xb[QK / 2 + j] - min) * id;
                let xi0 = cmin(15, c_f32_to_i32(x0 + 0.5) as i8 as i32) as u8;
                let xi1 = cmin(15, c_f32_to_i32(x1 + 0.5) as i8 as i32) as u8;
                y.qs[j] = xi0 | (xi1 << 4);
            }
        }
        put_block(out, ib, &y);
    }
}

/// Packs 32 five-bit quants as ggml does: low nibbles in `qs`, fifth bits in `qh`.
fn pack_q5(xi: impl Fn(usize) -> u8, qs: &mut [u8; QK / 2]) -> [u8; 4] {
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let xi0 = xi(j);
        let xi1 = xi(j + QK / 2);
        qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= (((xi0 as u32) & 0x10) >> 4) << j;
        qh |= (((xi1 as u32) & 0x10) >> 4) << (j + QK / 2);
    }
    qh.to_le_bytes()
}

/// ggml's `quantize_row_q5_0_ref` / `quantize_row_q5_0_impl`.
pub(crate) fn quantize_row_q5_0(x: &[f32], out: &mut [u8], imatrix: Option<&[f32]>) {
    let sigma2 = imatrix.map(|_| row_sigma2(x));
    for (ib, xb) in x.chunks_exact(QK).enumerate() {
        let mut y = BlockQ5_0::zeroed();
        if let (Some(qw), Some(sigma2)) = (imatrix, sigma2) {
            let weight = block_weights(xb, &qw[QK * ib..QK * (ib + 1)], sigma2);
            let mut l = [0i8; QK];
            let d = make_qx_quants(16, xb, &mut l, 1, Some(&weight));
            y.d = h(d);
            y.qh = pack_q5(|j| l[j] as u8, &mut y.qs);
        } else {
            let max = signed_absmax(xb);
            let d = max / -16.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = h(d);
            let mut q = [0u8; QK];
            for (qj, &v) in q.iter_mut().zip(xb) {
                *qj = cmin(31, c_f32_to_i32(v * id + 16.5) as i8 as i32) as u8;
            }
            y.qh = pack_q5(|j| q[j], &mut y.qs);
        }
        put_block(out, ib, &y);
    }
}

/// ggml's `quantize_row_q5_1_ref` / `quantize_row_q5_1_impl`.
pub(crate) fn quantize_row_q5_1(x: &[f32], out: &mut [u8], imatrix: Option<&[f32]>) {
    let sigma2 = imatrix.map(|_| row_sigma2(x));
    for (ib, xb) in x.chunks_exact(QK).enumerate() {
        let mut y = BlockQ5_1::zeroed();
        if let (Some(qw), Some(sigma2)) = (imatrix, sigma2) {
            let weight = block_weights(xb, &qw[QK * ib..QK * (ib + 1)], sigma2);
            let mut l = [0u8; QK];
            let (d, min) = make_qkx3_quants(xb, &weight, &mut l, IMPL_SEARCH_31);
            y.d = h(d);
            y.m = h(-min);
            y.qh = pack_q5(|j| l[j], &mut y.qs);
        } else {
            let (min, max) = min_max(xb);
            let d = (max - min) / 31.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = h(d);
            y.m = h(min);
            let mut q = [0u8; QK];
            for (qj, &v) in q.iter_mut().zip(xb) {
                // No clamp here in ggml: the value cannot exceed 31.5.
                *qj = c_f32_to_i32((v - min) * id + 0.5) as u8;
            }
            y.qh = pack_q5(|j| q[j], &mut y.qs);
        }
        put_block(out, ib, &y);
    }
}

/// ggml's `quantize_row_q8_0_ref` (Q8_0 ignores the importance matrix).
pub(crate) fn quantize_row_q8_0(x: &[f32], out: &mut [u8], _imatrix: Option<&[f32]>) {
    for (ib, xb) in x.chunks_exact(QK).enumerate() {
        let mut y = BlockQ8_0::zeroed();
        let mut amax = 0.0f32;
        for &v in xb {
            amax = cmax(amax, v.abs());
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        y.d = h(d);
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            *q = c_roundf_to_i32(v * id) as i8;
        }
        put_block(out, ib, &y);
    }
}

/// `make_qkx3_quants(32, 15, …, -0.9f, 0.05f, 36, false)` of `quantize_row_q4_1_impl`.
const IMPL_SEARCH_15: Search = Search {
    nmax: 15,
    rmin: -0.9,
    rdelta: 0.05,
    nstep: 36,
    use_mad: false,
};

/// `make_qkx3_quants(32, 31, …, -0.9f, 0.05f, 36, false)` of `quantize_row_q5_1_impl`.
const IMPL_SEARCH_31: Search = Search {
    nmax: 31,
    ..IMPL_SEARCH_15
};
