//! Differential test: pith's GGUF reader against candle's
//! (`candle_core::quantized::gguf_file::Content::read`, candle-core 0.11) on the real
//! Gemma 3 270M model and on builder-made files with every value type. Metadata (every
//! key and value) and tensor infos (name, shape, ggml type, offset, size) must agree.
//!
//! candle's shapes are in row-major order (ggml's dims reversed) and its offsets are
//! relative to its `tensor_data_offset`; pith's are ggml order and absolute.

mod common;

use std::collections::HashMap;
use std::io::Cursor;

use candle_core::quantized::gguf_file::{Content, Value as CValue};
use candle_core::quantized::GgmlDType;
use common::builder::{ggml, ty, GgufBuilder, MetaValue};
use pith_runtime::gguf::{parse, Array, Header, Value};
use pith_runtime::quant::GgmlType;
use proptest::prelude::*;

/// Whether pith's value equals candle's (floats by bits; arrays element-wise, nested).
fn value_eq(ours: &Value, c: &CValue) -> bool {
    match (ours, c) {
        (Value::U8(a), CValue::U8(b)) => a == b,
        (Value::I8(a), CValue::I8(b)) => a == b,
        (Value::U16(a), CValue::U16(b)) => a == b,
        (Value::I16(a), CValue::I16(b)) => a == b,
        (Value::U32(a), CValue::U32(b)) => a == b,
        (Value::I32(a), CValue::I32(b)) => a == b,
        (Value::U64(a), CValue::U64(b)) => a == b,
        (Value::I64(a), CValue::I64(b)) => a == b,
        (Value::F32(a), CValue::F32(b)) => a.to_bits() == b.to_bits(),
        (Value::F64(a), CValue::F64(b)) => a.to_bits() == b.to_bits(),
        (Value::Bool(a), CValue::Bool(b)) => a == b,
        (Value::String(a), CValue::String(b)) => a == b,
        (Value::Array(a), CValue::Array(b)) => array_eq(a, b),
        _ => false,
    }
}

fn array_eq(ours: &Array, c: &[CValue]) -> bool {
    // Element-wise through the scalar comparison: candle keeps arrays as Vec<Value>.
    fn all<T: Copy>(v: &[T], c: &[CValue], f: impl Fn(T) -> Value) -> bool {
        v.len() == c.len() && v.iter().zip(c).all(|(&a, b)| value_eq(&f(a), b))
    }
    match ours {
        Array::U8(v) => all(v, c, Value::U8),
        Array::I8(v) => all(v, c, Value::I8),
        Array::U16(v) => all(v, c, Value::U16),
        Array::I16(v) => all(v, c, Value::I16),
        Array::U32(v) => all(v, c, Value::U32),
        Array::I32(v) => all(v, c, Value::I32),
        Array::U64(v) => all(v, c, Value::U64),
        Array::I64(v) => all(v, c, Value::I64),
        Array::F32(v) => all(v, c, Value::F32),
        Array::F64(v) => all(v, c, Value::F64),
        Array::Bool(v) => all(v, c, Value::Bool),
        Array::String(v) => {
            v.len() == c.len()
                && v.iter()
                    .zip(c)
                    .all(|(a, b)| matches!(b, CValue::String(s) if s == a))
        }
        Array::Array(v) => {
            v.len() == c.len()
                && v.iter()
                    .zip(c)
                    .all(|(a, b)| matches!(b, CValue::Array(x) if array_eq(a, x)))
        }
    }
}

fn candle_type(t: GgmlDType) -> GgmlType {
    match t {
        GgmlDType::F32 => GgmlType::F32,
        GgmlDType::F16 => GgmlType::F16,
        GgmlDType::BF16 => GgmlType::BF16,
        GgmlDType::Q4_0 => GgmlType::Q4_0,
        GgmlDType::Q4_1 => GgmlType::Q4_1,
        GgmlDType::Q5_0 => GgmlType::Q5_0,
        GgmlDType::Q5_1 => GgmlType::Q5_1,
        GgmlDType::Q8_0 => GgmlType::Q8_0,
        GgmlDType::Q8_1 => GgmlType::Q8_1,
        GgmlDType::Q2K => GgmlType::Q2K,
        GgmlDType::Q3K => GgmlType::Q3K,
        GgmlDType::Q4K => GgmlType::Q4K,
        GgmlDType::Q5K => GgmlType::Q5K,
        GgmlDType::Q6K => GgmlType::Q6K,
        GgmlDType::Q8K => GgmlType::Q8K,
    }
}

/// Asserts that pith's header and candle's content describe the same file; returns the
/// number of (keys, tensors) compared.
fn assert_same(what: &str, h: &Header, c: &Content) -> (usize, usize) {
    assert_eq!(
        h.metadata.len(),
        c.metadata.len(),
        "{what}: number of metadata keys"
    );
    for (k, v) in &h.metadata {
        let cv = c
            .metadata
            .get(k)
            .unwrap_or_else(|| panic!("{what}: candle has no key '{k}'"));
        if !value_eq(v, cv) {
            let show = |s: String| s.chars().take(300).collect::<String>();
            panic!(
                "{what}: key '{k}' differs:\n pith:   {}\n candle: {}",
                show(format!("{v:?}")),
                show(format!("{cv:?}"))
            );
        }
    }
    assert_eq!(
        h.data_offset, c.tensor_data_offset,
        "{what}: data section offset"
    );
    assert_eq!(
        h.tensors.len(),
        c.tensor_infos.len(),
        "{what}: number of tensors"
    );
    for t in &h.tensors {
        let ct = c
            .tensor_infos
            .get(&t.name)
            .unwrap_or_else(|| panic!("{what}: candle has no tensor '{}'", t.name));
        let mut shape: Vec<u64> = ct.shape.dims().iter().map(|&d| d as u64).collect();
        shape.reverse();
        assert_eq!(t.dims, shape, "{what}: tensor '{}' dims", t.name);
        assert_eq!(
            t.ty,
            candle_type(ct.ggml_dtype),
            "{what}: tensor '{}' type",
            t.name
        );
        assert_eq!(
            t.offset,
            c.tensor_data_offset + ct.offset,
            "{what}: tensor '{}' offset",
            t.name
        );
        let candle_size =
            ct.shape.elem_count() / ct.ggml_dtype.block_size() * ct.ggml_dtype.type_size();
        assert_eq!(
            t.size, candle_size as u64,
            "{what}: tensor '{}' size",
            t.name
        );
    }
    (h.metadata.len(), h.tensors.len())
}

fn both(what: &str, bytes: &[u8]) -> (usize, usize) {
    let h = parse(bytes).unwrap_or_else(|e| panic!("{what}: pith rejected it: {e}"));
    let c = Content::read(&mut Cursor::new(bytes))
        .unwrap_or_else(|e| panic!("{what}: candle rejected it: {e}"));
    assert_same(what, &h, &c)
}

#[test]
fn gemma_matches_candle() {
    let path = common::gemma_path();
    let ours = pith_runtime::gguf::GgufFile::open(&path).expect("pith opens the model");
    let mut f = std::fs::File::open(&path).unwrap();
    let c = Content::read(&mut f).expect("candle reads the model");
    let (keys, tensors) = assert_same("gemma-3-270m", ours.header(), &c);
    // The real model exercises the big arrays: a 262144-entry vocabulary of strings and
    // its f32 scores and i32 token types.
    let vocab = ours
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .expect("vocabulary");
    assert_eq!(vocab.len(), 262_144);
    assert_eq!(ours.architecture().unwrap(), "gemma3");
    // Tensors are zero-copy views into the map, at the offsets candle computed.
    let map = ours.mmap().expect("GgufFile::open maps the file");
    for t in ours.tensor_infos() {
        let view = ours.view(t);
        let ci = &c.tensor_infos[&t.name];
        let expected = map
            .as_ptr()
            .wrapping_add((c.tensor_data_offset + ci.offset) as usize);
        assert_eq!(
            view.data.as_ptr(),
            expected,
            "tensor '{}' is not a view into the map",
            t.name
        );
    }
    eprintln!("gemma: {keys} keys and {tensors} tensors agree with candle");
}

fn every_type(version: u32) -> GgufBuilder {
    let strings = |xs: &[&str]| {
        xs.iter()
            .map(|s| MetaValue::String((*s).into()))
            .collect::<Vec<_>>()
    };
    GgufBuilder::new()
        .version(version)
        .kv("general.architecture", MetaValue::String("llama".into()))
        .kv("t.u8", MetaValue::U8(200))
        .kv("t.i8", MetaValue::I8(-100))
        .kv("t.u16", MetaValue::U16(65_000))
        .kv("t.i16", MetaValue::I16(-32_000))
        .kv("t.u32", MetaValue::U32(4_000_000_000))
        .kv("t.i32", MetaValue::I32(-2_000_000_000))
        .kv("t.f32", MetaValue::F32(-1.5e-30))
        .kv("t.bool.true", MetaValue::Bool(true))
        .kv("t.bool.false", MetaValue::Bool(false))
        .kv(
            "t.string",
            MetaValue::String("héllo, wörld — 世界 🦀".into()),
        )
        .kv("t.string.empty", MetaValue::String(String::new()))
        .kv("t.u64", MetaValue::U64(u64::MAX))
        .kv("t.i64", MetaValue::I64(i64::MIN))
        .kv("t.f64", MetaValue::F64(std::f64::consts::PI))
        .kv("t.f32.nan", MetaValue::F32(f32::from_bits(0x7fc0_1234)))
        .kv(
            "t.arr.u8",
            MetaValue::Array(ty::U8, (0..10).map(MetaValue::U8).collect()),
        )
        .kv(
            "t.arr.i16",
            MetaValue::Array(ty::I16, vec![MetaValue::I16(-1), MetaValue::I16(i16::MAX)]),
        )
        .kv(
            "t.arr.u32",
            MetaValue::Array(ty::U32, vec![MetaValue::U32(1), MetaValue::U32(u32::MAX)]),
        )
        .kv(
            "t.arr.i64",
            MetaValue::Array(ty::I64, vec![MetaValue::I64(i64::MIN)]),
        )
        .kv(
            "t.arr.f32",
            MetaValue::Array(ty::F32, vec![MetaValue::F32(0.5), MetaValue::F32(-0.0)]),
        )
        .kv(
            "t.arr.f64",
            MetaValue::Array(ty::F64, vec![MetaValue::F64(1e300)]),
        )
        .kv(
            "t.arr.bool",
            MetaValue::Array(
                ty::BOOL,
                vec![MetaValue::Bool(true), MetaValue::Bool(false)],
            ),
        )
        .kv(
            "t.arr.string",
            MetaValue::Array(ty::STRING, strings(&["a", "", "▁the", "<0x0A>"])),
        )
        .kv("t.arr.empty", MetaValue::Array(ty::U64, vec![]))
        .kv(
            "t.arr.nested",
            MetaValue::Array(
                ty::ARRAY,
                vec![
                    MetaValue::Array(ty::STRING, strings(&["x", "y"])),
                    MetaValue::Array(ty::I8, vec![MetaValue::I8(-8)]),
                    MetaValue::Array(
                        ty::ARRAY,
                        vec![MetaValue::Array(ty::U16, vec![MetaValue::U16(7)])],
                    ),
                ],
            ),
        )
        .kv("t.arr.deep", MetaValue::nested(4))
        .tensor("token_embd.weight", &[64, 3], ggml::Q8_0)
        .tensor("blk.0.attn_q.weight", &[256, 2], ggml::Q4_K)
        .tensor("blk.0.ffn_down.weight", &[256], ggml::Q6_K)
        .tensor("output_norm.weight", &[64], ggml::F32)
        .tensor("blk.0.attn_norm.weight", &[64], ggml::F16)
        .tensor("rope_freqs", &[32, 1, 1, 2], ggml::BF16)
        .tensor("scalar", &[], ggml::F32)
        .tensor("empty", &[0, 4], ggml::Q4_0)
}

#[test]
fn builder_files_match_candle() {
    for version in [2, 3] {
        let b = every_type(version);
        both(&format!("every type, v{version}"), b.build().buf());
        for align in [1u32, 8, 64, 4096] {
            let b = every_type(version).kv("general.alignment", MetaValue::U32(align));
            let built = b.build();
            assert_eq!(built.alignment, u64::from(align));
            both(
                &format!("every type, v{version}, alignment {align}"),
                built.buf(),
            );
        }
    }
    // Metadata only, and nothing at all.
    both(
        "no tensors",
        GgufBuilder::new().kv("a", MetaValue::U8(1)).build().buf(),
    );
    both("empty file", GgufBuilder::new().build().buf());
}

/// candle's view of the tensor data is at the same bytes as ours.
#[test]
fn tensor_bytes_match_candle() {
    let b = every_type(3);
    let built = b.build();
    let f = pith_runtime::gguf::GgufFile::from_bytes("every.gguf", built.buf().to_vec()).unwrap();
    let c = Content::read(&mut Cursor::new(built.buf())).unwrap();
    let infos: HashMap<_, _> = c.tensor_infos.iter().collect();
    for spec in &b.tensors {
        let view = f.require_tensor(&spec.name).unwrap();
        assert_eq!(view.data, &spec.data[..], "pith view of '{}'", spec.name);
        let ci = infos[&spec.name];
        let start = (c.tensor_data_offset + ci.offset) as usize;
        assert_eq!(
            &built.buf()[start..start + spec.data.len()],
            &spec.data[..],
            "candle offset of '{}'",
            spec.name
        );
    }
}

/// Types candle 0.11 reads (it has no I8/I16/I32/I64/F64 tensors).
const CANDLE_TYPES: [u32; 9] = [
    ggml::F32,
    ggml::F16,
    ggml::BF16,
    ggml::Q4_0,
    ggml::Q5_1,
    ggml::Q8_0,
    ggml::Q2_K,
    ggml::Q4_K,
    ggml::Q6_K,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_files_match_candle(b in common::gen::file_of(&CANDLE_TYPES, true)) {
        both("random file", b.build().buf());
    }
}
