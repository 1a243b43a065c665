//! AVX-512 dot products (F + BW + VL, optionally VNNI) for x86-64 CPUs that report those
//! features at run time. ggml has no 512-bit `vec_dot` kernels (its x86 code only swaps
//! `vpdpbusd` into the AVX2 helpers); these follow ggml's AVX2 kernels
//! ([`super::avx2`]) but cover two legacy blocks or one 64-byte k-quant chunk per
//! instruction, convert the f16 block scales four at a time with F16C, and multiply
//! unsigned quants by signed activations directly (`vpmaddubsw`/`vpdpbusd`), subtracting
//! the format's offset through the activation sums instead of sign tricks.
//!
//! Each kernel is written once, generic over [`Dot`], and compiled twice: with
//! [`Vnni`] (`vpdpbusd`/`vpdpwssd`, `vec_dot_*_vnni`) and with [`NoVnni`]
//! (`vpmaddubsw`/`vpmaddwd` + `vpaddd`, `vec_dot_*`). The generic bodies are
//! `#[inline(always)]` with no target features of their own, so they (and the intrinsics
//! in them) are inlined into the `#[target_feature]` entry points generated below; they
//! are `unsafe` to call anywhere else.
//!
//! Results equal [`super::scalar`]'s up to f32 summation order. Preconditions, as for the
//! AVX2 kernels: activation quants in `[-127, 127]` ([`super::quantize`] produces them).
//! Q2_K and Q3_K use the AVX2 kernels (no 512-bit version yet).

mod kquants;
mod legacy;

use std::arch::x86_64::{
    __m128, __m256i, __m512, __m512i, _mm256_loadu_si256, _mm512_add_epi32, _mm512_castps128_ps512,
    _mm512_dpbusd_epi32, _mm512_dpwssd_epi32, _mm512_loadu_si512, _mm512_madd_epi16,
    _mm512_maddubs_epi16, _mm512_permutexvar_ps, _mm512_set1_epi16, _mm512_setr_epi32, _mm_add_ps,
    _mm_add_ss, _mm_cvtph_ps, _mm_cvtsi64_si128, _mm_cvtss_f32, _mm_movehdup_ps, _mm_movehl_ps,
};

use half::f16;

use super::{avx2, KernelLevel, Kernels};
use crate::quant::blocks::{
    BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0,
    BlockQ8_1, QK,
};
use crate::quant::QK_K;

/// Whether this CPU can run the kernels of this module without VNNI: AVX-512 F, BW and VL
/// (plus AVX2, FMA and F16C, which every such CPU has, for the types left to AVX2).
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && avx2::available()
}

/// Whether this CPU can run the `*_vnni` kernels: [`available`] and AVX-512 VNNI.
pub fn vnni_available() -> bool {
    available() && is_x86_feature_detected!("avx512vnni")
}

/// The integer multiply-accumulate steps, with or without VNNI.
///
/// Safety (both methods): the CPU must support AVX-512 F + BW, and VNNI for [`Vnni`].
pub(crate) trait Dot {
    /// `acc + Σ a·b` over each 4 bytes into 16 i32 lanes, `a` unsigned and `b` signed. The
    /// emulation saturates each pair `a₀b₀ + a₁b₁` to i16: callers keep it within ±32767.
    unsafe fn dpbusd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i;
    /// `acc + Σ a·b` over each 2 i16 into 16 i32 lanes.
    unsafe fn dpwssd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i;
}

/// AVX-512 VNNI: `vpdpbusd` and `vpdpwssd`.
pub(crate) struct Vnni;

impl Dot for Vnni {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(acc, a, b)
    }
    #[inline(always)]
    unsafe fn dpwssd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        _mm512_dpwssd_epi32(acc, a, b)
    }
}

/// AVX-512 BW without VNNI: `vpmaddubsw` + `vpmaddwd` + `vpaddd` (ggml's AVX2 sequence).
pub(crate) struct NoVnni;

impl Dot for NoVnni {
    #[inline(always)]
    unsafe fn dpbusd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        let pairs = _mm512_maddubs_epi16(a, b);
        _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)))
    }
    #[inline(always)]
    unsafe fn dpwssd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(acc, _mm512_madd_epi16(a, b))
    }
}

/// Generates, for each generic body `module::body`, the two `#[target_feature]` entry
/// points and their checked public wrappers.
macro_rules! avx512_kernels {
    ($( $(#[$doc:meta])* $plain:ident, $vnni:ident => $m:ident::$body:ident($w:ty, $a:ty, $block:expr); )*) => {
        /// The `#[target_feature]` instantiations of the generic bodies.
        mod entry {
            use super::*;
            $(
                /// Safety: the CPU must support AVX-512 F/BW/VL, AVX2, FMA and F16C; `x`
                /// and `y` have the same length.
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
                pub(super) unsafe fn $plain(x: &[$w], y: &[$a]) -> f32 {
                    // SAFETY: the features the body needs are enabled here; forwarded.
                    unsafe { $m::$body::<NoVnni>(x, y) }
                }
                /// Safety: as the plain entry point, plus AVX-512 VNNI.
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
                pub(super) unsafe fn $vnni(x: &[$w], y: &[$a]) -> f32 {
                    // SAFETY: the features the body needs are enabled here; forwarded.
                    unsafe { $m::$body::<Vnni>(x, y) }
                }
            )*
        }
        checked_kernels! {
            available: available, what: "AVX-512 F/BW/VL";
            $( $(#[$doc])* $plain($w, $a, $block) => entry::$plain; )*
        }
        checked_kernels! {
            available: vnni_available, what: "AVX-512 F/BW/VL/VNNI";
            $( $(#[$doc])* $vnni($w, $a, $block) => entry::$vnni; )*
        }
    };
}

avx512_kernels! {
    /// `Q4_0 · Q8_0`.
    vec_dot_q4_0_q8_0, vec_dot_q4_0_q8_0_vnni => legacy::q4_0(BlockQ4_0, BlockQ8_0, QK);
    /// `Q4_1 · Q8_1`.
    vec_dot_q4_1_q8_1, vec_dot_q4_1_q8_1_vnni => legacy::q4_1(BlockQ4_1, BlockQ8_1, QK);
    /// `Q5_0 · Q8_0`.
    vec_dot_q5_0_q8_0, vec_dot_q5_0_q8_0_vnni => legacy::q5_0(BlockQ5_0, BlockQ8_0, QK);
    /// `Q5_1 · Q8_1`.
    vec_dot_q5_1_q8_1, vec_dot_q5_1_q8_1_vnni => legacy::q5_1(BlockQ5_1, BlockQ8_1, QK);
    /// `Q8_0 · Q8_0`.
    vec_dot_q8_0_q8_0, vec_dot_q8_0_q8_0_vnni => legacy::q8_0(BlockQ8_0, BlockQ8_0, QK);
    /// `Q4_K · Q8_K`.
    vec_dot_q4_k_q8_k, vec_dot_q4_k_q8_k_vnni => kquants::q4_k(BlockQ4K, BlockQ8K, QK_K);
    /// `Q5_K · Q8_K`.
    vec_dot_q5_k_q8_k, vec_dot_q5_k_q8_k_vnni => kquants::q5_k(BlockQ5K, BlockQ8K, QK_K);
    /// `Q6_K · Q8_K`.
    vec_dot_q6_k_q8_k, vec_dot_q6_k_q8_k_vnni => kquants::q6_k(BlockQ6K, BlockQ8K, QK_K);
}

/// The AVX-512 table without VNNI ([`KernelLevel::Avx512`]). Q2_K and Q3_K: AVX2 (no
/// 512-bit kernel written yet). Measured on a Sapphire Rapids core (interleaved minimum,
/// `kernel_levels.rs`'s `speed_by_level`), against AVX2: Q4_0/Q4_1/Q5_0/Q5_1 and Q6_K
/// 1.3–1.6× faster, Q4_K and Q5_K 1.05–1.15×; Q8_0 the same speed (the four scalar f16
/// scale loads per 128 quants dominate both), kept because it is never slower.
pub(super) const AVX512: Kernels = Kernels {
    level: KernelLevel::Avx512,
    q4_0: vec_dot_q4_0_q8_0,
    q4_1: vec_dot_q4_1_q8_1,
    q5_0: vec_dot_q5_0_q8_0,
    q5_1: vec_dot_q5_1_q8_1,
    q8_0: vec_dot_q8_0_q8_0,
    q2_k: avx2::vec_dot_q2_k_q8_k,
    q3_k: avx2::vec_dot_q3_k_q8_k,
    q4_k: vec_dot_q4_k_q8_k,
    q5_k: vec_dot_q5_k_q8_k,
    q6_k: vec_dot_q6_k_q8_k,
};

/// The AVX-512 VNNI table ([`KernelLevel::Avx512Vnni`]). Q2_K and Q3_K: AVX2 (no 512-bit
/// kernel written yet); speed as for [`AVX512`], VNNI adding up to 6% (Q4_K).
pub(super) const AVX512_VNNI: Kernels = Kernels {
    level: KernelLevel::Avx512Vnni,
    q4_0: vec_dot_q4_0_q8_0_vnni,
    q4_1: vec_dot_q4_1_q8_1_vnni,
    q5_0: vec_dot_q5_0_q8_0_vnni,
    q5_1: vec_dot_q5_1_q8_1_vnni,
    q8_0: vec_dot_q8_0_q8_0_vnni,
    q2_k: avx2::vec_dot_q2_k_q8_k,
    q3_k: avx2::vec_dot_q3_k_q8_k,
    q4_k: vec_dot_q4_k_q8_k_vnni,
    q5_k: vec_dot_q5_k_q8_k_vnni,
    q6_k: vec_dot_q6_k_q8_k_vnni,
};

/// An unaligned 256-bit load of 32 bytes.
///
/// Safety: AVX (every caller has AVX-512).
#[inline(always)]
unsafe fn load256<T>(bytes: &[T; 32]) -> __m256i
where
    T: bytemuck::Pod,
{
    const { assert!(size_of::<T>() == 1) };
    // SAFETY: `bytes` is 32 bytes (checked above), the width of an unaligned 256-bit load.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

/// An unaligned 512-bit load of 64 bytes.
///
/// Safety: AVX-512 F.
#[inline(always)]
unsafe fn load512<T>(bytes: &[T; 64]) -> __m512i
where
    T: bytemuck::Pod,
{
    const { assert!(size_of::<T>() == 1) };
    // SAFETY: `bytes` is 64 bytes (checked above), the width of an unaligned 512-bit load.
    unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
}

/// Four f16 as four f32 lanes: one `vmovq` of the packed bits and one F16C conversion.
///
/// Safety: F16C.
#[inline(always)]
unsafe fn fp16x4(h: [f16; 4]) -> __m128 {
    let bits = h
        .iter()
        .rev()
        .fold(0u64, |acc, v| (acc << 16) | u64::from(v.to_bits()));
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
}

/// Spreads 4 per-block scales over two 512-bit vectors, 8 lanes per block: `(d0 d1)` and
/// `(d2 d3)`.
///
/// Safety: AVX-512 F.
#[inline(always)]
unsafe fn spread_scales(d: __m128) -> (__m512, __m512) {
    let d = _mm512_castps128_ps512(d);
    let lo = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    let hi = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    (_mm512_permutexvar_ps(lo, d), _mm512_permutexvar_ps(hi, d))
}

/// The sum of 4 f32 lanes.
///
/// Safety: SSE3.
#[inline(always)]
unsafe fn hsum_float_4(x: __m128) -> f32 {
    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)))
}
