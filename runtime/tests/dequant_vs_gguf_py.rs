//! pith's scalar dequantization against independent references, bit for bit.
//!
//! * Every type on random data: gguf-py (`tests/py/dequant_ref.py`, numpy ports of ggml's
//!   `dequantize_row_*`) for all types it implements; numpy `astype(float32)` for the
//!   integer types and F64 (gguf-py has no dequantizer for those); candle-core's
//!   `to_float` for Q8_1 and Q8_K (gguf-py has neither).
//!   Data: f32 quantized by `gguf.quants.quantize` where gguf-py can quantize the type
//!   (F32/F16/BF16, Q4_0 … Q8_0), random valid blocks (random quant bytes, random finite
//!   scales) for every block type, and every bit pattern for the 16-bit and I8 types.
//! * The real Gemma 3 model: for every tensor type in the file, whole tensors and row
//!   ranges of `token_embd`, read by our GGUF reader vs `gguf.GGUFReader`.
//!
//! Equality is exact (`to_bits`), except that any NaN equals any NaN: F16 → F32 may
//! quiet a signalling NaN depending on the conversion instruction, in numpy and in ours.
//!
//! Needs `python3` with `pip install gguf==0.19.0 numpy`; fails (never skips) without them.

mod common;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytemuck::Pod;
use half::f16;
use pith_runtime::gguf::GgufFile;
use pith_runtime::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use pith_runtime::quant::{dequantize, dequantize_to_vec, GgmlType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const PIP_HINT: &str = "pip install gguf==0.19.0 numpy";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/py/dequant_ref.py")
}

/// Runs `dequant_ref.py` on `jobs`; panics with its stderr and the install hint on failure.
fn run_reference(dir: &Path, jobs: &serde_json::Value) {
    let jobs_path = dir.join("jobs.json");
    std::fs::write(&jobs_path, serde_json::to_vec(jobs).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(script())
        .arg(&jobs_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); install Python 3 and `{PIP_HINT}`"));
    assert!(
        out.status.success(),
        "tests/py/dequant_ref.py failed ({}); if gguf or numpy is missing: `{PIP_HINT}`\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Asserts `ours == theirs` bit for bit (NaN matches NaN); returns the max |difference|.
fn assert_exact(label: &str, ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "{label}: element counts differ");
    let mut max_abs = 0f32;
    let mut bad = Vec::new();
    for (i, (&a, &b)) in ours.iter().zip(theirs).enumerate() {
        if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) {
            continue;
        }
        max_abs = max_abs.max((a - b).abs());
        if bad.len() < 5 {
            bad.push(format!(
                "[{i}] ours {a:e} ({:#010x}) vs ref {b:e} ({:#010x})",
                a.to_bits(),
                b.to_bits()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{label}: results differ (max |diff| {max_abs:e}); first: {bad:#?}"
    );
    println!(
        "{label}: {} values bit-exact (max |diff| {max_abs})",
        ours.len()
    );
    max_abs
}

fn finite_f16(rng: &mut StdRng) -> f16 {
    loop {
        let h = f16::from_bits(rng.random());
        if h.is_finite() {
            return h;
        }
    }
}

/// `n` blocks of random bytes, then `fix` makes the scales finite.
fn random_blocks<B: Pod>(rng: &mut StdRng, n: usize, fix: impl Fn(&mut B, &mut StdRng)) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * size_of::<B>());
    for _ in 0..n {
        let mut b = B::zeroed();
        rng.fill(bytemuck::bytes_of_mut(&mut b));
        fix(&mut b, rng);
        out.extend_from_slice(bytemuck::bytes_of(&b));
    }
    out
}

/// Random valid raw data for `ty`: `n_blocks` blocks (or elements for plain types).
fn random_raw(ty: GgmlType, rng: &mut StdRng, n_blocks: usize) -> Vec<u8> {
    macro_rules! blocks {
        ($b:ty, |$x:ident, $r:ident| $fix:expr) => {
            random_blocks::<$b>(rng, n_blocks, |$x, $r| $fix)
        };
    }
    match ty {
        GgmlType::Q4_0 => blocks!(BlockQ4_0, |b, r| b.d = finite_f16(r)),
        GgmlType::Q4_1 => blocks!(BlockQ4_1, |b, r| (b.d, b.m) =
            (finite_f16(r), finite_f16(r))),
        GgmlType::Q5_0 => blocks!(BlockQ5_0, |b, r| b.d = finite_f16(r)),
        GgmlType::Q5_1 => blocks!(BlockQ5_1, |b, r| (b.d, b.m) =
            (finite_f16(r), finite_f16(r))),
        GgmlType::Q8_0 => blocks!(BlockQ8_0, |b, r| b.d = finite_f16(r)),
        GgmlType::Q8_1 => blocks!(BlockQ8_1, |b, r| (b.d, b.s) =
            (finite_f16(r), finite_f16(r))),
        GgmlType::Q2K => blocks!(BlockQ2K, |b, r| (b.d, b.dmin) =
            (finite_f16(r), finite_f16(r))),
        GgmlType::Q3K => blocks!(BlockQ3K, |b, r| b.d = finite_f16(r)),
        GgmlType::Q4K => blocks!(BlockQ4K, |b, r| (b.d, b.dmin) =
            (finite_f16(r), finite_f16(r))),
        GgmlType::Q5K => blocks!(BlockQ5K, |b, r| (b.d, b.dmin) =
            (finite_f16(r), finite_f16(r))),
        GgmlType::Q6K => blocks!(BlockQ6K, |b, r| b.d = finite_f16(r)),
        // f32 scale: any finite value small enough that d * 127 stays finite.
        GgmlType::Q8K => blocks!(BlockQ8K, |b, r| {
            b.d = loop {
                let d = f32::from_bits(r.random());
                if d.is_finite() && d.abs() < 1e36 {
                    break d;
                }
            }
        }),
        // Plain types: random bits (NaN, inf and subnormals included).
        _ => {
            let mut v = vec![0u8; n_blocks * ty.type_size()];
            rng.fill(&mut v[..]);
            v
        }
    }
}

/// Every bit pattern of a 16-bit (or 8-bit) type, little-endian.
fn all_patterns(ty: GgmlType) -> Vec<u8> {
    match ty.type_size() {
        1 => (0..=u8::MAX).collect(),
        _ => (0..=u16::MAX).flat_map(u16::to_le_bytes).collect(),
    }
}

/// Block-structured f32 test input: per block a random magnitude over 10 decades, plus an
/// all-zero block, a constant block, a one-outlier block and an all-negative block.
fn random_f32(rng: &mut StdRng, n_blocks: usize, block: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(n_blocks * block);
    for i in 0..n_blocks {
        let scale = 10f32.powf(rng.random_range(-6.0..4.0));
        for j in 0..block {
            x.push(match i {
                0 => 0.0,
                1 => 0.75,
                2 if j == block / 3 => 1e3,
                2 => rng.random_range(-1e-2..1e-2),
                3 => -rng.random_range(0.1..2.0) * scale,
                _ => rng.random_range(-1.0..1.0) * scale,
            });
        }
    }
    x
}

/// candle-core's dequantization of raw `data` (aligned copy first: candle asserts it).
fn candle_dequantize(ty: GgmlType, data: &[u8]) -> Vec<f32> {
    use candle_core::quantized::{GgmlDType, QStorage, QTensor};
    use candle_core::Device;
    let dtype = match ty {
        GgmlType::Q8_1 => GgmlDType::Q8_1,
        GgmlType::Q8K => GgmlDType::Q8K,
        other => panic!("no candle reference wired for {other}"),
    };
    let mut words = vec![0u64; data.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..data.len()].copy_from_slice(data);
    let aligned = &bytemuck::cast_slice::<u64, u8>(&words)[..data.len()];
    let n = data.len() / ty.type_size() * ty.block_size();
    let storage = QStorage::from_data(Cow::Borrowed(aligned), &Device::Cpu, dtype).unwrap();
    let t = QTensor::new(storage, (n,)).unwrap();
    t.dequantize(&Device::Cpu)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn every_type_matches_reference_on_random_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut rng = StdRng::seed_from_u64(0x5eed_f00d);
    let path = |name: String| d.join(name).to_str().unwrap().to_owned();

    // (label, type, raw bytes file, reference output file); raw files written by us or,
    // for the quantize jobs, by gguf-py.
    let mut cases: Vec<(String, GgmlType, String, String)> = Vec::new();
    let mut jobs = Vec::new();
    let mut candle_cases = Vec::new();
    for ty in GgmlType::ALL {
        let name = ty.name();
        // 1. f32 quantized by gguf-py, where it can.
        if matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
            || matches!(
                ty,
                GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0
            )
        {
            let x = random_f32(&mut rng, 64, 32);
            let input = path(format!("{name}.quantize.in.f32"));
            std::fs::write(&input, bytemuck::cast_slice(&x)).unwrap();
            let (raw, output) = (
                path(format!("{name}.quantize.raw")),
                path(format!("{name}.quantize.ref.f32")),
            );
            jobs.push(json!({"op": "quantize", "type": name, "input": input, "raw": raw, "output": output}));
            cases.push((format!("{name} (quantized by gguf-py)"), ty, raw, output));
        }
        // 2. Random valid raw data, or every bit pattern for the small plain types.
        let (label, raw_bytes) = match ty {
            GgmlType::F16 | GgmlType::BF16 | GgmlType::I8 | GgmlType::I16 => {
                ("every bit pattern", all_patterns(ty))
            }
            t if t.is_quantized() => ("random blocks", random_raw(ty, &mut rng, 64)),
            _ => ("random bits", random_raw(ty, &mut rng, 4096)),
        };
        let mut raw_bytes = raw_bytes;
        if ty == GgmlType::F64 {
            // Random f64 bits are mostly far outside f32's range: add in-range values so the
            // rounding of f64 → f32 is exercised, not just overflow to ±inf and underflow to 0.
            for _ in 0..4096 {
                let v: f64 = rng.random_range(-1.0..1.0) * 10f64.powi(rng.random_range(-45..39));
                raw_bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        if matches!(ty, GgmlType::Q8_1 | GgmlType::Q8K) {
            candle_cases.push((format!("{name} ({label}) vs candle"), ty, raw_bytes));
            continue;
        }
        let (raw, output) = (path(format!("{name}.raw")), path(format!("{name}.ref.f32")));
        std::fs::write(&raw, &raw_bytes).unwrap();
        jobs.push(json!({"op": "dequantize", "type": name, "raw": raw, "output": output}));
        cases.push((format!("{name} ({label})"), ty, raw, output));
    }
    run_reference(d, &serde_json::Value::Array(jobs));

    let mut covered = std::collections::BTreeSet::new();
    for (label, ty, raw, output) in &cases {
        let data = std::fs::read(raw).unwrap();
        let theirs = read_f32(Path::new(output));
        let ours = dequantize_to_vec(*ty, &data).unwrap();
        // The fixed-size entry point must agree with the allocating one.
        let mut out = vec![f32::NAN; theirs.len()];
        dequantize(*ty, &data, &mut out).unwrap();
        assert_exact(&format!("{label} [into slice]"), &out, &theirs);
        assert_eq!(assert_exact(label, &ours, &theirs), 0.0);
        covered.insert(ty.name());
    }
    for (label, ty, raw_bytes) in &candle_cases {
        let ours = dequantize_to_vec(*ty, raw_bytes).unwrap();
        assert_eq!(
            assert_exact(label, &ours, &candle_dequantize(*ty, raw_bytes)),
            0.0
        );
        covered.insert(ty.name());
    }
    assert_eq!(
        covered.len(),
        GgmlType::ALL.len(),
        "types covered: {covered:?}"
    );
}

#[test]
fn real_model_tensors_match_gguf_py() {
    let model = common::gemma_path();
    let file = GgufFile::open(&model).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model_str = model.to_str().unwrap();

    // Per tensor type: the first two tensors and the last one in file order, whole when
    // at most 2M elements, else their first 64 rows; token_embd at its start, middle and end.
    let mut picks: Vec<(String, GgmlType, usize, usize)> = Vec::new(); // (name, ty, first row, rows)
    let mut types: Vec<GgmlType> = Vec::new();
    for info in file.tensor_infos() {
        if !types.contains(&info.ty) {
            types.push(info.ty);
        }
    }
    for &ty in &types {
        let same: Vec<_> = file.tensor_infos().iter().filter(|t| t.ty == ty).collect();
        let mut chosen: Vec<_> = same.iter().take(2).collect();
        if same.len() > 2 {
            chosen.push(same.last().unwrap());
        }
        for info in chosen {
            let view = file.view(info);
            let rows = if info.n_elements() <= 2 << 20 {
                view.n_rows()
            } else {
                64
            };
            picks.push((info.name.clone(), ty, 0, rows));
        }
    }
    let embd = file.require_tensor("token_embd.weight").unwrap();
    let n = embd.n_rows();
    for start in [0, n / 2 - 4, n - 8] {
        picks.push(("token_embd.weight".into(), embd.ty(), start, 8));
    }

    let jobs: Vec<_> = picks
        .iter()
        .enumerate()
        .map(|(i, (name, _, start, rows))| {
            let output = dir.path().join(format!("t{i}.f32"));
            json!({"op": "tensor", "model": model_str, "name": name, "rows": [start, rows], "output": output})
        })
        .collect();
    run_reference(dir.path(), &serde_json::Value::Array(jobs));

    let mut per_type = std::collections::BTreeMap::new();
    for (i, (name, ty, start, rows)) in picks.iter().enumerate() {
        let view = file.tensor(name).unwrap();
        let rb = view.row_bytes();
        let data = &view.data[start * rb..(start + rows) * rb];
        let ours = dequantize_to_vec(*ty, data).unwrap();
        assert_eq!(ours.len(), rows * view.row_len(), "{name}");
        let theirs = read_f32(&dir.path().join(format!("t{i}.f32")));
        let part = if *rows == view.n_rows() {
            "whole".to_owned()
        } else {
            format!("rows {start}..{}", start + rows)
        };
        let label = format!("gemma {name} [{ty}] {part}");
        assert_eq!(assert_exact(&label, &ours, &theirs), 0.0);
        *per_type.entry(ty.name()).or_insert(0usize) += ours.len();
    }
    println!("real model, values compared per type: {per_type:?}");
    for must in ["F32", "Q8_0", "Q5_0", "Q4_K", "Q6_K"] {
        assert!(
            per_type.contains_key(must),
            "the Gemma file should have {must} tensors: {per_type:?}"
        );
    }
}
