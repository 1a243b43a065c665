//! Scalar f32 building blocks of the forward pass: dot products, RMS norm, rope,
//! activations, softmax. Written so the compiler can vectorise them (independent
//! accumulators, no bounds checks in the inner loops); the quantized SIMD kernels are
//! separate.

use pith_models::arch::RopeStyle;

/// `Σ a[i]·b[i]` with eight independent accumulators, so the loop vectorises without
/// fast-math.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

/// `y += a·x`.
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// In-place RMS norm of `x` with weight `w` (`ggml_rms_norm` then `ggml_mul`); the sum of
/// squares is accumulated in f64 as ggml does. `w_offset` is added to every weight
/// (1 for Gemma weights in HF layout, 0 otherwise).
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32, w_offset: f32) {
    let sum: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (xi, &wi) in x.iter_mut().zip(w) {
        *xi = *xi * scale * (wi + w_offset);
    }
}

/// `silu(x) = x·σ(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation (ggml's `ggml_gelu_f32`).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044_715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// GELU as ggml's CPU backend computes it in `ggml_vec_geglu_f32`: inputs at or beyond
/// ±10 pass through or vanish, others go through a table indexed by the f16 input and
/// holding f16 results (`GGML_GELU_FP16`, `ggml_table_gelu_f16`), built on first use.
#[inline]
pub fn gelu_ggml(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let bits = half::f16::from_f32(x).to_bits();
        half::f16::from_bits(gelu_table()[bits as usize]).to_f32()
    }
}

/// `f16(gelu_tanh(f16 input))` for every f16 bit pattern (128 KiB).
fn gelu_table() -> &'static [u16] {
    static TABLE: std::sync::OnceLock<Vec<u16>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|b| half::f16::from_f32(gelu_tanh(half::f16::from_bits(b).to_f32())).to_bits())
            .collect()
    })
}

/// Rounds every value to the nearest f16 (round-to-nearest-even), in place.
pub fn round_f16(x: &mut [f32]) {
    x.iter_mut()
        .for_each(|v| *v = half::f16::from_f32(*v).to_f32());
}

/// In-place numerically stable softmax.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Precomputed rotary angles for one frequency base: `cos`/`sin` of
/// `pos · freq_scale · base^(-2i/dim) / factor[i]`, computed as ggml's `rope_yarn` does
/// with `ext_factor = 0` (the angle advances by repeated multiplication in f32).
#[derive(Debug, Clone)]
pub struct Rope {
    style: RopeStyle,
    dim: usize,
    /// Per pair `i`: `theta_scale^i / factor[i]`, times `freq_scale`.
    inv_freq: Vec<f32>,
}

impl Rope {
    /// `factors` are Llama 3 / Phi-3 frequency factors (`rope_freqs.weight`), one per pair.
    pub fn new(
        style: RopeStyle,
        dim: usize,
        base: f32,
        freq_scale: f32,
        factors: Option<&[f32]>,
    ) -> Self {
        let theta_scale = base.powf(-2.0 / dim as f32);
        let mut theta = 1.0f32;
        let mut inv_freq = Vec::with_capacity(dim / 2);
        for i in 0..dim / 2 {
            let f = factors.and_then(|f| f.get(i)).copied().unwrap_or(1.0);
            inv_freq.push(theta / f * freq_scale);
            theta *= theta_scale;
        }
        Self {
            style,
            dim,
            inv_freq,
        }
    }

    /// Rotates one head vector `x` (length ≥ `dim`) for position `pos` in place.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let p = pos as f32;
        let half = self.dim / 2;
        for (i, &f) in self.inv_freq.iter().enumerate() {
            let (sin, cos) = (p * f).sin_cos();
            let (a, b) = match self.style {
                RopeStyle::Normal => (2 * i, 2 * i + 1),
                RopeStyle::Neox => (i, i + half),
            };
            let (x0, x1) = (x[a], x[b]);
            x[a] = x0 * cos - x1 * sin;
            x[b] = x0 * sin + x1 * cos;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f64 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        assert!((f64::from(dot(&a, &b)) - naive).abs() < 1e-5);
    }

    #[test]
    fn rope_preserves_norm_and_is_identity_at_zero() {
        for style in [RopeStyle::Normal, RopeStyle::Neox] {
            let r = Rope::new(style, 8, 10000.0, 1.0, None);
            let x0: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
            let mut x = x0.clone();
            r.apply(&mut x, 0);
            assert_eq!(x, x0);
            r.apply(&mut x, 17);
            let n0: f32 = x0.iter().map(|v| v * v).sum();
            let n1: f32 = x.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-3);
            assert_ne!(x, x0);
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut x = vec![1000.0, 999.0, -5.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[0] > x[1] && x[1] > x[2]);
    }
}
