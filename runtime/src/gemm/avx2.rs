//! AVX2 + FMA micro-kernel: up to 6 rows of `A` × 16 columns of `B` (two 8-lane vectors),
//! 12 accumulators, each `A` element broadcast; masked loads and stores at the right edge.

use std::arch::x86_64::{
    __m256, __m256i, _mm256_fmadd_ps, _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_set1_ps,
    _mm256_setr_epi32, _mm256_setzero_ps,
};

use super::{Operands, OutTile};

const MR: usize = 6;
const LANES: usize = 8;
const NV: usize = 2;

pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

pub fn gemm(o: &Operands<'_>, c: OutTile) {
    assert!(available(), "AVX2 GEMM called on a CPU without AVX2 + FMA");
    super::for_each_tile(o, MR, LANES * NV, |t, r, w, mr| {
        // SAFETY: AVX2 and FMA are present (checked above); rows t..t+mr of A and columns r..r+w of B
        // lie inside the operands (`gemm` checked their sizes), and the output tile is
        // inside the caller's `OutTile` contract.
        unsafe {
            match mr {
                6 => tile::<6>(o, t, r, w, c),
                5 => tile::<5>(o, t, r, w, c),
                4 => tile::<4>(o, t, r, w, c),
                3 => tile::<3>(o, t, r, w, c),
                2 => tile::<2>(o, t, r, w, c),
                _ => tile::<1>(o, t, r, w, c),
            }
        }
    });
}

/// Lane mask with the first `cnt` lanes set (sign bit of each 32-bit lane).
#[target_feature(enable = "avx2,fma")]
unsafe fn mask(cnt: usize) -> __m256i {
    let on = |i: i32| if (i as usize) < cnt { -1 } else { 0 };
    _mm256_setr_epi32(on(0), on(1), on(2), on(3), on(4), on(5), on(6), on(7))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize>(o: &Operands<'_>, t0: usize, r0: usize, w: usize, c: OutTile) {
    let counts: [usize; NV] = std::array::from_fn(|v| w.saturating_sub(v * LANES).min(LANES));
    let masks: [__m256i; NV] = std::array::from_fn(|v| mask(counts[v]));
    let a = o.a.as_ptr().add(t0 * o.lda);
    let b = o.b.as_ptr().add(r0);
    let mut acc: [[__m256; NV]; R] = [[_mm256_setzero_ps(); NV]; R];
    for kk in 0..o.k {
        let bk = b.add(kk * o.ldb);
        let bv: [__m256; NV] =
            std::array::from_fn(|v| _mm256_maskload_ps(bk.wrapping_add(v * LANES), masks[v]));
        for (t, row) in acc.iter_mut().enumerate() {
            let av = _mm256_set1_ps(*a.add(t * o.lda + kk));
            for v in 0..NV {
                row[v] = _mm256_fmadd_ps(av, bv[v], row[v]);
            }
        }
    }
    for (t, row) in acc.iter().enumerate() {
        let out = c.ptr.add((t0 + t) * c.ldc + r0);
        for v in 0..NV {
            if counts[v] > 0 {
                _mm256_maskstore_ps(out.wrapping_add(v * LANES), masks[v], row[v]);
            }
        }
    }
}
