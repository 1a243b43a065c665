//! Scalar reference dequantization: any supported [`GgmlType`]'s bytes to `f32`.
//!
//! This is the oracle the SIMD kernels are tested against and the path the first decoder
//! uses. Results are bit-identical to ggml's `dequantize_row_*` (and to gguf-py's numpy
//! ports), checked by `runtime/tests/dequant_vs_gguf_py.rs`.

use std::mem::size_of;

use bytemuck::Pod;
use half::f16;
use half::slice::HalfFloatSliceExt;

use super::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, QK,
};
use super::{GgmlType, QK_K};

/// Why a dequantization request was refused. Nothing is written to `out` on error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    /// The byte length does not match the requested element count.
    #[error(
        "{ty} data for the requested elements must be {expected_bytes} bytes, got {actual_bytes}"
    )]
    LengthMismatch {
        ty: GgmlType,
        expected_bytes: usize,
        actual_bytes: usize,
    },
    /// The element count is not a multiple of the type's block size.
    #[error("{n_elements} elements is not a whole number of {ty} blocks of {block_size}")]
    PartialBlock {
        ty: GgmlType,
        n_elements: usize,
        block_size: usize,
    },
    /// The byte length is not a multiple of the type's block size in bytes.
    #[error("{actual_bytes} bytes is not a whole number of {ty} blocks of {type_size} bytes")]
    PartialBlockBytes {
        ty: GgmlType,
        actual_bytes: usize,
        type_size: usize,
    },
    /// The type has no dequantizer (reserved for types added to [`GgmlType`] before their
    /// dequantizer: every type listed today is supported).
    #[error("dequantization of {ty} is not supported")]
    Unsupported { ty: GgmlType },
}

/// Dequantizes `data`, which must hold exactly `out.len()` elements of type `ty`, into
/// `out`.
///
/// `out.len()` must be a multiple of `ty.block_size()` and `data.len()` must be
/// `out.len() / ty.block_size() * ty.type_size()`. Integer types (`I8` … `I64`) and `F64`
/// are converted with `as f32` (round to nearest); `F16`/`BF16` NaNs stay NaN. `data` may
/// have any alignment: misaligned blocks are copied to the stack one at a time.
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let block_size = ty.block_size();
    if !out.len().is_multiple_of(block_size) {
        return Err(QuantError::PartialBlock {
            ty,
            n_elements: out.len(),
            block_size,
        });
    }
    // Cannot saturate: `out` holds at most isize::MAX / 4 elements and no type takes more
    // than 8 bytes per element.
    let expected_bytes = (out.len() / block_size).saturating_mul(ty.type_size());
    if data.len() != expected_bytes {
        return Err(QuantError::LengthMismatch {
            ty,
            expected_bytes,
            actual_bytes: data.len(),
        });
    }
    match ty {
        GgmlType::F32 => convert::<4>(data, out, f32::from_le_bytes),
        GgmlType::F16 => f16_to_f32(data, out),
        // ggml_compute_bf16_to_fp32: the bits shifted into the top half, NaNs unchanged.
        GgmlType::BF16 => convert::<2>(data, out, |b| {
            f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16)
        }),
        GgmlType::F64 => convert::<8>(data, out, |b| f64::from_le_bytes(b) as f32),
        GgmlType::I8 => convert::<1>(data, out, |b| f32::from(b[0] as i8)),
        GgmlType::I16 => convert::<2>(data, out, |b| f32::from(i16::from_le_bytes(b))),
        GgmlType::I32 => convert::<4>(data, out, |b| i32::from_le_bytes(b) as f32),
        GgmlType::I64 => convert::<8>(data, out, |b| i64::from_le_bytes(b) as f32),
        GgmlType::Q4_0 => blocks::<BlockQ4_0, QK>(data, out, BlockQ4_0::dequantize),
        GgmlType::Q4_1 => blocks::<BlockQ4_1, QK>(data, out, BlockQ4_1::dequantize),
        GgmlType::Q5_0 => blocks::<BlockQ5_0, QK>(data, out, BlockQ5_0::dequantize),
        GgmlType::Q5_1 => blocks::<BlockQ5_1, QK>(data, out, BlockQ5_1::dequantize),
        GgmlType::Q8_0 => blocks::<BlockQ8_0, QK>(data, out, BlockQ8_0::dequantize),
        GgmlType::Q8_1 => blocks::<BlockQ8_1, QK>(data, out, BlockQ8_1::dequantize),
        GgmlType::Q2K => blocks::<BlockQ2K, QK_K>(data, out, BlockQ2K::dequantize),
        GgmlType::Q3K => blocks::<BlockQ3K, QK_K>(data, out, BlockQ3K::dequantize),
        GgmlType::Q4K => blocks::<BlockQ4K, QK_K>(data, out, BlockQ4K::dequantize),
        GgmlType::Q5K => blocks::<BlockQ5K, QK_K>(data, out, BlockQ5K::dequantize),
        GgmlType::Q6K => blocks::<BlockQ6K, QK_K>(data, out, BlockQ6K::dequantize),
        GgmlType::Q8K => blocks::<BlockQ8K, QK_K>(data, out, BlockQ8K::dequantize),
    }
    Ok(())
}

/// Dequantizes all of `data` into a new vector; the element count is
/// `data.len() / ty.type_size() * ty.block_size()`, and `data.len()` must be a whole
/// number of blocks.
pub fn dequantize_to_vec(ty: GgmlType, data: &[u8]) -> Result<Vec<f32>, QuantError> {
    let type_size = ty.type_size();
    if !data.len().is_multiple_of(type_size) {
        return Err(QuantError::PartialBlockBytes {
            ty,
            actual_bytes: data.len(),
            type_size,
        });
    }
    let mut out = vec![0f32; data.len() / type_size * ty.block_size()];
    dequantize(ty, data, &mut out)?;
    Ok(out)
}

/// Runs `f` over each block of `data` and its `N` outputs. Lengths were checked by the
/// caller. Viewed in place when aligned; otherwise each block is copied to the stack.
#[inline]
fn blocks<B: Pod, const N: usize>(data: &[u8], out: &mut [f32], f: impl Fn(&B, &mut [f32; N])) {
    let outs = out.chunks_exact_mut(N);
    match bytemuck::try_cast_slice::<u8, B>(data) {
        Ok(blocks) => {
            for (b, y) in blocks.iter().zip(outs) {
                if let Ok(y) = <&mut [f32; N]>::try_from(y) {
                    f(b, y);
                }
            }
        }
        Err(_) => {
            for (raw, y) in data.chunks_exact(size_of::<B>()).zip(outs) {
                let b: B = bytemuck::pod_read_unaligned(raw);
                if let Ok(y) = <&mut [f32; N]>::try_from(y) {
                    f(&b, y);
                }
            }
        }
    }
}

/// Converts each `W`-byte little-endian element with `f`.
#[inline]
fn convert<const W: usize>(data: &[u8], out: &mut [f32], f: impl Fn([u8; W]) -> f32) {
    for (raw, y) in data.chunks_exact(W).zip(out.iter_mut()) {
        if let Ok(b) = <[u8; W]>::try_from(raw) {
            *y = f(b);
        }
    }
}

/// IEEE half to single: exact for every non-NaN value (half uses F16C when present).
fn f16_to_f32(data: &[u8], out: &mut [f32]) {
    match bytemuck::try_cast_slice::<u8, f16>(data) {
        Ok(src) => src.convert_to_f32_slice(out),
        Err(_) => convert::<2>(data, out, |b| f16::from_le_bytes(b).to_f32()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_errors_name_the_sizes() {
        let mut out = [0f32; 64];
        let err = dequantize(GgmlType::Q4_0, &[0u8; 35], &mut out).unwrap_err();
        assert_eq!(
            err,
            QuantError::LengthMismatch {
                ty: GgmlType::Q4_0,
                expected_bytes: 36,
                actual_bytes: 35
            }
        );
        assert!(
            err.to_string().contains("36") && err.to_string().contains("35"),
            "{err}"
        );
        let err = dequantize(GgmlType::Q4K, &[0u8; 144], &mut out).unwrap_err();
        assert_eq!(
            err,
            QuantError::PartialBlock {
                ty: GgmlType::Q4K,
                n_elements: 64,
                block_size: 256
            }
        );
        let err = dequantize_to_vec(GgmlType::Q6K, &[0u8; 211]).unwrap_err();
        assert_eq!(
            err,
            QuantError::PartialBlockBytes {
                ty: GgmlType::Q6K,
                actual_bytes: 211,
                type_size: 210
            }
        );
        assert_eq!(
            dequantize_to_vec(GgmlType::Q6K, &[]).unwrap(),
            Vec::<f32>::new()
        );
    }

    /// Misaligned input takes the copying path; it must give the same values as the
    /// in-place path, for every type.
    #[test]
    fn misaligned_input_matches_aligned() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for ty in GgmlType::ALL {
            let n_blocks = 3;
            // u64-backed so offset 0 is aligned for every block type and offset 1 is not.
            let mut words = vec![0u64; (n_blocks * ty.type_size()).div_ceil(8) + 1];
            rng.fill(&mut words[..]);
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
            let len = n_blocks * ty.type_size();
            let a = dequantize_to_vec(ty, &bytes[1..=len]).unwrap();
            bytes.copy_within(1..=len, 0);
            let b = dequantize_to_vec(ty, &bytes[..len]).unwrap();
            let same = a
                .iter()
                .zip(&b)
                .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
            assert!(same, "{ty}: misaligned and aligned results differ");
        }
    }
}
