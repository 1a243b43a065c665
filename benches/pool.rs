//! Fork-join overhead of the forward pass's thread pool: one parallel region (the model
//! splits every matmul, attention and activation into one) with no work in it, on
//! rayon's persistent pool as `Model` uses it, against spawning scoped threads per region
//! (what a pool saves). A decode step of Gemma 3 270M opens about 130 regions, so the
//! per-region figure × 130 is the pool's share of a token's time.
//! `cargo bench --bench pool`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rayon::prelude::*;

fn bench_pool(c: &mut Criterion) {
    let threads = std::env::var("PITH_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2usize);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let mut g = c.benchmark_group(format!("fork_join_{threads}_threads"));
    let mut out = vec![0u64; threads];
    g.bench_function("rayon_persistent_pool", |b| {
        b.iter(|| {
            pool.install(|| {
                out.par_iter_mut()
                    .enumerate()
                    .for_each(|(i, o)| *o = black_box(i as u64))
            })
        })
    });
    g.bench_function("scoped_spawn_per_region", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for (i, o) in out.iter_mut().enumerate() {
                    s.spawn(move || *o = black_box(i as u64));
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench_pool);
criterion_main!(benches);
