//! Quantized dot products, ggml style: the activation row is quantized once to the
//! weight type's [`vec_dot_type`] (Q8_0, Q8_1 or Q8_K, see [`quantize_activation`]), then
//! each weight row is multiplied block by block with integer arithmetic ([`vec_dot`]),
//! with no dequantization of the weights.
//!
//! Kernels are chosen once per process into a [`OnceLock`] table of function pointers
//! (STYLE.md §5): the [`scalar`] level (ports of ggml's generic C, the oracle for the
//! others) everywhere, and on x86-64 CPUs reporting AVX2 and FMA at run time the [`avx2`]
//! kernels where they exist (Q4_0, Q5_0, Q8_0, Q4_K and Q6_K; every other type stays scalar).
//! `PITH_FORCE_KERNELS=scalar` pins the scalar level.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
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
}

/// The instruction-set level of the selected kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelLevel {
    /// Portable Rust ([`scalar`]).
    Scalar,
    /// x86-64 AVX2 + FMA ([`avx2`]) where written, scalar for the other types.
    Avx2,
}

/// One dot-product function per weight type, filled for one [`KernelLevel`].
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

/// The environment variable that pins a kernel level: `scalar` (default: unset, the best
/// level the CPU supports).
pub const FORCE_ENV: &str = "PITH_FORCE_KERNELS";

fn kernels() -> &'static Kernels {
    static TABLE: OnceLock<Kernels> = OnceLock::new();
    TABLE.get_or_init(|| {
        let forced = std::env::var(FORCE_ENV).ok();
        if forced.as_deref().map(str::trim) == Some("scalar") {
            tracing::debug!("{FORCE_ENV}=scalar: scalar kernels");
            return SCALAR;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            tracing::debug!("AVX2 + FMA kernels");
            return Kernels {
                level: KernelLevel::Avx2,
                q4_0: avx2::vec_dot_q4_0_q8_0,
                q5_0: avx2::vec_dot_q5_0_q8_0,
                q8_0: avx2::vec_dot_q8_0_q8_0,
                q4_k: avx2::vec_dot_q4_k_q8_k,
                q6_k: avx2::vec_dot_q6_k_q8_k,
                ..SCALAR
            };
        }
        tracing::debug!("scalar kernels");
        SCALAR
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
        if n % block_size != 0 {
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
