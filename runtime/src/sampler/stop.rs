//! Stop strings over streamed text.

/// Finds stop strings in text that arrives in chunks (one per decoded token).
///
/// [`push`](Self::push) returns the text that is safe to show now: text that can no
/// longer become part of a stop string. A suffix that could still be the start of a stop
/// string is held back until the next chunk decides it. The stop string itself, and
/// anything after it, is never returned. Chunking does not matter: any split of a text
/// into chunks emits the same output as pushing the whole text at once.
///
/// Empty stop strings are ignored.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Held-back text: always shorter than the longest stop string.
    pending: String,
    /// The stop string that ended the stream, once one has.
    matched: Option<usize>,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings dropped).
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
            matched: None,
        }
    }

    /// Whether a stop string has been seen.
    pub fn is_stopped(&self) -> bool {
        self.matched.is_some()
    }

    /// The stop string that was matched, if any.
    pub fn matched(&self) -> Option<&str> {
        self.matched.map(|i| self.stops[i].as_str())
    }

    /// Feed the next chunk. Returns `(text safe to emit now, stopped)`. Once stopped,
    /// later chunks are ignored and return `("", true)`.
    pub fn push(&mut self, chunk: &str) -> (String, bool) {
        if self.matched.is_some() {
            return (String::new(), true);
        }
        if self.stops.is_empty() {
            return (chunk.to_owned(), false);
        }
        self.pending.push_str(chunk);

        // Earliest occurrence of any stop string (ties: the first listed).
        let mut first: Option<(usize, usize)> = None;
        for (i, s) in self.stops.iter().enumerate() {
            if let Some(pos) = self.pending.find(s.as_str()) {
                if first.is_none_or(|(p, _)| pos < p) {
                    first = Some((pos, i));
                }
            }
        }
        if let Some((pos, i)) = first {
            self.matched = Some(i);
            self.pending.truncate(pos);
            return (std::mem::take(&mut self.pending), true);
        }

        // Hold back the longest suffix that is a proper prefix of some stop string.
        let hold_from = self.hold_from();
        let tail = self.pending.split_off(hold_from);
        let emit = std::mem::replace(&mut self.pending, tail);
        (emit, false)
    }

    /// End of stream: returns the held-back text (empty once stopped).
    pub fn finish(&mut self) -> String {
        if self.matched.is_some() {
            self.pending.clear();
        }
        std::mem::take(&mut self.pending)
    }

    /// Byte offset where the held-back suffix of `pending` starts (`len` when none).
    fn hold_from(&self) -> usize {
        let max_len = self.stops.iter().map(String::len).max().unwrap_or(0);
        let len = self.pending.len();
        // Only suffixes shorter than the longest stop string can be proper prefixes.
        let lo = len.saturating_sub(max_len.saturating_sub(1));
        for (j, _) in self.pending.char_indices() {
            if j < lo {
                continue;
            }
            let suffix = &self.pending[j..];
            if self.stops.iter().any(|s| s.starts_with(suffix)) {
                return j;
            }
        }
        len
    }
}
