//! Incremental detokenization that never splits a UTF-8 character.

use super::Tokenizer;

/// Turns a stream of token ids into text, one token at a time.
///
/// A token may end in the middle of a UTF-8 character (byte-fallback tokens such as
/// `<0xF0>` carry one byte each); the decoder holds such bytes back until the character
/// is complete, so every returned chunk is valid text and the chunks concatenate to
/// `String::from_utf8_lossy` of all the pieces: invalid bytes become U+FFFD exactly where
/// a whole-text lossy decode would put them.
///
/// The text is that of llama.cpp's per-token pieces (as its server streams them), with
/// the first piece's leading space removed when the vocabulary adds a space prefix, as
/// `llama_detokenize` does. It equals [`Tokenizer::decode`] except that BPE vocabularies
/// with `clean_spaces` (GPT-2, Llama 3) skip that whole-text clean-up.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tok: &'t Tokenizer,
    skip_special: bool,
    first: bool,
    pending: Vec<u8>,
}

impl Tokenizer {
    /// A [`StreamDecoder`] over this vocabulary; `skip_special` as in
    /// [`Tokenizer::decode`].
    pub fn stream_decoder(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, skip_special)
    }
}

impl<'t> StreamDecoder<'t> {
    /// A decoder at the start of a sequence.
    pub fn new(tok: &'t Tokenizer, skip_special: bool) -> Self {
        Self {
            tok,
            skip_special,
            first: true,
            pending: Vec::new(),
        }
    }

    /// Adds token `id`; returns the text that is now complete (possibly empty).
    pub fn feed(&mut self, id: u32) -> String {
        let piece = self.tok.piece(id, !self.skip_special);
        let strip = self.first && self.tok.add_space_prefix && piece.first() == Some(&b' ');
        self.first = false;
        self.pending
            .extend_from_slice(if strip { &piece[1..] } else { &piece });
        self.take_complete()
    }

    /// Returns whatever is still held back (an incomplete character at the end of the
    /// stream becomes U+FFFD) and resets the decoder for a new sequence.
    pub fn flush(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.first = true;
        out
    }

    /// Bytes received but not yet returned (at most 3, an incomplete character).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn take_complete(&mut self) -> String {
        take_complete(&mut self.pending)
    }
}

/// Removes and returns the longest prefix of `pending` that can be decoded now: valid
/// UTF-8, with each invalid sequence replaced by one U+FFFD (as `from_utf8_lossy`). An
/// incomplete character at the end stays in `pending`.
fn take_complete(pending: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut consumed = 0;
    loop {
        let rest = &pending[consumed..];
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                consumed = pending.len();
                break;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.push_str(&String::from_utf8_lossy(&rest[..valid]));
                match e.error_len() {
                    Some(n) => {
                        out.push('\u{FFFD}');
                        consumed += valid + n;
                    }
                    None => {
                        consumed += valid;
                        break;
                    }
                }
            }
        }
    }
    pending.drain(..consumed);
    out
}

#[cfg(test)]
mod tests {
    use super::take_complete;

    fn chunks(parts: &[&[u8]]) -> Vec<String> {
        let mut pending = Vec::new();
        let mut out: Vec<String> = parts
            .iter()
            .map(|p| {
                pending.extend_from_slice(p);
                let s = take_complete(&mut pending);
                assert!(pending.len() <= 3, "held back more than one character");
                s
            })
            .collect();
        out.push(String::from_utf8_lossy(&pending).into_owned());
        out
    }

    #[test]
    fn split_characters_are_held_back_until_complete() {
        let c = chunks(&[b"a\xF0", b"\x9F", b"\x98", b"\x80b"]);
        assert_eq!(c, ["a", "", "", "\u{1F600}b", ""]);
    }

    #[test]
    fn invalid_bytes_match_whole_text_lossy_decode() {
        let cases: [&[&[u8]]; 4] = [
            &[b"\xFFx", b"\xE2\x82", b"y"],
            &[b"\xE2", b"\x82\xAC\xF0\x9F"],
            &[b"\xED\xA0", b"\x80"],
            &[b"\xF0\x9F\x98", b"\xF0\x9F\x98\x80"],
        ];
        for parts in cases {
            let whole: Vec<u8> = parts.concat();
            assert_eq!(
                chunks(parts).concat(),
                String::from_utf8_lossy(&whole),
                "{parts:?}"
            );
        }
    }
}
