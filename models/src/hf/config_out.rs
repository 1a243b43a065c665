//! `ArchConfig` → HF `config.json` (for `pith convert --to hf`).

use serde_json::{json, Value as Json};

use crate::arch::{Arch, ArchConfig};

/// An HF `config.json` for `cfg` (the inverse of [`super::HfConfig::from_json`]), loadable by
/// transformers. `tied`: whether the model has no separate `lm_head`.
pub fn hf_config_json(cfg: &ArchConfig, tied: bool, special: &SpecialIds, dtype: &str) -> Json {
    let mut j = json!({
        "vocab_size": cfg.n_vocab,
        "hidden_size": cfg.n_embd,
        "intermediate_size": cfg.n_ff,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_head_kv,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.context_length,
        "rms_norm_eps": cfg.rms_eps,
        "rope_theta": cfg.rope.base,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype,
        "dtype": dtype,
        "attention_bias": false,
        "attention_dropout": 0.0,
        "use_cache": true,
        "initializer_range": 0.02,
    });
    let o = j.as_object_mut().expect("object literal");
    for (k, v) in [
        ("bos_token_id", special.bos),
        ("eos_token_id", special.eos),
        ("pad_token_id", special.pad),
    ] {
        if let Some(v) = v {
            o.insert(k.into(), json!(v));
        }
    }
    match cfg.arch {
        Arch::Gemma3 => {
            o.insert("architectures".into(), json!(["Gemma3ForCausalLM"]));
            o.insert("model_type".into(), json!("gemma3_text"));
            o.insert("hidden_activation".into(), json!("gelu_pytorch_tanh"));
            o.insert("query_pre_attn_scalar".into(), json!(cfg.head_dim));
            o.insert("rope_local_base_freq".into(), json!(cfg.rope.base_swa));
            o.insert(
                "rope_parameters".into(),
                json!({
                    "full_attention": {"rope_type": "default", "rope_theta": cfg.rope.base},
                    "sliding_attention": {"rope_type": "default", "rope_theta": cfg.rope.base_swa},
                }),
            );
            let layer_types: Vec<&str> = (0..cfg.n_layer)
                .map(|il| {
                    if cfg.is_swa(il) {
                        "sliding_attention"
                    } else {
                        "full_attention"
                    }
                })
                .collect();
            o.insert("layer_types".into(), json!(layer_types));
            o.insert(
                "sliding_window".into(),
                json!(cfg.sliding_window.unwrap_or(cfg.context_length)),
            );
            o.insert(
                "final_logit_softcapping".into(),
                json!(cfg.final_logit_softcap),
            );
            o.insert("attn_logit_softcapping".into(), Json::Null);
        }
        Arch::Llama => {
            o.insert("architectures".into(), json!(["LlamaForCausalLM"]));
            o.insert("model_type".into(), json!("llama"));
            o.insert("hidden_act".into(), json!("silu"));
            o.insert("mlp_bias".into(), json!(false));
        }
        Arch::Qwen2 => {
            o.insert("architectures".into(), json!(["Qwen2ForCausalLM"]));
            o.insert("model_type".into(), json!("qwen2"));
            o.insert("hidden_act".into(), json!("silu"));
            o.insert("use_sliding_window".into(), json!(false));
        }
        Arch::Qwen3 => {
            o.insert("architectures".into(), json!(["Qwen3ForCausalLM"]));
            o.insert("model_type".into(), json!("qwen3"));
            o.insert("hidden_act".into(), json!("silu"));
        }
        Arch::Phi3 => {
            o.insert("architectures".into(), json!(["Phi3ForCausalLM"]));
            o.insert("model_type".into(), json!("phi3"));
            o.insert("hidden_act".into(), json!("silu"));
            o.insert(
                "original_max_position_embeddings".into(),
                json!(cfg.context_length),
            );
            o.insert(
                "partial_rotary_factor".into(),
                json!(cfg.rope.dim as f64 * cfg.n_head as f64 / cfg.n_embd as f64),
            );
            o.insert("sliding_window".into(), Json::Null);
        }
    }
    if cfg.rope.freq_scale != 1.0 {
        o.insert(
            "rope_scaling".into(),
            json!({"rope_type": "linear", "type": "linear", "factor": 1.0 / cfg.rope.freq_scale}),
        );
    }
    j
}

/// Special token ids written into `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}
