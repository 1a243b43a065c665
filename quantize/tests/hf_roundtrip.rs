//! GGUF → HF (`pith convert --to hf`) → GGUF (`pith quantize`), and HF loaded by
//! transformers.
//!
//! * Round trip on the small F32 models of every architecture: every tensor bit-exact,
//!   every `tokenizer.*` key of the original identical, and the same `ArchConfig`.
//! * transformers loads each converted directory; its tokenizer gives llama.cpp's prompt ids
//!   and its next-token log-probs and greedy tokens match llama.cpp's goldens
//!   (`tests/golden/arch/<variant>.json`). Skipped, with the reason printed, when
//!   `import transformers` fails.
//! * The real model (ignored by default, ~10 min on 2 cores): round trip bit-exact, and
//!   transformers on the converted directory reproduces `tests/golden/hf/gemma3-270m.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pith_quantize::convert::{convert_to_hf, ConvertOptions};
use pith_quantize::mixture::FileType;
use pith_quantize::pipeline::{quantize_model, QuantizeOptions};
use pith_runtime::gguf::GgufFile;

const VARIANTS: [&str; 6] = [
    "llama2-f32",
    "llama3-f32",
    "qwen2-f32",
    "qwen3-f32",
    "phi3-f32",
    "gemma3-tiny-f32",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn arch_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("python3")
            .arg(repo_root().join("tests/py/make_arch_models.py"))
            .arg(dir.path())
            .arg("--only")
            .args(VARIANTS)
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

/// Converted HF directories, one per variant.
fn hf_dirs() -> &'static (tempfile::TempDir, Vec<PathBuf>) {
    static DIRS: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = VARIANTS
            .iter()
            .map(|v| {
                let out = tmp.path().join(v);
                convert_to_hf(
                    &arch_dir().join(format!("{v}.gguf")),
                    &out,
                    &ConvertOptions::default(),
                )
                .unwrap_or_else(|e| panic!("{v}: {e}"));
                out
            })
            .collect();
        (tmp, dirs)
    })
}

fn f32_values(f: &GgufFile, name: &str) -> Vec<u32> {
    let t = f
        .tensor(name)
        .unwrap_or_else(|| panic!("tensor {name} missing"));
    pith_runtime::quant::dequantize_to_vec(t.ty(), t.data)
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

fn assert_roundtrip(original: &Path, back: &Path, what: &str) {
    let a = GgufFile::open(original).unwrap();
    let b = GgufFile::open(back).unwrap();
    assert_eq!(
        a.tensor_infos().len(),
        b.tensor_infos().len(),
        "{what}: tensor count"
    );
    for t in a.tensor_infos() {
        let tb = b
            .tensor(&t.name)
            .unwrap_or_else(|| panic!("{what}: {} missing", t.name));
        assert_eq!(tb.dims(), &t.dims[..], "{what}: {} dims", t.name);
        assert!(
            f32_values(&a, &t.name) == f32_values(&b, &t.name),
            "{what}: {} values differ",
            t.name
        );
    }
    for (k, v) in a.metadata() {
        if k.starts_with("tokenizer.") {
            assert_eq!(b.get(k), Some(v), "{what}: {k}");
        }
    }
    let mut ca = pith_models::ArchConfig::from_metadata(&a).unwrap();
    let mut cb = pith_models::ArchConfig::from_metadata(&b).unwrap();
    ca.name = None;
    cb.name = None;
    assert_eq!(ca, cb, "{what}: ArchConfig");
}

#[test]
fn small_models_roundtrip_bit_exact() {
    let (_tmp, dirs) = hf_dirs();
    let out = tempfile::tempdir().unwrap();
    for (v, dir) in VARIANTS.iter().zip(dirs) {
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ] {
            assert!(dir.join(f).is_file(), "{v}: {f} missing");
        }
        let back = out.path().join(format!("{v}.gguf"));
        let mut o = QuantizeOptions::new(FileType::F32);
        o.progress = false;
        quantize_model(dir, &back, &o).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_roundtrip(&arch_dir().join(format!("{v}.gguf")), &back, v);
    }
}

/// Runs `tests/py/hf_transformers_check.py`; `false` (after printing why) when
/// transformers cannot be imported.
fn transformers_check(dir: &Path, golden: &Path, extra: &[&str]) -> bool {
    let out = Command::new("python3")
        .arg(repo_root().join("tests/py/hf_transformers_check.py"))
        .arg(dir)
        .arg(golden)
        .args(extra)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => true,
        Some(3) => {
            println!("skipped: {}", stdout.trim());
            false
        }
        _ => panic!(
            "{}: transformers check failed:\n{stdout}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn transformers_loads_converted_small_models() {
    let (_tmp, dirs) = hf_dirs();
    for (v, dir) in VARIANTS.iter().zip(dirs) {
        let golden = repo_root().join(format!("tests/golden/arch/{v}.json"));
        if !transformers_check(dir, &golden, &[]) {
            return;
        }
    }
}

#[test]
#[ignore = "real model: ~1 GB of f32 and a transformers run (~10 min on 2 cores)"]
fn real_model_roundtrip_and_transformers() {
    let home = std::env::var_os("PITH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/pith"));
    let model = home.join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        model.exists(),
        "the real model is missing: {}",
        model.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("hf");
    convert_to_hf(&model, &hf, &ConvertOptions::default()).unwrap();
    // F32 copy of the original, to compare against: quantizing the HF dir to F32 must
    // give back the dequantized original exactly.
    let back = tmp.path().join("back.gguf");
    let mut o = QuantizeOptions::new(FileType::F32);
    o.progress = false;
    quantize_model(&hf, &back, &o).unwrap();
    let a = GgufFile::open(&model).unwrap();
    let b = GgufFile::open(&back).unwrap();
    for t in a.tensor_infos() {
        assert!(
            f32_values(&a, &t.name) == f32_values(&b, &t.name),
            "{} differs",
            t.name
        );
    }
    for (k, v) in a.metadata() {
        if k.starts_with("tokenizer.") {
            assert_eq!(b.get(k), Some(v), "{k}");
        }
    }
    transformers_check(
        &hf,
        &repo_root().join("tests/golden/hf/gemma3-270m.json"),
        &["--tol", "0.001"],
    );
}

/// Splits `dir/model.safetensors` into two shards plus `model.safetensors.index.json`.
fn shard(dir: &Path, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "model.safetensors" {
            std::fs::copy(e.path(), out.join(e.file_name())).unwrap();
        }
    }
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    for (part, chunk) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", part + 1);
        let views: Vec<(String, safetensors::tensor::TensorView)> = chunk
            .iter()
            .map(|n| (n.clone(), st.tensor(n).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, &out.join(&file)).unwrap();
        for n in chunk {
            weight_map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(out.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

#[test]
fn sharded_and_bf16_inputs() {
    use pith_quantize::convert::HfDtype;
    let v = "llama2-f32";
    let original = arch_dir().join(format!("{v}.gguf"));
    let tmp = tempfile::tempdir().unwrap();
    let quant = |dir: &Path, out: &str| {
        let p = tmp.path().join(out);
        let mut o = QuantizeOptions::new(FileType::F32);
        o.progress = false;
        o.name = Some("m".into());
        quantize_model(dir, &p, &o).unwrap();
        p
    };
    // Sharded: the same output file as the single-file directory.
    let single = tmp.path().join("single");
    convert_to_hf(&original, &single, &ConvertOptions::default()).unwrap();
    let sharded = tmp.path().join("sharded");
    shard(&single, &sharded);
    assert!(!sharded.join("model.safetensors").exists());
    let (a, b) = (quant(&single, "a.gguf"), quant(&sharded, "b.gguf"));
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "sharded input gives another file"
    );

    // bf16: every value is the original rounded to bf16 (nearest even).
    let bf = tmp.path().join("bf16");
    let o = ConvertOptions {
        dtype: HfDtype::Bf16,
        ..Default::default()
    };
    convert_to_hf(&original, &bf, &o).unwrap();
    let c = quant(&bf, "c.gguf");
    let (fo, fc) = (
        GgufFile::open(&original).unwrap(),
        GgufFile::open(&c).unwrap(),
    );
    for t in fo.tensor_infos() {
        let want: Vec<u32> = f32_values(&fo, &t.name)
            .into_iter()
            .map(|b| half::bf16::from_f32(f32::from_bits(b)).to_f32().to_bits())
            .collect();
        assert!(
            want == f32_values(&fc, &t.name),
            "{}: not the bf16 rounding",
            t.name
        );
    }
}
