//! Comparing what pith parsed with what the builder wrote. Floats compare by bits, so
//! NaN payloads and signed zeros must round-trip exactly.

use pith_runtime::gguf::{Array, Value};

use super::builder::{ty, MetaValue};

/// Whether the parsed `got` is exactly the written `want`.
pub fn value_eq(got: &Value, want: &MetaValue) -> bool {
    match (got, want) {
        (Value::U8(a), MetaValue::U8(b)) => a == b,
        (Value::I8(a), MetaValue::I8(b)) => a == b,
        (Value::U16(a), MetaValue::U16(b)) => a == b,
        (Value::I16(a), MetaValue::I16(b)) => a == b,
        (Value::U32(a), MetaValue::U32(b)) => a == b,
        (Value::I32(a), MetaValue::I32(b)) => a == b,
        (Value::U64(a), MetaValue::U64(b)) => a == b,
        (Value::I64(a), MetaValue::I64(b)) => a == b,
        (Value::F32(a), MetaValue::F32(b)) => a.to_bits() == b.to_bits(),
        (Value::F64(a), MetaValue::F64(b)) => a.to_bits() == b.to_bits(),
        (Value::Bool(a), MetaValue::Bool(b)) => a == b,
        (Value::String(a), MetaValue::String(b)) => a == b,
        (Value::Array(a), MetaValue::Array(elem, items)) => array_eq(a, *elem, items),
        _ => false,
    }
}

/// Whether the parsed array has element type `elem` and exactly the elements `items`.
pub fn array_eq(got: &Array, elem: u32, items: &[MetaValue]) -> bool {
    fn all<T>(v: &[T], items: &[MetaValue], f: impl Fn(&T, &MetaValue) -> bool) -> bool {
        v.len() == items.len() && v.iter().zip(items).all(|(a, b)| f(a, b))
    }
    match (got, elem) {
        (Array::U8(v), ty::U8) => all(v, items, |a, b| matches!(b, MetaValue::U8(x) if x == a)),
        (Array::I8(v), ty::I8) => all(v, items, |a, b| matches!(b, MetaValue::I8(x) if x == a)),
        (Array::U16(v), ty::U16) => all(v, items, |a, b| matches!(b, MetaValue::U16(x) if x == a)),
        (Array::I16(v), ty::I16) => all(v, items, |a, b| matches!(b, MetaValue::I16(x) if x == a)),
        (Array::U32(v), ty::U32) => all(v, items, |a, b| matches!(b, MetaValue::U32(x) if x == a)),
        (Array::I32(v), ty::I32) => all(v, items, |a, b| matches!(b, MetaValue::I32(x) if x == a)),
        (Array::U64(v), ty::U64) => all(v, items, |a, b| matches!(b, MetaValue::U64(x) if x == a)),
        (Array::I64(v), ty::I64) => all(v, items, |a, b| matches!(b, MetaValue::I64(x) if x == a)),
        (Array::F32(v), ty::F32) => all(
            v,
            items,
            |a, b| matches!(b, MetaValue::F32(x) if x.to_bits() == a.to_bits()),
        ),
        (Array::F64(v), ty::F64) => all(
            v,
            items,
            |a, b| matches!(b, MetaValue::F64(x) if x.to_bits() == a.to_bits()),
        ),
        (Array::Bool(v), ty::BOOL) => {
            all(v, items, |a, b| matches!(b, MetaValue::Bool(x) if x == a))
        }
        (Array::String(v), ty::STRING) => {
            all(v, items, |a, b| matches!(b, MetaValue::String(x) if x == a))
        }
        (Array::Array(v), ty::ARRAY) => all(
            v,
            items,
            |a, b| matches!(b, MetaValue::Array(e, xs) if array_eq(a, *e, xs)),
        ),
        _ => false,
    }
}
