//! The GGUF parser: a pure function over a byte slice, so fuzzers and property tests can
//! drive it without files. Every length and count read from the file is checked against
//! the bytes that remain before anything is allocated, and every product or sum uses
//! checked arithmetic.

use std::collections::HashSet;

use super::error::ParseError;
use super::value::{type_id, Array, Value};
use crate::quant::GgmlType;

/// `GGUF` read as a little-endian u32.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Default alignment of the tensor data section (`GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most metadata entries or tensors a file may declare.
pub const MAX_COUNT: u64 = 1 << 24;
/// Longest string accepted anywhere in the header (key, value, tensor name).
pub const MAX_STRING_LEN: u64 = 64 << 20;
/// Longest metadata array accepted (elements).
pub const MAX_ARRAY_LEN: u64 = 1 << 26;
/// Deepest nesting of arrays inside arrays.
pub const MAX_NESTING: usize = 4;
/// Most dimensions a tensor may have (`GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Most elements reserved up front for a list whose length the file declares. A count
/// is checked against the bytes left, but an in-memory entry is larger than its smallest
/// encoding (a `String` is 24 bytes, its encoding 8), so reserving the full count would let
/// a forged count make us allocate several times the file size before failing. Longer
/// lists grow as their entries are actually read.
const MAX_PREALLOC: usize = 4096;

/// A tensor's description from the header; `offset` is absolute within the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the contiguous (row) dimension.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// Size of the data in bytes.
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        // Checked at parse time not to overflow.
        self.dims.iter().product()
    }
}

/// The parsed header of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, field: &dyn Fn() -> String) -> Result<&'a [u8], ParseError> {
        if n > self.remaining() {
            return Err(ParseError::Truncated {
                field: field(),
                offset: self.pos as u64,
                needed: n,
                file_len: self.buf.len() as u64,
            });
        }
        let n = n as usize; // n <= remaining, which fits in usize
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &dyn Fn() -> String) -> Result<[u8; N], ParseError> {
        let s = self.take(N as u64, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, field: &dyn Fn() -> String) -> Result<u32, ParseError> {
        self.array::<4>(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &dyn Fn() -> String) -> Result<u64, ParseError> {
        self.array::<8>(field).map(u64::from_le_bytes)
    }

    fn string(&mut self, field: &dyn Fn() -> String) -> Result<String, ParseError> {
        let len = self.u64(field)?;
        if len > MAX_STRING_LEN {
            return Err(ParseError::StringTooLong {
                field: field(),
                len,
                limit: MAX_STRING_LEN,
            });
        }
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ParseError::BadUtf8 { field: field() })
    }

    /// Checks that `count` elements of at least `min_size` bytes each can still be in the
    /// file, so a forged count cannot make us allocate more than the file could hold.
    fn check_count(
        &self,
        count: u64,
        min_size: u64,
        limit: u64,
        field: &dyn Fn() -> String,
    ) -> Result<usize, ParseError> {
        if count > limit {
            return Err(ParseError::CountTooLarge {
                field: field(),
                count,
                limit,
            });
        }
        let needed = count.saturating_mul(min_size);
        if needed > self.remaining() {
            return Err(ParseError::Truncated {
                field: field(),
                offset: self.pos as u64,
                needed,
                file_len: self.buf.len() as u64,
            });
        }
        Ok(count as usize)
    }

    /// Reads one value of type `ty`; `field` names it (`metadata[3] 'key'.value`).
    fn value(
        &mut self,
        ty: u32,
        depth: usize,
        field: &dyn Fn() -> String,
    ) -> Result<Value, ParseError> {
        Ok(match ty {
            type_id::U8 => Value::U8(self.array::<1>(field)?[0]),
            type_id::I8 => Value::I8(i8::from_le_bytes(self.array(field)?)),
            type_id::U16 => Value::U16(u16::from_le_bytes(self.array(field)?)),
            type_id::I16 => Value::I16(i16::from_le_bytes(self.array(field)?)),
            type_id::U32 => Value::U32(self.u32(field)?),
            type_id::I32 => Value::I32(i32::from_le_bytes(self.array(field)?)),
            type_id::F32 => Value::F32(f32::from_le_bytes(self.array(field)?)),
            type_id::BOOL => Value::Bool(self.array::<1>(field)?[0] != 0),
            type_id::STRING => Value::String(self.string(field)?),
            type_id::ARRAY => Value::Array(self.array_value(depth + 1, field)?),
            type_id::U64 => Value::U64(self.u64(field)?),
            type_id::I64 => Value::I64(i64::from_le_bytes(self.array(field)?)),
            type_id::F64 => Value::F64(f64::from_le_bytes(self.array(field)?)),
            _ => {
                return Err(ParseError::UnknownValueType {
                    field: field(),
                    type_id: ty,
                })
            }
        })
    }

    /// Reads an array (element type, length, elements) at nesting level `depth` (1 for an
    /// array that is a metadata value). Sub-fields are named `<field>.element_type`,
    /// `<field>.len`, `<field>.data` (the body of a fixed-size array) and `<field>[j]`.
    fn array_value(
        &mut self,
        depth: usize,
        field: &dyn Fn() -> String,
    ) -> Result<Array, ParseError> {
        if depth > MAX_NESTING {
            return Err(ParseError::NestingTooDeep {
                field: field(),
                limit: MAX_NESTING,
            });
        }
        let ty_field = || format!("{}.element_type", field());
        let len_field = || format!("{}.len", field());
        let data_field = || format!("{}.data", field());
        let ty = self.u32(&ty_field)?;
        let n = self.u64(&len_field)?;
        macro_rules! fixed {
            ($variant:ident, $t:ty) => {{
                const SIZE: usize = std::mem::size_of::<$t>();
                let n = self.check_count(n, SIZE as u64, MAX_ARRAY_LEN, &len_field)?;
                // n * SIZE <= remaining bytes, checked above, so it cannot overflow.
                let bytes = self.take((n * SIZE) as u64, &data_field)?;
                Array::$variant(
                    bytes
                        .chunks_exact(SIZE)
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                        .collect(),
                )
            }};
        }
        Ok(match ty {
            type_id::U8 => fixed!(U8, u8),
            type_id::I8 => fixed!(I8, i8),
            type_id::U16 => fixed!(U16, u16),
            type_id::I16 => fixed!(I16, i16),
            type_id::U32 => fixed!(U32, u32),
            type_id::I32 => fixed!(I32, i32),
            type_id::F32 => fixed!(F32, f32),
            type_id::U64 => fixed!(U64, u64),
            type_id::I64 => fixed!(I64, i64),
            type_id::F64 => fixed!(F64, f64),
            type_id::BOOL => {
                let n = self.check_count(n, 1, MAX_ARRAY_LEN, &len_field)?;
                Array::Bool(
                    self.take(n as u64, &data_field)?
                        .iter()
                        .map(|&b| b != 0)
                        .collect(),
                )
            }
            type_id::STRING => {
                let n = self.check_count(n, 8, MAX_ARRAY_LEN, &len_field)?;
                let mut v = Vec::with_capacity(n.min(MAX_PREALLOC));
                for j in 0..n {
                    v.push(self.string(&|| format!("{}[{j}]", field()))?);
                }
                Array::String(v)
            }
            type_id::ARRAY => {
                // A nested array takes at least 12 bytes (type + count).
                let n = self.check_count(n, 12, MAX_ARRAY_LEN, &len_field)?;
                let mut v = Vec::with_capacity(n.min(MAX_PREALLOC));
                for j in 0..n {
                    v.push(self.array_value(depth + 1, &|| format!("{}[{j}]", field()))?);
                }
                Array::Array(v)
            }
            _ => {
                return Err(ParseError::UnknownValueType {
                    field: ty_field(),
                    type_id: ty,
                })
            }
        })
    }
}

/// Parses the header of a GGUF file held in `buf` and checks every tensor's data against
/// the length of `buf`.
pub fn parse(buf: &[u8]) -> Result<Header, ParseError> {
    let mut r = Reader { buf, pos: 0 };
    let magic = r.array::<4>(&|| "magic".into())?;
    if magic != GGUF_MAGIC {
        return Err(ParseError::BadMagic { found: magic });
    }
    let version = r.u32(&|| "version".into())?;
    // A big-endian file written by gguf-py (`--bigendian`) has its version stored
    // byte-swapped: 3 reads as 0x0300_0000. llama.cpp detects it the same way (the low
    // 16 bits are zero, which no real version has).
    if version != 0 && version & 0xFFFF == 0 {
        return Err(ParseError::ByteSwapped { version });
    }
    // Version 1 used u32 counts and lengths; versions 2 and 3 share one layout.
    if !(2..=3).contains(&version) {
        return Err(ParseError::UnsupportedVersion { version });
    }
    let n_tensors = r.u64(&|| "tensor_count".into())?;
    let n_kv = r.u64(&|| "metadata_kv_count".into())?;
    // A kv takes at least 8 (key len) + 4 (type) + 1 (value) bytes.
    let n_kv = r.check_count(n_kv, 13, MAX_COUNT, &|| "metadata_kv_count".into())?;
    // A tensor info takes at least 8 (name len) + 4 (n_dims) + 4 (type) + 8 (offset).
    let n_tensors = r.check_count(n_tensors, 24, MAX_COUNT, &|| "tensor_count".into())?;

    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv.min(MAX_PREALLOC));
    let mut keys = HashSet::with_capacity(n_kv.min(MAX_PREALLOC));
    for i in 0..n_kv {
        let key_field = || format!("metadata[{i}].key");
        let key = r.string(&key_field)?;
        // llama.cpp rejects empty keys too.
        if key.is_empty() {
            return Err(ParseError::EmptyKey { field: key_field() });
        }
        if !keys.insert(key.clone()) {
            return Err(ParseError::DuplicateKey { key });
        }
        let ty_field = || format!("metadata[{i}] '{key}'.type");
        let ty = r.u32(&ty_field)?;
        if ty > type_id::F64 {
            return Err(ParseError::UnknownValueType {
                field: ty_field(),
                type_id: ty,
            });
        }
        let value = r.value(ty, 0, &|| format!("metadata[{i}] '{key}'.value"))?;
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if *a != 0 && a.is_power_of_two() => u64::from(*a),
        Some((_, v)) => {
            return Err(ParseError::BadAlignment {
                value: format!("{v:?}"),
            })
        }
    };

    let mut raw = Vec::with_capacity(n_tensors.min(MAX_PREALLOC));
    let mut names = HashSet::with_capacity(n_tensors.min(MAX_PREALLOC));
    for i in 0..n_tensors {
        let name = r.string(&|| format!("tensor[{i}].name"))?;
        if !names.insert(name.clone()) {
            return Err(ParseError::DuplicateTensor { name });
        }
        let n_dims = r.u32(&|| format!("tensor[{i}] '{name}'.n_dims"))?;
        if n_dims as usize > MAX_DIMS {
            return Err(ParseError::TooManyDims {
                name,
                n_dims,
                limit: MAX_DIMS,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(r.u64(&|| format!("tensor[{i}] '{name}'.dims[{d}]"))?);
        }
        let type_id = r.u32(&|| format!("tensor[{i}] '{name}'.type"))?;
        let offset = r.u64(&|| format!("tensor[{i}] '{name}'.offset"))?;
        raw.push((name, dims, type_id, offset));
    }

    // pos <= buf.len() <= isize::MAX and alignment <= 2^31, so this cannot overflow; keep
    // it checked anyway so a change to either bound cannot make it wrap.
    let data_offset =
        (r.pos as u64)
            .checked_next_multiple_of(alignment)
            .ok_or(ParseError::Truncated {
                field: "tensor data section".into(),
                offset: r.pos as u64,
                needed: alignment,
                file_len: buf.len() as u64,
            })?;
    let file_len = buf.len() as u64;
    let mut tensors = Vec::with_capacity(raw.len());
    for (name, dims, type_id, rel_offset) in raw {
        for (d, &v) in dims.iter().enumerate() {
            // ggml stores dimensions as int64_t.
            if v > i64::MAX as u64 {
                return Err(ParseError::BadDimension {
                    name,
                    dim: d,
                    value: v,
                });
            }
        }
        let n_el = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| ParseError::ElementCountOverflow {
                name: name.clone(),
                dims: dims.clone(),
            })?;
        let Some(ty) = GgmlType::from_id(type_id) else {
            return Err(ParseError::UnsupportedTensorType { name, type_id });
        };
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % ty.block_size() as u64 != 0 {
            return Err(ParseError::NotBlockAligned {
                name,
                ty: ty.name().into(),
                ne0,
                block: ty.block_size(),
            });
        }
        let size = ty
            .bytes_for(n_el)
            .ok_or_else(|| ParseError::ElementCountOverflow {
                name: name.clone(),
                dims: dims.clone(),
            })?;
        if rel_offset % alignment != 0 {
            return Err(ParseError::MisalignedTensor {
                name,
                offset: rel_offset,
                alignment,
            });
        }
        let offset = data_offset.checked_add(rel_offset);
        let end = offset.and_then(|o| o.checked_add(size));
        match (offset, end) {
            (Some(offset), Some(end)) if end <= file_len => {
                tensors.push(TensorInfo {
                    name,
                    dims,
                    ty,
                    offset,
                    size,
                });
            }
            _ => {
                return Err(ParseError::TensorOutOfBounds {
                    name,
                    offset: rel_offset,
                    len: size,
                    data_start: data_offset,
                    file_len,
                })
            }
        }
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}
