//! `pith`: the command-line front end. Thin: parses flags, calls the libraries, prints.

mod bench;
#[cfg(feature = "quantize")]
mod eval_cmd;
#[cfg(feature = "quantize")]
mod imatrix_cmd;
mod info;
#[cfg(feature = "quantize")]
mod quantize_cmd;
mod serve;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use pith_models::fetch::{self, FetchOptions};
use pith_runtime::generate::{Engine, GenerateParams};
use pith_runtime::memory::{rss_mib, LoadMode};
use pith_runtime::model::{KvType, ModelOptions, Numerics};
use pith_runtime::sampler::SamplerConfig;

/// pith: edge inference runtime and distillation toolkit.
#[derive(Parser, Debug)]
#[command(name = "pith", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate text from a prompt, streaming it to stdout.
    Run(RunArgs),
    /// Print a GGUF file's architecture, hyperparameters, tokenizer and tensors.
    Info(InfoArgs),
    /// Download a catalog model into the cache ($PITH_HOME, default ~/.cache/pith).
    Fetch(FetchArgs),
    /// List the models in the catalog.
    Models,
    /// Measure prompt and generation throughput, as llama.cpp's llama-bench.
    Bench(bench::BenchArgs),
    /// Serve the model over an OpenAI-compatible HTTP API, with a chat page at `/`.
    Serve(serve::ServeArgs),
    #[cfg(feature = "quantize")]
    /// Collect an importance matrix over a text file, in llama.cpp's imatrix format.
    Imatrix(imatrix_cmd::ImatrixArgs),
    #[cfg(feature = "quantize")]
    /// Evaluate model quality (`pith eval kld`: KL divergence against a base model).
    Eval(eval_cmd::EvalArgs),
    #[cfg(feature = "quantize")]
    /// Quantize an HF model directory or a GGUF into a GGUF, as llama-quantize.
    Quantize(quantize_cmd::QuantizeArgs),
    #[cfg(feature = "quantize")]
    /// Convert a GGUF into another format (`--to hf`: an HF directory).
    Convert(quantize_cmd::ConvertArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Model: a GGUF path or a catalog name. Default: the catalog's default model
    /// (gemma3-270m), fetched on first use.
    #[arg(short, long)]
    model: Option<String>,
    /// The prompt text.
    #[arg(short, long)]
    prompt: String,
    /// Most tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n_predict: usize,
    /// Sampling temperature; 0 means greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    temperature: f32,
    /// Top-k sampling; 0 disables.
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Top-p (nucleus) sampling; 1 disables.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Min-p sampling; 0 disables.
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Repetition penalty; 1 disables.
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Tokens of history the penalties look at.
    #[arg(long, default_value_t = 64)]
    repeat_last_n: usize,
    /// Presence penalty (OpenAI semantics); 0 disables.
    #[arg(long, default_value_t = 0.0)]
    presence_penalty: f32,
    /// Frequency penalty (OpenAI semantics); 0 disables.
    #[arg(long, default_value_t = 0.0)]
    frequency_penalty: f32,
    /// RNG seed for reproducible sampling. Default: random.
    #[arg(short, long)]
    seed: Option<u64>,
    /// Stop generating before this string (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Worker threads. Default: the number of physical cores.
    #[arg(short, long)]
    threads: Option<usize>,
    /// Context size in tokens (prompt + generated), capped at the model's training
    /// context. The KV cache takes ctx × layers × (k+v width) × 2 bytes (f16).
    #[arg(short, long, default_value_t = 4096)]
    ctx: usize,
    /// KV cache type: f16 or f32.
    #[arg(long, default_value = "f16")]
    kv_type: KvType,
    /// Numerics: `ggml` rounds activations as llama.cpp's CPU backend does (logits track
    /// llama.cpp); `exact` keeps f32 activations (the reference, matches transformers).
    #[arg(long, default_value = "ggml")]
    numerics: Numerics,
    /// Read the model into memory instead of memory-mapping it (for filesystems where
    /// mmap is slow).
    #[arg(long)]
    no_mmap: bool,
    /// Lock the model's pages in RAM so they are never paged out (needs `ulimit -l`).
    #[arg(long)]
    mlock: bool,
    /// Treat special-token text in the prompt (e.g. `<start_of_turn>`) as plain text.
    #[arg(long)]
    no_parse_special: bool,
    /// Do not add the BOS token the model's metadata asks for.
    #[arg(long)]
    no_bos: bool,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// Path to a GGUF file, or a catalog name.
    model: String,
    /// Print every metadata key, including long arrays (abbreviated by default).
    #[arg(long)]
    all_metadata: bool,
}

#[derive(Args, Debug)]
struct FetchArgs {
    /// Catalog name. Default: the default model.
    name: Option<String>,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse_from(bench::expand_llama_flags(std::env::args_os()));
    let result = match cli.command {
        Command::Run(a) => run(a),
        Command::Info(a) => info::info(&a.model, a.all_metadata),
        Command::Fetch(a) => fetch_cmd(a),
        Command::Bench(a) => bench::bench(a),
        Command::Serve(a) => serve::serve(a),
        #[cfg(feature = "quantize")]
        Command::Imatrix(a) => imatrix_cmd::imatrix(a),
        #[cfg(feature = "quantize")]
        Command::Eval(a) => eval_cmd::eval(a),
        #[cfg(feature = "quantize")]
        Command::Quantize(a) => quantize_cmd::quantize(a),
        #[cfg(feature = "quantize")]
        Command::Convert(a) => quantize_cmd::convert(a),
        Command::Models => {
            list_models();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the message before
/// it already ends with (library errors often include their source in their message).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.ends_with(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out.replace('\n', " ")
}

/// Resolves `-m`: a path, a catalog name, or the default model (fetched on first use).
pub(crate) fn resolve_model(spec: Option<&str>) -> Result<PathBuf> {
    fetch::resolve_model(spec).context("cannot resolve the model")
}

fn run(a: RunArgs) -> Result<()> {
    let path = resolve_model(a.model.as_deref())?;
    let t0 = Instant::now();
    let mode = LoadMode {
        no_mmap: a.no_mmap,
        mlock: a.mlock,
    };
    let opts = ModelOptions {
        threads: a.threads,
        numerics: a.numerics,
    };
    let engine = Engine::open_with(&path, &opts, mode)?;
    let n_ctx = a.ctx.min(engine.model.config().context_length);
    engine.check_memory(n_ctx, a.kv_type)?;
    let load = t0.elapsed();
    let rss_loaded = rss_mib();
    let params = GenerateParams {
        max_tokens: a.n_predict,
        sampler: SamplerConfig {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            repeat_penalty: a.repeat_penalty,
            repeat_last_n: a.repeat_last_n,
            presence_penalty: a.presence_penalty,
            frequency_penalty: a.frequency_penalty,
            seed: a.seed,
        },
        stop: a.stop,
        add_special: !a.no_bos,
        parse_special: !a.no_parse_special,
        n_ctx: a.ctx,
        kv_type: a.kv_type,
    };
    let mut out = std::io::stdout().lock();
    let mut write_err = None;
    let stats = engine.generate(&a.prompt, &params, |text| {
        if write_err.is_none() {
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                write_err = Some(e);
            }
        }
    })?;
    if let Some(e) = write_err {
        // A closed pipe (`pith run … | head`) is not an error worth a message.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing to stdout");
        }
    }
    let _ = writeln!(out);
    eprintln!(
        "\nload: {:.2} s | prompt: {} tokens, {:.1} tok/s | generation: {} tokens, {:.1} tok/s | finish: {} | threads: {} | rss: {} after load, {} at end",
        load.as_secs_f64(),
        stats.prompt_tokens,
        stats.prompt_tps(),
        stats.completion_tokens,
        stats.gen_tps(),
        stats.finish_reason.as_str(),
        engine.model.threads(),
        rss_loaded.map_or("?".into(), |m| format!("{m:.0} MiB")),
        rss_mib().map_or("?".into(), |m| format!("{m:.0} MiB")),
    );
    Ok(())
}

fn fetch_cmd(a: FetchArgs) -> Result<()> {
    let name = a
        .name
        .as_deref()
        .unwrap_or(pith_models::catalog::DEFAULT_MODEL);
    let entry = pith_models::catalog::lookup(name).with_context(|| {
        format!(
            "unknown model '{name}' (known: {})",
            pith_models::catalog::known_names().join(", ")
        )
    })?;
    let opts = FetchOptions {
        quiet: a.quiet,
        ..FetchOptions::default()
    };
    let path = fetch::fetch(entry, &opts)?;
    println!("{}", path.display());
    Ok(())
}

fn list_models() {
    for e in pith_models::catalog::catalog() {
        let default = if e.name == pith_models::catalog::DEFAULT_MODEL {
            " (default)"
        } else {
            ""
        };
        println!(
            "{}{default}\t{}\t{} bytes\t{}",
            e.name, e.file_name, e.size, e.description
        );
    }
}
