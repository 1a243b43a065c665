//! AVX2 kernels for the 32-element formats: ports of ggml's `ggml_vec_dot_q4_0_q8_0`,
//! `…q4_1_q8_1`, `…q5_0_q8_0`, `…q5_1_q8_1` and `…q8_0_q8_0` (`__AVX2__` branches).
//!
//! Safety, for every function here: the CPU must support AVX2, FMA and F16C, and `x` and
//! `y` must have the same length.

use std::arch::x86_64::{
    _mm256_and_si256, _mm256_andnot_si256, _mm256_fmadd_ps, _mm256_loadu_si256, _mm256_or_si256,
    _mm256_set1_epi8, _mm256_set1_ps, _mm256_setzero_ps, _mm256_sub_epi8,
};

use super::{
    bytes_from_bits_32, bytes_from_nibbles_32, fp16_mul, hsum_float_8, mul_sum_i8_pairs_float,
    mul_sum_us8_pairs_float,
};
use crate::quant::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};

/// `Q8_0 · Q8_0`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = _mm256_set1_ps(fp16_mul(xb.d, yb.d));
        // SAFETY: `qs` is 32 bytes, the width of an unaligned 256-bit load.
        let (qx, qy) = unsafe {
            (
                _mm256_loadu_si256(xb.qs.as_ptr().cast()),
                _mm256_loadu_si256(yb.qs.as_ptr().cast()),
            )
        };
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc)
}

/// `Q4_0 · Q8_0`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let off = _mm256_set1_epi8(8);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = _mm256_set1_ps(fp16_mul(xb.d, yb.d));
        let qx = _mm256_sub_epi8(bytes_from_nibbles_32(&xb.qs), off);
        // SAFETY: `qs` is 32 bytes, the width of an unaligned 256-bit load.
        let qy = unsafe { _mm256_loadu_si256(yb.qs.as_ptr().cast()) };
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc)
}

/// `Q4_1 · Q8_1`: the minimum enters through the activation's cached `s = d · Σq`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        summs += fp16_mul(xb.m, yb.s);
        let d = _mm256_set1_ps(fp16_mul(xb.d, yb.d));
        let qx = bytes_from_nibbles_32(&xb.qs);
        // SAFETY: `qs` is 32 bytes, the width of an unaligned 256-bit load.
        let qy = unsafe { _mm256_loadu_si256(yb.qs.as_ptr().cast()) };
        acc = _mm256_fmadd_ps(d, mul_sum_us8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc) + summs
}

/// `Q5_0 · Q8_0`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    // 0xf0 = -16 as i8: ORed into the bytes whose fifth bit is clear, it gives q - 16.
    let high = _mm256_set1_epi8(0xf0u8 as i8);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = _mm256_set1_ps(fp16_mul(xb.d, yb.d));
        let bxhi = _mm256_andnot_si256(bytes_from_bits_32(u32::from_le_bytes(xb.qh)), high);
        let qx = _mm256_or_si256(bytes_from_nibbles_32(&xb.qs), bxhi);
        // SAFETY: `qs` is 32 bytes, the width of an unaligned 256-bit load.
        let qy = unsafe { _mm256_loadu_si256(yb.qs.as_ptr().cast()) };
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc)
}

/// `Q5_1 · Q8_1`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let bit4 = _mm256_set1_epi8(0x10);
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        summs += fp16_mul(xb.m, yb.s);
        let d = _mm256_set1_ps(fp16_mul(xb.d, yb.d));
        let bxhi = _mm256_and_si256(bytes_from_bits_32(u32::from_le_bytes(xb.qh)), bit4);
        let qx = _mm256_or_si256(bytes_from_nibbles_32(&xb.qs), bxhi);
        // SAFETY: `qs` is 32 bytes, the width of an unaligned 256-bit load.
        let qy = unsafe { _mm256_loadu_si256(yb.qs.as_ptr().cast()) };
        acc = _mm256_fmadd_ps(d, mul_sum_us8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc) + summs
}
