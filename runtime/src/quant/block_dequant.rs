//! Scalar dequantization of one block: line-by-line ports of ggml's `dequantize_row_*`
//! (`ggml/src/ggml-quants.c`).
//!
//! Every product is evaluated in the same order and precision as ggml's C (f32 throughout,
//! `int * float` promoted to float, no fused multiply-add), so the results are bit-identical
//! to ggml's and to gguf-py's numpy ports. The loops have fixed trip counts over fixed-size
//! arrays so the compiler can unroll and vectorise them without bounds checks.

use super::blocks::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8K, BlockQ8_0, BlockQ8_1, QK,
};
use super::QK_K;

impl BlockQ4_0 {
    /// Writes the block's 32 values (ggml `dequantize_row_q4_0`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = self.d.to_f32();
        for j in 0..QK / 2 {
            let x0 = i32::from(self.qs[j] & 0x0F) - 8;
            let x1 = i32::from(self.qs[j] >> 4) - 8;
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }
}

impl BlockQ4_1 {
    /// Writes the block's 32 values (ggml `dequantize_row_q4_1`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        for j in 0..QK / 2 {
            let x0 = self.qs[j] & 0x0F;
            let x1 = self.qs[j] >> 4;
            y[j] = f32::from(x0) * d + m;
            y[j + QK / 2] = f32::from(x1) * d + m;
        }
    }
}

impl BlockQ5_0 {
    /// Writes the block's 32 values (ggml `dequantize_row_q5_0`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = self.d.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        for j in 0..QK / 2 {
            let xh0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
            let x0 = i32::from((self.qs[j] & 0x0F) | xh0) - 16;
            let x1 = i32::from((self.qs[j] >> 4) | xh1) - 16;
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }
}

impl BlockQ5_1 {
    /// Writes the block's 32 values (ggml `dequantize_row_q5_1`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = self.d.to_f32();
        let m = self.m.to_f32();
        let qh = u32::from_le_bytes(self.qh);
        for j in 0..QK / 2 {
            let xh0 = (((qh >> j) << 4) & 0x10) as u8;
            let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
            let x0 = (self.qs[j] & 0x0F) | xh0;
            let x1 = (self.qs[j] >> 4) | xh1;
            y[j] = f32::from(x0) * d + m;
            y[j + QK / 2] = f32::from(x1) * d + m;
        }
    }
}

impl BlockQ8_0 {
    /// Writes the block's 32 values (ggml `dequantize_row_q8_0`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = self.d.to_f32();
        for (y, &q) in y.iter_mut().zip(&self.qs) {
            *y = f32::from(q) * d;
        }
    }
}

impl BlockQ8_1 {
    /// Writes the block's 32 values `qs[j] * d`. ggml has no `dequantize_row_q8_1` (the
    /// type only feeds dot products); this matches candle's `BlockQ8_1::to_float`.
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK]) {
        let d = self.d.to_f32();
        for (y, &q) in y.iter_mut().zip(&self.qs) {
            *y = f32::from(q) * d;
        }
    }
}

impl BlockQ2K {
    /// Writes the block's 256 values (ggml `dequantize_row_q2_K`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        let min = self.dmin.to_f32();
        let mut scales = self.scales.iter();
        // Two halves of 128 outputs, each from 32 bytes of `qs` read at four shifts; each
        // shift gives two groups of 16, each with its own scale/min byte (taken in order).
        for (q, y) in self.qs.chunks_exact(32).zip(y.chunks_exact_mut(128)) {
            for (j, y) in y.chunks_exact_mut(32).enumerate() {
                let shift = 2 * j;
                for (q, y) in q.chunks_exact(16).zip(y.chunks_exact_mut(16)) {
                    let sc = scales.next().copied().unwrap_or(0);
                    let dl = d * f32::from(sc & 0xF);
                    let ml = min * f32::from(sc >> 4);
                    for (y, &q) in y.iter_mut().zip(q) {
                        *y = dl * f32::from((q >> shift) & 3) - ml;
                    }
                }
            }
        }
    }
}

impl BlockQ3K {
    /// Unpacks the 16 signed 6-bit scales (still offset by 32), as ggml does with its
    /// `kmask1`/`kmask2` shuffle of three little-endian words.
    #[inline]
    pub(crate) fn unpacked_scales(&self) -> [i8; 16] {
        const KMASK1: u32 = 0x0303_0303;
        const KMASK2: u32 = 0x0f0f_0f0f;
        let s = &self.scales;
        let a0 = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let a1 = u32::from_le_bytes([s[4], s[5], s[6], s[7]]);
        let tmp = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
        let aux = [
            (a0 & KMASK2) | ((tmp & KMASK1) << 4),
            (a1 & KMASK2) | (((tmp >> 2) & KMASK1) << 4),
            ((a0 >> 4) & KMASK2) | (((tmp >> 4) & KMASK1) << 4),
            ((a1 >> 4) & KMASK2) | (((tmp >> 6) & KMASK1) << 4),
        ];
        let mut out = [0i8; 16];
        for (o, w) in out.chunks_exact_mut(4).zip(aux) {
            for (o, b) in o.iter_mut().zip(w.to_le_bytes()) {
                *o = b as i8;
            }
        }
        out
    }

    /// Writes the block's 256 values (ggml `dequantize_row_q3_K`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d_all = self.d.to_f32();
        let mut scales = self.unpacked_scales().into_iter();
        for (n, (q, y)) in self
            .qs
            .chunks_exact(32)
            .zip(y.chunks_exact_mut(128))
            .enumerate()
        {
            for (j, y) in y.chunks_exact_mut(32).enumerate() {
                let shift = 2 * j;
                let m = 1u8 << (n * 4 + j);
                for ((q, hm), y) in q
                    .chunks_exact(16)
                    .zip(self.hmask.chunks_exact(16))
                    .zip(y.chunks_exact_mut(16))
                {
                    let dl = d_all * f32::from(scales.next().unwrap_or(32) - 32);
                    for ((y, &q), &hm) in y.iter_mut().zip(q).zip(hm) {
                        let low = ((q >> shift) & 3) as i8;
                        let hi = if hm & m != 0 { 0 } else { 4 };
                        *y = dl * f32::from(low - hi);
                    }
                }
            }
        }
    }
}

/// The 8 scales then the 8 mins (6 bits each) of a Q4_K/Q5_K block as four little-endian
/// words: the `utmp` / `kmask` shuffle of ggml's `ggml_vec_dot_q4_K_q8_K`, shared by the
/// scalar and SIMD dot products.
#[inline]
pub(crate) fn k4_scales_mins_words(packed: &[u8; 12]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let word = |i: usize| {
        u32::from_le_bytes([
            packed[4 * i],
            packed[4 * i + 1],
            packed[4 * i + 2],
            packed[4 * i + 3],
        ])
    };
    let mut utmp = [word(0), word(1), word(2), 0];
    utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
    let uaux = utmp[1] & KMASK1;
    utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
    utmp[2] = uaux;
    utmp[0] &= KMASK1;
    utmp
}

/// The `j`-th 6-bit scale and min of a Q4_K/Q5_K block (ggml `get_scale_min_k4`).
#[inline]
fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

impl BlockQ4K {
    /// Writes the block's 256 values (ggml `dequantize_row_q4_K`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        let min = self.dmin.to_f32();
        for (k, (q, y)) in self
            .qs
            .chunks_exact(32)
            .zip(y.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc, m) = scale_min_k4(2 * k, &self.scales);
            let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
            let (sc, m) = scale_min_k4(2 * k + 1, &self.scales);
            let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
            let (y1, y2) = y.split_at_mut(32);
            for ((y1, y2), &q) in y1.iter_mut().zip(y2).zip(q) {
                *y1 = d1 * f32::from(q & 0xF) - m1;
                *y2 = d2 * f32::from(q >> 4) - m2;
            }
        }
    }
}

impl BlockQ5K {
    /// Writes the block's 256 values (ggml `dequantize_row_q5_K`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        let min = self.dmin.to_f32();
        for (k, (ql, y)) in self
            .qs
            .chunks_exact(32)
            .zip(y.chunks_exact_mut(64))
            .enumerate()
        {
            let (sc, m) = scale_min_k4(2 * k, &self.scales);
            let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
            let (sc, m) = scale_min_k4(2 * k + 1, &self.scales);
            let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
            let u1 = 1u8 << (2 * k);
            let u2 = 2u8 << (2 * k);
            let (y1, y2) = y.split_at_mut(32);
            for (((y1, y2), &ql), &qh) in y1.iter_mut().zip(y2).zip(ql).zip(&self.qh) {
                let h1 = if qh & u1 != 0 { 16 } else { 0 };
                let h2 = if qh & u2 != 0 { 16 } else { 0 };
                *y1 = d1 * f32::from((ql & 0xF) + h1) - m1;
                *y2 = d2 * f32::from((ql >> 4) + h2) - m2;
            }
        }
    }
}

impl BlockQ6K {
    /// Writes the block's 256 values (ggml `dequantize_row_q6_K`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        let d = self.d.to_f32();
        for n in 0..2 {
            let ql = &self.ql[n * 64..n * 64 + 64];
            let qh = &self.qh[n * 32..n * 32 + 32];
            let sc = &self.scales[n * 8..n * 8 + 8];
            let y = &mut y[n * 128..n * 128 + 128];
            // Outputs l, l+32, l+64, l+96 use scales is, is+2, is+4, is+6 with is = l / 16.
            // `d * sc * q` associates left in C: (d * sc) * q, so the products d * sc are
            // hoisted without changing a bit.
            for is in 0..2 {
                let ds = [0, 2, 4, 6].map(|k| d * f32::from(sc[is + k]));
                for l in is * 16..is * 16 + 16 {
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                    y[l] = ds[0] * f32::from(q1);
                    y[l + 32] = ds[1] * f32::from(q2);
                    y[l + 64] = ds[2] * f32::from(q3);
                    y[l + 96] = ds[3] * f32::from(q4);
                }
            }
        }
    }
}

impl BlockQ8K {
    /// Writes the block's 256 values (ggml `dequantize_row_q8_K`).
    #[inline]
    pub fn dequantize(&self, y: &mut [f32; QK_K]) {
        for (y, &q) in y.iter_mut().zip(&self.qs) {
            *y = self.d * f32::from(q);
        }
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::*;

    // The packed-scale layouts are where a port goes wrong; these pin them with values read
    // off the bit diagrams in gguf-py's quants.py (Q3_K / Q4_K docstrings), which were
    // written independently of ggml's C.

    #[test]
    fn q4k_scale_min_unpacks_high_bits() {
        // scales[0..4] = EEAAAAAA (low 6 bits: sc 0..3, top 2: high bits of sc 4..7),
        // scales[4..8] = eeaaaaaa (mins 0..3 / high bits of mins 4..7),
        // scales[8..12] = eeeeEEEE (low nibble: sc 4..7, high nibble: mins 4..7).
        let mut s = [0u8; 12];
        s[0] = 0b11_000101; // sc0 = 5, high bits of sc4 = 3
        s[4] = 0b10_000111; // m0 = 7, high bits of m4 = 2
        s[8] = 0b1001_0110; // sc4 low = 6, m4 low = 9
        assert_eq!(scale_min_k4(0, &s), (5, 7));
        assert_eq!(scale_min_k4(4, &s), (0b11_0110, 0b10_1001));
    }

    #[test]
    fn q3k_scales_unpack_and_hmask_inverts() {
        let mut b = BlockQ3K {
            hmask: [0; 32],
            qs: [0; 64],
            scales: [0; 12],
            d: f16::from_f32(1.0),
        };
        // Scale 0 = low nibble of byte 0 | bits 0..2 of byte 8 << 4; scale 8 = high nibble of
        // byte 0 | bits 4..6 of byte 8 << 4 (gguf-py: "0: IIIIAAAA", "8: MMIIEEAA").
        b.scales[0] = 0x3A;
        b.scales[8] = 0b0010_0001;
        let s = b.unpacked_scales();
        assert_eq!((s[0], s[8]), (0x1A, 0x23));
        // All quants 0 with clear hmask give -4 * (scale - 32); a set bit gives 0.
        b.hmask[0] = 1;
        let mut y = [0f32; QK_K];
        b.dequantize(&mut y);
        assert_eq!(y[0], 0.0);
        assert_eq!(y[1], -4.0 * (0x1A - 32) as f32);
    }
}
