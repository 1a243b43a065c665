//! HF tokenizer files → GGUF `tokenizer.*` metadata, as `convert_hf_to_gguf.py` does.
//!
//! * `tokenizer.model` present (SentencePiece: Gemma, Llama 2, Phi-3):
//!   `_create_vocab_sentencepiece` — pieces, scores and types from the model, padded to
//!   `vocab_size`, `added_tokens_decoder` entries made CONTROL (special) or USER_DEFINED
//!   with score −1000; `tokenizer.ggml.model = llama`, `pre = default`.
//! * otherwise `tokenizer.json` with a byte-level BPE model (Llama 3, Qwen):
//!   `_set_vocab_gpt2` — tokens by id, added tokens CONTROL/USER_DEFINED, merges;
//!   `tokenizer.ggml.model = gpt2` and the pre-tokenizer name recognised from the split
//!   regex (llama.cpp hashes a test string's tokenization instead).
//!
//! Special token ids and `add_*_token` follow gguf-py's `SpecialVocab`
//! (`tokenizer_config.json`, then `config.json`), and `tokenizer.chat_template` comes from
//! `tokenizer_config.json` or `chat_template.jinja`.

use std::collections::HashMap;
use std::path::Path;

use pith_runtime::gguf::{Array, Value};
use serde_json::Value as Json;

use super::spm::SpModel;
use crate::error::{Error, Result};

/// GGUF token types (`llama_token_type`).
pub const NORMAL: i32 = 1;
pub const UNKNOWN: i32 = 2;
pub const CONTROL: i32 = 3;
pub const USER_DEFINED: i32 = 4;
pub const UNUSED: i32 = 5;
pub const BYTE: i32 = 6;

/// Known byte-level BPE pre-tokenizer regexes and llama.cpp's name for each.
pub const BPE_PRE: [(&str, &str); 2] = [
    (
        "llama-bpe",
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ),
    (
        "qwen2",
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ),
];

/// The converted vocabulary.
#[derive(Debug, Clone)]
pub struct Vocab {
    /// `tokenizer.*` key/values in the converter's order.
    pub metadata: Vec<(String, Value)>,
    /// Number of tokens (Gemma's converter truncates the embedding to this).
    pub n_tokens: usize,
}

pub(crate) fn read_json(path: &Path) -> Result<Option<Json>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `ModelBase.does_token_look_special` (convert_hf_to_gguf.py).
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// Converts the tokenizer of the HF directory `dir`; `vocab_size` is `config.json`'s.
pub fn convert(dir: &Path, config: &Json, vocab_size: usize) -> Result<Vocab> {
    let tok_path = dir.join("tokenizer.json");
    let tok_cfg = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Json::Null);
    let sp_path = dir.join("tokenizer.model");
    let mut meta: Vec<(String, Value)> = Vec::new();
    let (added_tokens, n_tokens) = if sp_path.is_file() {
        let bytes = std::fs::read(&sp_path).map_err(crate::error::io(&sp_path))?;
        let sp = SpModel::parse(&bytes)?;
        let (tokens, scores, types) = spm_vocab(&sp, &tok_cfg, vocab_size)?;
        let n = tokens.len();
        // Only the added tokens of tokenizer.json are needed: parse nothing else (its
        // vocabulary and merges are large).
        let added = read_added_tokens(&tok_path)?;
        meta.push(("tokenizer.ggml.model".into(), Value::String("llama".into())));
        meta.push(("tokenizer.ggml.pre".into(), Value::String("default".into())));
        meta.push((
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(tokens)),
        ));
        meta.push((
            "tokenizer.ggml.scores".into(),
            Value::Array(Array::F32(scores)),
        ));
        meta.push((
            "tokenizer.ggml.token_type".into(),
            Value::Array(Array::I32(types)),
        ));
        (added, n)
    } else {
        let tj = read_json(&tok_path)?;
        let tj = tj.as_ref().ok_or_else(|| {
            Error::Tokenizer(format!(
                "{}: neither tokenizer.model nor tokenizer.json",
                dir.display()
            ))
        })?;
        let (tokens, types, merges, pre) = bpe_vocab(tj, &tok_cfg, vocab_size)?;
        let n = tokens.len();
        meta.push(("tokenizer.ggml.model".into(), Value::String("gpt2".into())));
        meta.push(("tokenizer.ggml.pre".into(), Value::String(pre)));
        meta.push((
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(tokens)),
        ));
        meta.push((
            "tokenizer.ggml.token_type".into(),
            Value::Array(Array::I32(types)),
        ));
        meta.push((
            "tokenizer.ggml.merges".into(),
            Value::Array(Array::String(merges)),
        ));
        let added = tj
            .get("added_tokens")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        (added, n)
    };

    // SpecialVocab: ids from tokenizer_config (looked up among tokenizer.json's
    // added_tokens), then config.json's *_token_id; add_*_token from tokenizer_config.
    let added: Vec<(String, u32)> = added_tokens
        .iter()
        .filter_map(|t| {
            Some((
                t.get("content")?.as_str()?.to_string(),
                t.get("id")?.as_u64()? as u32,
            ))
        })
        .collect();
    let mut ids: Vec<(&str, u32)> = Vec::new();
    for typ in ["bos", "eos", "unk", "sep", "pad", "cls", "mask"] {
        let entry = tok_cfg.get(format!("{typ}_token"));
        let content = match entry {
            Some(Json::String(s)) => Some(s.as_str()),
            Some(Json::Object(o)) => o.get("content").and_then(Json::as_str),
            _ => None,
        };
        let id = content
            .and_then(|c| added.iter().find(|(a, _)| a == c).map(|&(_, id)| id))
            .or_else(|| {
                config
                    .get(format!("{typ}_token_id"))
                    .and_then(Json::as_u64)
                    .map(|v| v as u32)
            });
        if let Some(id) = id.filter(|&id| (id as usize) < n_tokens) {
            ids.push((typ, id));
        }
    }
    let key = |typ: &str| match typ {
        "unk" => "tokenizer.ggml.unknown_token_id".to_string(),
        "sep" => "tokenizer.ggml.seperator_token_id".to_string(),
        "pad" => "tokenizer.ggml.padding_token_id".to_string(),
        t => format!("tokenizer.ggml.{t}_token_id"),
    };
    for (typ, id) in ids {
        if typ == "cls" || typ == "mask" {
            meta.push((format!("tokenizer.ggml.{typ}_token_id"), Value::U32(id)));
        } else {
            meta.push((key(typ), Value::U32(id)));
        }
    }
    for typ in ["bos", "eos", "sep"] {
        if let Some(b) = tok_cfg
            .get(format!("add_{typ}_token"))
            .and_then(Json::as_bool)
        {
            meta.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(b)));
        }
    }
    if let Some(b) = tok_cfg.get("add_prefix_space").and_then(Json::as_bool) {
        meta.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(b)));
    }
    let template = match tok_cfg.get("chat_template").and_then(Json::as_str) {
        Some(t) => Some(t.to_string()),
        None => std::fs::read_to_string(dir.join("chat_template.jinja")).ok(),
    };
    if let Some(t) = template {
        meta.push(("tokenizer.chat_template".into(), Value::String(t)));
    }
    Ok(Vocab {
        metadata: meta,
        n_tokens,
    })
}

/// The `added_tokens` of a `tokenizer.json` (empty when the file is absent), without
/// materialising the rest of the file.
fn read_added_tokens(path: &Path) -> Result<Vec<Json>> {
    #[derive(serde::Deserialize)]
    struct AddedOnly {
        #[serde(default)]
        added_tokens: Vec<Json>,
    }
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice::<AddedOnly>(&b)
            .map(|a| a.added_tokens)
            .map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

type SpmVocab = (Vec<String>, Vec<f32>, Vec<i32>);

fn spm_vocab(sp: &SpModel, tok_cfg: &Json, vocab_size: usize) -> Result<SpmVocab> {
    let n = vocab_size.max(1);
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000.0f32; n];
    let mut types = vec![UNUSED; n];
    for (i, p) in sp.pieces.iter().enumerate().take(n) {
        tokens[i] = p.piece.clone();
        scores[i] = p.score;
        types[i] = match p.kind {
            2 => UNKNOWN,
            3 => CONTROL,
            5 => UNUSED,
            6 => BYTE,
            _ => NORMAL,
        };
    }
    if let Some(dec) = tok_cfg
        .get("added_tokens_decoder")
        .and_then(Json::as_object)
    {
        for (id, data) in dec {
            let Ok(id) = id.parse::<usize>() else {
                continue;
            };
            if id >= n {
                continue;
            }
            let Some(content) = data.get("content").and_then(Json::as_str) else {
                continue;
            };
            let special = data.get("special").and_then(Json::as_bool).unwrap_or(false);
            if special || looks_special(content) {
                types[id] = CONTROL;
                tokens[id] = content.to_string();
            } else {
                types[id] = USER_DEFINED;
                tokens[id] = content.replace('\u{2581}', " ");
            }
            scores[id] = -1000.0;
        }
    }
    Ok((tokens, scores, types))
}

type BpeVocab = (Vec<String>, Vec<i32>, Vec<String>, String);

fn bpe_vocab(tj: &Json, tok_cfg: &Json, vocab_size: usize) -> Result<BpeVocab> {
    let model = tj
        .get("model")
        .ok_or_else(|| Error::Tokenizer("tokenizer.json has no 'model'".into()))?;
    if model.get("type").and_then(Json::as_str) != Some("BPE") {
        return Err(Error::Tokenizer(format!(
            "tokenizer.json model type {:?} without tokenizer.model: only byte-level BPE (Llama 3, Qwen) or SentencePiece tokenizer.model can be converted",
            model.get("type")
        )));
    }
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| Error::Tokenizer("tokenizer.json: model.vocab is not an object".into()))?;
    let mut by_id: HashMap<usize, String> = HashMap::with_capacity(vocab.len());
    for (k, v) in vocab {
        let id = v.as_u64().ok_or_else(|| {
            Error::Tokenizer(format!("tokenizer.json: id of '{k}' is not an integer"))
        })?;
        by_id.insert(id as usize, k.clone());
    }
    let mut added: HashMap<usize, (String, bool)> = HashMap::new();
    for t in tj
        .get("added_tokens")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(c)) = (
            t.get("id").and_then(Json::as_u64),
            t.get("content").and_then(Json::as_str),
        ) {
            let special = t.get("special").and_then(Json::as_bool).unwrap_or(false);
            added.insert(id as usize, (c.to_string(), special));
        }
    }
    if let Some(dec) = tok_cfg
        .get("added_tokens_decoder")
        .and_then(Json::as_object)
    {
        for (id, data) in dec {
            if let (Ok(id), Some(c)) = (
                id.parse::<usize>(),
                data.get("content").and_then(Json::as_str),
            ) {
                let special = data.get("special").and_then(Json::as_bool).unwrap_or(false);
                added.entry(id).or_insert((c.to_string(), special));
            }
        }
    }
    let max_id = by_id.keys().chain(added.keys()).copied().max().unwrap_or(0);
    if max_id >= 1 << 24 {
        return Err(Error::Tokenizer(format!("token id {max_id} is too large")));
    }
    // get_vocab_base: vocab_size = max(config vocab_size, len(vocab)); missing ids are [PADi].
    let n = vocab_size.max(max_id + 1);
    let mut tokens = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    for i in 0..n {
        if let Some((c, special)) = added.get(&i) {
            tokens.push(c.clone());
            types.push(if *special || looks_special(c) {
                CONTROL
            } else {
                USER_DEFINED
            });
        } else if let Some(t) = by_id.get(&i) {
            tokens.push(t.clone());
            types.push(NORMAL);
        } else {
            tokens.push(format!("[PAD{i}]"));
            types.push(UNUSED);
        }
    }
    let merges: Vec<String> = match model.get("merges").and_then(Json::as_array) {
        Some(m) => m
            .iter()
            .map(|x| match x {
                Json::String(s) => Ok(s.clone()),
                Json::Array(p) if p.len() == 2 => {
                    let a = p[0].as_str().unwrap_or_default().replace(' ', "\u{120}");
                    let b = p[1].as_str().unwrap_or_default().replace(' ', "\u{120}");
                    Ok(format!("{a} {b}"))
                }
                _ => Err(Error::Tokenizer("tokenizer.json: malformed merge".into())),
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let pre_json = tj
        .get("pre_tokenizer")
        .map(Json::to_string)
        .unwrap_or_default();
    let pre = tok_cfg
        .get("pith_gguf_pre")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .or_else(|| {
            BPE_PRE.iter().find_map(|(name, re)| {
                let escaped = serde_json::to_string(re).unwrap_or_default();
                pre_json
                    .contains(escaped.trim_matches('"'))
                    .then(|| name.to_string())
            })
        })
        .ok_or_else(|| {
            Error::Tokenizer(
                "tokenizer.json: unrecognised pre-tokenizer (pith knows llama-bpe and qwen2)"
                    .into(),
            )
        })?;
    Ok((tokens, types, merges, pre))
}
