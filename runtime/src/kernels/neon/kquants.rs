//! NEON bodies of the k-quants (Q2_K … Q6_K against Q8_K): the `__ARM_NEON` branches of
//! ggml's `ggml_vec_dot_q{2..6}_K_q8_K`, one 256-element super-block per iteration.
//!
//! Each body is `#[inline(always)]` and generic over the [`Vdot`] flavour; it is only
//! called from the `#[target_feature]` functions of [`super`]. Both slices hold the same
//! number of blocks (the callers slice them to `n / 256`).

use std::arch::aarch64::{
    int16x8_t, int32x4_t, int8x16_t, uint8x16_t, vaddq_s32, vaddvq_s32, vandq_u8, vbicq_u8,
    vdupq_n_s32, vdupq_n_u8, vget_high_s16, vget_high_s8, vget_high_u8, vget_low_s16, vget_low_s8,
    vget_low_u8, vld1_u8, vld1q_s16, vld1q_s8, vld1q_u8, vmovl_s8, vmovl_u8, vmull_s16, vorrq_u8,
    vpaddq_s16, vreinterpretq_s16_u16, vreinterpretq_s8_u8, vshlq_n_u8, vshrq_n_u8, vst1q_u8,
    vsubq_s8,
};

use super::Vdot;
use crate::quant::blocks::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};
use crate::quant::k4_scales_mins_words;

/// 16 bytes at `p`.
#[inline(always)]
unsafe fn ld_u8(p: &[u8], at: usize) -> uint8x16_t {
    let s = &p[at..at + 16];
    vld1q_u8(s.as_ptr())
}

/// 16 signed bytes at `p[at..]`.
#[inline(always)]
unsafe fn ld_s8(p: &[i8], at: usize) -> int8x16_t {
    let s = &p[at..at + 16];
    vld1q_s8(s.as_ptr())
}

#[inline(always)]
fn s8(v: uint8x16_t) -> int8x16_t {
    // SAFETY: a bit reinterpretation between two 128-bit vector types.
    unsafe { vreinterpretq_s8_u8(v) }
}

/// `Σ_lanes vdot(0, a, b)`.
#[inline(always)]
unsafe fn dot_sum<D: Vdot>(a: int8x16_t, b: int8x16_t) -> i32 {
    vaddvq_s32(D::vdot(vdupq_n_s32(0), a, b))
}

/// `Σ_lanes vdot(vdot(0, a0, b0), a1, b1)`.
#[inline(always)]
unsafe fn dot2_sum<D: Vdot>(a0: int8x16_t, b0: int8x16_t, a1: int8x16_t, b1: int8x16_t) -> i32 {
    vaddvq_s32(D::vdot(D::vdot(vdupq_n_s32(0), a0, b0), a1, b1))
}

/// `Σ a[i]·b[i]` over 8 i16 lanes, widened (ggml's `vmull_s16` low + high pattern).
#[inline(always)]
unsafe fn mul_s16(a: int16x8_t, b: int16x8_t) -> int32x4_t {
    vaddq_s32(
        vmull_s16(vget_low_s16(a), vget_low_s16(b)),
        vmull_s16(vget_high_s16(a), vget_high_s16(b)),
    )
}

/// `Q2_K · Q8_K` (`ggml_vec_dot_q2_K_q8_K`).
#[inline(always)]
pub(super) unsafe fn q2_k<D: Vdot>(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let m3 = vdupq_n_u8(0x3);
    let m4 = vdupq_n_u8(0xf);
    let mut aux = [0u8; 16];
    let mut sum = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let d = yb.d * xb.d.to_f32();
        let dmin = -yb.d * xb.dmin.to_f32();

        let mins_and_scales = ld_u8(&xb.scales, 0);
        let scales = vandq_u8(mins_and_scales, m4);
        vst1q_u8(aux.as_mut_ptr(), scales);
        let mins = vshrq_n_u8::<4>(mins_and_scales);
        let q8sums0 = vld1q_s16(yb.bsums.as_ptr());
        let q8sums1 = vld1q_s16(yb.bsums.as_ptr().add(8));
        let mins0 = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mins)));
        let mins1 = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(mins)));
        let s = vaddq_s32(mul_s16(mins0, q8sums0), mul_s16(mins1, q8sums1));
        sum += dmin * vaddvq_s32(s) as f32;

        let mut isum = 0i32;
        for (j, (q2, q8)) in xb
            .qs
            .chunks_exact(32)
            .zip(yb.qs.chunks_exact(128))
            .enumerate()
        {
            let sc = &aux[8 * j..8 * j + 8];
            let bits0 = ld_u8(q2, 0);
            let bits1 = ld_u8(q2, 16);
            // The four 2-bit planes (shift 0, 2, 4, 6), 32 quants each, two scales each.
            let planes = [
                (bits0, bits1),
                (vshrq_n_u8::<2>(bits0), vshrq_n_u8::<2>(bits1)),
                (vshrq_n_u8::<4>(bits0), vshrq_n_u8::<4>(bits1)),
                (vshrq_n_u8::<6>(bits0), vshrq_n_u8::<6>(bits1)),
            ];
            for (k, (b0, b1)) in planes.into_iter().enumerate() {
                let q2b0 = s8(vandq_u8(b0, m3));
                let q2b1 = s8(vandq_u8(b1, m3));
                isum += dot_sum::<D>(q2b0, ld_s8(q8, 32 * k)) * i32::from(sc[2 * k]);
                isum += dot_sum::<D>(q2b1, ld_s8(q8, 32 * k + 16)) * i32::from(sc[2 * k + 1]);
            }
        }
        sum += d * isum as f32;
    }
    sum
}

/// `Q3_K · Q8_K` (`ggml_vec_dot_q3_K_q8_K`).
#[inline(always)]
pub(super) unsafe fn q3_k<D: Vdot>(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let m3b = vdupq_n_u8(0x3);
    let m0 = vdupq_n_u8(1);
    let m1 = vshlq_n_u8::<1>(m0);
    let m2 = vshlq_n_u8::<2>(m0);
    let m3 = vshlq_n_u8::<3>(m0);
    let mut sum = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let d = yb.d * xb.d.to_f32();
        let scale = xb.unpacked_scales().map(|s| i32::from(s) - 32);
        let mut qh0 = ld_u8(&xb.hmask, 0);
        let mut qh1 = ld_u8(&xb.hmask, 16);
        let mut isum = 0i32;
        for (j, (q3, q8)) in xb
            .qs
            .chunks_exact(32)
            .zip(yb.qs.chunks_exact(128))
            .enumerate()
        {
            let sc = &scale[8 * j..8 * j + 8];
            let bits0 = ld_u8(q3, 0);
            let bits1 = ld_u8(q3, 16);
            // A clear hmask bit subtracts 4: (q & 3) − (!h << 2).
            let q3b = |bits: uint8x16_t, h: uint8x16_t| vsubq_s8(s8(vandq_u8(bits, m3b)), s8(h));
            let b = [
                q3b(bits0, vshlq_n_u8::<2>(vbicq_u8(m0, qh0))),
                q3b(bits1, vshlq_n_u8::<2>(vbicq_u8(m0, qh1))),
                q3b(vshrq_n_u8::<2>(bits0), vshlq_n_u8::<1>(vbicq_u8(m1, qh0))),
                q3b(vshrq_n_u8::<2>(bits1), vshlq_n_u8::<1>(vbicq_u8(m1, qh1))),
            ];
            for (k, &bk) in b.iter().enumerate() {
                isum += dot_sum::<D>(bk, ld_s8(q8, 16 * k)) * sc[k];
            }
            let b = [
                q3b(vshrq_n_u8::<4>(bits0), vbicq_u8(m2, qh0)),
                q3b(vshrq_n_u8::<4>(bits1), vbicq_u8(m2, qh1)),
                q3b(vshrq_n_u8::<6>(bits0), vshrq_n_u8::<1>(vbicq_u8(m3, qh0))),
                q3b(vshrq_n_u8::<6>(bits1), vshrq_n_u8::<1>(vbicq_u8(m3, qh1))),
            ];
            for (k, &bk) in b.iter().enumerate() {
                isum += dot_sum::<D>(bk, ld_s8(q8, 64 + 16 * k)) * sc[4 + k];
            }
            qh0 = vshrq_n_u8::<4>(qh0);
            qh1 = vshrq_n_u8::<4>(qh1);
        }
        sum += d * isum as f32;
    }
    sum
}

/// The 8 scales (bytes 0..8) and 8 mins (bytes 8..16) of a Q4_K/Q5_K block, and
/// `Σ_g bsum(g) · min(g)` (ggml's `prod`: `bsums` summed in pairs, one per 32-group).
#[inline(always)]
unsafe fn k4_scales_and_mins_dot(packed: &[u8; 12], yb: &BlockQ8K) -> ([u8; 16], i32) {
    let words = k4_scales_mins_words(packed);
    let mut sm = [0u8; 16];
    for (o, w) in sm.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    let q8sums = vpaddq_s16(
        vld1q_s16(yb.bsums.as_ptr()),
        vld1q_s16(yb.bsums.as_ptr().add(8)),
    );
    let mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm[8..].as_ptr())));
    (sm, vaddvq_s32(mul_s16(q8sums, mins)))
}

/// `Q4_K · Q8_K` (`ggml_vec_dot_q4_K_q8_K`).
#[inline(always)]
pub(super) unsafe fn q4_k<D: Vdot>(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let m4b = vdupq_n_u8(0xf);
    let mut sumf = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let d = yb.d * xb.d.to_f32();
        let dmin = yb.d * xb.dmin.to_f32();
        let (scales, mins_dot) = k4_scales_and_mins_dot(&xb.scales, yb);
        sumf -= dmin * mins_dot as f32;
        let (mut sumi1, mut sumi2) = (0i32, 0i32);
        for (j, (q4, q8)) in xb
            .qs
            .chunks_exact(32)
            .zip(yb.qs.chunks_exact(64))
            .enumerate()
        {
            let bits0 = ld_u8(q4, 0);
            let bits1 = ld_u8(q4, 16);
            let p1 = dot2_sum::<D>(
                s8(vandq_u8(bits0, m4b)),
                ld_s8(q8, 0),
                s8(vandq_u8(bits1, m4b)),
                ld_s8(q8, 16),
            );
            sumi1 += p1 * i32::from(scales[2 * j]);
            let p2 = dot2_sum::<D>(
                s8(vshrq_n_u8::<4>(bits0)),
                ld_s8(q8, 32),
                s8(vshrq_n_u8::<4>(bits1)),
                ld_s8(q8, 48),
            );
            sumi2 += p2 * i32::from(scales[2 * j + 1]);
        }
        sumf += d * (sumi1 + sumi2) as f32;
    }
    sumf
}

/// `Q5_K · Q8_K` (`ggml_vec_dot_q5_K_q8_K`).
#[inline(always)]
pub(super) unsafe fn q5_k<D: Vdot>(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let m4b = vdupq_n_u8(0xf);
    let mone = vdupq_n_u8(1);
    let mtwo = vdupq_n_u8(2);
    let mut sumf = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let d = yb.d * xb.d.to_f32();
        let dmin = yb.d * xb.dmin.to_f32();
        let (scales, sumi_mins) = k4_scales_and_mins_dot(&xb.scales, yb);
        let mut qh0 = ld_u8(&xb.qh, 0);
        let mut qh1 = ld_u8(&xb.qh, 16);
        let mut sumi = 0i32;
        for (j, (q5, q8)) in xb
            .qs
            .chunks_exact(32)
            .zip(yb.qs.chunks_exact(64))
            .enumerate()
        {
            let bits0 = ld_u8(q5, 0);
            let bits1 = ld_u8(q5, 16);
            let h0 = vshlq_n_u8::<4>(vandq_u8(mone, qh0));
            let h1 = vshlq_n_u8::<4>(vandq_u8(mone, qh1));
            let h2 = vshlq_n_u8::<3>(vandq_u8(mtwo, qh0));
            let h3 = vshlq_n_u8::<3>(vandq_u8(mtwo, qh1));
            qh0 = vshrq_n_u8::<2>(qh0);
            qh1 = vshrq_n_u8::<2>(qh1);
            let b0 = s8(vorrq_u8(vandq_u8(bits0, m4b), h0));
            let b1 = s8(vorrq_u8(vandq_u8(bits1, m4b), h1));
            let b2 = s8(vorrq_u8(vshrq_n_u8::<4>(bits0), h2));
            let b3 = s8(vorrq_u8(vshrq_n_u8::<4>(bits1), h3));
            sumi += dot2_sum::<D>(b0, ld_s8(q8, 0), b1, ld_s8(q8, 16)) * i32::from(scales[2 * j]);
            sumi +=
                dot2_sum::<D>(b2, ld_s8(q8, 32), b3, ld_s8(q8, 48)) * i32::from(scales[2 * j + 1]);
        }
        sumf += d * sumi as f32 - dmin * sumi_mins as f32;
    }
    sumf
}

/// `Q6_K · Q8_K` (`ggml_vec_dot_q6_K_q8_K`): the −32 offset is applied once per block as
/// `32 · Σ_g scale(g) · bsum(g)`, as ggml does.
#[inline(always)]
pub(super) unsafe fn q6_k<D: Vdot>(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let m4b = vdupq_n_u8(0xf);
    let mone = vdupq_n_u8(3);
    let mut sum = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        let d_all = xb.d.to_f32();
        let q8sums0 = vld1q_s16(yb.bsums.as_ptr());
        let q8sums1 = vld1q_s16(yb.bsums.as_ptr().add(8));
        let scales = vld1q_s8(xb.scales.as_ptr());
        let sc0 = vmovl_s8(vget_low_s8(scales));
        let sc1 = vmovl_s8(vget_high_s8(scales));
        let isum_mins = vaddvq_s32(vaddq_s32(mul_s16(q8sums0, sc0), mul_s16(q8sums1, sc1)));
        let scale = &xb.scales;

        let mut isum = 0i32;
        for (j, ((ql, qh), q8)) in xb
            .ql
            .chunks_exact(64)
            .zip(xb.qh.chunks_exact(32))
            .zip(yb.qs.chunks_exact(128))
            .enumerate()
        {
            let qh0 = ld_u8(qh, 0);
            let qh1 = ld_u8(qh, 16);
            let bits = [ld_u8(ql, 0), ld_u8(ql, 16), ld_u8(ql, 32), ld_u8(ql, 48)];
            let hi = |h: uint8x16_t| vshlq_n_u8::<4>(vandq_u8(mone, h));
            let h = [
                hi(qh0),
                hi(qh1),
                hi(vshrq_n_u8::<2>(qh0)),
                hi(vshrq_n_u8::<2>(qh1)),
            ];
            for k in 0..4 {
                let b = s8(vorrq_u8(vandq_u8(bits[k], m4b), h[k]));
                isum += dot_sum::<D>(b, ld_s8(q8, 16 * k)) * i32::from(scale[8 * j + k]);
            }
            let h = [
                hi(vshrq_n_u8::<4>(qh0)),
                hi(vshrq_n_u8::<4>(qh1)),
                hi(vshrq_n_u8::<6>(qh0)),
                hi(vshrq_n_u8::<6>(qh1)),
            ];
            for k in 0..4 {
                let b = s8(vorrq_u8(vshrq_n_u8::<4>(bits[k]), h[k]));
                isum += dot_sum::<D>(b, ld_s8(q8, 64 + 16 * k)) * i32::from(scale[8 * j + 4 + k]);
            }
        }
        sum += d_all * yb.d * (isum - 32 * isum_mins) as f32;
    }
    sum
}
