//! Importance matrices in llama.cpp's file formats, and their collection with the runtime.
//!
//! An importance matrix holds, for every weight matrix of a model, the sum over tokens of
//! the squared activation entering each input column (`in_sum2`) and the number of tokens
//! summed (`counts`), as `llama-imatrix` collects them (`tools/imatrix/imatrix.cpp`,
//! `IMatrixCollector::collect_imatrix`). The quantizers weight each column's rounding error
//! by `in_sum2 / counts` ([`ImatrixFile::get`]), as `llama-quantize` does
//! (`tools/quantize/quantize.cpp`, `load_imatrix`).
//!
//! Two file formats, both read and written here:
//! * GGUF ([`ImatrixFormat::Gguf`], llama.cpp's default since 2025): F32 tensors
//!   `<weight>.in_sum2` (`[n_cols, n_mat]`) and `<weight>.counts` (`[1, n_mat]`) with the
//!   metadata `general.type = "imatrix"`, `imatrix.datasets`, `imatrix.chunk_count` and
//!   `imatrix.chunk_size`.
//! * legacy `.dat` ([`ImatrixFormat::Dat`]): per entry the mean squared activation times
//!   the number of chunks (`ncall`), then the chunk count and the dataset name.

mod collect;
mod dat;
mod gguf;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use collect::{collect, CollectOptions, CollectStats, Collector};

/// The GGUF magic, little-endian `"GGUF"`.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Bound on names and dataset strings read from a file (bytes).
const MAX_NAME_LEN: usize = 1 << 16;

/// An error reading, writing or collecting an importance matrix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImatrixError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Gguf(#[from] pith_runtime::gguf::GgufError),
    #[error("{path}: truncated at byte {offset} while reading {field}")]
    Truncated {
        path: PathBuf,
        field: &'static str,
        offset: usize,
    },
    #[error("{path}: {field} = {value} is out of range")]
    BadValue {
        path: PathBuf,
        field: &'static str,
        value: i64,
    },
    #[error("{path}: entry {index}: name is not UTF-8")]
    BadName { path: PathBuf, index: usize },
    #[error("{path}: the file holds no importance-matrix entries")]
    Empty { path: PathBuf },
    #[error("{path}: '{name}' has {what} but not the matching {missing}")]
    Unpaired {
        path: PathBuf,
        name: String,
        what: &'static str,
        missing: &'static str,
    },
    #[error("{path}: tensor '{tensor}' is {ty}, expected F32")]
    NotF32 {
        path: PathBuf,
        tensor: String,
        ty: pith_runtime::quant::GgmlType,
    },
    #[error("{path}: '{name}': {n_values} sums do not split into {n_counts} matrices")]
    Shape {
        path: PathBuf,
        name: String,
        n_values: usize,
        n_counts: usize,
    },
    #[error("{path}: metadata key '{key}' is missing (llama-quantize requires it)")]
    MissingMetadata { path: PathBuf, key: &'static str },
    #[error("'{name}': {n_values} values do not split into {n_counts} matrices")]
    BadEntry {
        name: String,
        n_values: usize,
        n_counts: usize,
    },
    #[error("'{tensor}': input width changed from {expected} to {found} columns")]
    WidthChanged {
        tensor: String,
        expected: usize,
        found: usize,
    },
    #[error("'{tensor}': non-finite activation statistics")]
    NonFinite { tensor: String },
    #[error("the text tokenizes to {got} tokens; {needed} are needed (2 × the chunk size {chunk_size}, after skipping {skipped})")]
    TooFewTokens {
        got: usize,
        needed: usize,
        chunk_size: usize,
        skipped: usize,
    },
    #[error("chunk size must be at least 16 tokens (llama.cpp ignores smaller batches), got {0}")]
    ChunkTooSmall(usize),
    #[error("forward pass: {0}")]
    Model(#[from] pith_runtime::model::ModelError),
}

/// Which on-disk format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImatrixFormat {
    /// llama.cpp's current format: a GGUF file of raw sums and counts (default).
    #[default]
    Gguf,
    /// llama.cpp's legacy binary `.dat` format.
    Dat,
}

impl std::str::FromStr for ImatrixFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "gguf" => Ok(Self::Gguf),
            "dat" => Ok(Self::Dat),
            _ => Err(format!(
                "unknown imatrix format '{s}' (expected gguf or dat)"
            )),
        }
    }
}

/// One weight's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ImatrixEntry {
    /// Sums of squared activations, `n_mat` rows of `n_cols` (row-major). For a legacy
    /// file: the mean squared activation times the entry's chunk count.
    pub sums: Vec<f32>,
    /// Tokens summed per matrix (`n_mat` values; 1 for a dense weight). For a legacy
    /// file: the single chunk count `ncall`.
    pub counts: Vec<i64>,
    /// Per-column importance, `sums / counts` (1 where a count is 0), as llama-quantize
    /// computes it.
    importance: Vec<f32>,
}

impl ImatrixEntry {
    /// An entry from sums and counts; `sums.len()` must be a multiple of `counts.len()`.
    pub fn new(name: &str, sums: Vec<f32>, counts: Vec<i64>) -> Result<Self, ImatrixError> {
        if counts.is_empty() || sums.is_empty() || !sums.len().is_multiple_of(counts.len()) {
            return Err(ImatrixError::BadEntry {
                name: name.to_owned(),
                n_values: sums.len(),
                n_counts: counts.len(),
            });
        }
        let n_cols = sums.len() / counts.len();
        let mut importance = Vec::with_capacity(sums.len());
        for (row, &c) in sums.chunks_exact(n_cols).zip(&counts) {
            // llama-quantize: `sums / (float) count`, or 1 for a matrix never used.
            let c = c as f32;
            if c > 0.0 {
                importance.extend(row.iter().map(|&s| s / c));
            } else {
                importance.extend(std::iter::repeat_n(1.0, n_cols));
            }
        }
        Ok(Self {
            sums,
            counts,
            importance,
        })
    }

    /// Input columns per matrix.
    pub fn n_cols(&self) -> usize {
        self.sums.len() / self.counts.len()
    }

    /// The per-column importance (`n_mat × n_cols`).
    pub fn importance(&self) -> &[f32] {
        &self.importance
    }
}

/// An importance matrix: the statistics of every weight, plus llama.cpp's metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImatrixFile {
    /// Entries by weight name (`blk.0.attn_q.weight`), sorted.
    pub entries: BTreeMap<String, ImatrixEntry>,
    /// Text files the statistics were collected on.
    pub datasets: Vec<String>,
    /// Number of chunks processed.
    pub chunk_count: u32,
    /// Tokens per chunk (0 when unknown, as in a legacy file).
    pub chunk_size: u32,
    /// True when the entries hold the legacy format's scaled means rather than raw sums.
    pub is_legacy: bool,
}

impl ImatrixFile {
    /// Reads a GGUF or legacy `.dat` importance matrix (told apart by the GGUF magic, as
    /// llama.cpp's `common_imatrix_load` does by trying GGUF first).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ImatrixError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ImatrixError::Io {
            path: path.to_owned(),
            source,
        })?;
        if bytes.starts_with(GGUF_MAGIC) {
            gguf::read(path, bytes)
        } else {
            dat::read(path, &bytes)
        }
    }

    /// Writes the matrix to `path` in `format`, atomically (a temporary file in the same
    /// directory, renamed into place when complete).
    pub fn save(&self, path: impl AsRef<Path>, format: ImatrixFormat) -> Result<(), ImatrixError> {
        let path = path.as_ref();
        let bytes = match format {
            ImatrixFormat::Gguf => gguf::write(self),
            ImatrixFormat::Dat => dat::write(self),
        };
        write_atomic(path, &bytes)
    }

    /// The per-column importance of weight `tensor_name` that llama-quantize would use:
    /// `in_sum2 / counts` for a GGUF file, `values / ncall` for a legacy one.
    pub fn get(&self, tensor_name: &str) -> Option<&[f32]> {
        self.entries.get(tensor_name).map(|e| e.importance())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImatrixError> {
    let io = |source| ImatrixError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ImatrixFile {
        let mut f = ImatrixFile {
            datasets: vec!["wiki.txt".into()],
            chunk_count: 3,
            chunk_size: 512,
            ..Default::default()
        };
        f.entries.insert(
            "blk.0.attn_q.weight".into(),
            ImatrixEntry::new("q", vec![512.0, 1024.0, 0.5, 3.0], vec![1536]).unwrap(),
        );
        f.entries.insert(
            "blk.0.ffn_down_exps.weight".into(),
            ImatrixEntry::new("e", vec![2.0, 4.0, 6.0, 8.0, 1.0, 1.0], vec![2, 0, 4]).unwrap(),
        );
        f
    }

    #[test]
    fn importance_divides_by_counts_and_uses_one_for_unused_experts() {
        let f = sample();
        let q = f.get("blk.0.attn_q.weight").unwrap();
        assert_eq!(
            q,
            &[512.0 / 1536.0, 1024.0 / 1536.0, 0.5 / 1536.0, 3.0 / 1536.0]
        );
        let e = f.get("blk.0.ffn_down_exps.weight").unwrap();
        assert_eq!(e, &[1.0, 2.0, 1.0, 1.0, 0.25, 0.25]);
        assert!(f.get("blk.1.attn_q.weight").is_none());
    }

    #[test]
    fn both_formats_round_trip_the_importance() {
        let dir = tempfile::tempdir().unwrap();
        let f = sample();
        for format in [ImatrixFormat::Gguf, ImatrixFormat::Dat] {
            let p = dir.path().join(format!("m.{format:?}"));
            f.save(&p, format).unwrap();
            let g = ImatrixFile::load(&p).unwrap();
            assert_eq!(g.is_legacy, format == ImatrixFormat::Dat);
            assert_eq!(g.datasets, f.datasets);
            assert_eq!(g.chunk_count, 3);
            for (name, e) in &f.entries {
                let (a, b) = (e.importance(), g.get(name).unwrap());
                assert_eq!(a.len(), b.len());
                for (x, y) in a.iter().zip(b) {
                    assert!((x - y).abs() <= 1e-6 * x.abs(), "{name}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn bad_entry_shapes_are_errors() {
        assert!(ImatrixEntry::new("x", vec![1.0; 5], vec![2, 3]).is_err());
        assert!(ImatrixEntry::new("x", vec![], vec![1]).is_err());
        assert!(ImatrixEntry::new("x", vec![1.0], vec![]).is_err());
    }
}
