//! `pith eval …`: model quality evaluations. `pith eval kld` compares a (quantized) model
//! with its base model over a text, as `llama-perplexity --kl-divergence`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pith_quantize::kld::{self, KldOptions, KldReport};
use pith_runtime::model::{Model, ModelOptions, Numerics};

use crate::imatrix_cmd::{chunk_bar, read_text, tokenize};

/// Flags of `pith eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(Subcommand, Debug)]
enum EvalCommand {
    /// KL divergence, top-1 agreement and perplexities of a model against its base model.
    Kld(KldArgs),
}

#[derive(Args, Debug)]
struct KldArgs {
    /// The reference model (e.g. the F32 or BF16 GGUF): a path or catalog name.
    #[arg(long)]
    base: String,
    /// The model to evaluate (e.g. its quantized copy): a path or catalog name.
    #[arg(short, long)]
    model: String,
    /// The text (UTF-8; one trailing newline dropped, as llama.cpp's `-f`).
    #[arg(short = 'f', long = "text", alias = "file")]
    text: PathBuf,
    /// Tokens per chunk (llama-perplexity `-c`); the second half of each is scored.
    #[arg(short = 'c', long = "ctx", alias = "ctx-size", default_value_t = 512)]
    ctx: usize,
    /// Most chunks to evaluate. Default: all.
    #[arg(long)]
    chunks: Option<usize>,
    /// Scored positions per forward call (memory: 2 × batch × vocabulary × 4 bytes).
    #[arg(short, long, default_value_t = 128)]
    batch: usize,
    /// Worker threads per model. Default: the number of physical cores.
    #[arg(short, long)]
    threads: Option<usize>,
    /// Numerics of both models: `ggml` (as llama.cpp's CPU backend) or `exact`.
    #[arg(long, default_value = "ggml")]
    numerics: Numerics,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    match a.command {
        EvalCommand::Kld(k) => eval_kld(k),
    }
}

fn open(spec: &str, opts: &ModelOptions) -> Result<Model> {
    let path = crate::resolve_model(Some(spec))?;
    Model::open(&path, opts).with_context(|| format!("cannot load the model {}", path.display()))
}

fn eval_kld(a: KldArgs) -> Result<()> {
    let opts = ModelOptions {
        threads: a.threads,
        numerics: a.numerics,
    };
    let base = open(&a.base, &opts)?;
    let model = open(&a.model, &opts)?;
    let text = read_text(&a.text)?;
    let (tokens, bos) = tokenize(&base, &text, false)?;
    let kopts = KldOptions {
        ctx: a.ctx,
        max_chunks: a.chunks,
        batch: a.batch,
    };
    let total = (tokens.len() / a.ctx.max(1)).min(a.chunks.unwrap_or(usize::MAX));
    eprintln!(
        "eval kld: {} tokens, {} chunks of {}, {} scored per chunk",
        tokens.len(),
        total,
        a.ctx,
        a.ctx.saturating_sub(1 + a.ctx / 2)
    );
    let bar = chunk_bar(total, a.quiet);
    bar.set_prefix("kld");
    let t0 = Instant::now();
    let report = kld::evaluate(&base, &model, &tokens, bos, &kopts, &mut |done, _, r| {
        bar.set_position(done as u64);
        bar.set_message(format!(
            "PPL {:.3} / {:.3}, KLD {:.5}, top-1 {:.1} %",
            r.ppl_base.value,
            r.ppl_model.value,
            r.kld_mean.value,
            100.0 * r.same_top.value
        ));
    })?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    if a.json {
        println!("{}", report_json(&a, &report, secs));
    } else {
        println!("base : {}\nmodel: {}\n{report}", a.base, a.model);
        eprintln!("eval kld: {secs:.1} s");
    }
    Ok(())
}

fn report_json(a: &KldArgs, r: &KldReport, secs: f64) -> serde_json::Value {
    serde_json::json!({
        "base": a.base,
        "model": a.model,
        "text": a.text.display().to_string(),
        "ctx": a.ctx,
        "chunks": r.n_chunks,
        "tokens": r.n_tokens,
        "ppl_base": r.ppl_base.value,
        "ppl_base_stderr": r.ppl_base.stderr,
        "ppl_model": r.ppl_model.value,
        "ppl_model_stderr": r.ppl_model.stderr,
        "kld_mean": r.kld_mean.value,
        "kld_mean_stderr": r.kld_mean.stderr,
        "kld_median": r.kld_median,
        "kld_p90": r.kld_p90,
        "kld_p99": r.kld_p99,
        "kld_max": r.kld_max,
        "same_top": r.same_top.value,
        "same_top_stderr": r.same_top.stderr,
        "rms_p_diff": r.rms_p_diff,
        "seconds": secs,
    })
}
