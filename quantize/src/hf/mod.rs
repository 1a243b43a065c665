//! HF model directories: read as a [`Source`] for `pith quantize`, written by
//! `pith convert --to hf` ([`crate::convert`]).
//!
//! An HF directory is presented as the all-F32 GGUF that `convert_hf_to_gguf.py --outtype
//! f32` would write: same tensor names, Gemma's norm weights +1, Llama's q/k rows
//! permuted for llama.cpp's rope, Gemma's embedding cut to the tokenizer's size, Llama 3's
//! `rope_freqs.weight` generated, the same hyperparameter and tokenizer metadata.

pub mod spm;
pub mod st;
pub mod tokenizer;
pub mod tokenizer_out;

use std::path::Path;

use pith_models::hf::{hf_to_gguf_name, llama_permute_rows, HfConfig, MetaValue};
use pith_models::Arch;
use pith_runtime::gguf::Value;
use pith_runtime::quant::GgmlType;

use crate::error::{Error, Result};
use crate::mixture::ModelShape;
use crate::pipeline::{Source, SrcTensor};
use st::{Shards, StTensor};

enum Data {
    St(StTensor),
    Owned(Vec<f32>),
}

/// How a tensor's values are changed on the way to GGUF.
#[derive(Clone, Copy, PartialEq)]
enum Fix {
    None,
    /// Gemma norms: `w + 1`.
    AddOne,
    /// Llama q/k: rows permuted with `n_head` heads.
    Permute(usize),
}

/// An HF directory as a [`Source`]; see the module docs.
pub struct HfSource {
    cfg: HfConfig,
    shards: Shards,
    meta: Vec<(String, Value)>,
    tensors: Vec<SrcTensor>,
    data: Vec<(Data, Fix)>,
}

fn meta_value(v: &MetaValue) -> Value {
    match v {
        MetaValue::U32(x) => Value::U32(*x),
        MetaValue::F32(x) => Value::F32(*x),
        MetaValue::Bool(x) => Value::Bool(*x),
        MetaValue::Str(s) => Value::String(s.clone()),
    }
}

impl HfSource {
    /// Opens `dir` (`config.json`, safetensors, tokenizer files). `name` sets
    /// `general.name` (default: the directory's name).
    pub fn open(dir: &Path, name: Option<&str>) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg_json = tokenizer::read_json(&cfg_path)?.ok_or_else(|| Error::Input {
            path: dir.to_path_buf(),
            reason: "no config.json".into(),
        })?;
        let cfg = HfConfig::from_json(&cfg_json)?;
        let arch_cfg = cfg.arch_config()?;
        let vocab = tokenizer::convert(dir, &cfg_json, cfg.vocab_size)?;
        let shards = Shards::open(dir)?;

        let mut names: Vec<&String> = shards.tensors.keys().collect();
        names.sort();
        let mut tensors = Vec::new();
        let mut data = Vec::new();
        for hf_name in names {
            let t = &shards.tensors[hf_name];
            if hf_name.ends_with("rotary_emb.inv_freq") {
                continue;
            }
            let Some(g) = hf_to_gguf_name(cfg.arch, hf_name) else {
                return Err(Error::Tensor {
                    name: hf_name.clone(),
                    reason: format!("no GGUF name for this {} tensor", cfg.arch),
                });
            };
            if g == "output.weight" && cfg.tie_word_embeddings {
                continue;
            }
            if st::dtype_size(t.dtype).is_none() {
                return Err(Error::Tensor {
                    name: hf_name.clone(),
                    reason: format!("dtype {:?} is not supported (f32, f16, bf16)", t.dtype),
                });
            }
            let mut dims: Vec<u64> = t.shape.iter().rev().map(|&d| d as u64).collect();
            if dims.is_empty() {
                dims.push(1);
            }
            if g == "token_embd.weight" && cfg.arch == Arch::Gemma3 && dims.len() == 2 {
                // Gemma3Model.modify_tensors drops rows past the tokenizer's size.
                let rows = dims[1] as usize;
                if vocab.n_tokens < rows {
                    dims[1] = vocab.n_tokens as u64;
                }
            }
            let fix = if cfg.arch == Arch::Gemma3 && g.ends_with("norm.weight") {
                Fix::AddOne
            } else if cfg.arch == Arch::Llama
                && (g.ends_with("attn_q.weight") || g.ends_with("attn_q.bias"))
            {
                Fix::Permute(cfg.n_head)
            } else if cfg.arch == Arch::Llama
                && (g.ends_with("attn_k.weight") || g.ends_with("attn_k.bias"))
            {
                Fix::Permute(cfg.n_head_kv)
            } else {
                Fix::None
            };
            check_shape(&arch_cfg, &g, &dims, vocab.n_tokens.max(cfg.vocab_size))?;
            tensors.push(SrcTensor {
                name: g,
                dims,
                ty: GgmlType::F32,
            });
            data.push((Data::St(t.clone()), fix));
        }
        if let Some(f) = &cfg.rope_freqs {
            tensors.push(SrcTensor {
                name: "rope_freqs.weight".into(),
                dims: vec![f.len() as u64],
                ty: GgmlType::F32,
            });
            data.push((Data::Owned(f.clone()), Fix::None));
        }
        for required in ["token_embd.weight", "output_norm.weight"] {
            if !tensors.iter().any(|t| t.name == required) {
                return Err(Error::MissingTensor {
                    name: required.into(),
                });
            }
        }
        for il in 0..cfg.n_layer {
            let n = format!("blk.{il}.attn_norm.weight");
            if !tensors.iter().any(|t| t.name == n) {
                return Err(Error::MissingTensor { name: n });
            }
        }

        let name = name.map(str::to_owned).unwrap_or_else(|| {
            dir.canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|s| s.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "model".into())
        });
        let mut meta = vec![
            (
                "general.architecture".to_string(),
                Value::String(cfg.arch.gguf_name().into()),
            ),
            ("general.type".into(), Value::String("model".into())),
            ("general.name".into(), Value::String(name)),
        ];
        meta.extend(cfg.metadata.iter().map(|(k, v)| (k.clone(), meta_value(v))));
        if cfg.arch == Arch::Gemma3
            && !vocab
                .metadata
                .iter()
                .any(|(k, _)| k.ends_with("add_space_prefix"))
        {
            // Gemma3Model.set_vocab: add_space_prefix False with a SentencePiece model.
            if dir.join("tokenizer.model").is_file() {
                meta.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)));
            }
        }
        meta.extend(vocab.metadata);
        Ok(Self {
            cfg,
            shards,
            meta,
            tensors,
            data,
        })
    }

    /// The interpreted `config.json`.
    pub fn config(&self) -> &HfConfig {
        &self.cfg
    }
}

/// Checks a tensor's shape against `config.json` (ggml dims).
fn check_shape(
    c: &pith_models::ArchConfig,
    name: &str,
    dims: &[u64],
    n_vocab: usize,
) -> Result<()> {
    let stem = name
        .strip_prefix("blk.")
        .and_then(|r| r.split_once('.'))
        .map_or(name, |(_, s)| s);
    let e = c.n_embd as u64;
    let expected: Option<Vec<u64>> = match stem {
        "attn_q.weight" => Some(vec![e, c.q_dim() as u64]),
        "attn_k.weight" => Some(vec![e, c.k_dim() as u64]),
        "attn_v.weight" => Some(vec![e, c.v_dim() as u64]),
        "attn_output.weight" => Some(vec![c.q_dim() as u64, e]),
        "attn_qkv.weight" => Some(vec![e, (c.q_dim() + c.k_dim() + c.v_dim()) as u64]),
        "ffn_gate.weight" => Some(vec![e, c.n_ff as u64]),
        "ffn_up.weight" if c.fused_gate_up => Some(vec![e, 2 * c.n_ff as u64]),
        "ffn_up.weight" => Some(vec![e, c.n_ff as u64]),
        "ffn_down.weight" => Some(vec![c.n_ff as u64, e]),
        "attn_norm.weight"
        | "ffn_norm.weight"
        | "output_norm.weight"
        | "post_attention_norm.weight"
        | "post_ffw_norm.weight" => Some(vec![e]),
        "attn_q_norm.weight" | "attn_k_norm.weight" => Some(vec![c.head_dim as u64]),
        _ => None,
    };
    let bad = |expected: Vec<u64>| Error::ShapeMismatch {
        name: name.into(),
        expected,
        actual: dims.to_vec(),
    };
    if let Some(x) = expected {
        if x != dims {
            return Err(bad(x));
        }
    }
    if (name == "token_embd.weight" || name == "output.weight")
        && (dims.len() != 2 || dims[0] != e || dims[1] as usize > n_vocab.max(c.n_vocab))
    {
        return Err(bad(vec![e, c.n_vocab as u64]));
    }
    Ok(())
}

impl Source for HfSource {
    fn metadata(&self) -> Vec<(String, Value)> {
        self.meta.clone()
    }
    fn tensors(&self) -> &[SrcTensor] {
        &self.tensors
    }
    fn shape(&self) -> ModelShape {
        ModelShape {
            n_layer: self.cfg.n_layer,
            n_head: self.cfg.n_head,
            n_head_kv: self.cfg.n_head_kv,
        }
    }
    fn raw(&self, _i: usize) -> Option<&[u8]> {
        None
    }
    fn rows_f32(&self, i: usize, row0: usize, out: &mut [f32]) -> Result<()> {
        let t = &self.tensors[i];
        let row_len = t.row_len();
        let n = out.len() / row_len;
        let (data, fix) = &self.data[i];
        let err = |reason: String| Error::Tensor {
            name: t.name.clone(),
            reason,
        };
        match data {
            Data::Owned(v) => out.copy_from_slice(&v[row0 * row_len..(row0 + n) * row_len]),
            Data::St(st_t) => {
                let w = st::dtype_size(st_t.dtype).unwrap_or(4);
                let bytes = self.shards.bytes(st_t);
                match fix {
                    Fix::Permute(n_head) if t.dims.len() >= 2 => {
                        let perm = llama_permute_rows(t.n_rows(), *n_head);
                        for (k, o) in out.chunks_exact_mut(row_len).enumerate() {
                            let r = perm[row0 + k];
                            st::to_f32(
                                st_t.dtype,
                                &bytes[r * row_len * w..(r + 1) * row_len * w],
                                o,
                            )
                            .map_err(err)?;
                        }
                    }
                    Fix::Permute(n_head) => {
                        // A bias: one row of `rows` elements.
                        let mut tmp = vec![0f32; row_len];
                        st::to_f32(st_t.dtype, bytes, &mut tmp).map_err(err)?;
                        let perm = llama_permute_rows(row_len, *n_head);
                        for (o, &p) in out.iter_mut().zip(&perm) {
                            *o = tmp[p];
                        }
                    }
                    _ => {
                        let b = &bytes[row0 * row_len * w..(row0 + n) * row_len * w];
                        st::to_f32(st_t.dtype, b, out).map_err(err)?;
                        if *fix == Fix::AddOne {
                            out.iter_mut().for_each(|x| *x += 1.0);
                        }
                    }
                }
            }
        }
        Ok(())
    }
    fn release_rows(&self, i: usize, row0: usize, n_rows: usize) {
        if let (Data::St(t), fix) = &self.data[i] {
            if matches!(fix, Fix::Permute(_)) {
                // Rows are read out of order; drop the whole tensor at the end.
                if row0 + n_rows == self.tensors[i].n_rows() {
                    self.shards.release(t, 0, t.end - t.start);
                }
                return;
            }
            let w = st::dtype_size(t.dtype).unwrap_or(4);
            let rb = self.tensors[i].row_len() * w;
            self.shards.release(t, row0 * rb, (row0 + n_rows) * rb);
        }
    }
}
