//! `pith imatrix` and `pith eval kld` driven the way a user runs them, on a small model
//! the test writes (`tests/py/make_arch_models.py llama2-f32`). The statistics themselves
//! are checked against llama.cpp in `quantize/tests/{imatrix_llama,kld_golden}.rs`; this
//! checks the commands: files written in the format asked for (read back by the Python
//! reference reader), existing outputs refused without `--force`, the JSON report, and
//! clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn pith(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pith"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run pith")
}

fn python(args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(args)
        .current_dir(root())
        .output()
        .expect("cannot run python3");
    assert!(
        out.status.success(),
        "python3 {args:?} failed (needs `pip install gguf==0.19.0 numpy==2.4.6`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// llama2-f32 written into `dir`.
fn model(dir: &Path) -> PathBuf {
    python(&[
        "tests/py/make_arch_models.py",
        dir.to_str().unwrap(),
        "--only",
        "llama2-f32",
    ]);
    dir.join("llama2-f32.gguf")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "pith failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn imatrix_and_eval_kld_commands() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let m = m.to_str().unwrap();
    let text = "tests/data/eval_text.txt";

    // imatrix, GGUF (default) and legacy (.dat suffix) outputs.
    for (name, legacy) in [("im.gguf", false), ("im.dat", true)] {
        let out = dir.path().join(name);
        let o = out.to_str().unwrap();
        ok(&pith(&[
            "imatrix", "-m", m, "-f", text, "-o", o, "-c", "64", "--chunks", "3", "-q",
        ]));
        let r: serde_json::Value =
            serde_json::from_str(&python(&["tests/py/imatrix_read_ref.py", o])).unwrap();
        assert_eq!(r["legacy"], legacy, "{name}");
        assert_eq!(r["chunk_count"], 3);
        assert_eq!(r["datasets"], serde_json::json!([text]));
        assert_eq!(
            r["entries"].as_object().unwrap().len(),
            14,
            "2 layers × 7 weights"
        );

        // An existing output is refused and left as it was.
        let before = std::fs::read(&out).unwrap();
        let e = pith(&["imatrix", "-m", m, "-f", text, "-o", o, "-c", "64"]);
        assert!(!e.status.success());
        assert!(String::from_utf8_lossy(&e.stderr).contains("--force"));
        assert_eq!(std::fs::read(&out).unwrap(), before);
    }

    // A text too short for two chunks: a clear error, no output file.
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "Too short.").unwrap();
    let out = dir.path().join("none.gguf");
    let e = pith(&[
        "imatrix",
        "-m",
        m,
        "-f",
        short.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("tokens"));
    assert!(!out.exists());

    // eval kld of a model against itself: zero divergence, full agreement, one perplexity.
    let j: serde_json::Value = serde_json::from_str(&ok(&pith(&[
        "eval", "kld", "--base", m, "--model", m, "-f", text, "-c", "64", "--chunks", "2",
        "--json", "-q",
    ])))
    .unwrap();
    assert_eq!(j["tokens"], 2 * (64 - 1 - 32));
    assert_eq!(j["kld_mean"], 0.0);
    assert_eq!(j["same_top"], 1.0);
    assert_eq!(j["ppl_base"], j["ppl_model"]);
    // The human-readable report names the statistics llama-perplexity prints.
    let text_report = ok(&pith(&[
        "eval", "kld", "--base", m, "--model", m, "-f", text, "-c", "64", "--chunks", "2", "-q",
    ]));
    for label in [
        "Mean    KLD",
        "99.0%   KLD",
        "Same top p",
        "PPL(base)",
        "PPL(model)",
    ] {
        assert!(text_report.contains(label), "{label} in {text_report}");
    }
}
