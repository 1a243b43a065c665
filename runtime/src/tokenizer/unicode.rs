//! Code point classification and the GPT-2 byte-to-unicode map, as in llama.cpp's
//! `src/unicode.cpp`.

use super::unicode_data::{RANGES, WHITESPACE};

/// llama.cpp's `unicode_cpt_flags` as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Flags(pub u16);

impl Flags {
    pub const UNDEFINED: u16 = 0x0001;
    pub const NUMBER: u16 = 0x0002;
    pub const LETTER: u16 = 0x0004;
    pub const ACCENT_MARK: u16 = 0x0010;
    pub const PUNCTUATION: u16 = 0x0020;
    pub const SYMBOL: u16 = 0x0040;
    pub const MASK_CATEGORIES: u16 = 0x00FF;
    pub const WHITESPACE: u16 = 0x0100;

    /// The flags of a position outside the current fragment (`unicode_cpt_flags{}`): all
    /// bits clear, so `is_nonzero` is false.
    pub const OUT: Flags = Flags(0);

    pub fn is_number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    pub fn is_letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    pub fn is_whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
    pub fn is_accent_mark(self) -> bool {
        self.0 & Self::ACCENT_MARK != 0
    }
    /// `as_uint() != 0`: true for every real code point, false outside the fragment.
    pub fn is_nonzero(self) -> bool {
        self.0 != 0
    }
    pub fn category(self) -> u16 {
        self.0 & Self::MASK_CATEGORIES
    }
}

/// Flags of code point `cp` (`unicode_cpt_flags_from_cpt`).
pub(crate) fn flags(cp: u32) -> Flags {
    if cp >= 0x110000 {
        return Flags(Flags::UNDEFINED);
    }
    // `RANGES` starts at 0 and ends with the 0x110000 sentinel, so the partition point
    // is at least 1.
    let idx = RANGES.partition_point(|&(start, _)| start <= cp) - 1;
    let mut f = RANGES[idx].1;
    if WHITESPACE.binary_search(&cp).is_ok() {
        f |= Flags::WHITESPACE;
    }
    Flags(f)
}

/// Flags of every code point of `cps`.
pub(crate) fn flags_of(cps: &[u32]) -> Vec<Flags> {
    cps.iter().map(|&c| flags(c)).collect()
}

/// Lower-casing as used by the `(?i:'s|'t|...)` contraction rule. Only ASCII upper-case
/// letters lower-case to the ASCII letters that rule tests, so ASCII lower-casing is exact
/// there.
pub(crate) fn ascii_lower(cp: u32) -> u32 {
    if (b'A' as u32..=b'Z' as u32).contains(&cp) {
        cp + 32
    } else {
        cp
    }
}

/// GPT-2's byte-to-unicode table (`unicode_byte_to_utf8_map`): printable bytes map to
/// themselves, the others to U+0100 and up, in byte order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut n = 0u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let b = b as u32;
        let cp = if printable(b) {
            b
        } else {
            n += 1;
            255 + n
        };
        // All values are below U+0200, valid scalar values.
        *slot = char::from_u32(cp).unwrap_or('\u{FFFD}');
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_match_llama_cpp_table() {
        assert!(flags('a' as u32).is_letter());
        assert!(flags('Ж' as u32).is_letter());
        assert!(flags('7' as u32).is_number());
        assert!(flags('½' as u32).is_number());
        assert!(flags(' ' as u32).is_whitespace());
        assert!(flags(0x3000).is_whitespace());
        assert!(!flags('a' as u32).is_whitespace());
        assert_eq!(flags('!' as u32).category(), Flags::PUNCTUATION);
        assert_eq!(flags('$' as u32).category(), Flags::SYMBOL);
        assert!(flags(0x0301).is_accent_mark());
        assert!(flags(0x10FFFF).is_nonzero());
    }

    #[test]
    fn gpt2_byte_table() {
        let t = byte_to_char_table();
        assert_eq!(t[b'!' as usize], '!');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[0], 'Ā');
        let mut sorted: Vec<char> = t.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
    }
}
