//! Building a [`Tokenizer`] from GGUF metadata: llama.cpp's `llama_vocab::impl::load`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::pretokenize::{pre_config, PreTokenizer};
use super::unicode::byte_to_char_table;
use super::{attr, FxBuild, ModelKind, SpecialIds, TokenData, Tokenizer, TokenizerError};
use crate::gguf::{Array, GgufFile, Value};

const K_MODEL: &str = "tokenizer.ggml.model";
const K_PRE: &str = "tokenizer.ggml.pre";
const K_TOKENS: &str = "tokenizer.ggml.tokens";
const K_SCORES: &str = "tokenizer.ggml.scores";
const K_TYPES: &str = "tokenizer.ggml.token_type";
const K_MERGES: &str = "tokenizer.ggml.merges";

/// Token texts that llama.cpp recognises as end-of-turn, end-of-message and FIM tokens
/// when the metadata does not name them (`llama_vocab::impl::load`, 0c1e570).
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Texts that always end generation.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// GGUF token types (`llama_token_type`).
fn type_to_attr(t: i32) -> u32 {
    match t {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => attr::UNDEFINED,
    }
}

struct Ctx<'a> {
    file: &'a GgufFile,
    path: &'a Path,
}

impl Ctx<'_> {
    fn wrong_type(&self, key: &'static str, expected: &'static str, v: &Value) -> TokenizerError {
        let found = match v {
            Value::Array(a) => format!("array of {}", a.element_type_name()),
            other => other.type_name().to_owned(),
        };
        TokenizerError::WrongType {
            path: self.path.to_owned(),
            key,
            expected,
            found,
        }
    }
    fn opt_str(&self, key: &'static str) -> Result<Option<&str>, TokenizerError> {
        self.file
            .get(key)
            .map(|v| v.as_str().ok_or_else(|| self.wrong_type(key, "string", v)))
            .transpose()
    }
    fn opt_bool(&self, key: &'static str) -> Result<Option<bool>, TokenizerError> {
        self.file
            .get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.wrong_type(key, "bool", v)))
            .transpose()
    }
    fn opt_array(&self, key: &'static str) -> Result<Option<&Array>, TokenizerError> {
        self.file
            .get(key)
            .map(|v| v.as_array().ok_or_else(|| self.wrong_type(key, "array", v)))
            .transpose()
    }
    fn opt_id(&self, key: &'static str, n_tokens: usize) -> Result<Option<u32>, TokenizerError> {
        let Some(v) = self.file.get(key) else {
            return Ok(None);
        };
        let id = v
            .as_i64()
            .ok_or_else(|| self.wrong_type(key, "integer", v))?;
        match u32::try_from(id) {
            Ok(id) if (id as usize) < n_tokens => Ok(Some(id)),
            _ => Err(TokenizerError::SpecialIdOutOfRange {
                path: self.path.to_owned(),
                key,
                id,
                n_tokens,
            }),
        }
    }
}

pub(super) fn from_gguf(file: &GgufFile) -> Result<Tokenizer, TokenizerError> {
    let _span = tracing::debug_span!("tokenizer_load").entered();
    let cx = Ctx {
        file,
        path: file.path(),
    };
    let path = || cx.path.to_owned();

    let model = cx
        .opt_str(K_MODEL)?
        .ok_or_else(|| TokenizerError::MissingKey {
            path: path(),
            key: K_MODEL,
        })?;
    let pre_name = cx.opt_str(K_PRE)?.unwrap_or("").to_owned();
    let kind = match model {
        "llama" => ModelKind::Spm,
        "gpt2" => ModelKind::Bpe,
        other => {
            return Err(TokenizerError::UnsupportedModel {
                path: path(),
                model: other.to_owned(),
            })
        }
    };

    // --- tokens, scores, types ---
    let tokens_arr = cx
        .opt_array(K_TOKENS)?
        .ok_or_else(|| TokenizerError::MissingKey {
            path: path(),
            key: K_TOKENS,
        })?;
    let texts = tokens_arr.as_strings().ok_or_else(|| {
        cx.wrong_type(
            K_TOKENS,
            "array of string",
            &Value::Array(tokens_arr.clone()),
        )
    })?;
    let n = texts.len();
    if n == 0 || n > i32::MAX as usize {
        return Err(TokenizerError::BadVocabSize {
            path: path(),
            len: n,
            max: i32::MAX as usize,
        });
    }
    let scores: Option<Vec<f32>> = match cx.opt_array(K_SCORES)? {
        None => None,
        Some(Array::F32(v)) => Some(v.clone()),
        Some(Array::I32(v)) => Some(v.iter().map(|&x| x as f32).collect()),
        Some(a) => {
            return Err(cx.wrong_type(K_SCORES, "array of f32 or i32", &Value::Array(a.clone())))
        }
    };
    if let Some(s) = &scores {
        if s.len() < n {
            return Err(TokenizerError::LengthMismatch {
                path: path(),
                key: K_SCORES,
                len: s.len(),
                n_tokens: n,
            });
        }
    }
    let types: Option<&[i32]> = match cx.opt_array(K_TYPES)? {
        None => None,
        Some(Array::I32(v)) => Some(v),
        Some(a) => return Err(cx.wrong_type(K_TYPES, "array of i32", &Value::Array(a.clone()))),
    };
    if let Some(t) = types {
        if t.len() < n {
            return Err(TokenizerError::LengthMismatch {
                path: path(),
                key: K_TYPES,
                len: t.len(),
                n_tokens: n,
            });
        }
    }

    let mut tokens = Vec::with_capacity(n);
    let mut token_to_id: HashMap<String, u32, FxBuild> =
        HashMap::with_capacity_and_hasher(n, FxBuild);
    for (i, text) in texts.iter().enumerate() {
        let text = if text.is_empty() {
            format!("[EMPTY_{i}]")
        } else {
            text.clone()
        };
        if let Some(prev) = token_to_id.insert(text.clone(), i as u32) {
            // llama.cpp asserts the map and the list have the same size: it refuses the file.
            return Err(TokenizerError::DuplicateToken {
                path: path(),
                text,
                first: prev,
                second: i as u32,
            });
        }
        let score = scores.as_ref().map_or(0.0, |s| s[i]);
        let attr = types.map_or(attr::NORMAL, |t| type_to_attr(t[i]));
        tokens.push(TokenData { text, score, attr });
    }

    // --- model-specific defaults (llama.cpp) ---
    let mut special = SpecialIds::default();
    let (mut add_bos, mut add_eos, mut add_space_prefix, clean_spaces, ignore_merges, pre_kind);
    let mut merges: HashMap<String, u32, FxBuild> = HashMap::with_hasher(FxBuild);
    match kind {
        ModelKind::Spm => {
            special.bos = Some(1);
            special.eos = Some(2);
            special.unk = Some(0);
            add_bos = true;
            add_eos = false;
            add_space_prefix = true;
            clean_spaces = false;
            ignore_merges = false;
            pre_kind = None;
        }
        ModelKind::Bpe => {
            let m = cx
                .opt_array(K_MERGES)?
                .ok_or_else(|| TokenizerError::MissingKey {
                    path: path(),
                    key: K_MERGES,
                })?;
            let lines = m.as_strings().ok_or_else(|| {
                cx.wrong_type(K_MERGES, "array of string", &Value::Array(m.clone()))
            })?;
            merges.reserve(lines.len());
            for (rank, line) in lines.iter().enumerate() {
                // llama.cpp splits at the first space after the first byte; lines without
                // one become the pair ("", ""), which never matches.
                if line.as_bytes().iter().skip(1).any(|&b| b == b' ') {
                    merges.entry(line.clone()).or_insert(rank as u32);
                }
            }
            special.bos = Some(11);
            special.eos = Some(11);
            let cfg =
                pre_config(&pre_name).ok_or_else(|| TokenizerError::UnsupportedPreTokenizer {
                    path: path(),
                    pre: pre_name.clone(),
                })?;
            add_bos = cfg.add_bos;
            add_eos = false;
            add_space_prefix = false;
            clean_spaces = cfg.clean_spaces;
            ignore_merges = cfg.ignore_merges;
            pre_kind = Some(cfg.kind);
        }
    }
    if let Some(v) = cx.opt_bool("tokenizer.ggml.add_space_prefix")? {
        add_space_prefix = v;
    }
    let remove_extra_whitespaces = cx
        .opt_bool("tokenizer.ggml.remove_extra_whitespaces")?
        .unwrap_or(false);

    // Defaults outside the vocabulary are disabled; explicit ids must be inside it.
    for id in [&mut special.bos, &mut special.eos, &mut special.unk] {
        if id.is_some_and(|v| v as usize >= n) {
            *id = None;
        }
    }
    let keys: [(&'static str, &mut Option<u32>); 14] = [
        ("tokenizer.ggml.bos_token_id", &mut special.bos),
        ("tokenizer.ggml.eos_token_id", &mut special.eos),
        ("tokenizer.ggml.eot_token_id", &mut special.eot),
        ("tokenizer.ggml.eom_token_id", &mut special.eom),
        ("tokenizer.ggml.unknown_token_id", &mut special.unk),
        ("tokenizer.ggml.seperator_token_id", &mut special.sep),
        ("tokenizer.ggml.padding_token_id", &mut special.pad),
        ("tokenizer.ggml.mask_token_id", &mut special.mask),
        ("tokenizer.ggml.fim_pad_token_id", &mut special.fim_pad),
        ("tokenizer.ggml.fim_rep_token_id", &mut special.fim_rep),
        ("tokenizer.ggml.fim_sep_token_id", &mut special.fim_sep),
        ("tokenizer.ggml.fim_pre_token_id", &mut special.fim_pre),
        ("tokenizer.ggml.fim_suf_token_id", &mut special.fim_suf),
        ("tokenizer.ggml.fim_mid_token_id", &mut special.fim_mid),
    ];
    for (key, slot) in keys {
        if let Some(id) = cx.opt_id(key, n)? {
            *slot = Some(id);
        }
    }
    if let Some(v) = cx.opt_bool("tokenizer.ggml.add_bos_token")? {
        add_bos = v;
    }
    if let Some(v) = cx.opt_bool("tokenizer.ggml.add_eos_token")? {
        add_eos = v;
    }
    if add_bos && special.bos.is_none() {
        return Err(TokenizerError::MissingSpecialToken {
            path: path(),
            key: "tokenizer.ggml.add_bos_token",
        });
    }
    if add_eos && special.eos.is_none() {
        return Err(TokenizerError::MissingSpecialToken {
            path: path(),
            key: "tokenizer.ggml.add_eos_token",
        });
    }

    // --- special tokens recognised by their text ---
    // llama.cpp walks an unordered map and takes the first candidate it meets, so with
    // several candidates its choice depends on hashing. pith takes the first in list order
    // (which agrees with llama.cpp on Qwen 2: `<|im_end|>` over `<|endoftext|>`).
    let find = |texts: &[&str]| texts.iter().find_map(|t| token_to_id.get(*t).copied());
    let promote = |id: u32, tokens: &mut Vec<TokenData>| tokens[id as usize].attr |= attr::CONTROL;
    for (slot, texts) in [
        (&mut special.eot, EOT_TEXTS),
        (&mut special.eom, EOM_TEXTS),
        (&mut special.fim_pre, FIM_PRE_TEXTS),
        (&mut special.fim_suf, FIM_SUF_TEXTS),
        (&mut special.fim_mid, FIM_MID_TEXTS),
        (&mut special.fim_pad, FIM_PAD_TEXTS),
        (&mut special.fim_rep, FIM_REP_TEXTS),
        (&mut special.fim_sep, FIM_SEP_TEXTS),
    ] {
        if slot.is_none() {
            if let Some(id) = find(texts) {
                *slot = Some(id);
                promote(id, &mut tokens);
            }
        }
    }
    let mut eog: BTreeSet<u32> = [special.fim_pad, special.fim_rep, special.fim_sep]
        .into_iter()
        .flatten()
        .collect();
    for t in EOG_TEXTS {
        if let Some(&id) = token_to_id.get(*t) {
            eog.insert(id);
            promote(id, &mut tokens);
        }
    }
    // gpt-oss: these are always rendered.
    for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(&id) = token_to_id.get(t) {
            tokens[id as usize].attr = attr::USER_DEFINED;
        }
    }
    eog.extend(
        [special.eos, special.eot, special.eom]
            .into_iter()
            .flatten(),
    );
    let has = |eog: &BTreeSet<u32>, t: &str| token_to_id.get(t).is_some_and(|id| eog.contains(id));
    let [ret, call, calls, flush, end] = [
        "<|return|>",
        "<|call|>",
        "<|calls|>",
        "<|flush|>",
        "<|end|>",
    ]
    .map(|t| has(&eog, t));
    if end && (call || calls) && (ret || flush) {
        let id = token_to_id["<|end|>"];
        eog.remove(&id);
        tokens[id as usize].attr = attr::USER_DEFINED;
    }
    if (has(&eog, "<|tool_response>") || has(&eog, "<|plamo:eos|>")) && has(&eog, "</s>") {
        let id = token_to_id["</s>"];
        eog.remove(&id);
        tokens[id as usize].attr = attr::NORMAL;
    }

    // --- special-token cache: control, user-defined and unknown tokens, longest first ---
    let mut special_cache: Vec<u32> = (0..n as u32)
        .filter(|&id| {
            tokens[id as usize].attr & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
        })
        .collect();
    // llama.cpp's std::sort is not stable; ties keep id order here.
    special_cache.sort_by(|&a, &b| {
        tokens[b as usize]
            .text
            .len()
            .cmp(&tokens[a as usize].text.len())
    });

    // Phi-3: special tokens strip whitespace on their right (by model name, as llama.cpp).
    let name = cx
        .opt_str("general.name")?
        .unwrap_or("")
        .to_ascii_lowercase();
    if name.contains("phi-3") || name.contains("phi3") {
        for &id in &special_cache {
            tokens[id as usize].attr |= attr::RSTRIP;
        }
        if let Some(&id) = token_to_id.get("</s>") {
            tokens[id as usize].attr |= attr::RSTRIP;
        }
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            if let Some(&id) = token_to_id.get(t) {
                tokens[id as usize].attr &= !attr::RSTRIP;
            }
        }
    }

    // --- byte tables ---
    let mut spm_bytes = [None; 256];
    if kind == ModelKind::Spm {
        for (b, slot) in spm_bytes.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            *slot = token_to_id.get(hex.as_str()).copied().or_else(|| {
                // llama.cpp falls back to the byte itself as a one-byte string.
                (b < 0x80)
                    .then(|| {
                        token_to_id
                            .get(char::from(b as u8).to_string().as_str())
                            .copied()
                    })
                    .flatten()
            });
        }
    }
    let byte_char = byte_to_char_table();
    let char_byte = byte_char
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect();

    let pre = pre_kind.map(PreTokenizer::new).transpose()?;
    let tok = Tokenizer {
        kind,
        model_name: model.to_owned(),
        pre_name,
        pre_kind,
        pre,
        tokens,
        token_to_id,
        merges,
        special,
        eog,
        special_cache,
        add_bos,
        add_eos,
        add_space_prefix,
        remove_extra_whitespaces,
        clean_spaces,
        ignore_merges,
        spm_bytes,
        byte_char,
        char_byte,
    };
    tracing::debug!(summary = %tok.summary(), "tokenizer loaded");
    Ok(tok)
}
