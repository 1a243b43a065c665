//! Text generation: prompt → tokens → prefill → sample/decode loop → streamed text.
//!
//! [`Engine`] pairs a [`Model`] with its [`Tokenizer`]; [`Engine::generate`] runs one
//! request and streams complete UTF-8 text through a callback, stopping on EOS/EOT, a
//! stop string, the token limit or a full context.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::gguf::GgufFile;
use crate::memory::{available_bytes, check_fits, open_with, LoadError, LoadMode, OutOfMemory};
use crate::model::{KvType, Logits, Model, ModelError, ModelOptions};
use crate::sampler::{Sampler, SamplerConfig, StopMatcher};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Errors of a generation request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{path}: {source}")]
    Tokenizer {
        path: String,
        source: TokenizerError,
    },
    #[error("the prompt is {n_prompt} tokens, but the context holds {n_ctx} (raise --ctx or shorten the prompt)")]
    PromptTooLong { n_prompt: usize, n_ctx: usize },
    #[error("the prompt is empty after tokenization (and the model adds no BOS token)")]
    EmptyPrompt,
    #[error(transparent)]
    OutOfMemory(#[from] OutOfMemory),
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// Why generation ended (OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Parameters of one generation request.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    /// Most tokens to generate. Default 128.
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    /// Generation stops before any of these strings; they are not emitted. Default none.
    pub stop: Vec<String>,
    /// Add the model's BOS/EOS as its metadata says. Default true.
    pub add_special: bool,
    /// Recognise special-token text such as `<start_of_turn>` in the prompt. Default true.
    pub parse_special: bool,
    /// Context size in tokens (prompt + output). Default 4096, capped at the model's
    /// training context.
    pub n_ctx: usize,
    /// KV cache element type. Default f16.
    pub kv_type: KvType,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            max_tokens: 128,
            sampler: SamplerConfig::default(),
            stop: Vec::new(),
            add_special: true,
            parse_special: true,
            n_ctx: 4096,
            kv_type: KvType::default(),
        }
    }
}

/// What a generation request did, with timings.
#[derive(Debug, Clone)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prefill time (prompt processing).
    pub prompt_time: Duration,
    /// Time spent generating after the prefill.
    pub gen_time: Duration,
    pub finish_reason: FinishReason,
    /// The generated token ids.
    pub tokens: Vec<u32>,
}

impl GenerateStats {
    /// Prompt tokens per second.
    pub fn prompt_tps(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_time.as_secs_f64().max(1e-9)
    }
    /// Generated tokens per second (each token after the first costs one decode step).
    pub fn gen_tps(&self) -> f64 {
        self.completion_tokens as f64 / self.gen_time.as_secs_f64().max(1e-9)
    }
}

/// A model with its tokenizer, ready to serve requests.
pub struct Engine {
    pub model: Model,
    pub tokenizer: Tokenizer,
}

impl Engine {
    /// Opens a GGUF file (memory-mapped) and builds the model and tokenizer.
    pub fn open(path: impl AsRef<Path>, opts: &ModelOptions) -> Result<Self, GenerateError> {
        Self::open_with(path, opts, LoadMode::default())
    }

    /// Opens a GGUF file as `mode` says (mmap or read, optionally `mlock`ed).
    pub fn open_with(
        path: impl AsRef<Path>,
        opts: &ModelOptions,
        mode: LoadMode,
    ) -> Result<Self, GenerateError> {
        let file = Arc::new(open_with(path.as_ref(), mode)?);
        Self::from_file(file, opts)
    }

    /// KV cache bytes per context token for `kv_type`.
    pub fn kv_bytes_per_token(&self, kv_type: KvType) -> u64 {
        let c = self.model.config();
        (c.n_layer * (c.k_dim() + c.v_dim()) * kv_type.element_bytes()) as u64
    }

    /// Refuses, with the figures, when the weights plus a KV cache of `n_ctx` tokens do
    /// not fit in the memory the kernel reports available. Memory-mapped weights count
    /// (they must stay in the page cache); weights already read into memory do not (they
    /// are no longer part of what is available). Passes where availability is unknown.
    pub fn check_memory(&self, n_ctx: usize, kv_type: KvType) -> Result<(), OutOfMemory> {
        let Some(available) = available_bytes() else {
            return Ok(());
        };
        let file = self.model.file();
        let model_bytes = if file.is_mmapped() && !file.is_locked() {
            file.len()
        } else {
            0
        };
        check_fits(
            model_bytes,
            self.kv_bytes_per_token(kv_type),
            n_ctx,
            available,
        )
    }

    /// Builds the engine over an open file.
    pub fn from_file(file: Arc<GgufFile>, opts: &ModelOptions) -> Result<Self, GenerateError> {
        // The architecture first: an unsupported model is reported as such, not as a
        // tokenizer problem.
        let model = Model::load(file.clone(), opts)?;
        let tokenizer = Tokenizer::from_gguf(&file).map_err(|source| GenerateError::Tokenizer {
            path: file.path().display().to_string(),
            source,
        })?;
        Ok(Self { model, tokenizer })
    }

    /// Tokenizes `prompt` and generates, calling `on_text` with each piece of complete
    /// UTF-8 text as it is produced.
    pub fn generate(
        &self,
        prompt: &str,
        params: &GenerateParams,
        on_text: impl FnMut(&str),
    ) -> Result<GenerateStats, GenerateError> {
        let ids = self
            .tokenizer
            .encode(prompt, params.add_special, params.parse_special);
        self.generate_ids(&ids, params, on_text)
    }

    /// Generates from prompt token ids.
    pub fn generate_ids(
        &self,
        prompt: &[u32],
        params: &GenerateParams,
        mut on_text: impl FnMut(&str),
    ) -> Result<GenerateStats, GenerateError> {
        let _span = tracing::debug_span!("generate", n_prompt = prompt.len()).entered();
        if prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt);
        }
        let n_ctx = params.n_ctx.min(self.model.config().context_length).max(1);
        if prompt.len() > n_ctx {
            return Err(GenerateError::PromptTooLong {
                n_prompt: prompt.len(),
                n_ctx,
            });
        }
        // Room for the prompt, the generated tokens and nothing more.
        let cache_len = (prompt.len() + params.max_tokens).min(n_ctx);
        let mut cache = self.model.new_cache_typed(cache_len, params.kv_type);
        let mut sampler = Sampler::new(params.sampler.clone());
        for &t in prompt {
            sampler.accept(t);
        }
        let mut stops = StopMatcher::new(params.stop.clone());
        let mut detok = self.tokenizer.stream_decoder(true);

        let t0 = Instant::now();
        let mut logits = self.model.forward(&mut cache, prompt, Logits::Last)?;
        let prompt_time = t0.elapsed();
        let t1 = Instant::now();
        let mut tokens = Vec::new();
        let mut finish = FinishReason::Length;
        while tokens.len() < params.max_tokens {
            let _span = tracing::trace_span!("sample").entered();
            let tok = sampler.sample(&logits);
            if self.tokenizer.is_eog(tok) {
                finish = FinishReason::Stop;
                break;
            }
            sampler.accept(tok);
            tokens.push(tok);
            let (text, stopped) = stops.push(&detok.feed(tok));
            if !text.is_empty() {
                on_text(&text);
            }
            if stopped {
                finish = FinishReason::Stop;
                break;
            }
            if tokens.len() >= params.max_tokens || cache.len() >= cache.n_ctx() {
                break;
            }
            logits = self.model.forward(&mut cache, &[tok], Logits::Last)?;
        }
        if !stops.is_stopped() {
            let (text, stopped) = stops.push(&detok.flush());
            let mut text = text;
            if !stopped {
                text.push_str(&stops.finish());
            } else {
                finish = FinishReason::Stop;
            }
            if !text.is_empty() {
                on_text(&text);
            }
        }
        Ok(GenerateStats {
            prompt_tokens: prompt.len(),
            completion_tokens: tokens.len(),
            prompt_time,
            gen_time: t1.elapsed(),
            finish_reason: finish,
            tokens,
        })
    }
}
