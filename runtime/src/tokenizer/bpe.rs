//! Byte-level BPE (`tokenizer.ggml.model = gpt2`) encoding: llama.cpp's
//! `llm_tokenizer_bpe_session`.
//!
//! The pre-tokenizer splits the text into words; each word is mapped byte by byte to the
//! GPT-2 "byte-to-unicode" alphabet, then adjacent symbols are merged lowest merge rank
//! first (ties: leftmost) until no ranked pair remains. Pieces that are not tokens fall
//! back to their single ASCII characters, like llama.cpp.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{Symbol, Tokenizer};

struct Bigram {
    left: i32,
    right: i32,
    rank: u32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Max-heap order: lowest rank first, then smallest `left`.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Appends the BPE tokens of one raw-text fragment to `out`.
pub(crate) fn tokenize(tok: &Tokenizer, text: &str, out: &mut Vec<u32>) {
    let Some(pre) = tok.pre.as_ref() else { return };
    let mut word = String::new();
    let mut key = String::new();
    for raw in pre.split(text) {
        word.clear();
        word.extend(raw.bytes().map(|b| tok.byte_char[b as usize]));
        merge_word(tok, &word, &mut key, out);
    }
}

fn merge_word(tok: &Tokenizer, word: &str, key: &mut String, out: &mut Vec<u32>) {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(word.len());
    if tok.ignore_merges && tok.token_id(word).is_some() {
        symbols.push(Symbol {
            prev: -1,
            next: -1,
            start: 0,
            len: word.len(),
        });
    } else {
        for (i, (start, ch)) in word.char_indices().enumerate() {
            let i = i as i32;
            let end = start + ch.len_utf8();
            symbols.push(Symbol {
                prev: i - 1,
                next: if end == word.len() { -1 } else { i + 1 },
                start,
                len: ch.len_utf8(),
            });
        }
    }

    let mut heap = BinaryHeap::new();
    let mut try_add = |heap: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: i32, right: i32| {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (symbols[left as usize], symbols[right as usize]);
        // Merge keys are the merge lines "left right"; symbols never contain a raw space
        // (byte-level encoding maps it to 'Ġ'), so the join is unambiguous.
        key.clear();
        key.push_str(&word[l.start..l.start + l.len]);
        key.push(' ');
        key.push_str(&word[r.start..r.start + r.len]);
        if let Some(&rank) = tok.merges.get(key.as_str()) {
            heap.push(Bigram {
                left,
                right,
                rank,
                size: l.len + r.len,
            });
        }
    };
    for i in 1..symbols.len() as i32 {
        try_add(&mut heap, &symbols, i - 1, i);
    }
    while let Some(b) = heap.pop() {
        let (li, ri) = (b.left as usize, b.right as usize);
        let (l, r) = (symbols[li], symbols[ri]);
        // Symbols only grow, so an unchanged total length means both are unchanged
        // (llama.cpp compares the texts).
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        symbols[li].len += r.len;
        symbols[ri].len = 0;
        symbols[li].next = r.next;
        if r.next >= 0 {
            symbols[r.next as usize].prev = b.left;
        }
        let prev = symbols[li].prev;
        let next = symbols[li].next;
        try_add(&mut heap, &symbols, prev, b.left);
        try_add(&mut heap, &symbols, b.left, next);
    }

    for s in symbols.iter().filter(|s| s.len > 0) {
        let piece = &word[s.start..s.start + s.len];
        match tok.token_id(piece) {
            Some(id) => out.push(id),
            None => {
                // llama.cpp looks up each *byte* of the encoded piece as a one-byte
                // string: only ASCII bytes can match.
                for b in piece.bytes().filter(u8::is_ascii) {
                    let mut buf = [0u8; 4];
                    if let Some(id) = tok.token_id(char::from(b).encode_utf8(&mut buf)) {
                        out.push(id);
                    }
                }
            }
        }
    }
}
