//! A hardened, memory-mapped GGUF reader.
//!
//! The file is mapped once; tensors are zero-copy views into the map. The header is
//! parsed by [`parse`], a pure function over bytes that never panics and never allocates
//! more than the file could describe (see `parse.rs`).

mod error;
mod parse;
mod value;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use error::{GgufError, ParseError};
pub use parse::{
    parse, Header, TensorInfo, DEFAULT_ALIGNMENT, MAX_ARRAY_LEN, MAX_COUNT, MAX_DIMS, MAX_NESTING,
    MAX_STRING_LEN,
};
pub use value::{type_id, Array, Value};

use crate::quant::GgmlType;

enum Storage {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// An open GGUF file: its parsed header and the mapped bytes.
pub struct GgufFile {
    path: PathBuf,
    storage: Storage,
    header: Header,
    meta_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
    locked: std::sync::atomic::AtomicBool,
}

/// A zero-copy view of one tensor's data.
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    pub info: &'a TensorInfo,
    pub data: &'a [u8],
}

impl<'a> TensorView<'a> {
    pub fn name(&self) -> &'a str {
        &self.info.name
    }
    pub fn ty(&self) -> GgmlType {
        self.info.ty
    }
    /// Dimensions in ggml order (`dims[0]` is the row length).
    pub fn dims(&self) -> &'a [u64] {
        &self.info.dims
    }
    /// Row length (`ne[0]`), 1 for a scalar.
    pub fn row_len(&self) -> usize {
        self.info.dims.first().copied().unwrap_or(1) as usize
    }
    /// Number of rows (product of the other dimensions).
    pub fn n_rows(&self) -> usize {
        self.info.dims.iter().skip(1).product::<u64>() as usize
    }
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_len() / self.ty().block_size() * self.ty().type_size()
    }
    /// Row `i`'s raw bytes. Panics if `i >= n_rows()`: callers index rows they computed
    /// from the tensor's own shape.
    pub fn row(&self, i: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[i * rb..(i + 1) * rb]
    }
}

impl GgufFile {
    /// Memory-maps and parses `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let _span = tracing::debug_span!("gguf_open", path = %path.display()).entered();
        let io = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. Another process
        // truncating the file while it is mapped would fault on access, as it would for
        // llama.cpp; pith never writes to files it has mapped.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_storage(path.to_owned(), Storage::Mmap(mmap))
    }

    /// Reads the whole file into memory instead of mapping it (for filesystems where mmap
    /// is slow or unavailable).
    pub fn read(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| GgufError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_storage(path.to_owned(), Storage::Owned(bytes))
    }

    /// Parses a GGUF image held in memory; `name` is used in error messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Self, GgufError> {
        Self::from_storage(name.into(), Storage::Owned(bytes))
    }

    fn from_storage(path: PathBuf, storage: Storage) -> Result<Self, GgufError> {
        let header = parse(storage.bytes()).map_err(|source| GgufError::Parse {
            path: path.clone(),
            source,
        })?;
        let meta_index = header
            .metadata
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let tensor_index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(Self {
            path,
            storage,
            header,
            meta_index,
            tensor_index,
            locked: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn version(&self) -> u32 {
        self.header.version
    }
    /// File size in bytes.
    pub fn len(&self) -> u64 {
        self.storage.bytes().len() as u64
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the tensor data is memory-mapped (true) or was read into memory.
    pub fn is_mmapped(&self) -> bool {
        matches!(self.storage, Storage::Mmap(_))
    }
    /// Whether the mapped pages have been locked in memory (see [`GgufFile::lock`]).
    pub fn is_locked(&self) -> bool {
        self.locked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Locks the mapped pages in RAM (`mlock`); a no-op for a file read into memory.
    pub fn lock(&self) -> std::io::Result<()> {
        if let Storage::Mmap(m) = &self.storage {
            m.lock()?;
            self.locked
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// The underlying map, for `mlock` or `madvise`.
    pub fn mmap(&self) -> Option<&memmap2::Mmap> {
        match &self.storage {
            Storage::Mmap(m) => Some(m),
            Storage::Owned(_) => None,
        }
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.header.metadata
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.meta_index
            .get(key)
            .map(|&i| &self.header.metadata[i].1)
    }

    fn wrong_type(&self, key: &str, expected: &'static str, v: &Value) -> GgufError {
        GgufError::WrongType {
            path: self.path.clone(),
            key: key.into(),
            expected,
            found: v.type_name(),
        }
    }

    /// A required string value.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| self.wrong_type(key, "string", v))
    }
    /// An optional string value; present with another type is an error.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.wrong_type(key, "string", v)))
            .transpose()
    }
    /// An optional integer value of any integer type.
    pub fn opt_int(&self, key: &str) -> Result<Option<i64>, GgufError> {
        self.get(key)
            .map(|v| v.as_i64().ok_or_else(|| self.wrong_type(key, "integer", v)))
            .transpose()
    }
    /// An optional numeric value as f64.
    pub fn opt_float(&self, key: &str) -> Result<Option<f64>, GgufError> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| self.wrong_type(key, "number", v)))
            .transpose()
    }
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.wrong_type(key, "bool", v)))
            .transpose()
    }
    pub fn opt_array(&self, key: &str) -> Result<Option<&Array>, GgufError> {
        self.get(key)
            .map(|v| v.as_array().ok_or_else(|| self.wrong_type(key, "array", v)))
            .transpose()
    }
    fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.into(),
        })
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str, GgufError> {
        self.get_str("general.architecture")
    }

    /// All tensor infos in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    /// A tensor by name, or `None`.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let &i = self.tensor_index.get(name)?;
        Some(self.view(&self.header.tensors[i]))
    }

    /// A tensor by name; missing is an error naming the file and tensor.
    pub fn require_tensor(&self, name: &str) -> Result<TensorView<'_>, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor {
            path: self.path.clone(),
            name: name.into(),
        })
    }

    /// The data bytes of a tensor described by one of this file's infos.
    ///
    /// Panics if `info` does not come from this file (its range was checked against this
    /// file's length by `parse`).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        &self.storage.bytes()[info.offset as usize..(info.offset + info.size) as usize]
    }

    /// The view of a tensor described by one of this file's infos.
    pub fn view<'a>(&'a self, info: &'a TensorInfo) -> TensorView<'a> {
        TensorView {
            info,
            data: self.tensor_bytes(info),
        }
    }
}

impl pith_models::Metadata for GgufFile {
    fn meta_int(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }
    fn meta_float(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }
    fn meta_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }
    fn meta_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }
    fn meta_int_array(&self, key: &str) -> Option<Vec<i64>> {
        self.get(key)
            .and_then(Value::as_array)
            .and_then(Array::to_i64_vec)
    }
    fn meta_float_array(&self, key: &str) -> Option<Vec<f32>> {
        self.get(key)
            .and_then(Value::as_array)
            .and_then(Array::to_f32_vec)
    }
    fn meta_array_len(&self, key: &str) -> Option<usize> {
        self.get(key).and_then(Value::as_array).map(Array::len)
    }
}
