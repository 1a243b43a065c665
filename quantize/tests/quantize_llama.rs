//! `pith quantize` against `llama-quantize`: the same input gives the same output file,
//! byte for byte (header, metadata, tensor order, types, quantized data, padding).
//!
//! Inputs: the small all-F32 models of `tests/py/make_arch_models.py` (every architecture's
//! tensor layout) and the real Gemma 3 270M (llama.cpp-written, requantized with
//! `--allow-requantize`, which pith refuses without the flag, as llama-quantize does).
//! Needs `llama-quantize` (`~/.cache/llama-cpp-anchor/bin`, or `$LLAMA_QUANTIZE`) and the
//! Python `gguf` package.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pith_quantize::mixture::FileType;
use pith_quantize::pipeline::{quantize_model, QuantizeOptions};
use pith_quantize::Error;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
}

fn real_model() -> PathBuf {
    let pith_home = std::env::var_os("PITH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/pith"));
    let p = pith_home.join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        p.exists(),
        "the real model is missing: {} (fetch it with `pith fetch`)",
        p.display()
    );
    p
}

fn llama_quantize() -> PathBuf {
    let p = std::env::var_os("LLAMA_QUANTIZE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/llama-cpp-anchor/bin/llama-quantize"));
    assert!(
        p.exists(),
        "llama-quantize is missing: {} (build it with shared/tools/build-llama-cpp.sh or set LLAMA_QUANTIZE)",
        p.display()
    );
    p
}

/// The `-f32` architecture models, written once per test binary.
fn arch_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("python3")
            .arg(repo_root().join("tests/py/make_arch_models.py"))
            .arg(dir.path())
            .args(["--only", "llama2-f32", "qwen2-f32", "phi3-f32", "qwen3-f32"])
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "make_arch_models.py failed (needs `pip install gguf==0.19.0 numpy==2.4.6`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
    .path()
}

fn llama_out(input: &Path, out: &Path, ty: &str, requant: bool) {
    let mut cmd = Command::new(llama_quantize());
    if requant {
        cmd.arg("--allow-requantize");
    }
    let o = cmd
        .arg(input)
        .arg(out)
        .arg(ty)
        .arg("2")
        .output()
        .expect("run llama-quantize");
    assert!(
        o.status.success(),
        "llama-quantize {ty}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn opts(ty: &str) -> QuantizeOptions {
    let mut o = QuantizeOptions::new(FileType::parse(ty).unwrap());
    o.progress = false;
    o.threads = Some(2);
    o
}

fn assert_same_file(a: &Path, b: &Path, what: &str) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(x.len(), y.len(), "{what}: file sizes differ");
    if let Some(i) = x.iter().zip(&y).position(|(p, q)| p != q) {
        panic!("{what}: first differing byte at offset {i} of {}", x.len());
    }
}

#[test]
fn small_models_byte_identical_to_llama_quantize() {
    let dir = arch_dir();
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "llama2-f32",
            &[
                "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q3_K_M", "Q2_K", "Q6_K", "Q8_0", "Q4_0", "F16",
            ],
        ),
        ("qwen2-f32", &["Q4_K_M", "Q8_0"]),
        ("qwen3-f32", &["Q5_K_S", "BF16"]),
        ("phi3-f32", &["Q4_K_M", "Q3_K_L"]),
    ];
    for (model, types) in cases {
        let input = dir.join(format!("{model}.gguf"));
        for ty in *types {
            let ours = tmp.path().join(format!("{model}-{ty}-pith.gguf"));
            let theirs = tmp.path().join(format!("{model}-{ty}-llama.gguf"));
            quantize_model(&input, &ours, &opts(ty)).unwrap();
            llama_out(&input, &theirs, ty, false);
            assert_same_file(&ours, &theirs, &format!("{model} {ty}"));
        }
    }
}

#[test]
fn real_model_requantize_refused_then_identical() {
    let model = real_model();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q8.gguf");
    let err = quantize_model(&model, &out, &opts("Q8_0")).unwrap_err();
    assert!(matches!(err, Error::Requantize { .. }), "{err}");
    assert!(!out.exists(), "no output after a refused requantize");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no temp file left"
    );

    let mut o = opts("Q8_0");
    o.allow_requantize = true;
    quantize_model(&model, &out, &o).unwrap();
    let theirs = tmp.path().join("q8-llama.gguf");
    llama_out(&model, &theirs, "Q8_0", true);
    assert_same_file(&out, &theirs, "real model Q4_K_M -> Q8_0");

    // An existing output is refused without overwrite.
    assert!(matches!(
        quantize_model(&model, &out, &o),
        Err(Error::OutputExists(_))
    ));
}

/// An importance matrix over every 2-D weight of `model`, with deterministic values.
fn synthetic_imatrix(model: &Path) -> pith_quantize::imatrix::ImatrixFile {
    use pith_quantize::imatrix::{ImatrixEntry, ImatrixFile};
    let f = pith_runtime::gguf::GgufFile::open(model).unwrap();
    let mut m = ImatrixFile {
        datasets: vec!["synthetic.txt".into()],
        chunk_count: 3,
        chunk_size: 512,
        ..Default::default()
    };
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for t in f.tensor_infos() {
        if t.dims.len() < 2 || t.name.starts_with("token_embd") {
            continue;
        }
        let n = t.dims[0] as usize;
        let sums: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                1536.0 * ((state >> 40) as f32 / (1u64 << 24) as f32) + 1.0
            })
            .collect();
        m.entries.insert(
            t.name.clone(),
            ImatrixEntry::new(&t.name, sums, vec![1536]).unwrap(),
        );
    }
    m
}

#[test]
fn imatrix_quantization_byte_identical_to_llama_quantize() {
    use pith_quantize::imatrix::ImatrixFormat;
    let input = arch_dir().join("llama2-f32.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let im = synthetic_imatrix(&input);
    for (format, file) in [
        (ImatrixFormat::Gguf, "im.gguf"),
        (ImatrixFormat::Dat, "im.dat"),
    ] {
        let im_path = tmp.path().join(file);
        im.save(&im_path, format).unwrap();
        for ty in ["Q4_K_M", "Q4_0", "Q3_K_S"] {
            let ours = tmp.path().join(format!("{ty}-{file}-pith.gguf"));
            let theirs = tmp.path().join(format!("{ty}-{file}-llama.gguf"));
            let mut o = opts(ty);
            o.imatrix = Some(im_path.clone());
            quantize_model(&input, &ours, &o).unwrap();
            let out = Command::new(llama_quantize())
                .arg("--imatrix")
                .arg(&im_path)
                .arg(&input)
                .arg(&theirs)
                .arg(ty)
                .arg("2")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_same_file(&ours, &theirs, &format!("{ty} with {file}"));
            // The imatrix changes the quantized data (not only the metadata).
            let plain = tmp.path().join(format!("{ty}-plain.gguf"));
            if !plain.exists() {
                quantize_model(&input, &plain, &opts(ty)).unwrap();
            }
            let (a, b) = (
                pith_runtime::gguf::GgufFile::open(&plain).unwrap(),
                pith_runtime::gguf::GgufFile::open(&ours).unwrap(),
            );
            let differs = a.tensor_infos().iter().any(|t| {
                a.tensor_bytes(t) != b.tensor(&t.name).map(|v| v.data).unwrap_or_default()
            });
            assert!(differs, "{ty}: the imatrix changed nothing");
        }
    }
}

#[test]
fn overrides_byte_identical_to_llama_quantize() {
    use pith_quantize::mixture::{parse_tensor_type, MixtureOptions};
    let input = arch_dir().join("llama2-f32.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["--leave-output-tensor"],
        &[
            "--output-tensor-type",
            "q5_0",
            "--token-embedding-type",
            "q8_0",
        ],
        &[
            "--tensor-type",
            "attn_v=q8_0",
            "--tensor-type",
            "ffn_down=q5_k",
        ],
    ];
    for (k, args) in cases.iter().enumerate() {
        let mut o = opts("Q4_K_M");
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match *a {
                "--leave-output-tensor" => o.mixture.leave_output_tensor = true,
                "--output-tensor-type" => {
                    o.mixture.output_tensor_type =
                        Some(parse_tensor_type(it.next().unwrap()).unwrap())
                }
                "--token-embedding-type" => {
                    o.mixture.token_embedding_type =
                        Some(parse_tensor_type(it.next().unwrap()).unwrap())
                }
                "--tensor-type" => o
                    .mixture
                    .tensor_types
                    .push(MixtureOptions::parse_tensor_type_spec(it.next().unwrap()).unwrap()),
                other => panic!("{other}"),
            }
        }
        let ours = tmp.path().join(format!("{k}-pith.gguf"));
        let theirs = tmp.path().join(format!("{k}-llama.gguf"));
        quantize_model(&input, &ours, &o).unwrap();
        let out = Command::new(llama_quantize())
            .args(*args)
            .arg(&input)
            .arg(&theirs)
            .args(["Q4_K_M", "2"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_same_file(&ours, &theirs, &args.join(" "));
    }
    // A type whose block does not divide the rows: llama-quantize aborts (GGML_ASSERT in
    // gguf.cpp); pith refuses with an error and writes nothing.
    let mut o = opts("Q4_K_M");
    o.mixture.token_embedding_type = Some(pith_quantize::GgmlType::Q4K);
    let out = tmp.path().join("bad.gguf");
    assert!(quantize_model(&input, &out, &o).is_err());
    assert!(!out.exists());
}
