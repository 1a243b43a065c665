//! A streaming GGUF v3 writer.
//!
//! The caller decides every tensor's name, shape and type up front
//! ([`GgufWriter::create`]), so the header (metadata and tensor infos with their offsets)
//! is written first; tensor data then follows tensor by tensor, each aligned to
//! `general.alignment` (default 32 bytes), as ggml's `gguf_write_to_file` lays it out.
//! Nothing but the current tensor is held in memory.
//!
//! The file is written to a temporary file in the destination's directory and renamed
//! into place by [`GgufWriter::finish`] only when every tensor has been written; dropping
//! the writer early (an error, a panic) deletes the temporary file.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pith_runtime::gguf::{type_id, Array, Value, DEFAULT_ALIGNMENT};
use pith_runtime::quant::GgmlType;

use crate::error::{io, Error, Result};

/// GGUF magic and the version this writer produces.
const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;

/// One tensor of the output file: name, dimensions in ggml order (`dims[0]` is the row
/// length) and element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in ggml order (`dims[0]` is the row length).
    pub dims: Vec<u64>,
    /// Element type of the data written.
    pub ty: GgmlType,
}

impl TensorSpec {
    /// Bytes of this tensor's data, or an error when the row length is not a multiple of
    /// the type's block size.
    pub fn n_bytes(&self) -> Result<u64> {
        let n: u64 = self.dims.iter().product();
        if self.dims.first().copied().unwrap_or(1) % self.ty.block_size() as u64 != 0 {
            return Err(Error::Writer(format!(
                "tensor '{}': row length {} is not a multiple of {}'s block size {}",
                self.name,
                self.dims[0],
                self.ty,
                self.ty.block_size()
            )));
        }
        self.ty
            .bytes_for(n)
            .ok_or_else(|| Error::Writer(format!("tensor '{}': size overflows", self.name)))
    }
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Serialises the GGUF header (magic, version, counts, metadata, tensor infos) with
/// tensor offsets relative to the data section, padded to `alignment`. Returns the
/// header bytes and each tensor's relative offset.
pub fn encode_header(
    metadata: &[(String, Value)],
    tensors: &[TensorSpec],
    alignment: u64,
) -> Result<(Vec<u8>, Vec<u64>)> {
    let mut b = Vec::with_capacity(1 << 16);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    b.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut b, k);
        b.extend_from_slice(&value_type(v).to_le_bytes());
        put_value(&mut b, v);
    }
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut off = 0u64;
    for t in tensors {
        put_str(&mut b, &t.name);
        b.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&t.ty.id().to_le_bytes());
        b.extend_from_slice(&off.to_le_bytes());
        offsets.push(off);
        off = align_up(off + t.n_bytes()?, alignment);
    }
    let padded = align_up(b.len() as u64, alignment) as usize;
    b.resize(padded, 0);
    Ok((b, offsets))
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => type_id::U8,
        Value::I8(_) => type_id::I8,
        Value::U16(_) => type_id::U16,
        Value::I16(_) => type_id::I16,
        Value::U32(_) => type_id::U32,
        Value::I32(_) => type_id::I32,
        Value::F32(_) => type_id::F32,
        Value::Bool(_) => type_id::BOOL,
        Value::String(_) => type_id::STRING,
        Value::Array(_) => type_id::ARRAY,
        Value::U64(_) => type_id::U64,
        Value::I64(_) => type_id::I64,
        Value::F64(_) => type_id::F64,
    }
}

fn array_type(a: &Array) -> u32 {
    match a {
        Array::U8(_) => type_id::U8,
        Array::I8(_) => type_id::I8,
        Array::U16(_) => type_id::U16,
        Array::I16(_) => type_id::I16,
        Array::U32(_) => type_id::U32,
        Array::I32(_) => type_id::I32,
        Array::F32(_) => type_id::F32,
        Array::Bool(_) => type_id::BOOL,
        Array::String(_) => type_id::STRING,
        Array::Array(_) => type_id::ARRAY,
        Array::U64(_) => type_id::U64,
        Array::I64(_) => type_id::I64,
        Array::F64(_) => type_id::F64,
    }
}

fn put_value(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => b.push(*x),
        Value::I8(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => b.push(u8::from(*x)),
        Value::String(s) => put_str(b, s),
        Value::Array(a) => put_array(b, a),
        Value::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => b.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(b: &mut Vec<u8>, a: &Array) {
    b.extend_from_slice(&array_type(a).to_le_bytes());
    b.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! nums {
        ($v:expr) => {
            for x in $v {
                b.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => b.extend_from_slice(v),
        Array::I8(v) => nums!(v),
        Array::U16(v) => nums!(v),
        Array::I16(v) => nums!(v),
        Array::U32(v) => nums!(v),
        Array::I32(v) => nums!(v),
        Array::F32(v) => nums!(v),
        Array::Bool(v) => b.extend(v.iter().map(|&x| u8::from(x))),
        Array::String(v) => v.iter().for_each(|s| put_str(b, s)),
        Array::Array(v) => v.iter().for_each(|x| put_array(b, x)),
        Array::U64(v) => nums!(v),
        Array::I64(v) => nums!(v),
        Array::F64(v) => nums!(v),
    }
}

/// The alignment `metadata` asks for (`general.alignment`, default 32 bytes).
pub fn alignment_of(metadata: &[(String, Value)]) -> Result<u64> {
    match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some((_, v)) => match v.as_i64() {
            Some(a) if a > 0 && (a as u64).is_power_of_two() && a <= 1 << 20 => Ok(a as u64),
            _ => Err(Error::Writer(format!(
                "general.alignment must be a power of two up to 2^20, got {v:?}"
            ))),
        },
    }
}

/// Streams one GGUF file; see the module documentation.
pub struct GgufWriter {
    out: BufWriter<tempfile::NamedTempFile>,
    dest: PathBuf,
    tensors: Vec<TensorSpec>,
    sizes: Vec<u64>,
    alignment: u64,
    /// Index of the tensor being written.
    next: usize,
    /// Bytes of the current tensor written so far.
    written: u64,
}

impl GgufWriter {
    /// Creates the temporary file next to `dest` and writes the header. `tensors` are
    /// written in this order. Refuses an existing `dest` unless `overwrite`.
    pub fn create(
        dest: impl AsRef<Path>,
        metadata: &[(String, Value)],
        tensors: Vec<TensorSpec>,
        overwrite: bool,
    ) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        if !overwrite && dest.exists() {
            return Err(Error::OutputExists(dest));
        }
        let mut seen = std::collections::HashSet::new();
        for t in &tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(Error::Writer(format!("duplicate tensor name '{}'", t.name)));
            }
        }
        let alignment = alignment_of(metadata)?;
        let (header, _) = encode_header(metadata, &tensors, alignment)?;
        let sizes = tensors
            .iter()
            .map(TensorSpec::n_bytes)
            .collect::<Result<Vec<_>>>()?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".pith-")
            .suffix(".gguf.part")
            .tempfile_in(&dir)
            .map_err(io(&dir))?;
        let mut out = BufWriter::with_capacity(1 << 20, tmp);
        out.write_all(&header).map_err(io(&dest))?;
        Ok(Self {
            out,
            dest,
            tensors,
            sizes,
            alignment,
            next: 0,
            written: 0,
        })
    }

    /// The tensor the next bytes belong to, if any are left.
    pub fn current(&self) -> Option<&TensorSpec> {
        self.tensors.get(self.next)
    }

    /// Appends `bytes` to the current tensor's data. A tensor may be written in several
    /// chunks; once its size is reached the writer pads to the alignment and moves on.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let Some(spec) = self.tensors.get(self.next) else {
            return Err(Error::Writer("more data than the declared tensors".into()));
        };
        let size = self.sizes[self.next];
        if self.written + bytes.len() as u64 > size {
            return Err(Error::Writer(format!(
                "tensor '{}': {} bytes written, declared size {size}",
                spec.name,
                self.written + bytes.len() as u64
            )));
        }
        self.out.write_all(bytes).map_err(io(&self.dest))?;
        self.written += bytes.len() as u64;
        if self.written == size {
            let pad = align_up(size, self.alignment) - size;
            self.out
                .write_all(&vec![0u8; pad as usize])
                .map_err(io(&self.dest))?;
            self.next += 1;
            self.written = 0;
        }
        Ok(())
    }

    /// Writes one whole tensor; `name` must be the next declared tensor.
    pub fn write_tensor(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        match self.current() {
            Some(t) if t.name == name && self.written == 0 => self.write(bytes),
            Some(t) => Err(Error::Writer(format!(
                "expected data of tensor '{}', got '{name}'",
                t.name
            ))),
            None => Err(Error::Writer(format!("tensor '{name}' was not declared"))),
        }
    }

    /// Checks that every tensor was written, flushes and renames the file into place.
    pub fn finish(self) -> Result<PathBuf> {
        if self.next != self.tensors.len() {
            return Err(Error::Writer(format!(
                "only {} of {} tensors were written",
                self.next,
                self.tensors.len()
            )));
        }
        let tmp = self.out.into_inner().map_err(|e| Error::Io {
            path: self.dest.clone(),
            source: e.into_error(),
        })?;
        tmp.as_file().sync_all().map_err(io(&self.dest))?;
        // tempfile creates 0600; a model file is as readable as any other output.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io(&self.dest))?;
        }
        tmp.persist(&self.dest).map_err(|e| Error::Io {
            path: self.dest.clone(),
            source: e.error,
        })?;
        Ok(self.dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrips_through_pith_reader() {
        let meta = vec![
            (
                "general.architecture".to_string(),
                Value::String("llama".into()),
            ),
            ("a.u32".into(), Value::U32(7)),
            ("a.f32s".into(), Value::Array(Array::F32(vec![1.0, -2.5]))),
            (
                "a.strs".into(),
                Value::Array(Array::String(vec!["x".into(), "yz".into()])),
            ),
            ("a.b".into(), Value::Bool(true)),
        ];
        let tensors = vec![
            TensorSpec {
                name: "t0".into(),
                dims: vec![3],
                ty: GgmlType::F32,
            },
            TensorSpec {
                name: "t1".into(),
                dims: vec![32, 2],
                ty: GgmlType::Q8_0,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gguf");
        let mut w = GgufWriter::create(&path, &meta, tensors, false).unwrap();
        w.write_tensor("t0", &[0u8; 12]).unwrap();
        w.write(&[1u8; 34]).unwrap();
        w.write(&[2u8; 34]).unwrap();
        assert!(!path.exists(), "not renamed before finish");
        w.finish().unwrap();
        let f = pith_runtime::gguf::GgufFile::open(&path).unwrap();
        assert_eq!(f.metadata(), &meta[..]);
        let t1 = f.tensor("t1").unwrap();
        assert_eq!(t1.data.len(), 68);
        assert_eq!(t1.info.offset % 32, 0);
        assert_eq!(&t1.data[34..], &[2u8; 34]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn incomplete_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gguf");
        let spec = TensorSpec {
            name: "t".into(),
            dims: vec![4],
            ty: GgmlType::F32,
        };
        let mut w = GgufWriter::create(&path, &[], vec![spec.clone()], false).unwrap();
        w.write(&[0u8; 8]).unwrap();
        assert!(w.write(&[0u8; 12]).is_err());
        assert!(w.finish().is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::write(&path, b"x").unwrap();
        assert!(matches!(
            GgufWriter::create(&path, &[], vec![spec], false),
            Err(Error::OutputExists(_))
        ));
    }
}
