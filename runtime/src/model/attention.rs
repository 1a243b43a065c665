//! Causal (optionally sliding-window) multi-head attention with grouped KV heads, over
//! each sequence's own KV cache.
//!
//! Work is split into tasks of (sequence, KV head, tile of query rows): a task converts
//! the keys and values its tile can see to f32 once, then serves every query head of the
//! group and every row of the tile from them with two products of [`crate::gemm`]
//! (`Q·Kᵀ`, then the masked softmax, then `P·V`). With an f16 cache the queries and the
//! attention weights are rounded to f16 first, as ggml's `vec_dot_f16` does.

use std::cell::RefCell;

use pith_models::ArchConfig;
use rayon::prelude::*;

use super::matmul::OutPtr;
use super::ops::{round_f16, softmax};
use super::{KvCache, KvType};
use crate::gemm::{gemm, Operands, OutTile};

/// Query rows per task.
const TILE: usize = 32;

/// Where one sequence's rows sit in the stacked batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeqRows {
    /// First row in the batch.
    pub start: usize,
    /// Number of rows (tokens).
    pub len: usize,
    /// Position of the first row.
    pub pos0: usize,
}

thread_local! {
    /// Per-thread key/value/score scratch, reused across calls.
    static BUF: RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// `out[row, head·hdv..]` = softmax(q·Kᵀ·scale)·V for every row of every sequence.
/// `q` is `[rows, n_head·head_dim]` (already roped), `out` `[rows, n_head·head_dim_v]`.
pub(crate) fn attention(
    c: &ArchConfig,
    window: Option<usize>,
    caches: &[&KvCache],
    seqs: &[SeqRows],
    il: usize,
    q: &[f32],
    out: &mut [f32],
) {
    let (hd, hdv) = (c.head_dim, c.head_dim_v);
    let (kd, vd, qd) = (c.k_dim(), c.v_dim(), c.q_dim());
    let od = c.n_head * hdv;
    let group = c.n_head / c.n_head_kv;
    assert_eq!(out.len(), q.len() / qd * od, "attention output size");
    let tasks: Vec<(usize, usize, usize)> = seqs
        .iter()
        .enumerate()
        .flat_map(|(si, s)| {
            (0..c.n_head_kv)
                .flat_map(move |kvh| (0..s.len.div_ceil(TILE)).map(move |tile| (si, kvh, tile)))
        })
        .collect();
    let ptr = OutPtr(out.as_mut_ptr());
    tasks.into_par_iter().for_each(|(si, kvh, tile)| {
        let s = seqs[si];
        let cache = caches[si];
        let f16 = cache.kv_type == KvType::F16;
        let r_lo = tile * TILE;
        let r_hi = (r_lo + TILE).min(s.len);
        let nr = r_hi - r_lo;
        let p_last = s.pos0 + r_hi - 1;
        // The earliest key any row of the tile may see.
        let first = window.map_or(0, |w| (s.pos0 + r_lo + 1).saturating_sub(w));
        let m = p_last + 1 - first;
        BUF.with(|b| {
            let (kt, vf, scores) = &mut *b.borrow_mut();
            // Keys transposed (`kt[d·m + j]`) and values row-major (`vf[j·hdv + d]`), f32.
            kt.resize(m * hd, 0.0);
            vf.resize(m * hdv.max(hd), 0.0);
            for j in 0..m {
                let p = first + j;
                let key = &mut vf[..hd];
                cache.k[il].read_into(p * kd + kvh * hd, key);
                for (d, &x) in key.iter().enumerate() {
                    kt[d * m + j] = x;
                }
            }
            for j in 0..m {
                let p = first + j;
                cache.v[il].read_into(p * vd + kvh * hdv, &mut vf[j * hdv..(j + 1) * hdv]);
            }
            scores.resize(nr * m, 0.0);
            for head in kvh * group..(kvh + 1) * group {
                let q0 = (s.start + r_lo) * qd + head * hd;
                let qk = Operands {
                    a: &q[q0..],
                    lda: qd,
                    b: kt,
                    ldb: m,
                    m: nr,
                    n: m,
                    k: hd,
                };
                gemm(&qk, OutTile::of(scores, m));
                for (i, sc) in scores.chunks_exact_mut(m).enumerate() {
                    let p = s.pos0 + r_lo + i;
                    // llama.cpp masks key position p0 for query p1 when p1 - p0 >= n_swa.
                    let start = window.map_or(0, |w| (p + 1).saturating_sub(w)) - first;
                    let end = p + 1 - first;
                    let valid = &mut sc[start..end];
                    for v in valid.iter_mut() {
                        let x = *v * c.attn_scale;
                        *v = match c.attn_logit_softcap {
                            Some(cap) => (x / cap).tanh() * cap,
                            None => x,
                        };
                    }
                    softmax(valid);
                    if f16 {
                        round_f16(valid);
                    }
                    sc[..start].fill(0.0);
                    sc[end..].fill(0.0);
                }
                let pv = Operands {
                    a: scores,
                    lda: m,
                    b: vf,
                    ldb: hdv,
                    m: nr,
                    n: hdv,
                    k: m,
                };
                let row0 = s.start + r_lo;
                // SAFETY: rows row0..row0+nr and columns head·hdv..(head+1)·hdv lie inside
                // `out` (size asserted above); only this task writes them.
                gemm(&pv, unsafe {
                    OutTile::new(ptr.get().add(row0 * od + head * hdv), od)
                });
            }
        });
    });
}
