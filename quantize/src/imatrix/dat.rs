//! llama.cpp's legacy `.dat` importance-matrix format (`save_imatrix_legacy` in
//! `tools/imatrix/imatrix.cpp`, `common_imatrix_load_legacy` in `common/imatrix-loader.cpp`).
//!
//! All integers are little-endian `i32`:
//! `n_entries`, then per entry `len, name[len], ncall, nval, f32 values[nval]` where
//! `values = sum / count × ncall` and `ncall = ⌈max(counts) / chunk_size⌉`; then, optionally,
//! the chunk count and `len, dataset[len]`.

use std::path::Path;

use super::{ImatrixEntry, ImatrixError, ImatrixFile, MAX_NAME_LEN};

struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ImatrixError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| ImatrixError::Truncated {
                path: self.path.to_owned(),
                field,
                offset: self.pos,
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, ImatrixError> {
        let b = self.take(4, field)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A length field: non-negative and at most `max`.
    fn len(&mut self, field: &'static str, max: usize) -> Result<usize, ImatrixError> {
        let v = self.i32(field)?;
        usize::try_from(v)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| ImatrixError::BadValue {
                path: self.path.to_owned(),
                field,
                value: v.into(),
            })
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

/// Parses a legacy file held in memory.
pub(super) fn read(path: &Path, bytes: &[u8]) -> Result<ImatrixFile, ImatrixError> {
    let mut r = Reader {
        path,
        bytes,
        pos: 0,
    };
    // Each entry takes at least 16 bytes (len, ncall, nval, one value).
    let n_entries = r.len("n_entries", r.remaining() / 16)?;
    if n_entries == 0 {
        return Err(ImatrixError::Empty {
            path: path.to_owned(),
        });
    }
    let mut out = ImatrixFile {
        is_legacy: true,
        ..Default::default()
    };
    for index in 0..n_entries {
        let len = r.len("name length", MAX_NAME_LEN)?;
        let name = std::str::from_utf8(r.take(len, "name")?)
            .map_err(|_| ImatrixError::BadName {
                path: path.to_owned(),
                index,
            })?
            // llama.cpp reads the name as a C string.
            .split('\0')
            .next()
            .unwrap_or_default()
            .to_owned();
        let ncall = r.i32("ncall")?;
        let nval = r.len("nval", r.remaining() / 4)?;
        if nval == 0 {
            return Err(ImatrixError::BadValue {
                path: path.to_owned(),
                field: "nval",
                value: 0,
            });
        }
        let values = r
            .take(nval * 4, "values")?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect::<Vec<_>>();
        // llama-quantize divides by ncall when it is positive, else uses the values as is;
        // a count of 1 reproduces the latter.
        let count = if ncall > 0 { i64::from(ncall) } else { 1 };
        let entry = ImatrixEntry::new(&name, values, vec![count])?;
        out.entries.insert(name, entry);
    }
    // The trailing chunk count and dataset name are optional.
    if r.remaining() >= 4 {
        let n_calls = r.i32("chunk count")?;
        out.chunk_count = u32::try_from(n_calls).unwrap_or(0);
        if r.remaining() >= 4 {
            let len = r.i32("dataset length")?;
            if let Ok(len) = usize::try_from(len) {
                if len > 0 && len <= r.remaining() {
                    let s = r.take(len, "dataset")?;
                    let s = String::from_utf8_lossy(s);
                    out.datasets
                        .push(s.split('\0').next().unwrap_or_default().to_owned());
                }
            }
        }
    }
    Ok(out)
}

/// Serialises `f` in the legacy format, entries in name order (as llama.cpp sorts them).
pub(super) fn write(f: &ImatrixFile) -> Vec<u8> {
    let mut out = Vec::new();
    let put = |out: &mut Vec<u8>, v: i32| out.extend_from_slice(&v.to_le_bytes());
    put(&mut out, f.entries.len() as i32);
    for (name, e) in &f.entries {
        put(&mut out, name.len() as i32);
        out.extend_from_slice(name.as_bytes());
        let max_count = e.counts.iter().copied().max().unwrap_or(0);
        let (ncall, values): (i64, Vec<f32>) = if f.is_legacy {
            // Already scaled means with their ncall.
            (max_count, e.sums.clone())
        } else {
            // Ceiling division "to avoid accidental zeros", as llama.cpp.
            let cs = i64::from(f.chunk_size.max(1));
            let ncall = ((max_count + cs - 1) / cs).max(1);
            let n_cols = e.n_cols();
            let values = e
                .sums
                .iter()
                .enumerate()
                .map(|(i, &s)| {
                    let c = e.counts[i / n_cols] as f32;
                    // "store 1 for partial data"
                    let (s, c) = if c == 0.0 { (1.0, 1.0) } else { (s, c) };
                    (s / c) * ncall as f32
                })
                .collect();
            (ncall, values)
        };
        put(&mut out, i32::try_from(ncall).unwrap_or(i32::MAX));
        put(&mut out, values.len() as i32);
        for v in values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    put(&mut out, f.chunk_count as i32);
    let dataset = f.datasets.last().map_or("", String::as_str);
    put(&mut out, dataset.len() as i32);
    out.extend_from_slice(dataset.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_oversized_fields_are_errors_not_panics() {
        let p = Path::new("x.dat");
        let mut f = ImatrixFile::default();
        f.entries.insert(
            "blk.0.ffn_up.weight".into(),
            ImatrixEntry::new("u", vec![1.0, 2.0, 3.0], vec![5]).unwrap(),
        );
        f.chunk_size = 4;
        let bytes = write(&f);
        assert!(read(p, &bytes).is_ok());
        // Every prefix that cuts into the entry fails cleanly.
        for n in 0..bytes.len() - 8 {
            assert!(read(p, &bytes[..n]).is_err(), "prefix {n}");
        }
        // A huge nval or name length.
        let mut bad = bytes.clone();
        bad[4..8].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(matches!(read(p, &bad), Err(ImatrixError::BadValue { .. })));
        let mut bad = bytes;
        bad[0..4].copy_from_slice(&(-1i32).to_le_bytes());
        assert!(matches!(read(p, &bad), Err(ImatrixError::BadValue { .. })));
    }
}
