//! AVX2 + FMA dot products: ports of the `__AVX2__` branches of ggml's
//! `ggml_vec_dot_q4_0_q8_0`, `ggml_vec_dot_q5_0_q8_0`, `ggml_vec_dot_q8_0_q8_0`,
//! `ggml_vec_dot_q4_K_q8_K` and `ggml_vec_dot_q6_K_q8_K`
//! (`ggml/src/ggml-cpu/arch/x86/quants.c`), for x86-64 CPUs that report both features at
//! run time. Results equal [`super::scalar`]'s up to f32 summation order.
//!
//! The activation quants must lie in `[-127, 127]`, as [`super::quantize`] produces them:
//! like ggml, the Q4_0/Q5_0/Q8_0 kernels multiply with `_mm256_sign_epi8`, which cannot
//! negate -128.

use std::arch::x86_64::{
    __m256, __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_andnot_si256,
    _mm256_castps256_ps128, _mm256_cmpeq_epi8, _mm256_cvtepi32_ps, _mm256_cvtepi8_epi16,
    _mm256_cvtepu8_epi16, _mm256_extractf128_ps, _mm256_extracti128_si256, _mm256_fmadd_ps,
    _mm256_loadu_si256, _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_or_si256,
    _mm256_set1_epi16, _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_set1_epi8, _mm256_set1_ps,
    _mm256_set_epi64x, _mm256_set_m128i, _mm256_setzero_ps, _mm256_setzero_si256,
    _mm256_shuffle_epi8, _mm256_sign_epi8, _mm256_slli_epi16, _mm256_slli_epi32, _mm256_srli_epi16,
    _mm256_sub_epi32, _mm256_sub_epi8, _mm_add_ps, _mm_add_ss, _mm_cvtepi32_ps, _mm_cvtss_f32,
    _mm_fmadd_ps, _mm_hadd_epi16, _mm_loadu_si128, _mm_madd_epi16, _mm_movehdup_ps, _mm_movehl_ps,
    _mm_set1_ps, _mm_set_epi32, _mm_setzero_ps, _mm_shuffle_epi8, _mm_srli_epi16,
};

use crate::quant::blocks::{BlockQ4K, BlockQ4_0, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, QK};
use crate::quant::{k4_scales_mins_words, QK_K};

/// Whether this CPU can run the kernels of this module.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// `Q8_0 · Q8_0`; panics when a slice holds fewer than `n / 32` blocks or when the CPU
/// lacks AVX2/FMA ([`available`]).
pub fn vec_dot_q8_0_q8_0(n: usize, x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    assert!(
        available(),
        "AVX2 + FMA kernels called on a CPU without them"
    );
    let nb = n / QK;
    let (x, y) = (&x[..nb], &y[..nb]);
    // SAFETY: the CPU supports AVX2 and FMA (checked above); both slices hold `nb` blocks.
    unsafe { q8_0_q8_0(x, y) }
}

/// `Q4_K · Q8_K`; panics when a slice holds fewer than `n / 256` blocks or when the CPU
/// lacks AVX2/FMA ([`available`]).
pub fn vec_dot_q4_k_q8_k(n: usize, x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    assert!(
        available(),
        "AVX2 + FMA kernels called on a CPU without them"
    );
    let nb = n / QK_K;
    let (x, y) = (&x[..nb], &y[..nb]);
    // SAFETY: the CPU supports AVX2 and FMA (checked above); both slices hold `nb` blocks.
    unsafe { q4_k_q8_k(x, y) }
}

/// ggml's `hsum_float_8`.
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum_float_8(x: __m256) -> f32 {
    let mut res = _mm256_extractf128_ps(x, 1);
    res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

/// ggml's `mul_sum_i8_pairs_float` (AVX2 path): `Σ x·y` over each 4 bytes, as 8 floats.
#[target_feature(enable = "avx2,fma")]
unsafe fn mul_sum_i8_pairs_float(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    let dot = _mm256_maddubs_epi16(ax, sy);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot))
}

/// Safety: the CPU must support AVX2 and FMA; `x` and `y` have the same length.
#[target_feature(enable = "avx2,fma")]
unsafe fn q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = _mm256_set1_ps(xb.d.to_f32() * yb.d.to_f32());
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

/// ggml's `get_scale_shuffle_k4(i)`: broadcasts the 16-bit scale `i` to all lanes.
const SCALE_SHUFFLE_K4: [[u8; 32]; 8] = {
    let mut t = [[0u8; 32]; 8];
    let mut i = 0;
    while i < 8 {
        let mut j = 0;
        while j < 32 {
            t[i][j] = (2 * i + j % 2) as u8;
            j += 1;
        }
        i += 1;
    }
    t
};

/// Safety: the CPU must support AVX2 and FMA; `x` and `y` have the same length.
#[target_feature(enable = "avx2,fma")]
unsafe fn q4_k_q8_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = yb.d * xb.d.to_f32();
        let dmin = -yb.d * xb.dmin.to_f32();
        let utmp = k4_scales_mins_words(&xb.scales);
        let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
            utmp[3] as i32,
            utmp[2] as i32,
            utmp[1] as i32,
            utmp[0] as i32,
        ));
        // SAFETY: `bsums` is 16 `i16`, 32 bytes, the width of an unaligned 256-bit load.
        let q8sums = unsafe { _mm256_loadu_si256(yb.bsums.as_ptr().cast()) };
        let q8s = _mm_hadd_epi16(
            _mm256_extracti128_si256(q8sums, 0),
            _mm256_extracti128_si256(q8sums, 1),
        );
        let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);

        let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
        let scales = _mm256_set_m128i(sc128, sc128);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..QK_K / 64 {
            // SAFETY: each load reads 32 bytes inside `SCALE_SHUFFLE_K4` (rows of 32),
            // `xb.qs` (128 bytes, j < 4) or `yb.qs` (256 bytes, 64 j + 64 <= 256).
            let (shuf_l, shuf_h, q4bits, q8l, q8h) = unsafe {
                (
                    _mm256_loadu_si256(SCALE_SHUFFLE_K4[2 * j].as_ptr().cast()),
                    _mm256_loadu_si256(SCALE_SHUFFLE_K4[2 * j + 1].as_ptr().cast()),
                    _mm256_loadu_si256(xb.qs[32 * j..][..32].as_ptr().cast()),
                    _mm256_loadu_si256(yb.qs[64 * j..][..32].as_ptr().cast()),
                    _mm256_loadu_si256(yb.qs[64 * j + 32..][..32].as_ptr().cast()),
                )
            };
            let scale_l = _mm256_shuffle_epi8(scales, shuf_l);
            let scale_h = _mm256_shuffle_epi8(scales, shuf_h);
            let q4l = _mm256_and_si256(q4bits, m4);
            let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
            let p16l = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(q4l, q8l));
            let p16h = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(q4h, q8h));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16l, p16h));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    hsum_float_8(acc) + _mm_cvtss_f32(acc_m)
}

/// `Q4_0 · Q8_0`; panics when a slice holds fewer than `n / 32` blocks or when the CPU
/// lacks AVX2/FMA ([`available`]).
pub fn vec_dot_q4_0_q8_0(n: usize, x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    assert!(
        available(),
        "AVX2 + FMA kernels called on a CPU without them"
    );
    let nb = n / QK;
    let (x, y) = (&x[..nb], &y[..nb]);
    // SAFETY: the CPU supports AVX2 and FMA (checked above); both slices hold `nb` blocks.
    unsafe { q4_0_q8_0(x, y) }
}

/// `Q5_0 · Q8_0`; panics when a slice holds fewer than `n / 32` blocks or when the CPU
/// lacks AVX2/FMA ([`available`]).
pub fn vec_dot_q5_0_q8_0(n: usize, x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    assert!(
        available(),
        "AVX2 + FMA kernels called on a CPU without them"
    );
    let nb = n / QK;
    let (x, y) = (&x[..nb], &y[..nb]);
    // SAFETY: the CPU supports AVX2 and FMA (checked above); both slices hold `nb` blocks.
    unsafe { q5_0_q8_0(x, y) }
}

/// `Q6_K · Q8_K`; panics when a slice holds fewer than `n / 256` blocks or when the CPU
/// lacks AVX2/FMA ([`available`]).
pub fn vec_dot_q6_k_q8_k(n: usize, x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    assert!(
        available(),
        "AVX2 + FMA kernels called on a CPU without them"
    );
    let nb = n / QK_K;
    let (x, y) = (&x[..nb], &y[..nb]);
    // SAFETY: the CPU supports AVX2 and FMA (checked above); both slices hold `nb` blocks.
    unsafe { q6_k_q8_k(x, y) }
}

/// ggml's `bytes_from_nibbles_32`: the 32 nibbles of `qs` as bytes in `[0, 15]`, low
/// nibbles first.
#[target_feature(enable = "avx2,fma")]
unsafe fn bytes_from_nibbles_32(qs: &[u8; 16]) -> __m256i {
    // SAFETY: `qs` is 16 bytes, the width of an unaligned 128-bit load.
    let tmp = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let bytes = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
    _mm256_and_si256(_mm256_set1_epi8(0x0f), bytes)
}

/// ggml's `bytes_from_bits_32`: bit `i` of `bits` as byte `i`, `0x00` or `0xff`.
#[target_feature(enable = "avx2,fma")]
unsafe fn bytes_from_bits_32(bits: u32) -> __m256i {
    let shuf_mask = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf_mask);
    let bit_mask = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
    _mm256_cmpeq_epi8(_mm256_or_si256(bytes, bit_mask), _mm256_set1_epi64x(-1))
}

/// Safety: the CPU must support AVX2 and FMA; `x` and `y` have the same length.
#[target_feature(enable = "avx2,fma")]
unsafe fn q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let off = _mm256_set1_epi8(8);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = _mm256_set1_ps(xb.d.to_f32() * yb.d.to_f32());
        let qx = _mm256_sub_epi8(bytes_from_nibbles_32(&xb.qs), off);
        // SAFETY: `qs` is 32 bytes, the width of an unaligned 256-bit load.
        let qy = unsafe { _mm256_loadu_si256(yb.qs.as_ptr().cast()) };
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc)
}

/// Safety: the CPU must support AVX2 and FMA; `x` and `y` have the same length.
#[target_feature(enable = "avx2,fma")]
unsafe fn q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    // 0xf0 = -16 as i8: ORed into the bytes whose fifth bit is clear, it gives q - 16.
    let high = _mm256_set1_epi8(0xf0u8 as i8);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = _mm256_set1_ps(xb.d.to_f32() * yb.d.to_f32());
        let bxhi = _mm256_andnot_si256(bytes_from_bits_32(u32::from_le_bytes(xb.qh)), high);
        let qx = _mm256_or_si256(bytes_from_nibbles_32(&xb.qs), bxhi);
        // SAFETY: `qs` is 32 bytes, the width of an unaligned 256-bit load.
        let qy = unsafe { _mm256_loadu_si256(yb.qs.as_ptr().cast()) };
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs_float(qx, qy), acc);
    }
    hsum_float_8(acc)
}

/// ggml's `get_scale_shuffle(i)`: bytes `2i` (low half) and `2i + 1` (high half).
const SCALE_SHUFFLE_Q6: [[u8; 16]; 8] = {
    let mut t = [[0u8; 16]; 8];
    let mut i = 0;
    while i < 8 {
        let mut j = 0;
        while j < 16 {
            t[i][j] = (2 * i + j / 8) as u8;
            j += 1;
        }
        i += 1;
    }
    t
};

/// Safety: the CPU must support AVX2 and FMA; `x` and `y` have the same length.
#[target_feature(enable = "avx2,fma")]
unsafe fn q6_k_q8_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let m15 = _mm256_set1_epi8(15);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = yb.d * xb.d.to_f32();
        // SAFETY: `bsums` is 16 `i16` (32 bytes) and `scales` 16 `i8` (16 bytes), the
        // widths of an unaligned 256-bit and 128-bit load.
        let (q8sums, scales) = unsafe {
            (
                _mm256_loadu_si256(yb.bsums.as_ptr().cast()),
                _mm_loadu_si128(xb.scales.as_ptr().cast()),
            )
        };
        // The -32 offset of every quant, applied once per block through the group sums.
        let q8sclsub =
            _mm256_slli_epi32(_mm256_madd_epi16(q8sums, _mm256_cvtepi8_epi16(scales)), 5);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..QK_K / 128 {
            // SAFETY: each load reads 32 bytes inside `xb.ql` (128 bytes, 64 j + 64 <= 128)
            // or `xb.qh` (64 bytes, 32 j + 32 <= 64).
            let (q4bits1, q4bits2, q4bits_h) = unsafe {
                (
                    _mm256_loadu_si256(xb.ql[64 * j..][..32].as_ptr().cast()),
                    _mm256_loadu_si256(xb.ql[64 * j + 32..][..32].as_ptr().cast()),
                    _mm256_loadu_si256(xb.qh[32 * j..][..32].as_ptr().cast()),
                )
            };
            let q4h_0 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m3), 4);
            let q4h_1 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(12)), 2);
            let q4h_2 = _mm256_and_si256(q4bits_h, _mm256_set1_epi8(48));
            let q4h_3 = _mm256_srli_epi16(_mm256_and_si256(q4bits_h, _mm256_set1_epi8(-64)), 2);
            let q4 = [
                _mm256_or_si256(_mm256_and_si256(q4bits1, m15), q4h_0),
                _mm256_or_si256(_mm256_and_si256(q4bits2, m15), q4h_1),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m15), q4h_2),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m15), q4h_3),
            ];
            for (k, q4k) in q4.into_iter().enumerate() {
                // SAFETY: reads 32 bytes inside `yb.qs` (256 bytes, 128 j + 32 k + 32 <= 256)
                // and one 16-byte row of `SCALE_SHUFFLE_Q6` (4 j + k < 8).
                let (q8, shuf) = unsafe {
                    (
                        _mm256_loadu_si256(yb.qs[128 * j + 32 * k..][..32].as_ptr().cast()),
                        _mm_loadu_si128(SCALE_SHUFFLE_Q6[4 * j + k].as_ptr().cast()),
                    )
                };
                // Quants in [0, 63] times activations in [-127, 127]: pair sums fit i16.
                let p16 = _mm256_maddubs_epi16(q4k, q8);
                let scale = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, shuf));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale, p16));
            }
        }
        sumi = _mm256_sub_epi32(sumi, q8sclsub);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_float_8(acc)
}

#[cfg(test)]
mod tests {
    use bytemuck::Zeroable;
    use half::f16;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::kernels::{quantize_row_q8_0, quantize_row_q8_k, scalar};
    use crate::quant::{dequantize_to_vec, GgmlType};

    fn random_x(rng: &mut StdRng, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| rng.random_range(-1.0f32..1.0) * 10f32.powi(rng.random_range(-3..3)))
            .collect()
    }

    #[test]
    fn matches_scalar() {
        if !available() {
            eprintln!("skipping: this CPU lacks AVX2/FMA");
            return;
        }
        let mut rng = StdRng::seed_from_u64(7);
        for n in [256, 1024, 4096] {
            let x = random_x(&mut rng, n);
            let mut w8 = vec![BlockQ8_0::zeroed(); n / QK];
            let mut x8 = w8.clone();
            quantize_row_q8_0(&random_x(&mut rng, n), &mut w8);
            // Weights may hold -128 (the activations never do).
            w8[0].qs[3] = -128;
            quantize_row_q8_0(&x, &mut x8);
            let (a, b) = (
                vec_dot_q8_0_q8_0(n, &w8, &x8),
                scalar::vec_dot_q8_0_q8_0(n, &w8, &x8),
            );
            let tol = 1e-5 * abs_sum(GgmlType::Q8_0, &w8, GgmlType::Q8_0, &x8) + 1e-30;
            assert!((a - b).abs() <= tol, "Q8_0 n {n}: {a} vs {b}");

            let mut w4 = vec![BlockQ4K::zeroed(); n / QK_K];
            for b in &mut w4 {
                rng.fill(bytemuck::bytes_of_mut(b));
                b.d = f16::from_f32(rng.random_range(-0.05..0.05));
                b.dmin = f16::from_f32(rng.random_range(-0.05..0.05));
            }
            let mut xk = vec![BlockQ8K::zeroed(); n / QK_K];
            quantize_row_q8_k(&x, &mut xk);
            let (a, b) = (
                vec_dot_q4_k_q8_k(n, &w4, &xk),
                scalar::vec_dot_q4_k_q8_k(n, &w4, &xk),
            );
            let tol = 1e-5 * abs_sum(GgmlType::Q4K, &w4, GgmlType::Q8K, &xk) + 1e-30;
            assert!((a - b).abs() <= tol, "Q4_K n {n}: {a} vs {b}");

            let mut w6 = vec![BlockQ6K::zeroed(); n / QK_K];
            for b in &mut w6 {
                rng.fill(bytemuck::bytes_of_mut(b));
                b.d = f16::from_f32(rng.random_range(-0.05..0.05));
            }
            let (a, b) = (
                vec_dot_q6_k_q8_k(n, &w6, &xk),
                scalar::vec_dot_q6_k_q8_k(n, &w6, &xk),
            );
            let tol = 1e-5 * abs_sum(GgmlType::Q6K, &w6, GgmlType::Q8K, &xk) + 1e-30;
            assert!((a - b).abs() <= tol, "Q6_K n {n}: {a} vs {b}");

            let mut w50 = vec![BlockQ5_0::zeroed(); n / QK];
            for b in &mut w50 {
                rng.fill(bytemuck::bytes_of_mut(b));
                b.d = f16::from_f32(rng.random_range(-0.05..0.05));
            }
            let (a, b) = (
                vec_dot_q5_0_q8_0(n, &w50, &x8),
                scalar::vec_dot_q5_0_q8_0(n, &w50, &x8),
            );
            let tol = 1e-5 * abs_sum(GgmlType::Q5_0, &w50, GgmlType::Q8_0, &x8) + 1e-30;
            assert!((a - b).abs() <= tol, "Q5_0 n {n}: {a} vs {b}");

            let mut w40 = vec![BlockQ4_0::zeroed(); n / QK];
            for b in &mut w40 {
                rng.fill(bytemuck::bytes_of_mut(b));
                b.d = f16::from_f32(rng.random_range(-0.05..0.05));
            }
            let (a, b) = (
                vec_dot_q4_0_q8_0(n, &w40, &x8),
                scalar::vec_dot_q4_0_q8_0(n, &w40, &x8),
            );
            let tol = 1e-5 * abs_sum(GgmlType::Q4_0, &w40, GgmlType::Q8_0, &x8) + 1e-30;
            assert!((a - b).abs() <= tol, "Q4_0 n {n}: {a} vs {b}");
        }
    }

    /// `Σ |w_i · x_i|` over the dequantized rows: the scale of the rounding error.
    fn abs_sum<W: bytemuck::Pod, X: bytemuck::Pod>(
        wt: GgmlType,
        w: &[W],
        xt: GgmlType,
        x: &[X],
    ) -> f32 {
        let wd = dequantize_to_vec(wt, bytemuck::cast_slice(w)).unwrap();
        let xd = dequantize_to_vec(xt, bytemuck::cast_slice(x)).unwrap();
        wd.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum()
    }
}
