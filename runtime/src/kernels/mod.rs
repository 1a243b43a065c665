//! Quantized dot products, ggml style: the activation row is quantized once to the
//! weight type's [`vec_dot_type`] (Q8_0, Q8_1 or Q8_K, see [`quantize_activation`]), then
//! each weight row is multiplied block by block with integer arithmetic ([`vec_dot`]),
//! with no dequantization of the weights.
//!
//! Kernels are chosen once per process into a [`OnceLock`] table of function pointers
//! (STYLE.md §5), one table per [`KernelLevel`]: the [`scalar`] level (ports of ggml's
//! generic C, the oracle for the others) everywhere; on x86-64 the `avx2` kernels (every
//! type; AVX2 + FMA + F16C) and the `avx512` ones (AVX-512 F/BW/VL, with or without VNNI;
//! AVX2 for the types it does not speed up); on aarch64 the `neon` kernels. The best level
//! the CPU reports at run time is used ([`best_level`]); `PITH_FORCE_KERNELS=<name>` pins
//! one ([`KernelLevel::name`]), and [`vec_dot_with`] runs any [`available_levels`] entry.

/// Defines safe `vec_dot_*` wrappers around `unsafe` `#[target_feature]` kernels: each
/// checks that the CPU has the features (`available`), cuts both slices to `n / block`
/// blocks (panicking when one is shorter) and calls the kernel.
#[cfg(target_arch = "x86_64")]
macro_rules! checked_kernels {
    (available: $available:path, what: $what:literal;
     $( $(#[$doc:meta])* $name:ident($w:ty, $a:ty, $block:expr) => $inner:path; )*) => {$(
        $(#[$doc])*
        ///
        /// Panics when a slice holds fewer than `n / block size` blocks or when the CPU
        #[doc = concat!("lacks ", $what, " ([`", stringify!($available), "`]).")]
        pub fn $name(n: usize, x: &[$w], y: &[$a]) -> f32 {
            assert!($available(), concat!($what, " kernels called on a CPU without them"));
            let nb = n / $block;
            let (x, y) = (&x[..nb], &y[..nb]);
            // SAFETY: the CPU has the features the kernel is compiled for (checked above),
            // and `x` and `y` both hold `nb` blocks.
            unsafe { $inner(x, y) }
        }
    )*};
}

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod quantize;
pub mod scalar;

use std::mem::size_of;
use std::sync::OnceLock;

use bytemuck::Pod;

use crate::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use crate::quant::GgmlType;

pub use quantize::{
    quantize_activation, quantize_row_q8_0, quantize_row_q8_1, quantize_row_q8_k, vec_dot_type,
};

/// Why a quantized dot product or activation quantization was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// pith has no quantized dot product for this weight type.
    #[error("no quantized dot product for {ty} weights")]
    Unsupported { ty: GgmlType },
    /// The element count is not a multiple of the block size.
    #[error("{n} elements is not a whole number of {ty} blocks of {block_size}")]
    PartialBlock {
        ty: GgmlType,
        n: usize,
        block_size: usize,
    },
    /// A row's byte length does not match `n` elements of its type.
    #[error("{ty} row of {n} elements must be {expected_bytes} bytes, got {actual_bytes}")]
    LengthMismatch {
        ty: GgmlType,
        n: usize,
        expected_bytes: usize,
        actual_bytes: usize,
    },
    /// [`vec_dot_with`] was asked for a kernel level this CPU cannot run.
    #[error("this CPU cannot run the {level} kernels")]
    LevelUnavailable { level: KernelLevel },
}

/// An instruction-set level: one table of dot-product kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KernelLevel {
    /// Portable Rust ([`scalar`]).
    Scalar,
    /// x86-64 AVX2 + FMA + F16C (`avx2` module): every type.
    Avx2,
    /// x86-64 AVX-512 F + BW + VL without VNNI (`avx512` module, Skylake-SP): 512-bit
    /// kernels for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K, AVX2 for the rest.
    Avx512,
    /// As [`KernelLevel::Avx512`], multiplying with AVX-512 VNNI's `vpdpbusd`/`vpdpwssd`
    /// (Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4 and later).
    Avx512Vnni,
    /// aarch64 NEON without the dot-product extension (`neon` module; Cortex-A53/A72): every type.
    Neon,
    /// aarch64 NEON with the Armv8.2 dot-product instructions (`neon` module, `sdot`): every type.
    NeonDotprod,
}

impl KernelLevel {
    /// Every level, slowest first (whether or not this CPU can run it).
    pub const ALL: [KernelLevel; 6] = [
        KernelLevel::Scalar,
        KernelLevel::Avx2,
        KernelLevel::Avx512,
        KernelLevel::Avx512Vnni,
        KernelLevel::Neon,
        KernelLevel::NeonDotprod,
    ];

    /// The level's name, as `PITH_FORCE_KERNELS` takes it: `scalar`, `avx2`, `avx512`
    /// (no VNNI), `avx512-vnni`, `neon-nodot`, `neon-dotprod`.
    pub const fn name(self) -> &'static str {
        match self {
            KernelLevel::Scalar => "scalar",
            KernelLevel::Avx2 => "avx2",
            KernelLevel::Avx512 => "avx512",
            KernelLevel::Avx512Vnni => "avx512-vnni",
            KernelLevel::Neon => "neon-nodot",
            KernelLevel::NeonDotprod => "neon-dotprod",
        }
    }

    /// The level named `name` (see [`KernelLevel::name`]; ASCII case and surrounding
    /// blanks ignored), or `None`.
    pub fn from_name(name: &str) -> Option<KernelLevel> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }

    /// Whether this CPU can run the level's kernels (checked at run time).
    pub fn is_available(self) -> bool {
        table(self).is_some()
    }
}

impl std::fmt::Display for KernelLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One dot-product function per weight type, filled for one [`KernelLevel`].
#[derive(Clone, Copy)]
struct Kernels {
    level: KernelLevel,
    q4_0: fn(usize, &[BlockQ4_0], &[BlockQ8_0]) -> f32,
    q4_1: fn(usize, &[BlockQ4_1], &[BlockQ8_1]) -> f32,
    q5_0: fn(usize, &[BlockQ5_0], &[BlockQ8_0]) -> f32,
    q5_1: fn(usize, &[BlockQ5_1], &[BlockQ8_1]) -> f32,
    q8_0: fn(usize, &[BlockQ8_0], &[BlockQ8_0]) -> f32,
    q2_k: fn(usize, &[BlockQ2K], &[BlockQ8K]) -> f32,
    q3_k: fn(usize, &[BlockQ3K], &[BlockQ8K]) -> f32,
    q4_k: fn(usize, &[BlockQ4K], &[BlockQ8K]) -> f32,
    q5_k: fn(usize, &[BlockQ5K], &[BlockQ8K]) -> f32,
    q6_k: fn(usize, &[BlockQ6K], &[BlockQ8K]) -> f32,
}

const SCALAR: Kernels = Kernels {
    level: KernelLevel::Scalar,
    q4_0: scalar::vec_dot_q4_0_q8_0,
    q4_1: scalar::vec_dot_q4_1_q8_1,
    q5_0: scalar::vec_dot_q5_0_q8_0,
    q5_1: scalar::vec_dot_q5_1_q8_1,
    q8_0: scalar::vec_dot_q8_0_q8_0,
    q2_k: scalar::vec_dot_q2_k_q8_k,
    q3_k: scalar::vec_dot_q3_k_q8_k,
    q4_k: scalar::vec_dot_q4_k_q8_k,
    q5_k: scalar::vec_dot_q5_k_q8_k,
    q6_k: scalar::vec_dot_q6_k_q8_k,
};

#[cfg(target_arch = "x86_64")]
const AVX2: Kernels = Kernels {
    level: KernelLevel::Avx2,
    q4_0: avx2::vec_dot_q4_0_q8_0,
    q4_1: avx2::vec_dot_q4_1_q8_1,
    q5_0: avx2::vec_dot_q5_0_q8_0,
    q5_1: avx2::vec_dot_q5_1_q8_1,
    q8_0: avx2::vec_dot_q8_0_q8_0,
    q2_k: avx2::vec_dot_q2_k_q8_k,
    q3_k: avx2::vec_dot_q3_k_q8_k,
    q4_k: avx2::vec_dot_q4_k_q8_k,
    q5_k: avx2::vec_dot_q5_k_q8_k,
    q6_k: avx2::vec_dot_q6_k_q8_k,
};

/// The kernel table of `level`, when this CPU can run it.
fn table(level: KernelLevel) -> Option<&'static Kernels> {
    match level {
        KernelLevel::Scalar => Some(&SCALAR),
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx2 => avx2::available().then_some(&AVX2),
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx512 => avx512::available().then_some(&avx512::AVX512),
        #[cfg(target_arch = "x86_64")]
        KernelLevel::Avx512Vnni => avx512::vnni_available().then_some(&avx512::AVX512_VNNI),
        #[cfg(target_arch = "aarch64")]
        KernelLevel::Neon => Some(&neon::NEON),
        #[cfg(target_arch = "aarch64")]
        KernelLevel::NeonDotprod => neon::dotprod_available().then_some(&neon::NEON_DOTPROD),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The levels this CPU can run, slowest first; always starts with [`KernelLevel::Scalar`].
pub fn available_levels() -> Vec<KernelLevel> {
    KernelLevel::ALL
        .into_iter()
        .filter(|&l| table(l).is_some())
        .collect()
}

/// The fastest level this CPU can run: what [`vec_dot`] uses unless `PITH_FORCE_KERNELS`
/// says otherwise.
pub fn best_level() -> KernelLevel {
    available_levels().pop().unwrap_or(KernelLevel::Scalar)
}

/// The environment variable that pins a kernel level by name ([`KernelLevel::name`]).
/// Default: unset (or empty, or `auto`), the [`best_level`]. A level this CPU cannot run,
/// or an unknown name, logs a warning and falls back to the best level; it never
/// executes an instruction the CPU lacks.
pub const FORCE_ENV: &str = "PITH_FORCE_KERNELS";

fn kernels() -> &'static Kernels {
    static TABLE: OnceLock<Kernels> = OnceLock::new();
    TABLE.get_or_init(|| {
        let forced = std::env::var(FORCE_ENV)
            .ok()
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty() && v != "auto");
        if let Some(name) = forced.as_deref() {
            match KernelLevel::from_name(name).map(|l| (l, table(l))) {
                Some((level, Some(k))) => {
                    tracing::debug!("{FORCE_ENV}={name}: {level} kernels");
                    return *k;
                }
                Some((level, None)) => tracing::warn!(
                    "{FORCE_ENV}={name}: this CPU cannot run the {level} kernels; using {}",
                    best_level()
                ),
                // `neon` (the best NEON level) is resolved by `neon::select` below.
                None if cfg!(target_arch = "aarch64") && name == "neon" => {}
                None => tracing::warn!(
                    "{FORCE_ENV}={name}: unknown kernel level (one of {}); using {}",
                    KernelLevel::ALL.map(KernelLevel::name).join(", "),
                    best_level()
                ),
            }
        }
        #[cfg(target_arch = "aarch64")]
        if let Some(table) = neon::select(forced.as_deref()) {
            return table;
        }
        let level = best_level();
        tracing::debug!("{level} kernels");
        *table(level).unwrap_or(&SCALAR)
    })
}

/// The kernel level selected for this process (decided on first use).
pub fn active_level() -> KernelLevel {
    kernels().level
}

/// Whether [`vec_dot`] supports weights of type `w_ty`: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and
/// Q2_K … Q6_K.
pub fn supports(w_ty: GgmlType) -> bool {
    vec_dot_type(w_ty).is_some()
}

/// `Σ w_i · x_i` over `n` elements: `w_row` is one weight row of type `w_ty` (raw GGUF
/// bytes), `x_q` the activations quantized by [`quantize_activation`] for the same `w_ty`.
///
/// Both slices must hold exactly `n` elements. Blocks are viewed in place; a slice that is
/// not aligned for its block type (never the case for GGUF tensor data or a `Vec`'s
/// allocation in practice) is copied first.
///
/// Errors: [`KernelError::Unsupported`] for a weight type without a quantized dot product
/// (see [`supports`]), [`KernelError::PartialBlock`] when `n` is not a multiple of the
/// weight or activation block size, [`KernelError::LengthMismatch`] when a slice does not
/// hold exactly `n` elements.
pub fn vec_dot(w_ty: GgmlType, w_row: &[u8], x_q: &[u8], n: usize) -> Result<f32, KernelError> {
    dispatch(kernels(), w_ty, w_row, x_q, n)
}

/// As [`vec_dot`], always with the [`scalar`] kernels (whatever the selected level): the
/// reference the SIMD levels are tested against.
pub fn vec_dot_scalar(
    w_ty: GgmlType,
    w_row: &[u8],
    x_q: &[u8],
    n: usize,
) -> Result<f32, KernelError> {
    dispatch(&SCALAR, w_ty, w_row, x_q, n)
}

/// As [`vec_dot`], with the kernels of `level` (whatever the selected level): lets tests
/// and benchmarks compare every [`available_levels`] entry in one process.
///
/// Errors: those of [`vec_dot`], and [`KernelError::LevelUnavailable`] when this CPU
/// cannot run `level`.
pub fn vec_dot_with(
    level: KernelLevel,
    w_ty: GgmlType,
    w_row: &[u8],
    x_q: &[u8],
    n: usize,
) -> Result<f32, KernelError> {
    let k = table(level).ok_or(KernelError::LevelUnavailable { level })?;
    dispatch(k, w_ty, w_row, x_q, n)
}

/// Checks the lengths and runs `k`'s kernel for `w_ty`.
fn dispatch(
    k: &Kernels,
    w_ty: GgmlType,
    w_row: &[u8],
    x_q: &[u8],
    n: usize,
) -> Result<f32, KernelError> {
    let act_ty = vec_dot_type(w_ty).ok_or(KernelError::Unsupported { ty: w_ty })?;
    for ty in [w_ty, act_ty] {
        let block_size = ty.block_size();
        if !n.is_multiple_of(block_size) {
            return Err(KernelError::PartialBlock { ty, n, block_size });
        }
    }
    for (ty, bytes) in [(w_ty, w_row), (act_ty, x_q)] {
        let expected_bytes = n / ty.block_size() * ty.type_size();
        if bytes.len() != expected_bytes {
            return Err(KernelError::LengthMismatch {
                ty,
                n,
                expected_bytes,
                actual_bytes: bytes.len(),
            });
        }
    }
    Ok(match w_ty {
        GgmlType::Q4_0 => dot(k.q4_0, n, w_row, x_q),
        GgmlType::Q4_1 => dot(k.q4_1, n, w_row, x_q),
        GgmlType::Q5_0 => dot(k.q5_0, n, w_row, x_q),
        GgmlType::Q5_1 => dot(k.q5_1, n, w_row, x_q),
        GgmlType::Q8_0 => dot(k.q8_0, n, w_row, x_q),
        GgmlType::Q2K => dot(k.q2_k, n, w_row, x_q),
        GgmlType::Q3K => dot(k.q3_k, n, w_row, x_q),
        GgmlType::Q4K => dot(k.q4_k, n, w_row, x_q),
        GgmlType::Q5K => dot(k.q5_k, n, w_row, x_q),
        GgmlType::Q6K => dot(k.q6_k, n, w_row, x_q),
        _ => return Err(KernelError::Unsupported { ty: w_ty }),
    })
}

/// Views both byte slices as blocks (lengths already checked) and calls `f`.
#[inline]
fn dot<W: Pod, A: Pod>(f: fn(usize, &[W], &[A]) -> f32, n: usize, w: &[u8], x: &[u8]) -> f32 {
    match (
        bytemuck::try_cast_slice::<u8, W>(w),
        bytemuck::try_cast_slice::<u8, A>(x),
    ) {
        (Ok(w), Ok(x)) => f(n, w, x),
        _ => f(n, &unaligned_copy::<W>(w), &unaligned_copy::<A>(x)),
    }
}

/// Copies whole blocks out of a possibly misaligned byte slice.
#[cold]
fn unaligned_copy<B: Pod>(bytes: &[u8]) -> Vec<B> {
    bytes
        .chunks_exact(size_of::<B>())
        .map(bytemuck::pod_read_unaligned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_lengths_and_types() {
        let x = vec![0u8; 34];
        assert_eq!(
            vec_dot(GgmlType::F32, &[0; 128], &x, 32),
            Err(KernelError::Unsupported { ty: GgmlType::F32 })
        );
        assert!(matches!(
            vec_dot(GgmlType::Q8_0, &[0; 34], &x, 16),
            Err(KernelError::PartialBlock { block_size: 32, .. })
        ));
        assert!(matches!(
            vec_dot(GgmlType::Q8_0, &[0; 33], &x, 32),
            Err(KernelError::LengthMismatch {
                expected_bytes: 34,
                actual_bytes: 33,
                ..
            })
        ));
        // Q4_K weights need 256-element rows even though Q8_K activations are the same size.
        assert!(matches!(
            vec_dot(GgmlType::Q4K, &[0; 144], &[0; 292], 32),
            Err(KernelError::PartialBlock {
                block_size: 256,
                ..
            })
        ));
        let mut buf = Vec::new();
        assert!(matches!(
            quantize_activation(GgmlType::Q4K, &[0.0; 32], &mut buf),
            Err(KernelError::PartialBlock { .. })
        ));
        assert_eq!(
            quantize_activation(GgmlType::Q5_0, &[0.0; 64], &mut buf),
            Ok(GgmlType::Q8_0)
        );
        assert_eq!(buf.len(), 68);
    }

    #[test]
    fn misaligned_inputs_give_the_same_result() {
        let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..256).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut wq = Vec::new();
        let mut xq = Vec::new();
        quantize_activation(GgmlType::Q8_0, &w, &mut wq).unwrap();
        quantize_activation(GgmlType::Q8_0, &x, &mut xq).unwrap();
        let aligned = vec_dot(GgmlType::Q8_0, &wq, &xq, 256).unwrap();
        let mut shifted = vec![0u8; wq.len() + 1];
        shifted[1..].copy_from_slice(&wq);
        let misaligned = vec_dot(GgmlType::Q8_0, &shifted[1..], &xq, 256).unwrap();
        assert_eq!(aligned.to_bits(), misaligned.to_bits());
        let exact: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
        assert!(
            (aligned - exact).abs() < 0.05 * exact.abs().max(1.0),
            "{aligned} vs {exact}"
        );
    }
}
