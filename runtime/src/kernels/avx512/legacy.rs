//! AVX-512 bodies for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): four blocks
//! per iteration, two per 512-bit vector, so each `vpdpbusd` covers 64 products and each
//! scale conversion four blocks. A tail of 1–3 blocks goes to [`scalar`].
//!
//! Safety, for every function here: the CPU must support AVX-512 F/BW/VL, F16C and what
//! `D` needs ([`Dot`]); `x` and `y` have the same length.

use std::arch::x86_64::{
    __m512i, _cvtu64_mask64, _mm512_abs_epi8, _mm512_add_ps, _mm512_and_si512,
    _mm512_broadcast_i32x4, _mm512_castsi256_si512, _mm512_cvtepi32_ps, _mm512_fmadd_ps,
    _mm512_inserti64x4, _mm512_mask_add_epi8, _mm512_mask_broadcast_i32x4, _mm512_mask_sub_epi8,
    _mm512_movepi8_mask, _mm512_reduce_add_ps, _mm512_set1_epi8, _mm512_set_epi64,
    _mm512_setzero_ps, _mm512_setzero_si512, _mm512_srlv_epi64, _mm512_sub_epi32, _mm_fmadd_ps,
    _mm_loadu_si128, _mm_mul_ps, _mm_setzero_ps,
};

use super::{fp16x4, hsum_float_4, load256, spread_scales, Dot};
use crate::kernels::scalar;
use crate::quant::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};

/// Two blocks' 32 quants each, side by side: `a` in the low 256 bits, `b` in the high.
#[inline(always)]
unsafe fn join(a: &[i8; 32], b: &[i8; 32]) -> __m512i {
    _mm512_inserti64x4(_mm512_castsi256_si512(load256(a)), load256(b), 1)
}

/// The nibbles of two Q4/Q5 blocks as bytes in `[0, 15]`, in element order: block `a`'s
/// elements 0–31, then block `b`'s.
#[inline(always)]
unsafe fn nibbles(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
    // SAFETY: each `qs` is 16 bytes, the width of an unaligned 128-bit load.
    let (a, b) = unsafe {
        (
            _mm_loadu_si128(a.as_ptr().cast()),
            _mm_loadu_si128(b.as_ptr().cast()),
        )
    };
    // 128-bit lanes (a, a, b, b); the second copy of each shifted down by a nibble.
    let q = _mm512_mask_broadcast_i32x4(_mm512_broadcast_i32x4(a), 0xff00, b);
    let q = _mm512_srlv_epi64(q, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0));
    _mm512_and_si512(q, _mm512_set1_epi8(0x0f))
}

/// Two blocks' fifth bits as a byte mask in element order.
#[inline(always)]
fn high_bits(a: [u8; 4], b: [u8; 4]) -> u64 {
    u64::from(u32::from_le_bytes(a)) | (u64::from(u32::from_le_bytes(b)) << 32)
}

/// The shared loop, expanded in place (closures would be separate functions without the
/// entry point's target features): `$pair` gives the integer dot products of blocks
/// `$x0, $x1` with `$y0, $y1` in 8 i32 lanes each; `$extra` runs once per 4 blocks
/// `$xq, $yq` (the Q4_1/Q5_1 minimum term); `$tail` handles the last 1–3 blocks.
macro_rules! blocks4 {
    ($x:expr, $y:expr, $tail:path,
     |$x0:ident, $x1:ident, $y0:ident, $y1:ident| $pair:expr,
     |$xq:ident, $yq:ident| $($extra:expr)?) => {{
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let (xs, ys) = ($x.chunks_exact(4), $y.chunks_exact(4));
        let (xt, yt) = (xs.remainder(), ys.remainder());
        for ($xq, $yq) in xs.zip(ys) {
            let (d01, d23) = spread_scales(_mm_mul_ps(
                fp16x4([$xq[0].d, $xq[1].d, $xq[2].d, $xq[3].d]),
                fp16x4([$yq[0].d, $yq[1].d, $yq[2].d, $yq[3].d]),
            ));
            let s01 = {
                let ($x0, $x1, $y0, $y1) = (&$xq[0], &$xq[1], &$yq[0], &$yq[1]);
                $pair
            };
            let s23 = {
                let ($x0, $x1, $y0, $y1) = (&$xq[2], &$xq[3], &$yq[2], &$yq[3]);
                $pair
            };
            acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s01), d01, acc0);
            acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s23), d23, acc1);
            $($extra;)?
        }
        let rest = if xt.is_empty() {
            0.0
        } else {
            $tail(xt.len() * QK, xt, yt)
        };
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + rest
    }};
}

/// `Q8_0 · Q8_0`: `|x| · (y with x's sign)`, so `vpdpbusd` sees an unsigned left operand
/// (|x| ≤ 128, |y| ≤ 127: pair sums fit i16).
#[inline(always)]
pub(super) unsafe fn q8_0<D: Dot>(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let zero = _mm512_setzero_si512();
    blocks4!(
        x,
        y,
        scalar::vec_dot_q8_0_q8_0,
        |x0, x1, y0, y1| {
            let qx = join(&x0.qs, &x1.qs);
            let qy = join(&y0.qs, &y1.qs);
            let sy = _mm512_mask_sub_epi8(qy, _mm512_movepi8_mask(qx), zero, qy);
            D::dpbusd(zero, _mm512_abs_epi8(qx), sy)
        },
        |_xq, _yq|
    )
}

/// `Q4_0 · Q8_0`: `Σ q·y − 8·Σ y` with `q` the unsigned nibbles.
#[inline(always)]
pub(super) unsafe fn q4_0<D: Dot>(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let zero = _mm512_setzero_si512();
    let eight = _mm512_set1_epi8(8);
    blocks4!(
        x,
        y,
        scalar::vec_dot_q4_0_q8_0,
        |x0, x1, y0, y1| {
            let qy = join(&y0.qs, &y1.qs);
            let q = nibbles(&x0.qs, &x1.qs);
            _mm512_sub_epi32(D::dpbusd(zero, q, qy), D::dpbusd(zero, eight, qy))
        },
        |_xq, _yq|
    )
}

/// `Q5_0 · Q8_0`: `Σ q·y − 16·Σ y`, the fifth bits added through a byte mask.
#[inline(always)]
pub(super) unsafe fn q5_0<D: Dot>(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let zero = _mm512_setzero_si512();
    let sixteen = _mm512_set1_epi8(16);
    blocks4!(
        x,
        y,
        scalar::vec_dot_q5_0_q8_0,
        |x0, x1, y0, y1| {
            let qy = join(&y0.qs, &y1.qs);
            let q = nibbles(&x0.qs, &x1.qs);
            let k = _cvtu64_mask64(high_bits(x0.qh, x1.qh));
            let q = _mm512_mask_add_epi8(q, k, q, sixteen);
            _mm512_sub_epi32(D::dpbusd(zero, q, qy), D::dpbusd(zero, sixteen, qy))
        },
        |_xq, _yq|
    )
}

/// `Q4_1 · Q8_1`: `d·Σ q·y` plus the minimum through the activation's `s = d · Σq`.
#[inline(always)]
pub(super) unsafe fn q4_1<D: Dot>(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let zero = _mm512_setzero_si512();
    let mut acc_m = _mm_setzero_ps();
    let sum = blocks4!(
        x,
        y,
        scalar::vec_dot_q4_1_q8_1,
        |x0, x1, y0, y1| D::dpbusd(zero, nibbles(&x0.qs, &x1.qs), join(&y0.qs, &y1.qs)),
        |xq, yq| {
            let m = fp16x4([xq[0].m, xq[1].m, xq[2].m, xq[3].m]);
            let s = fp16x4([yq[0].s, yq[1].s, yq[2].s, yq[3].s]);
            acc_m = _mm_fmadd_ps(m, s, acc_m);
        }
    );
    sum + hsum_float_4(acc_m)
}

/// `Q5_1 · Q8_1`: as [`q4_1`] with the fifth bits added through a byte mask.
#[inline(always)]
pub(super) unsafe fn q5_1<D: Dot>(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let zero = _mm512_setzero_si512();
    let sixteen = _mm512_set1_epi8(16);
    let mut acc_m = _mm_setzero_ps();
    let sum = blocks4!(
        x,
        y,
        scalar::vec_dot_q5_1_q8_1,
        |x0, x1, y0, y1| {
            let q = nibbles(&x0.qs, &x1.qs);
            let k = _cvtu64_mask64(high_bits(x0.qh, x1.qh));
            let q = _mm512_mask_add_epi8(q, k, q, sixteen);
            D::dpbusd(zero, q, join(&y0.qs, &y1.qs))
        },
        |xq, yq| {
            let m = fp16x4([xq[0].m, xq[1].m, xq[2].m, xq[3].m]);
            let s = fp16x4([yq[0].s, yq[1].s, yq[2].s, yq[3].s]);
            acc_m = _mm_fmadd_ps(m, s, acc_m);
        }
    );
    sum + hsum_float_4(acc_m)
}
