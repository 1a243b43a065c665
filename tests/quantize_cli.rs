//! `pith convert` and `pith quantize` driven as a user does.
//!
//! * GGUF → `pith convert --to hf` → `pith quantize` → llama.cpp: for a byte-level BPE
//!   (llama3), a SentencePiece (phi3) and the Gemma tokenizer, llama-server on pith's file
//!   gives exactly the prompt ids, greedy tokens and log-probs it gives on the original
//!   (`tests/golden/arch/<variant>.json`, `tests/py/convert_llama_check.py`). The Python
//!   `gguf` reader reads the file on the way.
//! * Bad input: each a clear error, a failing exit status, and no output file or
//!   temporary file left behind.
//!
//! Needs python3 with `gguf` and numpy, and llama-server (`~/.cache/llama-cpp-anchor/bin`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pith(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pith"))
        .args(args)
        .output()
        .expect("run pith")
}

macro_rules! os {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

fn python(script: &str, args: &[&std::ffi::OsStr]) -> Output {
    Command::new("python3")
        .arg(repo_root().join(script))
        .args(args)
        .output()
        .expect("run python3")
}

const VARIANTS: [&str; 3] = ["llama3-f32", "phi3-f32", "gemma3-tiny-f32"];

fn arch_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<&std::ffi::OsStr> = vec![dir.path().as_os_str(), "--only".as_ref()];
        args.extend(VARIANTS.iter().map(|v| std::ffi::OsStr::new(*v)));
        let out = python("tests/py/make_arch_models.py", &args);
        assert!(
            out.status.success(),
            "make_arch_models.py failed (needs `pip install gguf==0.19.0 numpy==2.4.6`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn convert_quantize_roundtrip_identical_in_llama_cpp() {
    let tmp = tempfile::tempdir().unwrap();
    for v in VARIANTS {
        let original = arch_dir().join(format!("{v}.gguf"));
        let hf = tmp.path().join(format!("{v}-hf"));
        ok(
            &pith(os!["convert", &original, &hf, "--quiet"]),
            "pith convert",
        );
        let back = tmp.path().join(format!("{v}.gguf"));
        // The -f32 twins keep a tied embedding in F16 (phi3's is untied F32).
        let embd = if v == "phi3-f32" { "f32" } else { "f16" };
        ok(
            &pith(os![
                "quantize",
                &hf,
                &back,
                "--type",
                "F32",
                "--token-embedding-type",
                embd,
                "--quiet"
            ]),
            "pith quantize",
        );
        let golden = repo_root().join(format!("tests/golden/arch/{v}.json"));
        let out = python("tests/py/convert_llama_check.py", os![&back, &golden]);
        assert!(
            out.status.success(),
            "{v}: llama.cpp on pith's GGUF differs from the original:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Asserts a failed run whose message contains `needle`, and no file in `dir` but `keep`.
fn assert_refused(out: &Output, needle: &str, dir: &Path, keep: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure ({needle}), got success"
    );
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "error message lacks '{needle}': {err}"
    );
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            keep.contains(&name.as_str()),
            "left behind: {name} (after: {err})"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn bad_inputs_are_clear_errors_without_output() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    let original = arch_dir().join("phi3-f32.gguf");
    ok(
        &pith(os!["convert", &original, &hf, "--quiet"]),
        "pith convert",
    );
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("m.gguf");

    // Unknown type name.
    let r = pith(os!["quantize", &hf, &out, "--type", "Q7_K"]);
    assert_refused(&r, "unknown quantization type 'Q7_K'", &out_dir, &[]);
    // Unknown --tensor-type type.
    let r = pith(os!["quantize", &hf, &out, "--tensor-type", "attn_v=q9"]);
    assert_refused(&r, "attn_v=q9", &out_dir, &[]);

    // Unsupported architecture.
    let bad = tmp.path().join("mamba");
    copy_dir(&hf, &bad);
    let cfg = std::fs::read_to_string(bad.join("config.json")).unwrap();
    std::fs::write(
        bad.join("config.json"),
        cfg.replace("Phi3ForCausalLM", "MambaForCausalLM"),
    )
    .unwrap();
    let r = pith(os!["quantize", &bad, &out]);
    assert_refused(&r, "MambaForCausalLM", &out_dir, &[]);

    // config.json disagrees with the weights.
    let bad = tmp.path().join("shape");
    copy_dir(&hf, &bad);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bad.join("config.json")).unwrap()).unwrap();
    let mut cfg = cfg.as_object().unwrap().clone();
    let ff = cfg["intermediate_size"].as_u64().unwrap();
    cfg.insert("intermediate_size".into(), (ff + 32).into());
    std::fs::write(bad.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let r = pith(os!["quantize", &bad, &out]);
    assert_refused(&r, "shape", &out_dir, &[]);

    // Truncated safetensors.
    let bad = tmp.path().join("trunc");
    copy_dir(&hf, &bad);
    let st = bad.join("model.safetensors");
    let len = std::fs::metadata(&st).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&st)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();
    let r = pith(os!["quantize", &bad, &out]);
    assert_refused(&r, "model.safetensors", &out_dir, &[]);

    // A tokenizer pith cannot convert (no tokenizer.model, a Unigram tokenizer.json).
    let bad = tmp.path().join("tok");
    copy_dir(&hf, &bad);
    std::fs::remove_file(bad.join("tokenizer.model")).unwrap();
    let tj = std::fs::read_to_string(bad.join("tokenizer.json")).unwrap();
    std::fs::write(
        bad.join("tokenizer.json"),
        tj.replacen("\"type\":\"BPE\"", "\"type\":\"Unigram\"", 1),
    )
    .unwrap();
    let r = pith(os!["quantize", &bad, &out]);
    assert_refused(&r, "tokenizer", &out_dir, &[]);

    // Missing input.
    let r = pith(os!["quantize", &tmp.path().join("nope"), &out]);
    assert_refused(&r, "no such file", &out_dir, &[]);

    // Output exists: refused without --force, replaced with it.
    std::fs::write(&out, b"keep me").unwrap();
    let r = pith(os!["quantize", &hf, &out, "--type", "Q8_0", "--quiet"]);
    assert_refused(&r, "already exists", &out_dir, &["m.gguf"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    ok(
        &pith(os![
            "quantize", &hf, &out, "--type", "Q8_0", "--quiet", "--force"
        ]),
        "--force",
    );
    let check = Command::new("python3")
        .args([
            "-c",
            "import gguf,sys; r=gguf.GGUFReader(sys.argv[1]); print(len(r.tensors))",
        ])
        .arg(&out)
        .output()
        .unwrap();
    ok(&check, "gguf reader");

    // convert refuses an existing directory.
    let r = pith(os!["convert", &original, &hf, "--quiet"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("already exists"));
}
