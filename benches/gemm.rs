//! The f32 prefill GEMM (`pith_runtime::gemm`) on the shapes of Gemma 3 270M's
//! projections for a 512-token prefill, one thread, at the selected level and the
//! portable one. Throughput is reported in multiply-adds. `cargo bench --bench gemm`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pith_runtime::gemm::{gemm, gemm_portable, Operands, OutTile};

fn bench_gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    g.sample_size(10);
    // (tokens, weight rows in one task tile, k)
    for &(m, n, k) in &[(512, 96, 640), (512, 96, 2048), (32, 256, 256)] {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut out = vec![0.0f32; m * n];
        let ops = Operands {
            a: &a,
            lda: k,
            b: &b,
            ldb: n,
            m,
            n,
            k,
        };
        g.throughput(Throughput::Elements((m * n * k) as u64));
        let level = format!("{:?}", pith_runtime::gemm::level());
        g.bench_function(format!("{level}/{m}x{n}x{k}"), |bch| {
            bch.iter(|| {
                // SAFETY: `out` holds m·n elements, ldc = n; single-threaded.
                gemm(&ops, unsafe { OutTile::new(out.as_mut_ptr(), n) })
            })
        });
        if m * n * k <= 512 * 96 * 640 {
            g.bench_function(format!("portable/{m}x{n}x{k}"), |bch| {
                bch.iter(|| {
                    // SAFETY: as above.
                    gemm_portable(&ops, unsafe { OutTile::new(out.as_mut_ptr(), n) })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
