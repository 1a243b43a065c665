//! Activation quantizers: ports of ggml's `quantize_row_q8_0_ref`, `quantize_row_q8_1_ref`
//! and `quantize_row_q8_K_ref` (`ggml/src/ggml-quants.c`).
//!
//! A matrix-vector product quantizes the activation row once to the weight type's
//! `vec_dot_type` ([`vec_dot_type`]) and then runs integer dot products per block against
//! every weight row ([`super::vec_dot`]).

use half::f16;

use super::KernelError;
use crate::quant::blocks::{BlockQ8K, BlockQ8_0, BlockQ8_1, QK};
use crate::quant::{GgmlType, QK_K};

/// ggml's `nearest_int`: round to nearest, ties to even, via the 1.5·2²³ trick. Exact for
/// `|fval| <= 4194303`; the callers here only pass values of magnitude ≤ 127.
#[inline]
fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// Quantizes `x` to Q8_0 blocks (ggml's `quantize_row_q8_0_ref`): per 32 values,
/// `d = amax / 127` (stored as f16), `q = round_half_away(x / d)`.
///
/// Only `min(x.len() / 32, out.len())` blocks are written; callers size `out` as
/// `x.len() / 32` blocks.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, yb) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f16::from_f32(d);
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            // `roundf` then a conversion to int8; |v * id| <= 127 (up to rounding).
            *q = (v * id).round() as i8;
        }
    }
}

/// Quantizes `x` to Q8_1 blocks (ggml's `quantize_row_q8_1_ref`): as
/// [`quantize_row_q8_0`], plus `s = f16(d · Σq)`.
///
/// Only `min(x.len() / 32, out.len())` blocks are written.
pub fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (xb, yb) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        yb.d = f16::from_f32(d);
        let mut sum = 0i32;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = (v * id).round() as i8;
            sum += i32::from(*q);
        }
        yb.s = f16::from_f32(sum as f32 * d);
    }
}

/// Quantizes `x` to Q8_K blocks (ggml's `quantize_row_q8_K_ref`): per 256 values, with
/// `max` the value of largest magnitude (first one on ties), `iscale = -127 / max`,
/// `q = min(127, nearest_int(iscale · x))`, `d = 1 / iscale` (an f32), and `bsums` the
/// sums of each 16 quants. An all-zero block gets `d = 0` and zero quants.
///
/// Only `min(x.len() / 256, out.len())` blocks are written.
pub fn quantize_row_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, yb) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let mut max = 0f32;
        let mut amax = 0f32;
        for &v in xb {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax == 0.0 {
            // ggml leaves bsums unset here; zero quants sum to zero.
            *yb = BlockQ8K {
                d: 0.0,
                qs: [0; QK_K],
                bsums: [0; QK_K / 16],
            };
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in yb.qs.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, qs) in yb.bsums.iter_mut().zip(yb.qs.chunks_exact(16)) {
            *s = qs.iter().map(|&q| i16::from(q)).sum();
        }
        yb.d = 1.0 / iscale;
    }
}

/// The activation type ggml pairs with weights of type `w_ty` in dot products
/// (`type_traits_cpu[w_ty].vec_dot_type`), or `None` when pith has no quantized dot
/// product for `w_ty`: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for Q2_K … Q6_K.
pub fn vec_dot_type(w_ty: GgmlType) -> Option<GgmlType> {
    Some(match w_ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => GgmlType::Q8_0,
        GgmlType::Q4_1 | GgmlType::Q5_1 => GgmlType::Q8_1,
        GgmlType::Q2K | GgmlType::Q3K | GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => {
            GgmlType::Q8K
        }
        _ => None?,
    })
}

/// Quantizes the activation row `x` to `w_ty`'s [`vec_dot_type`] into `out`, which is
/// resized to `vec_dot_type.bytes_for(x.len())` bytes (its allocation is reused across
/// calls); returns the activation type.
///
/// Errors: [`KernelError::Unsupported`] when `w_ty` has no quantized dot product,
/// [`KernelError::PartialBlock`] when `x.len()` is not a multiple of `w_ty`'s block size.
pub fn quantize_activation(
    w_ty: GgmlType,
    x: &[f32],
    out: &mut Vec<u8>,
) -> Result<GgmlType, KernelError> {
    let act_ty = vec_dot_type(w_ty).ok_or(KernelError::Unsupported { ty: w_ty })?;
    let block_size = w_ty.block_size().max(act_ty.block_size());
    if !x.len().is_multiple_of(block_size) {
        return Err(KernelError::PartialBlock {
            ty: w_ty,
            n: x.len(),
            block_size,
        });
    }
    out.clear();
    out.resize((x.len() / act_ty.block_size()) * act_ty.type_size(), 0);
    match act_ty {
        GgmlType::Q8_0 => quantize_into(x, out, quantize_row_q8_0),
        GgmlType::Q8_1 => quantize_into(x, out, quantize_row_q8_1),
        _ => quantize_into(x, out, quantize_row_q8_k),
    }
    Ok(act_ty)
}

/// Runs `f` on `out` viewed as blocks; when `out` is not aligned for `B` (a `Vec<u8>` has
/// no alignment guarantee), quantizes into a temporary and copies the bytes.
fn quantize_into<B: bytemuck::Pod>(x: &[f32], out: &mut [u8], f: fn(&[f32], &mut [B])) {
    match bytemuck::try_cast_slice_mut::<u8, B>(out) {
        Ok(blocks) => f(x, blocks),
        Err(_) => {
            let mut tmp = vec![B::zeroed(); out.len() / std::mem::size_of::<B>()];
            f(x, &mut tmp);
            out.copy_from_slice(bytemuck::cast_slice(&tmp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        for (v, want) in [
            (0.5, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (126.6, 127),
        ] {
            assert_eq!(nearest_int(v), want, "{v}");
        }
    }

    #[test]
    fn q8_0_rounds_half_away_from_zero() {
        // amax 127 → d = 1, id = 1: values land exactly on .5.
        let mut x = [0f32; QK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -2.5;
        let mut b = [BlockQ8_0 {
            d: f16::ZERO,
            qs: [0; QK],
        }];
        quantize_row_q8_0(&x, &mut b);
        assert_eq!(b[0].d, f16::ONE);
        assert_eq!(&b[0].qs[..3], &[127, 3, -3]);
    }

    #[test]
    fn q8_k_zero_block_and_sign_of_max() {
        let mut out = [BlockQ8K {
            d: 1.0,
            qs: [5; QK_K],
            bsums: [7; QK_K / 16],
        }];
        quantize_row_q8_k(&[0.0; QK_K], &mut out);
        assert_eq!(out[0].d, 0.0);
        assert!(out[0].qs.iter().all(|&q| q == 0) && out[0].bsums.iter().all(|&s| s == 0));
        // The largest magnitude is negative: iscale > 0, so d > 0 and that value maps to -127.
        let mut x = [0.25f32; QK_K];
        x[3] = -2.0;
        quantize_row_q8_k(&x, &mut out);
        assert_eq!(out[0].qs[3], -127);
        assert!(out[0].d > 0.0);
        assert_eq!(out[0].bsums[0], -127 + 15 * 16);
    }
}
