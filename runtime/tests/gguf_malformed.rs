//! A corpus of malformed GGUF files, each of which must yield one specific
//! [`ParseError`] variant naming the field it is about, both from [`parse`] over the bytes
//! and from [`GgufFile::open`] over a file (the mmap path).
//!
//! Files are written by the byte-level builder in `common/`, which knows nothing of the
//! parser; a valid control file checks that each corruption is what makes it fail.

mod common;

use std::path::Path;

use common::builder::{ggml, ty, Bytes, GgufBuilder, MetaValue};
use pith_runtime::gguf::{
    parse, GgufError, GgufFile, ParseError, Value, MAX_ARRAY_LEN, MAX_COUNT, MAX_DIMS, MAX_NESTING,
    MAX_STRING_LEN,
};

/// One corpus entry: a file and the error it must produce.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    expect: &'static str,
    check: Box<dyn Fn(&ParseError) -> bool>,
}

macro_rules! case {
    ($name:expr, $bytes:expr, $($pat:tt)+) => {
        Case {
            name: $name,
            bytes: $bytes,
            expect: stringify!($($pat)+),
            check: Box::new(move |e: &ParseError| matches!(e, $($pat)+)),
        }
    };
}

/// A file whose first kv is long enough (45 bytes) that the minimum-size checks on up to
/// three kvs and one tensor pass, so truncating a later field hits that field.
fn base() -> GgufBuilder {
    GgufBuilder::new().kv("general.architecture", MetaValue::String("llama".into()))
}

/// `base()` plus one kv `key = v` (kv index 1).
fn with_kv(key: &str, v: MetaValue) -> Bytes {
    base().kv(key, v).build().bytes
}

/// `base()` plus one valid tensor `w` of shape `[64, 2]` F32 (tensor index 0).
fn with_tensor() -> Bytes {
    base().tensor("w", &[64, 2], ggml::F32).build().bytes
}

/// A file of `base()` metadata and one hand-written tensor info (any dims, type and
/// offset, valid or not), with `data_len` bytes after the aligned data section start.
fn raw_tensor(name: &[u8], dims: &[u64], type_id: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let b = base();
    let mut w = Bytes::new();
    w.header(3, 1, b.kvs.len() as u64);
    for (k, v) in &b.kvs {
        w.str(k).u32(v.type_id());
        v.write(&mut w, "v");
    }
    w.str_bytes(name).u32(dims.len() as u32);
    for &d in dims {
        w.u64(d);
    }
    w.u32(type_id).u64(offset);
    w.pad_to(32);
    w.raw(&vec![0; data_len]);
    w.buf
}

fn patch(mut b: Vec<u8>, pos: usize, with: &[u8]) -> Vec<u8> {
    b[pos..pos + with.len()].copy_from_slice(with);
    b
}

fn header_only(version: u32) -> Bytes {
    let mut w = Bytes::new();
    w.header(version, 0, 0);
    w
}

/// Truncation inside each kind of scalar value: kv[1] `test.<kind>` cut one byte short.
fn truncated_values() -> Vec<Case> {
    let kinds: Vec<(&'static str, MetaValue, usize)> = vec![
        ("u8", MetaValue::U8(1), 1),
        ("i8", MetaValue::I8(-1), 1),
        ("u16", MetaValue::U16(1), 2),
        ("i16", MetaValue::I16(-1), 2),
        ("u32", MetaValue::U32(1), 4),
        ("i32", MetaValue::I32(-1), 4),
        ("f32", MetaValue::F32(1.5), 4),
        ("bool", MetaValue::Bool(true), 1),
        ("u64", MetaValue::U64(1), 8),
        ("i64", MetaValue::I64(-1), 8),
        ("f64", MetaValue::F64(1.5), 8),
        // 8-byte length + 5 bytes: cut inside the bytes.
        ("string", MetaValue::String("hello".into()), 13),
    ];
    kinds
        .into_iter()
        .map(|(kind, v, size)| {
            let key = format!("test.{kind}");
            let b = with_kv(&key, v);
            let bytes = b.truncated(b.at("kv[1].value") + size - 1);
            let name: &'static str = Box::leak(format!("truncated {kind} value").into_boxed_str());
            let want: &'static str =
                Box::leak(format!("metadata[1] '{key}'.value").into_boxed_str());
            case!(name, bytes, ParseError::Truncated { field, .. } if field == want)
        })
        .collect()
}

fn corpus() -> Vec<Case> {
    let mut c = Vec::new();

    // --- Truncation in every section ---------------------------------------------------
    let h = header_only(3);
    c.push(case!("truncated magic", b"GG".to_vec(),
        ParseError::Truncated { field, offset: 0, needed: 4, file_len: 2 } if field == "magic"));
    c.push(case!("truncated version", h.truncated(6),
        ParseError::Truncated { field, offset: 4, .. } if field == "version"));
    c.push(case!("truncated tensor count", h.truncated(11),
        ParseError::Truncated { field, offset: 8, .. } if field == "tensor_count"));
    c.push(case!("truncated kv count", h.truncated(21),
        ParseError::Truncated { field, offset: 16, .. } if field == "metadata_kv_count"));
    let b = with_kv("test.key", MetaValue::U8(1));
    c.push(
        case!("truncated key length", b.truncated(b.at("kv[1].key") + 4),
        ParseError::Truncated { field, needed: 8, .. } if field == "metadata[1].key"),
    );
    c.push(
        case!("truncated key bytes", b.truncated(b.at("kv[1].key") + 8 + 3),
        ParseError::Truncated { field, needed: 8, .. } if field == "metadata[1].key"),
    );
    c.push(
        case!("truncated value type", b.truncated(b.at("kv[1].type") + 2),
        ParseError::Truncated { field, needed: 4, .. } if field == "metadata[1] 'test.key'.type"),
    );
    c.extend(truncated_values());
    let arr = with_kv(
        "test.arr",
        MetaValue::Array(ty::U32, (0..4).map(MetaValue::U32).collect()),
    );
    c.push(case!("truncated array element type", arr.truncated(arr.at("kv[1].value.element_type") + 2),
        ParseError::Truncated { field, .. } if field == "metadata[1] 'test.arr'.value.element_type"));
    c.push(
        case!("truncated array length", arr.truncated(arr.at("kv[1].value.len") + 5),
        ParseError::Truncated { field, .. } if field == "metadata[1] 'test.arr'.value.len"),
    );
    // The body is checked against the declared length before it is read.
    c.push(case!("truncated fixed-size array body", arr.truncated(arr.at("kv[1].value.data") + 10),
        ParseError::Truncated { field, needed: 16, .. } if field == "metadata[1] 'test.arr'.value.len"));
    let sarr = with_kv(
        "test.sarr",
        MetaValue::Array(
            ty::STRING,
            vec![
                MetaValue::String("ab".into()),
                MetaValue::String("cdef".into()),
            ],
        ),
    );
    c.push(case!("truncated string array element", sarr.truncated(sarr.at("kv[1].value[1]") + 8 + 2),
        ParseError::Truncated { field, needed: 4, .. } if field == "metadata[1] 'test.sarr'.value[1]"));
    // The first inner array is long enough for the outer length check (12 bytes per
    // element) to pass when the second is cut short.
    let nested = with_kv(
        "test.nest",
        MetaValue::Array(
            ty::ARRAY,
            vec![
                MetaValue::Array(ty::U8, (0..20).map(MetaValue::U8).collect()),
                MetaValue::Array(ty::U8, vec![MetaValue::U8(2)]),
            ],
        ),
    );
    c.push(case!("truncated nested array header", nested.truncated(nested.at("kv[1].value[1].element_type") + 3),
        ParseError::Truncated { field, .. } if field == "metadata[1] 'test.nest'.value[1].element_type"));
    let t = with_tensor();
    c.push(
        case!("truncated tensor name", t.truncated(t.at("tensor[0].name") + 4),
        ParseError::Truncated { field, .. } if field == "tensor[0].name"),
    );
    c.push(
        case!("truncated tensor n_dims", t.truncated(t.at("tensor[0].n_dims") + 1),
        ParseError::Truncated { field, .. } if field == "tensor[0] 'w'.n_dims"),
    );
    c.push(
        case!("truncated tensor dims", t.truncated(t.at("tensor[0].dims") + 8 + 3),
        ParseError::Truncated { field, .. } if field == "tensor[0] 'w'.dims[1]"),
    );
    c.push(
        case!("truncated tensor type", t.truncated(t.at("tensor[0].type") + 3),
        ParseError::Truncated { field, .. } if field == "tensor[0] 'w'.type"),
    );
    c.push(
        case!("truncated tensor offset", t.truncated(t.at("tensor[0].offset") + 7),
        ParseError::Truncated { field, .. } if field == "tensor[0] 'w'.offset"),
    );
    c.push(
        case!("truncated tensor data", t.truncated(t.at("tensor[0].data") + 64 * 2 * 4 - 1),
        ParseError::TensorOutOfBounds { name, offset: 0, len: 512, .. } if name == "w"),
    );
    c.push(
        case!("missing data section", t.truncated(t.at("end_of_infos")),
        ParseError::TensorOutOfBounds { name, len: 512, .. } if name == "w"),
    );

    // --- Huge counts and lengths -----------------------------------------------------------
    let b = with_kv("test.key", MetaValue::U8(1));
    c.push(case!("kv count u64::MAX", b.with_u64(b.at("kv_count"), u64::MAX),
        ParseError::CountTooLarge { field, count: u64::MAX, limit: MAX_COUNT } if field == "metadata_kv_count"));
    c.push(case!("kv count at the limit, beyond the file", b.with_u64(b.at("kv_count"), MAX_COUNT),
        ParseError::Truncated { field, needed, .. } if field == "metadata_kv_count" && *needed == 13 * MAX_COUNT));
    c.push(
        case!("tensor count u64::MAX", b.with_u64(b.at("tensor_count"), u64::MAX),
        ParseError::CountTooLarge { field, count: u64::MAX, .. } if field == "tensor_count"),
    );
    c.push(
        case!("tensor count beyond the file", b.with_u64(b.at("tensor_count"), 1 << 20),
        ParseError::Truncated { field, .. } if field == "tensor_count"),
    );
    c.push(
        case!("array length u64::MAX", arr.with_u64(arr.at("kv[1].value.len"), u64::MAX),
        ParseError::CountTooLarge { field, count: u64::MAX, limit: MAX_ARRAY_LEN }
            if field == "metadata[1] 'test.arr'.value.len"),
    );
    c.push(case!("array length at the limit, beyond the file", arr.with_u64(arr.at("kv[1].value.len"), MAX_ARRAY_LEN),
        ParseError::Truncated { field, needed, .. }
            if field == "metadata[1] 'test.arr'.value.len" && *needed == 4 * MAX_ARRAY_LEN));
    c.push(case!("string array length u64::MAX / 8 + 1", sarr.with_u64(sarr.at("kv[1].value.len"), u64::MAX / 8 + 1),
        ParseError::CountTooLarge { field, .. } if field == "metadata[1] 'test.sarr'.value.len"));
    c.push(case!("nested array length u64::MAX", nested.with_u64(nested.at("kv[1].value.len"), u64::MAX),
        ParseError::CountTooLarge { field, .. } if field == "metadata[1] 'test.nest'.value.len"));
    let s = with_kv("test.str", MetaValue::String("hello".into()));
    c.push(
        case!("string length u64::MAX", s.with_u64(s.at("kv[1].value"), u64::MAX),
        ParseError::StringTooLong { field, len: u64::MAX, limit: MAX_STRING_LEN }
            if field == "metadata[1] 'test.str'.value"),
    );
    c.push(case!("string length at the limit, beyond the file", s.with_u64(s.at("kv[1].value"), MAX_STRING_LEN),
        ParseError::Truncated { field, needed, .. }
            if field == "metadata[1] 'test.str'.value" && *needed == MAX_STRING_LEN));
    c.push(case!("key length u64::MAX - 1", s.with_u64(s.at("kv[1].key"), u64::MAX - 1),
        ParseError::StringTooLong { field, len, .. } if field == "metadata[1].key" && *len == u64::MAX - 1));
    c.push(
        case!("tensor name length u64::MAX", t.with_u64(t.at("tensor[0].name"), u64::MAX),
        ParseError::StringTooLong { field, .. } if field == "tensor[0].name"),
    );
    c.push(
        case!("tensor n_dims u32::MAX", t.with_u32(t.at("tensor[0].n_dims"), u32::MAX),
        ParseError::TooManyDims { name, n_dims: u32::MAX, limit: MAX_DIMS } if name == "w"),
    );

    // --- Dimensions --------------------------------------------------------------------------
    c.push(case!("dimension product overflows u64", raw_tensor(b"w", &[1 << 32, 1 << 32], ggml::F32, 0, 0),
        ParseError::ElementCountOverflow { name, dims } if name == "w" && dims == &[1u64 << 32, 1 << 32]));
    c.push(
        case!("element count above i64::MAX", raw_tensor(b"w", &[1 << 62, 2], ggml::F32, 0, 0),
        ParseError::ElementCountOverflow { name, .. } if name == "w"),
    );
    c.push(
        case!("byte size overflows u64", raw_tensor(b"w", &[1 << 62], ggml::F32, 0, 0),
        ParseError::ElementCountOverflow { name, .. } if name == "w"),
    );
    c.push(
        case!("dimension above i64::MAX", raw_tensor(b"w", &[1 << 63], ggml::F32, 0, 0),
        ParseError::BadDimension { name, dim: 0, value } if name == "w" && *value == 1 << 63),
    );
    c.push(
        case!("second dimension u64::MAX", raw_tensor(b"w", &[4, u64::MAX], ggml::F32, 0, 64),
        ParseError::BadDimension { name, dim: 1, value: u64::MAX } if name == "w"),
    );
    c.push(
        case!("five dimensions", raw_tensor(b"w", &[1, 1, 1, 1, 1], ggml::F32, 0, 64),
        ParseError::TooManyDims { name, n_dims: 5, limit: 4 } if name == "w"),
    );
    c.push(case!("row not a whole number of blocks", raw_tensor(b"w", &[33], ggml::Q4_0, 0, 64),
        ParseError::NotBlockAligned { name, ne0: 33, block: 32, ty } if name == "w" && ty == "Q4_0"));

    // --- Offsets -----------------------------------------------------------------------------
    c.push(case!("offset past the end", raw_tensor(b"w", &[8], ggml::F32, 1 << 20, 64),
        ParseError::TensorOutOfBounds { name, offset, len: 32, .. } if name == "w" && *offset == 1 << 20));
    c.push(
        case!("offset + data start overflows", raw_tensor(b"w", &[8], ggml::F32, !31, 64),
        ParseError::TensorOutOfBounds { name, .. } if name == "w"),
    );
    let near_end = {
        let f = raw_tensor(b"w", &[64], ggml::F32, 0, 0);
        let data_offset = f.len() as u64;
        (u64::MAX - data_offset) & !31
    };
    c.push(
        case!("offset + size overflows", raw_tensor(b"w", &[64], ggml::F32, near_end, 0),
        ParseError::TensorOutOfBounds { name, len: 256, .. } if name == "w"),
    );
    c.push(
        case!("misaligned offset", raw_tensor(b"w", &[8], ggml::F32, 4, 64),
        ParseError::MisalignedTensor { name, offset: 4, alignment: 32 } if name == "w"),
    );
    let al64 = base()
        .kv("general.alignment", MetaValue::U32(64))
        .tensor("w", &[8], ggml::F32)
        .build()
        .bytes;
    c.push(case!("offset misaligned for general.alignment = 64", al64.with_u64(al64.at("tensor[0].offset"), 32),
        ParseError::MisalignedTensor { name, offset: 32, alignment: 64 } if name == "w"));

    // --- Bad UTF-8 ---------------------------------------------------------------------------
    let b = with_kv("test.XY", MetaValue::U8(1));
    c.push(
        case!("bad UTF-8 in key", patch(b.buf.clone(), b.at("kv[1].key") + 8 + 5, &[0xff, 0xfe]),
        ParseError::BadUtf8 { field } if field == "metadata[1].key"),
    );
    c.push(case!("bad UTF-8 in string value", patch(s.buf.clone(), s.at("kv[1].value") + 8 + 1, &[0xc3, 0x28]),
        ParseError::BadUtf8 { field } if field == "metadata[1] 'test.str'.value"));
    c.push(
        case!("bad UTF-8 in string array", patch(sarr.buf.clone(), sarr.at("kv[1].value[1]") + 8, &[0xed, 0xa0, 0x80]),
        ParseError::BadUtf8 { field } if field == "metadata[1] 'test.sarr'.value[1]"),
    );
    c.push(
        case!("bad UTF-8 in tensor name", patch(t.buf.clone(), t.at("tensor[0].name") + 8, &[0x80]),
        ParseError::BadUtf8 { field } if field == "tensor[0].name"),
    );

    // --- Types, nesting ----------------------------------------------------------------------
    c.push(case!("arrays nested too deep", with_kv("test.deep", MetaValue::nested(MAX_NESTING + 1)).buf,
        ParseError::NestingTooDeep { field, limit: MAX_NESTING } if field == "metadata[1] 'test.deep'.value[0][0][0][0]"));
    let b = with_kv("test.key", MetaValue::U8(1));
    c.push(case!("unknown value type 13", b.with_u32(b.at("kv[1].type"), 13),
        ParseError::UnknownValueType { field, type_id: 13 } if field == "metadata[1] 'test.key'.type"));
    c.push(case!("unknown value type u32::MAX", b.with_u32(b.at("kv[1].type"), u32::MAX),
        ParseError::UnknownValueType { field, type_id: u32::MAX } if field == "metadata[1] 'test.key'.type"));
    c.push(case!("unknown array element type", arr.with_u32(arr.at("kv[1].value.element_type"), 13),
        ParseError::UnknownValueType { field, type_id: 13 } if field == "metadata[1] 'test.arr'.value.element_type"));
    c.push(case!("unknown nested array element type", nested.with_u32(nested.at("kv[1].value[1].element_type"), 99),
        ParseError::UnknownValueType { field, type_id: 99 } if field == "metadata[1] 'test.nest'.value[1].element_type"));
    // 4 and 5 were Q4_2 and Q4_3, removed from ggml; 39 is past GGML_TYPE_COUNT.
    c.push(
        case!("removed tensor type 4", t.with_u32(t.at("tensor[0].type"), 4),
        ParseError::UnsupportedTensorType { name, type_id: 4 } if name == "w"),
    );
    c.push(
        case!("unknown tensor type 39", t.with_u32(t.at("tensor[0].type"), 39),
        ParseError::UnsupportedTensorType { name, type_id: 39 } if name == "w"),
    );
    c.push(
        case!("unknown tensor type u32::MAX", t.with_u32(t.at("tensor[0].type"), u32::MAX),
        ParseError::UnsupportedTensorType { name, type_id: u32::MAX } if name == "w"),
    );

    // --- general.alignment -------------------------------------------------------------------
    for (label, v, want) in [
        ("alignment 0", MetaValue::U32(0), Value::U32(0)),
        ("alignment 3", MetaValue::U32(3), Value::U32(3)),
        (
            "alignment 2^31 + 1",
            MetaValue::U32((1 << 31) + 1),
            Value::U32((1 << 31) + 1),
        ),
        ("alignment of type u64", MetaValue::U64(32), Value::U64(32)),
        (
            "alignment of type string",
            MetaValue::String("32".into()),
            Value::String("32".into()),
        ),
    ] {
        let want = format!("{want:?}");
        c.push(Case {
            name: label,
            bytes: base()
                .kv("general.alignment", v)
                .tensor("w", &[8], ggml::F32)
                .build()
                .bytes
                .buf,
            expect: "ParseError::BadAlignment { value } (the value as read)",
            check: Box::new(
                move |e| matches!(e, ParseError::BadAlignment { value } if *value == want),
            ),
        });
    }

    // --- Duplicates, empty key ---------------------------------------------------------------
    c.push(case!("duplicate key", base().kv("a.b", MetaValue::U8(1)).kv("a.b", MetaValue::U8(2)).build().bytes.buf,
        ParseError::DuplicateKey { key } if key == "a.b"));
    c.push(case!("duplicate tensor name",
        base().tensor("w", &[8], ggml::F32).tensor("w", &[8], ggml::F32).build().bytes.buf,
        ParseError::DuplicateTensor { name } if name == "w"));
    c.push(case!("empty key", with_kv("", MetaValue::U8(1)).buf,
        ParseError::EmptyKey { field } if field == "metadata[1].key"));

    // --- Magic and version -------------------------------------------------------------------
    c.push(case!("bad magic", patch(h.buf.clone(), 0, b"GGML"),
        ParseError::BadMagic { found } if found == b"GGML"));
    c.push(case!(
        "zero bytes",
        vec![0; 64],
        ParseError::BadMagic {
            found: [0, 0, 0, 0]
        }
    ));
    for (label, v) in [
        ("version 0", 0u32),
        ("version 1", 1),
        ("version 4", 4),
        ("version u32::MAX", u32::MAX),
    ] {
        c.push(Case {
            name: label,
            bytes: header_only(v).buf,
            expect: "ParseError::UnsupportedVersion { version }",
            check: Box::new(
                move |e| matches!(e, ParseError::UnsupportedVersion { version } if *version == v),
            ),
        });
    }
    c.push(case!(
        "byte-swapped version 3",
        header_only(3u32.swap_bytes()).buf,
        ParseError::ByteSwapped {
            version: 0x0300_0000
        }
    ));
    c.push(case!(
        "byte-swapped version 2",
        header_only(2u32.swap_bytes()).buf,
        ParseError::ByteSwapped {
            version: 0x0200_0000
        }
    ));
    c
}

/// Checks one case through `parse` and through `GgufFile::open` on a file in `dir`.
fn check_case(case: &Case, dir: &Path, i: usize) -> Result<(), String> {
    let show = |r: &dyn std::fmt::Debug| {
        format!("case '{}': expected {}, got {r:?}", case.name, case.expect)
    };
    match parse(&case.bytes) {
        Err(e) if (case.check)(&e) => {}
        other => return Err(show(&other)),
    }
    let path = dir.join(format!("case{i:03}.gguf"));
    std::fs::write(&path, &case.bytes).map_err(|e| e.to_string())?;
    match GgufFile::open(&path) {
        Err(GgufError::Parse { path: p, source }) if p == path && (case.check)(&source) => {
            let msg = GgufError::Parse { path: p, source }.to_string();
            if !msg.contains(&*path.to_string_lossy()) {
                return Err(format!(
                    "case '{}': message does not name the file: {msg}",
                    case.name
                ));
            }
            Ok(())
        }
        Err(e) => Err(show(&e)),
        Ok(_) => Err(show(&"Ok(GgufFile)")),
    }
}

#[test]
fn corpus_yields_the_specific_error() {
    let corpus = corpus();
    assert!(corpus.len() >= 25, "corpus has only {} cases", corpus.len());
    let dir = tempfile::tempdir().unwrap();
    let failures: Vec<String> = corpus
        .iter()
        .enumerate()
        .filter_map(|(i, c)| check_case(c, dir.path(), i).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} malformed files rejected with the expected error",
        corpus.len()
    );
}

/// The files the corpus corrupts are valid before corruption, so each case fails for
/// the reason it names.
#[test]
fn uncorrupted_sources_parse() {
    let mut sources = vec![
        with_tensor().buf,
        header_only(2).buf,
        header_only(3).buf,
        with_kv("test.deep", MetaValue::nested(MAX_NESTING)).buf,
        raw_tensor(b"w", &[8], ggml::F32, 0, 32),
        raw_tensor(b"w", &[1, 1, 1, 1], ggml::F32, 0, 32),
        raw_tensor(b"w", &[32], ggml::Q4_0, 0, 18),
        base()
            .kv("general.alignment", MetaValue::U32(64))
            .tensor("w", &[8], ggml::F32)
            .build()
            .bytes
            .buf,
        base()
            .kv("general.alignment", MetaValue::U32(1))
            .tensor("w", &[8], ggml::F32)
            .build()
            .bytes
            .buf,
        base()
            .tensor("w", &[8], ggml::F32)
            .tensor("v", &[8], ggml::F32)
            .build()
            .bytes
            .buf,
    ];
    for (key, v) in [
        ("test.key", MetaValue::U8(1)),
        ("test.str", MetaValue::String("hello".into())),
        (
            "test.arr",
            MetaValue::Array(ty::U32, (0..4).map(MetaValue::U32).collect()),
        ),
    ] {
        sources.push(with_kv(key, v).buf);
    }
    for (i, s) in sources.iter().enumerate() {
        if let Err(e) = parse(s) {
            panic!("source {i} should parse: {e}");
        }
    }
}

#[test]
fn open_nonexistent_path_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-model.gguf");
    let err = GgufFile::open(&path)
        .err()
        .expect("opening a missing file must fail");
    assert!(
        matches!(&err, GgufError::Io { path: p, source } if p == &path
        && source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such-model.gguf"), "{err}");
}

#[test]
fn open_empty_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.gguf");
    std::fs::write(&path, b"").unwrap();
    let err = GgufFile::open(&path)
        .err()
        .expect("an empty file must fail");
    assert!(
        matches!(&err, GgufError::Parse { path: p, source: ParseError::Truncated { field, file_len: 0, .. } }
        if p == &path && field == "magic"),
        "{err:?}"
    );
    assert!(err.to_string().contains("empty.gguf"), "{err}");
    // The read-into-memory path gives the same error.
    let err = GgufFile::read(&path)
        .err()
        .expect("an empty file must fail");
    assert!(
        matches!(
            &err,
            GgufError::Parse {
                source: ParseError::Truncated { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn open_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = GgufFile::open(dir.path())
        .err()
        .expect("a directory is not a GGUF file");
    assert!(
        matches!(&err, GgufError::Io { path, .. } if path == dir.path()),
        "{err:?}"
    );
}

/// A real big-endian file, written by gguf-py (`GGUFWriter(endianess=BIG)`), is reported
/// as byte-swapped rather than parsed as garbage.
#[test]
fn big_endian_file_from_gguf_py() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("be.gguf");
    let script = r#"
import sys
try:
    import gguf, numpy as np
except ImportError as e:
    sys.exit(f"python3 needs the gguf and numpy packages (pip install gguf==0.19.0 numpy): {e}")
w = gguf.GGUFWriter(sys.argv[1], "llama", endianess=gguf.GGUFEndian.BIG)
w.add_uint32("test.value", 7)
w.add_tensor("w", np.arange(8, dtype=np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 must be on PATH (CI installs it with gguf==0.19.0 and numpy)");
    assert!(
        out.status.success(),
        "gguf-py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..4], b"GGUF", "gguf-py writes the magic unswapped");
    let err = parse(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            ParseError::ByteSwapped {
                version: 0x0300_0000
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("big-endian"), "{err}");
}

/// Writes the corpus above, plus the valid files it starts from, as the seed corpus of
/// the `gguf_parse` fuzz target (see `fuzz/README.md`):
/// `PITH_FUZZ_SEEDS=fuzz/corpus/gguf_parse cargo test -p pith-runtime --test gguf_malformed -- --ignored`.
#[test]
#[ignore = "writes the fuzz seed corpus; needs PITH_FUZZ_SEEDS=<dir>"]
fn write_fuzz_seeds() {
    let dir =
        std::env::var_os("PITH_FUZZ_SEEDS").expect("set PITH_FUZZ_SEEDS to the seed directory");
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let valid = [
        with_tensor().buf,
        header_only(2).buf,
        with_kv("test.deep", MetaValue::nested(MAX_NESTING)).buf,
        with_kv(
            "test.arr",
            MetaValue::Array(ty::STRING, vec![MetaValue::String("ab".into())]),
        )
        .buf,
        base()
            .kv("general.alignment", MetaValue::U32(64))
            .tensor("w", &[32, 2], ggml::Q8_0)
            .build()
            .bytes
            .buf,
        base()
            .tensor("a", &[256], ggml::Q4_K)
            .tensor("b", &[8, 1, 1, 2], ggml::F16)
            .build()
            .bytes
            .buf,
    ];
    let malformed = corpus().into_iter().map(|c| c.bytes);
    for (i, bytes) in valid.into_iter().chain(malformed).enumerate() {
        std::fs::write(dir.join(format!("seed{i:03}.gguf")), bytes).unwrap();
    }
}

#[global_allocator]
static ALLOC: common::alloc_count::Counting = common::alloc_count::Counting;

/// A count that fits in the file but whose first entry is bad must not make the reader
/// reserve memory for all the entries it claims: the in-memory entries are several times
/// larger than their smallest encoding (regression: `Vec::with_capacity(count)`).
#[test]
fn forged_counts_do_not_reserve_memory() {
    const LEN: usize = 1 << 22;
    let header = |n_tensors: u64, n_kv: u64| {
        let mut w = Bytes::new();
        w.header(3, n_tensors, n_kv);
        w
    };
    let fill = |mut w: Bytes, byte: u8| {
        let n = LEN - w.buf.len();
        w.raw(&vec![byte; n]);
        w.buf
    };
    let body = (LEN - 24) as u64;
    let array = |elem: u32, per: u64| {
        let mut w = header(0, 1);
        w.str("k").u32(ty::ARRAY).u32(elem);
        let n = (LEN - w.buf.len() - 8) as u64 / per;
        w.u64(n);
        fill(w, 0xff)
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // n_kv kvs of 13 bytes fit; the first key is empty.
        ("kv count", fill(header(0, body / 13), 0)),
        // Tensors of 24 zero bytes parse until the second repeats the empty name.
        ("tensor count", fill(header(body / 24, 0), 0)),
        // The first string's length is u64::MAX.
        ("string array length", array(ty::STRING, 8)),
        // The first nested array has element type 0xffffffff.
        ("nested array length", array(ty::ARRAY, 12)),
    ];
    for (what, bytes) in cases {
        assert_eq!(bytes.len(), LEN);
        let (r, peak) = common::alloc_count::peak_of(|| parse(&bytes));
        assert!(r.is_err(), "{what}: {r:?}");
        eprintln!("{what}: peak {peak} bytes for a {LEN}-byte file");
        assert!(
            peak < LEN / 2,
            "{what}: parse of a {LEN}-byte file allocated {peak} bytes at its peak ({r:?})"
        );
    }
}
