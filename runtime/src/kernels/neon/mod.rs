//! NEON dot products for aarch64: ports of the `__ARM_NEON` branches of ggml's
//! `ggml_vec_dot_{q4_0,q4_1,q5_0,q5_1,q8_0}_q8_{0,1}` and `ggml_vec_dot_q{2..6}_K_q8_K`
//! (`ggml/src/ggml-cpu/arch/arm/quants.c`), for all ten weight types, in two flavours
//! chosen at run time by [`super::vec_dot`]'s table:
//!
//! * plain NEON (`vec_dot_*`): `sdot` emulated with `vmull_s8`, `vpaddlq_s16` and
//!   `vpaddq_s32` ([`Mull`]), for cores without the dot-product extension (Cortex-A53, A57, A72 —
//!   a Raspberry Pi 3 or 4). NEON (Advanced SIMD) is part of the aarch64 baseline.
//! * dotprod (`vec_dot_*_dotprod`): the `sdot` instruction (Armv8.2 `FEAT_DotProd`:
//!   Cortex-A55/A76 and later, Neoverse, Apple M1 and later), used only when
//!   `is_aarch64_feature_detected!("dotprod")` says the CPU has it ([`dotprod_available`]).
//!
//! Nothing here depends on compile-time target features (llama.cpp's SIGILL reports #58,
//! #5481 and #11636 came from that): one binary runs on every aarch64 CPU. The
//! `vdotq_s32` intrinsic is unstable on stable Rust (feature `stdarch_neon_dotprod`,
//! rust-lang/rust#117224), so `sdot` is emitted with `asm!` ([`Sdot`]), only inside
//! `#[target_feature(enable = "dotprod")]` functions: the assembler rejects the instruction
//! in any function compiled without that feature, so it cannot be reached without the
//! run-time check.
//!
//! Results equal [`super::scalar`]'s up to f32 summation order (the integer sums are exact),
//! and the two flavours give bit-identical results (see [`Mull`]).

mod kquants;
mod legacy;

use std::arch::aarch64::{
    int32x4_t, int8x16_t, vaddq_s32, vget_high_s8, vget_low_s8, vmull_s8, vpaddlq_s16, vpaddq_s32,
};

use super::{KernelLevel, Kernels};
use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, QK,
};
use crate::quant::QK_K;

/// Whether this CPU has the Armv8.2 dot-product instructions (`sdot`/`udot`) the
/// `*_dotprod` kernels need (read from the kernel's `HWCAP` once, then cached by std).
pub fn dotprod_available() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

/// `acc + a·b` over 16 signed bytes, into 4 i32 lanes: lane `i` gets
/// `Σ_{k<4} a[4i+k]·b[4i+k]`, as `sdot` (`vdotq_s32`) computes it.
pub(crate) trait Vdot {
    /// Safety: the CPU must support the instructions the implementation uses (NEON for
    /// [`Mull`], NEON + dotprod for [`Sdot`]).
    unsafe fn vdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// Without dotprod: widening multiplies of each half (`vmull_s8`), pairwise widening adds
/// (`vpaddlq_s16`), then a pairwise add (`vpaddq_s32`) that leaves exactly `sdot`'s lanes.
///
/// ggml's fallback (`ggml_vdotq_s32` without `__ARM_FEATURE_DOTPROD`) ends with a plain
/// `vaddq_s32` instead, which gives the same total but other lanes; the kernels scale lanes
/// in f32 before summing them, so that changes the rounding, and greedy decoding on a
/// Cortex-A53 could then pick another token at a near-tie than on a dotprod CPU. With the
/// lanes equal, both flavours return bit-identical results (`kernels_neon.rs` checks it).
pub(crate) struct Mull;

impl Vdot for Mull {
    #[inline(always)]
    unsafe fn vdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let p1 = vmull_s8(vget_high_s8(a), vget_high_s8(b));
        vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)))
    }
}

/// The `sdot` instruction (`vdotq_s32`): lane `i` gets `Σ_{k<4} a[4i+k]·b[4i+k]`.
pub(crate) struct Sdot;

impl Vdot for Sdot {
    #[inline(always)]
    unsafe fn vdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: `sdot` reads the two vector registers and accumulates into the third; it
        // touches no memory, stack or flags. The assembler only accepts it inside functions
        // compiled with `target_feature(enable = "dotprod")`, which are only called after
        // `dotprod_available()` returned true (the callers' contract).
        std::arch::asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
        acc
    }
}

/// Defines, for each weight type, the plain NEON entry point, the dotprod one, and the two
/// `#[target_feature]` functions that instantiate the shared kernel body with [`Mull`] and
/// [`Sdot`].
macro_rules! entry_points {
    ($(
        $ggml:literal, $plain:ident, $dot:ident, $m:ident::$f:ident,
        $w:ty, $a:ty, $qk:expr;
    )*) => {$(
        #[doc = concat!("`", $ggml, "`, plain NEON (no dotprod); panics when a slice holds ")]
        #[doc = "fewer than `n / block_size` blocks."]
        pub fn $plain(n: usize, x: &[$w], y: &[$a]) -> f32 {
            #[target_feature(enable = "neon")]
            unsafe fn run(x: &[$w], y: &[$a]) -> f32 {
                $m::$f::<Mull>(x, y)
            }
            let nb = n / $qk;
            // SAFETY: NEON is part of the aarch64 baseline (every aarch64 Linux CPU has it);
            // both slices hold exactly `nb` blocks (the indexing panics otherwise).
            unsafe { run(&x[..nb], &y[..nb]) }
        }

        #[doc = concat!("`", $ggml, "` with the dotprod `sdot` instruction; panics when a ")]
        #[doc = "slice holds fewer than `n / block_size` blocks or when the CPU lacks dotprod"]
        #[doc = "([`dotprod_available`])."]
        pub fn $dot(n: usize, x: &[$w], y: &[$a]) -> f32 {
            #[target_feature(enable = "neon,dotprod")]
            unsafe fn run(x: &[$w], y: &[$a]) -> f32 {
                $m::$f::<Sdot>(x, y)
            }
            assert!(dotprod_available(), "dotprod kernels called on a CPU without dotprod");
            let nb = n / $qk;
            // SAFETY: the CPU supports NEON and dotprod (checked above); both slices hold
            // exactly `nb` blocks.
            unsafe { run(&x[..nb], &y[..nb]) }
        }
    )*};
}

entry_points! {
    "ggml_vec_dot_q4_0_q8_0", vec_dot_q4_0_q8_0, vec_dot_q4_0_q8_0_dotprod, legacy::q4_0,
        BlockQ4_0, BlockQ8_0, QK;
    "ggml_vec_dot_q4_1_q8_1", vec_dot_q4_1_q8_1, vec_dot_q4_1_q8_1_dotprod, legacy::q4_1,
        BlockQ4_1, BlockQ8_1, QK;
    "ggml_vec_dot_q5_0_q8_0", vec_dot_q5_0_q8_0, vec_dot_q5_0_q8_0_dotprod, legacy::q5_0,
        BlockQ5_0, BlockQ8_0, QK;
    "ggml_vec_dot_q5_1_q8_1", vec_dot_q5_1_q8_1, vec_dot_q5_1_q8_1_dotprod, legacy::q5_1,
        BlockQ5_1, BlockQ8_1, QK;
    "ggml_vec_dot_q8_0_q8_0", vec_dot_q8_0_q8_0, vec_dot_q8_0_q8_0_dotprod, legacy::q8_0,
        BlockQ8_0, BlockQ8_0, QK;
    "ggml_vec_dot_q2_K_q8_K", vec_dot_q2_k_q8_k, vec_dot_q2_k_q8_k_dotprod, kquants::q2_k,
        BlockQ2K, BlockQ8K, QK_K;
    "ggml_vec_dot_q3_K_q8_K", vec_dot_q3_k_q8_k, vec_dot_q3_k_q8_k_dotprod, kquants::q3_k,
        BlockQ3K, BlockQ8K, QK_K;
    "ggml_vec_dot_q4_K_q8_K", vec_dot_q4_k_q8_k, vec_dot_q4_k_q8_k_dotprod, kquants::q4_k,
        BlockQ4K, BlockQ8K, QK_K;
    "ggml_vec_dot_q5_K_q8_K", vec_dot_q5_k_q8_k, vec_dot_q5_k_q8_k_dotprod, kquants::q5_k,
        BlockQ5K, BlockQ8K, QK_K;
    "ggml_vec_dot_q6_K_q8_K", vec_dot_q6_k_q8_k, vec_dot_q6_k_q8_k_dotprod, kquants::q6_k,
        BlockQ6K, BlockQ8K, QK_K;
}

/// The plain NEON table ([`KernelLevel::Neon`]): every type.
pub(super) const NEON: Kernels = Kernels {
    level: KernelLevel::Neon,
    q4_0: vec_dot_q4_0_q8_0,
    q4_1: vec_dot_q4_1_q8_1,
    q5_0: vec_dot_q5_0_q8_0,
    q5_1: vec_dot_q5_1_q8_1,
    q8_0: vec_dot_q8_0_q8_0,
    q2_k: vec_dot_q2_k_q8_k,
    q3_k: vec_dot_q3_k_q8_k,
    q4_k: vec_dot_q4_k_q8_k,
    q5_k: vec_dot_q5_k_q8_k,
    q6_k: vec_dot_q6_k_q8_k,
};

/// The NEON + dotprod table ([`KernelLevel::NeonDotprod`]): every type. Only selected when
/// [`dotprod_available`].
pub(super) const NEON_DOTPROD: Kernels = Kernels {
    level: KernelLevel::NeonDotprod,
    q4_0: vec_dot_q4_0_q8_0_dotprod,
    q4_1: vec_dot_q4_1_q8_1_dotprod,
    q5_0: vec_dot_q5_0_q8_0_dotprod,
    q5_1: vec_dot_q5_1_q8_1_dotprod,
    q8_0: vec_dot_q8_0_q8_0_dotprod,
    q2_k: vec_dot_q2_k_q8_k_dotprod,
    q3_k: vec_dot_q3_k_q8_k_dotprod,
    q4_k: vec_dot_q4_k_q8_k_dotprod,
    q5_k: vec_dot_q5_k_q8_k_dotprod,
    q6_k: vec_dot_q6_k_q8_k_dotprod,
};

/// The NEON table for this CPU: [`NEON_DOTPROD`] when it has dotprod, unless `forced` (the
/// trimmed `PITH_FORCE_KERNELS` value) is `neon-nodot`, else [`NEON`]; `None` on a CPU
/// without Advanced SIMD (no aarch64 Linux CPU, but the check costs nothing).
pub(super) fn select(forced: Option<&str>) -> Option<Kernels> {
    if !std::arch::is_aarch64_feature_detected!("asimd") {
        return None;
    }
    if forced != Some("neon-nodot") && dotprod_available() {
        tracing::debug!("NEON + dotprod kernels");
        Some(NEON_DOTPROD)
    } else {
        tracing::debug!("NEON kernels (no dotprod)");
        Some(NEON)
    }
}
