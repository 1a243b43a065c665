//! Text → token ids: llama.cpp's `llama_vocab::impl::tokenize` and
//! `tokenizer_st_partition`.

use super::{attr, bpe, spm, ModelKind, Tokenizer};

/// A piece of the input after special-token partitioning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fragment {
    /// Raw text `[start, end)` (bytes of the input), never empty.
    Text(usize, usize),
    Token(u32),
}

/// C `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

impl Tokenizer {
    /// Encodes `text` exactly as llama.cpp's `llama_tokenize(vocab, text, add_special,
    /// parse_special)`.
    ///
    /// * `add_special`: prepend BOS when [`Tokenizer::add_bos`], append EOS when
    ///   [`Tokenizer::add_eos`].
    /// * `parse_special`: text equal to a control token (`<start_of_turn>`, `<bos>`) becomes
    ///   that token; when false it is tokenized as plain text. User-defined tokens are
    ///   split out either way, as in llama.cpp.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let _span = tracing::trace_span!("tokenize", bytes = text.len()).entered();
        let fragments = if text.is_empty() {
            Vec::new()
        } else {
            self.partition(text, parse_special)
        };
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.special.bos);
        }
        match self.kind {
            ModelKind::Spm => {
                let mut prev_special = true;
                let mut buf = String::new();
                for f in fragments {
                    match f {
                        Fragment::Text(s, e) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push('▁');
                            }
                            for ch in text[s..e].chars() {
                                buf.push(if ch == ' ' { '▁' } else { ch });
                            }
                            spm::tokenize(self, &buf, &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            ModelKind::Bpe => {
                for f in fragments {
                    match f {
                        Fragment::Text(s, e) => bpe::tokenize(self, &text[s..e], &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.special.eos);
        }
        out
    }

    /// Splits `text` at occurrences of special tokens, longest token first.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = vec![Fragment::Text(0, text.len())];
        let mut next = Vec::new();
        for &id in &self.special_cache {
            let data = &self.tokens[id as usize];
            if !parse_special && data.attr & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let needle = data.text.as_str();
            // Cheap reject: most special tokens occur nowhere in the text.
            if !frags
                .iter()
                .any(|f| matches!(*f, Fragment::Text(s, e) if text[s..e].contains(needle)))
            {
                continue;
            }
            next.clear();
            for &f in &frags {
                let Fragment::Text(mut start, end) = f else {
                    next.push(f);
                    continue;
                };
                loop {
                    let Some(pos) = text[start..end].find(needle).map(|p| p + start) else {
                        next.push(Fragment::Text(start, end));
                        break;
                    };
                    let mut left_end = pos;
                    if data.attr & attr::LSTRIP != 0 {
                        while left_end > start && is_c_space(text.as_bytes()[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > start {
                        next.push(Fragment::Text(start, left_end));
                    }
                    next.push(Fragment::Token(id));
                    start = pos + needle.len();
                    if data.attr & attr::RSTRIP != 0 {
                        while start < end && is_c_space(text.as_bytes()[start]) {
                            start += 1;
                        }
                    }
                    if start >= end {
                        break;
                    }
                }
            }
            std::mem::swap(&mut frags, &mut next);
        }
        frags
    }
}

#[cfg(test)]
mod tests {
    use super::is_c_space;

    #[test]
    fn c_isspace_is_ascii_only() {
        for b in [b' ', b'\t', b'\n', 0x0B, 0x0C, b'\r'] {
            assert!(is_c_space(b));
        }
        assert!(!is_c_space(0x85));
        assert!(!is_c_space(0xA0));
        assert!(!is_c_space(b'x'));
    }
}
