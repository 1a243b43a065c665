//! llama.cpp's GGUF importance-matrix format (`IMatrixCollector::save_imatrix` in
//! `tools/imatrix/imatrix.cpp`, `common_imatrix_load` in `common/imatrix-loader.cpp`).
//!
//! Metadata: `general.type = "imatrix"`, `imatrix.datasets` (string array),
//! `imatrix.chunk_count` and `imatrix.chunk_size` (u32). Tensors, in name order: for each
//! weight `W`, `W.in_sum2` (F32, `ne = [n_cols, n_mat]`) then `W.counts` (F32,
//! `ne = [1, n_mat]`), trailing unit dimensions dropped as `ggml_n_dims` does.

use std::collections::BTreeMap;
use std::path::Path;

use pith_runtime::gguf::{Array, GgufFile, Value, DEFAULT_ALIGNMENT};
use pith_runtime::quant::GgmlType;

use super::{ImatrixEntry, ImatrixError, ImatrixFile};
use crate::writer::{encode_header, TensorSpec};

const KEY_DATASETS: &str = "imatrix.datasets";
const KEY_CHUNK_COUNT: &str = "imatrix.chunk_count";
const KEY_CHUNK_SIZE: &str = "imatrix.chunk_size";
const SUFFIX_SUMS: &str = ".in_sum2";
const SUFFIX_COUNTS: &str = ".counts";

/// Parses a GGUF importance matrix held in memory.
pub(super) fn read(path: &Path, bytes: Vec<u8>) -> Result<ImatrixFile, ImatrixError> {
    let g = GgufFile::from_bytes(path, bytes)?;
    if g.tensor_infos().is_empty() {
        return Err(ImatrixError::Empty {
            path: path.to_owned(),
        });
    }
    // llama-quantize refuses a GGUF imatrix without these three keys.
    for key in [KEY_DATASETS, KEY_CHUNK_COUNT, KEY_CHUNK_SIZE] {
        if g.get(key).is_none() {
            return Err(ImatrixError::MissingMetadata {
                path: path.to_owned(),
                key,
            });
        }
    }
    let datasets = match g.opt_array(KEY_DATASETS)? {
        Some(Array::String(v)) => v.clone(),
        _ => Vec::new(),
    };
    let u32_key = |key: &'static str| -> Result<u32, ImatrixError> {
        let v = g.opt_int(key)?.unwrap_or(0);
        u32::try_from(v).map_err(|_| ImatrixError::BadValue {
            path: path.to_owned(),
            field: key,
            value: v,
        })
    };
    let chunk_count = u32_key(KEY_CHUNK_COUNT)?;
    let chunk_size = u32_key(KEY_CHUNK_SIZE)?;

    // Per weight: (in_sum2, counts) as found.
    type Pair = (Option<Vec<f32>>, Option<Vec<f32>>);
    let mut pairs: BTreeMap<String, Pair> = BTreeMap::new();
    for info in g.tensor_infos() {
        let (base, is_sums) = if let Some(b) = info.name.strip_suffix(SUFFIX_SUMS) {
            (b, true)
        } else if let Some(b) = info.name.strip_suffix(SUFFIX_COUNTS) {
            (b, false)
        } else {
            continue;
        };
        if info.ty != GgmlType::F32 {
            return Err(ImatrixError::NotF32 {
                path: path.to_owned(),
                tensor: info.name.clone(),
                ty: info.ty,
            });
        }
        let data = g
            .tensor_bytes(info)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let slot = pairs.entry(base.to_owned()).or_default();
        if is_sums {
            slot.0 = Some(data);
        } else {
            slot.1 = Some(data);
        }
    }
    let mut entries = BTreeMap::new();
    for (name, pair) in pairs {
        let unpaired = |what, missing| ImatrixError::Unpaired {
            path: path.to_owned(),
            name: name.clone(),
            what,
            missing,
        };
        let (sums, counts) = match pair {
            (Some(s), Some(c)) => (s, c),
            (Some(_), None) => return Err(unpaired("in_sum2", "counts")),
            _ => return Err(unpaired("counts", "in_sum2")),
        };
        // The loader rounds the F32 counts to integers (`std::lround`).
        let counts: Vec<i64> = counts.iter().map(|&c| c.round() as i64).collect();
        let entry = ImatrixEntry::new(&name, sums, counts).map_err(|e| match e {
            ImatrixError::BadEntry {
                name,
                n_values,
                n_counts,
            } => ImatrixError::Shape {
                path: path.to_owned(),
                name,
                n_values,
                n_counts,
            },
            e => e,
        })?;
        entries.insert(name, entry);
    }
    if entries.is_empty() {
        return Err(ImatrixError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(ImatrixFile {
        entries,
        datasets,
        chunk_count,
        chunk_size,
        is_legacy: false,
    })
}

/// Serialises `f` as GGUF v3, the way `gguf_write_to_file` lays it out: the header through
/// the crate's GGUF writer ([`crate::writer::encode_header`]), then each F32 tensor
/// padded to the default alignment.
pub(super) fn write(f: &ImatrixFile) -> Vec<u8> {
    let mut specs = Vec::new();
    let mut data: Vec<Vec<f32>> = Vec::new();
    // ggml_n_dims: trailing dimensions of 1 are not written (at least one is).
    let dims = |ne: [u64; 2]| {
        let n = ne.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1);
        ne[..n].to_vec()
    };
    for (name, e) in &f.entries {
        let n_mat = e.counts.len() as u64;
        // For a legacy file the "sums" are means × ncall and the count is ncall, so
        // sums / counts is unchanged.
        specs.push(TensorSpec {
            name: format!("{name}{SUFFIX_SUMS}"),
            dims: dims([e.n_cols() as u64, n_mat]),
            ty: GgmlType::F32,
        });
        data.push(e.sums.clone());
        specs.push(TensorSpec {
            name: format!("{name}{SUFFIX_COUNTS}"),
            dims: dims([1, n_mat]),
            ty: GgmlType::F32,
        });
        data.push(e.counts.iter().map(|&c| c as f32).collect());
    }
    let metadata = vec![
        ("general.type".to_owned(), Value::String("imatrix".into())),
        (
            KEY_DATASETS.to_owned(),
            Value::Array(Array::String(f.datasets.clone())),
        ),
        (KEY_CHUNK_COUNT.to_owned(), Value::U32(f.chunk_count)),
        (KEY_CHUNK_SIZE.to_owned(), Value::U32(f.chunk_size)),
    ];
    // F32 tensors with in-range sizes and the default alignment: nothing to refuse.
    let (mut out, _) = encode_header(&metadata, &specs, DEFAULT_ALIGNMENT)
        .unwrap_or_else(|e| unreachable!("imatrix GGUF header: {e}"));
    for d in &data {
        out.extend_from_slice(bytemuck::cast_slice(d));
        out.resize(out.len().next_multiple_of(DEFAULT_ALIGNMENT as usize), 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_parses_with_the_runtime_reader_and_drops_unit_dims() {
        let mut f = ImatrixFile {
            chunk_count: 2,
            chunk_size: 64,
            datasets: vec!["a.txt".into()],
            ..Default::default()
        };
        f.entries.insert(
            "blk.3.ffn_down.weight".into(),
            ImatrixEntry::new("d", vec![1.0, 2.0, 3.0], vec![128]).unwrap(),
        );
        let g = GgufFile::from_bytes("t.gguf", write(&f)).unwrap();
        let names: Vec<_> = g.tensor_infos().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "blk.3.ffn_down.weight.in_sum2",
                "blk.3.ffn_down.weight.counts"
            ]
        );
        assert_eq!(g.tensor_infos()[0].dims, [3]);
        assert_eq!(g.tensor_infos()[1].dims, [1]);
        assert_eq!(g.get_str("general.type").unwrap(), "imatrix");
    }
}
