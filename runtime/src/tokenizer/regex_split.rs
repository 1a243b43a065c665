//! The `std::regex` fallback of llama.cpp's `unicode_regex_split`: regexes without a
//! hand-written matcher run on a "collapsed" text where each non-ASCII code point is
//! replaced by one character naming its category (U+00D0..U+00D5), and `\p{..}` in the
//! regex by a class over that alphabet, exactly as llama.cpp does before calling
//! `std::regex`. `fancy-regex` (backtracking, leftmost-first like ECMAScript) runs them.

use super::unicode::Flags;
use super::TokenizerError;

/// The `std::regex` fallback of `unicode_regex_split`.
pub(super) struct RegexStep {
    re: fancy_regex::Regex,
    /// Whether the regex uses `\p{..}` categories and so runs on the collapsed text.
    collapsed: bool,
}

/// `k_ucat_enum`: category names → the flag they select.
const CATEGORIES: [(&str, u16); 10] = [
    (r"\p{N}", Flags::NUMBER),
    (r"\p{L}", Flags::LETTER),
    (r"\p{P}", Flags::PUNCTUATION),
    (r"\p{M}", Flags::ACCENT_MARK),
    (r"\p{S}", Flags::SYMBOL),
    (r"\p{Lu}", Flags::LETTER),
    (r"\p{Ll}", Flags::LETTER),
    (r"\p{Lt}", Flags::LETTER),
    (r"\p{Lm}", Flags::LETTER),
    (r"\p{Lo}", Flags::LETTER),
];

/// `k_ucat_cpt` and `k_ucat_map`: the collapsed stand-in of each category (as a code
/// point in U+00D1..U+00D5) and the ASCII members of the category.
fn category_class(flag: u16) -> (u32, &'static str) {
    match flag {
        Flags::NUMBER => (0xD1, r"\x30-\x39"),
        Flags::LETTER => (0xD2, r"\x41-\x5A\x61-\x7A"),
        Flags::PUNCTUATION => (
            0xD3,
            r"\x21-\x23\x25-\x2A\x2C-\x2F\x3A-\x3B\x3F-\x40\x5B-\x5D\x5F\x7B\x7D",
        ),
        Flags::ACCENT_MARK => (0xD4, ""),
        _ => (0xD5, r"\x24\x2B\x3C-\x3E\x5E\x60\x7C\x7E"),
    }
}

impl RegexStep {
    pub(super) fn new(expr: &str) -> Result<Self, TokenizerError> {
        let collapsed = CATEGORIES.iter().any(|(name, _)| expr.contains(name));
        let pattern = if collapsed {
            collapse_regex(expr)
        } else {
            expr.to_owned()
        };
        let re = fancy_regex::Regex::new(&pattern).map_err(|e| TokenizerError::BadRegex {
            regex: pattern.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self { re, collapsed })
    }

    pub(super) fn split(&self, cpts: &[u32], fl: &[Flags], offsets: &[usize]) -> Vec<usize> {
        // The subject: one char per code point, as llama.cpp's collapsed text (or its
        // wide text with non-ASCII whitespace replaced by U+000B).
        let subject: Vec<char> = cpts
            .iter()
            .zip(fl)
            .map(|(&c, &f)| {
                let mapped = if c < 128 {
                    c
                } else if f.is_whitespace() {
                    0x0B
                } else if !self.collapsed {
                    c
                } else {
                    match f.category() {
                        Flags::NUMBER
                        | Flags::LETTER
                        | Flags::PUNCTUATION
                        | Flags::ACCENT_MARK
                        | Flags::SYMBOL => category_class(f.category()).0,
                        _ => 0xD0,
                    }
                };
                char::from_u32(mapped).unwrap_or('\u{FFFD}')
            })
            .collect();
        let text: String = subject.iter().collect();
        let mut byte_at: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        byte_at.push(text.len());
        let char_at = |b: usize| byte_at.partition_point(|&x| x < b);

        let mut out = Vec::with_capacity(offsets.len());
        let mut start = 0;
        for &offset in offsets {
            let seg_lo = byte_at[start];
            let seg = &text[seg_lo..byte_at[start + offset]];
            let mut start_idx = 0usize; // in code points, relative to the segment
            for m in self.re.find_iter(seg) {
                // A regex that fails at run time (backtrack limit) leaves the rest whole.
                let Ok(m) = m else { break };
                let pos = char_at(seg_lo + m.start()) - start;
                let end = char_at(seg_lo + m.end()) - start;
                if pos > start_idx {
                    out.push(pos - start_idx);
                }
                if end > pos {
                    out.push(end - pos);
                }
                start_idx = end;
            }
            if start_idx < offset {
                out.push(offset - start_idx);
            }
            start += offset;
        }
        out
    }
}

/// Rewrites `\p{..}` categories to classes over the collapsed alphabet, tracking `[...]`
/// like llama.cpp (nested classes are not supported there either).
fn collapse_regex(expr: &str) -> String {
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len() * 2);
    let mut inside = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'[' && (i == 0 || b[i - 1] != b'\\') {
            out.push('[');
            inside = true;
            i += 1;
            continue;
        }
        if inside && b[i] == b']' && b[i - 1] != b'\\' {
            out.push(']');
            inside = false;
            i += 1;
            continue;
        }
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'p' && b[i + 2] == b'{' {
            if let Some(close) = expr[i + 3..].find('}').map(|c| c + i + 3) {
                if close <= i + 10 {
                    if let Some(&(_, flag)) = CATEGORIES
                        .iter()
                        .find(|(name, _)| *name == &expr[i..=close])
                    {
                        let (cp, ascii) = category_class(flag);
                        if !inside {
                            out.push('[');
                        }
                        out.push_str(&format!(r"\x{{{cp:X}}}{ascii}"));
                        if !inside {
                            out.push(']');
                        }
                        i = close + 1;
                        continue;
                    }
                }
            }
        }
        // Copy one whole UTF-8 character.
        let ch = expr[i..].chars().next().unwrap_or('\u{FFFD}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::collapse_regex;

    #[test]
    fn collapsed_regex_keeps_classes_balanced() {
        let r = collapse_regex(r"[^\s\p{L}\p{N}]+|\p{N}");
        assert_eq!(
            r,
            r"[^\s\x{D2}\x41-\x5A\x61-\x7A\x{D1}\x30-\x39]+|[\x{D1}\x30-\x39]"
        );
    }
}
