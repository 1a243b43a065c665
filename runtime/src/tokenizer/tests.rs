//! Unit tests over small vocabularies written in memory: malformed metadata must give a
//! typed error (never a panic), and the SPM byte fallback must stream without splitting
//! characters. Agreement with llama.cpp on real vocabularies is tested in
//! `runtime/tests/tokenizer_golden.rs`.

use proptest::prelude::*;

use super::{ModelKind, Tokenizer, TokenizerError};
use crate::gguf::{type_id, GgufFile};

/// Metadata values for the in-memory GGUF writer.
#[derive(Clone, Debug)]
enum V {
    Str(String),
    U32(u32),
    I64(i64),
    Bool(bool),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 image with the given metadata and no tensors.
fn gguf(kvs: &[(&str, V)]) -> GgufFile {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        put_str(&mut b, k);
        match v {
            V::Str(s) => {
                b.extend_from_slice(&type_id::STRING.to_le_bytes());
                put_str(&mut b, s);
            }
            V::U32(x) => {
                b.extend_from_slice(&type_id::U32.to_le_bytes());
                b.extend_from_slice(&x.to_le_bytes());
            }
            V::I64(x) => {
                b.extend_from_slice(&type_id::I64.to_le_bytes());
                b.extend_from_slice(&x.to_le_bytes());
            }
            V::Bool(x) => {
                b.extend_from_slice(&type_id::BOOL.to_le_bytes());
                b.push(u8::from(*x));
            }
            V::Strs(xs) => {
                b.extend_from_slice(&type_id::ARRAY.to_le_bytes());
                b.extend_from_slice(&type_id::STRING.to_le_bytes());
                b.extend_from_slice(&(xs.len() as u64).to_le_bytes());
                xs.iter().for_each(|s| put_str(&mut b, s));
            }
            V::F32s(xs) => {
                b.extend_from_slice(&type_id::ARRAY.to_le_bytes());
                b.extend_from_slice(&type_id::F32.to_le_bytes());
                b.extend_from_slice(&(xs.len() as u64).to_le_bytes());
                xs.iter()
                    .for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
            }
            V::I32s(xs) => {
                b.extend_from_slice(&type_id::ARRAY.to_le_bytes());
                b.extend_from_slice(&type_id::I32.to_le_bytes());
                b.extend_from_slice(&(xs.len() as u64).to_le_bytes());
                xs.iter()
                    .for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
            }
        }
    }
    b.resize(b.len().next_multiple_of(32), 0);
    GgufFile::from_bytes("test.gguf", b).expect("writer produces a valid GGUF")
}

fn strs(xs: &[&str]) -> V {
    V::Strs(xs.iter().map(|s| (*s).to_owned()).collect())
}

/// A small SentencePiece vocabulary: control tokens, a few pieces with scores, and the
/// 256 byte tokens.
fn spm_kvs() -> Vec<(&'static str, V)> {
    let mut tokens: Vec<String> = [
        "<unk>",
        "<s>",
        "</s>",
        "▁",
        "a",
        "b",
        "ab",
        "▁ab",
        "<end_of_turn>",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut scores = vec![0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -1.5, -0.5, 0.0];
    let mut types = vec![2, 3, 3, 1, 1, 1, 1, 1, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        scores.push(0.0);
        types.push(6);
    }
    vec![
        ("tokenizer.ggml.model", V::Str("llama".into())),
        ("tokenizer.ggml.tokens", V::Strs(tokens)),
        ("tokenizer.ggml.scores", V::F32s(scores)),
        ("tokenizer.ggml.token_type", V::I32s(types)),
    ]
}

fn with(
    mut kvs: Vec<(&'static str, V)>,
    key: &'static str,
    v: Option<V>,
) -> Vec<(&'static str, V)> {
    kvs.retain(|(k, _)| *k != key);
    if let Some(v) = v {
        kvs.push((key, v));
    }
    kvs
}

fn build(kvs: &[(&str, V)]) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::from_gguf(&gguf(kvs))
}

#[test]
fn small_spm_vocab_encodes_with_scores_and_byte_fallback() {
    let tok = build(&spm_kvs()).unwrap();
    assert_eq!(tok.model_kind(), ModelKind::Spm);
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.unk_id()),
        (Some(1), Some(2), Some(0))
    );
    // "▁ab" (-0.5) beats "▁"+"a" pieces: one token.
    assert_eq!(tok.encode("ab", true, false), [1, 7]);
    // 'é' is not a piece: two byte tokens, <0xC3> <0xA9> (ids 9 + byte).
    assert_eq!(tok.encode("é", false, false), [3, 9 + 0xC3, 9 + 0xA9]);
    assert_eq!(tok.decode(&tok.encode("ab é", true, false), true), " ab é");
    // Control text is a token only with parse_special.
    assert_eq!(tok.encode("<end_of_turn>", false, true), [8]);
    assert_ne!(tok.encode("<end_of_turn>", false, false), [8]);
    assert!(tok.is_eog(8) && tok.is_eog(2) && !tok.is_eog(1));
    assert_eq!(tok.eot_id(), Some(8));
}

#[test]
fn stream_holds_back_split_characters() {
    let tok = build(&spm_kvs()).unwrap();
    // U+1F600 as four byte tokens, fed one by one.
    let ids: Vec<u32> = "😀".bytes().map(|b| 9 + u32::from(b)).collect();
    let mut dec = tok.stream_decoder(true);
    let chunks: Vec<String> = ids.iter().map(|&id| dec.feed(id)).collect();
    assert_eq!(chunks, ["", "", "", "😀"]);
    // A truncated character at the end of the stream is flushed as U+FFFD.
    assert_eq!(dec.feed(9 + 0xE2), "");
    assert_eq!(dec.flush(), "\u{FFFD}");
    // With add_space_prefix the first piece loses its leading space, as in decode.
    let mut dec = tok.stream_decoder(true);
    assert_eq!(dec.feed(7), "ab");
    assert_eq!(dec.feed(7), " ab");
}

#[test]
fn missing_model_key_is_an_error() {
    let kvs = with(spm_kvs(), "tokenizer.ggml.model", None);
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::MissingKey {
            key: "tokenizer.ggml.model",
            ..
        })
    ));
}

#[test]
fn unsupported_model_is_an_error() {
    let kvs = with(spm_kvs(), "tokenizer.ggml.model", Some(V::Str("t5".into())));
    assert!(
        matches!(build(&kvs), Err(TokenizerError::UnsupportedModel { model, .. }) if model == "t5")
    );
}

#[test]
fn missing_or_mistyped_tokens_are_errors() {
    let kvs = with(spm_kvs(), "tokenizer.ggml.tokens", None);
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::MissingKey {
            key: "tokenizer.ggml.tokens",
            ..
        })
    ));
    let kvs = with(
        spm_kvs(),
        "tokenizer.ggml.tokens",
        Some(V::I32s(vec![1, 2, 3])),
    );
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::WrongType {
            key: "tokenizer.ggml.tokens",
            ..
        })
    ));
    let kvs = with(spm_kvs(), "tokenizer.ggml.tokens", Some(V::Strs(vec![])));
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::BadVocabSize { len: 0, .. })
    ));
}

#[test]
fn short_scores_and_types_are_errors() {
    let kvs = with(
        spm_kvs(),
        "tokenizer.ggml.scores",
        Some(V::F32s(vec![0.0; 10])),
    );
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::LengthMismatch {
            key: "tokenizer.ggml.scores",
            len: 10,
            n_tokens: 265,
            ..
        })
    ));
    let kvs = with(
        spm_kvs(),
        "tokenizer.ggml.token_type",
        Some(V::I32s(vec![1; 3])),
    );
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::LengthMismatch {
            key: "tokenizer.ggml.token_type",
            ..
        })
    ));
    let kvs = with(spm_kvs(), "tokenizer.ggml.scores", Some(strs(&["x"])));
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::WrongType {
            key: "tokenizer.ggml.scores",
            ..
        })
    ));
}

#[test]
fn special_ids_out_of_range_are_errors() {
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", 265i64),
        ("tokenizer.ggml.padding_token_id", -1),
    ] {
        let kvs = with(spm_kvs(), key, Some(V::I64(id)));
        assert!(
            matches!(build(&kvs), Err(TokenizerError::SpecialIdOutOfRange { key: k, id: i, n_tokens: 265, .. }) if k == key && i == id),
            "{key} = {id}"
        );
    }
    let kvs = with(spm_kvs(), "tokenizer.ggml.eos_token_id", Some(V::U32(264)));
    assert_eq!(build(&kvs).unwrap().eos_id(), Some(264));
}

#[test]
fn add_bos_without_a_bos_token_is_an_error() {
    // One token: the default BOS (1) is outside the vocabulary, but SPM adds BOS.
    let kvs = vec![
        ("tokenizer.ggml.model", V::Str("llama".into())),
        ("tokenizer.ggml.tokens", strs(&["<unk>"])),
    ];
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::MissingSpecialToken { .. })
    ));
    let kvs = [kvs, vec![("tokenizer.ggml.add_bos_token", V::Bool(false))]].concat();
    let tok = build(&kvs).unwrap();
    assert_eq!(tok.bos_id(), None);
    // Without byte tokens each byte of an unknown character becomes <unk> (llama.cpp
    // throws here).
    assert_eq!(tok.encode("x", true, true), [0, 0, 0, 0]);
}

#[test]
fn duplicate_tokens_are_an_error() {
    let kvs = vec![
        ("tokenizer.ggml.model", V::Str("llama".into())),
        ("tokenizer.ggml.tokens", strs(&["a", "b", "a"])),
    ];
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::DuplicateToken {
            first: 0,
            second: 2,
            ..
        })
    ));
}

fn bpe_kvs() -> Vec<(&'static str, V)> {
    vec![
        ("tokenizer.ggml.model", V::Str("gpt2".into())),
        ("tokenizer.ggml.pre", V::Str("gpt-2".into())),
        (
            "tokenizer.ggml.tokens",
            strs(&["a", "b", "ab", "Ġ", "Ġab", "<|endoftext|>"]),
        ),
        ("tokenizer.ggml.merges", strs(&["a b", "Ġ ab"])),
        ("tokenizer.ggml.bos_token_id", V::U32(5)),
        ("tokenizer.ggml.eos_token_id", V::U32(5)),
    ]
}

#[test]
fn small_bpe_vocab_merges_by_rank() {
    let tok = build(&bpe_kvs()).unwrap();
    assert_eq!(tok.model_kind(), ModelKind::Bpe);
    assert_eq!(tok.encode("ab ab", false, false), [2, 4]);
    assert_eq!(tok.decode(&[2, 4, 5], true), "ab ab");
    assert_eq!(tok.decode(&[2, 4, 5], false), "ab ab<|endoftext|>");
    assert!(tok.is_eog(5));
}

#[test]
fn bpe_needs_merges_and_a_known_pre_tokenizer() {
    let kvs = with(bpe_kvs(), "tokenizer.ggml.merges", None);
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::MissingKey {
            key: "tokenizer.ggml.merges",
            ..
        })
    ));
    let kvs = with(
        bpe_kvs(),
        "tokenizer.ggml.pre",
        Some(V::Str("no-such-pre".into())),
    );
    assert!(
        matches!(build(&kvs), Err(TokenizerError::UnsupportedPreTokenizer { pre, .. }) if pre == "no-such-pre")
    );
    let kvs = with(bpe_kvs(), "tokenizer.ggml.merges", Some(V::I32s(vec![0])));
    assert!(matches!(
        build(&kvs),
        Err(TokenizerError::WrongType {
            key: "tokenizer.ggml.merges",
            ..
        })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary token lists, types, score lengths and special ids: construction either
    /// succeeds or returns an error; encoding and decoding then never panic.
    #[test]
    fn arbitrary_metadata_never_panics(
        tokens in prop::collection::vec("[a-c▁<>0-9x ]{0,4}", 0..24),
        mut types in prop::collection::vec(-2i32..9, 0..24),
        mut n_scores in 0usize..24,
        complete in any::<bool>(),
        bos in -3i64..30,
        bpe in any::<bool>(),
        text in "[a-c▁<> é😀\n]{0,24}",
        ids in prop::collection::vec(0u32..40, 0..12),
    ) {
        if complete {
            // Mostly well-formed: per-token arrays as long as the token list.
            types.resize(tokens.len().max(types.len()), 1);
            n_scores = n_scores.max(tokens.len());
        }
        let mut kvs = vec![
            ("tokenizer.ggml.model", V::Str(if bpe { "gpt2" } else { "llama" }.into())),
            ("tokenizer.ggml.tokens", V::Strs(tokens)),
            ("tokenizer.ggml.token_type", V::I32s(types)),
            ("tokenizer.ggml.scores", V::F32s((0..n_scores).map(|i| i as f32 * -0.5).collect())),
            ("tokenizer.ggml.bos_token_id", V::I64(bos)),
        ];
        if bpe {
            kvs.push(("tokenizer.ggml.merges", strs(&["a b", "ab c", "x", " "])));
        }
        if let Ok(tok) = build(&kvs) {
            for (add, parse) in [(true, true), (false, false)] {
                let enc = tok.encode(&text, add, parse);
                prop_assert!(enc.iter().all(|&id| (id as usize) < tok.vocab_size()));
            }
            let _ = tok.decode(&ids, false);
            let mut dec = tok.stream_decoder(false);
            let streamed: String = ids.iter().map(|&id| dec.feed(id)).collect::<String>() + &dec.flush();
            if !tok.clean_spaces() {
                prop_assert_eq!(streamed, tok.decode(&ids, false));
            }
            let _ = tok.summary();
        }
    }
}
