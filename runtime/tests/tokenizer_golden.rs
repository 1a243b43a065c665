//! pith's tokenizer against llama.cpp (the reference).
//!
//! * Gemma 3 (SentencePiece, 262k vocabulary): `tests/golden/tokenizer/gemma3.jsonl`,
//!   made by `llama-tokenize` and llama.cpp's `llama_detokenize` on the real model (see
//!   `tests/golden/tokenizer/README.md`).
//! * llama.cpp's own tokenizer test vectors (`models/ggml-vocab-*.gguf{,.inp,.out}`,
//!   copied to `tests/golden/vocab/`), run as llama.cpp's `test-tokenizer-0` runs them:
//!   `add_special = false`, `parse_special = false`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use pith_runtime::gguf::GgufFile;
use pith_runtime::tokenizer::{ModelKind, Tokenizer};
use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ has a parent")
        .to_owned()
}

fn gemma_path() -> PathBuf {
    let home = std::env::var_os("PITH_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/pith")
        });
    let path = home.join("models/gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.exists(),
        "the Gemma 3 270M model is missing: expected {} (set PITH_HOME, or fetch the model first)",
        path.display()
    );
    path
}

fn load(path: &Path) -> Tokenizer {
    let file = GgufFile::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("tokenizer of {}: {e}", path.display()))
}

/// Streams `ids` through a [`pith_runtime::tokenizer::StreamDecoder`]; returns the chunks
/// and whether any token's bytes were held back (a character split across tokens).
fn stream(tok: &Tokenizer, ids: &[u32], skip_special: bool) -> (Vec<String>, bool) {
    let mut dec = tok.stream_decoder(skip_special);
    let mut held = false;
    let mut chunks: Vec<String> = ids
        .iter()
        .map(|&id| {
            let c = dec.feed(id);
            held |= dec.pending_len() > 0;
            assert!(
                dec.pending_len() <= 3,
                "more than one partial character held back"
            );
            c
        })
        .collect();
    chunks.push(dec.flush());
    (chunks, held)
}

struct GoldenCase {
    text: String,
    add_special: bool,
    parse_special: bool,
    ids: Vec<u32>,
    detok: String,
    detok_special: String,
}

fn golden_cases(file: &str) -> Vec<(Option<String>, GoldenCase)> {
    let path = repo_root().join("tests/golden/tokenizer").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("golden line is JSON");
            let vocab = v.get("vocab").and_then(Value::as_str).map(str::to_owned);
            (
                vocab,
                GoldenCase {
                    text: v["text"].as_str().expect("text").to_owned(),
                    add_special: v["add_special"].as_bool().expect("add_special"),
                    parse_special: v["parse_special"].as_bool().expect("parse_special"),
                    ids: v["ids"]
                        .as_array()
                        .expect("ids")
                        .iter()
                        .map(|x| x.as_u64().expect("id") as u32)
                        .collect(),
                    detok: v["detok"].as_str().expect("detok").to_owned(),
                    detok_special: v["detok_special"]
                        .as_str()
                        .expect("detok_special")
                        .to_owned(),
                },
            )
        })
        .collect()
}

#[test]
fn gemma3_encode_decode_and_stream_match_llama_cpp() {
    let tok = load(&gemma_path());
    assert_eq!(tok.model_kind(), ModelKind::Spm);
    assert_eq!(tok.vocab_size(), 262_144);
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(2), Some(1)));
    eprintln!("{}", tok.summary());
    assert!(tok.summary().contains("vocab=262144"), "{}", tok.summary());
    let end_of_turn = tok
        .token_id("<end_of_turn>")
        .expect("<end_of_turn> in vocab");
    assert_eq!(tok.eot_id(), Some(end_of_turn));
    assert!(tok.is_eog(end_of_turn) && tok.is_eog(1) && !tok.is_eog(2));

    let cases: Vec<GoldenCase> = golden_cases("gemma3.jsonl")
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert!(cases.len() >= 160, "golden file has {} cases", cases.len());
    let mut failures = Vec::new();
    let (mut round_trips, mut held_back) = (0, 0);
    for c in &cases {
        // llama-tokenize passes add_special = (model adds BOS) && !--no-bos.
        let add_special = c.add_special && tok.add_bos();
        let ids = tok.encode(&c.text, add_special, c.parse_special);
        if ids != c.ids {
            failures.push(format!(
                "encode({:?}, add_special={}, parse_special={}):\n  pith  {ids:?}\n  llama {:?}",
                c.text, c.add_special, c.parse_special, c.ids
            ));
            continue;
        }
        let (plain, special) = (tok.decode(&ids, true), tok.decode(&ids, false));
        if plain != c.detok || special != c.detok_special {
            failures.push(format!(
                "decode({ids:?}):\n  pith  {plain:?} / {special:?}\n  llama {:?} / {:?}",
                c.detok, c.detok_special
            ));
        }
        // Round trip wherever llama.cpp's does.
        if c.detok_special == c.text {
            round_trips += 1;
            assert_eq!(
                tok.decode(&tok.encode(&c.text, add_special, c.parse_special), false),
                c.text
            );
        }
        for skip in [true, false] {
            let (chunks, held) = stream(&tok, &ids, skip);
            held_back += usize::from(held);
            let whole = tok.decode(&ids, skip);
            if chunks.concat() != whole {
                failures.push(format!(
                    "stream({ids:?}, skip={skip}) = {chunks:?}, decode = {whole:?}"
                ));
            }
            // A replacement character in a chunk must come from the text itself, not
            // from a character split between tokens.
            let fffd = |s: &str| s.matches('\u{FFFD}').count();
            assert_eq!(chunks.iter().map(|s| fffd(s)).sum::<usize>(), fffd(&whole));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} Gemma cases differ from llama.cpp:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        round_trips >= 100,
        "only {round_trips} cases round-trip in llama.cpp"
    );
    assert!(
        held_back > 0,
        "no golden sequence split a character across tokens (byte fallback untested)"
    );
    eprintln!("gemma3: {} cases match llama.cpp, {round_trips} round-trip, {held_back} streams held bytes back", cases.len());
}

#[test]
fn gemma3_encodes_10kb_quickly() {
    let file = GgufFile::open(gemma_path()).expect("open model");
    let t0 = Instant::now();
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    eprintln!("gemma3 tokenizer built in {:?}", t0.elapsed());
    let unit =
        "The quick brown fox jumps over the lazy dog. 日本語のテキスト🦙 fn main() { x += 42; }\n";
    let text: String = unit.repeat(10_240 / unit.len() + 1);
    let t = Instant::now();
    let ids = tok.encode(&text, true, true);
    let dt = t.elapsed();
    // One unbroken 100 kB word: the merge loop must stay O(n log n).
    let long = "ab".repeat(50_000);
    let t2 = Instant::now();
    let long_ids = tok.encode(&long, false, false);
    let dt2 = t2.elapsed();
    eprintln!(
        "gemma3 encode: {} bytes -> {} tokens in {:?}; 100 kB word -> {} tokens in {:?}",
        text.len(),
        ids.len(),
        dt,
        long_ids.len(),
        dt2
    );
    assert_eq!(tok.decode(&long_ids, false), long);
    assert!(
        dt.as_secs_f64() < 2.0 && dt2.as_secs_f64() < 5.0,
        "encoding is too slow: {dt:?}, {dt2:?}"
    );
}

/// Special ids, end-of-generation set and special-token count, as llama.cpp reports them
/// when loading each vocabulary (`tests/golden/tokenizer/vocab_meta.json`).
#[test]
fn special_ids_and_eog_match_llama_cpp() {
    let path = repo_root().join("tests/golden/tokenizer/vocab_meta.json");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("vocab_meta.json"))
            .expect("JSON");
    let meta = meta.as_object().expect("object");
    assert!(meta.len() >= 6);
    let mut failures = Vec::new();
    for (name, m) in meta {
        let tok = if name == "gemma3" {
            load(&gemma_path())
        } else {
            load(&repo_root().join(format!("tests/golden/vocab/ggml-vocab-{name}.gguf")))
        };
        let eog: Vec<u32> = tok.eog_ids().collect();
        let want: Vec<u32> = m["eog"]
            .as_array()
            .expect("eog")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        if eog != want {
            failures.push(format!("{name}: eog {eog:?}, llama.cpp {want:?}"));
        }
        let ours = [
            ("bos", tok.bos_id()),
            ("eos", tok.eos_id()),
            ("eot", tok.eot_id()),
            ("eom", tok.eom_id()),
            ("unk", tok.unk_id()),
            ("sep", tok.sep_id()),
            ("pad", tok.pad_id()),
        ];
        for (key, id) in ours {
            let want = m["special"]
                .get(key)
                .map(|v| v.as_u64().expect("id") as u32);
            if id != want {
                failures.push(format!("{name}: {key} {id:?}, llama.cpp {want:?}"));
            }
        }
        let n = tok.special_token_ids().len() as u64;
        if Some(n) != m["special_cache_size"].as_u64() {
            failures.push(format!(
                "{name}: {n} special tokens, llama.cpp {}",
                m["special_cache_size"]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Chat-template text with special tokens on BPE vocabularies, `parse_special` and
/// `add_special` both ways (`tests/golden/tokenizer/bpe_special.jsonl`).
#[test]
fn bpe_special_tokens_match_llama_cpp() {
    let cases = golden_cases("bpe_special.jsonl");
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    let mut loaded: Vec<(String, Tokenizer)> = Vec::new();
    for (vocab, c) in &cases {
        let vocab = vocab.as_deref().expect("bpe_special rows name their vocab");
        if !loaded.iter().any(|(n, _)| n == vocab) {
            let path = repo_root().join(format!("tests/golden/vocab/ggml-vocab-{vocab}.gguf"));
            loaded.push((vocab.to_owned(), load(&path)));
        }
        let tok = &loaded.iter().find(|(n, _)| n == vocab).expect("loaded").1;
        let ids = tok.encode(&c.text, c.add_special && tok.add_bos(), c.parse_special);
        if ids != c.ids {
            failures.push(format!(
                "{vocab}: encode({:?}, {}, {}):\n  pith  {ids:?}\n  llama {:?}",
                c.text, c.add_special, c.parse_special, c.ids
            ));
            continue;
        }
        let (plain, special) = (tok.decode(&ids, true), tok.decode(&ids, false));
        if plain != c.detok || special != c.detok_special {
            failures.push(format!(
                "{vocab}: decode({ids:?}):\n  pith  {plain:?} / {special:?}\n  llama {:?} / {:?}",
                c.detok, c.detok_special
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Inputs and expected ids of one llama.cpp vocab test (`test-tokenizer-0` format).
/// `(input, expected ids, detok, detok_special)`.
type VocabCase = (String, Vec<u32>, String, String);

fn vocab_cases(name: &str) -> (PathBuf, Vec<VocabCase>) {
    let dir = repo_root().join("tests/golden/vocab");
    let gguf = dir.join(format!("ggml-vocab-{name}.gguf"));
    let read = |ext: &str| {
        let p = PathBuf::from(format!("{}{ext}", gguf.display()));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let inp = read(".inp");
    let inputs: Vec<&str> = inp.split_terminator("\n__ggml_vocab_test__\n").collect();
    let out = read(".out");
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| t.parse().expect("id"))
                .collect()
        })
        .collect();
    let detok = read(".detok");
    let detoks: Vec<(String, String)> = detok
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("detok line is JSON");
            (
                v["detok"].as_str().expect("detok").to_owned(),
                v["detok_special"].as_str().expect("detok").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{name}: .inp and .out disagree"
    );
    assert_eq!(
        outputs.len(),
        detoks.len(),
        "{name}: .out and .detok disagree"
    );
    let cases = inputs
        .into_iter()
        .zip(outputs)
        .zip(detoks)
        .map(|((i, o), (d, ds))| (i.to_owned(), o, d, ds))
        .collect();
    (gguf, cases)
}

/// Runs one vocabulary's llama.cpp test vectors; returns the number of cases.
fn check_vocab(name: &str, kind: ModelKind) -> usize {
    let (path, cases) = vocab_cases(name);
    let tok = load(&path);
    assert_eq!(tok.model_kind(), kind, "{name}");
    let mut failures = Vec::new();
    for (text, expected, detok, detok_special) in &cases {
        let ids = tok.encode(text, false, false);
        if &ids != expected {
            failures.push(format!(
                "encode({text:?}):\n  pith  {ids:?}\n  llama {expected:?}"
            ));
            continue;
        }
        let (plain, special) = (tok.decode(&ids, true), tok.decode(&ids, false));
        if &plain != detok || &special != detok_special {
            failures.push(format!("decode({ids:?}):\n  pith  {plain:?} / {special:?}\n  llama {detok:?} / {detok_special:?}"));
        }
        let (chunks, _) = stream(&tok, &ids, false);
        // The stream is the concatenation of pieces; decode adds BPE clean-up on top.
        if !tok.clean_spaces() && chunks.concat() != special {
            failures.push(format!(
                "stream({ids:?}) = {chunks:?}, decode = {special:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} cases differ from llama.cpp:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{name}: {} cases match llama.cpp", cases.len());
    cases.len()
}

#[test]
fn vocab_gpt2() {
    assert!(check_vocab("gpt-2", ModelKind::Bpe) >= 40);
}

#[test]
fn vocab_llama_bpe() {
    assert!(check_vocab("llama-bpe", ModelKind::Bpe) >= 40);
}

#[test]
fn vocab_qwen2() {
    assert!(check_vocab("qwen2", ModelKind::Bpe) >= 40);
}

#[test]
fn vocab_qwen35() {
    assert!(check_vocab("qwen35", ModelKind::Bpe) >= 40);
}

#[test]
fn vocab_llama_spm() {
    assert!(check_vocab("llama-spm", ModelKind::Spm) >= 40);
}

#[test]
fn vocab_phi3() {
    assert!(check_vocab("phi-3", ModelKind::Spm) >= 40);
}

#[test]
fn vocab_starcoder() {
    assert!(check_vocab("starcoder", ModelKind::Bpe) >= 40);
}

#[test]
fn vocab_refact() {
    assert!(check_vocab("refact", ModelKind::Bpe) >= 40);
}

#[test]
fn vocab_mpt() {
    assert!(check_vocab("mpt", ModelKind::Bpe) >= 40);
}

#[test]
fn vocab_falcon() {
    assert!(check_vocab("falcon", ModelKind::Bpe) >= 40);
}

#[test]
fn vocab_deepseek_llm() {
    assert!(check_vocab("deepseek-llm", ModelKind::Bpe) >= 40);
}

#[test]
fn vocab_deepseek_coder() {
    assert!(check_vocab("deepseek-coder", ModelKind::Bpe) >= 40);
}
