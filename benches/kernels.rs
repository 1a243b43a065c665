//! Kernel micro-benchmarks, per quant type and per kernel level:
//!
//! - `vec_dot/<level>/<type>`: one weight row · quantized activations, 4096 elements, at
//!   every level this CPU can run (`kernels::available_levels`: scalar, avx2, avx512,
//!   avx512-vnni on a recent x86-64), each through `kernels::vec_dot_with`;
//! - `quantize_activation/<level>/<act type>`: one 4096-element activation row;
//! - `dequantize/<type>`: the reference dequantizer, 4096 elements.
//!
//! Throughput is reported in elements/second. `cargo bench --bench kernels`; one level:
//! `cargo bench --bench kernels -- vec_dot/avx512-vnni`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pith_runtime::kernels::{self, quantize_activation, vec_dot_type};
use pith_runtime::quant::{dequantize, GgmlType};

/// Elements per row: a multiple of every block size (32 and 256).
const N: usize = 4096;

/// Weight types with a quantized dot product.
const DOT_TYPES: [GgmlType; 10] = [
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

/// Deterministic pseudo-random bytes (SplitMix64).
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            // Top bits clear: every f16 scale in a block is finite (|d| < 2).
            ((z ^ (z >> 31)) & 0x3f) as u8
        })
        .collect()
}

/// A random row of `n` elements of `ty`, as raw block bytes.
fn row(ty: GgmlType, n: usize, seed: u64) -> Vec<u8> {
    bytes(n / ty.block_size() * ty.type_size(), seed)
}

/// Activations in [-1, 1).
fn activations(n: usize) -> Vec<f32> {
    bytes(n, 7)
        .into_iter()
        .map(|b| f32::from(b) / 32.0 - 1.0)
        .collect()
}

fn bench_vec_dot(c: &mut Criterion) {
    let level = kernels::active_level();
    let x = activations(N);
    for lvl in kernels::available_levels() {
        let mut g = c.benchmark_group(format!("vec_dot/{lvl}"));
        g.throughput(Throughput::Elements(N as u64));
        for ty in DOT_TYPES {
            let w = row(ty, N, 1);
            let mut xq = Vec::new();
            quantize_activation(ty, &x, &mut xq).expect("quantize");
            g.bench_function(ty.name(), |b| {
                b.iter(|| {
                    kernels::vec_dot_with(lvl, ty, black_box(&w), black_box(&xq), N)
                        .expect("vec_dot")
                })
            });
        }
        g.finish();
    }

    let mut g = c.benchmark_group(format!("quantize_activation/{level}"));
    g.throughput(Throughput::Elements(N as u64));
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4K] {
        let act = vec_dot_type(ty).expect("dot type");
        let mut out = Vec::new();
        g.bench_function(act.name(), |b| {
            b.iter(|| quantize_activation(ty, black_box(&x), &mut out).expect("quantize"))
        });
    }
    g.finish();
}

fn bench_dequantize(c: &mut Criterion) {
    let mut g = c.benchmark_group("dequantize");
    g.throughput(Throughput::Elements(N as u64));
    let types = [GgmlType::F16, GgmlType::BF16, GgmlType::Q8K]
        .into_iter()
        .chain(DOT_TYPES);
    for ty in types {
        let data = row(ty, N, 2);
        let mut out = vec![0f32; N];
        g.bench_function(ty.name(), |b| {
            b.iter(|| dequantize(ty, black_box(&data), &mut out).expect("dequantize"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_vec_dot, bench_dequantize);
criterion_main!(benches);
