//! Running both models over the text in chunks, as `llama-perplexity` does.
//!
//! The text's tokens (with BOS when the model adds one) are cut into chunks of `ctx`
//! tokens, the remainder dropped; each chunk runs from an empty KV cache with its first
//! token replaced by BOS, and only the positions `ctx/2 .. ctx−2` are scored (each
//! predicting the next token of the chunk), so every scored prediction sees at least half
//! a context.

use rayon::prelude::*;

use pith_runtime::model::{KvCache, Logits, Model};

use super::{score_token, KldError, KldReport, KldStats};

/// How to run the evaluation.
#[derive(Debug, Clone)]
pub struct KldOptions {
    /// Tokens per chunk (llama-perplexity `-c`). Default 512.
    pub ctx: usize,
    /// Most chunks to evaluate (llama-perplexity `--chunks`). Default `None`: all.
    pub max_chunks: Option<usize>,
    /// Positions whose logits are computed per forward call in the scored half; bounds
    /// memory to `2 × batch × n_vocab × 4` bytes. Default 128.
    pub batch: usize,
}

impl Default for KldOptions {
    fn default() -> Self {
        Self {
            ctx: 512,
            max_chunks: None,
            batch: 128,
        }
    }
}

fn fwd(
    which: &'static str,
    m: &Model,
    cache: &mut KvCache,
    tokens: &[u32],
    want: Logits,
) -> Result<Vec<f32>, KldError> {
    m.forward(cache, tokens, want)
        .map_err(|source| KldError::Model { which, source })
}

/// Evaluates `model` against `base` over `tokens` (the whole text, tokenized with BOS if
/// the models add one). `bos` replaces each chunk's first token. `on_chunk` is called
/// after each chunk with (chunks done, chunks total, the report so far).
pub fn evaluate(
    base: &Model,
    model: &Model,
    tokens: &[u32],
    bos: Option<u32>,
    opts: &KldOptions,
    on_chunk: &mut dyn FnMut(usize, usize, &KldReport),
) -> Result<KldReport, KldError> {
    let n_vocab = base.config().n_vocab;
    if model.config().n_vocab != n_vocab {
        return Err(KldError::VocabMismatch {
            base: n_vocab,
            model: model.config().n_vocab,
        });
    }
    let ctx = opts.ctx;
    if ctx < 4 {
        return Err(KldError::ContextTooSmall(ctx));
    }
    if tokens.len() < 2 * ctx {
        return Err(KldError::TooFewTokens {
            got: tokens.len(),
            needed: 2 * ctx,
            ctx,
        });
    }
    let n_chunks = (tokens.len() / ctx).min(opts.max_chunks.unwrap_or(usize::MAX));
    let first = ctx / 2;
    let batch = opts.batch.max(1);
    let mut cache_b = base.new_cache(ctx);
    let mut cache_m = model.new_cache(ctx);
    let mut stats = KldStats::default();
    let mut chunk = vec![0u32; ctx];
    for i in 0..n_chunks {
        chunk.copy_from_slice(&tokens[i * ctx..(i + 1) * ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        cache_b.clear();
        cache_m.clear();
        fwd("base", base, &mut cache_b, &chunk[..first], Logits::None)?;
        fwd(
            "evaluated",
            model,
            &mut cache_m,
            &chunk[..first],
            Logits::None,
        )?;
        // Scored positions first..ctx-1 (position ctx-1 has no next token in the chunk;
        // it is still run so both caches stay in step, but not scored).
        let mut at = first;
        while at < ctx - 1 {
            let end = (at + batch).min(ctx - 1);
            let toks = &chunk[at..end];
            let lb = fwd("base", base, &mut cache_b, toks, Logits::All)?;
            let lm = fwd("evaluated", model, &mut cache_m, toks, Logits::All)?;
            let expected = toks.len() * n_vocab;
            for got in [lb.len(), lm.len()] {
                if got != expected {
                    return Err(KldError::LogitsShape { got, expected });
                }
            }
            let scores: Vec<_> = lb
                .par_chunks_exact(n_vocab)
                .zip(lm.par_chunks_exact(n_vocab))
                .enumerate()
                .map(|(r, (b, m))| score_token(b, m, chunk[at + r + 1] as usize))
                .collect();
            scores.into_iter().for_each(|s| stats.push(s));
            at = end;
        }
        stats.chunks = i + 1;
        on_chunk(i + 1, n_chunks, &stats.report());
    }
    Ok(stats.report())
}
