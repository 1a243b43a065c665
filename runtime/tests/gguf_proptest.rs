//! Property tests of the GGUF reader over files written by the byte-level builder in
//! `common/`: valid files round-trip exactly, and mutated files (byte flips, truncation,
//! insertion, deletion, extreme values in length/count/offset fields) give `Ok` or `Err`
//! but never panic, and whatever `Ok` returns is safe to use.
//!
//! 256 cases by default (a few seconds); raise with `PROPTEST_CASES=100000`.

mod common;

use common::builder::{Built, GgufBuilder};
use common::expect::value_eq;
use common::gen;
use pith_runtime::gguf::{
    parse, GgufFile, Header, MAX_ARRAY_LEN, MAX_COUNT, MAX_DIMS, MAX_STRING_LEN,
};
use proptest::prelude::*;
use proptest::sample::Index;

/// Checks that `parse` returns exactly what the builder wrote.
fn check_round_trip(b: &GgufBuilder, built: &Built) -> Result<(), TestCaseError> {
    let h =
        parse(built.buf()).map_err(|e| TestCaseError::fail(format!("valid file rejected: {e}")))?;
    prop_assert_eq!(h.version, b.version);
    prop_assert_eq!(h.alignment, built.alignment);
    prop_assert_eq!(h.data_offset, built.data_offset);
    prop_assert_eq!(h.metadata.len(), b.kvs.len());
    for ((k, v), (wk, wv)) in h.metadata.iter().zip(&b.kvs) {
        prop_assert_eq!(k, wk);
        prop_assert!(value_eq(v, wv), "key {}: parsed {:?}, wrote {:?}", k, v, wv);
    }
    prop_assert_eq!(h.tensors.len(), b.tensors.len());
    for ((t, w), rel) in h.tensors.iter().zip(&b.tensors).zip(&built.rel_offsets) {
        prop_assert_eq!(&t.name, &w.name);
        prop_assert_eq!(&t.dims, &w.dims);
        prop_assert_eq!(t.ty.id(), w.type_id);
        prop_assert_eq!(t.offset, built.data_offset + rel);
        prop_assert_eq!(t.size, w.data.len() as u64);
    }
    // The zero-copy views over the same bytes are the data that was written.
    let f = GgufFile::from_bytes("prop.gguf", built.buf().to_vec())
        .map_err(|e| TestCaseError::fail(format!("from_bytes: {e}")))?;
    for w in &b.tensors {
        let view = f
            .require_tensor(&w.name)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(view.data, &w.data[..], "tensor {}", w.name);
    }
    Ok(())
}

/// What an accepted header promises: every tensor lies inside the file, aligned, with at
/// most 4 dims and a byte size consistent with its type; the views can be taken.
fn check_accepted(h: &Header, bytes: &[u8]) -> Result<(), TestCaseError> {
    let len = bytes.len() as u64;
    prop_assert!(h.alignment.is_power_of_two());
    for t in &h.tensors {
        prop_assert!(t.dims.len() <= MAX_DIMS);
        prop_assert!(t.offset >= h.data_offset);
        prop_assert_eq!((t.offset - h.data_offset) % h.alignment, 0);
        prop_assert!(t.offset.checked_add(t.size).is_some_and(|end| end <= len));
        let n = t.n_elements();
        prop_assert_eq!(t.ty.bytes_for(n), Some(t.size));
    }
    let f = GgufFile::from_bytes("mutant.gguf", bytes.to_vec())
        .map_err(|e| TestCaseError::fail(format!("parse accepted, from_bytes rejected: {e}")))?;
    for t in f.tensor_infos() {
        prop_assert_eq!(f.view(t).data.len() as u64, t.size);
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Cut the file at a position.
    Truncate(Index),
    /// Insert bytes at a position.
    Insert(Index, Vec<u8>),
    /// Remove up to 16 bytes at a position.
    Remove(Index, usize),
    /// Overwrite one of the file's u64 fields (count, length, dimension, offset).
    U64Field(Index, u64),
    /// Overwrite one of the file's u32 fields (version, type ids, n_dims).
    U32Field(Index, u32),
}

/// Values that sit on the edges of the reader's checks.
fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            0,
            1,
            2,
            3,
            5,
            31,
            32,
            33,
            u64::from(u32::MAX),
            1 << 32,
            MAX_COUNT,
            MAX_COUNT + 1,
            MAX_ARRAY_LEN,
            MAX_ARRAY_LEN + 1,
            MAX_STRING_LEN,
            MAX_STRING_LEN + 1,
            i64::MAX as u64,
            1 << 63,
            u64::MAX - 31,
            u64::MAX - 1,
            u64::MAX,
        ]),
        1 => any::<u64>(),
    ]
}

fn extreme_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => proptest::sample::select(vec![0, 1, 2, 3, 4, 5, 9, 12, 13, 31, 39, 0x0300_0000, u32::MAX]),
        1 => any::<u32>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Remove(i, n)),
        3 => (any::<Index>(), extreme_u64()).prop_map(|(i, v)| Mutation::U64Field(i, v)),
        2 => (any::<Index>(), extreme_u32()).prop_map(|(i, v)| Mutation::U32Field(i, v)),
    ]
}

/// Positions of the u64 and u32 fields of a built file, from the builder's marks.
fn field_positions(built: &Built) -> (Vec<usize>, Vec<usize>) {
    let (mut u64s, mut u32s) = (Vec::new(), Vec::new());
    for (name, pos) in built.bytes.marks() {
        let n = name.as_str();
        let is_u64 = ["tensor_count", "kv_count"].contains(&n)
            || [".len", ".key", ".name", ".offset"]
                .iter()
                .any(|s| n.ends_with(s));
        if is_u64 {
            u64s.push(*pos);
        } else if n.ends_with(".dims") {
            // Up to four u64s follow; the n_dims field before says how many.
            let n_dims =
                u32::from_le_bytes(built.buf()[pos - 4..*pos].try_into().unwrap()) as usize;
            u64s.extend((0..n_dims).map(|d| pos + 8 * d));
        } else if n == "version"
            || n.ends_with(".type")
            || n.ends_with(".element_type")
            || n.ends_with(".n_dims")
        {
            u32s.push(*pos);
        } else if n.ends_with(".value") || n.contains(".value[") {
            // A string value (or array element) starts with its u64 length; for other
            // types this overwrites the value itself, which is a fine mutation too.
            if pos + 8 <= built.buf().len() {
                u64s.push(*pos);
            }
        }
    }
    (u64s, u32s)
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation, u64s: &[usize], u32s: &[usize]) {
    let put = |bytes: &mut Vec<u8>, pos: usize, v: &[u8]| {
        if pos + v.len() <= bytes.len() {
            bytes[pos..pos + v.len()].copy_from_slice(v);
        }
    };
    match m {
        Mutation::Flip(i, mask) => {
            if !bytes.is_empty() {
                let p = i.index(bytes.len());
                bytes[p] ^= mask;
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len() + 1)),
        Mutation::Insert(i, b) => {
            let p = i.index(bytes.len() + 1);
            bytes.splice(p..p, b.iter().copied());
        }
        Mutation::Remove(i, n) => {
            if !bytes.is_empty() {
                let p = i.index(bytes.len());
                let end = (p + n).min(bytes.len());
                bytes.drain(p..end);
            }
        }
        Mutation::U64Field(i, v) => {
            if !u64s.is_empty() {
                put(bytes, u64s[i.index(u64s.len())], &v.to_le_bytes());
            }
        }
        Mutation::U32Field(i, v) => {
            if !u32s.is_empty() {
                put(bytes, u32s[i.index(u32s.len())], &v.to_le_bytes());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn valid_files_round_trip(b in gen::file()) {
        let built = b.build();
        check_round_trip(&b, &built)?;
    }

    #[test]
    fn mutated_files_never_panic(
        b in gen::file(),
        mutants in proptest::collection::vec(proptest::collection::vec(mutation(), 1..4), 32),
    ) {
        let built = b.build();
        let (u64s, u32s) = field_positions(&built);
        for ms in &mutants {
            let mut bytes = built.buf().to_vec();
            for m in ms {
                apply(&mut bytes, m, &u64s, &u32s);
            }
            match parse(&bytes) {
                Ok(h) => check_accepted(&h, &bytes)?,
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
