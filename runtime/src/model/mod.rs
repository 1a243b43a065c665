//! The decoder: one forward pass for every architecture in [`pith_models::ArchConfig`]
//! (STYLE.md §6), reading weights from the memory-mapped GGUF, with a KV cache.

mod actq;
mod attention;
mod forward;
pub mod matmul;
pub mod ops;
mod scratch;
pub mod weights;

use std::sync::Arc;

use half::slice::HalfFloatSliceExt;

use pith_models::{ArchConfig, ArchError};

pub use forward::{Logits, MatmulObserver, SeqBatch};
pub use weights::{LayerWeights, Linear, Weights};

use crate::gguf::{GgufError, GgufFile};
use crate::quant::{GgmlType, QuantError};
use ops::Rope;

/// Errors loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{path}: {source}")]
    Arch { path: String, source: ArchError },
    #[error("tensor '{name}' is missing")]
    MissingTensor { name: String },
    #[error("tensor '{name}' has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor '{name}' has type {ty}, which cannot be used as a weight")]
    UnsupportedWeightType { name: String, ty: GgmlType },
    #[error("tensor '{name}': {source}")]
    Quant { name: String, source: QuantError },
    #[error("tensor '{name}': {source}")]
    Kernel {
        name: String,
        source: crate::kernels::KernelError,
    },
    #[error("token id {token} is out of range (vocabulary has {n_vocab} tokens)")]
    TokenOutOfRange { token: u32, n_vocab: usize },
    #[error("context is full: {needed} tokens needed, the context holds {n_ctx}")]
    ContextFull { needed: usize, n_ctx: usize },
    #[error("empty batch: at least one token is needed")]
    EmptyBatch,
    #[error("could not start the thread pool: {0}")]
    ThreadPool(String),
}

/// How the forward pass rounds intermediate values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Numerics {
    /// As llama.cpp's CPU backend (the default): activations are rounded to Q8_0/Q8_1/Q8_K
    /// (or f16/bf16) before each quantized (f16/bf16) matmul, and GELU goes through an
    /// f16 table, so logits track llama.cpp's.
    #[default]
    Ggml,
    /// Exact f32 activations against the dequantized weights: the reference that
    /// matches a float32 implementation such as Hugging Face transformers.
    Exact,
}

impl std::str::FromStr for Numerics {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ggml" => Ok(Numerics::Ggml),
            "exact" => Ok(Numerics::Exact),
            _ => Err(format!("unknown numerics '{s}' (expected ggml or exact)")),
        }
    }
}

/// Options for [`Model::load`].
#[derive(Debug, Clone, Default)]
pub struct ModelOptions {
    /// Worker threads for the forward pass. Default (`None`): the number of physical
    /// cores available to the process ([`crate::cpu::physical_cores`]).
    pub threads: Option<usize>,
    /// Rounding of intermediate values. Default: [`Numerics::Ggml`].
    pub numerics: Numerics,
}

/// A loaded model: the GGUF file, its configuration and the located weights.
pub struct Model {
    file: Arc<GgufFile>,
    config: ArchConfig,
    weights: Weights,
    /// Rope tables for global layers and for sliding-window layers.
    rope_global: Rope,
    rope_swa: Rope,
    numerics: Numerics,
    pool: rayon::ThreadPool,
    /// Activation buffers reused across forward calls.
    scratch: std::sync::Mutex<scratch::Scratch>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.file.path())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Builds the model over an open GGUF file. No weight is copied.
    pub fn load(file: Arc<GgufFile>, opts: &ModelOptions) -> Result<Self, ModelError> {
        let _span = tracing::debug_span!("model_load").entered();
        let config =
            ArchConfig::from_metadata(file.as_ref()).map_err(|source| ModelError::Arch {
                path: file.path().display().to_string(),
                source,
            })?;
        let weights = Weights::load(&file, &config)?;
        let r = &config.rope;
        let factors = weights.rope_freqs.as_deref();
        let rope_global = Rope::new(r.style, r.dim, r.base, r.freq_scale, factors);
        let rope_swa = Rope::new(r.style, r.dim, r.base_swa, r.freq_scale, factors);
        let threads = opts
            .threads
            .unwrap_or_else(crate::cpu::physical_cores)
            .max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("pith-worker-{i}"))
            .build()
            .map_err(|e| ModelError::ThreadPool(e.to_string()))?;
        Ok(Self {
            file,
            config,
            weights,
            rope_global,
            rope_swa,
            numerics: opts.numerics,
            pool,
            scratch: Default::default(),
        })
    }

    /// Opens `path` (memory-mapped) and loads the model.
    pub fn open(
        path: impl AsRef<std::path::Path>,
        opts: &ModelOptions,
    ) -> Result<Self, ModelError> {
        Self::load(Arc::new(GgufFile::open(path)?), opts)
    }

    pub fn config(&self) -> &ArchConfig {
        &self.config
    }
    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }
    pub fn weights(&self) -> &Weights {
        &self.weights
    }
    /// How this model rounds intermediate values.
    pub fn numerics(&self) -> Numerics {
        self.numerics
    }
    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// A KV cache for `n_ctx` positions (clamped to at least 1) with the default
    /// element type (f16).
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        self.new_cache_typed(n_ctx, KvType::default())
    }

    /// A KV cache for `n_ctx` positions of the given element type.
    pub fn new_cache_typed(&self, n_ctx: usize, kv_type: KvType) -> KvCache {
        KvCache::new(&self.config, n_ctx.max(1), kv_type)
    }
}

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// Keys and values stored as f16, as llama.cpp's default cache (the default).
    #[default]
    F16,
    /// Full f32 keys and values.
    F32,
}

impl KvType {
    /// Bytes per stored element.
    pub fn element_bytes(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }
}

impl std::str::FromStr for KvType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Ok(KvType::F16),
            "f32" => Ok(KvType::F32),
            _ => Err(format!("unknown KV cache type '{s}' (expected f16 or f32)")),
        }
    }
}

/// One layer's keys or values, `[n_ctx, width]` row-major by position.
#[derive(Debug, Clone)]
enum KvBuf {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
}

impl KvBuf {
    fn new(kv_type: KvType, len: usize) -> Self {
        match kv_type {
            KvType::F32 => KvBuf::F32(vec![0.0; len]),
            KvType::F16 => KvBuf::F16(vec![half::f16::ZERO; len]),
        }
    }

    /// Stores `src` at element offset `at` (rounding to f16 for an f16 cache).
    fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            KvBuf::F32(v) => v[at..at + src.len()].copy_from_slice(src),
            KvBuf::F16(v) => v[at..at + src.len()].convert_from_f32_slice(src),
        }
    }

    /// Converts `out.len()` values from element offset `at` to f32 into `out`.
    #[inline]
    fn read_into(&self, at: usize, out: &mut [f32]) {
        match self {
            KvBuf::F32(v) => out.copy_from_slice(&v[at..at + out.len()]),
            // half's slice conversion uses F16C/NEON when the CPU has it (run-time check).
            KvBuf::F16(v) => v[at..at + out.len()].convert_to_f32_slice(out),
        }
    }
}

/// Keys and values of every layer for positions `0..len`.
///
/// Layout per layer: `[n_ctx, n_head_kv · head_dim]`, row-major by position, in f16
/// (default, half the memory, as llama.cpp) or f32.
#[derive(Debug, Clone)]
pub struct KvCache {
    k: Vec<KvBuf>,
    v: Vec<KvBuf>,
    n_ctx: usize,
    len: usize,
    kv_type: KvType,
}

impl KvCache {
    fn new(c: &ArchConfig, n_ctx: usize, kv_type: KvType) -> Self {
        Self {
            k: (0..c.n_layer)
                .map(|_| KvBuf::new(kv_type, n_ctx * c.k_dim()))
                .collect(),
            v: (0..c.n_layer)
                .map(|_| KvBuf::new(kv_type, n_ctx * c.v_dim()))
                .collect(),
            n_ctx,
            len: 0,
            kv_type,
        }
    }
    /// Element type of the cache.
    pub fn kv_type(&self) -> KvType {
        self.kv_type
    }
    /// Positions filled so far (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Capacity in positions.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    /// Forgets everything from position `len` on (e.g. to reuse a shared prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    /// Empties the cache.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}
