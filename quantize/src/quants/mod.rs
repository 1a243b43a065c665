//! Quantizers for every GGUF block format pith writes, bit-exact with ggml's.
//!
//! [`quantize`] does what ggml's `ggml_quantize_chunk` does (and so what `llama-quantize`
//! writes for a tensor): without an importance matrix it runs ggml's deterministic
//! reference quantizers (`quantize_row_*_ref`); with one, the weighted `quantize_row_*_impl`
//! searches, exactly as ggml branches per type (Q8_0 and the float types ignore it).
//! Every routine is a line-by-line port keeping ggml's float operations and their order, so
//! the bytes are identical — checked against the Python `gguf` package and `llama-quantize`
//! in `quantize/tests/quants_*.rs` and `tests/golden/quant/`.
//!
//! Rows are independent and are quantized in parallel on rayon's global pool. The k-quants'
//! candidate-scale searches evaluate several candidates side by side (SIMD lanes, an AVX2
//! build chosen at run time on x86-64), each lane in ggml's order, so speed does not cost
//! exactness (`search.rs`). On Gemma 3 270M this quantizes the whole model about twice as
//! fast as `llama-quantize` with the same threads (`quantize/tests/quants_real.rs`).

// The ports index arrays exactly as ggml's C does, so that they can be checked line by line
// against ggml-quants.c; iterator rewrites would obscure that.
#![allow(clippy::needless_range_loop)]

mod float;
mod helpers;
mod kquants_hi;
mod kquants_lo;
mod legacy;
mod search;

use std::mem::offset_of;

use bytemuck::Pod;
use pith_runtime::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0,
};
use pith_runtime::quant::GgmlType;
use rayon::prelude::*;

/// Why a tensor cannot be quantized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantizeError {
    /// pith has no quantizer for this type (see [`supports`]).
    #[error("quantizing to {ty} is not supported")]
    UnsupportedType { ty: GgmlType },
    /// The row length is zero or not a multiple of the type's block size.
    #[error("a row of {n_per_row} elements is not a whole number of {ty} blocks of {block_size}")]
    RowLength {
        ty: GgmlType,
        n_per_row: usize,
        block_size: usize,
    },
    /// The source is not a whole number of rows.
    #[error("{len} source values are not a whole number of rows of {n_per_row}")]
    SrcLength { len: usize, n_per_row: usize },
    /// The destination buffer of [`quantize_into`] has the wrong size.
    #[error("destination holds {len} bytes, the quantized data needs {expected}")]
    DstLength { len: usize, expected: usize },
    /// The importance matrix does not have one value per column.
    #[error("importance matrix has {len} values, the rows have {n_per_row} columns")]
    ImatrixLength { len: usize, n_per_row: usize },
    /// The importance matrix holds a NaN or infinity (`llama-quantize` refuses it too).
    #[error("importance matrix value {index} is not finite ({value})")]
    NonFiniteImatrix { index: usize, value: f32 },
    /// The source holds a NaN or infinity. `llama-quantize` refuses such a tensor when it
    /// loads the model (its loader validates every row); ggml's quantizers themselves would
    /// turn it into garbage or an infinite scale.
    #[error("source row {row} holds a non-finite value at column {column} ({value})")]
    NonFiniteInput {
        row: usize,
        column: usize,
        value: f32,
    },
    /// The result holds an infinite scale or value, which ggml's `ggml_validate_row_data`
    /// rejects ("quantized data validation failed" in `llama-quantize`): values too large
    /// for the type (beyond 65504 for F16, or for the fp16 scales, about 65504 times the
    /// largest quant level).
    #[error("{ty} data of row {row} is not finite at block {block} (values beyond the f16 range)")]
    NonFinite {
        ty: GgmlType,
        row: usize,
        block: usize,
    },
}

/// The types [`quantize`] can produce: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
/// Q3_K, Q4_K, Q5_K and Q6_K.
pub fn supports(ty: GgmlType) -> bool {
    row_fn(ty).is_some()
}

/// Whether an importance matrix changes `ty`'s result (as in ggml: every supported block
/// type except Q8_0; never the float types).
pub fn uses_imatrix(ty: GgmlType) -> bool {
    supports(ty) && ty.is_quantized() && ty != GgmlType::Q8_0
}

/// Bytes of one quantized row of `n_per_row` elements (`ggml_row_size`).
pub fn row_size(ty: GgmlType, n_per_row: usize) -> Result<usize, QuantizeError> {
    if !supports(ty) {
        return Err(QuantizeError::UnsupportedType { ty });
    }
    let block_size = ty.block_size();
    if n_per_row == 0 || !n_per_row.is_multiple_of(block_size) {
        return Err(QuantizeError::RowLength {
            ty,
            n_per_row,
            block_size,
        });
    }
    Ok(n_per_row / block_size * ty.type_size())
}

/// Quantizes `src` (rows of `n_per_row` f32) to `ty`, as ggml_quantize_chunk does;
/// `imatrix` (len n_per_row) weights the error as llama.cpp's importance matrix does. Rows
/// are quantized in parallel (rayon).
///
/// The result is `src.len() / n_per_row` rows of [`row_size`] bytes, in ggml's block layout
/// (little-endian). Fails on an unsupported type, mismatched lengths, a non-finite
/// importance matrix, or a result ggml's `ggml_validate_row_data` would reject.
pub fn quantize(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
) -> Result<Vec<u8>, QuantizeError> {
    let rs = row_size(ty, n_per_row)?;
    check_src(src, n_per_row)?;
    let mut dst = vec![0u8; src.len() / n_per_row * rs];
    quantize_into(ty, src, n_per_row, imatrix, &mut dst)?;
    Ok(dst)
}

/// As [`quantize`], writing into `dst`, which must hold exactly the quantized rows (for
/// callers that stream a tensor through a reusable buffer, slab by slab).
///
/// Runs on the current rayon pool: call it inside `ThreadPool::install` to bound the
/// threads (the global pool has one per CPU).
pub fn quantize_into(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<(), QuantizeError> {
    let rs = row_size(ty, n_per_row)?;
    check_src(src, n_per_row)?;
    let n_rows = src.len() / n_per_row;
    let expected = n_rows * rs;
    if dst.len() != expected {
        return Err(QuantizeError::DstLength {
            len: dst.len(),
            expected,
        });
    }
    if let Some(im) = imatrix {
        if im.len() != n_per_row {
            return Err(QuantizeError::ImatrixLength {
                len: im.len(),
                n_per_row,
            });
        }
        if let Some((index, &value)) = im.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(QuantizeError::NonFiniteImatrix { index, value });
        }
    }
    if n_rows == 0 {
        return Ok(());
    }
    let f = row_fn(ty).ok_or(QuantizeError::UnsupportedType { ty })?;
    let _span = tracing::debug_span!("quantize", %ty, n_rows, n_per_row).entered();
    // As llama-quantize: chunks of at least 32 * 512 elements per task.
    let rows_per_chunk = (MIN_CHUNK_ELEMENTS.div_ceil(n_per_row)).max(1);
    let first_bad =
        dst.par_chunks_mut(rows_per_chunk * rs)
            .zip(src.par_chunks(rows_per_chunk * n_per_row))
            .enumerate()
            .map(|(chunk, (out, x))| {
                for (r, (o, xr)) in out
                    .chunks_exact_mut(rs)
                    .zip(x.chunks_exact(n_per_row))
                    .enumerate()
                {
                    let row = chunk * rows_per_chunk + r;
                    if let Some(column) = xr.iter().position(|v| !v.is_finite()) {
                        return Some(QuantizeError::NonFiniteInput {
                            row,
                            column,
                            value: xr[column],
                        });
                    }
                    f(xr, o, imatrix);
                    if let Some(block) = first_invalid_block(ty, o) {
                        return Some(QuantizeError::NonFinite { ty, row, block });
                    }
                }
                None
            })
            .filter_map(|bad| bad)
            .min_by_key(|e| match e {
                QuantizeError::NonFiniteInput { row, .. }
                | QuantizeError::NonFinite { row, .. } => *row,
                _ => 0,
            });
    match first_bad {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Elements per parallel task (llama-quantize's `min_chunk_size`).
const MIN_CHUNK_ELEMENTS: usize = 32 * 512;

fn check_src(src: &[f32], n_per_row: usize) -> Result<(), QuantizeError> {
    if !src.len().is_multiple_of(n_per_row) {
        return Err(QuantizeError::SrcLength {
            len: src.len(),
            n_per_row,
        });
    }
    Ok(())
}

/// Quantizes one row `x` into `out` (exactly one row of blocks).
type RowFn = fn(&[f32], &mut [u8], Option<&[f32]>);

fn row_fn(ty: GgmlType) -> Option<RowFn> {
    Some(match ty {
        GgmlType::F32 => float::quantize_row_f32,
        GgmlType::F16 => float::quantize_row_f16,
        GgmlType::BF16 => float::quantize_row_bf16,
        GgmlType::Q4_0 => legacy::quantize_row_q4_0,
        GgmlType::Q4_1 => legacy::quantize_row_q4_1,
        GgmlType::Q5_0 => legacy::quantize_row_q5_0,
        GgmlType::Q5_1 => legacy::quantize_row_q5_1,
        GgmlType::Q8_0 => legacy::quantize_row_q8_0,
        GgmlType::Q2K => kquants_lo::quantize_row_q2_k,
        GgmlType::Q3K => kquants_lo::quantize_row_q3_k,
        GgmlType::Q4K => kquants_hi::quantize_row_q4_k,
        GgmlType::Q5K => kquants_hi::quantize_row_q5_k,
        GgmlType::Q6K => kquants_hi::quantize_row_q6_k,
        _ => return None,
    })
}

/// Writes block `i` of a row.
#[inline(always)]
fn put_block<B: Pod>(out: &mut [u8], i: usize, block: &B) {
    let bytes = bytemuck::bytes_of(block);
    out[i * bytes.len()..(i + 1) * bytes.len()].copy_from_slice(bytes);
}

/// ggml's `ggml_validate_row_data` on one quantized row: the index of the first block (or
/// element, for the float types) holding an infinite or NaN value or scale.
fn first_invalid_block(ty: GgmlType, row: &[u8]) -> Option<usize> {
    let f16_bad = |b: &[u8], off: usize| {
        let h = u16::from_le_bytes([b[off], b[off + 1]]);
        h & 0x7c00 == 0x7c00
    };
    let scan = |size: usize, offsets: &[usize]| {
        row.chunks_exact(size)
            .position(|b| offsets.iter().any(|&off| f16_bad(b, off)))
    };
    match ty {
        GgmlType::F32 => row
            .chunks_exact(4)
            .position(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()),
        GgmlType::F16 => scan(2, &[0]),
        GgmlType::BF16 => row
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7fff >= 0x7f80),
        GgmlType::Q4_0 => scan(size_of::<BlockQ4_0>(), &[offset_of!(BlockQ4_0, d)]),
        GgmlType::Q4_1 => scan(
            size_of::<BlockQ4_1>(),
            &[offset_of!(BlockQ4_1, d), offset_of!(BlockQ4_1, m)],
        ),
        GgmlType::Q5_0 => scan(size_of::<BlockQ5_0>(), &[offset_of!(BlockQ5_0, d)]),
        GgmlType::Q5_1 => scan(
            size_of::<BlockQ5_1>(),
            &[offset_of!(BlockQ5_1, d), offset_of!(BlockQ5_1, m)],
        ),
        GgmlType::Q8_0 => scan(size_of::<BlockQ8_0>(), &[offset_of!(BlockQ8_0, d)]),
        GgmlType::Q2K => scan(
            size_of::<BlockQ2K>(),
            &[offset_of!(BlockQ2K, d), offset_of!(BlockQ2K, dmin)],
        ),
        GgmlType::Q3K => scan(size_of::<BlockQ3K>(), &[offset_of!(BlockQ3K, d)]),
        GgmlType::Q4K => scan(
            size_of::<BlockQ4K>(),
            &[offset_of!(BlockQ4K, d), offset_of!(BlockQ4K, dmin)],
        ),
        GgmlType::Q5K => scan(
            size_of::<BlockQ5K>(),
            &[offset_of!(BlockQ5K, d), offset_of!(BlockQ5K, dmin)],
        ),
        GgmlType::Q6K => scan(size_of::<BlockQ6K>(), &[offset_of!(BlockQ6K, d)]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes_and_types() {
        let x = vec![0.5f32; 512];
        assert_eq!(
            quantize(GgmlType::Q8K, &x, 256, None),
            Err(QuantizeError::UnsupportedType { ty: GgmlType::Q8K })
        );
        assert!(matches!(
            quantize(GgmlType::Q4K, &x, 128, None),
            Err(QuantizeError::RowLength {
                block_size: 256,
                ..
            })
        ));
        assert!(matches!(
            quantize(GgmlType::Q4_0, &x, 0, None),
            Err(QuantizeError::RowLength { n_per_row: 0, .. })
        ));
        assert_eq!(
            quantize(GgmlType::Q4_0, &x, 96, None),
            Err(QuantizeError::SrcLength {
                len: 512,
                n_per_row: 96
            })
        );
        assert_eq!(
            quantize(GgmlType::Q4_0, &x, 256, Some(&[1.0; 255])),
            Err(QuantizeError::ImatrixLength {
                len: 255,
                n_per_row: 256
            })
        );
        let mut im = vec![1.0f32; 256];
        im[7] = f32::NAN;
        assert!(matches!(
            quantize(GgmlType::Q4K, &x, 256, Some(&im)),
            Err(QuantizeError::NonFiniteImatrix { index: 7, .. })
        ));
        let mut dst = vec![0u8; 10];
        assert!(matches!(
            quantize_into(GgmlType::Q8_0, &x, 256, None, &mut dst),
            Err(QuantizeError::DstLength { expected: 544, .. })
        ));
    }

    #[test]
    fn reports_the_first_row_ggml_would_reject() {
        // Q8_0's scale is amax / 127: 1e7 / 127 overflows fp16, as does 70000 for F16.
        let mut x = vec![0.25f32; 4 * 64];
        x[2 * 64 + 40] = 1e7;
        x[3 * 64] = 1e9;
        assert_eq!(
            quantize(GgmlType::Q8_0, &x, 64, None),
            Err(QuantizeError::NonFinite {
                ty: GgmlType::Q8_0,
                row: 2,
                block: 1
            })
        );
        let mut y = vec![1.0f32; 64];
        y[5] = 70000.0;
        assert_eq!(
            quantize(GgmlType::F16, &y, 32, None),
            Err(QuantizeError::NonFinite {
                ty: GgmlType::F16,
                row: 0,
                block: 5
            })
        );
        // Non-finite input is refused for every type, as llama-quantize's loader does.
        for ty in [GgmlType::F32, GgmlType::Q4_0, GgmlType::Q4K] {
            let mut z = vec![0.5f32; 3 * 256];
            z[256 + 9] = f32::NAN;
            z[2 * 256] = f32::INFINITY;
            assert!(matches!(
                quantize(ty, &z, 256, None),
                Err(QuantizeError::NonFiniteInput {
                    row: 1,
                    column: 9,
                    ..
                })
            ));
        }
        assert_eq!(quantize(GgmlType::Q4K, &[], 256, None), Ok(Vec::new()));
    }

    #[test]
    fn supported_types_and_sizes() {
        for ty in GgmlType::ALL {
            let expected = !matches!(
                ty,
                GgmlType::Q8_1
                    | GgmlType::Q8K
                    | GgmlType::I8
                    | GgmlType::I16
                    | GgmlType::I32
                    | GgmlType::I64
                    | GgmlType::F64
            );
            assert_eq!(supports(ty), expected, "{ty}");
            if expected {
                let n = 512;
                let q = quantize(ty, &vec![0.1f32; 2 * n], n, None).unwrap();
                assert_eq!(q.len() as u64, 2 * ty.bytes_for(n as u64).unwrap(), "{ty}");
            }
        }
        assert!(uses_imatrix(GgmlType::Q4_0) && uses_imatrix(GgmlType::Q6K));
        assert!(!uses_imatrix(GgmlType::Q8_0) && !uses_imatrix(GgmlType::BF16));
    }
}
