//! AVX-512F micro-kernel: up to 8 rows of `A` × 48 columns of `B` (three 16-lane vectors),
//! 24 accumulators, each `A` element broadcast; masked loads and stores at the right edge.

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_fmadd_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
    _mm512_set1_ps, _mm512_setzero_ps,
};

use super::{Operands, OutTile};

const MR: usize = 8;
const LANES: usize = 16;
const NV: usize = 3;

pub fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

pub fn gemm(o: &Operands<'_>, c: OutTile) {
    assert!(available(), "AVX-512 GEMM called on a CPU without AVX-512F");
    super::for_each_tile(o, MR, LANES * NV, |t, r, w, mr| {
        // SAFETY: AVX-512F is present (checked above); rows t..t+mr of A and columns r..r+w of B
        // lie inside the operands (`gemm` checked their sizes), and the output tile is
        // inside the caller's `OutTile` contract.
        unsafe {
            match mr {
                8 => tile::<8>(o, t, r, w, c),
                7 => tile::<7>(o, t, r, w, c),
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

#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize>(o: &Operands<'_>, t0: usize, r0: usize, w: usize, c: OutTile) {
    let masks: [__mmask16; NV] = std::array::from_fn(|v| {
        let lo = v * LANES;
        let cnt = w.saturating_sub(lo).min(LANES);
        ((1u32 << cnt) - 1) as __mmask16
    });
    let a = o.a.as_ptr().add(t0 * o.lda);
    let b = o.b.as_ptr().add(r0);
    let mut acc: [[__m512; NV]; R] = [[_mm512_setzero_ps(); NV]; R];
    for kk in 0..o.k {
        let bk = b.add(kk * o.ldb);
        let bv: [__m512; NV] =
            std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], bk.wrapping_add(v * LANES)));
        for (t, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(t * o.lda + kk));
            for v in 0..NV {
                row[v] = _mm512_fmadd_ps(av, bv[v], row[v]);
            }
        }
    }
    for (t, row) in acc.iter().enumerate() {
        let out = c.ptr.add((t0 + t) * c.ldc + r0);
        for v in 0..NV {
            if masks[v] != 0 {
                _mm512_mask_storeu_ps(out.wrapping_add(v * LANES), masks[v], row[v]);
            }
        }
    }
}
