//! GGUF vocabulary → HF tokenizer files (`tokenizer.json`, `tokenizer_config.json`, and
//! for SentencePiece vocabularies `tokenizer.model`).
//!
//! * `llama` (SentencePiece BPE: Gemma, Llama 2, Phi-3): `tokenizer.model` carries the
//!   exact pieces, scores and types (what `convert_hf_to_gguf.py` reads back), and
//!   `tokenizer.json` is a `tokenizers` BPE model with byte fallback whose merges are
//!   derived from the scores as transformers' `SentencePieceExtractor` does.
//! * `gpt2` (byte-level BPE: Llama 3, Qwen): vocab and merges as stored, a ByteLevel
//!   pre-tokenizer with the split regex of `tokenizer.ggml.pre`.

use std::collections::HashMap;

use pith_runtime::gguf::{Array, GgufFile, Value};
use serde_json::{json, Value as Json};

use super::spm::{Piece, SpModel};
use super::tokenizer::{BPE_PRE, BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED};
use crate::error::{Error, Result};

/// The files to write, as (file name, bytes).
pub struct TokenizerFiles {
    pub files: Vec<(&'static str, Vec<u8>)>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
}

fn arr<'a>(f: &'a GgufFile, key: &str) -> Option<&'a Array> {
    f.get(key).and_then(Value::as_array)
}

/// Builds the tokenizer files from `f`'s `tokenizer.*` metadata.
pub fn build(f: &GgufFile) -> Result<TokenizerFiles> {
    let model = f
        .get("tokenizer.ggml.model")
        .and_then(Value::as_str)
        .unwrap_or("");
    let tokens = arr(f, "tokenizer.ggml.tokens")
        .and_then(Array::as_strings)
        .ok_or_else(|| Error::Tokenizer("GGUF has no tokenizer.ggml.tokens".into()))?;
    let n = tokens.len();
    let types: Vec<i32> = arr(f, "tokenizer.ggml.token_type")
        .and_then(Array::to_i64_vec)
        .map(|v| v.into_iter().map(|x| x as i32).collect())
        .unwrap_or_else(|| vec![NORMAL; n]);
    if types.len() != n {
        return Err(Error::Tokenizer(
            "token_type and tokens differ in length".into(),
        ));
    }
    let id = |k: &str| {
        f.get(k)
            .and_then(Value::as_i64)
            .map(|v| v as u32)
            .filter(|&v| (v as usize) < n)
    };
    let bos = id("tokenizer.ggml.bos_token_id");
    let eos = id("tokenizer.ggml.eos_token_id");
    let unk = id("tokenizer.ggml.unknown_token_id");
    let pad = id("tokenizer.ggml.padding_token_id");
    let flag = |k: &str| f.get(k).and_then(Value::as_bool);
    let add_bos = flag("tokenizer.ggml.add_bos_token");
    let add_eos = flag("tokenizer.ggml.add_eos_token");
    let add_space_prefix = flag("tokenizer.ggml.add_space_prefix");
    let pre = f
        .get("tokenizer.ggml.pre")
        .and_then(Value::as_str)
        .unwrap_or("default");
    // What llama.cpp does when the keys are absent (llama-vocab.cpp): SPM and the
    // llama3 pre-tokenizer add BOS, nothing adds EOS.
    let eff_bos = Some(add_bos.unwrap_or(model == "llama" || pre == "llama-bpe"));
    let eff_eos = Some(add_eos.unwrap_or(false));

    // Added tokens: control and user-defined (HF's added_tokens / added_tokens_decoder).
    let added: Vec<Json> = (0..n)
        .filter(|&i| types[i] == CONTROL || types[i] == USER_DEFINED || types[i] == UNKNOWN)
        .map(|i| {
            json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": types[i] == USER_DEFINED,
                   "special": types[i] != USER_DEFINED})
        })
        .collect();

    let mut files: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let tok_json = match model {
        "llama" => {
            let scores: Vec<f32> = arr(f, "tokenizer.ggml.scores")
                .and_then(Array::to_f32_vec)
                .unwrap_or_else(|| vec![0.0; n]);
            if scores.len() != n {
                return Err(Error::Tokenizer("scores and tokens differ in length".into()));
            }
            let sp = SpModel {
                pieces: (0..n)
                    .map(|i| Piece {
                        piece: tokens[i].clone(),
                        score: scores[i],
                        kind: types[i],
                    })
                    .collect(),
                model_type: 2,
                byte_fallback: true,
                add_dummy_prefix: add_space_prefix.unwrap_or(true),
            };
            files.push(("tokenizer.model", sp.encode()));
            let vocab: serde_json::Map<String, Json> = tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (t.clone(), json!(i)))
                .collect();
            let merges = spm_merges(tokens, &scores, &types);
            let mut normalizers = Vec::new();
            if add_space_prefix.unwrap_or(true) {
                normalizers.push(json!({"type": "Prepend", "prepend": "\u{2581}"}));
            }
            normalizers.push(json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}));
            let mut decoders = vec![json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
                json!({"type": "ByteFallback"}), json!({"type": "Fuse"})];
            if add_space_prefix.unwrap_or(true) {
                decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
            }
            json!({
                "version": "1.0",
                "truncation": null,
                "padding": null,
                "added_tokens": added,
                "normalizer": {"type": "Sequence", "normalizers": normalizers},
                "pre_tokenizer": null,
                "post_processor": post_processor(bos, eos, eff_bos, eff_eos, tokens),
                "decoder": {"type": "Sequence", "decoders": decoders},
                "model": {
                    "type": "BPE", "dropout": null,
                    "unk_token": unk.map(|u| tokens[u as usize].clone()),
                    "continuing_subword_prefix": null, "end_of_word_suffix": null,
                    "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                    "vocab": vocab, "merges": merges,
                },
            })
        }
        "gpt2" => {
            let merges: Vec<Json> = arr(f, "tokenizer.ggml.merges")
                .and_then(Array::as_strings)
                .ok_or_else(|| Error::Tokenizer("gpt2 vocabulary without merges".into()))?
                .iter()
                .map(|m| {
                    let (a, b) = m.split_once(' ').unwrap_or((m, ""));
                    json!([a, b])
                })
                .collect();
            let regex = BPE_PRE
                .iter()
                .find(|(name, _)| *name == pre)
                .map(|(_, re)| *re)
                .ok_or_else(|| {
                    Error::Tokenizer(format!(
                        "pre-tokenizer '{pre}' has no known tokenizer.json form (pith knows llama-bpe, qwen2)"
                    ))
                })?;
            let vocab: serde_json::Map<String, Json> = tokens
                .iter()
                .enumerate()
                .filter(|&(i, _)| types[i] != CONTROL && types[i] != USER_DEFINED)
                .map(|(i, t)| (t.clone(), json!(i)))
                .collect();
            json!({
                "version": "1.0",
                "truncation": null,
                "padding": null,
                "added_tokens": added,
                "normalizer": null,
                "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
                ]},
                "post_processor": post_processor(bos, eos, eff_bos, eff_eos, tokens),
                "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
                "model": {
                    "type": "BPE", "dropout": null, "unk_token": null,
                    "continuing_subword_prefix": null, "end_of_word_suffix": null,
                    "fuse_unk": false, "byte_fallback": false, "ignore_merges": pre == "llama-bpe",
                    "vocab": vocab, "merges": merges,
                },
            })
        }
        other => {
            return Err(Error::Tokenizer(format!(
                "tokenizer model '{other}' cannot be converted (pith converts llama/SentencePiece and gpt2/BPE)"
            )))
        }
    };
    files.push((
        "tokenizer.json",
        serde_json::to_vec(&tok_json).map_err(|e| Error::Tokenizer(e.to_string()))?,
    ));

    // tokenizer_config's added_tokens_decoder: convert_hf_to_gguf gives these score
    // -1000 and CONTROL/USER_DEFINED; tokens scored otherwise keep their type through
    // tokenizer.model.
    let scores = arr(f, "tokenizer.ggml.scores").and_then(Array::to_f32_vec);
    let mut decoder = serde_json::Map::new();
    for a in added.iter().filter(|a| {
        let i = a["id"].as_u64().unwrap_or(0) as usize;
        model != "llama" || scores.as_ref().is_none_or(|s| s.get(i) == Some(&-1000.0))
    }) {
        let mut e = a.clone();
        let i = e["id"].as_u64().unwrap_or(0);
        if let Some(o) = e.as_object_mut() {
            o.remove("id");
        }
        decoder.insert(i.to_string(), e);
    }
    let name = |i: Option<u32>| i.map(|i| tokens[i as usize].clone());
    let mut cfg = json!({
        "tokenizer_class": if model == "llama" { "GemmaTokenizer" } else { "PreTrainedTokenizerFast" },
        "model_max_length": 1_000_000_000_000_000_000u64,
        "clean_up_tokenization_spaces": false,
        "added_tokens_decoder": decoder,
        "bos_token": name(bos),
        "eos_token": name(eos),
        "unk_token": name(unk),
        "pad_token": name(pad),
    });
    let o = cfg.as_object_mut().expect("object literal");
    if model == "llama" && f.architecture().ok() != Some("gemma3") {
        o.insert("tokenizer_class".into(), json!("LlamaTokenizerFast"));
    }
    if let Some(b) = add_bos {
        o.insert("add_bos_token".into(), json!(b));
    }
    if let Some(b) = add_eos {
        o.insert("add_eos_token".into(), json!(b));
    }
    if let Some(b) = flag("tokenizer.ggml.add_sep_token") {
        o.insert("add_sep_token".into(), json!(b));
    }
    if model == "llama" {
        if let Some(b) = add_space_prefix {
            o.insert("add_prefix_space".into(), json!(b));
        }
        o.insert("sp_model_kwargs".into(), json!({}));
    } else {
        o.insert("pith_gguf_pre".into(), json!(pre));
    }
    if let Some(t) = f.get("tokenizer.chat_template").and_then(Value::as_str) {
        o.insert("chat_template".into(), json!(t));
    }
    files.push((
        "tokenizer_config.json",
        serde_json::to_vec_pretty(&cfg).map_err(|e| Error::Tokenizer(e.to_string()))?,
    ));
    Ok(TokenizerFiles {
        files,
        bos,
        eos,
        pad,
    })
}

fn post_processor(
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: Option<bool>,
    add_eos: Option<bool>,
    tokens: &[String],
) -> Json {
    let mut single = Vec::new();
    let mut special = serde_json::Map::new();
    let mut add = |id: Option<u32>, on: Option<bool>, seq: &mut Vec<Json>| {
        if let (Some(i), Some(true)) = (id, on) {
            let t = tokens[i as usize].clone();
            seq.push(json!({"SpecialToken": {"id": t, "type_id": 0}}));
            special.insert(t.clone(), json!({"id": t, "ids": [i], "tokens": [t]}));
        }
    };
    add(bos, add_bos, &mut single);
    single.push(json!({"Sequence": {"id": "A", "type_id": 0}}));
    add(eos, add_eos, &mut single);
    let mut pair = single.clone();
    pair.push(json!({"Sequence": {"id": "B", "type_id": 1}}));
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special})
}

/// Merges of a SentencePiece BPE vocabulary, as transformers' `SentencePieceExtractor`:
/// every split of a normal piece into two pieces of the vocabulary, ordered by the merged
/// piece's score (highest first), ties by the parts' ids.
fn spm_merges(tokens: &[String], scores: &[f32], types: &[i32]) -> Vec<Json> {
    let index: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .filter(|&(i, _)| types[i] == NORMAL || types[i] == BYTE || types[i] == UNKNOWN)
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(f32, usize, usize, usize)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if types[i] != NORMAL {
            continue;
        }
        for (pos, _) in t.char_indices().skip(1) {
            let (l, r) = t.split_at(pos);
            if let (Some(&a), Some(&b)) = (index.get(l), index.get(r)) {
                if types[a] == NORMAL && types[b] == NORMAL {
                    merges.push((scores[i], i, a, b));
                }
            }
        }
    }
    merges.sort_by(|x, y| {
        y.0.total_cmp(&x.0)
            .then(x.1.cmp(&y.1))
            .then((x.2, x.3).cmp(&(y.2, y.3)))
    });
    merges
        .into_iter()
        .map(|(_, _, a, b)| json!([tokens[a], tokens[b]]))
        .collect()
}
