//! Static word-piece vectors for the `topic` detector's semantic space.
//!
//! The vectors are distilled from the sentence encoder all-MiniLM-L6-v2 by
//! `tools/topic_vectors.py` (one encoder pass per vocabulary piece, PCA, IDF weighting;
//! see docs/classifiers.md). A text's vector is the sum of its pieces' rows, normalised:
//! a table lookup per word piece instead of a transformer pass, so "routing number" lands
//! near "bank account" in microseconds.
//!
//! Tokenisation follows BERT's uncased WordPiece on the classifier-normalised text (already
//! lowercase, accents stripped): ASCII letter/digit runs are split greedily into the
//! longest pieces of the vocabulary (`##` marks a continuation), ASCII punctuation is one
//! piece each. Other scripts have no useful pieces in this vocabulary and are skipped, so
//! Korean stays in the lexical space.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use thiserror::Error;

/// Shipped vectors (`tools/topic_vectors.py`).
const SHIPPED: &[u8] = include_bytes!("../../models/topic_vectors.bin");
const MAGIC: &[u8; 4] = b"HTV1";
/// Longer words are one unknown piece in BERT's WordPiece, as here.
const MAX_WORD: usize = 100;

/// Why a vectors file cannot be read.
#[derive(Debug, Error)]
pub enum PiecesError {
    #[error("piece vectors: not an HTV1 file")]
    Magic,
    #[error("piece vectors: file ends early")]
    Truncated,
    #[error("piece vectors: a piece is not UTF-8")]
    Utf8,
}

/// The piece table: piece → row. The file stores i8 rows with one scale per row; they are
/// widened to f32 at load (about 16 MB in memory) so that summing rows vectorises.
#[derive(Debug, Clone)]
pub struct PieceVectors {
    dims: usize,
    /// 64-bit hash of a piece → row; the piece itself is compared on a hit.
    index: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    pieces: Vec<Box<str>>,
    /// Row-major, `dims` per piece; all-zero rows (special pieces) are never looked up.
    rows: Vec<f32>,
    /// Whether a row is all zeros.
    empty: Vec<bool>,
}

/// The keys are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// FNV-1a over the optional `##` prefix and the piece bytes.
fn piece_hash(continuation: bool, piece: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    if continuation {
        eat(b'#');
        eat(b'#');
    }
    piece.iter().copied().for_each(&mut eat);
    h
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PiecesError> {
        if self.0.len() < n {
            return Err(PiecesError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, PiecesError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl PieceVectors {
    /// The shipped table.
    pub fn shipped() -> Result<Self, PiecesError> {
        Self::from_bytes(SHIPPED)
    }

    /// Parses an HTV1 file (format in `tools/topic_vectors.py`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PiecesError> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(PiecesError::Magic);
        }
        let n = r.u32()? as usize;
        let dims = r.u32()? as usize;
        let mut pieces = Vec::with_capacity(n.min(1 << 20));
        let mut index = HashMap::with_capacity_and_hasher(n.min(1 << 20), Default::default());
        for row in 0..n {
            let len = r.take(1)?[0] as usize;
            let piece = std::str::from_utf8(r.take(len)?).map_err(|_| PiecesError::Utf8)?;
            let key = match piece.strip_prefix("##") {
                Some(rest) => piece_hash(true, rest.as_bytes()),
                None => piece_hash(false, piece.as_bytes()),
            };
            index.entry(key).or_insert(row as u32);
            pieces.push(piece.into());
        }
        let mut rows = Vec::with_capacity(n * dims);
        let mut empty = Vec::with_capacity(n);
        for _ in 0..n {
            let s = r.take(4)?;
            let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            let q = r.take(dims)?;
            empty.push(scale == 0.0 || q.iter().all(|&b| b == 0));
            rows.extend(q.iter().map(|&b| scale * f32::from(b as i8)));
        }
        Ok(Self {
            dims,
            index,
            pieces,
            rows,
            empty,
        })
    }

    /// Number of dimensions of a text vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Row of a piece with a non-zero vector.
    fn lookup(&self, continuation: bool, piece: &[u8]) -> Option<u32> {
        let row = *self.index.get(&piece_hash(continuation, piece))?;
        let stored = self.pieces.get(row as usize)?.as_bytes();
        let stored = if continuation {
            stored.strip_prefix(b"##")?
        } else {
            stored
        };
        (stored == piece && !self.empty.get(row as usize).copied().unwrap_or(true)).then_some(row)
    }

    /// Calls `f` with the row of every piece of one ASCII alphanumeric word, or not at all
    /// when the word cannot be split into known pieces (BERT's `[UNK]`).
    fn word_pieces(&self, word: &[u8], rows: &mut Vec<u32>) {
        if word.len() > MAX_WORD {
            return;
        }
        let before = rows.len();
        let mut start = 0;
        while start < word.len() {
            let found = (start + 1..=word.len())
                .rev()
                .find_map(|end| Some((end, self.lookup(start > 0, &word[start..end])?)));
            match found {
                Some((end, row)) => {
                    rows.push(row);
                    start = end;
                }
                None => {
                    rows.truncate(before);
                    return;
                }
            }
        }
    }

    /// Rows of the pieces of a normalised text, in order (pieces without a vector, such
    /// as `[UNK]`, are left out).
    pub fn pieces_of(&self, norm: &str) -> Vec<u32> {
        let mut rows = Vec::with_capacity(norm.len() / 4);
        self.for_each_piece(norm, &mut rows);
        rows
    }

    fn for_each_piece(&self, norm: &str, rows: &mut Vec<u32>) {
        let bytes = norm.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_alphanumeric() {
                let end = bytes[i..]
                    .iter()
                    .position(|c| !c.is_ascii_alphanumeric())
                    .map_or(bytes.len(), |p| i + p);
                // A word glued to another script (`etf에`) is still a word.
                self.word_pieces(&bytes[i..end], rows);
                i = end;
            } else {
                if b.is_ascii_punctuation() {
                    if let Some(row) = self.lookup(false, &bytes[i..=i]) {
                        rows.push(row);
                    }
                }
                i += 1;
            }
        }
    }

    /// L2-normalised vector of a normalised text; `None` when it has no known piece.
    pub fn embed(&self, norm: &str) -> Option<Vec<f32>> {
        let mut pieces = Vec::with_capacity(norm.len() / 4);
        self.for_each_piece(norm, &mut pieces);
        if pieces.is_empty() {
            return None;
        }
        let mut v = vec![0f32; self.dims];
        for row in pieces {
            let r = row as usize;
            if let Some(q) = self.rows.get(r * self.dims..(r + 1) * self.dims) {
                v.iter_mut().zip(q).for_each(|(a, x)| *a += x);
            }
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n == 0.0 {
            return None;
        }
        v.iter_mut().for_each(|x| *x /= n);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn words_split_into_the_longest_known_pieces() {
        let v = PieceVectors::shipped().unwrap();
        let names = |t: &str| -> Vec<String> {
            v.pieces_of(t)
                .into_iter()
                .map(|r| v.pieces[r as usize].to_string())
                .collect()
        };
        assert_eq!(names("my bank account"), ["my", "bank", "account"]);
        assert_eq!(
            names("unaffordable?"),
            ["una", "##ff", "##ord", "##able", "?"]
        );
        // Korean has no pieces here; a Latin word glued to it still does.
        assert_eq!(names("주식을 etf에"), ["et", "##f"]);
    }

    #[test]
    fn related_words_land_closer_than_unrelated_ones() {
        let v = PieceVectors::shipped().unwrap();
        let e = |t: &str| v.embed(t).unwrap();
        let bank = e("what is the routing number of my checking account");
        let money = e("transfer money between my savings accounts");
        let cook = e("how long do i bake a chicken in the oven");
        assert!(cos(&bank, &money) > cos(&bank, &cook) + 0.2);
        assert!(v.embed("주식").is_none());
        assert!(v.embed("").is_none());
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        assert!(matches!(
            PieceVectors::from_bytes(b"NOPE"),
            Err(PiecesError::Magic)
        ));
        let full = SHIPPED;
        for cut in [3, 8, 11, 400, full.len() - 1] {
            assert!(PieceVectors::from_bytes(&full[..cut]).is_err(), "cut {cut}");
        }
    }
}
