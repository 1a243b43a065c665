//! Collecting an importance matrix with the runtime, as `llama-imatrix` does.
//!
//! `tools/imatrix/imatrix.cpp`: the text is tokenized once (with BOS when the model adds
//! one), cut into chunks of `n_ctx` tokens (the remainder is dropped), and each chunk runs
//! from an empty KV cache with its first token replaced by BOS. Every matrix
//! multiplication whose weight name starts with `blk.` (and `output.weight` with
//! `--process-output`) and whose batch has at least 16 tokens adds `x²` of each input row
//! to the weight's per-column sums (f32, row by row) and the number of rows to its count.

use std::collections::HashMap;
use std::sync::Mutex;

use pith_runtime::model::{Logits, MatmulObserver, Model};

use super::{ImatrixEntry, ImatrixError, ImatrixFile};

/// llama.cpp ignores smaller batches (`src1->ne[1] < 16`: generation, not prompt
/// processing).
const MIN_BATCH: usize = 16;

#[derive(Debug, Default)]
struct Acc {
    sums: Vec<f32>,
    count: i64,
}

/// A [`MatmulObserver`] accumulating squared activations per weight.
#[derive(Debug, Default)]
pub struct Collector {
    stats: Mutex<HashMap<String, Acc>>,
    /// The first inconsistency seen (reported after the forward pass returns).
    error: Mutex<Option<ImatrixError>>,
    process_output: bool,
}

impl Collector {
    /// A collector; `process_output` also collects `output.weight` (llama-imatrix's
    /// `--process-output`; default off).
    pub fn new(process_output: bool) -> Self {
        Self {
            process_output,
            ..Self::default()
        }
    }

    fn fail(&self, e: ImatrixError) {
        let mut slot = self
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert(e);
    }

    /// The first error an observation hit, if any.
    pub fn take_error(&self) -> Option<ImatrixError> {
        self.error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// The collected statistics as an importance matrix.
    pub fn into_file(
        self,
        datasets: Vec<String>,
        chunk_size: u32,
        chunk_count: u32,
    ) -> Result<ImatrixFile, ImatrixError> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        let stats = self
            .stats
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut file = ImatrixFile {
            datasets,
            chunk_count,
            chunk_size,
            ..ImatrixFile::default()
        };
        for (name, acc) in stats {
            let entry = ImatrixEntry::new(&name, acc.sums, vec![acc.count])?;
            file.entries.insert(name, entry);
        }
        Ok(file)
    }
}

impl MatmulObserver for Collector {
    fn observe(&self, tensor: &str, x: &[f32], n_tokens: usize) {
        if n_tokens < MIN_BATCH
            || !(tensor.starts_with("blk.") || (self.process_output && tensor == "output.weight"))
        {
            return;
        }
        let ne0 = x.len() / n_tokens;
        if ne0 == 0 {
            return;
        }
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let acc = stats.entry(tensor.to_owned()).or_default();
        if acc.sums.is_empty() {
            acc.sums.resize(ne0, 0.0);
        } else if acc.sums.len() != ne0 {
            let e = ImatrixError::WidthChanged {
                tensor: tensor.to_owned(),
                expected: acc.sums.len(),
                found: ne0,
            };
            drop(stats);
            return self.fail(e);
        }
        for row in x.chunks_exact(ne0) {
            for (a, &v) in acc.sums.iter_mut().zip(row) {
                *a += v * v;
            }
        }
        acc.count += n_tokens as i64;
        if !acc.sums.iter().all(|v| v.is_finite()) {
            let e = ImatrixError::NonFinite {
                tensor: tensor.to_owned(),
            };
            drop(stats);
            self.fail(e);
        }
    }
}

/// How to cut the text into chunks.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Tokens per chunk (llama-imatrix `-c`). Default 512.
    pub chunk_size: usize,
    /// Most chunks to process (llama-imatrix `--chunks`). Default `None`: all.
    pub max_chunks: Option<usize>,
    /// Chunks to skip at the start of the text (llama-imatrix `--chunk`). Default 0.
    pub skip_chunks: usize,
    /// Also collect `output.weight` (llama-imatrix `--process-output`). Default false.
    pub process_output: bool,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self {
            chunk_size: 512,
            max_chunks: None,
            skip_chunks: 0,
            process_output: false,
        }
    }
}

/// What a collection run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectStats {
    /// Chunks processed.
    pub chunks: usize,
    /// Tokens run through the model.
    pub tokens: usize,
}

/// Runs `tokens` (the whole text, tokenized with BOS if the model adds one) through
/// `model` chunk by chunk and returns the collected matrix. `bos`: the token that
/// replaces each chunk's first token (`None` when the model adds no BOS). `on_chunk` is
/// called after each chunk with (chunks done, chunks total).
pub fn collect(
    model: &Model,
    tokens: &[u32],
    bos: Option<u32>,
    opts: &CollectOptions,
    datasets: Vec<String>,
    on_chunk: &mut dyn FnMut(usize, usize),
) -> Result<(ImatrixFile, CollectStats), ImatrixError> {
    let n_ctx = opts.chunk_size;
    if n_ctx < MIN_BATCH {
        return Err(ImatrixError::ChunkTooSmall(n_ctx));
    }
    let skip = opts.skip_chunks.saturating_mul(n_ctx);
    let tokens = tokens.get(skip..).unwrap_or(&[]);
    // llama-imatrix wants at least two chunks' worth of tokens.
    if tokens.len() < 2 * n_ctx {
        return Err(ImatrixError::TooFewTokens {
            got: tokens.len(),
            needed: 2 * n_ctx,
            chunk_size: n_ctx,
            skipped: skip,
        });
    }
    let n_chunks = (tokens.len() / n_ctx).min(opts.max_chunks.unwrap_or(usize::MAX));
    let collector = Collector::new(opts.process_output);
    let mut cache = model.new_cache(n_ctx);
    let mut chunk = vec![0u32; n_ctx];
    let want = if opts.process_output {
        Logits::All
    } else {
        Logits::None
    };
    for i in 0..n_chunks {
        chunk.copy_from_slice(&tokens[i * n_ctx..(i + 1) * n_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        cache.clear();
        model.forward_observed(&mut cache, &chunk, want, &collector)?;
        if let Some(e) = collector.take_error() {
            return Err(e);
        }
        on_chunk(i + 1, n_chunks);
    }
    let file = collector.into_file(datasets, n_ctx as u32, n_chunks as u32)?;
    Ok((
        file,
        CollectStats {
            chunks: n_chunks,
            tokens: n_chunks * n_ctx,
        },
    ))
}
