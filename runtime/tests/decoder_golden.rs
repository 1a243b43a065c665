//! The decoder against two references no one here wrote:
//!
//! - **Hugging Face transformers** (`Gemma3ForCausalLM`, float32, the GGUF's weights
//!   dequantized by the `gguf` package; `tests/golden/hf`): with [`Numerics::Exact`] pith
//!   matches it on the real Gemma 3 270M to < 1e-4 in log-prob with identical 32-token
//!   greedy continuations.
//! - **llama.cpp** (`llama-server -fa off`; `tests/golden/logits`, `tests/golden/arch`,
//!   each with the script that made it):
//!   - **f32 weights** (the `*-f32` small models of every architecture): top-5 the same,
//!     in order, log-probs within 0.05, 16-token greedy continuations identical. This pins
//!     the architecture logic (norms, rope styles and factors, GQA, biases, q/k norms,
//!     sliding windows, fused projections) against llama.cpp itself.
//!   - **quantized weights** (the real model and the quantized small models): ggml rounds
//!     activations to Q8_0/Q8_1/Q8_K inside quantized matmuls, keeps K/V and attention
//!     weights in f16 and looks GELU up in an f16 table. pith's default
//!     [`Numerics::Ggml`] reproduces those roundings, but not every kernel's summation
//!     order, and these models amplify the difference: llama.cpp is itself 0.12 (top-1) to
//!     0.34 (top-10) away from exact arithmetic on the real model, and its own flash-attention
//!     path moves the same log-probs by up to 0.8. Asserted: the top-1 token agrees (for the
//!     small models wherever llama.cpp's own margin is clear), greedy continuations agree
//!     for their first tokens, and log-probs agree within the bounds below. The measured
//!     figures are printed (`--nocapture`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pith_runtime::model::{KvType, Logits, Model, ModelOptions, Numerics};
use pith_runtime::sampler::{argmax, log_softmax_top_k};
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn golden(rel: &str) -> Value {
    let p = repo_root().join(rel);
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .expect("golden JSON")
}

/// Runs one of the repository's Python scripts (they need the `gguf` package).
fn run_python(script: &str, args: &[&std::ffi::OsStr]) {
    let script = repo_root().join(script);
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{} failed (needs `pip install gguf==0.19.0 numpy==2.4.6`): {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The small architecture models, regenerated once per test run from their numpy seed.
fn arch_models_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        run_python("tests/py/make_arch_models.py", &[dir.path().as_os_str()]);
        dir
    })
    .path()
}

/// The strict level: top-5 the same and in order, log-probs within 0.05, greedy
/// continuations identical.
fn assert_strict(results: &[CaseResult], reference: &str) {
    assert!(!results.is_empty());
    for r in results {
        assert!(
            r.top5_same_order,
            "{}: top-5 ids differ from {reference}",
            r.name
        );
        assert!(
            r.max_diff <= 0.05,
            "{}: log-prob differs from {reference} by {}",
            r.name,
            r.max_diff
        );
        assert_eq!(
            r.greedy_divergence, None,
            "{}: greedy continuation differs from {reference}",
            r.name
        );
    }
}

fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).expect("read model");
    format!("{:x}", Sha256::digest(&bytes))
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn top(v: &Value) -> Vec<(u32, f32)> {
    v.as_array()
        .expect("top")
        .iter()
        .map(|p| {
            (
                p[0].as_u64().expect("id") as u32,
                p[1].as_f64().expect("lp") as f32,
            )
        })
        .collect()
}

/// Agreement of one case.
struct CaseResult {
    name: String,
    /// pith's top-5 ids in order equal llama.cpp's.
    top5_same_order: bool,
    /// How many of llama.cpp's top-5 ids are in pith's top-5.
    top5_overlap: usize,
    top1_same: bool,
    /// llama.cpp's margin between its top-1 and top-2 log-probs.
    golden_margin: f32,
    /// Max |Δ log-prob| over llama.cpp's top-5 tokens.
    max_diff: f32,
    /// First greedy step where pith differs from the reference, if any.
    greedy_divergence: Option<usize>,
    /// First greedy step where the reference's own top-2 margin is below
    /// [`NEAR_TIE`] (its choice there is within its own numerical noise), if any.
    first_near_tie: Option<usize>,
}

/// A top-2 log-prob margin (nat) below which the reference's greedy choice is a near-tie:
/// llama.cpp's own flash-attention and plain paths flip such choices.
const NEAR_TIE: f32 = 0.25;

fn run_case(model: &Model, kv: KvType, case: &Value, steps: usize) -> CaseResult {
    let prompt = ids(&case["prompt_ids"]);
    let want_greedy = ids(&case["greedy_ids"]);
    let steps = steps.min(want_greedy.len());
    let steps_n = steps;
    let mut cache = model.new_cache_typed(prompt.len() + steps + 1, kv);
    let mut logits = model
        .forward(&mut cache, &prompt, Logits::Last)
        .expect("forward");
    let ours = log_softmax_top_k(&logits, model.config().n_vocab);
    let lp = |id: u32| ours.iter().find(|(i, _)| *i == id).expect("id in vocab").1;
    let theirs = top(&case["top"]);
    let max_diff = theirs
        .iter()
        .take(5)
        .map(|&(id, l)| (lp(id) - l).abs())
        .fold(0.0, f32::max);
    let our5: Vec<u32> = ours[..5].iter().map(|p| p.0).collect();
    let their5: Vec<u32> = theirs[..5].iter().map(|p| p.0).collect();
    let mut greedy = Vec::with_capacity(steps);
    for i in 0..steps {
        let t = argmax(&logits).expect("logits");
        greedy.push(t);
        if i + 1 < steps {
            logits = model
                .forward(&mut cache, &[t], Logits::Last)
                .expect("decode");
        }
    }
    CaseResult {
        name: case["name"].as_str().unwrap_or("?").to_owned(),
        top5_same_order: our5 == their5,
        top5_overlap: their5.iter().filter(|id| our5.contains(id)).count(),
        top1_same: our5[0] == their5[0],
        golden_margin: theirs[0].1 - theirs[1].1,
        max_diff,
        greedy_divergence: greedy.iter().zip(&want_greedy).position(|(a, b)| a != b),
        first_near_tie: case["greedy_top"].as_array().and_then(|steps| {
            steps.iter().take(steps_n).position(|st| {
                let t = top(st);
                t.len() >= 2 && t[0].1 - t[1].1 < NEAR_TIE
            })
        }),
    }
}

fn run_golden(model_path: &Path, g: &Value, steps: usize) -> Vec<CaseResult> {
    run_golden_with(model_path, g, steps, Numerics::Ggml, KvType::F16)
}

/// `numerics` and `kv` choose how pith rounds: as llama.cpp (`Ggml`, f16 KV) or exactly
/// (`Exact`, f32 KV).
fn run_golden_with(
    model_path: &Path,
    g: &Value,
    steps: usize,
    numerics: Numerics,
    kv: KvType,
) -> Vec<CaseResult> {
    let want_sha = g["model_sha256"].as_str().expect("model_sha256");
    assert_eq!(
        sha256(model_path),
        want_sha,
        "{} is not the file the golden was made from",
        model_path.display()
    );
    let model = Model::open(
        model_path,
        &ModelOptions {
            numerics,
            ..ModelOptions::default()
        },
    )
    .expect("load model");
    let results: Vec<CaseResult> = g["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| run_case(&model, kv, c, steps))
        .collect();
    for r in &results {
        println!(
            "{}: {:<22} top5 {} (overlap {}/5) top1 {} margin {:.3} max|Δlp| {:.4} greedy divergence {:?} (first near-tie {:?})",
            model_path.file_name().unwrap().to_string_lossy(),
            r.name,
            if r.top5_same_order { "same" } else { "reordered" },
            r.top5_overlap,
            if r.top1_same { "same" } else { "DIFF" },
            r.golden_margin,
            r.max_diff,
            r.greedy_divergence,
            r.first_near_tie
        );
    }
    results
}

fn strict(variant: &str) {
    let g = golden(&format!("tests/golden/arch/{variant}.json"));
    let path = arch_models_dir().join(format!("{variant}.gguf"));
    assert_strict(
        &run_golden(&path, &g, 16),
        &format!("llama.cpp ({variant})"),
    );
}

#[test]
fn llama2_f32_matches_llama_cpp() {
    strict("llama2-f32");
}

#[test]
fn llama3_f32_matches_llama_cpp() {
    strict("llama3-f32");
}

#[test]
fn gemma3_final_logit_softcapping_matches_llama_cpp() {
    strict("gemma3-softcap-f32");
}

#[test]
fn qwen2_f32_with_qkv_bias_matches_llama_cpp() {
    strict("qwen2-f32");
}

#[test]
fn qwen3_f32_matches_llama_cpp() {
    strict("qwen3-f32");
}

#[test]
fn phi3_f32_matches_llama_cpp() {
    strict("phi3-f32");
}

#[test]
fn gemma3_tiny_f32_with_sliding_window_matches_llama_cpp() {
    strict("gemma3-tiny-f32");
}

/// Quantized small models (every weight type of the Q4_0…Q8_0 family, F16, BF16): the
/// loose level described at the top of the file.
#[test]
fn quantized_small_models_track_llama_cpp() {
    for variant in ["llama2", "llama3", "qwen2", "qwen3", "phi3", "gemma3-tiny"] {
        let g = golden(&format!("tests/golden/arch/{variant}.json"));
        let path = arch_models_dir().join(format!("{variant}.gguf"));
        for r in run_golden(&path, &g, 16) {
            assert!(
                r.top5_overlap >= 3,
                "{variant}/{}: only {} of llama.cpp's top-5 in ours",
                r.name,
                r.top5_overlap
            );
            assert!(
                r.max_diff <= 1.5,
                "{variant}/{}: log-prob differs by {}",
                r.name,
                r.max_diff
            );
            if r.golden_margin >= 0.5 {
                assert!(
                    r.top1_same,
                    "{variant}/{}: top-1 differs although llama.cpp's margin is {}",
                    r.name, r.golden_margin
                );
            }
        }
    }
}

/// The real Gemma 3 270M's weights, dequantized to an all-F32 GGUF by the `gguf` package
/// (`tests/py/dequantize_gguf.py`, regenerated here and checked by sha256), against
/// llama.cpp on that same file: with F32 weights llama.cpp does not quantize activations,
/// so the strict bounds apply: top-5 the same and in order, log-probs within 0.05, and
/// identical 32-token greedy continuations on all six prompts (one crosses the 512-token
/// sliding window).
#[test]
fn gemma3_270m_f32_weights_match_llama_cpp() {
    let g = golden("tests/golden/logits/gemma3-270m-f32.json");
    let dir = tempfile::tempdir().expect("temp dir");
    let f32_path = dir.path().join("gemma-3-270m-f32.gguf");
    run_python(
        "tests/py/dequantize_gguf.py",
        &[common::gemma_path().as_os_str(), f32_path.as_os_str()],
    );
    let results = run_golden(&f32_path, &g, 32);
    assert_eq!(results.len(), 6);
    assert_strict(&results, "llama.cpp");
}

/// The real Gemma 3 270M Q4_K_M against Hugging Face transformers' `Gemma3ForCausalLM`
/// (float32, same dequantized weights; `tests/golden/hf`), with pith's exact numerics:
/// top-5 the same and in order, log-probs within 0.05 (measured ≤ 1e-4), and identical
/// 32-token greedy continuations on all six prompts, including the 678-token one that
/// crosses the 512-token sliding window.
#[test]
fn gemma3_270m_exact_matches_transformers() {
    let g = golden("tests/golden/hf/gemma3-270m.json");
    let results = run_golden_with(&common::gemma_path(), &g, 32, Numerics::Exact, KvType::F32);
    assert_eq!(results.len(), 6);
    assert_strict(&results, "transformers");
}

/// The real Gemma 3 270M Q4_K_M on six prompts (one of 678 tokens crosses the 512-token
/// sliding window). Measured: top-1 always the same, top-5 sets overlap ≥ 4/5, max
/// |Δ log-prob| 0.44; greedy continuations identical for all 32 tokens on 2–3 prompts, and
/// on the others up to a step where llama.cpp's own top-2 margin is a near-tie (0.005,
/// 0.035 and 0.20 nat). Which side of a near-tie is taken depends on summation order
/// (prefill's f32 GEMM vs ggml's integer block sums), so the per-prompt rule is the
/// check; the count of fully identical continuations only guards against a collapse.
/// The 0.05 bound holds for the same weights in F32 (above).
#[test]
fn gemma3_270m_tracks_llama_cpp() {
    let g = golden("tests/golden/logits/gemma3-270m.json");
    let results = run_golden(&common::gemma_path(), &g, 32);
    assert!(results.len() >= 5);
    for r in &results {
        assert!(r.top1_same, "{}: top-1 differs", r.name);
        assert!(
            r.top5_overlap >= 4,
            "{}: only {} of llama.cpp's top-5 in ours",
            r.name,
            r.top5_overlap
        );
        assert!(
            r.max_diff <= 0.5,
            "{}: log-prob differs by {}",
            r.name,
            r.max_diff
        );
        assert_agrees_until_near_tie(r);
    }
    let identical = results
        .iter()
        .filter(|r| r.greedy_divergence.is_none())
        .count();
    assert!(
        identical >= 2,
        "only {identical} prompts give llama.cpp's full greedy continuation"
    );
}

/// A greedy divergence is accepted only at or after llama.cpp's first near-tie.
fn assert_agrees_until_near_tie(r: &CaseResult) {
    if let Some(step) = r.greedy_divergence {
        let tie = r.first_near_tie.unwrap_or(usize::MAX);
        assert!(
            step >= tie,
            "{}: greedy differs from llama.cpp at step {step}, before its first near-tie ({:?})",
            r.name,
            r.first_near_tie
        );
    }
}
