//! pith's quantized dot products (`pith_runtime::kernels`) against independent references.
//!
//! * Activation quantization: Q8_0 bit-exact with gguf-py's `gguf.quants.quantize`
//!   (via `tests/py/dequant_ref.py`); Q8_1's `d`/`qs` bit-exact with the same gguf-py Q8_0
//!   output (ggml quantizes both alike) and its `s` by ggml's formula; Q8_K against
//!   candle-core's `BlockQ8K::from_float`, which differs from ggml only in rounding exact
//!   ties away from zero (ggml's `nearest_int` rounds them to even), so ties are checked
//!   to be even instead. Every dequantized activation is within half a step of the input.
//! * Dot products, for all ten weight types on random valid blocks and for the four types
//!   in the real Gemma 3 model, at every kernel level this CPU runs (`kernel_levels.rs`
//!   adds edge-case blocks, level against scalar): `vec_dot(w, quantize(x))` against the f64 dot of pith's
//!   dequantized `w` and dequantized `quantize(x)` (dequantization is itself checked
//!   bit-exact against gguf-py by `dequant_vs_gguf_py.rs`), and against candle-core's
//!   scalar `vec_dot_unopt` on the same blocks. Tolerance: `1e-5 · Σ|w_i x_i| + 1e-30`
//!   (llama.cpp's test-quantize-fns allows 0.02 of the normalised error).
//!
//! Needs `python3` with `pip install gguf==0.19.0 numpy`; fails (never skips) without them.

mod common;

use std::mem::size_of;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bytemuck::{Pod, Zeroable};
use candle_core::quantized::k_quants as ck;
use candle_core::quantized::k_quants::GgmlType as CandleType;
use half::f16;
use pith_runtime::gguf::GgufFile;
use pith_runtime::kernels::{
    active_level, available_levels, quantize_activation, quantize_row_q8_0, quantize_row_q8_1,
    quantize_row_q8_k, supports, vec_dot, vec_dot_scalar, vec_dot_type, vec_dot_with,
};
use pith_runtime::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use pith_runtime::quant::{dequantize_to_vec, GgmlType, QK_K};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const PIP_HINT: &str = "pip install gguf==0.19.0 numpy";

/// The weight types with a quantized dot product.
const WEIGHT_TYPES: [GgmlType; 10] = [
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
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/py/dequant_ref.py")
}

/// gguf-py's Q8_0 quantization of `x` (raw block bytes).
fn gguf_py_q8_0(x: &[f32]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(path("in.f32"), bytemuck::cast_slice(x)).unwrap();
    let jobs = json!([{"op": "quantize", "type": "Q8_0", "input": path("in.f32"),
                       "raw": path("out.raw"), "output": path("out.f32")}]);
    std::fs::write(path("jobs.json"), serde_json::to_vec(&jobs).unwrap()).unwrap();
    let out = Command::new("python3")
        .arg(script())
        .arg(path("jobs.json"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); install Python 3 and `{PIP_HINT}`"));
    assert!(
        out.status.success(),
        "tests/py/dequant_ref.py failed ({}); if gguf or numpy is missing: `{PIP_HINT}`\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(path("out.raw")).unwrap()
}

/// Activation-like input: per 32 values a random magnitude over 8 decades, plus an
/// all-zero block, a constant block, a one-outlier block, an all-negative block and a
/// block whose values sit exactly on half steps.
fn random_activations(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let (block, j) = (i / 32, i % 32);
            match block {
                0 => 0.0,
                1 => 0.75,
                2 if j == 7 => -40.0,
                2 => rng.random_range(-1e-2..1e-2),
                3 => -rng.random_range(0.1..2.0),
                // amax 127 → d = 1: every other value is a tie for roundf.
                4 if j == 0 => 127.0,
                4 => (j as f32 - 16.0) + 0.5,
                _ => {
                    let scale = 10f32.powf(rng.random_range(-4.0..4.0));
                    rng.random_range(-1.0..1.0) * scale
                }
            }
        })
        .collect()
}

fn f16_scale(rng: &mut StdRng, max: f32) -> f16 {
    f16::from_f32(rng.random_range(-max..max))
}

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

/// A random valid weight row of `n` elements: random quant bytes, random f16 scales
/// (|d| < 0.05, |m| < 0.5).
fn random_weights(ty: GgmlType, rng: &mut StdRng, n: usize) -> Vec<u8> {
    let nb = n / ty.block_size();
    macro_rules! blocks {
        ($b:ty, |$x:ident, $r:ident| $fix:expr) => {
            random_blocks::<$b>(rng, nb, |$x, $r| $fix)
        };
    }
    match ty {
        GgmlType::Q4_0 => blocks!(BlockQ4_0, |b, r| b.d = f16_scale(r, 0.05)),
        GgmlType::Q4_1 => blocks!(BlockQ4_1, |b, r| (b.d, b.m) =
            (f16_scale(r, 0.05), f16_scale(r, 0.5))),
        GgmlType::Q5_0 => blocks!(BlockQ5_0, |b, r| b.d = f16_scale(r, 0.05)),
        GgmlType::Q5_1 => blocks!(BlockQ5_1, |b, r| (b.d, b.m) =
            (f16_scale(r, 0.05), f16_scale(r, 0.5))),
        GgmlType::Q8_0 => blocks!(BlockQ8_0, |b, r| b.d = f16_scale(r, 0.05)),
        GgmlType::Q2K => blocks!(BlockQ2K, |b, r| (b.d, b.dmin) =
            (f16_scale(r, 0.05), f16_scale(r, 0.05))),
        GgmlType::Q3K => blocks!(BlockQ3K, |b, r| b.d = f16_scale(r, 0.05)),
        GgmlType::Q4K => blocks!(BlockQ4K, |b, r| (b.d, b.dmin) =
            (f16_scale(r, 0.05), f16_scale(r, 0.05))),
        GgmlType::Q5K => blocks!(BlockQ5K, |b, r| (b.d, b.dmin) =
            (f16_scale(r, 0.05), f16_scale(r, 0.05))),
        GgmlType::Q6K => blocks!(BlockQ6K, |b, r| b.d = f16_scale(r, 0.05)),
        other => panic!("no weight generator for {other}"),
    }
}

/// candle-core blocks holding the same bytes as `bytes`.
fn to_candle<B: CandleType>(bytes: &[u8]) -> Vec<B> {
    assert_eq!(bytes.len() % size_of::<B>(), 0, "{:?} size", B::DTYPE);
    let mut v: Vec<B> = (0..bytes.len() / size_of::<B>())
        .map(|_| B::zeros())
        .collect();
    // SAFETY: candle's blocks are `#[repr(C)]` structs of integer, `f16` and `f32` fields,
    // so every byte pattern is a valid value; `v` spans exactly `bytes.len()` bytes (its
    // element size is the ggml block size, checked against pith's in `candle_dot`), and
    // the two buffers are distinct allocations.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
    }
    v
}

/// candle-core's scalar dot product of raw weight bytes with raw activation bytes.
fn candle_dot(ty: GgmlType, w: &[u8], xq: &[u8], n: usize) -> f32 {
    fn go<B: CandleType>(ty: GgmlType, w: &[u8], xq: &[u8], n: usize) -> f32 {
        let act = vec_dot_type(ty).unwrap();
        assert_eq!(size_of::<B>(), ty.type_size());
        assert_eq!(size_of::<B::VecDotType>(), act.type_size());
        B::vec_dot_unopt(n, &to_candle::<B>(w), &to_candle::<B::VecDotType>(xq))
    }
    match ty {
        GgmlType::Q4_0 => go::<ck::BlockQ4_0>(ty, w, xq, n),
        GgmlType::Q4_1 => go::<ck::BlockQ4_1>(ty, w, xq, n),
        GgmlType::Q5_0 => go::<ck::BlockQ5_0>(ty, w, xq, n),
        GgmlType::Q5_1 => go::<ck::BlockQ5_1>(ty, w, xq, n),
        GgmlType::Q8_0 => go::<ck::BlockQ8_0>(ty, w, xq, n),
        GgmlType::Q2K => go::<ck::BlockQ2K>(ty, w, xq, n),
        GgmlType::Q3K => go::<ck::BlockQ3K>(ty, w, xq, n),
        GgmlType::Q4K => go::<ck::BlockQ4K>(ty, w, xq, n),
        GgmlType::Q5K => go::<ck::BlockQ5K>(ty, w, xq, n),
        GgmlType::Q6K => go::<ck::BlockQ6K>(ty, w, xq, n),
        other => panic!("no candle kernel wired for {other}"),
    }
}

/// The f64 reference `Σ w_i · x_i` over the dequantized rows, and `Σ |w_i · x_i|`.
///
/// For Q4_1/Q5_1 ggml uses the Q8_1 block's cached `s = f16(d · Σq)` for the minimum's
/// term, not `f16(d) · Σq` as dequantization gives; the reference adds that exact
/// difference, `m · (s − d · Σq)` per block, so the comparison stays tight.
fn reference_dot(ty: GgmlType, w: &[u8], act: GgmlType, xq: &[u8]) -> (f64, f64) {
    let wd = dequantize_to_vec(ty, w).unwrap();
    let xd = dequantize_to_vec(act, xq).unwrap();
    let mut dot = 0f64;
    let mut abs = 0f64;
    for (&a, &b) in wd.iter().zip(&xd) {
        dot += f64::from(a) * f64::from(b);
        abs += (f64::from(a) * f64::from(b)).abs();
    }
    if act == GgmlType::Q8_1 {
        let ys: &[BlockQ8_1] = bytemuck::cast_slice(xq);
        let mins: Vec<f64> = match ty {
            GgmlType::Q4_1 => bytemuck::cast_slice::<u8, BlockQ4_1>(w)
                .iter()
                .map(|b| f64::from(b.m.to_f32()))
                .collect(),
            _ => bytemuck::cast_slice::<u8, BlockQ5_1>(w)
                .iter()
                .map(|b| f64::from(b.m.to_f32()))
                .collect(),
        };
        for (m, y) in mins.iter().zip(ys) {
            let sum_q: i32 = y.qs.iter().map(|&q| i32::from(q)).sum();
            let s_deq = f64::from(y.d.to_f32()) * f64::from(sum_q);
            dot += m * (f64::from(y.s.to_f32()) - s_deq);
        }
    }
    (dot, abs)
}

/// Checks pith's `vec_dot` (the selected kernel level), `vec_dot_scalar` and every level
/// this CPU can run (`vec_dot_with`) on one weight row against the f64 reference and
/// candle.
fn check_row(label: &str, ty: GgmlType, w: &[u8], x: &[f32]) {
    let n = x.len();
    let mut xq = Vec::new();
    let act = quantize_activation(ty, x, &mut xq).unwrap();
    let (want, abs) = reference_dot(ty, w, act, &xq);
    let theirs = candle_dot(ty, w, &xq, n);
    let tol = 1e-5 * abs + 1e-30;
    let mut results = vec![
        ("scalar".to_owned(), vec_dot_scalar(ty, w, &xq, n).unwrap()),
        (
            format!("selected {}", active_level()),
            vec_dot(ty, w, &xq, n).unwrap(),
        ),
    ];
    for level in available_levels() {
        results.push((
            level.to_string(),
            vec_dot_with(level, ty, w, &xq, n).unwrap(),
        ));
    }
    for (level, ours) in results {
        assert!(
            (f64::from(ours) - want).abs() <= tol,
            "{label} ({level}): vec_dot {ours:e} vs f64 reference {want:e} (Σ|w·x| {abs:e}, tol {tol:e})"
        );
        println!(
            "{label} ({level}): |Δ| / Σ|w·x| = {:.1e}",
            (f64::from(ours) - want).abs() / abs.max(1e-300)
        );
        assert!(
            (f64::from(ours) - f64::from(theirs)).abs() <= tol,
            "{label} ({level}): vec_dot {ours:e} vs candle {theirs:e} (tol {tol:e})"
        );
    }
}

#[test]
fn q8_0_and_q8_1_activations_match_gguf_py() {
    let mut rng = StdRng::seed_from_u64(0x0ddba11);
    let n = 64 * 32;
    let x = random_activations(&mut rng, n);
    let reference = gguf_py_q8_0(&x);

    let mut q8_0 = vec![BlockQ8_0::zeroed(); n / 32];
    quantize_row_q8_0(&x, &mut q8_0);
    assert_eq!(bytemuck::cast_slice::<BlockQ8_0, u8>(&q8_0), &reference[..]);

    let mut q8_1 = vec![BlockQ8_1::zeroed(); n / 32];
    quantize_row_q8_1(&x, &mut q8_1);
    for (i, (a, b)) in q8_1.iter().zip(&q8_0).enumerate() {
        assert_eq!(
            (a.d.to_bits(), a.qs),
            (b.d.to_bits(), b.qs),
            "Q8_1 block {i}"
        );
        // ggml: s = fp16(sum · d) with d the unrounded f32 amax / 127.
        let amax = x[i * 32..][..32].iter().fold(0f32, |m, v| m.max(v.abs()));
        let sum: i32 = a.qs.iter().map(|&q| i32::from(q)).sum();
        let s = f16::from_f32(sum as f32 * (amax / 127.0));
        assert_eq!(a.s.to_bits(), s.to_bits(), "Q8_1 block {i} s");
    }
    // The same through the byte-buffer helper, for the types that use each format.
    let mut buf = Vec::new();
    assert_eq!(
        quantize_activation(GgmlType::Q4_0, &x, &mut buf),
        Ok(GgmlType::Q8_0)
    );
    assert_eq!(buf, reference);
    assert_eq!(
        quantize_activation(GgmlType::Q5_1, &x, &mut buf),
        Ok(GgmlType::Q8_1)
    );
    assert_eq!(buf, bytemuck::cast_slice::<BlockQ8_1, u8>(&q8_1));
    // Dequantized, every value is within half a quantization step of its input.
    for (ty, bytes) in [
        (GgmlType::Q8_0, bytemuck::cast_slice::<BlockQ8_0, u8>(&q8_0)),
        (GgmlType::Q8_1, bytemuck::cast_slice::<BlockQ8_1, u8>(&q8_1)),
    ] {
        let deq = dequantize_to_vec(ty, bytes).unwrap();
        for (i, (&v, &orig)) in deq.iter().zip(&x).enumerate() {
            let d = q8_0[i / 32].d.to_f32();
            let err = (v - orig).abs();
            // f16 rounding of d moves values by up to 127 · |Δd| on top of half a step.
            let bound = 0.5 * d + 127.0 * d * 2f32.powi(-11) + 1e-30;
            assert!(err <= bound, "{ty} [{i}]: {v} vs {orig} (d {d})");
        }
    }
}

#[test]
fn q8_k_activations_match_candle_up_to_tie_rounding() {
    let mut rng = StdRng::seed_from_u64(0xc0ffee);
    let n = 16 * QK_K;
    let mut x = random_activations(&mut rng, n);
    // A block whose largest magnitude is negative, and one with many exact ties
    // (max 127 → iscale -1 → q = -x).
    x[5 * QK_K + 17] = -1e3;
    for (j, v) in x[6 * QK_K..7 * QK_K].iter_mut().enumerate() {
        *v = if j == 0 {
            127.0
        } else {
            (j % 64) as f32 - 32.5
        };
    }
    let mut ours = vec![BlockQ8K::zeroed(); n / QK_K];
    quantize_row_q8_k(&x, &mut ours);
    let mut theirs: Vec<ck::BlockQ8K> = (0..n / QK_K).map(|_| ck::BlockQ8K::zeros()).collect();
    ck::BlockQ8K::from_float(&x, &mut theirs);
    let mut theirs_bytes = vec![0u8; n / QK_K * size_of::<BlockQ8K>()];
    // SAFETY: candle's BlockQ8K is `#[repr(C)]` {f32, [i8; 256], [i16; 16]}, 292 bytes with
    // no padding (candle asserts the size), the same layout as pith's; `theirs_bytes` has
    // exactly `theirs.len()` such blocks' bytes and does not overlap `theirs`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            theirs.as_ptr().cast::<u8>(),
            theirs_bytes.as_mut_ptr(),
            theirs_bytes.len(),
        );
    }
    let theirs: &[BlockQ8K] = bytemuck::cast_slice(&theirs_bytes);
    let mut ties = 0;
    for (b, (o, t)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(o.d.to_bits(), t.d.to_bits(), "block {b} d");
        for j in 0..QK_K {
            if o.qs[j] == t.qs[j] {
                continue;
            }
            // Only exact ties may differ: candle rounds them away from zero, ggml to even.
            let v = -127.0
                / x[b * QK_K..][..QK_K]
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m })
                * x[b * QK_K + j];
            assert_eq!(
                v.fract().abs(),
                0.5,
                "block {b} [{j}]: {} vs {}",
                o.qs[j],
                t.qs[j]
            );
            assert_eq!(o.qs[j] % 2, 0, "block {b} [{j}]: tie not rounded to even");
            ties += 1;
        }
        for (g, s) in o.bsums.iter().enumerate() {
            let sum: i32 = o.qs[g * 16..][..16].iter().map(|&q| i32::from(q)).sum();
            assert_eq!(i32::from(*s), sum, "block {b} bsums[{g}]");
        }
    }
    assert!(ties > 0, "the tie block should exercise round-half-even");
    let deq = dequantize_to_vec(GgmlType::Q8K, bytemuck::cast_slice(&ours)).unwrap();
    for (i, (&v, &orig)) in deq.iter().zip(&x).enumerate() {
        let d = ours[i / QK_K].d.abs();
        assert!(
            (v - orig).abs() <= 0.5 * d * (1.0 + 1e-6),
            "[{i}] {v} vs {orig}"
        );
    }
}

#[test]
fn every_type_matches_references_on_random_rows() {
    let mut rng = StdRng::seed_from_u64(0xd07_d07);
    for ty in WEIGHT_TYPES {
        assert!(supports(ty), "{ty}");
        for (trial, n) in [256, 2048, 4096].into_iter().enumerate() {
            let w = random_weights(ty, &mut rng, n);
            let x = random_activations(&mut rng, n);
            check_row(&format!("{ty} random row {trial} (n {n})"), ty, &w, &x);
        }
    }
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_1, GgmlType::Q8K] {
        assert!(!supports(ty), "{ty}");
    }
}

#[test]
fn gemma_rows_match_references() {
    let file = GgufFile::open(common::gemma_path()).unwrap();
    let mut rng = StdRng::seed_from_u64(0x6e33a);
    let mut seen = Vec::new();
    for info in file.tensor_infos() {
        let view = file.view(info);
        let ty = view.ty();
        if !supports(ty) || seen.contains(&ty) {
            continue;
        }
        seen.push(ty);
        let n = view.row_len();
        let rows = view.n_rows();
        let x = random_activations(&mut rng, n);
        for r in [0, rows / 2, rows - 1] {
            let w = view.row(r);
            assert_eq!(
                w.as_ptr() as usize % 2,
                0,
                "{} row {r} misaligned",
                view.name()
            );
            check_row(&format!("{} ({ty}) row {r}", view.name()), ty, w, &x);
        }
        println!(
            "{} ({ty}, {n} per row): rows 0, {}, {} ok",
            view.name(),
            rows / 2,
            rows - 1
        );
    }
    seen.sort_by_key(|t| t.id());
    assert_eq!(
        seen,
        [GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q6K],
        "quantized types in the Gemma 3 270M Q4_K_M file"
    );
}

/// Rough speed of one row dot product, quantized kernel vs dequantize + f32 dot (run with
/// `cargo test --test kernels -- --ignored --nocapture speed`).
#[test]
#[ignore = "timing only"]
fn speed_vs_dequantize() {
    let mut rng = StdRng::seed_from_u64(1);
    for (ty, n) in [
        (GgmlType::Q8_0, 640),
        (GgmlType::Q4_0, 640),
        (GgmlType::Q5_0, 640),
        (GgmlType::Q4K, 1024),
        (GgmlType::Q6K, 2048),
    ] {
        let rows: Vec<Vec<u8>> = (0..256).map(|_| random_weights(ty, &mut rng, n)).collect();
        let x = random_activations(&mut rng, n);
        let mut xq = Vec::new();
        quantize_activation(ty, &x, &mut xq).unwrap();
        let iters = 200;
        let mut acc = 0f32;
        let mut time = |f: &dyn Fn(&[u8]) -> f32| {
            let t = Instant::now();
            for _ in 0..iters {
                for w in &rows {
                    acc += f(w);
                }
            }
            t.elapsed().as_nanos() as f64 / (iters * rows.len()) as f64
        };
        let q_ns = time(&|w| vec_dot(ty, w, &xq, n).unwrap());
        let s_ns = time(&|w| vec_dot_scalar(ty, w, &xq, n).unwrap());
        let mut buf = vec![0f32; n];
        let t = Instant::now();
        for _ in 0..iters {
            for w in &rows {
                pith_runtime::quant::dequantize(ty, w, &mut buf).unwrap();
                acc += buf.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>();
            }
        }
        let d_ns = t.elapsed().as_nanos() as f64 / (iters * rows.len()) as f64;
        println!(
            "{ty} n={n}: vec_dot ({:?}) {q_ns:.0} ns, scalar {s_ns:.0} ns, \
             dequantize+dot {d_ns:.0} ns ({acc:e})",
            active_level()
        );
    }
}
