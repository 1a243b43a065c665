//! SentencePiece (`tokenizer.ggml.model = llama`) encoding: llama.cpp's
//! `llm_tokenizer_spm_session`.
//!
//! The text is split into UTF-8 characters; adjacent pairs whose concatenation is a
//! vocabulary token go into a max-heap keyed by that token's score (ties: leftmost pair
//! first); the best pair is merged and its new neighbours are pushed, until the heap is
//! empty. Stale heap entries are recognised by their byte length, as in llama.cpp. Each
//! final piece is its token, or — when it is not in the vocabulary — one byte token
//! (`<0xXX>`) per byte. O(n log n) in the text length.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{Symbol, Tokenizer};

struct Bigram {
    left: i32,
    right: i32,
    score: f32,
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
    /// llama.cpp's comparator: higher score first, then smaller `left` first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Appends the SPM tokens of `text` (already whitespace-escaped with `▁`) to `out`.
pub(crate) fn tokenize(tok: &Tokenizer, text: &str, out: &mut Vec<u32>) {
    if text.is_empty() {
        return;
    }
    let n = text.chars().count();
    let mut symbols: Vec<Symbol> = Vec::with_capacity(n);
    for (i, (start, ch)) in text.char_indices().enumerate() {
        let i = i as i32;
        let end = start + ch.len_utf8();
        symbols.push(Symbol {
            prev: i - 1,
            next: if end == text.len() { -1 } else { i + 1 },
            start,
            len: ch.len_utf8(),
        });
    }

    let mut heap = BinaryHeap::with_capacity(n);
    let try_add = |heap: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: i32, right: i32| {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (symbols[left as usize], symbols[right as usize]);
        let piece = &text[l.start..l.start + l.len + r.len];
        if let Some(id) = tok.token_id(piece) {
            heap.push(Bigram {
                left,
                right,
                score: tok.tokens[id as usize].score,
                size: piece.len(),
            });
        }
    };
    for i in 1..symbols.len() as i32 {
        try_add(&mut heap, &symbols, i - 1, i);
    }

    while let Some(b) = heap.pop() {
        let (li, ri) = (b.left as usize, b.right as usize);
        let (l, r) = (symbols[li], symbols[ri]);
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

    let mut i = 0i32;
    while i != -1 {
        let s = symbols[i as usize];
        let piece = &text[s.start..s.start + s.len];
        match tok.token_id(piece) {
            Some(id) => out.push(id),
            // A merged symbol is always a token, so this is a single character that is
            // not in the vocabulary: byte fallback.
            None => out.extend(piece.bytes().filter_map(|b| tok.spm_byte_token(b))),
        }
        i = s.next;
    }
}
