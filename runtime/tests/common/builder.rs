//! A byte-level GGUF writer for tests, written from the GGUF spec
//! (ggml `docs/gguf.md`) and ggml's type table, independent of pith's parser.
//!
//! [`Bytes`] writes little-endian fields and remembers where each named field starts, so
//! a test can truncate or overwrite exactly one field. [`GgufBuilder`] lays out a valid
//! file (metadata, tensor infos, aligned data section) on top of it.

/// GGUF metadata value type ids (`enum gguf_type` in ggml's `gguf.h`).
pub mod ty {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// ggml tensor type ids (`enum ggml_type` in `ggml.h`) used by the tests.
pub mod ggml {
    pub const F32: u32 = 0;
    pub const F16: u32 = 1;
    pub const Q4_0: u32 = 2;
    pub const Q4_1: u32 = 3;
    pub const Q5_0: u32 = 6;
    pub const Q5_1: u32 = 7;
    pub const Q8_0: u32 = 8;
    pub const Q8_1: u32 = 9;
    pub const Q2_K: u32 = 10;
    pub const Q3_K: u32 = 11;
    pub const Q4_K: u32 = 12;
    pub const Q5_K: u32 = 13;
    pub const Q6_K: u32 = 14;
    pub const Q8_K: u32 = 15;
    pub const I8: u32 = 24;
    pub const I16: u32 = 25;
    pub const I32: u32 = 26;
    pub const I64: u32 = 27;
    pub const F64: u32 = 28;
    pub const BF16: u32 = 30;

    /// `(block size, bytes per block)` from ggml's `type_traits` table in `ggml.c`.
    pub fn geometry(type_id: u32) -> Option<(u64, u64)> {
        Some(match type_id {
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 => (1, 1),
            I64 | F64 => (1, 8),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2_K => (256, 84),
            Q3_K => (256, 110),
            Q4_K => (256, 144),
            Q5_K => (256, 176),
            Q6_K => (256, 210),
            Q8_K => (256, 292),
            _ => return None,
        })
    }

    /// Bytes of a tensor of `dims` elements of `type_id` (ggml's `ggml_nbytes` for a
    /// contiguous tensor). Panics on an unknown type or a non-block-aligned row: tests
    /// that need those write the infos by hand.
    pub fn nbytes(type_id: u32, dims: &[u64]) -> u64 {
        let (block, size) = geometry(type_id).expect("known ggml type");
        let n: u64 = dims.iter().product();
        assert_eq!(
            n % block,
            0,
            "element count is not a multiple of the block size"
        );
        n / block * size
    }
}

/// A little-endian byte writer that records where named fields start.
#[derive(Default, Clone)]
pub struct Bytes {
    pub buf: Vec<u8>,
    marks: Vec<(String, usize)>,
}

impl Bytes {
    pub fn new() -> Self {
        Self::default()
    }
    /// Records that the field `name` starts at the current position.
    pub fn mark(&mut self, name: impl Into<String>) -> &mut Self {
        self.marks.push((name.into(), self.buf.len()));
        self
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.raw(&[v])
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_le_bytes())
    }
    /// A GGUF string: u64 byte length, then the bytes (need not be UTF-8).
    pub fn str_bytes(&mut self, s: &[u8]) -> &mut Self {
        self.u64(s.len() as u64).raw(s)
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.str_bytes(s.as_bytes())
    }
    /// The GGUF file header: magic, version, tensor count, kv count.
    pub fn header(&mut self, version: u32, n_tensors: u64, n_kv: u64) -> &mut Self {
        self.mark("magic").raw(b"GGUF");
        self.mark("version").u32(version);
        self.mark("tensor_count").u64(n_tensors);
        self.mark("kv_count").u64(n_kv)
    }
    /// Zero bytes up to the next multiple of `align`.
    pub fn pad_to(&mut self, align: u64) -> &mut Self {
        while !(self.buf.len() as u64).is_multiple_of(align) {
            self.buf.push(0);
        }
        self
    }
    /// Where the field `name` starts. Panics if it was never marked.
    pub fn at(&self, name: &str) -> usize {
        self.marks
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no field '{name}' was marked; have {:?}", self.marks))
            .1
    }
    /// All marks in write order.
    pub fn marks(&self) -> &[(String, usize)] {
        &self.marks
    }
    /// The bytes before `pos` (a truncated file).
    pub fn truncated(&self, pos: usize) -> Vec<u8> {
        self.buf[..pos].to_vec()
    }
    /// A copy with the 4 bytes at `pos` replaced by `v`.
    pub fn with_u32(&self, pos: usize, v: u32) -> Vec<u8> {
        let mut b = self.buf.clone();
        b[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
        b
    }
    /// A copy with the 8 bytes at `pos` replaced by `v`.
    pub fn with_u64(&self, pos: usize, v: u64) -> Vec<u8> {
        let mut b = self.buf.clone();
        b[pos..pos + 8].copy_from_slice(&v.to_le_bytes());
        b
    }
}

/// A metadata value as the builder writes it.
#[derive(Debug, Clone)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// Element type id and the elements, each of that type (nested arrays allowed).
    Array(u32, Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    pub fn type_id(&self) -> u32 {
        match self {
            MetaValue::U8(_) => ty::U8,
            MetaValue::I8(_) => ty::I8,
            MetaValue::U16(_) => ty::U16,
            MetaValue::I16(_) => ty::I16,
            MetaValue::U32(_) => ty::U32,
            MetaValue::I32(_) => ty::I32,
            MetaValue::F32(_) => ty::F32,
            MetaValue::Bool(_) => ty::BOOL,
            MetaValue::String(_) => ty::STRING,
            MetaValue::Array(..) => ty::ARRAY,
            MetaValue::U64(_) => ty::U64,
            MetaValue::I64(_) => ty::I64,
            MetaValue::F64(_) => ty::F64,
        }
    }

    /// Writes the value without its type id. Array sub-fields are marked
    /// `<prefix>.element_type`, `<prefix>.len`, `<prefix>.data` and `<prefix>[j]`.
    pub fn write(&self, w: &mut Bytes, prefix: &str) {
        match self {
            MetaValue::U8(v) => w.u8(*v),
            MetaValue::I8(v) => w.raw(&v.to_le_bytes()),
            MetaValue::U16(v) => w.u16(*v),
            MetaValue::I16(v) => w.raw(&v.to_le_bytes()),
            MetaValue::U32(v) => w.u32(*v),
            MetaValue::I32(v) => w.raw(&v.to_le_bytes()),
            MetaValue::F32(v) => w.raw(&v.to_le_bytes()),
            MetaValue::Bool(v) => w.u8(u8::from(*v)),
            MetaValue::String(s) => w.str(s),
            MetaValue::U64(v) => w.u64(*v),
            MetaValue::I64(v) => w.raw(&v.to_le_bytes()),
            MetaValue::F64(v) => w.raw(&v.to_le_bytes()),
            MetaValue::Array(elem, items) => {
                w.mark(format!("{prefix}.element_type")).u32(*elem);
                w.mark(format!("{prefix}.len")).u64(items.len() as u64);
                w.mark(format!("{prefix}.data"));
                for (j, item) in items.iter().enumerate() {
                    assert_eq!(item.type_id(), *elem, "array element of the wrong type");
                    w.mark(format!("{prefix}[{j}]"));
                    item.write(w, &format!("{prefix}[{j}]"));
                }
                w
            }
        };
    }

    /// A nested array value: `depth` levels of one-element arrays around a u8 array.
    pub fn nested(depth: usize) -> MetaValue {
        let mut v = MetaValue::Array(ty::U8, vec![MetaValue::U8(7)]);
        for _ in 1..depth {
            v = MetaValue::Array(ty::ARRAY, vec![v]);
        }
        v
    }
}

/// One tensor for [`GgufBuilder`].
#[derive(Debug, Clone)]
pub struct TensorSpec {
    pub name: String,
    /// ggml order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub type_id: u32,
    pub data: Vec<u8>,
}

/// Writes a valid GGUF file: metadata in order, tensor infos, then each tensor's data at
/// the next multiple of the alignment (as ggml's `gguf_write_to_file` does).
#[derive(Debug, Clone)]
pub struct GgufBuilder {
    pub version: u32,
    pub kvs: Vec<(String, MetaValue)>,
    pub tensors: Vec<TensorSpec>,
}

/// A built file, with the positions of its fields and its layout.
pub struct Built {
    pub bytes: Bytes,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    /// Offsets of each tensor relative to the data section, as written in the infos.
    pub rel_offsets: Vec<u64>,
    pub alignment: u64,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufBuilder {
    /// An empty version-3 file.
    pub fn new() -> Self {
        Self {
            version: 3,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }
    pub fn version(mut self, v: u32) -> Self {
        self.version = v;
        self
    }
    pub fn kv(mut self, key: &str, v: MetaValue) -> Self {
        self.kvs.push((key.to_owned(), v));
        self
    }
    /// Adds a tensor whose data is a deterministic byte pattern of the right size.
    pub fn tensor(mut self, name: &str, dims: &[u64], type_id: u32) -> Self {
        let n = ggml::nbytes(type_id, dims) as usize;
        let seed = self.tensors.len() as u8;
        let data = (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        self.tensors.push(TensorSpec {
            name: name.to_owned(),
            dims: dims.to_vec(),
            type_id,
            data,
        });
        self
    }

    /// The alignment a reader will use: `general.alignment` when it is a valid u32, else
    /// 32 (`GGUF_DEFAULT_ALIGNMENT`).
    pub fn alignment(&self) -> u64 {
        match self.kvs.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, MetaValue::U32(a))) if a.is_power_of_two() => u64::from(*a),
            _ => 32,
        }
    }

    pub fn build(&self) -> Built {
        let align = self.alignment();
        let mut w = Bytes::new();
        w.header(
            self.version,
            self.tensors.len() as u64,
            self.kvs.len() as u64,
        );
        for (i, (k, v)) in self.kvs.iter().enumerate() {
            w.mark(format!("kv[{i}].key")).str(k);
            w.mark(format!("kv[{i}].type")).u32(v.type_id());
            w.mark(format!("kv[{i}].value"));
            v.write(&mut w, &format!("kv[{i}].value"));
        }
        let mut rel_offsets = Vec::new();
        let mut next = 0u64;
        for (i, t) in self.tensors.iter().enumerate() {
            w.mark(format!("tensor[{i}].name")).str(&t.name);
            w.mark(format!("tensor[{i}].n_dims"))
                .u32(t.dims.len() as u32);
            w.mark(format!("tensor[{i}].dims"));
            for &d in &t.dims {
                w.u64(d);
            }
            w.mark(format!("tensor[{i}].type")).u32(t.type_id);
            w.mark(format!("tensor[{i}].offset")).u64(next);
            rel_offsets.push(next);
            next = (next + t.data.len() as u64).next_multiple_of(align);
        }
        w.mark("end_of_infos");
        w.pad_to(align);
        let data_offset = w.buf.len() as u64;
        w.mark("data");
        for (i, t) in self.tensors.iter().enumerate() {
            w.pad_to(align);
            assert_eq!(w.buf.len() as u64, data_offset + rel_offsets[i]);
            w.mark(format!("tensor[{i}].data")).raw(&t.data);
        }
        // ggml pads the last tensor too.
        if !self.tensors.is_empty() {
            w.pad_to(align);
        }
        Built {
            bytes: w,
            data_offset,
            rel_offsets,
            alignment: align,
        }
    }
}

impl Built {
    pub fn at(&self, name: &str) -> usize {
        self.bytes.at(name)
    }
    pub fn buf(&self) -> &[u8] {
        &self.bytes.buf
    }
}
