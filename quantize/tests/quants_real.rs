//! The real-model check: every tensor of Gemma 3 270M, dequantized to an F32 GGUF, then
//! quantized by `llama-quantize` (Q4_K_M mixture, Q8_0, Q6_K and Q2_K) and by pith to the
//! type llama-quantize chose for it — byte-identical — with both wall times printed.
//!
//! Ignored by default: it needs llama.cpp's `llama-quantize` (`$LLAMA_QUANTIZE`, default
//! `~/.cache/llama-cpp-anchor/bin/llama-quantize`), the real model
//! (`$PITH_HOME/models/gemma-3-270m-q4_k_m.gguf`), `python3` with `gguf` and `numpy`, and
//! about 1.5 GB of temporary disk. Run it with
//!
//! ```text
//! cargo test -p pith-quantize --test quants_real -- --ignored --nocapture
//! ```
//!
//! `PITH_QUANT_TYPES=Q4_K_M,Q8_0` picks the llama-quantize types to run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pith_quantize::quants::quantize;
use pith_runtime::gguf::GgufFile;
use pith_runtime::quant::GgmlType;

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
}

fn model_path() -> PathBuf {
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

/// Runs `cmd`, failing the test on a non-zero exit; returns the wall time and stdout.
fn run(cmd: &mut Command) -> (Duration, String) {
    let t = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        t.elapsed(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// llama-quantize's own "quantize time = N ms" (the tensor loop, without start-up).
fn reported_quantize_ms(stdout: &str) -> Option<f64> {
    let rest = stdout.split("quantize time =").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Quantizes every tensor of `f32_file` to the type it has in `reference` and compares the
/// bytes. Returns (pith's quantize time, tensors compared, bytes compared).
fn compare(f32_file: &GgufFile, reference: &GgufFile) -> (Duration, usize, usize) {
    let mut pith_time = Duration::ZERO;
    let (mut n_tensors, mut n_bytes) = (0, 0);
    let mut failures = Vec::new();
    for info in reference.tensor_infos() {
        let src = f32_file
            .tensor(&info.name)
            .unwrap_or_else(|| panic!("no tensor {} in the F32 file", info.name));
        assert_eq!(src.ty(), GgmlType::F32);
        let owned;
        let data: &[f32] = match bytemuck::try_cast_slice(src.data) {
            Ok(d) => d,
            Err(_) => {
                owned = src
                    .data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect::<Vec<f32>>();
                &owned
            }
        };
        let t = Instant::now();
        let got = quantize(info.ty, data, info.dims[0] as usize, None)
            .unwrap_or_else(|e| panic!("{}: {e}", info.name));
        pith_time += t.elapsed();
        let want = reference.tensor_bytes(info);
        if got != want {
            let bad = got
                .chunks(info.ty.type_size())
                .zip(want.chunks(info.ty.type_size()))
                .filter(|(a, b)| a != b)
                .count();
            failures.push(format!("{} ({}): {bad} blocks differ", info.name, info.ty));
        }
        n_tensors += 1;
        n_bytes += want.len();
    }
    assert!(
        failures.is_empty(),
        "pith differs from llama-quantize:\n{}",
        failures.join("\n")
    );
    (pith_time, n_tensors, n_bytes)
}

#[test]
#[ignore = "needs llama-quantize, the real model and ~1.5 GB of disk; see the module docs"]
fn real_model_quantizes_bit_exactly_like_llama_quantize() {
    let model = model_path();
    let lq = llama_quantize();
    let dir = tempfile::tempdir().unwrap();
    let f32_path = dir.path().join("gemma-3-270m-f32.gguf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/py/dequantize_gguf.py");
    let (t, _) = run(Command::new("python3")
        .arg(&script)
        .arg(&model)
        .arg(&f32_path));
    eprintln!("dequantized the real model to F32 in {t:.1?}");
    let f32_file = GgufFile::open(&f32_path).unwrap();

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let types =
        std::env::var("PITH_QUANT_TYPES").unwrap_or_else(|_| "Q4_K_M,Q8_0,Q6_K,Q2_K".into());
    for ftype in types.split(',') {
        let out = dir.path().join(format!("llama-{ftype}.gguf"));
        let (llama_time, stdout) = run(Command::new(&lq)
            .arg(&f32_path)
            .arg(&out)
            .arg(ftype)
            .arg(threads.to_string()));
        let reference = GgufFile::open(&out).unwrap();
        let (pith_time, n, bytes) = compare(&f32_file, &reference);
        let llama_ms = reported_quantize_ms(&stdout).unwrap_or(f64::NAN);
        eprintln!(
            "{ftype}: {n} tensors, {:.1} MB byte-identical; {threads} threads: llama-quantize \
             {llama_time:.2?} wall ({:.2} s in its tensor loop), pith quantize() {pith_time:.2?}",
            bytes as f64 / 1e6,
            llama_ms / 1e3
        );
        std::fs::remove_file(&out).ok();
    }
}

/// Single-threaded throughput of every quantizer on 4096 × 4096 normal-ish values (a
/// figure for the notes, not a timed assertion).
#[test]
#[ignore = "a throughput figure, not a check: run with --ignored --nocapture"]
fn quantize_throughput() {
    let n = 4096;
    let mut state = 0x1234_5678u64;
    let data: Vec<f32> = (0..n * n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            // Sum of four uniforms: roughly normal, cheap.
            let u = |s: u64| ((s >> 40) & 0xffff) as f32 / 65536.0;
            (u(state) + u(state >> 16) + u(state.rotate_left(16)) + u(state.rotate_left(32)) - 2.0)
                * 0.05
        })
        .collect();
    let imatrix: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for ty in [
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2K,
        GgmlType::Q3K,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        for im in [None, Some(imatrix.as_slice())] {
            if im.is_some() && !pith_quantize::quants::uses_imatrix(ty) {
                continue;
            }
            let t = Instant::now();
            let q = pool.install(|| quantize(ty, &data, n, im).unwrap());
            let dt = t.elapsed();
            eprintln!(
                "{ty:>5} {:>9}: {:6.1} M elements/s on one thread ({} bytes)",
                if im.is_some() { "imatrix" } else { "" },
                (n * n) as f64 / dt.as_secs_f64() / 1e6,
                q.len()
            );
        }
    }
}
