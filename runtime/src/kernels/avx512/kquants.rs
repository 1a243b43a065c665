//! AVX-512 bodies for Q4_K, Q5_K and Q6_K: 64 quants per 512-bit vector, multiplied by
//! the activations with `vpmaddubsw` and by the sub-block scales with `vpdpwssd` (one
//! instruction for ggml's `madd` + `add`), as in ggml's AVX2 kernels at twice the width.
//!
//! Safety, for every function here: the CPU must support AVX-512 F/BW/VL, AVX2, F16C and
//! what `D` needs ([`Dot`]); `x` and `y` have the same length.

use std::arch::x86_64::{
    __m512i, _mm256_castsi256_si128, _mm256_cvtepi8_epi16, _mm256_cvtepu8_epi16,
    _mm256_extracti128_si256, _mm256_madd_epi16, _mm256_slli_epi32, _mm512_and_si512,
    _mm512_broadcast_i32x4, _mm512_broadcast_i64x4, _mm512_cvtepi32_ps, _mm512_fmadd_ps,
    _mm512_loadu_si512, _mm512_maddubs_epi16, _mm512_mask_add_epi8, _mm512_or_si512,
    _mm512_reduce_add_ps, _mm512_set1_epi8, _mm512_set1_ps, _mm512_set_epi64, _mm512_setzero_ps,
    _mm512_setzero_si512, _mm512_shuffle_epi8, _mm512_sllv_epi64, _mm512_srli_epi64,
    _mm512_srlv_epi64, _mm512_sub_epi32, _mm512_test_epi8_mask, _mm512_zextsi256_si512,
    _mm_cvtepi32_ps, _mm_fmadd_ps, _mm_hadd_epi16, _mm_loadu_si128, _mm_madd_epi16, _mm_set1_ps,
    _mm_set_epi32, _mm_setzero_ps,
};

use super::{hsum_float_4, load256, load512, Dot};
use crate::kernels::avx2::{fp16, fp16x2};
use crate::quant::blocks::{BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::quant::k4_scales_mins_words;

/// `vpshufb` patterns over 8 broadcast 16-bit scales: row `j` gives scale `2j` to the low
/// 256 bits and `2j + 1` to the high 256 bits (the two 32-quant sub-blocks of one 64-quant
/// chunk of Q4_K/Q5_K).
const SHUF_K4: [[u8; 64]; 4] = {
    let mut t = [[0u8; 64]; 4];
    let mut j = 0;
    while j < 4 {
        let mut b = 0;
        while b < 64 {
            t[j][b] = (4 * j + 2 * (b / 32) + b % 2) as u8;
            b += 1;
        }
        j += 1;
    }
    t
};

/// `vpshufb` patterns over 8 broadcast 16-bit scales: row `h` gives 128-bit lane `k` the
/// scale `4h + k` (the four 16-quant groups of one 64-quant chunk of Q6_K).
const SHUF_Q6: [[u8; 64]; 2] = {
    let mut t = [[0u8; 64]; 2];
    let mut h = 0;
    while h < 2 {
        let mut b = 0;
        while b < 64 {
            t[h][b] = (2 * (4 * h + b / 16) + b % 2) as u8;
            b += 1;
        }
        h += 1;
    }
    t
};

/// The 64 quants of one 32-byte nibble chunk: low nibbles in the low 256 bits, high
/// nibbles in the high 256 bits (ggml's Q4_K/Q5_K element order).
#[inline(always)]
unsafe fn nibbles64(qs: &[u8; 32]) -> __m512i {
    let both = _mm512_broadcast_i64x4(load256(qs));
    let q = _mm512_srlv_epi64(both, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0));
    _mm512_and_si512(q, _mm512_set1_epi8(0x0f))
}

/// The mins term of a Q4_K/Q5_K block, `Σ_g min[g] · bsum[g]` in 4 i32 lanes (as
/// floats), and the 8 scales as 16-bit values broadcast to every 128-bit lane.
#[inline(always)]
unsafe fn k4_scales(packed: &[u8; 12], bsums: &[i16; 16]) -> (std::arch::x86_64::__m128, __m512i) {
    let utmp = k4_scales_mins_words(packed);
    let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
        utmp[3] as i32,
        utmp[2] as i32,
        utmp[1] as i32,
        utmp[0] as i32,
    ));
    // SAFETY: `bsums` is 16 `i16`, 32 bytes, the width of an unaligned 256-bit load.
    let q8sums = unsafe { std::arch::x86_64::_mm256_loadu_si256(bsums.as_ptr().cast()) };
    let q8s = _mm_hadd_epi16(
        _mm256_castsi256_si128(q8sums),
        _mm256_extracti128_si256(q8sums, 1),
    );
    let prod = _mm_madd_epi16(_mm256_extracti128_si256(mins_and_scales, 1), q8s);
    let scales = _mm512_broadcast_i32x4(_mm256_castsi256_si128(mins_and_scales));
    (_mm_cvtepi32_ps(prod), scales)
}

/// One `SHUF_*` row as a vector.
#[inline(always)]
unsafe fn shuf(row: &[u8; 64]) -> __m512i {
    load512(row)
}

/// The 64-quant chunk `j` of `yb` (quants `64 j .. 64 j + 64`).
#[inline(always)]
unsafe fn q8_chunk(yb: &BlockQ8K, j: usize) -> __m512i {
    let chunk: &[i8; 64] = yb.qs[64 * j..][..64].try_into().expect("64 bytes");
    load512(chunk)
}

/// `Q4_K · Q8_K`.
#[inline(always)]
pub(super) unsafe fn q4_k<D: Dot>(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let (xd, xdmin) = fp16x2(xb.d, xb.dmin);
        let (d, dmin) = (yb.d * xd, -yb.d * xdmin);
        let (mins, scales) = k4_scales(&xb.scales, &yb.bsums);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), mins, acc_m);
        let mut sumi = _mm512_setzero_si512();
        for (j, row) in SHUF_K4.iter().enumerate() {
            let qs: &[u8; 32] = xb.qs[32 * j..][..32].try_into().expect("32 bytes");
            let p16 = _mm512_maddubs_epi16(nibbles64(qs), q8_chunk(yb, j));
            let sc = _mm512_shuffle_epi8(scales, shuf(row));
            sumi = D::dpwssd(sumi, p16, sc);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    _mm512_reduce_add_ps(acc) + hsum_float_4(acc_m)
}

/// `Q5_K · Q8_K`: as [`q4_k`], with the fifth bit (bit `2j` of `qh` for the low nibbles
/// of chunk `j`, `2j + 1` for the high ones) added through a byte mask.
#[inline(always)]
pub(super) unsafe fn q5_k<D: Dot>(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let sixteen = _mm512_set1_epi8(16);
    let mut acc = _mm512_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let (xd, xdmin) = fp16x2(xb.d, xb.dmin);
        let (d, dmin) = (yb.d * xd, -yb.d * xdmin);
        let (mins, scales) = k4_scales(&xb.scales, &yb.bsums);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), mins, acc_m);
        let hbits = _mm512_broadcast_i64x4(load256(&xb.qh));
        // Bit 2j in the low 256 bits, 2j + 1 in the high ones.
        let mut bit = _mm512_set_epi64(
            0x0202_0202_0202_0202,
            0x0202_0202_0202_0202,
            0x0202_0202_0202_0202,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0x0101_0101_0101_0101,
            0x0101_0101_0101_0101,
            0x0101_0101_0101_0101,
        );
        let mut sumi = _mm512_setzero_si512();
        for (j, row) in SHUF_K4.iter().enumerate() {
            let qs: &[u8; 32] = xb.qs[32 * j..][..32].try_into().expect("32 bytes");
            let q = nibbles64(qs);
            let q = _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(hbits, bit), q, sixteen);
            bit = std::arch::x86_64::_mm512_slli_epi64(bit, 2);
            let p16 = _mm512_maddubs_epi16(q, q8_chunk(yb, j));
            let sc = _mm512_shuffle_epi8(scales, shuf(row));
            sumi = D::dpwssd(sumi, p16, sc);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    _mm512_reduce_add_ps(acc) + hsum_float_4(acc_m)
}

/// `Q6_K · Q8_K`: per 128 quants, the 64 bytes of `ql` give the low nibbles of quants
/// 0–63 and the high nibbles of 64–127; the 32 bytes of `qh` (broadcast, shifted per half)
/// give bits 4–5. The −32 offset is subtracted once per block through `bsums`.
#[inline(always)]
pub(super) unsafe fn q6_k<D: Dot>(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let m15 = _mm512_set1_epi8(15);
    let m48 = _mm512_set1_epi8(48);
    // qh bits (0,1) → (4,5) in the low half, (2,3) → (4,5) in the high half; then
    // (4,5) stay and (6,7) → (4,5) for the high nibbles.
    let shl_lo = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4);
    let shr_hi = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    let mut acc = _mm512_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        let d = yb.d * fp16(xb.d);
        // SAFETY: `bsums` is 16 `i16` (32 bytes) and `scales` 16 `i8` (16 bytes), the
        // widths of an unaligned 256-bit and 128-bit load.
        let (q8sums, scales) = unsafe {
            (
                std::arch::x86_64::_mm256_loadu_si256(yb.bsums.as_ptr().cast()),
                _mm_loadu_si128(xb.scales.as_ptr().cast()),
            )
        };
        let scales16 = _mm256_cvtepi8_epi16(scales);
        // The −32 offset of every quant: 32 · Σ_g scale[g] · bsum[g].
        let q8sclsub = _mm256_slli_epi32(_mm256_madd_epi16(q8sums, scales16), 5);
        let halves = [
            _mm512_broadcast_i32x4(_mm256_castsi256_si128(scales16)),
            _mm512_broadcast_i32x4(_mm256_extracti128_si256(scales16, 1)),
        ];
        let mut sumi = _mm512_setzero_si512();
        for (j, &sc) in halves.iter().enumerate() {
            let ql: &[u8; 64] = xb.ql[64 * j..][..64].try_into().expect("64 bytes");
            let qh: &[u8; 32] = xb.qh[32 * j..][..32].try_into().expect("32 bytes");
            // SAFETY: `ql` is 64 bytes, the width of an unaligned 512-bit load.
            let ql = unsafe { _mm512_loadu_si512(ql.as_ptr().cast()) };
            let qh = _mm512_broadcast_i64x4(load256(qh));
            let lo = _mm512_or_si512(
                _mm512_and_si512(ql, m15),
                _mm512_and_si512(_mm512_sllv_epi64(qh, shl_lo), m48),
            );
            let hi = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi64(ql, 4), m15),
                _mm512_and_si512(_mm512_srlv_epi64(qh, shr_hi), m48),
            );
            // Quants in [0, 63] times activations in [-127, 127]: pair sums fit i16.
            let p_lo = _mm512_maddubs_epi16(lo, q8_chunk(yb, 2 * j));
            let p_hi = _mm512_maddubs_epi16(hi, q8_chunk(yb, 2 * j + 1));
            sumi = D::dpwssd(sumi, p_lo, _mm512_shuffle_epi8(sc, shuf(&SHUF_Q6[0])));
            sumi = D::dpwssd(sumi, p_hi, _mm512_shuffle_epi8(sc, shuf(&SHUF_Q6[1])));
        }
        sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(q8sclsub));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    }
    _mm512_reduce_add_ps(acc)
}
