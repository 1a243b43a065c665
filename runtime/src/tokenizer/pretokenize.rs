//! BPE pre-tokenizers: splitting text into words before merging, as llama.cpp's
//! `unicode_regex_split` does.
//!
//! llama.cpp runs a list of regexes one after another, each refining the split of the
//! previous one. The common ones (GPT-2, Llama 3, Qwen 2, Qwen 3.5) have hand-written
//! matchers in `unicode.cpp`, ported here line by line; any other regex runs through
//! `std::regex` on a "collapsed" text where every non-ASCII code point is replaced by one
//! byte naming its category. [`RegexStep`] reproduces that fallback with `fancy-regex`.

use super::regex_split::RegexStep;
use super::unicode::{ascii_lower, flags_of, Flags};
use super::TokenizerError;

const GPT2_RE: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const LLAMA3_RE_ORIG: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_RE: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_RE: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35_RE: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The BPE pre-tokenizer families pith implements (llama.cpp's `llama_vocab_pre_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreTokenizerKind {
    /// `default` (and a missing `tokenizer.ggml.pre`).
    Default,
    /// `llama3`, `llama-bpe`, `dbrx`, `smaug-bpe`, ….
    Llama3,
    /// `gpt-2`, `phi-2`, `mpt`, `olmo`, ….
    Gpt2,
    /// `qwen2`, `stablelm2`, `deepseek-r1-qwen`, ….
    Qwen2,
    /// `qwen35`.
    Qwen35,
    /// `starcoder`, `refact`, `command-r`, `smollm`, ….
    Starcoder,
    /// `falcon`.
    Falcon,
    /// `deepseek-llm`.
    DeepseekLlm,
    /// `deepseek-coder`.
    DeepseekCoder,
}

impl PreTokenizerKind {
    /// The regex list llama.cpp's `llm_tokenizer_bpe` uses for this family.
    fn regexes(self) -> &'static [&'static str] {
        match self {
            Self::Llama3 => &[LLAMA3_RE],
            Self::Gpt2 => &[GPT2_RE],
            Self::Qwen2 => &[QWEN2_RE],
            Self::Qwen35 => &[QWEN35_RE],
            Self::Starcoder => &[r"\p{N}", GPT2_RE],
            Self::Falcon => &[
                r"[\p{P}\$\+<=>\^~\|`]+",
                r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
                "[0-9][0-9][0-9]",
            ],
            // Copied with escapes from llama-vocab.cpp: several of these characters
            // have canonical decompositions, and an editor normalising them would
            // silently break the ranges.
            Self::DeepseekLlm => &[
                "[\r\n]",
                "\\s?[A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}\u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}-\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+",
                "\\s?[!-/:-~\u{FF01}-\u{FF0F}\u{FF1A}-\u{FF5E}\u{2018}-\u{201F}\u{3000}-\u{3002}]+",
                "\\s+$",
                "[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+",
                "\\p{N}+",
            ],
            Self::DeepseekCoder => &[
                "[\r\n]",
                "\\s?\\p{L}+",
                "\\s?\\p{P}+",
                "[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+",
                "\\p{N}",
            ],
            Self::Default => &[
                r"[\p{P}\$\+<=>\^~\|]+",
                r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
                r"\p{N}+",
                "[0-9][0-9][0-9]",
            ],
        }
    }
}

/// Per-name settings of a BPE vocabulary (llama.cpp `llama_vocab::impl::load`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreConfig {
    pub kind: PreTokenizerKind,
    pub clean_spaces: bool,
    pub ignore_merges: bool,
    pub add_bos: bool,
}

/// Maps a `tokenizer.ggml.pre` value to its settings; `None` if unsupported.
pub(crate) fn pre_config(name: &str) -> Option<PreConfig> {
    use PreTokenizerKind as K;
    let cfg = |kind, clean_spaces, ignore_merges, add_bos| PreConfig {
        kind,
        clean_spaces,
        ignore_merges,
        add_bos,
    };
    Some(match name {
        "" | "default" => cfg(K::Default, true, false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => cfg(K::Llama3, true, true, true),
        "dbrx" | "smaug-bpe" => cfg(K::Llama3, true, false, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "exaone4" | "mpt" | "olmo" | "jais" => {
            cfg(K::Gpt2, true, false, false)
        }
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" => cfg(K::Qwen2, false, false, false),
        "megrez" | "stablelm2" => cfg(K::Qwen2, true, false, false),
        "qwen35" => cfg(K::Qwen35, false, false, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" => {
            cfg(K::Starcoder, true, false, false)
        }
        "command-r" | "smollm" => cfg(K::Starcoder, false, false, false),
        "falcon" => cfg(K::Falcon, true, false, false),
        "deepseek-llm" => cfg(K::DeepseekLlm, false, false, false),
        "deepseek-coder" => cfg(K::DeepseekCoder, false, false, false),
        _ => return None,
    })
}

/// One splitting pass.
enum Step {
    Gpt2,
    /// Llama 3 (`digits` = 3), Qwen 2 (`digits` = 1) and Qwen 3.5 (`marks`).
    Llama3Like {
        digits: usize,
        marks: bool,
    },
    Regex(RegexStep),
}

/// A compiled pre-tokenizer: its passes in order.
pub(crate) struct PreTokenizer {
    steps: Vec<Step>,
}

impl PreTokenizer {
    pub fn new(kind: PreTokenizerKind) -> Result<Self, TokenizerError> {
        let steps = kind
            .regexes()
            .iter()
            .map(|&re| {
                Ok(match re {
                    GPT2_RE => Step::Gpt2,
                    LLAMA3_RE | LLAMA3_RE_ORIG => Step::Llama3Like {
                        digits: 3,
                        marks: false,
                    },
                    QWEN2_RE => Step::Llama3Like {
                        digits: 1,
                        marks: false,
                    },
                    QWEN35_RE => Step::Llama3Like {
                        digits: 1,
                        marks: true,
                    },
                    other => Step::Regex(RegexStep::new(other)?),
                })
            })
            .collect::<Result<_, TokenizerError>>()?;
        Ok(Self { steps })
    }

    /// Splits `text` into words (byte ranges of `text`), none empty.
    pub fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let cpts: Vec<u32> = text.chars().map(u32::from).collect();
        let fl = flags_of(&cpts);
        let mut offsets = vec![cpts.len()];
        for step in &self.steps {
            offsets = match step {
                Step::Gpt2 => split_gpt2(&cpts, &fl, &offsets),
                Step::Llama3Like { digits, marks } => {
                    split_llama3_like(&cpts, &fl, &offsets, *digits, *marks)
                }
                Step::Regex(re) => re.split(&cpts, &fl, &offsets),
            };
        }
        // Code point lengths → byte slices.
        let mut byte_at: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        byte_at.push(text.len());
        let mut words = Vec::with_capacity(offsets.len());
        let mut start = 0;
        for len in offsets {
            if len > 0 {
                words.push(&text[byte_at[start]..byte_at[start + len]]);
            }
            start += len;
        }
        words
    }
}

/// A window of the text, with llama.cpp's out-of-range conventions.
struct Window<'a> {
    cpts: &'a [u32],
    fl: &'a [Flags],
    ini: usize,
    end: usize,
}

const OUT_OF_RANGE: u32 = 0xFFFF_FFFF;

impl Window<'_> {
    fn cpt(&self, pos: usize) -> u32 {
        if (self.ini..self.end).contains(&pos) {
            self.cpts[pos]
        } else {
            OUT_OF_RANGE
        }
    }
    fn flags(&self, pos: usize) -> Flags {
        if (self.ini..self.end).contains(&pos) {
            self.fl[pos]
        } else {
            Flags::OUT
        }
    }
}

/// Emits token lengths; `add(end)` closes the token that started at the previous end.
struct Sink<'o> {
    out: &'o mut Vec<usize>,
    prev_end: usize,
}

impl Sink<'_> {
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d` (case-folded when `fold`); returns the match length.
fn contraction(w: &Window, pos: usize, fold: bool) -> usize {
    let lower = |c: u32| if fold { ascii_lower(c) } else { c };
    if w.cpt(pos) != u32::from('\'') || pos + 1 >= w.end {
        return 0;
    }
    let next = lower(w.cpt(pos + 1));
    if [b's', b't', b'm', b'd']
        .iter()
        .any(|&c| next == u32::from(c))
    {
        return 2;
    }
    if pos + 2 < w.end {
        let nn = lower(w.cpt(pos + 2));
        let is = |a: u8, b: u8| next == u32::from(a) && nn == u32::from(b);
        if is(b'r', b'e') || is(b'v', b'e') || is(b'l', b'l') {
            return 3;
        }
    }
    0
}

/// Port of `unicode_regex_split_custom_gpt2`.
fn split_gpt2(cpts: &[u32], fl: &[Flags], offsets: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &offset in offsets {
        let w = Window {
            cpts,
            fl,
            ini: start,
            end: start + offset,
        };
        start += offset;
        let mut sink = Sink {
            out: &mut out,
            prev_end: w.ini,
        };
        let mut pos = w.ini;
        while pos < w.end {
            let cpt = w.cpt(pos);
            let f = w.flags(pos);
            let n = contraction(&w, pos, false);
            if n > 0 {
                pos += sink.add(pos + n);
                continue;
            }
            let space = usize::from(cpt == u32::from(' '));
            let mut f2 = if space == 1 { w.flags(pos + 1) } else { f };
            if f2.is_letter() {
                pos += space;
                while f2.is_letter() {
                    pos += 1;
                    f2 = w.flags(pos);
                }
                sink.add(pos);
                continue;
            }
            if f2.is_number() {
                pos += space;
                while f2.is_number() {
                    pos += 1;
                    f2 = w.flags(pos);
                }
                sink.add(pos);
                continue;
            }
            let other =
                |f: Flags| !(f.is_whitespace() || f.is_letter() || f.is_number()) && f.is_nonzero();
            if other(f2) {
                pos += space;
                while other(f2) {
                    pos += 1;
                    f2 = w.flags(pos);
                }
                sink.add(pos);
                continue;
            }
            let mut n_ws = 0;
            while w.flags(pos + n_ws).is_whitespace() {
                n_ws += 1;
            }
            if n_ws > 1 && w.cpt(pos + n_ws) != OUT_OF_RANGE {
                pos += n_ws - 1;
                sink.add(pos);
                continue;
            }
            if n_ws > 0 {
                pos += n_ws;
                sink.add(pos);
                continue;
            }
            pos += 1;
            sink.add(pos);
        }
    }
    out
}

/// Port of `unicode_regex_split_custom_llama3` (`digits` = 3), `_qwen2` (`digits` = 1)
/// and `_qwen35` (`digits` = 1, `marks`: letter runs also take combining marks).
fn split_llama3_like(
    cpts: &[u32],
    fl: &[Flags],
    offsets: &[usize],
    digits: usize,
    marks: bool,
) -> Vec<usize> {
    let is_cr_lf = |c: u32| c == u32::from('\r') || c == u32::from('\n');
    let wordish = |f: Flags| f.is_letter() || (marks && f.is_accent_mark());
    let mut out = Vec::with_capacity(offsets.len());
    let mut start = 0;
    for &offset in offsets {
        let w = Window {
            cpts,
            fl,
            ini: start,
            end: start + offset,
        };
        start += offset;
        let mut sink = Sink {
            out: &mut out,
            prev_end: w.ini,
        };
        let mut pos = w.ini;
        while pos < w.end {
            let cpt = w.cpt(pos);
            let f = w.flags(pos);
            let n = contraction(&w, pos, true);
            if n > 0 {
                pos += sink.add(pos + n);
                continue;
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(is_cr_lf(cpt) || f.is_number()) && (wordish(f) || wordish(w.flags(pos + 1))) {
                pos += 1;
                while wordish(w.flags(pos)) {
                    pos += 1;
                }
                sink.add(pos);
                continue;
            }
            // \p{N}{1,3} or \p{N}
            if f.is_number() {
                if digits == 1 {
                    pos += 1;
                    sink.add(pos);
                } else {
                    let mut ini = pos;
                    while w.flags(pos).is_number() {
                        pos += 1;
                        if pos - ini >= digits {
                            sink.add(pos);
                            ini = pos;
                        }
                    }
                    sink.add(pos);
                }
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*
            let space = usize::from(cpt == u32::from(' '));
            let mut f2 = if space == 1 { w.flags(pos + 1) } else { f };
            let other =
                |f: Flags| !(f.is_whitespace() || wordish(f) || f.is_number()) && f.is_nonzero();
            // llama.cpp tests `flags.as_uint()` (the first code point) here, not `flags2`.
            if !(f2.is_whitespace() || wordish(f2) || f2.is_number()) && f.is_nonzero() {
                pos += space;
                while other(f2) {
                    pos += 1;
                    f2 = w.flags(pos);
                }
                while is_cr_lf(w.cpt(pos)) {
                    pos += 1;
                }
                sink.add(pos);
                continue;
            }
            let mut n_ws = 0;
            let mut last_end_r_or_n = 0;
            while w.flags(pos + n_ws).is_whitespace() {
                if is_cr_lf(w.cpt(pos + n_ws)) {
                    last_end_r_or_n = pos + n_ws + 1;
                }
                n_ws += 1;
            }
            if last_end_r_or_n > 0 {
                pos = last_end_r_or_n;
                sink.add(pos);
                continue;
            }
            if n_ws > 1 && w.cpt(pos + n_ws) != OUT_OF_RANGE {
                pos += n_ws - 1;
                sink.add(pos);
                continue;
            }
            if n_ws > 0 {
                pos += n_ws;
                sink.add(pos);
                continue;
            }
            pos += 1;
            sink.add(pos);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreTokenizerKind, text: &str) -> Vec<String> {
        PreTokenizer::new(kind)
            .unwrap()
            .split(text)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn gpt2_splits_contractions_words_and_space_runs() {
        assert_eq!(
            words(PreTokenizerKind::Gpt2, "I'm  here 123!!"),
            ["I", "'m", " ", " here", " 123", "!!"]
        );
    }

    #[test]
    fn llama3_groups_three_digits_and_newlines() {
        assert_eq!(
            words(PreTokenizerKind::Llama3, "12345 ab\n\n"),
            ["123", "45", " ab", "\n\n"]
        );
    }

    #[test]
    fn default_regex_fallback_compiles_and_splits_punctuation() {
        assert_eq!(
            words(PreTokenizerKind::Default, "a,b 1234"),
            ["a", ",", "b", " ", "123", "4"]
        );
    }
}
