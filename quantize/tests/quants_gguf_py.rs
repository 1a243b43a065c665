//! pith's quantizers against the Python `gguf` package's (`gguf.quants.quantize`), for every
//! type that package implements: byte-identical on random rows of many scales and on edge
//! cases. Needs `python3` with `gguf` (0.19.0) and `numpy`; run through
//! `tests/py/quant_gguf_ref.py`.

use std::path::Path;
use std::process::Command;

use pith_quantize::quants::{quantize, supports};
use pith_runtime::quant::GgmlType;

/// splitmix64: a fixed, dependency-free stream of test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// Rows of `n` values: random rows over nine decades of scale, then edge cases.
fn rows(n: usize) -> Vec<f32> {
    let mut rng = Rng(0x5eed_0001);
    let mut out = Vec::new();
    for r in 0..48 {
        let scale = 10f32.powf(r as f32 / 6.0 - 5.0); // 1e-5 .. 1e3
        let shift = if r % 3 == 0 { 1.5 * scale } else { 0.0 };
        out.extend((0..n).map(|_| rng.normal() * scale + shift));
    }
    let mut push = |f: &mut dyn FnMut(usize) -> f32| out.extend((0..n).map(&mut *f));
    push(&mut |_| 0.0); // all zeros
    push(&mut |_| 0.37); // constants
    push(&mut |_| -1.25);
    push(&mut |i| {
        if i == 77 % n {
            3.0
        } else {
            0.001 * ((i % 7) as f32 - 3.0)
        }
    }); // outlier
    push(&mut |i| {
        if i == 5 {
            -40.0
        } else {
            ((i * 37 % 11) as f32 - 5.0) / 5.0
        }
    });
    push(&mut |i| ((i * 7919 % 2001) as f32 - 1000.0) * 60.0); // up to ±60000
    push(&mut |i| ((i * 31 % 17) as f32 - 8.0) * 1e-20); // below ggml's GROUP_MAX_EPS
    push(&mut |i| ((i * 31 % 17) as f32 - 8.0) * 1e-6);
    push(&mut |i| ((i * 31 % 17) as f32 - 8.0) * 1e-40); // f32 subnormals: 1/d overflows
    push(&mut |i| 0.5 + (i % 13) as f32 / 13.0); // all positive
    push(&mut |i| -2.0 + (i % 9) as f32 / 9.0); // all negative
    push(&mut |i| if i % 2 == 0 { 1.0 } else { -1.0 });
    push(&mut |i| (i % 16) as f32 - 8.0); // integers: exact ties after scaling
    push(&mut |i| ((i * 13 % 17) as f32 - 8.0) * 0.5); // halves
    push(&mut |i| if i == 3 { 1.0 } else { 0.0 }); // a single non-zero
    push(&mut |i| {
        if i % 32 == 0 {
            8.0
        } else {
            ((i % 5) as f32 - 2.0) * 0.3
        }
    }); // tied maxima
    push(&mut |i| -1.0 + 2.0 * i as f32 / (n - 1) as f32); // a ramp
    out
}

/// Runs the Python reference on `data` and returns its bytes per type (`None` where the
/// package does not implement the type).
fn gguf_py(data: &[f32], n: usize, types: &[GgmlType]) -> Vec<Option<Vec<u8>>> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.f32");
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&input, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/py/quant_gguf_ref.py");
    let out = dir.path().join("out");
    let status = Command::new("python3")
        .arg(&script)
        .arg(&input)
        .arg(n.to_string())
        .arg(&out)
        .args(types.iter().map(|t| t.name()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert!(
        status.status.success(),
        "{} failed (needs python3 with gguf==0.19.0 and numpy):\n{}",
        script.display(),
        String::from_utf8_lossy(&status.stderr)
    );
    types
        .iter()
        .map(|t| std::fs::read(out.join(format!("{}.bin", t.name()))).ok())
        .collect()
}

fn first_diff(a: &[u8], b: &[u8], block: usize) -> String {
    let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0) / block;
    format!(
        "first at block {i}:\n  pith {:02x?}\n  gguf {:02x?}",
        &a[i * block..((i + 1) * block).min(a.len())],
        &b[i * block..((i + 1) * block).min(b.len())]
    )
}

/// Every type pith quantizes; the Python package implements the first eight (gguf 0.19.0
/// raises NotImplementedError for the k-quants, which are compared when a later version
/// implements them, and checked against llama-quantize in quants_llama.rs).
const TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

fn compare(n: usize) {
    let data = rows(n);
    let types: Vec<GgmlType> = TYPES
        .into_iter()
        .filter(|t| n.is_multiple_of(t.block_size()))
        .collect();
    let refs = gguf_py(&data, n, &types);
    let mut compared = Vec::new();
    for (ty, want) in types.iter().zip(refs) {
        assert!(supports(*ty));
        let Some(want) = want else { continue };
        let got = quantize(*ty, &data, n, None).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(got.len(), want.len(), "{ty}: length");
        assert!(
            got == want,
            "{ty}, rows of {n}: pith differs from gguf.quants.quantize, {}",
            first_diff(&got, &want, ty.type_size())
        );
        compared.push(*ty);
    }
    assert_eq!(compared, TYPES[..8], "types gguf.quants implements");
}

#[test]
fn matches_gguf_py_on_rows_of_256() {
    compare(256);
}

#[test]
fn matches_gguf_py_on_rows_of_96() {
    compare(96);
}
