//! Activation rounding that reproduces ggml's `vec_dot_type` for the paths that multiply
//! in f32 (prefill's dequantize-once rows).
//!
//! ggml multiplies a quantized weight row with activations that it first quantizes per
//! row: to Q8_0 (Q4_0/Q5_0/Q8_0 weights), Q8_1 (Q4_1/Q5_1), Q8_K (k-quants) or f16/bf16
//! (f16/bf16 weights). Quantizing with the same quantizers as the integer kernels
//! ([`crate::kernels::quantize_activation`]) and dequantizing back gives the same products
//! as those kernels up to summation order, so both paths round identically.

use crate::kernels;
use crate::model::ops::round_f16;
use crate::quant::{dequantize, GgmlType};

/// Rounds `x` (one or more rows whose length is a multiple of the weight's block size)
/// the way ggml quantizes activations for a dot product with weights of type `w`.
/// Types without a quantized activation (F32, integers) are left as they are.
pub fn round_for(w: GgmlType, x: &mut [f32]) {
    match w {
        GgmlType::F16 => round_f16(x),
        GgmlType::BF16 => x
            .iter_mut()
            .for_each(|v| *v = half::bf16::from_f32(*v).to_f32()),
        _ => {
            let mut q = Vec::new();
            // Errors mean "no quantized activation for this type" or a partial block; the
            // weight shapes checked at load rule the latter out, so leave `x` exact.
            if let Ok(act) = kernels::quantize_activation(w, x, &mut q) {
                if dequantize(act, &q, x).is_err() {
                    unreachable!("quantize_activation sized the buffer for {act}");
                }
            }
        }
    }
}
