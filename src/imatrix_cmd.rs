//! `pith imatrix`: collect an importance matrix over a text file, as `llama-imatrix`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pith_quantize::imatrix::{self, CollectOptions, ImatrixFormat};
use pith_runtime::model::{Model, ModelOptions, Numerics};
use pith_runtime::tokenizer::Tokenizer;

/// Flags of `pith imatrix` (named as llama-imatrix's).
#[derive(Args, Debug)]
pub struct ImatrixArgs {
    /// Model: a GGUF path or a catalog name. Default: the catalog's default model.
    #[arg(short, long)]
    model: Option<String>,
    /// The text to collect statistics on (UTF-8; one trailing newline is dropped, as
    /// llama.cpp's `-f` does).
    #[arg(short = 'f', long = "text", alias = "file")]
    text: PathBuf,
    /// Output file. Refused if it exists, unless --force.
    #[arg(short, long, default_value = "imatrix.gguf")]
    output: PathBuf,
    /// Output format: gguf (llama.cpp's current format) or dat (its legacy format).
    /// Default: dat when the output name ends in `.dat`, else gguf.
    #[arg(long)]
    output_format: Option<ImatrixFormat>,
    /// Tokens per chunk (llama-imatrix `-c`); each chunk starts from an empty context.
    #[arg(
        short = 'c',
        long = "ctx-size",
        alias = "chunk-size",
        default_value_t = 512
    )]
    ctx_size: usize,
    /// Most chunks to process (llama-imatrix `--chunks`). Default: all.
    #[arg(long)]
    chunks: Option<usize>,
    /// Chunks to skip at the start of the text (llama-imatrix `--chunk`).
    #[arg(long = "chunk", default_value_t = 0)]
    skip_chunks: usize,
    /// Also collect `output.weight` (llama-imatrix `--process-output`).
    #[arg(long)]
    process_output: bool,
    /// Treat special-token text in the input as special tokens (llama.cpp `--parse-special`).
    #[arg(long)]
    parse_special: bool,
    /// Worker threads. Default: the number of physical cores.
    #[arg(short, long)]
    threads: Option<usize>,
    /// Overwrite the output file if it exists.
    #[arg(long)]
    force: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

/// Reads a text file as llama.cpp's `-f` does: the bytes as UTF-8, one trailing newline
/// dropped.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let mut text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the text file {}", path.display()))?;
    if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

/// Tokenizes `text` with `model`'s tokenizer and BOS as llama.cpp's tools do; returns the
/// tokens and the BOS id each chunk starts with (`None` when the model adds no BOS).
pub(crate) fn tokenize(
    model: &Model,
    text: &str,
    parse_special: bool,
) -> Result<(Vec<u32>, Option<u32>)> {
    let tok = Tokenizer::from_gguf(model.file()).context("cannot load the tokenizer")?;
    let tokens = tok.encode(text, true, parse_special);
    let bos = if tok.add_bos() { tok.bos_id() } else { None };
    Ok((tokens, bos))
}

/// A progress bar over `total` chunks on stderr (hidden when `quiet`).
pub(crate) fn chunk_bar(total: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} chunks (eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub fn imatrix(a: ImatrixArgs) -> Result<()> {
    if a.output.exists() && !a.force {
        bail!(
            "{} already exists (pass --force to overwrite)",
            a.output.display()
        );
    }
    let format = a.output_format.unwrap_or_else(|| {
        if a.output.extension().is_some_and(|e| e == "dat") {
            ImatrixFormat::Dat
        } else {
            ImatrixFormat::Gguf
        }
    });
    let path = crate::resolve_model(a.model.as_deref())?;
    let opts = ModelOptions {
        threads: a.threads,
        numerics: Numerics::Ggml,
    };
    let model = Model::open(&path, &opts)
        .with_context(|| format!("cannot load the model {}", path.display()))?;
    let text = read_text(&a.text)?;
    let (tokens, bos) = tokenize(&model, &text, a.parse_special)?;
    let copts = CollectOptions {
        chunk_size: a.ctx_size,
        max_chunks: a.chunks,
        skip_chunks: a.skip_chunks,
        process_output: a.process_output,
    };
    let usable = tokens.len().saturating_sub(a.skip_chunks * a.ctx_size) / a.ctx_size.max(1);
    let total = usable.min(a.chunks.unwrap_or(usize::MAX));
    eprintln!(
        "imatrix: {} tokens, {} chunks of {} (threads: {})",
        tokens.len(),
        total,
        a.ctx_size,
        model.threads()
    );
    let bar = chunk_bar(total, a.quiet);
    bar.set_prefix("imatrix");
    let t0 = Instant::now();
    let (file, stats) = imatrix::collect(
        &model,
        &tokens,
        bos,
        &copts,
        vec![a.text.display().to_string()],
        &mut |done, _| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    file.save(&a.output, format)?;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "imatrix: {} entries from {} chunks ({} tokens) in {secs:.1} s ({:.1} tok/s), saved to {} ({format:?})",
        file.len(),
        stats.chunks,
        stats.tokens,
        stats.tokens as f64 / secs,
        a.output.display(),
    );
    Ok(())
}
