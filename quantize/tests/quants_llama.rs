//! pith's quantizers against `llama-quantize`: byte-identical output for every type, with
//! and without an importance matrix.
//!
//! The goldens in `tests/golden/quant/` were written by `tests/py/quant_golden.py` (see the
//! README there): `input-f32.gguf` holds the f32 test tensors (random rows of many scales,
//! edge cases, rows of real Gemma 3 270M weights), `<TYPE>.gguf` is `llama-quantize --pure`
//! of it, `<TYPE>-imatrix.gguf` the same with `--imatrix imatrix.dat`. Each output tensor is
//! compared with `quantize()` of the same f32 rows to the type llama-quantize chose for it
//! (its fallback for rows that are not a multiple of 256 included).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pith_quantize::quants::quantize;
use pith_runtime::gguf::GgufFile;
use pith_runtime::quant::GgmlType;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/quant")
}

fn open(name: &str) -> GgufFile {
    let path = golden_dir().join(name);
    GgufFile::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (make the goldens with `python3 tests/py/quant_golden.py`)",
            path.display()
        )
    })
}

/// Reads llama.cpp's legacy imatrix file and normalises it as `llama-quantize` does
/// (`sums / ncall`, tools/quantize/quantize.cpp `load_imatrix`).
fn read_imatrix(path: &Path) -> HashMap<String, Vec<f32>> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut pos = 0usize;
    let i32_at = |pos: &mut usize| {
        let v = i32::from_le_bytes(b[*pos..*pos + 4].try_into().unwrap());
        *pos += 4;
        v
    };
    let n_entries = i32_at(&mut pos);
    let mut out = HashMap::new();
    for _ in 0..n_entries {
        let len = i32_at(&mut pos) as usize;
        let name = String::from_utf8(b[pos..pos + len].to_vec()).unwrap();
        pos += len;
        let ncall = i32_at(&mut pos);
        let nval = i32_at(&mut pos) as usize;
        let sums: Vec<f32> = b[pos..pos + 4 * nval]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        pos += 4 * nval;
        let e = if ncall > 0 {
            sums.iter().map(|s| s / ncall as f32).collect()
        } else {
            sums
        };
        out.insert(name, e);
    }
    out
}

fn f32_data(file: &GgufFile, name: &str) -> Vec<f32> {
    let t = file
        .tensor(name)
        .unwrap_or_else(|| panic!("input-f32.gguf has no tensor {name}"));
    assert_eq!(t.ty(), GgmlType::F32, "{name}");
    t.data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Quantizes every tensor of `input-f32.gguf` to the type it has in `file` and compares the
/// bytes; returns how many tensors were checked.
fn check(file: &str, with_imatrix: bool) -> usize {
    let input = open("input-f32.gguf");
    let golden = open(file);
    let imatrix = with_imatrix.then(|| read_imatrix(&golden_dir().join("imatrix.dat")));
    let mut failures = Vec::new();
    let mut checked = 0;
    for info in golden.tensor_infos() {
        let src = f32_data(&input, &info.name);
        let n_per_row = info.dims[0] as usize;
        let im = imatrix.as_ref().map(|m| {
            m.get(&info.name)
                .unwrap_or_else(|| panic!("imatrix.dat has no entry {}", info.name))
                .as_slice()
        });
        let got = quantize(info.ty, &src, n_per_row, im)
            .unwrap_or_else(|e| panic!("{file}: {}: {e}", info.name));
        let want = golden.tensor_bytes(info);
        checked += 1;
        if got != want {
            let row_bytes = want.len() / (src.len() / n_per_row);
            let block_bytes = info.ty.type_size();
            let bad_blocks: Vec<usize> = got
                .chunks(block_bytes)
                .zip(want.chunks(block_bytes))
                .enumerate()
                .filter(|(_, (g, w))| g != w)
                .map(|(i, _)| i)
                .collect();
            let first = bad_blocks[0];
            let blocks_per_row = row_bytes / block_bytes;
            failures.push(format!(
                "{} ({}): {} of {} blocks differ, first at row {} block {}:\n  pith  {:02x?}\n  llama {:02x?}",
                info.name,
                info.ty,
                bad_blocks.len(),
                want.len() / block_bytes,
                first / blocks_per_row,
                first % blocks_per_row,
                &got[first * block_bytes..(first + 1) * block_bytes],
                &want[first * block_bytes..(first + 1) * block_bytes],
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: pith differs from llama-quantize:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 3, "{file}: only {checked} tensors");
    checked
}

macro_rules! golden_tests {
    ($($name:ident => $file:literal, $imatrix:literal;)*) => {
        $(
            #[test]
            fn $name() {
                check($file, $imatrix);
            }
        )*
    };
}

golden_tests! {
    q4_0_matches_llama_quantize => "Q4_0.gguf", false;
    q4_1_matches_llama_quantize => "Q4_1.gguf", false;
    q5_0_matches_llama_quantize => "Q5_0.gguf", false;
    q5_1_matches_llama_quantize => "Q5_1.gguf", false;
    q8_0_matches_llama_quantize => "Q8_0.gguf", false;
    q2_k_matches_llama_quantize => "Q2_K.gguf", false;
    q3_k_matches_llama_quantize => "Q3_K.gguf", false;
    q4_k_matches_llama_quantize => "Q4_K.gguf", false;
    q5_k_matches_llama_quantize => "Q5_K.gguf", false;
    q6_k_matches_llama_quantize => "Q6_K.gguf", false;
    f16_matches_llama_quantize => "F16.gguf", false;
    bf16_matches_llama_quantize => "BF16.gguf", false;
    q4_0_imatrix_matches_llama_quantize => "Q4_0-imatrix.gguf", true;
    q4_1_imatrix_matches_llama_quantize => "Q4_1-imatrix.gguf", true;
    q5_0_imatrix_matches_llama_quantize => "Q5_0-imatrix.gguf", true;
    q5_1_imatrix_matches_llama_quantize => "Q5_1-imatrix.gguf", true;
    q2_k_imatrix_matches_llama_quantize => "Q2_K-imatrix.gguf", true;
    q3_k_imatrix_matches_llama_quantize => "Q3_K-imatrix.gguf", true;
    q4_k_imatrix_matches_llama_quantize => "Q4_K-imatrix.gguf", true;
    q5_k_imatrix_matches_llama_quantize => "Q5_K-imatrix.gguf", true;
    q6_k_imatrix_matches_llama_quantize => "Q6_K-imatrix.gguf", true;
}

#[test]
fn imatrix_changes_the_result() {
    // Guards the test itself: the imatrix goldens must differ from the plain ones, so the
    // `_impl` branch is really exercised.
    for ty in [
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    ] {
        let a = open(&format!("{ty}.gguf"));
        let b = open(&format!("{ty}-imatrix.gguf"));
        let info = a.tensor("rand.weight").unwrap().info.clone();
        let info_b = b.tensor("rand.weight").unwrap().info.clone();
        assert_ne!(a.tensor_bytes(&info), b.tensor_bytes(&info_b), "{ty}");
    }
}
