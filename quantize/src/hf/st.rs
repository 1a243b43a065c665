//! Memory-mapped safetensors shards (`model.safetensors` or the shards named in
//! `model.safetensors.index.json`), validated by the `safetensors` crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;

use crate::error::{io, Error, Result};

/// One tensor's location in a shard.
#[derive(Debug, Clone)]
pub struct StTensor {
    pub shard: usize,
    pub dtype: Dtype,
    /// HF (row-major, outermost first) shape.
    pub shape: Vec<usize>,
    /// Byte range within the shard's map.
    pub start: usize,
    pub end: usize,
}

/// All tensors of a model directory.
pub struct Shards {
    pub paths: Vec<PathBuf>,
    maps: Vec<memmap2::Mmap>,
    pub tensors: HashMap<String, StTensor>,
}

impl Shards {
    /// Opens the safetensors of `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.is_file() {
            let j: Json = super::tokenizer::read_json(&index)?.unwrap_or(Json::Null);
            let map = j
                .get("weight_map")
                .and_then(Json::as_object)
                .ok_or_else(|| Error::Safetensors {
                    path: index.clone(),
                    reason: "no 'weight_map' object".into(),
                })?;
            let mut names: Vec<String> = map
                .values()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            names.sort();
            names.dedup();
            for n in &names {
                if n.contains('/') || n.contains('\\') || n.starts_with('.') {
                    return Err(Error::Safetensors {
                        path: index.clone(),
                        reason: format!("shard name '{n}' is not a plain file name"),
                    });
                }
            }
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            let single = dir.join("model.safetensors");
            if !single.is_file() {
                return Err(Error::Input {
                    path: dir.to_path_buf(),
                    reason: "no model.safetensors or model.safetensors.index.json".into(),
                });
            }
            vec![single]
        };
        let mut maps = Vec::new();
        let mut tensors = HashMap::new();
        for (si, p) in files.iter().enumerate() {
            let f = std::fs::File::open(p).map_err(io(p))?;
            // SAFETY: read-only private mapping of a file pith does not write; a
            // concurrent truncation by another process would fault, as for any mmap
            // reader (llama.cpp, safetensors' own loaders).
            let m = unsafe { memmap2::Mmap::map(&f) }.map_err(io(p))?;
            let st = SafeTensors::deserialize(&m).map_err(|e| Error::Safetensors {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            let base = m.as_ptr() as usize;
            for (name, view) in st.tensors() {
                let start = view.data().as_ptr() as usize - base;
                let t = StTensor {
                    shard: si,
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    start,
                    end: start + view.data().len(),
                };
                if tensors.insert(name.clone(), t).is_some() {
                    return Err(Error::Safetensors {
                        path: p.clone(),
                        reason: format!("tensor '{name}' appears in two shards"),
                    });
                }
            }
            maps.push(m);
        }
        Ok(Self {
            paths: files,
            maps,
            tensors,
        })
    }

    /// The raw bytes of a tensor.
    pub fn bytes(&self, t: &StTensor) -> &[u8] {
        &self.maps[t.shard][t.start..t.end]
    }

    /// Drops the resident pages of bytes `start..end` of a tensor (after converting them).
    pub fn release(&self, t: &StTensor, start: usize, end: usize) {
        crate::pipeline::drop_pages(
            &self.maps[t.shard],
            t.start + start,
            t.start + end.min(t.end - t.start),
        );
    }
}

/// Converts `bytes` of `dtype` (F32, F16 or BF16, little-endian) into `out`.
pub fn to_f32(dtype: Dtype, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
    let w = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        other => return Err(format!("dtype {other:?} is not supported (f32, f16, bf16)")),
    };
    if bytes.len() != out.len() * w {
        return Err(format!(
            "{} bytes for {} elements of {dtype:?}",
            bytes.len(),
            out.len()
        ));
    }
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        _ => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
    }
    Ok(())
}

/// Bytes per element of a supported dtype.
pub fn dtype_size(d: Dtype) -> Option<usize> {
    match d {
        Dtype::F32 => Some(4),
        Dtype::F16 | Dtype::BF16 => Some(2),
        _ => None,
    }
}
