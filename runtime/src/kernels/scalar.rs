//! Scalar quantized dot products: ports of ggml's `ggml_vec_dot_*_generic`
//! (`ggml/src/ggml-cpu/quants.c`), the oracle for the SIMD kernels.
//!
//! Each function takes `n` (the element count, a multiple of the block size) and the weight
//! and activation blocks, and returns `Σ w_i · x_i` in `f32`, accumulated as ggml does:
//! exact integer sums per block (or per 8 lanes for the k-quants), scaled by the product of
//! the block scales. Panics when either slice holds fewer than `n / block_size` blocks;
//! [`super::vec_dot`] checks that before calling.

use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, QK,
};
use crate::quant::{k4_scales_mins_words, QK_K};

/// `Q4_0 · Q8_0` (`ggml_vec_dot_q4_0_q8_0_generic`).
pub fn vec_dot_q4_0_q8_0(n: usize, x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let nb = n / QK;
    let mut sumf = 0f32;
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let v0 = i32::from(xb.qs[j] & 0x0f) - 8;
            let v1 = i32::from(xb.qs[j] >> 4) - 8;
            sumi0 += v0 * i32::from(yb.qs[j]);
            sumi1 += v1 * i32::from(yb.qs[j + QK / 2]);
        }
        let sumi = sumi0 + sumi1;
        sumf += sumi as f32 * xb.d.to_f32() * yb.d.to_f32();
    }
    sumf
}

/// `Q4_1 · Q8_1` (`ggml_vec_dot_q4_1_q8_1_generic`); the block minimum enters through the
/// activation's cached `s = d · Σq`.
pub fn vec_dot_q4_1_q8_1(n: usize, x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let nb = n / QK;
    let mut sumf = 0f32;
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let v0 = i32::from(xb.qs[j] & 0x0f);
            let v1 = i32::from(xb.qs[j] >> 4);
            sumi0 += v0 * i32::from(yb.qs[j]);
            sumi1 += v1 * i32::from(yb.qs[j + QK / 2]);
        }
        let sumi = sumi0 + sumi1;
        sumf += (xb.d.to_f32() * yb.d.to_f32()) * sumi as f32 + xb.m.to_f32() * yb.s.to_f32();
    }
    sumf
}

/// `Q5_0 · Q8_0` (`ggml_vec_dot_q5_0_q8_0_generic`).
pub fn vec_dot_q5_0_q8_0(n: usize, x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let nb = n / QK;
    let mut sumf = 0f32;
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        let qh = u32::from_le_bytes(xb.qh);
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let xh_0 = (((qh >> j) & 1) << 4) as u8;
            let xh_1 = (((qh >> (j + 16)) & 1) << 4) as u8;
            let x0 = i32::from(((xb.qs[j] & 0x0f) | xh_0) as i8) - 16;
            let x1 = i32::from(((xb.qs[j] >> 4) | xh_1) as i8) - 16;
            sumi0 += x0 * i32::from(yb.qs[j]);
            sumi1 += x1 * i32::from(yb.qs[j + QK / 2]);
        }
        let sumi = sumi0 + sumi1;
        sumf += (xb.d.to_f32() * yb.d.to_f32()) * sumi as f32;
    }
    sumf
}

/// `Q5_1 · Q8_1` (`ggml_vec_dot_q5_1_q8_1_generic`).
pub fn vec_dot_q5_1_q8_1(n: usize, x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let nb = n / QK;
    let mut sumf = 0f32;
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        let qh = u32::from_le_bytes(xb.qh);
        let (mut sumi0, mut sumi1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let xh_0 = ((qh >> j) << 4) & 0x10;
            let xh_1 = (qh >> (j + 12)) & 0x10;
            let x0 = (u32::from(xb.qs[j] & 0x0f) | xh_0) as i32;
            let x1 = (u32::from(xb.qs[j] >> 4) | xh_1) as i32;
            sumi0 += x0 * i32::from(yb.qs[j]);
            sumi1 += x1 * i32::from(yb.qs[j + QK / 2]);
        }
        let sumi = sumi0 + sumi1;
        sumf += (xb.d.to_f32() * yb.d.to_f32()) * sumi as f32 + xb.m.to_f32() * yb.s.to_f32();
    }
    sumf
}

/// `Q8_0 · Q8_0` (`ggml_vec_dot_q8_0_q8_0_generic`).
pub fn vec_dot_q8_0_q8_0(n: usize, x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let nb = n / QK;
    let mut sumf = 0f32;
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        let sumi: i32 = xb
            .qs
            .iter()
            .zip(&yb.qs)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum();
        sumf += sumi as f32 * (xb.d.to_f32() * yb.d.to_f32());
    }
    sumf
}

/// `Q2_K · Q8_K` (`ggml_vec_dot_q2_K_q8_K_generic`).
pub fn vec_dot_q2_k_q8_k(n: usize, x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let nb = n / QK_K;
    let mut sumf = 0f32;
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        let sc = &xb.scales;
        let summs: i32 = yb
            .bsums
            .iter()
            .zip(sc)
            .map(|(&s, &c)| i32::from(s) * i32::from(c >> 4))
            .sum();
        let dall = yb.d * xb.d.to_f32();
        let dmin = yb.d * xb.dmin.to_f32();
        let mut isum = 0i32;
        let mut is = 0;
        for (k, q2) in xb.qs.chunks_exact(32).enumerate() {
            for j in 0..4 {
                let shift = 2 * j;
                let q8 = &yb.qs[k * 128 + j * 32..][..32];
                for half in 0..2 {
                    let d = i32::from(sc[is] & 0x0f);
                    is += 1;
                    let isuml: i32 = (half * 16..half * 16 + 16)
                        .map(|l| i32::from(q8[l]) * i32::from((q2[l] >> shift) & 3))
                        .sum();
                    isum += d * isuml;
                }
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// `Σ_l aux32[l]` accumulation shared by the k-quant kernels: adds
/// `scale · q8[l] · a[l]` lane-wise (8 lanes, as ggml's `aux32`) over `a.len()` values.
#[inline]
fn accumulate_lanes(aux32: &mut [i32; 8], scale: i32, q8: &[i8], a: &[i8]) {
    for (q8c, ac) in q8.chunks_exact(8).zip(a.chunks_exact(8)) {
        for l in 0..8 {
            // ggml keeps the product in an int16 (`aux16`); |q8 · a| ≤ 128 · 32 fits.
            let p = i32::from(i16::from(q8c[l]) * i16::from(ac[l]));
            aux32[l] += scale * p;
        }
    }
}

/// `Q3_K · Q8_K` (`ggml_vec_dot_q3_K_q8_K_generic`).
pub fn vec_dot_q3_k_q8_k(n: usize, x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let nb = n / QK_K;
    let mut sums = [0f32; 8];
    let mut aux8 = [0i8; QK_K];
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        let mut m = 1u8;
        for (half, q3) in xb.qs.chunks_exact(32).enumerate() {
            for shift in 0..4 {
                let a = &mut aux8[half * 128 + shift * 32..][..32];
                for l in 0..32 {
                    let low = ((q3[l] >> (2 * shift)) & 3) as i8;
                    a[l] = low - if xb.hmask[l] & m != 0 { 0 } else { 4 };
                }
                m = m.wrapping_shl(1);
            }
        }
        let scales = xb.unpacked_scales().map(|s| i32::from(s) - 32);
        let mut aux32 = [0i32; 8];
        for (j, &scale) in scales.iter().enumerate() {
            let r = j * 16..j * 16 + 16;
            accumulate_lanes(&mut aux32, scale, &yb.qs[r.clone()], &aux8[r]);
        }
        let d = xb.d.to_f32() * yb.d;
        for (s, &a) in sums.iter_mut().zip(&aux32) {
            *s += d * a as f32;
        }
    }
    sums.iter().fold(0f32, |acc, &s| acc + s)
}

/// The 8 scales and 8 mins of a Q4_K/Q5_K block, as bytes.
fn k4_scales_mins(packed: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let utmp = k4_scales_mins_words(packed);
    let mut scales = [0u8; 8];
    let mut mins = [0u8; 8];
    scales[..4].copy_from_slice(&utmp[0].to_le_bytes());
    scales[4..].copy_from_slice(&utmp[1].to_le_bytes());
    mins[..4].copy_from_slice(&utmp[2].to_le_bytes());
    mins[4..].copy_from_slice(&utmp[3].to_le_bytes());
    (scales, mins)
}

/// The common tail of the Q4_K and Q5_K kernels: `aux8` holds the 256 unsigned quants.
#[inline]
fn k4_block(
    aux8: &[i8; QK_K],
    packed_scales: &[u8; 12],
    xd: f32,
    xdmin: f32,
    yb: &BlockQ8K,
    sums: &mut [f32; 8],
) -> f32 {
    let (scales, mins) = k4_scales_mins(packed_scales);
    let sumi: i32 = yb
        .bsums
        .iter()
        .enumerate()
        .map(|(j, &s)| i32::from(s) * i32::from(mins[j / 2]))
        .sum();
    let mut aux32 = [0i32; 8];
    for (j, &scale) in scales.iter().enumerate() {
        let r = j * 32..j * 32 + 32;
        accumulate_lanes(&mut aux32, i32::from(scale), &yb.qs[r.clone()], &aux8[r]);
    }
    let d = xd * yb.d;
    for (s, &a) in sums.iter_mut().zip(&aux32) {
        *s += d * a as f32;
    }
    let dmin = xdmin * yb.d;
    dmin * sumi as f32
}

/// `Q4_K · Q8_K` (`ggml_vec_dot_q4_K_q8_K_generic`).
pub fn vec_dot_q4_k_q8_k(n: usize, x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let nb = n / QK_K;
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    let mut aux8 = [0i8; QK_K];
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        for (j, q4) in xb.qs.chunks_exact(32).enumerate() {
            let a = &mut aux8[j * 64..][..64];
            for l in 0..32 {
                a[l] = (q4[l] & 0x0f) as i8;
                a[l + 32] = (q4[l] >> 4) as i8;
            }
        }
        sumf -= k4_block(
            &aux8,
            &xb.scales,
            xb.d.to_f32(),
            xb.dmin.to_f32(),
            yb,
            &mut sums,
        );
    }
    sums.iter().fold(sumf, |acc, &s| acc + s)
}

/// `Q5_K · Q8_K` (`ggml_vec_dot_q5_K_q8_K_generic`).
pub fn vec_dot_q5_k_q8_k(n: usize, x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let nb = n / QK_K;
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    let mut aux8 = [0i8; QK_K];
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        let mut m = 1u8;
        for (j, q4) in xb.qs.chunks_exact(32).enumerate() {
            let a = &mut aux8[j * 64..][..64];
            for l in 0..32 {
                let h0 = if xb.qh[l] & m != 0 { 16 } else { 0 };
                let h1 = if xb.qh[l] & (m << 1) != 0 { 16 } else { 0 };
                a[l] = (q4[l] & 0x0f) as i8 + h0;
                a[l + 32] = (q4[l] >> 4) as i8 + h1;
            }
            m = m.wrapping_shl(2);
        }
        sumf -= k4_block(
            &aux8,
            &xb.scales,
            xb.d.to_f32(),
            xb.dmin.to_f32(),
            yb,
            &mut sums,
        );
    }
    sums.iter().fold(sumf, |acc, &s| acc + s)
}

/// `Q6_K · Q8_K` (`ggml_vec_dot_q6_K_q8_K_generic`).
pub fn vec_dot_q6_k_q8_k(n: usize, x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let nb = n / QK_K;
    let mut sums = [0f32; 8];
    let mut aux8 = [0i8; QK_K];
    for (xb, yb) in x[..nb].iter().zip(&y[..nb]) {
        for half in 0..2 {
            let q4 = &xb.ql[half * 64..][..64];
            let qh = &xb.qh[half * 32..][..32];
            let a = &mut aux8[half * 128..][..128];
            for l in 0..32 {
                a[l] = ((q4[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
                a[l + 32] = ((q4[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                a[l + 64] = ((q4[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                a[l + 96] = ((q4[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            }
        }
        let mut aux32 = [0i32; 8];
        for (j, &scale) in xb.scales.iter().enumerate() {
            let r = j * 16..j * 16 + 16;
            accumulate_lanes(&mut aux32, i32::from(scale), &yb.qs[r.clone()], &aux8[r]);
        }
        let d = xb.d.to_f32() * yb.d;
        for (s, &a) in sums.iter_mut().zip(&aux32) {
            *s += d * a as f32;
        }
    }
    sums.iter().fold(0f32, |acc, &s| acc + s)
}
