//! `ArchConfig`: the handful of switches that distinguish the supported decoders.
//!
//! Gemma 3, Llama 2/3, Qwen 2/3 and Phi-3 are one pre-norm transformer decoder that
//! differs in norm placement, q/k norms, sliding-window layers, the FFN activation,
//! fused projections, biases, rope style and a few scales (STYLE.md §6). The runtime's
//! forward pass and the trainer's graph are both written once over this description.
//!
//! Semantics follow llama.cpp (`src/models/*.cpp`, `llama-hparams.cpp`), which is the
//! reference implementation for GGUF files.

use crate::Metadata;

/// A supported decoder architecture (the GGUF `general.architecture` string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Arch {
    Gemma3,
    Llama,
    Qwen2,
    Qwen3,
    Phi3,
}

impl Arch {
    /// All supported architectures.
    pub const ALL: [Arch; 5] = [
        Arch::Gemma3,
        Arch::Llama,
        Arch::Qwen2,
        Arch::Qwen3,
        Arch::Phi3,
    ];

    /// Parses a GGUF `general.architecture` value.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.gguf_name() == name)
    }

    /// The GGUF `general.architecture` value, also the metadata key prefix.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Gemma3 => "gemma3",
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Phi3 => "phi3",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.gguf_name())
    }
}

/// Errors building an [`ArchConfig`] from metadata.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ArchError {
    #[error("unsupported architecture '{0}' (pith supports gemma3, llama, qwen2, qwen3, phi3)")]
    Unsupported(String),
    #[error("metadata key '{key}' is missing or is not a {expected}")]
    MissingKey { key: String, expected: &'static str },
    #[error("metadata key '{key}' has an invalid value {value}: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: &'static str,
    },
}

/// How rotary embeddings pair up dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(x[2i], x[2i+1])` (`LLAMA_ROPE_TYPE_NORM`; Llama GGUFs, whose
    /// converter permutes q/k into this layout).
    Normal,
    /// Halves `(x[i], x[i + d/2])` (`LLAMA_ROPE_TYPE_NEOX`; Gemma, Qwen, Phi-3).
    Neox,
}

/// The FFN gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) * up` (SwiGLU): Llama, Qwen, Phi-3.
    Silu,
    /// `gelu_tanh(gate) * up` (GeGLU): Gemma.
    GeluTanh,
}

/// Rotary position embedding parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeConfig {
    pub style: RopeStyle,
    /// Rotated dimensions per head (`rope.dimension_count`, default: the head size).
    pub dim: usize,
    /// Frequency base of global layers (`rope.freq_base`, default 10000).
    pub base: f32,
    /// Frequency base of sliding-window layers (`rope.freq_base_swa`; Gemma 3 default
    /// 10000, as llama.cpp).
    pub base_swa: f32,
    /// Position scale, `1 / rope.scaling.factor` for linear scaling (default 1).
    pub freq_scale: f32,
}

/// Hyperparameters and architecture switches of one decoder model.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchConfig {
    pub arch: Arch,
    /// `general.name`, if present.
    pub name: Option<String>,
    pub n_layer: usize,
    /// Model width (`embedding_length`).
    pub n_embd: usize,
    /// FFN hidden width (`feed_forward_length`).
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Per-head key/query size (`attention.key_length`, default `n_embd / n_head`).
    pub head_dim: usize,
    /// Per-head value size (`attention.value_length`, default `head_dim`).
    pub head_dim_v: usize,
    /// Vocabulary size (`vocab_size` key, else the tokenizer's token count).
    pub n_vocab: usize,
    /// Training context length (`context_length`).
    pub context_length: usize,
    /// RMS norm epsilon (`attention.layer_norm_rms_epsilon`).
    pub rms_eps: f32,
    pub rope: RopeConfig,
    /// Sliding-window size in tokens for the layers marked in `swa_layers`.
    pub sliding_window: Option<usize>,
    /// Per layer: true when the layer uses sliding-window attention (and `rope.base_swa`).
    pub swa_layers: Vec<bool>,
    pub activation: Activation,
    /// Extra RMS norms after attention and after the FFN (Gemma's sandwich norms).
    pub post_norms: bool,
    /// Per-head RMS norm of q and k before rope (Gemma 3, Qwen 3).
    pub qk_norm: bool,
    /// Fused `attn_qkv` projection (Phi-3).
    pub fused_qkv: bool,
    /// `ffn_up` holds gate and up concatenated (Phi-3).
    pub fused_gate_up: bool,
    /// Input embeddings are multiplied by this (Gemma: √n_embd).
    pub embed_scale: Option<f32>,
    /// Scale applied to q before attention (`1/√head_dim` for all supported models).
    pub attn_scale: f32,
    /// `tanh` soft-capping of attention logits (`attn_logit_softcapping`).
    pub attn_logit_softcap: Option<f32>,
    /// `tanh` soft-capping of output logits (`final_logit_softcapping`).
    pub final_logit_softcap: Option<f32>,
    /// Added to RMS norm weights at run time. 0 for GGUF files (llama.cpp's converter
    /// already stores Gemma's `1 + w`); 1 for Gemma weights in HF layout.
    pub norm_weight_offset: f32,
}

struct Keys<'a> {
    meta: &'a dyn Metadata,
    prefix: &'static str,
}

impl Keys<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.prefix)
    }
    fn usize(&self, k: &str) -> Result<usize, ArchError> {
        let key = self.key(k);
        match self.meta.meta_int(&key) {
            Some(v) if v > 0 && v <= (1 << 31) => Ok(v as usize),
            Some(v) => Err(ArchError::BadValue {
                key,
                value: v.to_string(),
                reason: "must be between 1 and 2^31",
            }),
            None => Err(ArchError::MissingKey {
                key,
                expected: "positive integer",
            }),
        }
    }
    fn opt_usize(&self, k: &str) -> Result<Option<usize>, ArchError> {
        if self.meta.meta_int(&self.key(k)).is_none()
            && self.meta.meta_int_array(&self.key(k)).is_none()
        {
            return Ok(None);
        }
        self.usize(k).map(Some)
    }
    fn opt_f32(&self, k: &str) -> Result<Option<f32>, ArchError> {
        let key = self.key(k);
        match self.meta.meta_float(&key) {
            None => Ok(None),
            Some(v) if v.is_finite() => Ok(Some(v as f32)),
            Some(v) => Err(ArchError::BadValue {
                key,
                value: v.to_string(),
                reason: "must be finite",
            }),
        }
    }
}

impl ArchConfig {
    /// Reads the configuration from GGUF-style metadata (`general.architecture` and the
    /// `<arch>.*` keys), with llama.cpp's defaults where a key is optional.
    pub fn from_metadata(meta: &dyn Metadata) -> Result<Self, ArchError> {
        let arch_name =
            meta.meta_str("general.architecture")
                .ok_or_else(|| ArchError::MissingKey {
                    key: "general.architecture".into(),
                    expected: "string",
                })?;
        let arch = Arch::from_gguf_name(arch_name)
            .ok_or_else(|| ArchError::Unsupported(arch_name.into()))?;
        let k = Keys {
            meta,
            prefix: arch.gguf_name(),
        };

        let n_layer = k.usize("block_count")?;
        let n_embd = k.usize("embedding_length")?;
        let n_ff = k.usize("feed_forward_length")?;
        let n_head = k.usize("attention.head_count")?;
        let n_head_kv = k.opt_usize("attention.head_count_kv")?.unwrap_or(n_head);
        if n_head % n_head_kv != 0 {
            return Err(ArchError::BadValue {
                key: k.key("attention.head_count_kv"),
                value: n_head_kv.to_string(),
                reason: "must divide attention.head_count",
            });
        }
        let head_dim = match k.opt_usize("attention.key_length")? {
            Some(d) => d,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(ArchError::BadValue {
                    key: k.key("attention.head_count"),
                    value: n_head.to_string(),
                    reason: "must divide embedding_length when attention.key_length is absent",
                })
            }
        };
        let head_dim_v = k.opt_usize("attention.value_length")?.unwrap_or(head_dim);
        let n_vocab = match k.opt_usize("vocab_size")? {
            Some(v) => v,
            None => meta
                .meta_array_len("tokenizer.ggml.tokens")
                .filter(|&n| n > 0)
                .ok_or_else(|| ArchError::MissingKey {
                    key: format!("{}.vocab_size or tokenizer.ggml.tokens", arch),
                    expected: "vocabulary",
                })?,
        };
        let context_length = k.opt_usize("context_length")?.unwrap_or(2048);
        let rms_eps = k
            .opt_f32("attention.layer_norm_rms_epsilon")?
            .unwrap_or(1e-5);
        if rms_eps < 0.0 {
            return Err(ArchError::BadValue {
                key: k.key("attention.layer_norm_rms_epsilon"),
                value: rms_eps.to_string(),
                reason: "must be >= 0",
            });
        }

        let rope_dim = k.opt_usize("rope.dimension_count")?.unwrap_or(head_dim);
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(ArchError::BadValue {
                key: k.key("rope.dimension_count"),
                value: rope_dim.to_string(),
                reason: "must be even and at most the head size",
            });
        }
        let base = k.opt_f32("rope.freq_base")?.unwrap_or(10_000.0);
        let base_swa = k.opt_f32("rope.freq_base_swa")?.unwrap_or(10_000.0);
        let freq_scale = match meta.meta_str(&k.key("rope.scaling.type")) {
            None | Some("none") => 1.0,
            Some("linear") => match k.opt_f32("rope.scaling.factor")? {
                Some(f) if f > 0.0 => 1.0 / f,
                Some(f) => {
                    return Err(ArchError::BadValue { key: k.key("rope.scaling.factor"), value: f.to_string(), reason: "must be > 0" })
                }
                None => 1.0,
            },
            Some(other) => {
                return Err(ArchError::BadValue {
                    key: k.key("rope.scaling.type"),
                    value: other.into(),
                    reason: "only 'none' and 'linear' rope scaling are supported (Llama 3 scaling comes as the rope_freqs tensor)",
                })
            }
        };
        for (name, v) in [("rope.freq_base", base), ("rope.freq_base_swa", base_swa)] {
            if v <= 0.0 {
                return Err(ArchError::BadValue {
                    key: k.key(name),
                    value: v.to_string(),
                    reason: "must be > 0",
                });
            }
        }
        let style = if arch == Arch::Llama {
            RopeStyle::Normal
        } else {
            RopeStyle::Neox
        };

        // Sliding window: Gemma 3 only (llama.cpp disables Phi-3's SWA, and Qwen 2's
        // converter does not enable it).
        let (sliding_window, swa_layers) = if arch == Arch::Gemma3 {
            match k.opt_usize("attention.sliding_window")? {
                Some(w) => {
                    let layers =
                        match meta.meta_int_array(&k.key("attention.sliding_window_pattern")) {
                            Some(v) if v.len() == n_layer => v.iter().map(|&b| b != 0).collect(),
                            Some(v) => {
                                return Err(ArchError::BadValue {
                                    key: k.key("attention.sliding_window_pattern"),
                                    value: format!("array of {}", v.len()),
                                    reason: "must have one entry per layer",
                                })
                            }
                            None => {
                                // llama_hparams::set_swa_pattern(n_pattern, dense_first = false)
                                let n = k
                                    .opt_usize("attention.sliding_window_pattern")?
                                    .unwrap_or(6);
                                (0..n_layer).map(|il| il % n < n - 1).collect()
                            }
                        };
                    (Some(w), layers)
                }
                None => (None, vec![false; n_layer]),
            }
        } else {
            (None, vec![false; n_layer])
        };

        let gemma = arch == Arch::Gemma3;
        Ok(ArchConfig {
            arch,
            name: meta.meta_str("general.name").map(str::to_owned),
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            n_vocab,
            context_length,
            rms_eps,
            rope: RopeConfig {
                style,
                dim: rope_dim,
                base,
                base_swa,
                freq_scale,
            },
            sliding_window,
            swa_layers,
            activation: if gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            post_norms: gemma,
            qk_norm: matches!(arch, Arch::Gemma3 | Arch::Qwen3),
            fused_qkv: arch == Arch::Phi3,
            fused_gate_up: arch == Arch::Phi3,
            embed_scale: gemma.then(|| (n_embd as f32).sqrt()),
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            // llama.cpp applies attention soft-capping only to Gemma 2, which pith does
            // not support; Gemma 3 files never carry it.
            attn_logit_softcap: None,
            final_logit_softcap: k.opt_f32("final_logit_softcapping")?.filter(|&c| c > 0.0),
            norm_weight_offset: 0.0,
        })
    }

    /// Query width: `n_head * head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
    /// Key width: `n_head_kv * head_dim`.
    pub fn k_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
    /// Value width: `n_head_kv * head_dim_v`.
    pub fn v_dim(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }
    /// Whether layer `il` uses sliding-window attention.
    pub fn is_swa(&self, il: usize) -> bool {
        self.sliding_window.is_some() && self.swa_layers.get(il).copied().unwrap_or(false)
    }
    /// Rope frequency base of layer `il`.
    pub fn rope_base(&self, il: usize) -> f32 {
        if self.is_swa(il) {
            self.rope.base_swa
        } else {
            self.rope.base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Map(HashMap<String, String>);
    impl Metadata for Map {
        fn meta_int(&self, key: &str) -> Option<i64> {
            self.0.get(key)?.parse().ok()
        }
        fn meta_float(&self, key: &str) -> Option<f64> {
            self.0.get(key)?.parse().ok()
        }
        fn meta_str(&self, key: &str) -> Option<&str> {
            self.0.get(key).map(String::as_str)
        }
        fn meta_bool(&self, _: &str) -> Option<bool> {
            None
        }
        fn meta_int_array(&self, _: &str) -> Option<Vec<i64>> {
            None
        }
        fn meta_float_array(&self, _: &str) -> Option<Vec<f32>> {
            None
        }
        fn meta_array_len(&self, _: &str) -> Option<usize> {
            Some(1000)
        }
    }

    fn gemma_like() -> Map {
        let mut m = Map::default();
        for (k, v) in [
            ("general.architecture", "gemma3"),
            ("gemma3.block_count", "18"),
            ("gemma3.embedding_length", "640"),
            ("gemma3.feed_forward_length", "2048"),
            ("gemma3.attention.head_count", "4"),
            ("gemma3.attention.head_count_kv", "1"),
            ("gemma3.attention.key_length", "256"),
            ("gemma3.attention.sliding_window", "512"),
            ("gemma3.rope.freq_base", "1000000"),
        ] {
            m.0.insert(k.into(), v.into());
        }
        m
    }

    #[test]
    fn gemma3_swa_pattern_matches_llama_cpp() {
        let c = ArchConfig::from_metadata(&gemma_like()).unwrap();
        // llama.cpp: is_swa = il % 6 < 5 → layers 5, 11, 17 are global.
        let global: Vec<usize> = (0..18).filter(|&il| !c.is_swa(il)).collect();
        assert_eq!(global, vec![5, 11, 17]);
        assert_eq!(c.rope_base(0), 10_000.0);
        assert_eq!(c.rope_base(5), 1_000_000.0);
        assert_eq!(c.attn_scale, 1.0 / 16.0);
        assert_eq!(c.n_vocab, 1000);
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let mut m = gemma_like();
        m.0.insert("gemma3.attention.head_count_kv".into(), "3".into());
        assert!(matches!(
            ArchConfig::from_metadata(&m),
            Err(ArchError::BadValue { .. })
        ));
        let mut m = gemma_like();
        m.0.insert("general.architecture".into(), "mamba".into());
        assert_eq!(
            ArchConfig::from_metadata(&m),
            Err(ArchError::Unsupported("mamba".into()))
        );
        let mut m = gemma_like();
        m.0.remove("gemma3.block_count");
        assert!(matches!(
            ArchConfig::from_metadata(&m),
            Err(ArchError::MissingKey { .. })
        ));
    }
}
