//! The model's tensors, located in the GGUF file and checked against the `ArchConfig`.
//!
//! 2-D weights stay in the memory map: a [`Linear`] is the tensor's info (type, offset,
//! shape) and is resolved to a byte slice of the map at use. Only 1-D tensors (norm
//! weights, biases, rope factors: a few KB each) are converted to `Vec<f32>`.

use pith_models::ArchConfig;

use super::ModelError;
use crate::gguf::{GgufFile, TensorInfo};
use crate::quant::{dequantize_to_vec, GgmlType};

/// A weight matrix `[out_dim, in_dim]` (ggml: `ne = [in_dim, out_dim]`) in the map.
#[derive(Debug, Clone)]
pub struct Linear {
    pub info: TensorInfo,
    pub in_dim: usize,
    pub out_dim: usize,
}

impl Linear {
    pub fn ty(&self) -> GgmlType {
        self.info.ty
    }
    /// Bytes of one output row.
    pub fn row_bytes(&self) -> usize {
        self.in_dim / self.ty().block_size() * self.ty().type_size()
    }
    /// The tensor's bytes in `file`.
    pub fn data<'a>(&self, file: &'a GgufFile) -> &'a [u8] {
        file.tensor_bytes(&self.info)
    }
}

/// Weights of one decoder layer.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    /// Separate q/k/v projections, or one fused `attn_qkv` (Phi-3) in `wq`.
    pub wq: Linear,
    pub wk: Option<Linear>,
    pub wv: Option<Linear>,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub wo: Linear,
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    /// `None` when `up` holds gate and up fused (Phi-3).
    pub gate: Option<Linear>,
    pub up: Linear,
    pub down: Linear,
    pub post_ffn_norm: Option<Vec<f32>>,
}

/// All weights of a model.
#[derive(Debug, Clone)]
pub struct Weights {
    pub token_embd: Linear,
    pub output_norm: Vec<f32>,
    /// The output projection; the token embedding when tied.
    pub output: Linear,
    /// Llama 3 rope frequency factors (`rope_freqs.weight`), one per rotated pair.
    pub rope_freqs: Option<Vec<f32>>,
    pub layers: Vec<LayerWeights>,
}

struct Loader<'a> {
    file: &'a GgufFile,
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.file.tensor(name).map(|v| v.info)
    }

    fn check_dims(&self, info: &TensorInfo, expected: &[usize]) -> Result<(), ModelError> {
        let found: Vec<usize> = info.dims.iter().map(|&d| d as usize).collect();
        if found != expected {
            return Err(ModelError::ShapeMismatch {
                name: info.name.clone(),
                expected: expected.to_vec(),
                found,
            });
        }
        Ok(())
    }

    fn opt_linear(
        &self,
        name: &str,
        in_dim: usize,
        out_dim: usize,
    ) -> Result<Option<Linear>, ModelError> {
        let Some(info) = self.info(name) else {
            return Ok(None);
        };
        self.check_dims(info, &[in_dim, out_dim])?;
        if matches!(
            info.ty,
            GgmlType::I8
                | GgmlType::I16
                | GgmlType::I32
                | GgmlType::I64
                | GgmlType::F64
                | GgmlType::Q8K
                | GgmlType::Q8_1
        ) {
            return Err(ModelError::UnsupportedWeightType {
                name: name.into(),
                ty: info.ty,
            });
        }
        Ok(Some(Linear {
            info: info.clone(),
            in_dim,
            out_dim,
        }))
    }

    fn linear(&self, name: &str, in_dim: usize, out_dim: usize) -> Result<Linear, ModelError> {
        self.opt_linear(name, in_dim, out_dim)?
            .ok_or_else(|| ModelError::MissingTensor { name: name.into() })
    }

    fn opt_vector(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>, ModelError> {
        let Some(info) = self.info(name) else {
            return Ok(None);
        };
        self.check_dims(info, &[len])?;
        let data = self.file.view(info).data;
        dequantize_to_vec(info.ty, data)
            .map(Some)
            .map_err(|source| ModelError::Quant {
                name: name.into(),
                source,
            })
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        self.opt_vector(name, len)?
            .ok_or_else(|| ModelError::MissingTensor { name: name.into() })
    }
}

impl Weights {
    /// Finds and checks every tensor the architecture needs (llama.cpp tensor names).
    pub fn load(file: &GgufFile, c: &ArchConfig) -> Result<Self, ModelError> {
        let l = Loader { file };
        let e = c.n_embd;
        let token_embd = l.linear("token_embd.weight", e, c.n_vocab)?;
        let output = l
            .opt_linear("output.weight", e, c.n_vocab)?
            .unwrap_or_else(|| token_embd.clone());
        let rope_freqs = l.opt_vector("rope_freqs.weight", c.rope.dim / 2)?;
        let mut layers = Vec::with_capacity(c.n_layer);
        for i in 0..c.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let (wq, wk, wv) = if c.fused_qkv {
                (
                    l.linear(&n("attn_qkv.weight"), e, c.q_dim() + c.k_dim() + c.v_dim())?,
                    None,
                    None,
                )
            } else {
                (
                    l.linear(&n("attn_q.weight"), e, c.q_dim())?,
                    Some(l.linear(&n("attn_k.weight"), e, c.k_dim())?),
                    Some(l.linear(&n("attn_v.weight"), e, c.v_dim())?),
                )
            };
            let (gate, up) = if c.fused_gate_up {
                (None, l.linear(&n("ffn_up.weight"), e, 2 * c.n_ff)?)
            } else {
                (
                    Some(l.linear(&n("ffn_gate.weight"), e, c.n_ff)?),
                    l.linear(&n("ffn_up.weight"), e, c.n_ff)?,
                )
            };
            let post = |name: &str| {
                if c.post_norms {
                    l.vector(&n(name), e).map(Some)
                } else {
                    Ok(None)
                }
            };
            let qk = |name: &str| {
                if c.qk_norm {
                    l.vector(&n(name), c.head_dim).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(LayerWeights {
                attn_norm: l.vector(&n("attn_norm.weight"), e)?,
                wq,
                wk,
                wv,
                bq: l.opt_vector(&n("attn_q.bias"), c.q_dim())?,
                bk: l.opt_vector(&n("attn_k.bias"), c.k_dim())?,
                bv: l.opt_vector(&n("attn_v.bias"), c.v_dim())?,
                q_norm: qk("attn_q_norm.weight")?,
                k_norm: qk("attn_k_norm.weight")?,
                wo: l.linear(&n("attn_output.weight"), c.n_head * c.head_dim_v, e)?,
                post_attn_norm: post("post_attention_norm.weight")?,
                ffn_norm: l.vector(&n("ffn_norm.weight"), e)?,
                gate,
                up,
                down: l.linear(&n("ffn_down.weight"), c.n_ff, e)?,
                post_ffn_norm: post("post_ffw_norm.weight")?,
            });
        }
        Ok(Self {
            token_embd,
            output_norm: l.vector("output_norm.weight", e)?,
            output,
            rope_freqs,
            layers,
        })
    }
}
