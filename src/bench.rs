//! `pith bench`: prompt-processing and generation throughput, as llama.cpp's `llama-bench`.
//!
//! Each test runs on random (valid) token ids with a fixed seed, one untimed warm-up run
//! first, then `-r` timed repetitions; it reports mean ± sample standard deviation of
//! tokens/second over the repetitions. Tests: `ppN` (one prompt of N tokens), `tgN` (N
//! single-token decode steps), `ppN+tgM` (both, throughput over N+M tokens), each at a
//! context depth `-d` (tokens put in the KV cache, untimed, before every repetition).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use pith_runtime::generate::Engine;
use pith_runtime::model::{KvCache, KvType, Logits, ModelOptions, Numerics};
use serde::Serialize;

/// Tokens per forward call in a prompt (llama-bench's default `-ub 512`).
const UBATCH: usize = 512;
/// Seed of the random prompt and generation tokens.
const SEED: u64 = 0x5eed_1234_abcd_0042;

/// Flags of `pith bench`. Lists take comma-separated values (`-t 1,2`) and sweep.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model: a GGUF path or a catalog name. Default: the catalog's default model.
    #[arg(short, long)]
    model: Option<String>,
    /// Prompt lengths of the `pp` tests, in tokens; 0 skips.
    #[arg(
        short = 'p',
        long = "n-prompt",
        value_delimiter = ',',
        default_value = "512"
    )]
    n_prompt: Vec<usize>,
    /// Generation lengths of the `tg` tests, in tokens; 0 skips.
    #[arg(
        short = 'n',
        long = "n-gen",
        value_delimiter = ',',
        default_value = "128"
    )]
    n_gen: Vec<usize>,
    /// A prompt+generation test `pp,tg` (e.g. `512,128`); repeatable. Also `-pg`.
    #[arg(long = "pg", value_parser = parse_pg)]
    pg: Vec<(usize, usize)>,
    /// Context depths: tokens already in the KV cache (filled untimed).
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    n_depth: Vec<usize>,
    /// Timed repetitions per test (after one warm-up run).
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    repetitions: usize,
    /// Worker threads (list sweeps). Default: the number of physical cores.
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    threads: Vec<usize>,
    /// KV cache type: f16 or f32.
    #[arg(long, default_value = "f16")]
    kv_type: KvType,
    /// Numerics: `ggml` (as llama.cpp's CPU backend) or `exact` (f32 activations).
    #[arg(long, default_value = "ggml")]
    numerics: Numerics,
    /// Output format: md (a markdown table) or json.
    #[arg(short = 'o', long = "output", default_value = "md")]
    output: OutputFormat,
    /// Same as `-o json`.
    #[arg(long)]
    json: bool,
}

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Markdown,
    Json,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "md" => Ok(Self::Markdown),
            "json" => Ok(Self::Json),
            _ => Err(format!("unknown output format '{s}' (expected md or json)")),
        }
    }
}

/// Parses a `-pg` value `pp,tg`.
fn parse_pg(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{s}' is not a pair of token counts 'pp,tg' (e.g. 512,128)");
    let (p, g) = s.split_once(',').ok_or_else(bad)?;
    let p = p.trim().parse().map_err(|_| bad())?;
    let g = g.trim().parse().map_err(|_| bad())?;
    Ok((p, g))
}

/// Rewrites llama-bench's single-dash `-pg` into `--pg` for `pith bench` (clap has no
/// single-dash long flags). Other arguments pass through unchanged.
pub fn expand_llama_flags<I: IntoIterator<Item = std::ffi::OsString>>(
    args: I,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == "bench") {
        for a in args.iter_mut().skip(2) {
            if a == "-pg" {
                *a = "--pg".into();
            }
        }
    }
    args
}

/// Invalid `pith bench` settings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    #[error("nothing to benchmark: every -p and -n value is 0 and no -pg is given")]
    NoTests,
    #[error("-r must be at least 1")]
    ZeroRepetitions,
    #[error("-t must be at least 1")]
    ZeroThreads,
    #[error("-pg {n_prompt},{n_gen}: both counts must be at least 1")]
    EmptyPg { n_prompt: usize, n_gen: usize },
    #[error("test {test} needs {needed} tokens of context, the model holds {n_ctx}")]
    ContextTooSmall {
        test: String,
        needed: usize,
        n_ctx: usize,
    },
}

/// One test: prompt tokens, generated tokens and the depth it runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TestSpec {
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
}

impl TestSpec {
    /// llama-bench's name: `pp512`, `tg128`, `pp512+tg128`, with ` @ d512` at depth.
    fn name(&self) -> String {
        let mut s = match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        };
        if self.n_depth > 0 {
            s.push_str(&format!(" @ d{}", self.n_depth));
        }
        s
    }
}

/// One row of the report (the JSON field names follow llama-bench's where they exist).
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub model_filename: String,
    pub model_type: String,
    /// Bytes of tensor data.
    pub model_size: u64,
    pub model_n_params: u64,
    pub n_threads: usize,
    pub type_kv: String,
    pub numerics: String,
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
    pub test: String,
    /// Mean tokens/second over the repetitions.
    pub avg_ts: f64,
    /// Sample standard deviation of tokens/second (0 for one repetition).
    pub stddev_ts: f64,
    pub samples_ts: Vec<f64>,
    pub samples_ns: Vec<u64>,
    /// Time to open the model with this thread count, seconds.
    pub load_time_s: f64,
    /// Mean time to first token, ms: the test prompt's prefill (pp, pp+tg) or the first
    /// decode step (tg).
    pub ttft_ms: f64,
    /// Peak resident set size of the process so far (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
}

/// Runs `pith bench`.
pub fn bench(a: BenchArgs) -> Result<()> {
    let tests = plan(&a)?;
    let threads = if a.threads.is_empty() {
        vec![pith_runtime::cpu::physical_cores()]
    } else {
        a.threads.clone()
    };
    if threads.contains(&0) {
        return Err(BenchError::ZeroThreads.into());
    }
    let format = if a.json { OutputFormat::Json } else { a.output };
    let path = crate::resolve_model(a.model.as_deref())?;
    let mut out = std::io::stdout().lock();
    if format == OutputFormat::Markdown {
        writeln!(out, "{MD_HEADER}")?;
        writeln!(out, "{MD_RULE}")?;
    }
    let mut results = Vec::new();
    for &t in &threads {
        let t0 = Instant::now();
        let engine = Engine::open(
            &path,
            &ModelOptions {
                threads: Some(t),
                numerics: a.numerics,
            },
        )
        .with_context(|| format!("cannot open {}", path.display()))?;
        let load = t0.elapsed();
        let n_ctx = engine.model.config().context_length;
        for spec in &tests {
            let needed = spec.n_depth + spec.n_prompt + spec.n_gen;
            if needed > n_ctx {
                return Err(BenchError::ContextTooSmall {
                    test: spec.name(),
                    needed,
                    n_ctx,
                }
                .into());
            }
            let r = run_test(&engine, &path, *spec, &a, load)?;
            if format == OutputFormat::Markdown {
                writeln!(out, "{}", md_row(&r))?;
                out.flush()?;
            }
            results.push(r);
        }
    }
    if format == OutputFormat::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(&results)?)?;
    }
    Ok(())
}

/// The tests to run, in llama-bench's order: pp, then tg, then pp+tg, for each depth.
fn plan(a: &BenchArgs) -> Result<Vec<TestSpec>, BenchError> {
    if a.repetitions == 0 {
        return Err(BenchError::ZeroRepetitions);
    }
    if let Some(&(n_prompt, n_gen)) = a.pg.iter().find(|(p, g)| *p == 0 || *g == 0) {
        return Err(BenchError::EmptyPg { n_prompt, n_gen });
    }
    let mut tests = Vec::new();
    for &n_depth in &a.n_depth {
        let pp = a.n_prompt.iter().filter(|&&p| p > 0).map(|&p| (p, 0));
        let tg = a.n_gen.iter().filter(|&&g| g > 0).map(|&g| (0, g));
        for (n_prompt, n_gen) in pp.chain(tg).chain(a.pg.iter().copied()) {
            tests.push(TestSpec {
                n_prompt,
                n_gen,
                n_depth,
            });
        }
    }
    if tests.is_empty() {
        return Err(BenchError::NoTests);
    }
    Ok(tests)
}

/// SplitMix64: a small fixed-seed generator for token ids.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A token id in `0..n_vocab`.
    fn token(&mut self, n_vocab: usize) -> u32 {
        (self.next_u64() % n_vocab.max(1) as u64) as u32
    }
}

/// Random prompt of `n` tokens; the first is BOS when the model adds one (as llama-bench).
fn random_prompt(engine: &Engine, rng: &mut SplitMix, n: usize) -> Vec<u32> {
    let n_vocab = engine.model.config().n_vocab;
    let bos = engine
        .tokenizer
        .bos_id()
        .filter(|_| engine.tokenizer.add_bos());
    (0..n)
        .map(|i| match (i, bos) {
            (0, Some(b)) => b,
            _ => rng.token(n_vocab),
        })
        .collect()
}

/// Processes `n` random prompt tokens in batches of [`UBATCH`]; logits only for the last.
fn run_prompt(
    engine: &Engine,
    cache: &mut KvCache,
    rng: &mut SplitMix,
    n: usize,
) -> Result<Duration> {
    let tokens = random_prompt(engine, rng, n);
    let t0 = Instant::now();
    let n_chunks = tokens.len().div_ceil(UBATCH);
    for (i, chunk) in tokens.chunks(UBATCH).enumerate() {
        let logits = if i + 1 == n_chunks {
            Logits::Last
        } else {
            Logits::None
        };
        engine.model.forward(cache, chunk, logits)?;
    }
    Ok(t0.elapsed())
}

/// Decodes `n` tokens one at a time, each a random id (as llama-bench). Returns the total
/// and the first step's time.
fn run_gen(
    engine: &Engine,
    cache: &mut KvCache,
    rng: &mut SplitMix,
    n: usize,
) -> Result<(Duration, Duration)> {
    let n_vocab = engine.model.config().n_vocab;
    let mut tok = random_prompt(engine, rng, 1)[0];
    let t0 = Instant::now();
    let mut first = Duration::ZERO;
    for i in 0..n {
        engine.model.forward(cache, &[tok], Logits::Last)?;
        if i == 0 {
            first = t0.elapsed();
        }
        tok = rng.token(n_vocab);
    }
    Ok((t0.elapsed(), first))
}

/// One warm-up and `-r` timed repetitions of a test.
fn run_test(
    engine: &Engine,
    path: &Path,
    spec: TestSpec,
    a: &BenchArgs,
    load: Duration,
) -> Result<BenchResult> {
    let _span = tracing::debug_span!("bench_test", test = %spec.name()).entered();
    let mut cache = engine
        .model
        .new_cache_typed(spec.n_depth + spec.n_prompt + spec.n_gen, a.kv_type);
    let mut rng = SplitMix(SEED);
    // Warm-up as llama-bench: the prompt once, one generated token.
    if spec.n_prompt > 0 {
        run_prompt(engine, &mut cache, &mut rng, spec.n_prompt)?;
    }
    if spec.n_gen > 0 {
        run_gen(engine, &mut cache, &mut rng, 1)?;
    }
    let mut samples_ns = Vec::with_capacity(a.repetitions);
    let mut ttft_sum = 0.0;
    for _ in 0..a.repetitions {
        cache.clear();
        if spec.n_depth > 0 {
            run_prompt(engine, &mut cache, &mut rng, spec.n_depth)?;
        }
        let mut total = Duration::ZERO;
        let mut ttft = None;
        if spec.n_prompt > 0 {
            let t = run_prompt(engine, &mut cache, &mut rng, spec.n_prompt)?;
            total += t;
            ttft = Some(t);
        }
        if spec.n_gen > 0 {
            let (t, first) = run_gen(engine, &mut cache, &mut rng, spec.n_gen)?;
            total += t;
            ttft.get_or_insert(first);
        }
        ttft_sum += ttft.unwrap_or_default().as_secs_f64();
        samples_ns.push(u64::try_from(total.as_nanos()).unwrap_or(u64::MAX).max(1));
    }
    let n_tokens = (spec.n_prompt + spec.n_gen) as f64;
    let samples_ts: Vec<f64> = samples_ns
        .iter()
        .map(|&ns| n_tokens * 1e9 / ns as f64)
        .collect();
    let (avg_ts, stddev_ts) = mean_sd(&samples_ts);
    let file = engine.model.file();
    let infos = file.tensor_infos();
    Ok(BenchResult {
        model_filename: path.display().to_string(),
        model_type: engine.model.config().arch.gguf_name().to_owned(),
        model_size: infos.iter().map(|t| t.size).sum(),
        model_n_params: infos.iter().map(|t| t.n_elements()).sum(),
        n_threads: engine.model.threads(),
        type_kv: format!("{:?}", a.kv_type).to_lowercase(),
        numerics: format!("{:?}", a.numerics).to_lowercase(),
        n_prompt: spec.n_prompt,
        n_gen: spec.n_gen,
        n_depth: spec.n_depth,
        test: spec.name(),
        avg_ts,
        stddev_ts,
        samples_ts,
        samples_ns,
        load_time_s: load.as_secs_f64(),
        ttft_ms: ttft_sum * 1e3 / a.repetitions as f64,
        peak_rss_mib: pith_runtime::memory::peak_rss_mib().unwrap_or(f64::NAN),
    })
}

/// Mean and sample standard deviation (n−1; 0 for fewer than two values).
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

const MD_HEADER: &str =
    "| model | size | params | threads | test | t/s | load s | ttft ms | peak RSS MiB |";
const MD_RULE: &str =
    "| ----- | ---: | -----: | ------: | ---: | --: | -----: | ------: | -----------: |";

/// A markdown row: size in MiB, params in millions, as llama-bench prints them.
fn md_row(r: &BenchResult) -> String {
    format!(
        "| {} | {:.2} MiB | {:.2} M | {} | {} | {:.2} ± {:.2} | {:.3} | {:.2} | {:.1} |",
        r.model_type,
        r.model_size as f64 / (1024.0 * 1024.0),
        r.model_n_params as f64 / 1e6,
        r.n_threads,
        r.test,
        r.avg_ts,
        r.stddev_ts,
        r.load_time_s,
        r.ttft_ms,
        r.peak_rss_mib,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        a: BenchArgs,
    }

    fn args(s: &[&str]) -> BenchArgs {
        let argv = std::iter::once("bench").chain(s.iter().copied());
        Wrap::try_parse_from(argv).unwrap().a
    }

    #[test]
    fn plan_orders_and_names_tests_as_llama_bench() {
        let a = args(&["-p", "512,0", "-n", "128", "--pg", "64,16", "-d", "0,256"]);
        let names: Vec<_> = plan(&a).unwrap().iter().map(TestSpec::name).collect();
        assert_eq!(
            names,
            [
                "pp512",
                "tg128",
                "pp64+tg16",
                "pp512 @ d256",
                "tg128 @ d256",
                "pp64+tg16 @ d256"
            ]
        );
    }

    #[test]
    fn nothing_to_run_is_an_error() {
        let a = args(&["-p", "0", "-n", "0"]);
        assert!(matches!(plan(&a), Err(BenchError::NoTests)));
        let a = args(&["-r", "0"]);
        assert!(matches!(plan(&a), Err(BenchError::ZeroRepetitions)));
        let a = args(&["--pg", "0,4"]);
        assert!(matches!(plan(&a), Err(BenchError::EmptyPg { .. })));
    }

    #[test]
    fn pg_parser_rejects_malformed_pairs() {
        assert_eq!(parse_pg("512,128"), Ok((512, 128)));
        assert!(parse_pg("512").is_err());
        assert!(parse_pg("a,1").is_err());
    }

    #[test]
    fn single_dash_pg_is_expanded_only_for_bench() {
        let v = |s: &[&str]| {
            s.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            expand_llama_flags(v(&["pith", "bench", "-pg", "8,2"])),
            v(&["pith", "bench", "--pg", "8,2"])
        );
        assert_eq!(
            expand_llama_flags(v(&["pith", "run", "-pg"])),
            v(&["pith", "run", "-pg"])
        );
    }

    #[test]
    fn mean_and_sample_sd() {
        let (m, sd) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m, 5.0);
        // Sample variance of this set is 32/7.
        assert!((sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[3.0]), (3.0, 0.0));
    }
}
