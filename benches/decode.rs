//! End-to-end forward-pass benchmarks on the default model (Gemma 3 270M Q4_K_M, found
//! or fetched as `pith run` does): one decode step at depth 128, and a 512-token
//! prefill into an empty cache. Threads: `PITH_BENCH_THREADS`, default all CPUs.
//! `cargo bench --bench decode`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pith_runtime::generate::Engine;
use pith_runtime::model::{Logits, ModelOptions};

/// Tokens in the cache before the timed decode step.
const DEPTH: usize = 128;
/// Tokens of the timed prefill.
const PREFILL: usize = 512;

/// Fixed pseudo-random token ids below `n_vocab`.
fn tokens(n: usize, n_vocab: usize) -> Vec<u32> {
    let mut s = 0x5eedu64;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 33) % n_vocab as u64) as u32
        })
        .collect()
}

fn engine() -> Engine {
    let path = pith_models::fetch::resolve_model(None).unwrap_or_else(|e| {
        panic!("the default model is needed ($PITH_HOME/models/gemma-3-270m-q4_k_m.gguf): {e}")
    });
    let threads = std::env::var("PITH_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    Engine::open(
        &path,
        &ModelOptions {
            threads,
            ..ModelOptions::default()
        },
    )
    .expect("open the model")
}

fn bench_forward(c: &mut Criterion) {
    let engine = engine();
    let model = &engine.model;
    let n_vocab = model.config().n_vocab;
    let toks = tokens(DEPTH.max(PREFILL) + 1, n_vocab);

    let mut g = c.benchmark_group(format!("forward/t{}", model.threads()));
    g.sample_size(10);

    let mut cache = model.new_cache(DEPTH + 1);
    model
        .forward(&mut cache, &toks[..DEPTH], Logits::None)
        .expect("prefill");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function(format!("decode_step_d{DEPTH}"), |b| {
        b.iter(|| {
            cache.truncate(DEPTH);
            model
                .forward(&mut cache, &toks[DEPTH..DEPTH + 1], Logits::Last)
                .expect("decode")
        })
    });

    let mut cache = model.new_cache(PREFILL);
    g.throughput(Throughput::Elements(PREFILL as u64));
    g.measurement_time(Duration::from_secs(20));
    g.bench_function(format!("prefill_{PREFILL}"), |b| {
        b.iter(|| {
            cache.clear();
            model
                .forward(&mut cache, &toks[..PREFILL], Logits::Last)
                .expect("prefill")
        })
    });
    g.finish();
}

criterion_group!(benches, bench_forward);
criterion_main!(benches);
