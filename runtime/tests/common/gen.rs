//! proptest strategies for valid GGUF files: metadata of every value type (nested arrays
//! included) and tensors of several ggml types, versions 2 and 3.

use proptest::prelude::*;

use super::builder::{ggml, ty, GgufBuilder, MetaValue, TensorSpec};

/// A string: any chars (NUL included) by default; printable, no trailing NUL, when
/// `candle_compatible` (candle strips trailing NULs).
fn string(candle_compatible: bool) -> BoxedStrategy<String> {
    if candle_compatible {
        "\\PC{0,12}".boxed()
    } else {
        proptest::collection::vec(any::<char>(), 0..12)
            .prop_map(String::from_iter)
            .boxed()
    }
}

/// A scalar (non-array) value of type `t`.
fn scalar(t: u32, candle_compatible: bool) -> BoxedStrategy<MetaValue> {
    match t {
        ty::U8 => any::<u8>().prop_map(MetaValue::U8).boxed(),
        ty::I8 => any::<i8>().prop_map(MetaValue::I8).boxed(),
        ty::U16 => any::<u16>().prop_map(MetaValue::U16).boxed(),
        ty::I16 => any::<i16>().prop_map(MetaValue::I16).boxed(),
        ty::U32 => any::<u32>().prop_map(MetaValue::U32).boxed(),
        ty::I32 => any::<i32>().prop_map(MetaValue::I32).boxed(),
        // From bits: NaNs with payloads, infinities and subnormals included.
        ty::F32 => any::<u32>()
            .prop_map(|b| MetaValue::F32(f32::from_bits(b)))
            .boxed(),
        ty::BOOL => any::<bool>().prop_map(MetaValue::Bool).boxed(),
        ty::STRING => string(candle_compatible)
            .prop_map(MetaValue::String)
            .boxed(),
        ty::U64 => any::<u64>().prop_map(MetaValue::U64).boxed(),
        ty::I64 => any::<i64>().prop_map(MetaValue::I64).boxed(),
        ty::F64 => any::<u64>()
            .prop_map(|b| MetaValue::F64(f64::from_bits(b)))
            .boxed(),
        _ => unreachable!("not a scalar type {t}"),
    }
}

const SCALARS: [u32; 12] = [
    ty::U8,
    ty::I8,
    ty::U16,
    ty::I16,
    ty::U32,
    ty::I32,
    ty::F32,
    ty::BOOL,
    ty::STRING,
    ty::U64,
    ty::I64,
    ty::F64,
];

/// An array nested at most `depth` levels (1 = an array of scalars).
fn array(depth: u32, candle_compatible: bool) -> BoxedStrategy<MetaValue> {
    let leaf = proptest::sample::select(SCALARS.to_vec())
        .prop_flat_map(move |t| {
            proptest::collection::vec(scalar(t, candle_compatible), 0..6)
                .prop_map(move |v| MetaValue::Array(t, v))
        })
        .boxed();
    if depth <= 1 {
        return leaf;
    }
    prop_oneof![
        3 => leaf,
        1 => proptest::collection::vec(array(depth - 1, candle_compatible), 0..4)
            .prop_map(|v| MetaValue::Array(ty::ARRAY, v)),
    ]
    .boxed()
}

/// Any metadata value; arrays nest up to `max_depth` levels.
pub fn value(max_depth: u32, candle_compatible: bool) -> BoxedStrategy<MetaValue> {
    prop_oneof![
        3 => proptest::sample::select(SCALARS.to_vec()).prop_flat_map(move |t| scalar(t, candle_compatible)),
        1 => array(max_depth, candle_compatible),
    ]
    .boxed()
}

/// Tensor types the generated files use: plain, legacy quants and k-quants.
pub const TENSOR_TYPES: [u32; 12] = [
    ggml::F32,
    ggml::F16,
    ggml::BF16,
    ggml::Q4_0,
    ggml::Q5_1,
    ggml::Q8_0,
    ggml::Q2_K,
    ggml::Q4_K,
    ggml::Q6_K,
    ggml::I8,
    ggml::I32,
    ggml::F64,
];

/// A tensor named `name`: 0-4 dims (at least 1 for block types), the row a whole number
/// of blocks, with random data.
fn tensor(name: String, types: Vec<u32>) -> impl Strategy<Value = TensorSpec> {
    (
        proptest::sample::select(types),
        0usize..=4,
        0u64..3,
        proptest::collection::vec(0u64..4, 3),
    )
        .prop_flat_map(move |(t, n_dims, blocks, rest)| {
            let (block, _) = ggml::geometry(t).expect("known type");
            let n_dims = if block > 1 { n_dims.max(1) } else { n_dims };
            let mut dims = Vec::new();
            if n_dims > 0 {
                dims.push(blocks.max(1) * block * if block == 1 { 3 } else { 1 });
                dims.extend(rest.iter().take(n_dims - 1).copied());
            }
            let n = ggml::nbytes(t, &dims) as usize;
            let name = name.clone();
            proptest::collection::vec(any::<u8>(), n..=n).prop_map(move |data| TensorSpec {
                name: name.clone(),
                dims: dims.clone(),
                type_id: t,
                data,
            })
        })
}

/// A valid file: version 2 or 3, up to 12 kvs with distinct keys, an optional valid
/// `general.alignment`, up to 4 tensors of `types`.
pub fn file_of(types: &[u32], candle_compatible: bool) -> impl Strategy<Value = GgufBuilder> {
    let types = types.to_vec();
    let kvs = proptest::collection::vec(("[a-z.]{0,8}", value(4, candle_compatible)), 0..12);
    let align = proptest::option::of(0u32..8).prop_map(|e| e.map(|e| 1u32 << e));
    let tensors = (0usize..=4).prop_flat_map(move |n| {
        (0..n)
            .map(|i| tensor(format!("blk.{i}.weight"), types.clone()))
            .collect::<Vec<_>>()
    });
    (prop_oneof![Just(2u32), Just(3u32)], kvs, align, tensors).prop_map(
        |(version, kvs, align, tensors)| {
            let mut b = GgufBuilder::new().version(version);
            for (i, (suffix, v)) in kvs.into_iter().enumerate() {
                b = b.kv(&format!("k{i}{suffix}"), v);
            }
            if let Some(a) = align {
                b = b.kv("general.alignment", MetaValue::U32(a));
            }
            b.tensors = tensors;
            b
        },
    )
}

/// [`file_of`] over all of [`TENSOR_TYPES`], any strings.
pub fn file() -> impl Strategy<Value = GgufBuilder> {
    file_of(&TENSOR_TYPES, false)
}
