//! AVX2 + FMA (+ F16C) dot products for every weight type: ports of the `__AVX2__` branches
//! of ggml's `ggml_vec_dot_*` (`ggml/src/ggml-cpu/arch/x86/quants.c`), for x86-64 CPUs that
//! report those features at run time. Results equal [`super::scalar`]'s up to f32
//! summation order.
//!
//! The activation quants must lie in `[-127, 127]`, as [`super::quantize`] produces them:
//! like ggml, the Q4_0/Q5_0/Q8_0 kernels multiply with `_mm256_sign_epi8`, which cannot
//! negate -128.
//!
//! [`legacy`] holds the 32-element formats (Q4_0 … Q8_0), [`kquants`] the 256-element ones
//! (Q2_K … Q6_K); both are reached through the safe `vec_dot_*` wrappers below.

mod kquants;
mod legacy;

use std::arch::x86_64::{
    __m256, __m256i, _mm256_and_si256, _mm256_castps256_ps128, _mm256_cmpeq_epi8,
    _mm256_cvtepi32_ps, _mm256_extractf128_ps, _mm256_madd_epi16, _mm256_maddubs_epi16,
    _mm256_or_si256, _mm256_set1_epi16, _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_set1_epi8,
    _mm256_set_epi64x, _mm256_set_m128i, _mm256_shuffle_epi8, _mm256_sign_epi8, _mm_add_ps,
    _mm_add_ss, _mm_cvtph_ps, _mm_cvtsi32_si128, _mm_cvtss_f32, _mm_loadu_si128, _mm_movehdup_ps,
    _mm_movehl_ps, _mm_srli_epi16,
};

use half::f16;

use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, QK,
};
use crate::quant::QK_K;

/// Whether this CPU can run the kernels of this module: AVX2, FMA and F16C (every AVX2 CPU
/// has the other two).
pub fn available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

checked_kernels! {
    available: available, what: "AVX2 + FMA + F16C";
    /// `Q4_0 · Q8_0`.
    vec_dot_q4_0_q8_0(BlockQ4_0, BlockQ8_0, QK) => legacy::q4_0_q8_0;
    /// `Q4_1 · Q8_1`.
    vec_dot_q4_1_q8_1(BlockQ4_1, BlockQ8_1, QK) => legacy::q4_1_q8_1;
    /// `Q5_0 · Q8_0`.
    vec_dot_q5_0_q8_0(BlockQ5_0, BlockQ8_0, QK) => legacy::q5_0_q8_0;
    /// `Q5_1 · Q8_1`.
    vec_dot_q5_1_q8_1(BlockQ5_1, BlockQ8_1, QK) => legacy::q5_1_q8_1;
    /// `Q8_0 · Q8_0`.
    vec_dot_q8_0_q8_0(BlockQ8_0, BlockQ8_0, QK) => legacy::q8_0_q8_0;
    /// `Q2_K · Q8_K`.
    vec_dot_q2_k_q8_k(BlockQ2K, BlockQ8K, QK_K) => kquants::q2_k_q8_k;
    /// `Q3_K · Q8_K`.
    vec_dot_q3_k_q8_k(BlockQ3K, BlockQ8K, QK_K) => kquants::q3_k_q8_k;
    /// `Q4_K · Q8_K`.
    vec_dot_q4_k_q8_k(BlockQ4K, BlockQ8K, QK_K) => kquants::q4_k_q8_k;
    /// `Q5_K · Q8_K`.
    vec_dot_q5_k_q8_k(BlockQ5K, BlockQ8K, QK_K) => kquants::q5_k_q8_k;
    /// `Q6_K · Q8_K`.
    vec_dot_q6_k_q8_k(BlockQ6K, BlockQ8K, QK_K) => kquants::q6_k_q8_k;
}

/// `h` as an `f32`, exactly (Fabian Giesen's `half_to_float_fast5`: subnormals, infinities
/// and NaNs included), in scalar integer/float code. `half`'s conversion checks the CPU on
/// every call; a lone F16C `vcvtph2ps` makes LLVM load the f16 with `vpinsrw` into
/// whatever register is free, often the loop's accumulator, which chains every iteration
/// behind the previous one's FMA.
#[inline(always)]
pub(crate) fn fp16(h: f16) -> f32 {
    let h = u32::from(h.to_bits());
    let magic = f32::from_bits((254 - 15) << 23);
    let was_inf_nan = f32::from_bits((127 + 16) << 23);
    let o = f32::from_bits((h & 0x7fff) << 13) * magic;
    let mut bits = o.to_bits();
    if o >= was_inf_nan {
        bits |= 255 << 23;
    }
    f32::from_bits(bits | ((h & 0x8000) << 16))
}

/// `(a, b)` as `f32`s with one F16C conversion (both lanes are used, so the pair is moved
/// in with `vmovd`, without the false dependency described at [`fp16`]).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn fp16x2(a: f16, b: f16) -> (f32, f32) {
    let bits = u32::from(a.to_bits()) | (u32::from(b.to_bits()) << 16);
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// `a · b` for two f16 scales (see [`fp16x2`]).
#[target_feature(enable = "avx2,fma,f16c")]
fn fp16_mul(a: f16, b: f16) -> f32 {
    let (a, b) = fp16x2(a, b);
    a * b
}

/// ggml's `hsum_float_8`.
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_float_8(x: __m256) -> f32 {
    let mut res = _mm256_extractf128_ps(x, 1);
    res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    _mm_cvtss_f32(res)
}

/// ggml's `mul_sum_us8_pairs_float` (AVX2 path): `Σ ax·sy` over each 4 bytes (`ax`
/// unsigned, `sy` signed, pair sums within i16), as 8 floats.
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_us8_pairs_float(ax: __m256i, sy: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(ax, sy);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), dot))
}

/// ggml's `mul_sum_i8_pairs_float` (AVX2 path): `Σ x·y` over each 4 bytes, as 8 floats.
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_i8_pairs_float(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8_pairs_float(ax, sy)
}

/// ggml's `bytes_from_nibbles_32`: the 32 nibbles of `qs` as bytes in `[0, 15]`, low
/// nibbles first.
#[target_feature(enable = "avx2,fma,f16c")]
fn bytes_from_nibbles_32(qs: &[u8; 16]) -> __m256i {
    // SAFETY: `qs` is 16 bytes, the width of an unaligned 128-bit load.
    let tmp = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let bytes = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
    _mm256_and_si256(_mm256_set1_epi8(0x0f), bytes)
}

/// ggml's `bytes_from_bits_32`: bit `i` of `bits` as byte `i`, `0x00` or `0xff`.
#[target_feature(enable = "avx2,fma,f16c")]
fn bytes_from_bits_32(bits: u32) -> __m256i {
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

#[cfg(test)]
mod tests {
    use half::f16;

    #[test]
    fn fp16_matches_half_on_every_value() {
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits);
            let (want, got) = (h.to_f32(), super::fp16(h));
            assert!(
                want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()),
                "{bits:#06x}: {got} vs {want}"
            );
            if super::available() {
                // SAFETY: the CPU has AVX2, FMA and F16C (checked above).
                let (a, b) = unsafe { super::fp16x2(h, f16::from_bits(!bits)) };
                let b_want = f16::from_bits(!bits).to_f32();
                assert!(a.to_bits() == want.to_bits() || (a.is_nan() && want.is_nan()));
                assert!(b.to_bits() == b_want.to_bits() || (b.is_nan() && b_want.is_nan()));
            }
        }
    }
}
