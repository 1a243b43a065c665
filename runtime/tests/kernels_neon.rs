//! The aarch64 NEON kernels (`pith_runtime::kernels::neon`), both flavours — plain NEON
//! (the `vmull_s8` fallback, for Cortex-A53/A72) and dotprod (`sdot`) — against
//! candle-core's scalar `vec_dot_unopt` (an independent port of ggml's generic C; even
//! block counts only, which it asserts), the f64 dot of the dequantized rows, and pith's
//! scalar kernels, for all ten weight types on random valid blocks, with even and
//! odd block counts (the legacy kernels' pair loop and scalar tail). Tolerance as in
//! `kernels.rs`: `1e-5 · Σ|w_i x_i|` (the integer sums are exact; only the f32 summation
//! order differs). The two flavours must agree bit for bit (the plain one reproduces
//! `sdot`'s lanes exactly, so one aarch64 binary decodes the same tokens on every CPU).
//!
//! Also checks the run-time selection: the level follows `is_aarch64_feature_detected!`
//! and `PITH_FORCE_KERNELS` (`neon-nodot` pins plain NEON), and when the environment says
//! what the CPU is (`PITH_EXPECT_DOTPROD=0|1`, set by `ci/arm-tests.sh` for each qemu CPU
//! model) that the detection agrees.
//!
//! Built only for aarch64; on other targets this test binary is empty. Run on x86-64 with
//! `ci/arm-tests.sh` (qemu user-mode emulation, `-cpu cortex-a53` and `-cpu max`).
#![cfg(target_arch = "aarch64")]

use std::mem::size_of;

use bytemuck::{Pod, Zeroable};
use candle_core::quantized::k_quants as ck;
use candle_core::quantized::k_quants::GgmlType as CandleType;
use half::f16;
use pith_runtime::kernels::neon::{self, dotprod_available};
use pith_runtime::kernels::{
    active_level, quantize_activation, vec_dot, vec_dot_scalar, vec_dot_type, KernelLevel,
    FORCE_ENV,
};
use pith_runtime::quant::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1,
};
use pith_runtime::quant::GgmlType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A NEON entry point over raw bytes (blocks viewed in place; the buffers are `Vec`s of
/// the block type, so aligned).
type RawDot = fn(usize, &[u8], &[u8]) -> f32;

/// Both flavours of one type's kernel, as raw-byte functions.
struct Pair {
    ty: GgmlType,
    plain: RawDot,
    dotprod: RawDot,
}

macro_rules! pair {
    ($ty:expr, $w:ty, $a:ty, $plain:path, $dot:path) => {
        Pair {
            ty: $ty,
            plain: |n, w, x| {
                $plain(
                    n,
                    bytemuck::cast_slice::<u8, $w>(w),
                    bytemuck::cast_slice::<u8, $a>(x),
                )
            },
            dotprod: |n, w, x| {
                $dot(
                    n,
                    bytemuck::cast_slice::<u8, $w>(w),
                    bytemuck::cast_slice::<u8, $a>(x),
                )
            },
        }
    };
}

fn pairs() -> [Pair; 10] {
    use GgmlType as T;
    [
        pair!(
            T::Q4_0,
            BlockQ4_0,
            BlockQ8_0,
            neon::vec_dot_q4_0_q8_0,
            neon::vec_dot_q4_0_q8_0_dotprod
        ),
        pair!(
            T::Q4_1,
            BlockQ4_1,
            BlockQ8_1,
            neon::vec_dot_q4_1_q8_1,
            neon::vec_dot_q4_1_q8_1_dotprod
        ),
        pair!(
            T::Q5_0,
            BlockQ5_0,
            BlockQ8_0,
            neon::vec_dot_q5_0_q8_0,
            neon::vec_dot_q5_0_q8_0_dotprod
        ),
        pair!(
            T::Q5_1,
            BlockQ5_1,
            BlockQ8_1,
            neon::vec_dot_q5_1_q8_1,
            neon::vec_dot_q5_1_q8_1_dotprod
        ),
        pair!(
            T::Q8_0,
            BlockQ8_0,
            BlockQ8_0,
            neon::vec_dot_q8_0_q8_0,
            neon::vec_dot_q8_0_q8_0_dotprod
        ),
        pair!(
            T::Q2K,
            BlockQ2K,
            BlockQ8K,
            neon::vec_dot_q2_k_q8_k,
            neon::vec_dot_q2_k_q8_k_dotprod
        ),
        pair!(
            T::Q3K,
            BlockQ3K,
            BlockQ8K,
            neon::vec_dot_q3_k_q8_k,
            neon::vec_dot_q3_k_q8_k_dotprod
        ),
        pair!(
            T::Q4K,
            BlockQ4K,
            BlockQ8K,
            neon::vec_dot_q4_k_q8_k,
            neon::vec_dot_q4_k_q8_k_dotprod
        ),
        pair!(
            T::Q5K,
            BlockQ5K,
            BlockQ8K,
            neon::vec_dot_q5_k_q8_k,
            neon::vec_dot_q5_k_q8_k_dotprod
        ),
        pair!(
            T::Q6K,
            BlockQ6K,
            BlockQ8K,
            neon::vec_dot_q6_k_q8_k,
            neon::vec_dot_q6_k_q8_k_dotprod
        ),
    ]
}

/// Raw bytes of `nb` random blocks `B` (every byte random), with `fix` setting the f16
/// scales to sane magnitudes.
fn random_blocks<B: Pod>(
    rng: &mut StdRng,
    nb: usize,
    fix: impl Fn(&mut B, &mut StdRng),
) -> Vec<u8> {
    let mut v = vec![B::zeroed(); nb];
    for b in &mut v {
        rng.fill(bytemuck::bytes_of_mut(b));
        fix(b, rng);
    }
    bytemuck::cast_slice(&v).to_vec()
}

fn scale(rng: &mut StdRng) -> f16 {
    f16::from_f32(rng.random_range(-0.05..0.05))
}

/// A random valid weight row of `n` elements of type `ty`.
fn random_weights(ty: GgmlType, rng: &mut StdRng, n: usize) -> Vec<u8> {
    let nb = n / ty.block_size();
    match ty {
        GgmlType::Q4_0 => random_blocks::<BlockQ4_0>(rng, nb, |b, r| b.d = scale(r)),
        GgmlType::Q4_1 => {
            random_blocks::<BlockQ4_1>(rng, nb, |b, r| (b.d, b.m) = (scale(r), scale(r)))
        }
        GgmlType::Q5_0 => random_blocks::<BlockQ5_0>(rng, nb, |b, r| b.d = scale(r)),
        GgmlType::Q5_1 => {
            random_blocks::<BlockQ5_1>(rng, nb, |b, r| (b.d, b.m) = (scale(r), scale(r)))
        }
        GgmlType::Q8_0 => random_blocks::<BlockQ8_0>(rng, nb, |b, r| b.d = scale(r)),
        GgmlType::Q2K => {
            random_blocks::<BlockQ2K>(rng, nb, |b, r| (b.d, b.dmin) = (scale(r), scale(r)))
        }
        GgmlType::Q3K => random_blocks::<BlockQ3K>(rng, nb, |b, r| b.d = scale(r)),
        GgmlType::Q4K => {
            random_blocks::<BlockQ4K>(rng, nb, |b, r| (b.d, b.dmin) = (scale(r), scale(r)))
        }
        GgmlType::Q5K => {
            random_blocks::<BlockQ5K>(rng, nb, |b, r| (b.d, b.dmin) = (scale(r), scale(r)))
        }
        GgmlType::Q6K => random_blocks::<BlockQ6K>(rng, nb, |b, r| b.d = scale(r)),
        other => panic!("no generator for {other}"),
    }
}

/// Activations spanning several magnitudes, plus a saturated stretch (every quant ±127).
fn random_activations(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match (i / 32) % 5 {
            0 => {
                if i % 2 == 0 {
                    1.0
                } else {
                    -1.0
                }
            }
            _ => rng.random_range(-1.0..1.0) * 10f32.powf(rng.random_range(-3.0..3.0)),
        })
        .collect()
}

/// candle-core blocks holding the same bytes as `bytes`.
fn to_candle<B: CandleType>(bytes: &[u8]) -> Vec<B> {
    assert_eq!(bytes.len() % size_of::<B>(), 0, "{:?} size", B::DTYPE);
    let mut v: Vec<B> = (0..bytes.len() / size_of::<B>())
        .map(|_| B::zeros())
        .collect();
    // SAFETY: candle's blocks are `#[repr(C)]` structs of integer, `f16` and `f32` fields,
    // so every byte pattern is a valid value; `v` spans exactly `bytes.len()` bytes (its
    // element size is the ggml block size, asserted in `candle_dot`), and the two buffers
    // are distinct allocations.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
    }
    v
}

/// candle-core's scalar dot product of raw weight bytes with raw activation bytes.
fn candle_dot(ty: GgmlType, w: &[u8], xq: &[u8], n: usize) -> f32 {
    fn go<B: CandleType>(ty: GgmlType, w: &[u8], xq: &[u8], n: usize) -> f32 {
        assert_eq!(size_of::<B>(), ty.type_size());
        assert_eq!(
            size_of::<B::VecDotType>(),
            vec_dot_type(ty).unwrap().type_size()
        );
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

/// The f64 reference `Σ w_i · x_i` over the dequantized rows (dequantization is checked
/// bit-exact against gguf-py by `dequant_vs_gguf_py.rs`), and `Σ |w_i · x_i|`.
///
/// For Q4_1/Q5_1 ggml uses the Q8_1 block's cached `s = f16(d · Σq)` for the minimum's
/// term, not `f16(d) · Σq` as dequantization gives; the reference adds that difference,
/// `m · (s − d · Σq)` per block.
fn reference_dot(ty: GgmlType, w: &[u8], act: GgmlType, xq: &[u8]) -> (f64, f64) {
    let wd = pith_runtime::quant::dequantize_to_vec(ty, w).unwrap();
    let xd = pith_runtime::quant::dequantize_to_vec(act, xq).unwrap();
    let mut dot = 0f64;
    let mut abs = 0f64;
    for (&a, &b) in wd.iter().zip(&xd) {
        dot += f64::from(a) * f64::from(b);
        abs += (f64::from(a) * f64::from(b)).abs();
    }
    if act == GgmlType::Q8_1 {
        let ys: &[BlockQ8_1] = bytemuck::cast_slice(xq);
        let mins: Vec<f16> = match ty {
            GgmlType::Q4_1 => bytemuck::cast_slice::<u8, BlockQ4_1>(w)
                .iter()
                .map(|b| b.m)
                .collect(),
            _ => bytemuck::cast_slice::<u8, BlockQ5_1>(w)
                .iter()
                .map(|b| b.m)
                .collect(),
        };
        for (m, y) in mins.iter().zip(ys) {
            let sum_q: i32 = y.qs.iter().map(|&q| i32::from(q)).sum();
            let s_deq = f64::from(y.d.to_f32()) * f64::from(sum_q);
            dot += f64::from(m.to_f32()) * (f64::from(y.s.to_f32()) - s_deq);
        }
    }
    (dot, abs)
}

/// A byte buffer aligned for every block type (backed by `u64`s), so the NEON entry points
/// can view it as blocks in place.
struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl std::ops::Deref for Aligned {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

fn aligned(bytes: &[u8]) -> Aligned {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    Aligned {
        words,
        len: bytes.len(),
    }
}

#[test]
fn both_flavours_match_candle_and_scalar_for_every_type() {
    let dot = dotprod_available();
    let mut rng = StdRng::seed_from_u64(0xa5a5_0001);
    let mut checked = 0;
    for p in pairs() {
        let bs = p.ty.block_size();
        // Legacy types: 1, 2, 7 (odd: scalar tail), 64 blocks; k-quants: 1, 3, 16.
        let counts: &[usize] = if bs == 32 {
            &[1, 2, 7, 64]
        } else {
            &[1, 3, 16]
        };
        for &nb in counts {
            for trial in 0..4 {
                let n = nb * bs;
                let w = random_weights(p.ty, &mut rng, n);
                let x = random_activations(&mut rng, n);
                let mut xq = Vec::new();
                let act = quantize_activation(p.ty, &x, &mut xq).unwrap();
                let (w, xq) = (aligned(&w), aligned(&xq));
                let (want, abs) = reference_dot(p.ty, &w, act, &xq);
                let tol = 1e-5 * abs + 1e-30;
                // candle's legacy kernels debug-assert an even block count.
                let theirs = (nb % 2 == 0).then(|| f64::from(candle_dot(p.ty, &w, &xq, n)));
                let scalar = f64::from(vec_dot_scalar(p.ty, &w, &xq, n).unwrap());
                let mut flavours = vec![("neon", (p.plain)(n, &w, &xq))];
                if dot {
                    flavours.push(("dotprod", (p.dotprod)(n, &w, &xq)));
                }
                for (name, ours) in flavours {
                    let ours = f64::from(ours);
                    assert!(
                        (ours - want).abs() <= tol,
                        "{} {name} nb {nb} trial {trial}: {ours:e} vs f64 reference {want:e} (tol {tol:e})",
                        p.ty
                    );
                    if let Some(theirs) = theirs {
                        assert!(
                            (ours - theirs).abs() <= tol,
                            "{} {name} nb {nb} trial {trial}: {ours:e} vs candle {theirs:e} (tol {tol:e})",
                            p.ty
                        );
                    }
                    assert!(
                        (ours - scalar).abs() <= tol,
                        "{} {name} nb {nb} trial {trial}: {ours:e} vs scalar {scalar:e} (tol {tol:e})",
                        p.ty
                    );
                    checked += 1;
                }
            }
        }
    }
    println!("{checked} rows checked (dotprod {dot})");
}

#[test]
fn selected_level_follows_cpu_and_env() {
    let forced = std::env::var(FORCE_ENV).unwrap_or_default();
    let forced = forced.trim();
    if let Ok(expect) = std::env::var("PITH_EXPECT_DOTPROD") {
        assert_eq!(
            dotprod_available(),
            expect.trim() == "1",
            "is_aarch64_feature_detected!(\"dotprod\") vs PITH_EXPECT_DOTPROD={expect}"
        );
    }
    let want = if forced == "scalar" {
        KernelLevel::Scalar
    } else if forced != "neon-nodot" && dotprod_available() {
        KernelLevel::NeonDotprod
    } else {
        KernelLevel::Neon
    };
    assert_eq!(active_level(), want, "{FORCE_ENV}={forced:?}");
}

#[test]
fn dispatch_uses_the_selected_flavour() {
    // `vec_dot` must give bit-for-bit what the selected level's function gives.
    let mut rng = StdRng::seed_from_u64(0xa5a5_0002);
    let level = active_level();
    for p in pairs() {
        let n = 4 * 256;
        let w = aligned(&random_weights(p.ty, &mut rng, n));
        let x = random_activations(&mut rng, n);
        let mut xq = Vec::new();
        quantize_activation(p.ty, &x, &mut xq).unwrap();
        let xq = aligned(&xq);
        let direct = match level {
            KernelLevel::Neon => (p.plain)(n, &w, &xq),
            KernelLevel::NeonDotprod => (p.dotprod)(n, &w, &xq),
            _ => vec_dot_scalar(p.ty, &w, &xq, n).unwrap(),
        };
        let dispatched = vec_dot(p.ty, &w, &xq, n).unwrap();
        assert_eq!(
            dispatched.to_bits(),
            direct.to_bits(),
            "{} at {level:?}",
            p.ty
        );
    }
}

#[test]
fn dotprod_entry_refuses_a_cpu_without_it() {
    let w = vec![BlockQ8_0::zeroed(); 1];
    let run = std::panic::catch_unwind(|| neon::vec_dot_q8_0_q8_0_dotprod(32, &w, &w));
    if dotprod_available() {
        assert_eq!(run.ok(), Some(0.0), "zero blocks on a dotprod CPU");
    } else {
        let msg = run.expect_err("dotprod entry point ran on a CPU without dotprod");
        let msg = msg.downcast_ref::<&str>().copied().unwrap_or_default();
        assert!(msg.contains("without dotprod"), "{msg}");
    }
}

#[test]
fn flavours_agree_bit_for_bit() {
    // Same integer lanes, same f32 operations in the same order: identical results.
    if !dotprod_available() {
        println!("no dotprod on this CPU: nothing to compare");
        return;
    }
    let mut rng = StdRng::seed_from_u64(0xa5a5_0003);
    for p in pairs() {
        for nb in [1usize, 2, 3, 8] {
            let n = nb * p.ty.block_size().max(32);
            let n = n - n % p.ty.block_size();
            let w = aligned(&random_weights(p.ty, &mut rng, n));
            let x = random_activations(&mut rng, n);
            let mut xq = Vec::new();
            quantize_activation(p.ty, &x, &mut xq).unwrap();
            let xq = aligned(&xq);
            let a = (p.plain)(n, &w, &xq);
            let b = (p.dotprod)(n, &w, &xq);
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{} nb {nb}: plain {a:e} vs dotprod {b:e}",
                p.ty
            );
        }
    }
}
