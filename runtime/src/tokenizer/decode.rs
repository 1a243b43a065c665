//! Token ids → text: llama.cpp's `token_to_piece` and `detokenize`.

use super::{attr, ModelKind, Tokenizer};

impl Tokenizer {
    /// The bytes token `id` stands for, as `llama_token_to_piece(.., lstrip = 0,
    /// special = false)`: byte tokens give their byte, SPM `▁` becomes a space, BPE pieces
    /// are mapped back from the byte-level alphabet, user-defined tokens give their text,
    /// control and unknown tokens give nothing. Unknown ids give nothing.
    pub fn token_to_piece(&self, id: u32) -> Vec<u8> {
        self.piece(id, false)
    }

    /// Like [`Tokenizer::token_to_piece`], but with `special = true` control and unknown
    /// tokens render as their text (`<end_of_turn>`).
    pub fn token_to_piece_special(&self, id: u32, special: bool) -> Vec<u8> {
        self.piece(id, special)
    }

    pub(crate) fn piece(&self, id: u32, special: bool) -> Vec<u8> {
        let Some(t) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        let a = t.attr;
        if a & (attr::UNKNOWN | attr::CONTROL) != 0 && !special {
            return Vec::new();
        }
        if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            return t.text.as_bytes().to_vec();
        }
        if a & attr::NORMAL != 0 {
            return match self.kind {
                ModelKind::Spm => t.text.replace('▁', " ").into_bytes(),
                ModelKind::Bpe => self.bpe_decode_text(&t.text),
            };
        }
        if a & attr::BYTE != 0 {
            // `token_to_byte`: the two hex digits of "<0xXX>".
            return t
                .text
                .get(3..5)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .into_iter()
                .collect();
        }
        Vec::new()
    }

    /// `llama_decode_text`: byte-level alphabet → bytes; characters outside it become
    /// `[UNK_BYTE_0x..]` markers as in llama.cpp.
    fn bpe_decode_text(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        for ch in text.chars() {
            match self.char_byte.get(&ch) {
                Some(&b) => out.push(b),
                None => {
                    out.extend_from_slice(b"[UNK_BYTE_0x");
                    let mut buf = [0u8; 4];
                    for b in ch.encode_utf8(&mut buf).bytes() {
                        out.extend_from_slice(format!("{b:02x}").as_bytes());
                    }
                    out.extend_from_slice(text.as_bytes());
                    out.push(b']');
                }
            }
        }
        out
    }

    /// Decodes `ids` as llama.cpp's `common_detokenize(vocab, ids, special = !skip_special)`
    /// (`llama_detokenize` with `remove_special = false`): pieces are concatenated; with
    /// `add_space_prefix` the first piece loses one leading space; BPE vocabularies with
    /// `clean_spaces` get llama.cpp's clean-up (" ." → ".", " 's" → "'s", …). Control
    /// tokens render as their text unless `skip_special`. Invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids, skip_special)).into_owned()
    }

    /// [`Tokenizer::decode`] without the UTF-8 conversion.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Vec<u8> {
        let mut text = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let p = self.piece(id, !skip_special);
            let strip = i == 0 && self.add_space_prefix && p.first() == Some(&b' ');
            text.extend_from_slice(if strip { &p[1..] } else { &p });
        }
        if self.clean_spaces {
            clean_spaces(&mut text);
        }
        text
    }
}

/// llama.cpp's three clean-up passes of `detokenize` (`clean_spaces`), ported in place
/// (pass 2 overwrites the skipped space with NUL, which later iterations can see).
fn clean_spaces(text: &mut Vec<u8>) {
    // 1: " ?", " !", " .", " ," lose the space.
    let n = text.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        text[total] = x;
        total += 1;
    }
    // 2: " ' " → "'".
    let n = total;
    total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = text[i];
        if x == b'\'' && i + 1 < n && text[i - 1] == b' ' && text[i + 1] == b' ' {
            total -= 1;
            i += 1;
            text[i] = 0;
        }
        text[total] = x;
        total += 1;
        i += 1;
    }
    // 3: " 's", " 'm", " 're", " 've" lose the space.
    let n = total;
    total = usize::from(n > 0);
    for i in 1..n {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = text[i + 1];
            if matches!(x1, b's' | b'm')
                || (i + 2 < n && text[i + 2] == b'e' && matches!(x1, b'r' | b'v'))
            {
                total -= 1;
            }
        }
        text[total] = x;
        total += 1;
    }
    text.truncate(total);
}

#[cfg(test)]
mod tests {
    use super::clean_spaces;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn clean_up_matches_llama_cpp_passes() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(clean("a ' ' b"), "a'' b");
        assert_eq!(
            clean("it 's we 're I 'll don 't"),
            "it's we're I 'll don 't"
        );
    }
}
