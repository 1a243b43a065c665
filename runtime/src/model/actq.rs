//! Activation rounding that reproduces ggml's `vec_dot_type`.
//!
//! ggml multiplies a quantized weight row with activations that it first quantizes per
//! row: to Q8_0 (Q4_0/Q5_0/Q8_0 weights), Q8_1 (Q4_1/Q5_1; same values as Q8_0), Q8_K
//! (k-quants) or f16/bf16 (f16/bf16 weights). Rounding the f32 activations the same way
//! (quantize, then dequantize) before the f32 dot product gives the same products as
//! ggml's integer kernels up to summation order, so pith's logits track llama.cpp's.

use half::{bf16, f16};

use crate::quant::{GgmlType, QK_K};

/// Rounds `x` (one or more rows whose length is a multiple of the weight's block size)
/// the way ggml quantizes activations for a dot product with weights of type `w`.
pub fn round_for(w: GgmlType, x: &mut [f32]) {
    match w {
        GgmlType::Q4_0
        | GgmlType::Q4_1
        | GgmlType::Q5_0
        | GgmlType::Q5_1
        | GgmlType::Q8_0
        | GgmlType::Q8_1 => x.chunks_exact_mut(32).for_each(round_q8_0),
        GgmlType::Q2K
        | GgmlType::Q3K
        | GgmlType::Q4K
        | GgmlType::Q5K
        | GgmlType::Q6K
        | GgmlType::Q8K => x.chunks_exact_mut(QK_K).for_each(round_q8_k),
        GgmlType::F16 => x.iter_mut().for_each(|v| *v = f16::from_f32(*v).to_f32()),
        GgmlType::BF16 => x.iter_mut().for_each(|v| *v = bf16::from_f32(*v).to_f32()),
        _ => {}
    }
}

/// `quantize_row_q8_0_ref` then `dequantize_row_q8_0` on one block of 32.
fn round_q8_0(b: &mut [f32]) {
    let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let dh = f16::from_f32(d).to_f32();
    for v in b.iter_mut() {
        *v = (*v * id).round() * dh;
    }
}

/// `quantize_row_q8_K_ref` then dequantize on one block of 256.
fn round_q8_k(b: &mut [f32]) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in b.iter() {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        b.fill(0.0);
        return;
    }
    let iscale = -127.0 / max;
    let d = 1.0 / iscale;
    for v in b.iter_mut() {
        // ggml's nearest_int rounds half to even via the float trick; `round_ties_even`
        // is the same function.
        *v = ((iscale * *v).round_ties_even()).min(127.0) * d;
    }
}
