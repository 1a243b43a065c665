//! SentencePiece `tokenizer.model` (a `ModelProto` protobuf), read and written.
//!
//! Only what a GGUF `llama` vocabulary carries: the pieces (text, score, type), the model
//! type (BPE), byte fallback and the normalizer's `add_dummy_prefix`. Field numbers are
//! those of sentencepiece's `sentencepiece_model.proto`.

use crate::error::{Error, Result};

/// One vocabulary entry. `kind` uses sentencepiece's (and GGUF's) numbering: 1 normal,
/// 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: i32,
}

/// The parts of a `ModelProto` pith uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpModel {
    pub pieces: Vec<Piece>,
    /// `trainer_spec.model_type`: 1 unigram, 2 BPE.
    pub model_type: i32,
    pub byte_fallback: bool,
    /// `normalizer_spec.add_dummy_prefix` (default true in sentencepiece).
    pub add_dummy_prefix: bool,
}

fn err(m: &str) -> Error {
    Error::Tokenizer(format!("tokenizer.model: {m}"))
}

struct Rd<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> Rd<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.p).ok_or_else(|| err("truncated varint"))?;
            self.p += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(err("varint too long"))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.varint()? as usize;
        let end = self.p.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| err("length past the end"))?;
        let s = &self.b[self.p..end];
        self.p = end;
        Ok(s)
    }
    fn fixed32(&mut self) -> Result<u32> {
        let s = self
            .b
            .get(self.p..self.p + 4)
            .ok_or_else(|| err("truncated fixed32"))?;
        self.p += 4;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn skip(&mut self, wire: u64) -> Result<()> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => self.p += 8,
            2 => {
                self.bytes()?;
            }
            5 => self.p += 4,
            _ => return Err(err("unsupported wire type")),
        }
        if self.p > self.b.len() {
            return Err(err("truncated field"));
        }
        Ok(())
    }
    /// Iterates `(field, wire)` keys until the end.
    fn key(&mut self) -> Result<Option<(u64, u64)>> {
        if self.p >= self.b.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, k & 7)))
    }
}

impl SpModel {
    /// Parses a `tokenizer.model`.
    pub fn parse(b: &[u8]) -> Result<Self> {
        let mut m = SpModel {
            model_type: 1,
            add_dummy_prefix: true,
            ..Default::default()
        };
        let mut r = Rd { b, p: 0 };
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, 2) => {
                    let mut pr = Rd {
                        b: r.bytes()?,
                        p: 0,
                    };
                    let mut p = Piece {
                        piece: String::new(),
                        score: 0.0,
                        kind: 1,
                    };
                    while let Some((f, w)) = pr.key()? {
                        match (f, w) {
                            (1, 2) => {
                                p.piece = String::from_utf8(pr.bytes()?.to_vec())
                                    .map_err(|_| err("piece is not UTF-8"))?
                            }
                            (2, 5) => p.score = f32::from_bits(pr.fixed32()?),
                            (3, 0) => p.kind = pr.varint()? as i32,
                            (_, w) => pr.skip(w)?,
                        }
                    }
                    m.pieces.push(p);
                }
                (2, 2) => {
                    let mut tr = Rd {
                        b: r.bytes()?,
                        p: 0,
                    };
                    while let Some((f, w)) = tr.key()? {
                        match (f, w) {
                            (3, 0) => m.model_type = tr.varint()? as i32,
                            (35, 0) => m.byte_fallback = tr.varint()? != 0,
                            (_, w) => tr.skip(w)?,
                        }
                    }
                }
                (3, 2) => {
                    let mut nr = Rd {
                        b: r.bytes()?,
                        p: 0,
                    };
                    while let Some((f, w)) = nr.key()? {
                        match (f, w) {
                            (3, 0) => m.add_dummy_prefix = nr.varint()? != 0,
                            (_, w) => nr.skip(w)?,
                        }
                    }
                }
                (_, w) => r.skip(w)?,
            }
        }
        if m.pieces.is_empty() {
            return Err(err("no pieces"));
        }
        Ok(m)
    }

    /// Serialises the model.
    pub fn encode(&self) -> Vec<u8> {
        fn varint(b: &mut Vec<u8>, mut v: u64) {
            while v >= 0x80 {
                b.push((v as u8) | 0x80);
                v >>= 7;
            }
            b.push(v as u8);
        }
        fn field_bytes(b: &mut Vec<u8>, field: u64, data: &[u8]) {
            varint(b, field << 3 | 2);
            varint(b, data.len() as u64);
            b.extend_from_slice(data);
        }
        fn field_varint(b: &mut Vec<u8>, field: u64, v: u64) {
            varint(b, field << 3);
            varint(b, v);
        }
        let mut out = Vec::with_capacity(self.pieces.len() * 16);
        let mut p = Vec::new();
        for piece in &self.pieces {
            p.clear();
            field_bytes(&mut p, 1, piece.piece.as_bytes());
            varint(&mut p, 2 << 3 | 5);
            p.extend_from_slice(&piece.score.to_le_bytes());
            if piece.kind != 1 {
                field_varint(&mut p, 3, piece.kind as u64);
            }
            field_bytes(&mut out, 1, &p);
        }
        let mut t = Vec::new();
        field_varint(&mut t, 3, self.model_type as u64);
        field_varint(&mut t, 35, u64::from(self.byte_fallback));
        field_bytes(&mut out, 2, &t);
        let mut n = Vec::new();
        field_bytes(&mut n, 1, b"identity");
        field_varint(&mut n, 3, u64::from(self.add_dummy_prefix));
        field_varint(&mut n, 4, 0); // remove_extra_whitespaces
        field_varint(&mut n, 5, 1); // escape_whitespaces
        field_bytes(&mut out, 3, &n);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_truncation() {
        let m = SpModel {
            pieces: vec![
                Piece {
                    piece: "<unk>".into(),
                    score: 0.0,
                    kind: 2,
                },
                Piece {
                    piece: "▁a".into(),
                    score: -1.5,
                    kind: 1,
                },
            ],
            model_type: 2,
            byte_fallback: true,
            add_dummy_prefix: false,
        };
        let b = m.encode();
        assert_eq!(SpModel::parse(&b).unwrap(), m);
        for cut in [1, 5, b.len() / 2, b.len() - 1] {
            let _ = SpModel::parse(&b[..cut]); // must not panic
        }
    }
}
