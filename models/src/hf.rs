//! Hugging Face model directories ⇄ GGUF: hyperparameters and tensor names.
//!
//! [`HfConfig::from_json`] reads a `config.json` the way llama.cpp's
//! `convert_hf_to_gguf.py` does (classes `Gemma3Model`, `LlamaModel`, `Qwen2Model`,
//! `Qwen3Model`, `Phi3MiniModel` and their base `TextModel.set_gguf_parameters`) and
//! yields the GGUF metadata under llama.cpp's key names. [`hf_config_json`] goes the
//! other way for `pith convert --to hf`. [`hf_to_gguf_name`] / [`gguf_to_hf_name`] map
//! tensor names (`model.layers.3.self_attn.q_proj.weight` ⇄ `blk.3.attn_q.weight`).

use serde_json::{Map, Value as Json};

use crate::arch::{Arch, ArchConfig, ArchError};
use crate::Metadata;

mod config_out;
mod names;

pub use config_out::{hf_config_json, SpecialIds};
pub use names::{gguf_to_hf_name, hf_to_gguf_name, llama_permute_rows};

/// Errors reading an HF `config.json`.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum HfError {
    #[error("config.json: 'architectures' names no supported model ({found:?}); pith supports Gemma3ForCausalLM, LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Phi3ForCausalLM")]
    UnsupportedArch { found: Vec<String> },
    #[error("config.json: key '{key}' is missing or is not a {expected}")]
    MissingKey { key: String, expected: &'static str },
    #[error("config.json: key '{key}' has an invalid value {value}: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: &'static str,
    },
    #[error("config.json: {0}")]
    Arch(#[from] ArchError),
}

/// A metadata value as the converter writes it (the GGUF types llama.cpp uses for
/// hyperparameters).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
}

/// An HF `config.json`, interpreted.
#[derive(Debug, Clone, PartialEq)]
pub struct HfConfig {
    pub arch: Arch,
    /// The HF class name (`architectures[0]`).
    pub hf_arch: String,
    /// `<arch>.*` hyperparameters under llama.cpp's key names, in the converter's order.
    pub metadata: Vec<(String, MetaValue)>,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// `vocab_size` from the config (rows of the embedding; may exceed the tokenizer's).
    pub vocab_size: usize,
    /// `tie_word_embeddings` (default true for Gemma, false otherwise, as transformers).
    pub tie_word_embeddings: bool,
    /// Llama 3 `rope_freqs.weight` factors (`LlamaModel.generate_extra_tensors`), if the
    /// config asks for `rope_type: llama3`.
    pub rope_freqs: Option<Vec<f32>>,
}

fn get<'a>(c: &'a Map<String, Json>, keys: &[&str]) -> Option<&'a Json> {
    keys.iter().find_map(|k| c.get(*k).filter(|v| !v.is_null()))
}

fn req_usize(c: &Map<String, Json>, keys: &[&str]) -> Result<usize, HfError> {
    match get(c, keys) {
        Some(v) => match v.as_u64() {
            Some(n) if n > 0 && n <= 1 << 31 => Ok(n as usize),
            _ => Err(HfError::BadValue {
                key: keys[0].into(),
                value: v.to_string(),
                reason: "must be an integer between 1 and 2^31",
            }),
        },
        None => Err(HfError::MissingKey {
            key: keys[0].into(),
            expected: "positive integer",
        }),
    }
}

fn opt_usize(c: &Map<String, Json>, keys: &[&str]) -> Result<Option<usize>, HfError> {
    if get(c, keys).is_none() {
        return Ok(None);
    }
    req_usize(c, keys).map(Some)
}

fn opt_f64(c: &Map<String, Json>, keys: &[&str]) -> Result<Option<f64>, HfError> {
    match get(c, keys) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(HfError::BadValue {
                key: keys[0].into(),
                value: v.to_string(),
                reason: "must be a finite number",
            }),
        },
    }
}

/// The HF class names pith reads, with their GGUF architecture.
pub const HF_ARCHS: [(&str, Arch); 7] = [
    ("Gemma3ForCausalLM", Arch::Gemma3),
    ("Gemma3TextModel", Arch::Gemma3),
    ("LlamaForCausalLM", Arch::Llama),
    ("MistralForCausalLM", Arch::Llama),
    ("Qwen2ForCausalLM", Arch::Qwen2),
    ("Qwen3ForCausalLM", Arch::Qwen3),
    ("Phi3ForCausalLM", Arch::Phi3),
];

impl HfConfig {
    /// Interprets a parsed `config.json`.
    pub fn from_json(root: &Json) -> Result<Self, HfError> {
        let mut c = root.as_object().cloned().ok_or(HfError::MissingKey {
            key: "(root)".into(),
            expected: "JSON object",
        })?;
        // TextModel: text_config is merged into the root.
        if let Some(Json::Object(tc)) = c.get("text_config").cloned() {
            c.extend(tc);
        }
        let archs: Vec<String> = c
            .get("architectures")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let (hf_arch, arch) = archs
            .iter()
            .find_map(|a| HF_ARCHS.iter().find(|(n, _)| n == a))
            .map(|&(n, a)| (n.to_string(), a))
            .or_else(|| match c.get("model_type").and_then(Json::as_str) {
                Some("gemma3_text") => Some(("Gemma3ForCausalLM".into(), Arch::Gemma3)),
                _ => None,
            })
            .ok_or(HfError::UnsupportedArch { found: archs })?;

        let n_layer = req_usize(
            &c,
            &["num_hidden_layers", "n_layers", "n_layer", "num_layers"],
        )?;
        let n_embd = req_usize(&c, &["hidden_size", "n_embd", "dim"])?;
        let n_ff = req_usize(&c, &["intermediate_size", "n_inner", "hidden_dim"])?;
        let gemma = arch == Arch::Gemma3;
        let n_head = match opt_usize(&c, &["num_attention_heads", "n_head", "n_heads"])? {
            Some(n) => n,
            None if gemma => 8,
            None => req_usize(&c, &["num_attention_heads"])?,
        };
        let n_head_kv = match opt_usize(&c, &["num_key_value_heads", "n_kv_heads"])? {
            Some(n) => n,
            None if gemma => 4,
            None => n_head,
        };
        let head_dim = match opt_usize(&c, &["head_dim"])? {
            Some(d) => d,
            None if gemma => 256,
            None => n_embd / n_head,
        };
        let vocab_size = req_usize(&c, &["vocab_size"])?;
        let tie_word_embeddings = c
            .get("tie_word_embeddings")
            .and_then(Json::as_bool)
            .unwrap_or(gemma);

        // rope parameters as TextModel.__init__ gathers them.
        let rope_params: Map<String, Json> = get(&c, &["rope_parameters", "rope_scaling"])
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        let full = rope_params
            .get("full_attention")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_else(|| rope_params.clone());
        let rope_theta = match full.get("rope_theta").and_then(Json::as_f64) {
            Some(t) => Some(t),
            None => opt_f64(&c, &["global_rope_theta", "rope_theta", "rotary_emb_base"])?,
        };
        let local_theta = match rope_params
            .get("sliding_attention")
            .and_then(|s| s.get("rope_theta"))
            .and_then(Json::as_f64)
        {
            Some(t) => Some(t),
            None => opt_f64(&c, &["local_rope_theta", "rope_local_base_freq"])?,
        };
        let rope_type = full
            .get("rope_type")
            .or_else(|| full.get("type"))
            .and_then(Json::as_str)
            .map(str::to_ascii_lowercase);

        let p = arch.gguf_name();
        let mut m: Vec<(String, MetaValue)> = Vec::new();
        let mut put = |k: &str, v: MetaValue| {
            let key = format!("{p}.{k}");
            if let Some(e) = m.iter_mut().find(|(kk, _)| *kk == key) {
                e.1 = v;
            } else {
                m.push((key, v));
            }
        };
        let u = |n: usize| MetaValue::U32(n as u32);
        let ctx = opt_usize(&c, &["max_position_embeddings", "n_ctx", "n_positions"])?;
        let rms_eps = opt_f64(&c, &["rms_norm_eps", "norm_eps"])?;

        if arch == Arch::Phi3 {
            let max_pos = req_usize(&c, &["max_position_embeddings", "n_positions"])?;
            let orig = match full
                .get("original_max_position_embeddings")
                .and_then(Json::as_u64)
            {
                Some(o) => o as usize,
                None => req_usize(&c, &["original_max_position_embeddings"])?,
            };
            let rot_pct = full
                .get("partial_rotary_factor")
                .and_then(Json::as_f64)
                .or(opt_f64(&c, &["partial_rotary_factor"])?)
                .unwrap_or(1.0);
            put("context_length", u(max_pos));
            put("rope.scaling.original_context_length", u(orig));
            put("embedding_length", u(n_embd));
            put("feed_forward_length", u(n_ff));
            put("block_count", u(n_layer));
            put("attention.head_count", u(n_head));
            put("attention.head_count_kv", u(n_head_kv));
            let eps = rms_eps.ok_or(HfError::MissingKey {
                key: "rms_norm_eps".into(),
                expected: "number",
            })?;
            put(
                "attention.layer_norm_rms_epsilon",
                MetaValue::F32(eps as f32),
            );
            put(
                "rope.dimension_count",
                u((rot_pct * n_embd as f64) as usize / n_head),
            );
            let theta = rope_theta.ok_or(HfError::MissingKey {
                key: "rope_theta".into(),
                expected: "number",
            })?;
            put("rope.freq_base", MetaValue::F32(theta as f32));
            let sw = opt_usize(&c, &["sliding_window"])?.unwrap_or(0);
            put("attention.sliding_window", u(sw));
        } else {
            // TextModel.set_gguf_parameters
            put("block_count", u(n_layer));
            if let Some(ctx) = ctx {
                put("context_length", u(ctx));
            }
            put("embedding_length", u(n_embd));
            put("feed_forward_length", u(n_ff));
            if get(&c, &["num_attention_heads", "n_head", "n_heads"]).is_some() {
                put("attention.head_count", u(n_head));
            }
            if get(&c, &["num_key_value_heads", "n_kv_heads"]).is_some() {
                put("attention.head_count_kv", u(n_head_kv));
            }
            if rope_type.as_deref() == Some("linear") {
                if let Some(f) = full.get("factor").and_then(Json::as_f64) {
                    put("rope.scaling.type", MetaValue::Str("linear".into()));
                    put("rope.scaling.factor", MetaValue::F32(f as f32));
                }
            }
            if let Some(t) = rope_theta {
                put("rope.freq_base", MetaValue::F32(t as f32));
            }
            if let Some(t) = local_theta {
                put("rope.freq_base_swa", MetaValue::F32(t as f32));
            }
            if let Some(e) = rms_eps {
                put("attention.layer_norm_rms_epsilon", MetaValue::F32(e as f32));
            }
            if get(&c, &["head_dim"]).is_some() {
                put("attention.key_length", u(head_dim));
                put("attention.value_length", u(head_dim));
            }
            match arch {
                Arch::Gemma3 => {
                    put("context_length", u(ctx.unwrap_or(131072)));
                    put("attention.head_count", u(n_head));
                    put(
                        "attention.layer_norm_rms_epsilon",
                        MetaValue::F32(rms_eps.unwrap_or(1e-6) as f32),
                    );
                    put("attention.key_length", u(head_dim));
                    put("attention.value_length", u(head_dim));
                    put(
                        "rope.freq_base",
                        MetaValue::F32(rope_theta.unwrap_or(1_000_000.0) as f32),
                    );
                    if c.get("attn_logit_softcapping")
                        .is_some_and(|v| !v.is_null())
                    {
                        return Err(HfError::BadValue {
                            key: "attn_logit_softcapping".into(),
                            value: c["attn_logit_softcapping"].to_string(),
                            reason: "Gemma 3 has no attention soft-capping",
                        });
                    }
                    if let Some(cap) = opt_f64(&c, &["final_logit_softcapping"])? {
                        if cap != 0.0 {
                            put("final_logit_softcapping", MetaValue::F32(cap as f32));
                        }
                    }
                    if c.get("sliding_window_pattern").and_then(Json::as_u64) != Some(1) {
                        put(
                            "attention.sliding_window",
                            u(req_usize(&c, &["sliding_window"])?),
                        );
                    }
                    put("attention.head_count_kv", u(n_head_kv));
                }
                Arch::Llama => {
                    put("vocab_size", u(vocab_size));
                    put("rope.dimension_count", u(head_dim));
                }
                _ => {}
            }
        }

        let rope_freqs = if arch == Arch::Llama && rope_type.as_deref() == Some("llama3") {
            let f = |k: &str, d: f64| full.get(k).and_then(Json::as_f64).unwrap_or(d);
            Some(llama3_rope_factors(
                rope_theta.unwrap_or(10_000.0),
                head_dim,
                f("factor", 8.0),
                f("low_freq_factor", 1.0),
                f("high_freq_factor", 4.0),
                f("original_max_position_embeddings", 8192.0),
            ))
        } else {
            None
        };

        Ok(HfConfig {
            arch,
            hf_arch,
            metadata: m,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            vocab_size,
            tie_word_embeddings,
            rope_freqs,
        })
    }

    /// The [`ArchConfig`] of this model for HF-layout weights: Gemma's norms add 1 at run
    /// time (`norm_weight_offset` 1), Llama's q/k are not permuted.
    pub fn arch_config(&self) -> Result<ArchConfig, HfError> {
        let mut a = ArchConfig::from_metadata(&MetaView(self))?;
        if self.arch == Arch::Gemma3 {
            a.norm_weight_offset = 1.0;
        }
        Ok(a)
    }
}

/// `LlamaModel.generate_extra_tensors` for `rope_type: llama3` (computed in f32 as torch).
pub fn llama3_rope_factors(
    base: f64,
    dim: usize,
    factor: f64,
    low_freq_factor: f64,
    high_freq_factor: f64,
    old_context_len: f64,
) -> Vec<f32> {
    let low_wavelen = old_context_len / low_freq_factor;
    let high_wavelen = old_context_len / high_freq_factor;
    (0..dim)
        .step_by(2)
        .map(|i| {
            let exp = (i as f32) / (dim as f32);
            let freq = 1.0f32 / (base as f32).powf(exp);
            let wavelen = 2.0 * std::f64::consts::PI / freq as f64;
            if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                factor as f32
            } else {
                let smooth = (old_context_len / wavelen - low_freq_factor)
                    / (high_freq_factor - low_freq_factor);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}

struct MetaView<'a>(&'a HfConfig);

impl Metadata for MetaView<'_> {
    fn meta_int(&self, key: &str) -> Option<i64> {
        self.0.metadata.iter().find_map(|(k, v)| match v {
            MetaValue::U32(n) if k == key => Some(*n as i64),
            _ => None,
        })
    }
    fn meta_float(&self, key: &str) -> Option<f64> {
        self.0.metadata.iter().find_map(|(k, v)| match v {
            MetaValue::F32(x) if k == key => Some(*x as f64),
            MetaValue::U32(n) if k == key => Some(*n as f64),
            _ => None,
        })
    }
    fn meta_str(&self, key: &str) -> Option<&str> {
        if key == "general.architecture" {
            return Some(self.0.arch.gguf_name());
        }
        self.0.metadata.iter().find_map(|(k, v)| match v {
            MetaValue::Str(s) if k == key => Some(s.as_str()),
            _ => None,
        })
    }
    fn meta_bool(&self, key: &str) -> Option<bool> {
        self.0.metadata.iter().find_map(|(k, v)| match v {
            MetaValue::Bool(b) if k == key => Some(*b),
            _ => None,
        })
    }
    fn meta_int_array(&self, _: &str) -> Option<Vec<i64>> {
        None
    }
    fn meta_float_array(&self, _: &str) -> Option<Vec<f32>> {
        None
    }
    fn meta_array_len(&self, key: &str) -> Option<usize> {
        (key == "tokenizer.ggml.tokens").then_some(self.0.vocab_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        for arch in Arch::ALL {
            for g in [
                "token_embd.weight",
                "output.weight",
                "output_norm.weight",
                "blk.3.attn_q.weight",
                "blk.3.attn_q.bias",
                "blk.0.ffn_down.weight",
                "blk.1.attn_norm.weight",
                "blk.1.ffn_norm.weight",
            ] {
                let h = gguf_to_hf_name(arch, g).unwrap();
                assert_eq!(hf_to_gguf_name(arch, &h).as_deref(), Some(g), "{arch} {g}");
            }
        }
        assert_eq!(
            hf_to_gguf_name(
                Arch::Gemma3,
                "model.layers.2.post_attention_layernorm.weight"
            )
            .unwrap(),
            "blk.2.post_attention_norm.weight"
        );
        assert_eq!(
            hf_to_gguf_name(Arch::Phi3, "model.layers.2.mlp.gate_up_proj.weight").unwrap(),
            "blk.2.ffn_up.weight"
        );
        assert_eq!(
            hf_to_gguf_name(Arch::Llama, "model.layers.0.self_attn.rotary_emb.inv_freq"),
            None
        );
    }

    #[test]
    fn permute_matches_numpy_reshape_swapaxes() {
        // 2 heads of 4 rows: per head [0,1,2,3] → [0,2,1,3].
        assert_eq!(llama_permute_rows(8, 2), vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }

    #[test]
    fn llama3_factors_match_readme_example() {
        // tests/golden/arch/README.md: base 5e5, head_dim 32 → 8 ones, one smoothed, 7 eights.
        let f = llama3_rope_factors(5e5, 32, 8.0, 1.0, 4.0, 8192.0);
        assert_eq!(f.len(), 16);
        assert!(f[..8].iter().all(|&x| x == 1.0));
        assert!(f[8] > 1.0 && f[8] < 8.0);
        assert!(f[9..].iter().all(|&x| x == 8.0));
    }
}
