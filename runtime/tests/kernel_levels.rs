//! Every SIMD kernel level this CPU can run (`kernels::available_levels`: AVX2, AVX-512,
//! AVX-512 VNNI on x86-64; NEON on aarch64) against the scalar ports of ggml's generic C
//! (`vec_dot_scalar`, itself checked against gguf-py, candle and an f64 reference by
//! `kernels.rs`), in one process through `vec_dot_with`.
//!
//! Inputs: every weight type, row lengths of 1 to 33 blocks (so the AVX-512 kernels' 4-block
//! loop and its scalar tail are both exercised), and blocks that are random, all zero, all
//! quants at their maximum or minimum, with the largest and the smallest (subnormal) f16
//! scales, and Q8_0 weights holding -128; activations random, zero, constant at the
//! quantization maximum, alternating ±max, and spanning eight decades per block.
//!
//! Tolerance (ggml's test-quantize-fns allows 0.02 of a normalised error; the kernels here
//! differ from the scalar ones only in f32 summation order, so they are held far tighter):
//! `|simd − scalar| ≤ 1e-5 · M`, with `M = Σ|w_i − o_i|·|x_i| + Σ|o_i|·|x_i|` over the
//! dequantized rows and `o` the row with every quant zeroed (the block offsets/minimums,
//! which the kernels sum apart from the quants).

use std::mem::size_of;

use bytemuck::Pod;
use half::f16;
use pith_runtime::kernels::{
    available_levels, best_level, quantize_activation, vec_dot_scalar, vec_dot_type, vec_dot_with,
    KernelError, KernelLevel, FORCE_ENV,
};
use pith_runtime::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0,
};
use pith_runtime::quant::{dequantize_to_vec, GgmlType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// How the weight blocks' bytes are filled.
#[derive(Clone, Copy, Debug)]
enum Weights {
    /// Random quants and scales (|d| < 0.05, |m| < 0.5).
    Random,
    /// Every byte zero.
    Zero,
    /// Every quant byte 0xff (the largest quants and sub-block scales), d = dmin = 0.05.
    MaxQuants,
    /// Every quant byte 0x00 with random scales: only the offsets/minimums remain.
    MinQuants,
    /// Random quants with d = dmin = m = 65504 (the largest f16).
    HugeScale,
    /// Random quants with the smallest subnormal f16 scales.
    TinyScale,
    /// Q8_0 only: random quants, with -128 in every block.
    Minus128,
}

/// How the activations are chosen.
#[derive(Clone, Copy, Debug)]
enum Acts {
    Random,
    Zero,
    Max,
    Alternating,
    Decades,
}

/// Applies `f` to each block of `bytes` viewed as `B`.
fn each<B: Pod>(bytes: &mut [u8], mut f: impl FnMut(&mut B)) {
    for chunk in bytes.chunks_exact_mut(size_of::<B>()) {
        let mut b: B = bytemuck::pod_read_unaligned(chunk);
        f(&mut b);
        chunk.copy_from_slice(bytemuck::bytes_of(&b));
    }
}

/// Sets the f16 scale fields (`d` and, where present, `dmin`/`m`) of every block.
fn set_scales(ty: GgmlType, w: &mut [u8], mut d: impl FnMut() -> f16) {
    match ty {
        GgmlType::Q4_0 => each::<BlockQ4_0>(w, |b| b.d = d()),
        GgmlType::Q4_1 => each::<BlockQ4_1>(w, |b| (b.d, b.m) = (d(), d())),
        GgmlType::Q5_0 => each::<BlockQ5_0>(w, |b| b.d = d()),
        GgmlType::Q5_1 => each::<BlockQ5_1>(w, |b| (b.d, b.m) = (d(), d())),
        GgmlType::Q8_0 => each::<BlockQ8_0>(w, |b| b.d = d()),
        GgmlType::Q2K => each::<BlockQ2K>(w, |b| (b.d, b.dmin) = (d(), d())),
        GgmlType::Q3K => each::<BlockQ3K>(w, |b| b.d = d()),
        GgmlType::Q4K => each::<BlockQ4K>(w, |b| (b.d, b.dmin) = (d(), d())),
        GgmlType::Q5K => each::<BlockQ5K>(w, |b| (b.d, b.dmin) = (d(), d())),
        GgmlType::Q6K => each::<BlockQ6K>(w, |b| b.d = d()),
        other => panic!("no weight generator for {other}"),
    }
}

/// Sets every quant byte (not the scales) of every block to `v` (sub-block scales, which
/// are part of the quant bytes of the k-quants, are left alone).
fn set_quants(ty: GgmlType, w: &mut [u8], v: u8) {
    match ty {
        GgmlType::Q4_0 => each::<BlockQ4_0>(w, |b| b.qs = [v; 16]),
        GgmlType::Q4_1 => each::<BlockQ4_1>(w, |b| b.qs = [v; 16]),
        GgmlType::Q5_0 => each::<BlockQ5_0>(w, |b| (b.qs, b.qh) = ([v; 16], [v; 4])),
        GgmlType::Q5_1 => each::<BlockQ5_1>(w, |b| (b.qs, b.qh) = ([v; 16], [v; 4])),
        GgmlType::Q8_0 => each::<BlockQ8_0>(w, |b| b.qs = [v as i8; 32]),
        GgmlType::Q2K => each::<BlockQ2K>(w, |b| b.qs = [v; 64]),
        GgmlType::Q3K => each::<BlockQ3K>(w, |b| (b.qs, b.hmask) = ([v; 64], [v; 32])),
        GgmlType::Q4K => each::<BlockQ4K>(w, |b| b.qs = [v; 128]),
        GgmlType::Q5K => each::<BlockQ5K>(w, |b| (b.qs, b.qh) = ([v; 128], [v; 32])),
        GgmlType::Q6K => each::<BlockQ6K>(w, |b| (b.ql, b.qh) = ([v; 128], [v; 64])),
        other => panic!("no weight generator for {other}"),
    }
}

/// Sets every sub-block scale byte of the k-quants to `v`.
fn set_sub_scales(ty: GgmlType, w: &mut [u8], v: u8) {
    match ty {
        GgmlType::Q2K => each::<BlockQ2K>(w, |b| b.scales = [v; 16]),
        GgmlType::Q3K => each::<BlockQ3K>(w, |b| b.scales = [v; 12]),
        GgmlType::Q4K => each::<BlockQ4K>(w, |b| b.scales = [v; 12]),
        GgmlType::Q5K => each::<BlockQ5K>(w, |b| b.scales = [v; 12]),
        GgmlType::Q6K => each::<BlockQ6K>(w, |b| b.scales = [v as i8; 16]),
        _ => {}
    }
}

fn weights(ty: GgmlType, kind: Weights, rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut w = vec![0u8; n / ty.block_size() * ty.type_size()];
    if matches!(kind, Weights::Zero) {
        return w;
    }
    rng.fill(&mut w[..]);
    match kind {
        Weights::Random | Weights::MinQuants => {
            set_scales(ty, &mut w, || f16::from_f32(rng.random_range(-0.05..0.05)))
        }
        Weights::MaxQuants => set_scales(ty, &mut w, || f16::from_f32(0.05)),
        Weights::HugeScale => set_scales(ty, &mut w, || f16::MAX),
        Weights::TinyScale => set_scales(ty, &mut w, || f16::from_bits(1)),
        Weights::Minus128 => {
            set_scales(ty, &mut w, || f16::from_f32(rng.random_range(-0.05..0.05)));
            each::<BlockQ8_0>(&mut w, |b| b.qs[7] = -128);
        }
        Weights::Zero => unreachable!(),
    }
    match kind {
        Weights::MaxQuants => {
            set_quants(ty, &mut w, 0xff);
            set_sub_scales(ty, &mut w, 0xff);
        }
        Weights::MinQuants => set_quants(ty, &mut w, 0),
        _ => {}
    }
    w
}

fn activations(kind: Acts, rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match kind {
            Acts::Random => rng.random_range(-1.0..1.0),
            Acts::Zero => 0.0,
            Acts::Max => 3.5,
            Acts::Alternating => {
                if i % 2 == 0 {
                    2.0
                } else {
                    -2.0
                }
            }
            Acts::Decades => {
                let scale = 10f32.powi((i / 32 % 8) as i32 - 4);
                rng.random_range(-1.0..1.0) * scale
            }
        })
        .collect()
}

/// `M` of the module doc: the magnitude the kernels' f32 rounding is relative to.
fn magnitude(ty: GgmlType, w: &[u8], act: GgmlType, xq: &[u8]) -> f64 {
    let mut offsets = w.to_vec();
    set_quants(ty, &mut offsets, 0);
    let wd = dequantize_to_vec(ty, w).unwrap();
    let od = dequantize_to_vec(ty, &offsets).unwrap();
    let xd = dequantize_to_vec(act, xq).unwrap();
    let mut m = 0f64;
    for ((&a, &o), &b) in wd.iter().zip(&od).zip(&xd) {
        let (a, o, b) = (f64::from(a), f64::from(o), f64::from(b).abs());
        m += ((a - o).abs() + o.abs()) * b;
    }
    m
}

/// Row lengths: 1 … 33 blocks of the weight type.
fn lengths(ty: GgmlType) -> Vec<usize> {
    [1, 2, 3, 4, 5, 7, 8, 9, 16, 33]
        .into_iter()
        .map(|b| b * ty.block_size())
        .collect()
}

#[test]
fn every_level_matches_scalar() {
    let levels: Vec<KernelLevel> = available_levels()
        .into_iter()
        .filter(|&l| l != KernelLevel::Scalar)
        .collect();
    println!("levels under test: {levels:?}");
    let mut rng = StdRng::seed_from_u64(0x5eed_1e7e1);
    let mut checked = 0usize;
    for ty in WEIGHT_TYPES {
        let mut worst = 0f64;
        for n in lengths(ty) {
            let mut wkinds = vec![
                Weights::Random,
                Weights::Zero,
                Weights::MaxQuants,
                Weights::MinQuants,
                Weights::HugeScale,
                Weights::TinyScale,
            ];
            if ty == GgmlType::Q8_0 {
                wkinds.push(Weights::Minus128);
            }
            for wk in wkinds {
                let w = weights(ty, wk, &mut rng, n);
                for ak in [
                    Acts::Random,
                    Acts::Zero,
                    Acts::Max,
                    Acts::Alternating,
                    Acts::Decades,
                ] {
                    let x = activations(ak, &mut rng, n);
                    let mut xq = Vec::new();
                    let act = quantize_activation(ty, &x, &mut xq).unwrap();
                    let want = vec_dot_scalar(ty, &w, &xq, n).unwrap();
                    let m = magnitude(ty, &w, act, &xq);
                    assert!(m.is_finite() && want.is_finite(), "{ty} {wk:?} {ak:?}");
                    let tol = 1e-5 * m + 1e-38;
                    for &level in &levels {
                        let got = vec_dot_with(level, ty, &w, &xq, n).unwrap();
                        let err = (f64::from(got) - f64::from(want)).abs();
                        assert!(
                            err <= tol,
                            "{ty} n={n} weights {wk:?} acts {ak:?} level {level}: \
                             {got:e} vs scalar {want:e} (M {m:e}, tol {tol:e})"
                        );
                        if m > 0.0 {
                            worst = worst.max(err / m);
                        }
                        checked += 1;
                    }
                }
            }
        }
        println!("{ty}: worst |simd − scalar| / M = {worst:.1e}");
    }
    println!("{checked} comparisons");
}

#[test]
fn level_table_follows_cpu_and_env() {
    let levels = available_levels();
    assert_eq!(levels.first(), Some(&KernelLevel::Scalar));
    assert_eq!(levels.last(), Some(&best_level()));
    for level in KernelLevel::ALL {
        assert_eq!(KernelLevel::from_name(level.name()), Some(level));
        assert_eq!(level.is_available(), levels.contains(&level), "{level}");
    }
    assert_eq!(KernelLevel::from_name(" AVX2 "), Some(KernelLevel::Avx2));
    assert_eq!(KernelLevel::from_name("sse9"), None);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl");
        let vnni = avx512 && has!("avx512vnni");
        assert_eq!(KernelLevel::Avx2.is_available(), avx2);
        assert_eq!(KernelLevel::Avx512.is_available(), avx512);
        assert_eq!(KernelLevel::Avx512Vnni.is_available(), vnni);
        assert!(!KernelLevel::Neon.is_available());
    }
    // A level the CPU cannot run is refused, never executed.
    for level in KernelLevel::ALL.into_iter().filter(|l| !l.is_available()) {
        let xq = vec![0u8; 34];
        assert_eq!(
            vec_dot_with(level, GgmlType::Q8_0, &[0; 34], &xq, 32),
            Err(KernelError::LevelUnavailable { level })
        );
    }
    // The process-wide level: the one PITH_FORCE_KERNELS names when the CPU has it,
    // else the best (the CI runs this file once per level).
    let forced = std::env::var(FORCE_ENV)
        .ok()
        .and_then(|v| KernelLevel::from_name(&v))
        .filter(|l| l.is_available());
    assert_eq!(
        pith_runtime::kernels::active_level(),
        forced.unwrap_or_else(best_level)
    );
    assert!(vec_dot_type(GgmlType::Q4K).is_some());
}

/// Nanoseconds per row dot product (640 and 4096 elements) at every level, measured interleaved
/// (level after level, 200 rounds) and reported as the minimum over rounds, which a busy
/// shared machine disturbs far less than a mean: `cargo test --release --test
/// kernel_levels -- --ignored --nocapture speed`. `cargo bench --bench kernels` gives
/// criterion's statistics for the same rows.
#[test]
#[ignore = "timing only"]
fn speed_by_level() {
    const ROWS: usize = 16;
    let levels = available_levels();
    let mut rng = StdRng::seed_from_u64(3);
    // 640: Gemma 3 270M's hidden size, the row length of its Q8_0/Q5_0 projections.
    let cases = WEIGHT_TYPES
        .into_iter()
        .filter(|t| t.block_size() == 32)
        .map(|t| (t, 640))
        .chain(WEIGHT_TYPES.into_iter().map(|t| (t, 4096)));
    for (ty, n) in cases {
        let rows: Vec<Vec<u8>> = (0..ROWS)
            .map(|_| weights(ty, Weights::Random, &mut rng, n))
            .collect();
        let x = activations(Acts::Random, &mut rng, n);
        let mut xq = Vec::new();
        quantize_activation(ty, &x, &mut xq).unwrap();
        let mut best = vec![f64::INFINITY; levels.len()];
        let mut sink = 0f32;
        for _ in 0..200 {
            for (i, &level) in levels.iter().enumerate() {
                let t = std::time::Instant::now();
                for w in &rows {
                    sink += vec_dot_with(level, ty, w, &xq, n).unwrap();
                }
                let ns = t.elapsed().as_nanos() as f64 / ROWS as f64;
                best[i] = best[i].min(ns);
            }
        }
        let line: Vec<String> = levels
            .iter()
            .zip(&best)
            .map(|(l, ns)| format!("{l} {ns:.0} ns"))
            .collect();
        println!("{ty} n={n}: {} ({sink:e})", line.join(", "));
    }
}
