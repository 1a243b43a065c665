//! Importance matrices against llama.cpp's `llama-imatrix` (files committed under
//! `tests/golden/imatrix/`, made by `tests/py/imatrix_kld_golden.py`) and an independent
//! Python reader of both file formats (`tests/py/imatrix_read_ref.py`, the `gguf`
//! package for GGUF files, `struct` for legacy `.dat` files).
//!
//! - llama.cpp's files load, and [`ImatrixFile::get`] gives what llama-quantize would use;
//!   saving them again (either format) reproduces llama-imatrix's bytes exactly.
//! - pith collects the same statistics as llama-imatrix on the same models and text
//!   (f32 small models, `-c 128 --chunks 4`): same entries, same token counts, per-column
//!   importance within 2e-3 relative (measured 3.5e-4 on llama2-f32).
//! - pith's files (both formats) are read by the Python reference as written.

mod imatrix_common;

use std::path::Path;

use imatrix_common::{load, python, repo_root, small_model, text_tokens, TEXT};
use pith_quantize::imatrix::{collect, CollectOptions, ImatrixFile, ImatrixFormat};
use serde_json::Value;

const MODELS: [&str; 2] = ["llama2-f32", "gemma3-tiny-f32"];

fn reference(path: &Path) -> Value {
    let out = python("tests/py/imatrix_read_ref.py", &[path.as_os_str()]);
    serde_json::from_str(&out).expect("reference JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// Asserts `file` holds exactly the entries (importance values) of the Python reference.
fn assert_same_as_reference(file: &ImatrixFile, path: &Path) {
    let r = reference(path);
    let entries = r["entries"].as_object().expect("entries");
    assert_eq!(file.len(), entries.len(), "{}", path.display());
    for (name, e) in entries {
        let want = floats(&e["importance"]);
        let got = file.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // Same f32 division on both sides: equal up to the JSON round trip.
            assert!(
                (g - w).abs() <= 1e-6 * w.abs(),
                "{}: {name}[{i}]: pith {g}, reference {w}",
                path.display()
            );
        }
    }
    assert_eq!(
        Some(u64::from(file.chunk_count)),
        r["chunk_count"].as_u64(),
        "chunk count"
    );
}

#[test]
fn llama_imatrix_files_load_as_llama_quantize_reads_them() {
    for name in MODELS {
        for ext in ["gguf", "dat"] {
            let p = repo_root().join(format!("tests/golden/imatrix/{name}.imatrix.{ext}"));
            let f = ImatrixFile::load(&p).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(f.is_legacy, ext == "dat");
            assert_eq!(f.datasets, [TEXT]);
            assert_eq!(f.chunk_count, 4);
            if ext == "gguf" {
                assert_eq!(f.chunk_size, 128);
                // 4 chunks of 128 tokens per weight.
                assert!(f.entries.values().all(|e| e.counts == [512]));
            }
            assert_same_as_reference(&f, &p);
        }
    }
}

#[test]
fn rewriting_llama_files_reproduces_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for name in MODELS {
        for (ext, format) in [("gguf", ImatrixFormat::Gguf), ("dat", ImatrixFormat::Dat)] {
            let p = repo_root().join(format!("tests/golden/imatrix/{name}.imatrix.{ext}"));
            let out = dir.path().join(format!("{name}.{ext}"));
            ImatrixFile::load(&p).unwrap().save(&out, format).unwrap();
            assert!(
                std::fs::read(&out).unwrap() == std::fs::read(&p).unwrap(),
                "{name}.{ext}: pith's rewrite differs from llama-imatrix's file"
            );
        }
    }
}

#[test]
fn pith_collects_what_llama_imatrix_collects() {
    for name in MODELS {
        let model = load(&small_model(name));
        let (tokens, bos) = text_tokens(&model);
        let opts = CollectOptions {
            chunk_size: 128,
            max_chunks: Some(4),
            ..CollectOptions::default()
        };
        let (ours, stats) = collect(
            &model,
            &tokens,
            bos,
            &opts,
            vec![TEXT.into()],
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(stats.chunks, 4);
        for ext in ["gguf", "dat"] {
            let p = repo_root().join(format!("tests/golden/imatrix/{name}.imatrix.{ext}"));
            let theirs = ImatrixFile::load(&p).unwrap();
            assert_eq!(
                ours.entries.keys().collect::<Vec<_>>(),
                theirs.entries.keys().collect::<Vec<_>>(),
                "{name}: the weights observed"
            );
            let mut worst = (0.0f32, String::new());
            for (w, e) in &theirs.entries {
                if ext == "gguf" {
                    assert_eq!(ours.entries[w].counts, e.counts, "{name} {w}: token count");
                }
                let (a, b) = (ours.get(w).unwrap(), e.importance());
                assert_eq!(a.len(), b.len(), "{name} {w}: columns");
                for (x, y) in a.iter().zip(b) {
                    let rel = (x - y).abs() / y.abs().max(1e-30);
                    if rel > worst.0 {
                        worst = (rel, w.clone());
                    }
                }
            }
            println!(
                "{name} ({ext}): max relative difference pith vs llama-imatrix {:.2e} ({})",
                worst.0, worst.1
            );
            assert!(
                worst.0 < 2e-3,
                "{name}: {} differs by {:.2e}",
                worst.1,
                worst.0
            );
        }
    }
}

#[test]
fn pith_written_files_read_back_in_the_python_reference() {
    let model = load(&small_model("llama2-f32"));
    let (tokens, bos) = text_tokens(&model);
    let opts = CollectOptions {
        chunk_size: 64,
        max_chunks: Some(3),
        ..CollectOptions::default()
    };
    let (ours, _) = collect(
        &model,
        &tokens,
        bos,
        &opts,
        vec!["t.txt".into()],
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(ours.len(), 14, "7 weights × 2 layers");
    let dir = tempfile::tempdir().unwrap();
    for format in [ImatrixFormat::Gguf, ImatrixFormat::Dat] {
        let p = dir.path().join(format!("m.{format:?}"));
        ours.save(&p, format).unwrap();
        assert_same_as_reference(&ours, &p);
        let r = reference(&p);
        assert_eq!(r["datasets"], serde_json::json!(["t.txt"]));
        if format == ImatrixFormat::Gguf {
            assert_eq!(r["chunk_size"], 64);
            for (name, e) in r["entries"].as_object().unwrap() {
                assert_eq!(
                    floats(&e["sums"]),
                    ours.entries[name].sums,
                    "{name}: raw sums"
                );
                assert_eq!(
                    e["counts"],
                    serde_json::json!([192]),
                    "{name}: 3 × 64 tokens"
                );
            }
        }
        // And pith reads its own file back to the same importance.
        let back = ImatrixFile::load(&p).unwrap();
        for (name, e) in &ours.entries {
            let (a, b) = (e.importance(), back.get(name).unwrap());
            assert!(a
                .iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-6 * x.abs()));
        }
    }
}

#[test]
fn malformed_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good =
        std::fs::read(repo_root().join("tests/golden/imatrix/llama2-f32.imatrix.gguf")).unwrap();
    for (i, bytes) in [
        good[..good.len() / 2].to_vec(),
        b"GGUF\x03\0\0\0".to_vec(),
        vec![0xff; 64],
        Vec::new(),
    ]
    .into_iter()
    .enumerate()
    {
        let p = dir.path().join(format!("bad{i}"));
        std::fs::write(&p, bytes).unwrap();
        assert!(ImatrixFile::load(&p).is_err(), "case {i}");
    }
    assert!(ImatrixFile::load(dir.path().join("missing")).is_err());
}
