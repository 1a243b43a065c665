//! The plain float formats: F32 (a copy), F16 (ggml's `ggml_fp32_to_fp16_row`) and BF16
//! (ggml's `ggml_fp32_to_bf16_row_ref`, i.e. `ggml_compute_fp32_to_bf16`).

use super::helpers::fp32_to_fp16;

/// ggml's `ggml_compute_fp32_to_bf16`: round to nearest even on the top 16 bits, NaN forced
/// quiet (bit 6 of the result set). Subnormals are kept, not flushed.
#[inline(always)]
pub(crate) fn fp32_to_bf16(s: f32) -> u16 {
    let i = s.to_bits();
    if (i & 0x7fff_ffff) > 0x7f80_0000 {
        return ((i >> 16) | 64) as u16;
    }
    (i.wrapping_add(0x7fff + ((i >> 16) & 1)) >> 16) as u16
}

/// Copies a row of `f32` as little-endian bytes.
pub(crate) fn quantize_row_f32(x: &[f32], out: &mut [u8], _imatrix: Option<&[f32]>) {
    for (o, v) in out.chunks_exact_mut(4).zip(x) {
        o.copy_from_slice(&v.to_le_bytes());
    }
}

/// Converts a row to IEEE half precision as ggml does.
pub(crate) fn quantize_row_f16(x: &[f32], out: &mut [u8], _imatrix: Option<&[f32]>) {
    for (o, &v) in out.chunks_exact_mut(2).zip(x) {
        o.copy_from_slice(&fp32_to_fp16(v).to_le_bytes());
    }
}

/// Converts a row to bfloat16 as ggml does.
pub(crate) fn quantize_row_bf16(x: &[f32], out: &mut [u8], _imatrix: Option<&[f32]>) {
    for (o, &v) in out.chunks_exact_mut(2).zip(x) {
        o.copy_from_slice(&fp32_to_bf16(v).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even_and_quiets_nan() {
        // Ties: 1 + 2^-8 sits halfway between two bf16 values and rounds to the even one.
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        // A signalling NaN becomes quiet; infinity stays infinity; subnormals survive.
        assert_eq!(fp32_to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(fp32_to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x0001_0000)), 0x0001);
        // half's conversion agrees on finite values.
        for bits in (0..u32::MAX).step_by(65_521) {
            let f = f32::from_bits(bits);
            if !f.is_nan() {
                assert_eq!(
                    fp32_to_bf16(f),
                    half::bf16::from_f32(f).to_bits(),
                    "{bits:#x}"
                );
            }
        }
    }
}
