//! The forward pass, written once for every supported architecture.
//!
//! Per layer (llama.cpp `src/models/{gemma3,llama,qwen2,qwen3,phi3}.cpp`):
//! `x += [post_norm](attn(norm(x)))`, `x += [post_norm](ffn(norm(x)))`, where attention
//! optionally has q/k biases, per-head q/k RMS norms, rope (normal or neox style, per-layer
//! base), a sliding window, and GQA; the FFN is a gated SiLU or GELU unit.

use pith_models::arch::Activation;
use rayon::prelude::*;

use super::matmul::{get_row, matmul};
use super::ops::round_f16;
use super::ops::{axpy, dot, gelu_ggml, gelu_tanh, rms_norm, silu, softmax};
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

impl Model {
    /// Runs `tokens` at positions `cache.len()..` and appends their keys and values to
    /// `cache`. Returns the requested logits.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        logits: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        let _span =
            tracing::debug_span!("forward", n_tokens = tokens.len(), pos = cache.len()).entered();
        if tokens.is_empty() {
            return Err(ModelError::EmptyBatch);
        }
        let needed = cache.len() + tokens.len();
        if needed > cache.n_ctx() {
            return Err(ModelError::ContextFull {
                needed,
                n_ctx: cache.n_ctx(),
            });
        }
        let n_vocab = self.config.n_vocab;
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(ModelError::TokenOutOfRange { token, n_vocab });
        }
        self.pool
            .install(|| self.forward_inner(cache, tokens, logits))
    }

    fn forward_inner(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        want: Logits,
    ) -> Result<Vec<f32>, ModelError> {
        let c = &self.config;
        let f = self.file.as_ref();
        let nm = self.numerics;
        let w = &self.weights;
        let n = tokens.len();
        let e = c.n_embd;
        let pos0 = cache.len;
        let off = c.norm_weight_offset;

        // Embeddings.
        let mut x = vec![0.0f32; n * e];
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &mut x[t * e..(t + 1) * e];
            get_row(f, &w.token_embd, tok as usize, row)?;
            if let Some(s) = c.embed_scale {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }

        let (qd, kd, vd) = (c.q_dim(), c.k_dim(), c.v_dim());
        let mut h = vec![0.0f32; n * e];
        let mut q = vec![0.0f32; n * qd];
        let mut k = vec![0.0f32; n * kd];
        let mut v = vec![0.0f32; n * vd];
        // Fused q/k/v output (Phi-3); allocated on first use, reused across layers.
        let mut qkv = Vec::new();
        let mut attn = vec![0.0f32; n * c.n_head * c.head_dim_v];
        let mut proj = vec![0.0f32; n * e];
        let ff_w = if c.fused_gate_up { 2 * c.n_ff } else { c.n_ff };
        let mut gate = vec![0.0f32; n * ff_w];
        let mut up = vec![0.0f32; if c.fused_gate_up { 0 } else { n * c.n_ff }];
        let mut act = vec![0.0f32; n * c.n_ff];

        let gelu = match nm {
            Numerics::Ggml => gelu_ggml,
            Numerics::Exact => gelu_tanh,
        };
        for (il, lw) in w.layers.iter().enumerate() {
            let _span = tracing::trace_span!("layer", il).entered();
            // --- attention ---
            h.copy_from_slice(&x);
            h.chunks_exact_mut(e)
                .for_each(|r| rms_norm(r, &lw.attn_norm, c.rms_eps, off));
            match (&lw.wk, &lw.wv) {
                (Some(wk), Some(wv)) => {
                    matmul(f, nm, &lw.wq, &h, n, &mut q)?;
                    matmul(f, nm, wk, &h, n, &mut k)?;
                    matmul(f, nm, wv, &h, n, &mut v)?;
                }
                _ => {
                    qkv.resize(n * (qd + kd + vd), 0.0);
                    matmul(f, nm, &lw.wq, &h, n, &mut qkv)?;
                    for (t, row) in qkv.chunks_exact(qd + kd + vd).enumerate() {
                        q[t * qd..(t + 1) * qd].copy_from_slice(&row[..qd]);
                        k[t * kd..(t + 1) * kd].copy_from_slice(&row[qd..qd + kd]);
                        v[t * vd..(t + 1) * vd].copy_from_slice(&row[qd + kd..]);
                    }
                }
            }
            for (buf, bias) in [(&mut q, &lw.bq), (&mut k, &lw.bk), (&mut v, &lw.bv)] {
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
            for (buf, norm) in [(&mut q, &lw.q_norm), (&mut k, &lw.k_norm)] {
                let dim = buf.len() / n;
                for (t, row) in buf.chunks_exact_mut(dim).enumerate() {
                    for head in row.chunks_exact_mut(c.head_dim) {
                        if let Some(nw) = norm {
                            rms_norm(head, nw, c.rms_eps, off);
                        }
                        rope.apply(head, pos0 + t);
                    }
                }
            }
            cache.k[il].write(pos0 * kd, &k);
            cache.v[il].write(pos0 * vd, &v);
            if cache.kv_type == KvType::F16 {
                // ggml multiplies an f16 cache with f16-rounded queries and attention
                // weights (`vec_dot_f16`).
                round_f16(&mut q);
            }
            let window = if c.is_swa(il) { c.sliding_window } else { None };
            self.attention(window, cache, il, &q, pos0, &mut attn);
            matmul(f, nm, &lw.wo, &attn, n, &mut proj)?;
            if let Some(pn) = &lw.post_attn_norm {
                proj.chunks_exact_mut(e)
                    .for_each(|r| rms_norm(r, pn, c.rms_eps, off));
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);

            // --- feed-forward ---
            h.copy_from_slice(&x);
            h.chunks_exact_mut(e)
                .for_each(|r| rms_norm(r, &lw.ffn_norm, c.rms_eps, off));
            matmul(f, nm, lw.gate.as_ref().unwrap_or(&lw.up), &h, n, &mut gate)?;
            if let Some(_g) = &lw.gate {
                matmul(f, nm, &lw.up, &h, n, &mut up)?;
            }
            let ff = c.n_ff;
            for t in 0..n {
                let (g, u) = if c.fused_gate_up {
                    let row = &gate[t * 2 * ff..(t + 1) * 2 * ff];
                    (&row[..ff], &row[ff..])
                } else {
                    (&gate[t * ff..(t + 1) * ff], &up[t * ff..(t + 1) * ff])
                };
                let out = &mut act[t * ff..(t + 1) * ff];
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
            }
            matmul(f, nm, &lw.down, &act, n, &mut proj)?;
            if let Some(pn) = &lw.post_ffn_norm {
                proj.chunks_exact_mut(e)
                    .for_each(|r| rms_norm(r, pn, c.rms_eps, off));
            }
            x.iter_mut().zip(&proj).for_each(|(a, b)| *a += b);
        }
        cache.len = pos0 + n;

        // --- output ---
        let rows = match want {
            Logits::None => return Ok(Vec::new()),
            Logits::Last => &mut x[(n - 1) * e..],
            Logits::All => &mut x[..],
        };
        let n_out = rows.len() / e;
        rows.chunks_exact_mut(e)
            .for_each(|r| rms_norm(r, &w.output_norm, c.rms_eps, off));
        let mut logits = vec![0.0f32; n_out * c.n_vocab];
        {
            let _span = tracing::debug_span!("output", n_out).entered();
            matmul(f, nm, &w.output, rows, n_out, &mut logits)?;
        }
        if let Some(cap) = c.final_logit_softcap {
            logits.iter_mut().for_each(|l| *l = (*l / cap).tanh() * cap);
        }
        Ok(logits)
    }

    /// Causal (and, with a `window`, sliding-window) multi-head attention of the new
    /// queries `q` (one row per token, at positions `pos0..`) over the cached keys and
    /// values `(k, v)`.
    fn attention(
        &self,
        window: Option<usize>,
        cache: &KvCache,
        il: usize,
        q: &[f32],
        pos0: usize,
        out: &mut [f32],
    ) {
        let c = &self.config;
        let (kc, vc) = (&cache.k[il], &cache.v[il]);
        let f16_weights = cache.kv_type == KvType::F16;
        let (hd, hdv) = (c.head_dim, c.head_dim_v);
        let (kd, vd) = (c.k_dim(), c.v_dim());
        let group = c.n_head / c.n_head_kv;
        out.par_chunks_mut(hdv).enumerate().for_each(|(idx, o)| {
            let (t, head) = (idx / c.n_head, idx % c.n_head);
            let kvh = head / group;
            let p = pos0 + t;
            // llama.cpp masks key position p0 for query p1 when p1 - p0 >= n_swa.
            let start = window.map_or(0, |w| (p + 1).saturating_sub(w));
            let qh = &q[t * c.q_dim() + head * hd..][..hd];
            let mut row = vec![0.0f32; hd.max(hdv)];
            let mut scores: Vec<f32> = (start..=p)
                .map(|j| {
                    let s = dot(qh, kc.read(j * kd + kvh * hd, hd, &mut row)) * c.attn_scale;
                    match c.attn_logit_softcap {
                        Some(cap) => (s / cap).tanh() * cap,
                        None => s,
                    }
                })
                .collect();
            softmax(&mut scores);
            if f16_weights {
                round_f16(&mut scores);
            }
            o.fill(0.0);
            for (j, &s) in (start..=p).zip(&scores) {
                axpy(s, vc.read(j * vd + kvh * hdv, hdv, &mut row), o);
            }
        });
    }
}
