//! `y = W·x` for a batch of token vectors, with `W` read from the memory map.
//!
//! Decode-sized batches (up to [`QUANTIZED_MAX_TOKENS`] tokens) use ggml's quantized
//! integer dot products straight from the map. Larger batches (prefill) dequantize a tile
//! of [`GEMM_ROWS`] weight rows once into a per-thread f32 buffer and multiply it with
//! every token through the register-tiled GEMM of [`crate::gemm`], so a prefill of T tokens
//! reads the weights once, not T times. Output rows are split across the thread pool.

use std::cell::RefCell;

use rayon::prelude::*;

use super::actq::round_for;
use super::weights::Linear;
use super::{ModelError, Numerics};
use crate::gemm::{gemm, Operands, OutTile};
use crate::gguf::GgufFile;
use crate::kernels;
use crate::quant::{dequantize, GgmlType};

thread_local! {
    /// The running task's dequantized weight row, and its tile transposed for the GEMM.
    static TILE: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Largest batch that uses the quantized dot-product kernels.
const QUANTIZED_MAX_TOKENS: usize = 4;

/// Rows per parallel task of the quantized path: small enough to balance, large enough
/// to amortise.
const ROWS_PER_TASK: usize = 64;

/// Weight rows per GEMM task: a multiple of the micro-kernels' widths (48 for AVX-512, 16
/// for AVX2) whose f32 tile (`GEMM_ROWS × in_dim`) stays in L2.
const GEMM_ROWS: usize = 96;

/// A raw pointer parallel tasks write disjoint elements of one output through (the
/// matmuls here and the attention).
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: every user splits the output so that tasks write disjoint index sets (distinct
// output rows for every token, or distinct (row, head) slices), so no two threads touch
// the same element; the buffer outlives the parallel loop.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Through a method, so closures capture the `Send` wrapper, not the raw field.
    pub(super) fn get(self) -> *mut f32 {
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
    // Decode-sized batches take the integer kernels; larger ones (prefill) the GEMM below,
    // which reuses each dequantized weight tile across all tokens. Both round activations
    // as ggml does.
    if numerics == Numerics::Ggml && n_tokens <= QUANTIZED_MAX_TOKENS && kernels::supports(ty) {
        return matmul_quantized(file, &mut [(w, out)], x, n_tokens);
    }
    let rounded;
    let x = if matches!(ty, GgmlType::F32) || numerics == Numerics::Exact {
        x
    } else {
        let mut r = x.to_vec();
        // Blocks never straddle rows (row widths are whole blocks), so rows round alone.
        r.par_chunks_mut(ind).for_each(|row| round_for(ty, row));
        rounded = r;
        &rounded[..]
    };
    let ptr = OutPtr(out.as_mut_ptr());
    (0..outd.div_ceil(GEMM_ROWS))
        .into_par_iter()
        .try_for_each(|task| {
            TILE.with(|bufs| {
                let (row, panel) = &mut *bufs.borrow_mut();
                let start = task * GEMM_ROWS;
                let rows = GEMM_ROWS.min(outd - start);
                // The GEMM wants the tile k-major: panel[i·rows + r] = W[start + r, i].
                row.resize(ind, 0.0);
                panel.resize(rows * ind, 0.0);
                for r in 0..rows {
                    let o = start + r;
                    dequantize(ty, &data[o * rb..(o + 1) * rb], row).map_err(|source| {
                        ModelError::Quant {
                            name: w.info.name.clone(),
                            source,
                        }
                    })?;
                    for (i, &v) in row.iter().enumerate() {
                        panel[i * rows + r] = v;
                    }
                }
                let ops = Operands {
                    a: x,
                    lda: ind,
                    b: panel,
                    ldb: rows,
                    m: n_tokens,
                    n: rows,
                    k: ind,
                };
                // SAFETY: the product writes out[t·outd + start + r] for t < n_tokens and
                // r < rows, inside `out` (length checked above); the row range
                // start..start+rows belongs to this task alone.
                gemm(&ops, unsafe { OutTile::new(ptr.get().add(start), outd) });
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

/// Several products with the same input in one parallel region (q/k/v, gate/up): in the
/// quantized path the activations are quantized once per activation type and every
/// weight's row blocks share one task list, so a decode step forks and joins once, not
/// once per matrix. Other cases run [`matmul`] per weight.
pub fn matmul_many(
    file: &GgufFile,
    numerics: Numerics,
    jobs: &mut [(&Linear, &mut [f32])],
    x: &[f32],
    n_tokens: usize,
) -> Result<(), ModelError> {
    let quantized = numerics == Numerics::Ggml
        && n_tokens <= QUANTIZED_MAX_TOKENS
        && jobs.iter().all(|(w, _)| kernels::supports(w.ty()));
    if !quantized {
        for (w, out) in jobs.iter_mut() {
            matmul(file, numerics, w, x, n_tokens, out)?;
        }
        return Ok(());
    }
    for (w, out) in jobs.iter() {
        assert_eq!(x.len(), n_tokens * w.in_dim, "matmul input size");
        assert_eq!(out.len(), n_tokens * w.out_dim, "matmul output size");
    }
    matmul_quantized(file, jobs, x, n_tokens)
}

/// Activations quantized for one activation type: one row per token, in a u32 buffer so
/// every row starts 4-byte aligned (Q8_K blocks hold an f32; row sizes are multiples of
/// 4 bytes).
struct QuantizedInput {
    weight_ty: GgmlType,
    rows: Vec<u32>,
    /// Bytes between rows, and bytes of one row.
    stride: usize,
    len: usize,
}

impl QuantizedInput {
    fn row(&self, t: usize) -> &[u8] {
        &bytemuck::cast_slice::<u32, u8>(&self.rows)[t * self.stride..t * self.stride + self.len]
    }
}

/// The quantized path (ggml's): each token's activations are quantized once to the weight
/// type's `vec_dot_type` (Q8_0/Q8_1/Q8_K), then every weight row is multiplied with them
/// by an integer block dot product straight from the map, with no dequantization.
fn matmul_quantized(
    file: &GgufFile,
    jobs: &mut [(&Linear, &mut [f32])],
    x: &[f32],
    n_tokens: usize,
) -> Result<(), ModelError> {
    let kernel_err = |w: &Linear, source| ModelError::Kernel {
        name: w.info.name.clone(),
        source,
    };
    // One quantized input per activation type (weights of one type share it).
    let mut inputs: Vec<QuantizedInput> = Vec::new();
    let mut input_of = Vec::with_capacity(jobs.len());
    for (w, _) in jobs.iter() {
        let ty = w.ty();
        let act = kernels::vec_dot_type(ty);
        if let Some(i) = inputs
            .iter()
            .position(|q| kernels::vec_dot_type(q.weight_ty) == act)
        {
            input_of.push(i);
            continue;
        }
        let ind = w.in_dim;
        let mut row_q = Vec::new();
        let mut q = QuantizedInput {
            weight_ty: ty,
            rows: Vec::new(),
            stride: 0,
            len: 0,
        };
        for t in 0..n_tokens {
            kernels::quantize_activation(ty, &x[t * ind..(t + 1) * ind], &mut row_q)
                .map_err(|e| kernel_err(w, e))?;
            if t == 0 {
                q.len = row_q.len();
                q.stride = row_q.len().next_multiple_of(4);
                q.rows = vec![0u32; n_tokens * q.stride / 4];
            }
            bytemuck::cast_slice_mut::<u32, u8>(&mut q.rows)[t * q.stride..t * q.stride + q.len]
                .copy_from_slice(&row_q);
        }
        input_of.push(inputs.len());
        inputs.push(q);
    }
    let outs: Vec<OutPtr> = jobs
        .iter_mut()
        .map(|(_, o)| OutPtr(o.as_mut_ptr()))
        .collect();
    let tasks: Vec<(usize, usize)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, (w, _))| (0..w.out_dim.div_ceil(ROWS_PER_TASK)).map(move |b| (j, b)))
        .collect();
    let jobs = &*jobs;
    tasks.into_par_iter().try_for_each(|(j, block)| {
        let w = jobs[j].0;
        let (ind, outd, ty, rb) = (w.in_dim, w.out_dim, w.ty(), w.row_bytes());
        let data = w.data(file);
        let input = &inputs[input_of[j]];
        let start = block * ROWS_PER_TASK;
        for o in start..(start + ROWS_PER_TASK).min(outd) {
            let w_row = &data[o * rb..(o + 1) * rb];
            for t in 0..n_tokens {
                let v =
                    kernels::vec_dot(ty, w_row, input.row(t), ind).map_err(|e| kernel_err(w, e))?;
                // SAFETY: `t < n_tokens` and `o < outd`, so the index is inside job j's
                // output (length checked by the callers); each (j, t, o) is written by
                // exactly one task.
                unsafe { *outs[j].get().add(t * outd + o) = v };
            }
        }
        Ok(())
    })
}
