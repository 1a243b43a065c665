//! NEON bodies of the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): the `__ARM_NEON`
//! branches of ggml's `ggml_vec_dot_*_q8_{0,1}`, two blocks per iteration into two f32
//! accumulators, with an odd last block done by the scalar kernel as in ggml.
//!
//! Each body is `#[inline(always)]` and generic over the [`Vdot`] flavour; it is only
//! called from the `#[target_feature]` functions of [`super`]. Both slices hold the same
//! number of blocks (the callers slice them to `n / 32`).

use std::arch::aarch64::{
    float32x4_t, int32x4_t, int8x16_t, uint8x16_t, vaddq_s32, vaddvq_f32, vandq_u8, vcvtq_f32_s32,
    vdupq_n_f32, vdupq_n_s32, vdupq_n_s8, vdupq_n_u8, vld1q_s8, vld1q_u8, vmlaq_n_f32, vorrq_s8,
    vreinterpretq_s8_u8, vshrq_n_u8, vsubq_s8,
};

use super::Vdot;
use crate::kernels::scalar;
use crate::quant::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK};

/// ggml's `table_b2b_0` (`set`) and `table_b2b_1` (`!set`): byte `b` → 8 bytes, byte `k`
/// being `0x10` when bit `k` of `b` is set (resp. clear), else 0.
const fn b2b_table(set: bool) -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut k = 0;
        while k < 8 {
            if ((b >> k) & 1 == 1) == set {
                t[b] |= 0x10 << (8 * k);
            }
            k += 1;
        }
        b += 1;
    }
    t
}

/// `(b) << 4` per bit (Q5_1: the fifth bit is added).
static TABLE_B2B_0: [u64; 256] = b2b_table(true);
/// `(!b) << 4` per bit (Q5_0: subtracting it adds the fifth bit and the −16 offset at once).
static TABLE_B2B_1: [u64; 256] = b2b_table(false);

/// The 32 fifth bits of a Q5 block expanded through `table` to one byte each: elements
/// 0..16 (low nibbles) and 16..32 (high nibbles).
#[inline(always)]
unsafe fn fifth_bits(qh: [u8; 4], table: &[u64; 256]) -> (int8x16_t, int8x16_t) {
    let qh = u32::from_le_bytes(qh);
    let tmp = [
        table[(qh & 0xff) as usize],
        table[((qh >> 8) & 0xff) as usize],
        table[((qh >> 16) & 0xff) as usize],
        table[(qh >> 24) as usize],
    ];
    let p = tmp.as_ptr().cast::<i8>();
    // Bytes in memory order: u64 `k` holds elements 8k..8k+8 (aarch64 Linux is little-endian).
    (vld1q_s8(p), vld1q_s8(p.add(16)))
}

/// The low and high nibbles of 16 packed bytes (elements 0..16 and 16..32).
#[inline(always)]
unsafe fn nibbles(qs: &[u8; QK / 2]) -> (int8x16_t, int8x16_t) {
    let v = vld1q_u8(qs.as_ptr());
    let m4b: uint8x16_t = vdupq_n_u8(0x0f);
    (
        vreinterpretq_s8_u8(vandq_u8(v, m4b)),
        vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)),
    )
}

/// `Σ x·y` of one block as 4 lanes: `lo` against `y[0..16]`, `hi` against `y[16..32]`.
#[inline(always)]
unsafe fn block_dot<D: Vdot>(lo: int8x16_t, hi: int8x16_t, y: &[i8; QK]) -> int32x4_t {
    let y0 = vld1q_s8(y.as_ptr());
    let y1 = vld1q_s8(y.as_ptr().add(16));
    D::vdot(D::vdot(vdupq_n_s32(0), lo, y0), hi, y1)
}

/// One 32-element weight block and its activation block type, for [`pairs`].
trait Block {
    /// The activation block (Q8_0 or Q8_1).
    type Y;
    /// The block's integer sums as 4 lanes, and its scale `d_x · d_y`.
    ///
    /// Safety: the CPU must support what `D` uses.
    unsafe fn dot<D: Vdot>(&self, y: &Self::Y) -> (int32x4_t, f32);
}

/// The pair loop shared by all five bodies (ggml's `sumv0`/`sumv1`): returns
/// `Σ scale · Σlanes` over the whole pairs, and the index of the first block not covered
/// (the odd last one, if any).
#[inline(always)]
unsafe fn pairs<D: Vdot, X: Block>(x: &[X], y: &[X::Y]) -> (f32, usize) {
    let mut sumv0: float32x4_t = vdupq_n_f32(0.0);
    let mut sumv1: float32x4_t = vdupq_n_f32(0.0);
    for (xp, yp) in x.chunks_exact(2).zip(y.chunks_exact(2)) {
        let (p0, s0) = xp[0].dot::<D>(&yp[0]);
        let (p1, s1) = xp[1].dot::<D>(&yp[1]);
        sumv0 = vmlaq_n_f32(sumv0, vcvtq_f32_s32(p0), s0);
        sumv1 = vmlaq_n_f32(sumv1, vcvtq_f32_s32(p1), s1);
    }
    (vaddvq_f32(sumv0) + vaddvq_f32(sumv1), x.len() & !1)
}

/// Two separate dot products of `(x0, x1)` with the block's activations, added (ggml's
/// Q5_0, Q5_1 and Q8_0 form; Q4_0/Q4_1 chain them, [`block_dot`]). Same total.
#[inline(always)]
unsafe fn block_dot_split<D: Vdot>(x0: int8x16_t, x1: int8x16_t, y: &[i8; QK]) -> int32x4_t {
    let y0 = vld1q_s8(y.as_ptr());
    let y1 = vld1q_s8(y.as_ptr().add(16));
    vaddq_s32(
        D::vdot(vdupq_n_s32(0), x0, y0),
        D::vdot(vdupq_n_s32(0), x1, y1),
    )
}

impl Block for BlockQ4_0 {
    type Y = BlockQ8_0;
    #[inline(always)]
    unsafe fn dot<D: Vdot>(&self, y: &BlockQ8_0) -> (int32x4_t, f32) {
        let s8b = vdupq_n_s8(8);
        let (lo, hi) = nibbles(&self.qs);
        let p = block_dot::<D>(vsubq_s8(lo, s8b), vsubq_s8(hi, s8b), &y.qs);
        (p, self.d.to_f32() * y.d.to_f32())
    }
}

impl Block for BlockQ4_1 {
    type Y = BlockQ8_1;
    #[inline(always)]
    unsafe fn dot<D: Vdot>(&self, y: &BlockQ8_1) -> (int32x4_t, f32) {
        let (lo, hi) = nibbles(&self.qs);
        (
            block_dot::<D>(lo, hi, &y.qs),
            self.d.to_f32() * y.d.to_f32(),
        )
    }
}

impl Block for BlockQ5_0 {
    type Y = BlockQ8_0;
    #[inline(always)]
    unsafe fn dot<D: Vdot>(&self, y: &BlockQ8_0) -> (int32x4_t, f32) {
        let (hl, hh) = fifth_bits(self.qh, &TABLE_B2B_1);
        let (lo, hi) = nibbles(&self.qs);
        // (q | h << 4) − 16 = q − (!h << 4)
        let p = block_dot_split::<D>(vsubq_s8(lo, hl), vsubq_s8(hi, hh), &y.qs);
        (p, self.d.to_f32() * y.d.to_f32())
    }
}

impl Block for BlockQ5_1 {
    type Y = BlockQ8_1;
    #[inline(always)]
    unsafe fn dot<D: Vdot>(&self, y: &BlockQ8_1) -> (int32x4_t, f32) {
        let (hl, hh) = fifth_bits(self.qh, &TABLE_B2B_0);
        let (lo, hi) = nibbles(&self.qs);
        let p = block_dot_split::<D>(vorrq_s8(lo, hl), vorrq_s8(hi, hh), &y.qs);
        (p, self.d.to_f32() * y.d.to_f32())
    }
}

impl Block for BlockQ8_0 {
    type Y = BlockQ8_0;
    #[inline(always)]
    unsafe fn dot<D: Vdot>(&self, y: &BlockQ8_0) -> (int32x4_t, f32) {
        let x0 = vld1q_s8(self.qs.as_ptr());
        let x1 = vld1q_s8(self.qs.as_ptr().add(16));
        (
            block_dot_split::<D>(x0, x1, &y.qs),
            self.d.to_f32() * y.d.to_f32(),
        )
    }
}

/// `Σ m · s` of the Q4_1/Q5_1 minima over whole pairs, in ggml's Q5_1 order
/// (`summs0 + summs1`; its Q4_1 kernel uses one accumulator, equal up to f32 rounding).
#[inline(always)]
fn mins_sum(pairs: impl Iterator<Item = [(f32, f32); 2]>) -> f32 {
    let (mut summs0, mut summs1) = (0f32, 0f32);
    for [(m0, s0), (m1, s1)] in pairs {
        summs0 += m0 * s0;
        summs1 += m1 * s1;
    }
    summs0 + summs1
}

/// `Q4_0 · Q8_0` (`ggml_vec_dot_q4_0_q8_0`).
#[inline(always)]
pub(super) unsafe fn q4_0<D: Vdot>(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let (mut sumf, ib) = pairs::<D, _>(x, y);
    if ib < x.len() {
        sumf += scalar::vec_dot_q4_0_q8_0(QK, &x[ib..], &y[ib..]);
    }
    sumf
}

/// `Q4_1 · Q8_1` (`ggml_vec_dot_q4_1_q8_1`): the minimum enters through `m · s`.
#[inline(always)]
pub(super) unsafe fn q4_1<D: Vdot>(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let summs = mins_sum(x.chunks_exact(2).zip(y.chunks_exact(2)).map(|(xp, yp)| {
        [
            (xp[0].m.to_f32(), yp[0].s.to_f32()),
            (xp[1].m.to_f32(), yp[1].s.to_f32()),
        ]
    }));
    let (sumv, ib) = pairs::<D, _>(x, y);
    let mut sumf = sumv + summs;
    if ib < x.len() {
        sumf += scalar::vec_dot_q4_1_q8_1(QK, &x[ib..], &y[ib..]);
    }
    sumf
}

/// `Q5_0 · Q8_0` (`ggml_vec_dot_q5_0_q8_0`).
#[inline(always)]
pub(super) unsafe fn q5_0<D: Vdot>(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let (mut sumf, ib) = pairs::<D, _>(x, y);
    if ib < x.len() {
        sumf += scalar::vec_dot_q5_0_q8_0(QK, &x[ib..], &y[ib..]);
    }
    sumf
}

/// `Q5_1 · Q8_1` (`ggml_vec_dot_q5_1_q8_1`).
#[inline(always)]
pub(super) unsafe fn q5_1<D: Vdot>(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let summs = mins_sum(x.chunks_exact(2).zip(y.chunks_exact(2)).map(|(xp, yp)| {
        [
            (xp[0].m.to_f32(), yp[0].s.to_f32()),
            (xp[1].m.to_f32(), yp[1].s.to_f32()),
        ]
    }));
    let (sumv, ib) = pairs::<D, _>(x, y);
    let mut sumf = sumv + summs;
    if ib < x.len() {
        sumf += scalar::vec_dot_q5_1_q8_1(QK, &x[ib..], &y[ib..]);
    }
    sumf
}

/// `Q8_0 · Q8_0` (`ggml_vec_dot_q8_0_q8_0`).
#[inline(always)]
pub(super) unsafe fn q8_0<D: Vdot>(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let (mut sumf, ib) = pairs::<D, _>(x, y);
    if ib < x.len() {
        sumf += scalar::vec_dot_q8_0_q8_0(QK, &x[ib..], &y[ib..]);
    }
    sumf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b2b_tables_match_ggml() {
        // ggml's B8(00, 10) / B8(10, 00) macros: entry b has byte k = 0x10 iff bit k is
        // set (table_b2b_0) or clear (table_b2b_1).
        assert_eq!(TABLE_B2B_0[0], 0);
        assert_eq!(TABLE_B2B_0[1], 0x10);
        assert_eq!(TABLE_B2B_0[0x80], 0x10 << 56);
        assert_eq!(TABLE_B2B_0[0xff], 0x1010_1010_1010_1010);
        assert_eq!(TABLE_B2B_1[0], 0x1010_1010_1010_1010);
        assert_eq!(TABLE_B2B_1[0xfe], 0x10);
        for b in 0..256 {
            assert_eq!(TABLE_B2B_0[b] ^ TABLE_B2B_1[b], 0x1010_1010_1010_1010);
        }
    }
}
