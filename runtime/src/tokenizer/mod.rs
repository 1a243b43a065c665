//! Tokenizers built from GGUF metadata (llama/SentencePiece and gpt2/byte-level BPE),
//! token for token identical to llama.cpp's `src/llama-vocab.cpp` (0c1e570).
//!
//! Why hand-written: the `tokenizers` crate cannot load a GGUF vocabulary, and its
//! SentencePiece model differs from llama.cpp's: llama.cpp's SPM merges the
//! best-*scoring* adjacent pair first (a BPE over piece scores, with `<0xXX>` byte
//! fallback), splits special tokens out of the text first (user-defined ones always,
//! control ones only with `parse_special`), and uses its own Unicode tables and
//! hand-written pre-tokenizers for BPE. Reproducing those rules exactly is what makes
//! pith's prompts, and so its logits, match llama.cpp's.
//!
//! * [`Tokenizer::from_gguf`] reads `tokenizer.ggml.*` (see `load.rs`).
//! * [`Tokenizer::encode`] = `llama_tokenize` (`encode.rs`, `spm.rs`, `bpe.rs`,
//!   `pretokenize.rs`).
//! * [`Tokenizer::decode`] = `llama_detokenize`, [`Tokenizer::token_to_piece`] =
//!   `llama_token_to_piece`, [`StreamDecoder`] for incremental output (`decode.rs`,
//!   `stream.rs`).

mod bpe;
mod decode;
mod encode;
mod error;
mod load;
mod pretokenize;
mod regex_split;
mod spm;
mod stream;
#[cfg(test)]
mod tests;
mod unicode;
mod unicode_data;

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};

pub use error::TokenizerError;
pub use pretokenize::PreTokenizerKind;
pub use stream::StreamDecoder;

use crate::gguf::GgufFile;

/// One piece of the text in the SPM and BPE merge loops: a doubly linked list over the
/// text, as llama.cpp's `llm_symbol`.
#[derive(Clone, Copy)]
struct Symbol {
    prev: i32,
    next: i32,
    /// Byte offset of the symbol in the text.
    start: usize,
    /// Byte length; 0 once merged into its left neighbour.
    len: usize,
}

/// Token attributes (llama.cpp `llama_token_attr` bits).
pub(crate) mod attr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;
}

/// Which tokenizer algorithm a vocabulary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelKind {
    /// `tokenizer.ggml.model = llama`: SentencePiece with scores and byte fallback.
    Spm,
    /// `tokenizer.ggml.model = gpt2`: byte-level BPE with merges and a pre-tokenizer.
    Bpe,
}

/// The kind of a vocabulary entry, from `tokenizer.ggml.token_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// An ordinary piece of text (type 1).
    Normal,
    /// The unknown token (type 2).
    Unknown,
    /// A control token such as `<bos>` or `<end_of_turn>` (type 3): rendered only when
    /// special tokens are asked for, matched in text only with `parse_special`.
    Control,
    /// A user-defined token (type 4): always matched in text, always rendered.
    UserDefined,
    /// An unused slot (type 5): renders as nothing.
    Unused,
    /// A byte-fallback token `<0xXX>` (type 6).
    Byte,
    /// Any other type value (0 or out of range): renders as nothing.
    Undefined,
}

#[derive(Clone, Debug)]
pub(crate) struct TokenData {
    pub text: String,
    pub score: f32,
    pub attr: u32,
}

/// Special token ids; `None` where the vocabulary has none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// FxHash (rustc's hasher): the vocabulary lookups hash short strings millions of times
/// per megabyte of text; SipHash would dominate encoding time.
#[derive(Clone, Copy, Default)]
pub(crate) struct FxBuild;

pub(crate) struct FxHasher(u64);

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A tokenizer built from a GGUF file's `tokenizer.ggml.*` metadata.
///
/// Immutable after construction and `Send + Sync`: share one behind an `Arc`.
pub struct Tokenizer {
    kind: ModelKind,
    model_name: String,
    pre_name: String,
    pre_kind: Option<PreTokenizerKind>,
    pre: Option<pretokenize::PreTokenizer>,
    tokens: Vec<TokenData>,
    token_to_id: HashMap<String, u32, FxBuild>,
    /// BPE merges, keyed by the merge line "left right", valued by rank.
    merges: HashMap<String, u32, FxBuild>,
    special: SpecialIds,
    eog: BTreeSet<u32>,
    /// Control, user-defined and unknown tokens, longest text first.
    special_cache: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    remove_extra_whitespaces: bool,
    clean_spaces: bool,
    ignore_merges: bool,
    /// SPM byte fallback: byte → token (`<0xXX>`).
    spm_bytes: [Option<u32>; 256],
    /// GPT-2 byte ↔ unicode tables.
    byte_char: [char; 256],
    char_byte: HashMap<char, u8>,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
};

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl Tokenizer {
    /// Builds the tokenizer described by `file`'s metadata.
    ///
    /// Reads `tokenizer.ggml.model` (`llama` or `gpt2`), `.pre`, `.tokens`, `.scores`,
    /// `.token_type`, `.merges` (BPE), the special token ids and the `add_bos_token`,
    /// `add_eos_token`, `add_space_prefix` and `remove_extra_whitespaces` flags, with
    /// llama.cpp's defaults where absent. Malformed metadata is a [`TokenizerError`].
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        load::from_gguf(file)
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
    /// SentencePiece or BPE.
    pub fn model_kind(&self) -> ModelKind {
        self.kind
    }
    /// The BPE pre-tokenizer (`None` for SentencePiece).
    pub fn pre_tokenizer(&self) -> Option<PreTokenizerKind> {
        self.pre_kind
    }
    /// Beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.special.bos
    }
    /// End-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.special.eos
    }
    /// End-of-turn token (metadata, or recognised by text such as `<end_of_turn>`).
    pub fn eot_id(&self) -> Option<u32> {
        self.special.eot
    }
    /// End-of-message token (`<|eom_id|>`).
    pub fn eom_id(&self) -> Option<u32> {
        self.special.eom
    }
    /// Unknown token.
    pub fn unk_id(&self) -> Option<u32> {
        self.special.unk
    }
    /// Padding token.
    pub fn pad_id(&self) -> Option<u32> {
        self.special.pad
    }
    /// Separator token (`tokenizer.ggml.seperator_token_id`, sic).
    pub fn sep_id(&self) -> Option<u32> {
        self.special.sep
    }
    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    /// Whether SPM text gets a leading space (`tokenizer.ggml.add_space_prefix`).
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }
    /// `tokenizer.ggml.remove_extra_whitespaces` (read for completeness: llama.cpp only
    /// applies it to T5/UGM vocabularies, which pith does not support).
    pub fn remove_extra_whitespaces(&self) -> bool {
        self.remove_extra_whitespaces
    }
    /// Whether [`Tokenizer::decode`] applies llama.cpp's BPE clean-up (" ." → ".", …);
    /// true for e.g. GPT-2 and Llama 3, false for SentencePiece and Qwen 2.
    pub fn clean_spaces(&self) -> bool {
        self.clean_spaces
    }
    /// Whether generating `id` ends generation: EOS, EOT, EOM, and the tokens llama.cpp
    /// recognises by text (`<end_of_turn>`, `<|im_end|>`, `<|eot_id|>`, …).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }
    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.eog.iter().copied()
    }
    /// The control, user-defined and unknown tokens, longest text first: the tokens
    /// [`Tokenizer::encode`] looks for in the text (control and unknown ones only with
    /// `parse_special`).
    pub fn special_token_ids(&self) -> &[u32] {
        &self.special_cache
    }
    /// The stored text of token `id` (SPM pieces keep their `▁`, BPE pieces their
    /// byte-level encoding).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(|t| t.text.as_str())
    }
    /// The id of the token whose stored text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }
    /// The score of token `id` (SPM merge priority; 0 when the file has none).
    pub fn token_score(&self, id: u32) -> Option<f32> {
        self.tokens.get(id as usize).map(|t| t.score)
    }
    /// The kind of token `id`, from `tokenizer.ggml.token_type` (after llama.cpp's
    /// text-based promotions, e.g. `<end_of_turn>` is always control).
    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        let a = self.tokens.get(id as usize)?.attr;
        Some(if a & attr::CONTROL != 0 {
            TokenKind::Control
        } else if a & attr::USER_DEFINED != 0 {
            TokenKind::UserDefined
        } else if a & attr::UNKNOWN != 0 {
            TokenKind::Unknown
        } else if a & attr::BYTE != 0 {
            TokenKind::Byte
        } else if a & attr::UNUSED != 0 {
            TokenKind::Unused
        } else if a & attr::NORMAL != 0 {
            TokenKind::Normal
        } else {
            TokenKind::Undefined
        })
    }

    /// One line for `pith info`: model, vocabulary size, pre-tokenizer, special ids.
    pub fn summary(&self) -> String {
        let id = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let kind = match self.kind {
            ModelKind::Spm => "SPM",
            ModelKind::Bpe => "BPE",
        };
        let pre = if self.kind == ModelKind::Bpe {
            format!(
                " pre={}",
                if self.pre_name.is_empty() {
                    "default"
                } else {
                    &self.pre_name
                }
            )
        } else {
            String::new()
        };
        format!(
            "{} ({kind}) vocab={}{pre} bos={} eos={} eot={} unk={} pad={} eog={:?} add_bos={} add_eos={} add_space_prefix={}",
            self.model_name,
            self.tokens.len(),
            id(self.special.bos),
            id(self.special.eos),
            id(self.special.eot),
            id(self.special.unk),
            id(self.special.pad),
            self.eog,
            self.add_bos,
            self.add_eos,
            self.add_space_prefix,
        )
    }

    /// SPM byte-fallback token of `b`, or the unknown token when the vocabulary has no
    /// byte tokens (llama.cpp throws there).
    fn spm_byte_token(&self, b: u8) -> Option<u32> {
        self.spm_bytes[b as usize].or(self.special.unk)
    }
}
