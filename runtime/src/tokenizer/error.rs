//! Typed errors of tokenizer construction.

use std::path::PathBuf;

/// Why a tokenizer could not be built from a GGUF file's metadata.
///
/// Every variant names the file and the metadata key it is about. Encoding and decoding
/// never fail: these errors arise only in [`super::Tokenizer::from_gguf`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A required metadata key is absent (`tokenizer.ggml.model`, `tokenizer.ggml.tokens`,
    /// or `tokenizer.ggml.merges` for BPE vocabularies).
    #[error("{path}: metadata key '{key}' is missing")]
    MissingKey { path: PathBuf, key: &'static str },
    /// A metadata key has a type llama.cpp would reject (e.g. scores stored as strings).
    #[error("{path}: metadata key '{key}' has type {found}, expected {expected}")]
    WrongType {
        path: PathBuf,
        key: &'static str,
        expected: &'static str,
        found: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer pith does not implement.
    #[error("{path}: unsupported tokenizer model '{model}' (pith supports 'llama' and 'gpt2')")]
    UnsupportedModel { path: PathBuf, model: String },
    /// `tokenizer.ggml.pre` names a BPE pre-tokenizer pith does not implement.
    #[error("{path}: unsupported BPE pre-tokenizer '{pre}'")]
    UnsupportedPreTokenizer { path: PathBuf, pre: String },
    /// The vocabulary is empty, or larger than a token id can address.
    #[error("{path}: vocabulary has {len} tokens, expected 1 to {max}")]
    BadVocabSize {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    /// A per-token array (scores, token types) is shorter than the token list.
    #[error("{path}: '{key}' has {len} entries but the vocabulary has {n_tokens} tokens")]
    LengthMismatch {
        path: PathBuf,
        key: &'static str,
        len: usize,
        n_tokens: usize,
    },
    /// A special token id does not exist in the vocabulary.
    #[error("{path}: '{key}' = {id} is outside the vocabulary of {n_tokens} tokens")]
    SpecialIdOutOfRange {
        path: PathBuf,
        key: &'static str,
        id: i64,
        n_tokens: usize,
    },
    /// The model asks for a BOS/EOS token to be added but has none.
    #[error("{path}: '{key}' is set but the vocabulary has no such token")]
    MissingSpecialToken { path: PathBuf, key: &'static str },
    /// Two tokens have the same text (llama.cpp refuses such a vocabulary too).
    #[error("{path}: tokens {first} and {second} both have the text {text:?}")]
    DuplicateToken {
        path: PathBuf,
        text: String,
        first: u32,
        second: u32,
    },
    /// A pre-tokenizer regex could not be compiled (a bug in pith's regex translation).
    #[error("pre-tokenizer regex '{regex}' failed to compile: {reason}")]
    BadRegex { regex: String, reason: String },
}
