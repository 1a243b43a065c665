//! Activation buffers of the forward pass, kept between calls so a decode step allocates
//! nothing once the buffers have grown to the batch size.

use pith_models::ArchConfig;

/// Per-call activations, each `[n_tokens, width]` row-major.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub x: Vec<f32>,
    pub h: Vec<f32>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Fused q/k/v output (Phi-3 only; sized where used).
    pub qkv: Vec<f32>,
    pub attn: Vec<f32>,
    pub proj: Vec<f32>,
    /// Gate output (or fused gate+up).
    pub gate: Vec<f32>,
    pub up: Vec<f32>,
    pub act: Vec<f32>,
    /// Rows that want logits, gathered for the output projection.
    pub out_x: Vec<f32>,
}

impl Scratch {
    /// Sizes every buffer for `n` tokens (contents are overwritten before use).
    pub fn resize(&mut self, c: &ArchConfig, n: usize) {
        let (qd, kd, vd) = (c.q_dim(), c.k_dim(), c.v_dim());
        let ff_w = if c.fused_gate_up { 2 * c.n_ff } else { c.n_ff };
        let set = |b: &mut Vec<f32>, len: usize| b.resize(len, 0.0);
        set(&mut self.x, n * c.n_embd);
        set(&mut self.h, n * c.n_embd);
        set(&mut self.q, n * qd);
        set(&mut self.k, n * kd);
        set(&mut self.v, n * vd);
        set(&mut self.attn, n * c.n_head * c.head_dim_v);
        set(&mut self.proj, n * c.n_embd);
        set(&mut self.gate, n * ff_w);
        set(&mut self.up, if c.fused_gate_up { 0 } else { n * c.n_ff });
        set(&mut self.act, n * c.n_ff);
    }
}
