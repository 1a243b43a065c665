//! `y = W·x` for a batch of token vectors, with `W` read from the memory map.
//!
//! Each weight row is dequantized once into a per-thread scratch row and multiplied with
//! every token of the batch, so a prefill of T tokens reads the weights once, not T
//! times. Output rows are split across the rayon pool. This is the portable reference
//! path; the quantized SIMD kernels replace the inner dequantize-then-dot.

use std::cell::RefCell;

use rayon::prelude::*;

use super::actq::round_for;
use super::ops::dot;
use super::weights::Linear;
use super::{ModelError, Numerics};
use crate::gguf::GgufFile;
use crate::kernels;
use crate::quant::{dequantize, GgmlType};

thread_local! {
    static ROW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Largest batch that uses the quantized dot-product kernels.
const QUANTIZED_MAX_TOKENS: usize = 4;

/// Rows per parallel task: small enough to balance, large enough to amortise.
const ROWS_PER_TASK: usize = 64;

/// A raw pointer the tasks write disjoint elements through.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint index sets (distinct output rows `o` for every token), so
// no two threads touch the same element; the buffer outlives the parallel loop.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Through a method, so closures capture the `Send` wrapper, not the raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `out[t·out_dim + o] = Σ_i W[o, i] · x[t·in_dim + i]` for `t < n_tokens`.
///
/// With [`Numerics::Ggml`] the activations are first rounded the way ggml quantizes them
/// for this weight type (see `actq.rs`); with [`Numerics::Exact`] they are used as is.
pub fn matmul(
    file: &GgufFile,
    numerics: Numerics,
    w: &Linear,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
) -> Result<(), ModelError> {
    let (ind, outd) = (w.in_dim, w.out_dim);
    assert_eq!(x.len(), n_tokens * ind, "matmul input size");
    assert_eq!(out.len(), n_tokens * outd, "matmul output size");
    let data = w.data(file);
    let rb = w.row_bytes();
    let ty = w.ty();
    // Decode-sized batches take the integer kernels; larger ones (prefill) keep the
    // dequantize-once-per-row path below, which reuses each dequantized row across all
    // tokens (until a blocked GEMM kernel exists). Both round activations as ggml does.
    if numerics == Numerics::Ggml && n_tokens <= QUANTIZED_MAX_TOKENS && kernels::supports(ty) {
        return matmul_quantized(w, data, x, n_tokens, out);
    }
    let rounded;
    let x = if matches!(ty, GgmlType::F32) || numerics == Numerics::Exact {
        x
    } else {
        let mut r = x.to_vec();
        round_for(ty, &mut r);
        rounded = r;
        &rounded[..]
    };
    let ptr = OutPtr(out.as_mut_ptr());
    (0..outd.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .try_for_each(|task| {
            ROW.with(|row| {
                let mut row = row.borrow_mut();
                row.resize(ind, 0.0);
                let start = task * ROWS_PER_TASK;
                for o in start..(start + ROWS_PER_TASK).min(outd) {
                    dequantize(ty, &data[o * rb..(o + 1) * rb], &mut row).map_err(|source| {
                        ModelError::Quant {
                            name: w.info.name.clone(),
                            source,
                        }
                    })?;
                    for t in 0..n_tokens {
                        let v = dot(&row, &x[t * ind..(t + 1) * ind]);
                        // SAFETY: `t < n_tokens` and `o < outd`, so the index is inside `out`
                        // (length checked above); each (t, o) is written by exactly one task.
                        unsafe { *ptr.get().add(t * outd + o) = v };
                    }
                }
                Ok(())
            })
        })
}

/// Dequantizes row `row` of `w` (an embedding lookup) into `out`.
pub fn get_row(file: &GgufFile, w: &Linear, row: usize, out: &mut [f32]) -> Result<(), ModelError> {
    let rb = w.row_bytes();
    let data = &w.data(file)[row * rb..(row + 1) * rb];
    dequantize(w.ty(), data, out).map_err(|source| ModelError::Quant {
        name: w.info.name.clone(),
        source,
    })
}

/// The quantized path (ggml's): each token's activations are quantized once to the weight
/// type's `vec_dot_type` (Q8_0/Q8_1/Q8_K), then every weight row is multiplied with them
/// by an integer block dot product straight from the map, with no dequantization.
fn matmul_quantized(
    w: &Linear,
    data: &[u8],
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
) -> Result<(), ModelError> {
    let (ind, outd) = (w.in_dim, w.out_dim);
    let ty = w.ty();
    let rb = w.row_bytes();
    let kernel_err = |source| ModelError::Kernel {
        name: w.info.name.clone(),
        source,
    };
    // Quantized activations, one row per token, in a u32 buffer so every row starts
    // 4-byte aligned (Q8_K blocks hold an f32; row sizes are multiples of 4 bytes).
    let mut row_q = Vec::new();
    let mut xq: Vec<u32> = Vec::new();
    let mut qb = 0;
    for t in 0..n_tokens {
        kernels::quantize_activation(ty, &x[t * ind..(t + 1) * ind], &mut row_q)
            .map_err(kernel_err)?;
        qb = row_q.len().next_multiple_of(4);
        if t == 0 {
            xq = vec![0u32; n_tokens * qb / 4];
        }
        bytemuck::cast_slice_mut::<u32, u8>(&mut xq)[t * qb..t * qb + row_q.len()]
            .copy_from_slice(&row_q);
    }
    let xq: &[u8] = bytemuck::cast_slice(&xq);
    let qlen = row_q.len();
    let ptr = OutPtr(out.as_mut_ptr());
    (0..outd.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .try_for_each(|task| {
            let start = task * ROWS_PER_TASK;
            for o in start..(start + ROWS_PER_TASK).min(outd) {
                let w_row = &data[o * rb..(o + 1) * rb];
                for t in 0..n_tokens {
                    let v = kernels::vec_dot(ty, w_row, &xq[t * qb..t * qb + qlen], ind)
                        .map_err(kernel_err)?;
                    // SAFETY: `t < n_tokens` and `o < outd`, so the index is inside `out`
                    // (length checked by `matmul`); each (t, o) is written by exactly one task.
                    unsafe { *ptr.get().add(t * outd + o) = v };
                }
            }
            Ok(())
        })
}
