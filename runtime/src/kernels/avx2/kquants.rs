//! AVX2 kernels for the k-quants: ports of ggml's `ggml_vec_dot_q2_K_q8_K` …
//! `ggml_vec_dot_q6_K_q8_K` (`__AVX2__` branches).
//!
//! Safety, for every function here: the CPU must support AVX2, FMA and F16C, and `x` and
//! `y` must have the same length.

use std::arch::x86_64::{
    _mm256_add_epi32, _mm256_add_epi8, _mm256_and_si256, _mm256_andnot_si256, _mm256_cmpeq_epi8,
    _mm256_cvtepi32_ps, _mm256_cvtepi8_epi16, _mm256_cvtepu8_epi16, _mm256_extracti128_si256,
    _mm256_fmadd_ps, _mm256_loadu_si256, _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_or_si256,
    _mm256_set1_epi8, _mm256_set1_ps, _mm256_set_m128i, _mm256_setzero_ps, _mm256_setzero_si256,
    _mm256_shuffle_epi8, _mm256_slli_epi16, _mm256_slli_epi32, _mm256_srli_epi16, _mm256_sub_epi16,
    _mm256_sub_epi32, _mm_add_ps, _mm_add_ss, _mm_and_si128, _mm_cvtepi32_ps, _mm_cvtss_f32,
    _mm_fmadd_ps, _mm_hadd_epi16, _mm_loadu_si128, _mm_madd_epi16, _mm_movehdup_ps, _mm_movehl_ps,
    _mm_set1_epi8, _mm_set1_ps, _mm_set_epi32, _mm_setzero_ps, _mm_shuffle_epi8, _mm_srli_epi16,
    _mm_sub_epi8,
};

use super::{fp16, fp16x2, hsum_float_8};
use crate::quant::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::quant::{k4_scales_mins_words, QK_K};

/// ggml's `get_scale_shuffle_q3k(i)`: 16-bit scale `2i` in the low 128-bit lane, `2i + 1` in
/// the high one.
const SCALE_SHUFFLE_Q3K: [[u8; 32]; 4] = {
    let mut t = [[0u8; 32]; 4];
    let mut i = 0;
    while i < 4 {
        let mut j = 0;
        while j < 32 {
            t[i][j] = (4 * i + 2 * (j / 16) + j % 2) as u8;
            j += 1;
        }
        i += 1;
    }
    t
};

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

/// `Q2_K · Q8_K`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q2_k_q8_k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let (xd, xdmin) = fp16x2(xb.d, xb.dmin);
        let (d, dmin) = (yb.d * xd, -yb.d * xdmin);
        // SAFETY: `scales` is 16 bytes and `bsums` 16 `i16` (32 bytes), the widths of an
        // unaligned 128-bit and 256-bit load.
        let (mins_and_scales, q8sums) = unsafe {
            (
                _mm_loadu_si128(xb.scales.as_ptr().cast()),
                _mm256_loadu_si256(yb.bsums.as_ptr().cast()),
            )
        };
        let scales8 = _mm_and_si128(mins_and_scales, m4);
        let mins8 = _mm_and_si128(_mm_srli_epi16(mins_and_scales, 4), m4);
        let prod = _mm256_madd_epi16(_mm256_cvtepi8_epi16(mins8), q8sums);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);

        let all_scales = _mm256_cvtepi8_epi16(scales8);
        let l = _mm256_extracti128_si256(all_scales, 0);
        let h = _mm256_extracti128_si256(all_scales, 1);
        let scales = [_mm256_set_m128i(l, l), _mm256_set_m128i(h, h)];
        let mut sumi = _mm256_setzero_si256();
        for (j, &sc) in scales.iter().enumerate() {
            // SAFETY: reads 32 bytes inside `xb.qs` (64 bytes, 32 j + 32 <= 64).
            let q2bits = unsafe { _mm256_loadu_si256(xb.qs[32 * j..][..32].as_ptr().cast()) };
            let q2 = [
                _mm256_and_si256(q2bits, m3),
                _mm256_and_si256(_mm256_srli_epi16(q2bits, 2), m3),
                _mm256_and_si256(_mm256_srli_epi16(q2bits, 4), m3),
                _mm256_and_si256(_mm256_srli_epi16(q2bits, 6), m3),
            ];
            for (k, q2k) in q2.into_iter().enumerate() {
                // SAFETY: 32 bytes inside `yb.qs` (256 bytes, 128 j + 32 k + 32 <= 256) and
                // one 32-byte row of `SCALE_SHUFFLE_Q3K`.
                let (q8, shuf) = unsafe {
                    (
                        _mm256_loadu_si256(yb.qs[128 * j + 32 * k..][..32].as_ptr().cast()),
                        _mm256_loadu_si256(SCALE_SHUFFLE_Q3K[k].as_ptr().cast()),
                    )
                };
                let p =
                    _mm256_madd_epi16(_mm256_shuffle_epi8(sc, shuf), _mm256_maddubs_epi16(q2k, q8));
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_float_8(acc)
}

/// `Q3_K · Q8_K`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q3_k_q8_k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let four = _mm256_set1_epi8(4);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = yb.d * fp16(xb.d);
        let raw = xb.unpacked_scales();
        // SAFETY: `raw` is 16 bytes and `hmask` 32, the widths of unaligned 128/256-bit loads.
        let (raw, hbits) = unsafe {
            (
                _mm_loadu_si128(raw.as_ptr().cast()),
                _mm256_loadu_si256(xb.hmask.as_ptr().cast()),
            )
        };
        let all_scales = _mm256_cvtepi8_epi16(_mm_sub_epi8(raw, _mm_set1_epi8(32)));
        let l = _mm256_extracti128_si256(all_scales, 0);
        let h = _mm256_extracti128_si256(all_scales, 1);
        let scales = [_mm256_set_m128i(l, l), _mm256_set_m128i(h, h)];
        let mut sumi = _mm256_setzero_si256();
        let mut bit = _mm256_set1_epi8(1);
        for (j, &sc) in scales.iter().enumerate() {
            // SAFETY: reads 32 bytes inside `xb.qs` (64 bytes, 32 j + 32 <= 64).
            let q3bits = unsafe { _mm256_loadu_si256(xb.qs[32 * j..][..32].as_ptr().cast()) };
            let q3l = [
                _mm256_and_si256(q3bits, m3),
                _mm256_and_si256(_mm256_srli_epi16(q3bits, 2), m3),
                _mm256_and_si256(_mm256_srli_epi16(q3bits, 4), m3),
                _mm256_and_si256(_mm256_srli_epi16(q3bits, 6), m3),
            ];
            for (k, q3lk) in q3l.into_iter().enumerate() {
                // 4 where the high bit is clear (the quant is q - 4), else 0.
                let clear = _mm256_cmpeq_epi8(_mm256_andnot_si256(hbits, bit), bit);
                let q3h = _mm256_and_si256(clear, four);
                bit = _mm256_add_epi8(bit, bit);
                // SAFETY: 32 bytes inside `yb.qs` (256 bytes, 128 j + 32 k + 32 <= 256) and
                // one 32-byte row of `SCALE_SHUFFLE_Q3K`.
                let (q8, shuf) = unsafe {
                    (
                        _mm256_loadu_si256(yb.qs[128 * j + 32 * k..][..32].as_ptr().cast()),
                        _mm256_loadu_si256(SCALE_SHUFFLE_Q3K[k].as_ptr().cast()),
                    )
                };
                // q3l · q8 - q3h · q8: both products' pair sums fit i16.
                let p16 = _mm256_sub_epi16(
                    _mm256_maddubs_epi16(q3lk, q8),
                    _mm256_maddubs_epi16(q3h, q8),
                );
                let p = _mm256_madd_epi16(_mm256_shuffle_epi8(sc, shuf), p16);
                sumi = _mm256_add_epi32(sumi, p);
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_float_8(acc)
}

/// The 8 scales (low lane) and 8 mins (high lane) of a Q4_K/Q5_K block as 16-bit values.
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_mins_and_scales(packed: &[u8; 12]) -> std::arch::x86_64::__m256i {
    let utmp = k4_scales_mins_words(packed);
    _mm256_cvtepu8_epi16(_mm_set_epi32(
        utmp[3] as i32,
        utmp[2] as i32,
        utmp[1] as i32,
        utmp[0] as i32,
    ))
}

/// `Q4_K · Q8_K`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q4_k_q8_k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let (xd, xdmin) = fp16x2(xb.d, xb.dmin);
        let (d, dmin) = (yb.d * xd, -yb.d * xdmin);
        let mins_and_scales = k4_mins_and_scales(&xb.scales);
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

/// `Q5_K · Q8_K`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q5_k_q8_k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0f);
    let bit4 = _mm256_set1_epi8(0x10);
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let (xd, xdmin) = fp16x2(xb.d, xb.dmin);
        let (d, dmin) = (yb.d * xd, -yb.d * xdmin);
        let mins_and_scales = k4_mins_and_scales(&xb.scales);
        // SAFETY: `bsums` is 16 `i16` and `qh` 32 bytes, the width of a 256-bit load.
        let (q8sums, hbits) = unsafe {
            (
                _mm256_loadu_si256(yb.bsums.as_ptr().cast()),
                _mm256_loadu_si256(xb.qh.as_ptr().cast()),
            )
        };
        let q8s = _mm_hadd_epi16(
            _mm256_extracti128_si256(q8sums, 0),
            _mm256_extracti128_si256(q8sums, 1),
        );
        let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m);

        let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
        let scales = _mm256_set_m128i(sc128, sc128);
        let mut hmask = _mm256_set1_epi8(1);
        let mut sumi = _mm256_setzero_si256();
        for j in 0..QK_K / 64 {
            // SAFETY: each load reads 32 bytes inside `SCALE_SHUFFLE_K4` (rows of 32),
            // `xb.qs` (128 bytes, j < 4) or `yb.qs` (256 bytes, 64 j + 64 <= 256).
            let (shuf_l, shuf_h, q5bits, q8l, q8h) = unsafe {
                (
                    _mm256_loadu_si256(SCALE_SHUFFLE_K4[2 * j].as_ptr().cast()),
                    _mm256_loadu_si256(SCALE_SHUFFLE_K4[2 * j + 1].as_ptr().cast()),
                    _mm256_loadu_si256(xb.qs[32 * j..][..32].as_ptr().cast()),
                    _mm256_loadu_si256(yb.qs[64 * j..][..32].as_ptr().cast()),
                    _mm256_loadu_si256(yb.qs[64 * j + 32..][..32].as_ptr().cast()),
                )
            };
            // 16 where the quant's fifth bit (bit 2j, then 2j + 1 of `qh`) is set.
            let h_l = _mm256_and_si256(
                _mm256_cmpeq_epi8(_mm256_and_si256(hbits, hmask), hmask),
                bit4,
            );
            hmask = _mm256_add_epi8(hmask, hmask);
            let h_h = _mm256_and_si256(
                _mm256_cmpeq_epi8(_mm256_and_si256(hbits, hmask), hmask),
                bit4,
            );
            hmask = _mm256_add_epi8(hmask, hmask);
            let q5l = _mm256_or_si256(_mm256_and_si256(q5bits, m4), h_l);
            let q5h = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4), h_h);
            let scale_l = _mm256_shuffle_epi8(scales, shuf_l);
            let scale_h = _mm256_shuffle_epi8(scales, shuf_h);
            let p16l = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(q5l, q8l));
            let p16h = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(q5h, q8h));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16l, p16h));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    hsum_float_8(acc) + _mm_cvtss_f32(acc_m)
}

/// `Q6_K · Q8_K`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q6_k_q8_k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let m3 = _mm256_set1_epi8(3);
    let m15 = _mm256_set1_epi8(15);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = yb.d * fp16(xb.d);
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
