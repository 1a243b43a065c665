//! f32 matrix products for prefill and attention: `C[t, r] = Σₖ A[t, k]·B[k, r]` with `A`
//! row-major (`lda`), `B` "k-major" (row `k` holds the `n` values of every output column,
//! stride `ldb`) and `C` row-major (`ldc`).
//!
//! Weight tiles are dequantized and transposed into this `B` layout once per task
//! (`model::matmul`); the attention uses it for `P·V` directly and for `Q·Kᵀ` after
//! transposing the keys. Register-tiled micro-kernels (BLIS style: a few vectors of `B`
//! times broadcasts of `A`, no horizontal sums) for AVX-512 and AVX2+FMA are chosen once
//! at run time, with a portable version everywhere. Each output element is one sequential
//! fused multiply-add chain over `k`, whatever its place in a tile, so a token's result
//! does not depend on which other tokens share the batch.
//!
//! Hand-written rather than taken from a BLAS crate: the operands are small tiles made on
//! the fly from quantized blocks or the f16 KV cache, and the edge build must not pull in
//! a BLAS.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

use std::sync::OnceLock;

/// The instruction set the micro-kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GemmLevel {
    Portable,
    Avx2,
    Avx512,
}

/// Operands of one product. Slices are checked by [`gemm`] against the shapes.
#[derive(Debug, Clone, Copy)]
pub struct Operands<'a> {
    /// `m × k`, row stride `lda`.
    pub a: &'a [f32],
    pub lda: usize,
    /// `k × n`, row stride `ldb`.
    pub b: &'a [f32],
    pub ldb: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Where the `m × n` result goes: element `(t, r)` at `ptr + t·ldc + r`.
#[derive(Debug, Clone, Copy)]
pub struct OutTile {
    ptr: *mut f32,
    ldc: usize,
    /// The slice length behind `ptr` when made by [`OutTile::of`]: checked by [`gemm`].
    len: Option<usize>,
}

impl OutTile {
    /// # Safety
    /// `ptr` must be valid for writes at `t·ldc + r` for every `t < m`, `r < n` of the
    /// [`gemm`] call it is passed to, and no other thread may access those elements
    /// meanwhile.
    pub unsafe fn new(ptr: *mut f32, ldc: usize) -> Self {
        Self {
            ptr,
            ldc,
            len: None,
        }
    }

    /// An output over a whole slice: safe, because every element `t·ldc + r` a [`gemm`]
    /// call writes is checked against the slice's length first.
    pub fn of(out: &mut [f32], ldc: usize) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            ldc,
            len: Some(out.len()),
        }
    }
}

type Kernel = fn(&Operands<'_>, OutTile);

fn selected() -> &'static (GemmLevel, Kernel) {
    static K: OnceLock<(GemmLevel, Kernel)> = OnceLock::new();
    K.get_or_init(|| {
        let forced = std::env::var(crate::kernels::FORCE_ENV).ok();
        let forced = forced.as_deref().map(str::trim);
        #[cfg(target_arch = "x86_64")]
        {
            if forced != Some("scalar") {
                if forced != Some("avx2") && avx512::available() {
                    return (GemmLevel::Avx512, avx512::gemm as Kernel);
                }
                if avx2::available() {
                    return (GemmLevel::Avx2, avx2::gemm as Kernel);
                }
            }
        }
        let _ = forced;
        (GemmLevel::Portable, portable as Kernel)
    })
}

/// The level [`gemm`] runs at in this process (`PITH_FORCE_KERNELS=scalar|avx2` pins a
/// lower one).
pub fn level() -> GemmLevel {
    selected().0
}

/// Rows `rows` of stride `ld` holding `cols` values span this many elements.
fn span(rows: usize, ld: usize, cols: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * ld + cols
    }
}

fn check(o: &Operands<'_>, c: &OutTile) {
    assert!(
        o.a.len() >= span(o.m, o.lda, o.k) && o.b.len() >= span(o.k, o.ldb, o.n),
        "gemm operand sizes"
    );
    if let Some(len) = c.len {
        assert!(len >= span(o.m, c.ldc, o.n), "gemm output size");
    }
}

/// `C = A·B` at the selected level. Panics when a slice (or an output made by
/// [`OutTile::of`]) is too short for its shape.
pub fn gemm(o: &Operands<'_>, c: OutTile) {
    check(o, &c);
    (selected().1)(o, c)
}

/// `C = A·B` with the portable kernel, always compiled: the reference in tests.
pub fn gemm_portable(o: &Operands<'_>, c: OutTile) {
    check(o, &c);
    portable(o, c)
}

fn portable(o: &Operands<'_>, c: OutTile) {
    let mut acc = vec![0.0f32; o.n];
    for t in 0..o.m {
        acc.fill(0.0);
        let at = &o.a[t * o.lda..t * o.lda + o.k];
        for (kk, &av) in at.iter().enumerate() {
            let brow = &o.b[kk * o.ldb..kk * o.ldb + o.n];
            for (s, &bv) in acc.iter_mut().zip(brow) {
                *s = fmadd(av, bv, *s);
            }
        }
        for (r, &v) in acc.iter().enumerate() {
            // SAFETY: `OutTile::new`'s contract covers (t, r), t < m, r < n.
            unsafe { *c.ptr.add(t * c.ldc + r) = v };
        }
    }
}

/// Walks the `m × n` output in tiles of at most `mr_max` rows × `width` columns, column
/// blocks outermost (so one block of `B` serves every row of `A`): `tile(t, r, w, mr)`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
fn for_each_tile(
    o: &Operands<'_>,
    mr_max: usize,
    width: usize,
    mut tile: impl FnMut(usize, usize, usize, usize),
) {
    let mut r = 0;
    while r < o.n {
        let w = width.min(o.n - r);
        let mut t = 0;
        while t < o.m {
            let mr = mr_max.min(o.m - t);
            tile(t, r, w, mr);
            t += mr;
        }
        r += w;
    }
}

/// `a·b + c`: fused where the target always has FMA (aarch64, or an x86 build with the
/// `fma` target feature), so the portable level agrees bit for bit with the SIMD ones
/// there; two roundings elsewhere, where a software `fmaf` call would be 100× slower.
#[inline(always)]
fn fmadd(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(any(target_arch = "aarch64", target_feature = "fma")) {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(o: &Operands<'_>) -> Vec<f64> {
        let mut c = vec![0.0; o.m * o.n];
        for t in 0..o.m {
            for r in 0..o.n {
                c[t * o.n + r] = (0..o.k)
                    .map(|i| f64::from(o.a[t * o.lda + i]) * f64::from(o.b[i * o.ldb + r]))
                    .sum();
            }
        }
        c
    }

    fn levels() -> Vec<(&'static str, Kernel)> {
        let mut v: Vec<(&str, Kernel)> = vec![("portable", portable)];
        #[cfg(target_arch = "x86_64")]
        {
            if avx2::available() {
                v.push(("avx2", avx2::gemm));
            }
            if avx512::available() {
                v.push(("avx512", avx512::gemm));
            }
        }
        v
    }

    fn data(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104729) % 97) as f32 / 48.0 - 1.0)
            .collect()
    }

    #[test]
    fn every_level_matches_f64_reference_on_ragged_shapes() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 17),
            (8, 48, 16),
            (9, 50, 64),
            (13, 97, 35),
            (17, 16, 640),
        ] {
            let (lda, ldb) = (k + 3, n + 5);
            let a = data(m * lda, 1);
            let b = data(k * ldb, 2);
            let ops = Operands {
                a: &a,
                lda,
                b: &b,
                ldb,
                m,
                n,
                k,
            };
            let want = reference(&ops);
            for (name, kern) in levels() {
                let ldc = n + 2;
                let mut c = vec![f32::NAN; m * ldc];
                // SAFETY: `c` holds m·ldc elements; single-threaded.
                kern(&ops, unsafe { OutTile::new(c.as_mut_ptr(), ldc) });
                for t in 0..m {
                    for r in 0..n {
                        let (got, w) = (c[t * ldc + r], want[t * n + r]);
                        assert!(
                            (f64::from(got) - w).abs() <= 1e-5 * k as f64 * w.abs().max(1.0),
                            "{name} m={m} n={n} k={k} ({t},{r}): {got} vs {w}"
                        );
                    }
                    // The padding between rows is untouched.
                    assert!(c[t * ldc + n].is_nan(), "{name} wrote past n");
                }
            }
        }
    }

    #[test]
    fn levels_agree_bit_for_bit_and_rows_do_not_depend_on_the_batch() {
        // (The portable level joins the bit-for-bit comparison where it fuses too.)
        let (m, n, k) = (11, 61, 67);
        let a = data(m * k, 3);
        let b = data(k * n, 4);
        let ops = Operands {
            a: &a,
            lda: k,
            b: &b,
            ldb: n,
            m,
            n,
            k,
        };
        let mut first: Option<Vec<f32>> = None;
        let exact_portable = cfg!(any(target_arch = "aarch64", target_feature = "fma"));
        for (name, kern) in levels().into_iter().skip(usize::from(!exact_portable)) {
            let mut all = vec![0.0; m * n];
            // SAFETY: sized m·n with ldc = n.
            kern(&ops, unsafe { OutTile::new(all.as_mut_ptr(), n) });
            for t in 0..m {
                let mut one = vec![0.0; n];
                let single = Operands {
                    a: &a[t * k..],
                    m: 1,
                    ..ops
                };
                // SAFETY: sized 1·n.
                kern(&single, unsafe { OutTile::new(one.as_mut_ptr(), n) });
                assert_eq!(one, all[t * n..(t + 1) * n], "{name} row {t}");
            }
            match &first {
                // Every level is one fused multiply-add chain per element, in k order.
                Some(f) => assert_eq!(f, &all, "{name} differs from portable"),
                None => first = Some(all),
            }
        }
    }
}
