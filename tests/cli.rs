//! End-to-end tests of the `pith` binary, driven the way a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pith"))
        .args(args)
        .output()
        .expect("run pith")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The default model, fetched through the catalog on first use.
fn model() -> PathBuf {
    pith_models::fetch::resolve_model(None)
        .unwrap_or_else(|e| panic!("the default model is not available: {e}"))
}

fn golden_case(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/logits/gemma3-270m.json");
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("golden")).expect("json");
    g["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .expect("case")
        .clone()
}

/// A minimal valid GGUF v3 with the given architecture and no tensors.
fn gguf_with_arch(arch: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes()); // tensors
    b.extend_from_slice(&1u64.to_le_bytes()); // kv
    let key = b"general.architecture";
    b.extend_from_slice(&(key.len() as u64).to_le_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(&8u32.to_le_bytes()); // string
    b.extend_from_slice(&(arch.len() as u64).to_le_bytes());
    b.extend_from_slice(arch.as_bytes());
    b
}

/// One line on stderr starting with `error:`, and a failing exit code.
fn assert_one_line_error(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "expected failure, got success; stdout: {}",
        stdout(o)
    );
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn run_greedy_streams_llama_cpp_continuation() {
    let m = model();
    // llama.cpp's greedy continuation of this prompt has no near-tie in its first 12
    // tokens (top-2 margin ≥ 0.25 nat), so pith's must be the same.
    let case = golden_case("code_fibonacci");
    let prompt = case["prompt"].as_str().expect("prompt");
    let out = pith(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        prompt,
        "-n",
        "12",
        "--temp",
        "0",
        "-t",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let golden = case["greedy_text"].as_str().expect("greedy_text");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    assert!(!text.is_empty());
    assert!(
        golden.starts_with(text),
        "pith: {text:?}\nllama.cpp: {golden:?}"
    );
    let err = stderr(&out);
    for needle in ["load:", "prompt:", "tok/s", "generation: 12 tokens"] {
        assert!(err.contains(needle), "missing '{needle}' in stats: {err}");
    }
}

#[test]
fn run_with_seed_is_reproducible_and_stop_strings_stop() {
    let m = model();
    let args = [
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "Once upon a time",
        "-n",
        "10",
        "--temp",
        "0.9",
        "--seed",
        "7",
    ];
    let a = pith(&args);
    let b = pith(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(stdout(&a), stdout(&b));

    // The greedy continuation of the antonym prompt contains a newline; stopping on it
    // must end the output right before it.
    let case = golden_case("antonyms_3shot");
    let prompt = case["prompt"].as_str().unwrap();
    let golden = case["greedy_text"].as_str().unwrap();
    let cut = golden
        .find('\n')
        .expect("golden continuation has a newline");
    let out = pith(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        prompt,
        "-n",
        "32",
        "--temp",
        "0",
        "--stop",
        "\n",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}\n", &golden[..cut]));
    assert!(stderr(&out).contains("finish: stop"), "{}", stderr(&out));
}

#[test]
fn info_prints_architecture_tokenizer_and_tensors() {
    let m = model();
    let out = pith(&["info", m.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    for needle in [
        "## architecture: gemma3",
        "layers 18 | embedding 640",
        "heads 4 (kv 1) | head dim 256",
        "sliding window 512 tokens; global layers [5, 11, 17]",
        "vocab=262144",
        "token_embd.weight",
        "Q8_0",
        "[640, 262144]",
        "total:  236 tensors",
    ] {
        assert!(s.contains(needle), "missing {needle:?} in info output");
    }
}

#[test]
fn bad_inputs_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.gguf");
    assert_one_line_error(
        &pith(&["run", "-m", missing.to_str().unwrap(), "-p", "x"]),
        "missing.gguf",
    );
    assert_one_line_error(&pith(&["info", missing.to_str().unwrap()]), "missing.gguf");

    let not_gguf = dir.path().join("notes.txt");
    std::fs::write(&not_gguf, "hello, this is not a model").unwrap();
    assert_one_line_error(
        &pith(&["run", "-m", not_gguf.to_str().unwrap(), "-p", "x"]),
        "not a GGUF file",
    );

    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &gguf_with_arch("gemma3")[..30]).unwrap();
    assert_one_line_error(
        &pith(&["run", "-m", truncated.to_str().unwrap(), "-p", "x"]),
        "truncated",
    );

    let mamba = dir.path().join("mamba.gguf");
    std::fs::write(&mamba, gguf_with_arch("mamba")).unwrap();
    assert_one_line_error(
        &pith(&["run", "-m", mamba.to_str().unwrap(), "-p", "x"]),
        "unsupported architecture 'mamba'",
    );

    let o = pith(&["run", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2), "clap exits 2 on a bad flag");
    assert!(stderr(&o).contains("unexpected argument '--no-such-flag'"));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn prompt_longer_than_context_is_refused() {
    let m = model();
    let long = "word ".repeat(200);
    let out = pith(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        &long,
        "--ctx",
        "64",
        "-n",
        "4",
    ]);
    assert_one_line_error(&out, "but the context holds 64");
}
