//! The forward pass, written once for every supported architecture.
//!
//! Per layer (llama.cpp `src/models/{gemma3,llama,qwen2,qwen3,phi3}.cpp`):
//! `x += [post_norm](attn(norm(x)))`, `x += [post_norm](ffn(norm(x)))`, where attention
//! optionally has q/k biases, per-head q/k RMS norms, rope (normal or neox style, per-layer
//! base), a sliding window, and GQA; the FFN is a gated SiLU or GELU unit.
//!
//! One call runs a batch of sequences (continuous batching): the token rows of every
//! sequence are stacked, so each weight matrix is read once per call for all of them;
//! only attention looks at each sequence's own KV cache.

use pith_models::arch::Activation;
use rayon::prelude::*;

use super::attention::{attention, SeqRows};
use super::matmul::{get_row, matmul, matmul_many};
use super::ops::round_f16;
use super::ops::{gelu_ggml, gelu_tanh, rms_norm, silu};
use super::scratch::Scratch;
use super::weights::Linear;
use super::{KvCache, KvType, Model, ModelError, Numerics};

/// Which logits a forward call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token's (`n_vocab` values): generation.
    Last,
    /// Every token's (`n_tokens × n_vocab`, row-major): perplexity, scoring.
    All,
    /// None: fill the cache only.
    None,
}

/// One sequence's share of a batched forward pass ([`Model::forward_batch`]): `tokens`
/// run at positions `cache.len()..` of this sequence's own `cache`.
#[derive(Debug)]
pub struct SeqBatch<'a> {
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
    pub logits: Logits,
}

/// Sees the input of every matrix multiplication (importance-matrix collection).
pub trait MatmulObserver: Sync {
    /// `x` holds `n_tokens` rows of the weight's input width: the activations multiplied
    /// by weight `tensor` (its GGUF name), before any activation rounding.
    fn observe(&self, tensor: &str, x: &[f32], n_tokens: usize);
}

impl Model {
    /// Runs `tokens` at positions `cache.len()..` and appends their keys and values to
    /// `cache`. Returns the requested logits.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        logits: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        let mut seqs = [SeqBatch {
            cache,
            tokens,
            logits,
        }];
        Ok(self.run_batch(&mut seqs, None)?.pop().unwrap_or_default())
    }

    /// As [`Model::forward`], showing every matmul input to `observer`.
    pub fn forward_observed(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        logits: Logits,
        observer: &dyn MatmulObserver,
    ) -> Result<Vec<f32>, ModelError> {
        let mut seqs = [SeqBatch {
            cache,
            tokens,
            logits,
        }];
        Ok(self
            .run_batch(&mut seqs, Some(observer))?
            .pop()
            .unwrap_or_default())
    }

    /// Runs several sequences in one pass: every weight is read once for all their
    /// tokens. Returns one logits vector per sequence, in order (empty for
    /// [`Logits::None`]). Every sequence is checked before anything runs; on an error no
    /// cache changes length.
    pub fn forward_batch(&self, seqs: &mut [SeqBatch<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.run_batch(seqs, None)
    }

    fn run_batch(
        &self,
        seqs: &mut [SeqBatch<'_>],
        observer: Option<&dyn MatmulObserver>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let n_tokens: usize = seqs.iter().map(|s| s.tokens.len()).sum();
        let _span = tracing::debug_span!("forward", n_seqs = seqs.len(), n_tokens).entered();
        if seqs.is_empty() {
            return Err(ModelError::EmptyBatch);
        }
        let n_vocab = self.config.n_vocab;
        for s in seqs.iter() {
            if s.tokens.is_empty() {
                return Err(ModelError::EmptyBatch);
            }
            let needed = s.cache.len() + s.tokens.len();
            if needed > s.cache.n_ctx() {
                return Err(ModelError::ContextFull {
                    needed,
                    n_ctx: s.cache.n_ctx(),
                });
            }
            if let Some(&token) = s.tokens.iter().find(|&&t| t as usize >= n_vocab) {
                return Err(ModelError::TokenOutOfRange { token, n_vocab });
            }
        }
        // The scratch buffers are only ever used under this lock; a panic elsewhere
        // cannot leave them in a state that matters (they are overwritten each call).
        let mut scratch = self
            .scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let scratch: &mut Scratch = &mut scratch;
        self.pool
            .install(|| self.forward_inner(seqs, scratch, observer))
    }

    /// `out = w · x` for `n` token rows, shown to the observer first.
    fn mm(
        &self,
        obs: Option<&dyn MatmulObserver>,
        w: &Linear,
        x: &[f32],
        n: usize,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        if let Some(o) = obs {
            o.observe(&w.info.name, x, n);
        }
        matmul(self.file.as_ref(), self.numerics, w, x, n, out)
    }

    /// Several products of the same input (see [`matmul_many`]).
    fn mm_many(
        &self,
        obs: Option<&dyn MatmulObserver>,
        jobs: &mut [(&Linear, &mut [f32])],
        x: &[f32],
        n: usize,
    ) -> Result<(), ModelError> {
        if let Some(o) = obs {
            jobs.iter().for_each(|(w, _)| o.observe(&w.info.name, x, n));
        }
        matmul_many(self.file.as_ref(), self.numerics, jobs, x, n)
    }

    fn forward_inner(
        &self,
        seqs: &mut [SeqBatch<'_>],
        s: &mut Scratch,
        obs: Option<&dyn MatmulObserver>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let c = &self.config;
        let f = self.file.as_ref();
        let nm = self.numerics;
        let w = &self.weights;
        let e = c.n_embd;
        let off = c.norm_weight_offset;
        let (qd, kd, vd) = (c.q_dim(), c.k_dim(), c.v_dim());

        // Row ranges of each sequence in the stacked batch, and each row's position.
        let mut rows = Vec::with_capacity(seqs.len());
        let mut pos = Vec::new();
        let mut r0 = 0;
        for sq in seqs.iter() {
            let pos0 = sq.cache.len();
            rows.push(SeqRows {
                start: r0,
                len: sq.tokens.len(),
                pos0,
            });
            pos.extend(pos0..pos0 + sq.tokens.len());
            r0 += sq.tokens.len();
        }
        let n = r0;
        s.resize(c, n);

        // Embeddings.
        for (t, &tok) in seqs.iter().flat_map(|sq| sq.tokens).enumerate() {
            let row = &mut s.x[t * e..(t + 1) * e];
            get_row(f, &w.token_embd, tok as usize, row)?;
            if let Some(sc) = c.embed_scale {
                row.iter_mut().for_each(|v| *v *= sc);
            }
        }

        let gelu = match nm {
            Numerics::Ggml => gelu_ggml,
            Numerics::Exact => gelu_tanh,
        };
        for (il, lw) in w.layers.iter().enumerate() {
            let _span = tracing::trace_span!("layer", il).entered();
            // --- attention ---
            s.h.copy_from_slice(&s.x);
            s.h.par_chunks_mut(e)
                .for_each(|r| rms_norm(r, &lw.attn_norm, c.rms_eps, off));
            match (&lw.wk, &lw.wv) {
                (Some(wk), Some(wv)) => self.mm_many(
                    obs,
                    &mut [(&lw.wq, &mut s.q), (wk, &mut s.k), (wv, &mut s.v)],
                    &s.h,
                    n,
                )?,
                _ => {
                    s.qkv.resize(n * (qd + kd + vd), 0.0);
                    self.mm(obs, &lw.wq, &s.h, n, &mut s.qkv)?;
                    for (t, row) in s.qkv.chunks_exact(qd + kd + vd).enumerate() {
                        s.q[t * qd..(t + 1) * qd].copy_from_slice(&row[..qd]);
                        s.k[t * kd..(t + 1) * kd].copy_from_slice(&row[qd..qd + kd]);
                        s.v[t * vd..(t + 1) * vd].copy_from_slice(&row[qd + kd..]);
                    }
                }
            }
            for (buf, bias) in [(&mut s.q, &lw.bq), (&mut s.k, &lw.bk), (&mut s.v, &lw.bv)] {
                if let Some(b) = bias {
                    buf.chunks_exact_mut(b.len())
                        .for_each(|r| r.iter_mut().zip(b).for_each(|(x, b)| *x += b));
                }
            }
            let rope = if c.is_swa(il) {
                &self.rope_swa
            } else {
                &self.rope_global
            };
            for (buf, norm) in [(&mut s.q, &lw.q_norm), (&mut s.k, &lw.k_norm)] {
                let dim = buf.len() / n;
                buf.par_chunks_mut(dim).zip(&pos).for_each(|(row, &p)| {
                    for head in row.chunks_exact_mut(c.head_dim) {
                        if let Some(nw) = norm {
                            rms_norm(head, nw, c.rms_eps, off);
                        }
                        rope.apply(head, p);
                    }
                });
            }
            let mut f16_cache = false;
            for (sq, r) in seqs.iter_mut().zip(&rows) {
                let rng = r.start..r.start + r.len;
                sq.cache.k[il].write(r.pos0 * kd, &s.k[rng.start * kd..rng.end * kd]);
                sq.cache.v[il].write(r.pos0 * vd, &s.v[rng.start * vd..rng.end * vd]);
                f16_cache |= sq.cache.kv_type == KvType::F16;
            }
            if f16_cache {
                // ggml multiplies an f16 cache with f16-rounded queries and attention
                // weights (`vec_dot_f16`).
                round_f16(&mut s.q);
            }
            let window = if c.is_swa(il) { c.sliding_window } else { None };
            let caches: Vec<&KvCache> = seqs.iter().map(|sq| &*sq.cache).collect();
            attention(c, window, &caches, &rows, il, &s.q, &mut s.attn);
            self.mm(obs, &lw.wo, &s.attn, n, &mut s.proj)?;
            if let Some(pn) = &lw.post_attn_norm {
                s.proj
                    .par_chunks_mut(e)
                    .for_each(|r| rms_norm(r, pn, c.rms_eps, off));
            }
            s.x.iter_mut().zip(&s.proj).for_each(|(a, b)| *a += b);

            // --- feed-forward ---
            s.h.copy_from_slice(&s.x);
            s.h.par_chunks_mut(e)
                .for_each(|r| rms_norm(r, &lw.ffn_norm, c.rms_eps, off));
            self.mm(
                obs,
                lw.gate.as_ref().unwrap_or(&lw.up),
                &s.h,
                n,
                &mut s.gate,
            )?;
            if lw.gate.is_some() {
                self.mm(obs, &lw.up, &s.h, n, &mut s.up)?;
            }
            let ff = c.n_ff;
            let gw = s.gate.len() / n;
            let (gate, up) = (&s.gate, &s.up);
            s.act.par_chunks_mut(ff).enumerate().for_each(|(t, out)| {
                let (g, u) = if c.fused_gate_up {
                    let row = &gate[t * gw..(t + 1) * gw];
                    (&row[..ff], &row[ff..])
                } else {
                    (&gate[t * ff..(t + 1) * ff], &up[t * ff..(t + 1) * ff])
                };
                match c.activation {
                    Activation::Silu => out
                        .iter_mut()
                        .zip(g.iter().zip(u))
                        .for_each(|(o, (&g, &u))| *o = silu(g) * u),
                    Activation::GeluTanh => out
                        .iter_mut()
                        .zip(g.iter().zip(u))
                        .for_each(|(o, (&g, &u))| *o = gelu(g) * u),
                }
            });
            self.mm(obs, &lw.down, &s.act, n, &mut s.proj)?;
            if let Some(pn) = &lw.post_ffn_norm {
                s.proj
                    .par_chunks_mut(e)
                    .for_each(|r| rms_norm(r, pn, c.rms_eps, off));
            }
            s.x.iter_mut().zip(&s.proj).for_each(|(a, b)| *a += b);
        }
        for (sq, r) in seqs.iter_mut().zip(&rows) {
            sq.cache.len = r.pos0 + r.len;
        }

        // --- output: the rows that want logits, all in one matmul ---
        s.out_x.clear();
        let mut n_out = Vec::with_capacity(seqs.len());
        for (sq, r) in seqs.iter().zip(&rows) {
            let take = match sq.logits {
                Logits::None => 0..0,
                Logits::Last => r.start + r.len - 1..r.start + r.len,
                Logits::All => r.start..r.start + r.len,
            };
            n_out.push(take.len());
            s.out_x
                .extend_from_slice(&s.x[take.start * e..take.end * e]);
        }
        let total: usize = n_out.iter().sum();
        if total == 0 {
            return Ok(vec![Vec::new(); seqs.len()]);
        }
        s.out_x
            .chunks_exact_mut(e)
            .for_each(|r| rms_norm(r, &w.output_norm, c.rms_eps, off));
        let mut logits = vec![0.0f32; total * c.n_vocab];
        {
            let _span = tracing::debug_span!("output", n_out = total).entered();
            self.mm(obs, &w.output, &s.out_x, total, &mut logits)?;
        }
        if let Some(cap) = c.final_logit_softcap {
            logits.iter_mut().for_each(|l| *l = (*l / cap).tanh() * cap);
        }
        if seqs.len() == 1 {
            return Ok(vec![logits]);
        }
        let mut out = Vec::with_capacity(seqs.len());
        let mut at = 0;
        for k in n_out {
            out.push(logits[at..at + k * c.n_vocab].to_vec());
            at += k * c.n_vocab;
        }
        Ok(out)
    }
}
