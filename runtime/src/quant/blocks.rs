//! `#[repr(C)]` mirrors of ggml's quantized block structs (`ggml/src/ggml-common.h`).
//!
//! Each struct has exactly ggml's field order and size (checked at compile time), derives
//! [`bytemuck::Pod`], and so can be viewed in place over a GGUF tensor's bytes with
//! [`cast_blocks`] — a checked cast that reports a length or alignment problem instead of
//! reading out of bounds. Multi-byte fields are read in native byte order, as ggml does:
//! GGUF files and every platform pith targets (x86-64, aarch64) are little-endian.

use std::mem::{align_of, size_of};

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::QK_K;

/// Elements per block of the "legacy" formats Q4_0 … Q8_1 (`QK4_0` … `QK8_1` in ggml).
pub const QK: usize = 32;

/// Mirrors ggml's `block_q4_0`: 32 weights `(q - 8) * d`, `q` a 4-bit nibble.
///
/// `qs[j]` holds element `j` in its low nibble and element `j + 16` in its high nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: f16,
    /// Packed 4-bit quants.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// Mirrors ggml's `block_q4_1`: 32 weights `q * d + m`, `q` a 4-bit nibble (layout of
/// `qs` as in [`BlockQ4_0`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale.
    pub d: f16,
    /// Offset (the block minimum).
    pub m: f16,
    /// Packed 4-bit quants.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// Mirrors ggml's `block_q5_0`: 32 weights `(q - 16) * d`, `q` 5 bits: the low 4 bits in
/// `qs` (as in [`BlockQ4_0`]), bit 4 of element `j` in bit `j` of the little-endian `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale.
    pub d: f16,
    /// Fifth bits, a little-endian `u32`.
    pub qh: [u8; 4],
    /// Packed low 4 bits.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// Mirrors ggml's `block_q5_1`: 32 weights `q * d + m`, `q` 5 bits packed as in
/// [`BlockQ5_0`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale.
    pub d: f16,
    /// Offset (the block minimum).
    pub m: f16,
    /// Fifth bits, a little-endian `u32`.
    pub qh: [u8; 4],
    /// Packed low 4 bits.
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// Mirrors ggml's `block_q8_0`: 32 weights `q * d`, `q` a signed byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale.
    pub d: f16,
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// Mirrors ggml's `block_q8_1` (the activation format paired with Q4_1/Q5_1 dot products):
/// 32 weights `q * d`; `s = d * sum(qs)` is a cached sum for those kernels.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale.
    pub d: f16,
    /// `d * sum(qs)`.
    pub s: f16,
    /// Quants.
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// Mirrors ggml's `block_q2_K`: 256 weights in 16 groups of 16,
/// `d * (scales[g] & 0xF) * q - dmin * (scales[g] >> 4)`, `q` 2 bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Per-group 4-bit scale (low nibble) and 4-bit min (high nibble).
    pub scales: [u8; QK_K / 16],
    /// Packed 2-bit quants.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// Mirrors ggml's `block_q3_K`: 256 weights in 16 groups of 16, `d * (scale[g] - 32) * q`,
/// `q` 3 bits: 2 low bits in `qs`, the third (inverted: a clear bit subtracts 4) in `hmask`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High bits of the quants.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of the quants.
    pub qs: [u8; QK_K / 4],
    /// 16 packed 6-bit scales.
    pub scales: [u8; 12],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// Mirrors ggml's `block_q4_K`: 256 weights in 8 groups of 32,
/// `d * sc[g] * q - dmin * m[g]`, `q` 4 bits, `sc`/`m` 6 bits packed in `scales`
/// (ggml's `get_scale_min_k4`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
    /// 8 scales and 8 mins, 6 bits each.
    pub scales: [u8; 12],
    /// Packed 4-bit quants.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

/// Mirrors ggml's `block_q5_K`: as [`BlockQ4K`] with a fifth bit per weight in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
    /// 8 scales and 8 mins, 6 bits each.
    pub scales: [u8; 12],
    /// Fifth bits.
    pub qh: [u8; QK_K / 8],
    /// Packed low 4 bits.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

/// Mirrors ggml's `block_q6_K`: 256 weights in 16 groups of 16, `d * scales[g] * (q - 32)`,
/// `q` 6 bits: the low 4 in `ql`, the high 2 in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits of the quants.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits of the quants.
    pub qh: [u8; QK_K / 4],
    /// Signed 8-bit group scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// Mirrors ggml's `block_q8_K` (the activation format of the k-quant dot products): 256
/// weights `q * d` with an `f32` scale, plus per-16 sums used by those kernels.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Scale (an `f32`, unlike every other block).
    pub d: f32,
    /// Quants.
    pub qs: [i8; QK_K],
    /// Sums of each group of 16 quants.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8K>() == 292);

/// Why a byte slice cannot be viewed as a slice of blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CastError {
    /// The length is not a whole number of blocks.
    #[error("{len} bytes is not a whole number of {block_bytes}-byte blocks")]
    Length { len: usize, block_bytes: usize },
    /// The slice does not start on the block's alignment.
    #[error("data at address {addr:#x} is not aligned to {align} bytes")]
    Alignment { addr: usize, align: usize },
}

/// Views `bytes` as a slice of blocks `B` in place, checking the length and alignment.
///
/// Tensor data in a GGUF file is aligned to `general.alignment` (default 32) and the file
/// is mapped at a page boundary, so the cast succeeds for every well-formed tensor; callers
/// that can meet unaligned data (a byte buffer of their own) can fall back to
/// [`bytemuck::pod_read_unaligned`], as [`super::dequantize`] does.
pub fn cast_blocks<B: Pod>(bytes: &[u8]) -> Result<&[B], CastError> {
    let block_bytes = size_of::<B>();
    if block_bytes == 0 || !bytes.len().is_multiple_of(block_bytes) {
        return Err(CastError::Length {
            len: bytes.len(),
            block_bytes,
        });
    }
    bytemuck::try_cast_slice(bytes).map_err(|_| CastError::Alignment {
        addr: bytes.as_ptr() as usize,
        align: align_of::<B>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_checks_length_and_alignment() {
        // A u32-aligned buffer so the offsets below are the only source of misalignment.
        let words = [0u32; 2 * 292 / 4 + 1];
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        assert_eq!(
            cast_blocks::<BlockQ8K>(&bytes[..584]).map(<[_]>::len),
            Ok(2)
        );
        assert_eq!(
            cast_blocks::<BlockQ8K>(&bytes[..583]).unwrap_err(),
            CastError::Length {
                len: 583,
                block_bytes: 292
            }
        );
        assert!(matches!(
            cast_blocks::<BlockQ8K>(&bytes[2..586]),
            Err(CastError::Alignment { align: 4, .. })
        ));
        assert!(matches!(
            cast_blocks::<BlockQ4K>(&bytes[1..145]),
            Err(CastError::Alignment { align: 2, .. })
        ));
        assert_eq!(
            cast_blocks::<BlockQ4K>(&bytes[2..146]).map(<[_]>::len),
            Ok(1)
        );
    }
}
