//! Text normalisation against the usual evasions, shared by the classifiers.
//!
//! Attackers and trolls dodge filters with full-width letters, invisible characters,
//! Cyrillic/Greek look-alikes, leetspeak and spaced-out letters. [`normalize`] folds all of
//! these to one canonical lowercase form so that a model (or a word list) sees `ignore`
//! whether the input said `ＩＧＮＯＲＥ`, `ig\u{200B}nore`, `іgnоrе` (Cyrillic), `1gn0r3` or
//! `i g n o r e`. Hangul and other scripts pass through (NFKC only), so Korean text keeps
//! its meaning. The output is for scoring only: offsets do not map back to the input.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use unicode_normalization::UnicodeNormalization;

/// Returns the normalised form of `text` (see the module docs). Pure and allocation-light.
pub fn normalize(text: &str) -> String {
    normalize_in_pieces(text, NORMALIZE_PIECE)
}

/// Texts longer than twice this are normalised in pieces of about this size: one
/// character that needs the slower paths (a look-alike letter, a non-ASCII name) sends
/// only its piece there, not a whole long answer.
const NORMALIZE_PIECE: usize = 1024;

/// [`normalize_whole`] of each piece of `text` (cut between two plain words,
/// [`crate::text::piece_bounds`]), joined by the one space the cut left between them
/// (each piece's normal form is trimmed and keeps its words).
fn normalize_in_pieces(text: &str, piece: usize) -> String {
    let bounds = crate::text::piece_bounds(text.as_bytes(), piece);
    if bounds.len() <= 2 {
        return normalize_whole(text);
    }
    let mut out = String::with_capacity(text.len());
    for w in bounds.windows(2) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&normalize_whole(&text[w[0]..w[1]]));
    }
    out
}

/// [`normalize`] of `text` as one piece.
fn normalize_whole(text: &str) -> String {
    if text.is_ascii() {
        // ASCII is its own NFKC and has no invisible, accented or look-alike characters:
        // only whitespace and case change before the word passes, which then run on
        // bytes (a quarter of the memory of `char`s, no Unicode table lookups).
        let mut bytes: Vec<u8> = text.bytes().map(fold_ascii).collect();
        // The byte path only ever holds ASCII here.
        return finish_words(&mut bytes, |u| String::from_utf8_lossy(u).into_owned());
    }
    normalize_mostly_ascii(text)
        .or_else(|| normalize_utf16(text))
        .unwrap_or_else(|| normalize_chars(text))
}

/// How the per-character step treats a non-ASCII character whose result needs no
/// context (see [`normalize_mostly_ascii`]).
enum Standalone {
    /// Dropped (invisible).
    Drop,
    /// Becomes this ASCII character (accented Latin letters, tag characters).
    Ascii(u8),
    /// Stays one non-ASCII character that is not a letter or digit, not a look-alike and
    /// not a space (dashes, curly quotes, most symbols): every word pass treats it as an
    /// opaque separator, so it can travel through the byte passes as a placeholder byte.
    Opaque(char),
}

/// What [`fold_char`] makes of `c` alone (`None` for nothing), when that is also what it
/// makes of `c` inside any text and is at most one character: `c` is left alone by NFKC
/// in every context (quick-check `Yes`, so it never composes with the character before
/// it, and a starter, so nothing reorders around it). `None` for anything else.
fn folded_alone(c: char) -> Option<Option<char>> {
    use unicode_normalization::{char::canonical_combining_class, is_nfkc_quick, IsNormalized};
    if canonical_combining_class(c) != 0
        || is_nfkc_quick(std::iter::once(c)) != IsNormalized::Yes
        || ('\u{3131}'..='\u{318E}').contains(&c)
    {
        return None;
    }
    let mut out = [None; 2];
    let mut n = 0;
    fold_char(c, |r| {
        if let Some(slot) = out.get_mut(n) {
            *slot = Some(r);
        }
        n += 1;
    });
    match (n, out[0]) {
        (0, _) => Some(None),
        (1, Some(r)) => Some(Some(r)),
        _ => None,
    }
}

/// [`folded_alone`] as one of [`Standalone`], `None` for anything else.
fn standalone(c: char) -> Option<Standalone> {
    match folded_alone(c)? {
        None => Some(Standalone::Drop),
        Some(r) if r.is_ascii() => Some(Standalone::Ascii(r as u8)),
        Some(r) if !is_alnum(r) && !r.is_whitespace() && homoglyph(r).is_none() => {
            Some(Standalone::Opaque(r))
        }
        _ => None,
    }
}

/// [`normalize`] on bytes for text whose non-ASCII characters are all [`standalone`]
/// (English prose with a dash, a curly quote or an accented name): those become their
/// ASCII letter, nothing, or a placeholder byte `0x80 + k` for the k-th opaque character,
/// and the word passes run on bytes as for ASCII text. `None` when some character is not
/// standalone (Korean, Cyrillic, combining marks, compatibility forms) or the text holds
/// more than 128 different opaque characters; [`normalize_chars`] then does the work.
fn normalize_mostly_ascii(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut bytes: Vec<u8> = Vec::with_capacity(text.len());
    let mut opaque: Vec<char> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        // The ASCII run up to the next other character, mapped in one go.
        let run = crate::text::next_non_ascii(b, i) - i;
        bytes.extend(b[i..i + run].iter().map(|&x| fold_ascii(x)));
        i += run;
        if i == b.len() {
            break;
        }
        let c = text.get(i..)?.chars().next()?;
        i += c.len_utf8();
        match standalone(c)? {
            Standalone::Drop => {}
            Standalone::Ascii(a) => bytes.push(a),
            Standalone::Opaque(r) => {
                let k = match opaque.iter().position(|&o| o == r) {
                    Some(k) => k,
                    None => {
                        opaque.push(r);
                        opaque.len() - 1
                    }
                };
                bytes.push(0x80 | u8::try_from(k).ok().filter(|k| *k < 0x80)?);
            }
        }
    }
    Some(finish_words(&mut bytes, |units| {
        // ASCII runs copied as they are; each placeholder becomes its character.
        let mut out = String::with_capacity(units.len() + 2 * opaque.len());
        let mut rest = units;
        while let Some(p) = rest.iter().position(|u| !u.is_ascii()) {
            out.push_str(std::str::from_utf8(&rest[..p]).unwrap_or_default());
            let k = usize::from(rest[p] & 0x7F);
            out.push(opaque.get(k).copied().unwrap_or('?'));
            rest = &rest[p + 1..];
        }
        out.push_str(std::str::from_utf8(rest).unwrap_or_default());
        out
    }))
}

/// [`folded_alone`] as one unit of [`normalize_utf16`]: `Some(None)` for a dropped
/// character, the character itself when it is in the BMP, and a placeholder (see
/// [`OPAQUE_BASE`]) for a character beyond it that every word pass treats as opaque
/// (emoji, most symbols). `None` sends the text to the char path.
fn utf16_unit(c: char, opaque: &mut Vec<char>) -> Option<Option<u16>> {
    let Some(r) = folded_alone(c)? else {
        return Some(None);
    };
    if let Ok(u) = u16::try_from(u32::from(r)) {
        return Some(Some(u));
    }
    if is_alnum(r) || r.is_whitespace() || homoglyph(r).is_some() {
        return None;
    }
    let k = match opaque.iter().position(|&o| o == r) {
        Some(k) => k,
        None => {
            opaque.push(r);
            opaque.len() - 1
        }
    };
    let k = u16::try_from(k).ok().filter(|&k| k < OPAQUE_COUNT)?;
    Some(Some(OPAQUE_BASE + k))
}

/// Placeholders of [`normalize_utf16`] for opaque characters beyond the BMP: the surrogate
/// code points, which no `str` holds, so a placeholder never meets a real character. Each
/// reads as U+FFFD (not a letter, digit, space or separator), and two are equal only for
/// the same character.
const OPAQUE_BASE: u16 = 0xD800;
const OPAQUE_COUNT: u16 = 0x800;

/// [`normalize`] on UTF-16 units for text whose characters are all [`utf16_unit`]s
/// (Korean prose, and prose of any script that is its own NFKC: Cyrillic and Greek
/// names, kana, ideographs, emoji). Such text needs no normaliser and no per-character
/// table walk, and the word passes run on two bytes a character instead of four. `None`
/// sends the text to [`normalize_chars`].
fn normalize_utf16(text: &str) -> Option<String> {
    let mut units: Vec<u16> = Vec::with_capacity(text.len());
    let mut opaque: Vec<char> = Vec::new();
    for c in text.chars() {
        let code = u32::from(c);
        if code < 0x80 {
            units.push(u16::from(fold_ascii(code as u8)));
        } else if is_hangul_syllable(code) {
            // Hangul syllables: NFKC-stable starters the per-character step keeps.
            units.push(code as u16);
        } else if let Some(u) = utf16_unit(c, &mut opaque)? {
            units.push(u);
        }
    }
    Some(finish_words(&mut units, |units| {
        let mut out = String::with_capacity(units.len() * 3);
        for &u in units {
            match u.checked_sub(OPAQUE_BASE).filter(|&k| k < OPAQUE_COUNT) {
                Some(k) => out.push(opaque.get(usize::from(k)).copied().unwrap_or('?')),
                None => out.push(u.ch()),
            }
        }
        out
    }))
}

/// The per-character step for an ASCII byte: whitespace to a space, letters to lower case.
#[inline]
fn fold_ascii(b: u8) -> u8 {
    if matches!(b, b'\t'..=b'\r' | b' ') {
        b' '
    } else {
        b.to_ascii_lowercase()
    }
}

/// [`normalize`] over `char`s: any text (ASCII text gives the same as the byte path).
fn normalize_chars(text: &str) -> String {
    // 1. NFKC (full-width, compatibility and math-alphanumeric forms), drop invisibles,
    //    strip Latin accents, lowercase, fold look-alikes.
    let mut chars: Vec<char> = Vec::with_capacity(text.len());
    for c in nfkc_keep_jamo(text) {
        fold_char(c, |r| chars.push(r));
    }
    finish_words(&mut chars, |u| u.iter().collect())
}

/// The per-character step of [`normalize_chars`] for one character after NFKC: drop
/// invisibles, spaces to ` `, strip Latin accents, lower-case; `push` gets the result.
#[inline]
fn fold_char(c: char, mut push: impl FnMut(char)) {
    // Fast paths (same result as the general steps below): ASCII is never invisible
    // and its whitespace is `\t`..`\r` and space; Hangul syllables are neither
    // invisible, space, accented nor cased.
    if c.is_ascii() {
        push(if matches!(c, '\t'..='\r' | ' ') {
            ' '
        } else {
            c.to_ascii_lowercase()
        });
        return;
    }
    if is_hangul_syllable(u32::from(c)) {
        push(c);
        return;
    }
    // Unicode tag characters spell ASCII that renders as nothing but that models
    // read ("ASCII smuggling"): the classifiers get the hidden text.
    if ('\u{E0020}'..='\u{E007E}').contains(&c) {
        if let Some(a) = char::from_u32(c as u32 - 0xE0000) {
            push(a.to_ascii_lowercase());
        }
        return;
    }
    if is_invisible(c) {
        return;
    }
    if c.is_whitespace() {
        push(' ');
        return;
    }
    let base = strip_latin_accent(c);
    for l in base.to_lowercase() {
        push(l);
    }
}

/// A character of the text being normalised: a `char`, or a byte of a text mapped to
/// bytes. The word passes are written once over this and run on bytes for ASCII text.
trait Unit: Copy + PartialEq {
    fn ch(self) -> char;
    /// `c` is ASCII or comes from [`Unit::ch`] of a unit of this type.
    fn from_char(c: char) -> Self;
    /// The unit as an ASCII byte, `None` for other characters.
    fn ascii(self) -> Option<u8>;

    /// The first unit from `from` on that is a word unit but not an ASCII letter or a
    /// Hangul syllable: where [`fold_words`] has something to look at.
    fn next_unplain_word_unit(units: &[Self], from: usize) -> Option<usize> {
        let plain = |u: Self| {
            u.ascii().map_or_else(
                || is_hangul_syllable(u32::from(u.ch())),
                |b| b.is_ascii_alphabetic(),
            )
        };
        units
            .get(from..)?
            .iter()
            .position(|&u| u.is_word() && !plain(u))
            .map(|k| from + k)
    }

    /// [`has_spaced_singles`] (bytes answer it without walking the runs).
    fn any_spaced_singles(units: &[Self]) -> bool {
        has_spaced_singles(units)
    }

    /// [`is_alnum`], with ASCII from a table.
    #[inline]
    fn is_alnum(self) -> bool {
        match self.ascii() {
            Some(b) => ASCII_CLASS[usize::from(b & 0x7F)] & ALNUM != 0,
            None => is_alnum(self.ch()),
        }
    }
    /// [`is_alpha`].
    #[inline]
    fn is_alpha(self) -> bool {
        is_alpha(self.ch())
    }
    /// [`is_word_char`], with ASCII from a table.
    #[inline]
    fn is_word(self) -> bool {
        match self.ascii() {
            Some(b) => ASCII_CLASS[usize::from(b & 0x7F)] & WORD != 0,
            None => is_word_char(self.ch()),
        }
    }
}

/// [`ASCII_CLASS`] bits ([`ALPHA`] and [`LOOK_ALIKE`] only in [`char_class`]).
const ALNUM: u8 = 1;
const WORD: u8 = 2;
const ALPHA: u8 = 4;
const LOOK_ALIKE: u8 = 8;

/// Classes of the ASCII characters for the word passes: a lookup instead of a chain of
/// comparisons per character.
static ASCII_CLASS: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() {
            table[i] = ALNUM | WORD;
        } else if matches!(b, b'@' | b'$' | b'!' | b'|' | b'+') {
            table[i] = WORD;
        }
        i += 1;
    }
    table
};

impl Unit for char {
    #[inline]
    fn ch(self) -> char {
        self
    }
    #[inline]
    fn from_char(c: char) -> Self {
        c
    }
    #[inline]
    fn ascii(self) -> Option<u8> {
        u8::try_from(self).ok().filter(u8::is_ascii)
    }
}

/// Whether a unit of [`normalize_utf16`] is a letter or digit (placeholders are not).
#[inline]
fn u16_is_alnum(u: u16) -> bool {
    if u < 0x80 {
        ASCII_CLASS[usize::from(u)] & ALNUM != 0
    } else {
        is_hangul_syllable(u32::from(u)) || bmp_class(u) & ALNUM != 0
    }
}

/// [`ALNUM`], [`ALPHA`] and [`LOOK_ALIKE`] bits of a character (`char::is_alphanumeric`,
/// `char::is_alphabetic`, a [`homoglyph`] of its lower case). The word passes and the
/// span folds ask these per character, where the char functions search Unicode tables:
/// BMP characters are answered from a table of their 256-character block, built on first
/// use (a text touches a few blocks).
pub(crate) fn char_class(c: char) -> u8 {
    static BLOCKS: [std::sync::OnceLock<Box<[u8; 256]>>; 256] =
        [const { std::sync::OnceLock::new() }; 256];
    let code = u32::from(c);
    let Some(block) = BLOCKS.get((code >> 8) as usize) else {
        return class_of(c);
    };
    let table = block.get_or_init(|| {
        let mut table = Box::new([0u8; 256]);
        for (low, slot) in table.iter_mut().enumerate() {
            *slot = char::from_u32((code & !0xFF) | low as u32).map_or(0, class_of);
        }
        table
    });
    table[(code & 0xFF) as usize]
}

/// [`char_class`] computed.
fn class_of(c: char) -> u8 {
    let mut class = 0;
    if c.is_alphanumeric() {
        class |= ALNUM;
    }
    if c.is_alphabetic() {
        class |= ALPHA;
    }
    if !c.is_ascii() && homoglyph(c.to_lowercase().next().unwrap_or(c)).is_some() {
        class |= LOOK_ALIKE;
    }
    class
}

/// [`char_class`] of a UTF-16 unit of [`normalize_utf16`] (nothing for placeholders).
#[inline]
fn bmp_class(u: u16) -> u8 {
    char::from_u32(u32::from(u)).map_or(0, char_class)
}

/// A Cyrillic or Greek letter that looks like a Latin one, in either case.
pub(crate) fn is_look_alike(c: char) -> bool {
    !c.is_ascii() && char_class(c) & LOOK_ALIKE != 0
}

/// An ASCII letter or digit, by comparisons (they vectorise; a table lookup does not).
#[inline]
fn u16_is_ascii_alnum(u: u16) -> bool {
    (u.wrapping_sub(u16::from(b'0')) < 10) | ((u | 0x20).wrapping_sub(u16::from(b'a')) < 26)
}

/// [`has_spaced_singles`] for [`normalize_utf16`]'s units. First the vectorised test of
/// `text::has_spaced_singles` (the walk branched at every word edge of Korean prose),
/// taking only ASCII letters and digits and Hangul syllables as letters: with fewer
/// letters there are only more singles, so its "no" is exact and its "yes" (exact for
/// text of those alone) is confirmed by the walk.
fn u16_spaced_singles(units: &[u16]) -> bool {
    let hangul_or_ascii = |u: u16| u16_is_ascii_alnum(u) | is_hangul_syllable(u32::from(u));
    // `x as u8` only counts below 0x80, where it is exact.
    crate::text::has_spaced_singles_by(units, hangul_or_ascii, u16_is_ascii_alnum, |x| {
        (x < 0x80) & is_spacing_byte(x as u8)
    }) && has_spaced_singles(units)
}

/// U+AC00..=U+D7A3.
#[inline]
fn is_hangul_syllable(code: u32) -> bool {
    // One comparison: below U+AC00 wraps around to a large number.
    code.wrapping_sub(0xAC00) < 11_172
}

/// UTF-16 units of the text [`normalize_utf16`] maps: every unit is a BMP character or a
/// placeholder (see [`OPAQUE_BASE`]).
impl Unit for u16 {
    #[inline]
    fn ch(self) -> char {
        char::from_u32(u32::from(self)).unwrap_or(char::REPLACEMENT_CHARACTER)
    }
    #[inline]
    fn from_char(c: char) -> Self {
        // The word passes only ever map to ASCII (leetspeak, look-alikes).
        u16::try_from(u32::from(c)).unwrap_or(u16::from(b'?'))
    }
    #[inline]
    fn ascii(self) -> Option<u8> {
        u8::try_from(self).ok().filter(u8::is_ascii)
    }
    #[inline]
    fn is_alnum(self) -> bool {
        u16_is_alnum(self)
    }
    #[inline]
    fn is_word(self) -> bool {
        if self < 0x80 {
            ASCII_CLASS[usize::from(self)] & WORD != 0
        } else {
            u16_is_alnum(self)
        }
    }
    #[inline]
    fn is_alpha(self) -> bool {
        if self < 0x80 {
            (self | 0x20).wrapping_sub(u16::from(b'a')) < 26
        } else {
            is_hangul_syllable(u32::from(self)) || bmp_class(self) & ALPHA != 0
        }
    }
    fn any_spaced_singles(units: &[u16]) -> bool {
        u16_spaced_singles(units)
    }
}

/// Bytes of ASCII text, and of the text [`normalize_mostly_ascii`] maps to bytes, where
/// `0x80..` are placeholders of opaque characters: each reads as U+FFFD, which the word
/// passes treat the way they treat any opaque character (not a letter, digit, space or
/// separator), and two placeholders are equal only for the same character.
impl Unit for u8 {
    #[inline]
    fn ch(self) -> char {
        if self.is_ascii() {
            char::from(self)
        } else {
            char::REPLACEMENT_CHARACTER
        }
    }
    #[inline]
    fn from_char(c: char) -> Self {
        // Every mapping the word passes apply on bytes (leetspeak, look-alikes) gives
        // ASCII; anything else must not turn into a placeholder.
        u8::try_from(c).ok().filter(u8::is_ascii).unwrap_or(b'?')
    }
    #[inline]
    fn ascii(self) -> Option<u8> {
        self.is_ascii().then_some(self)
    }
    fn next_unplain_word_unit(units: &[u8], from: usize) -> Option<usize> {
        // Digits and `@$!|+` (placeholders are not word units). Tested 32 bytes at a
        // time by comparisons, which vectorise: most words of prose are plain.
        let unplain = |b: u8| {
            (b.wrapping_sub(b'0') < 10)
                | (b == b'@')
                | (b == b'$')
                | (b == b'!')
                | (b == b'|')
                | (b == b'+')
        };
        crate::text::next_byte_where(units, from, unplain)
    }
    fn any_spaced_singles(units: &[u8]) -> bool {
        // Placeholders are not ASCII: neither letters nor separators, as for the walk.
        crate::text::has_spaced_singles(units, is_spacing_sep)
    }
}

/// The steps after per-character folding: leetspeak and look-alikes per word, spaced
/// letters joined, whitespace runs and long repeats collapsed, edges trimmed.
fn finish_words<U: Unit>(chars: &mut [U], collect: impl FnOnce(&[U]) -> String) -> String {
    fold_words(chars);
    let chars = collapse_spaced_letters(chars);
    // 2. Collapse whitespace runs and long character repeats ("sooooo" -> "soo").
    let space = U::from_char(' ');
    let out = collapse_runs(&chars);
    // Trim: the only whitespace left is the space.
    let start = out.iter().position(|&u| u != space).unwrap_or(out.len());
    let end = out
        .iter()
        .rposition(|&u| u != space)
        .map_or(start, |e| e + 1);
    collect(&out[start..end])
}

/// Step 2 of [`finish_words`]: a run of spaces becomes one space, a run of any other unit
/// two units.
fn collapse_runs<U: Unit>(chars: &[U]) -> Cow<'_, [U]> {
    if !has_runs_to_collapse(chars) {
        return Cow::Borrowed(chars);
    }
    let space = U::from_char(' ');
    // Every unit is written and the write position moves on past the kept ones only: no
    // branch on the keep decision, which prose makes hard to predict (a tenth of
    // `normalize`'s time went to that loop).
    let mut out = chars.to_vec();
    let mut kept = 0;
    let mut run = 0usize;
    for (i, &u) in chars.iter().enumerate() {
        run = if i > 0 && chars[i - 1] == u {
            run + 1
        } else {
            1
        };
        out[kept] = u;
        kept += usize::from(!((u == space && run > 1) || run > 2));
    }
    out.truncate(kept);
    Cow::Owned(out)
}

/// Whether [`collapse_runs`] changes `chars`: two spaces in a row, or three equal units.
/// Tested over shifted views without branches (it vectorises); prose rarely has either.
fn has_runs_to_collapse<U: Unit>(chars: &[U]) -> bool {
    let space = U::from_char(' ');
    let n = chars.len();
    if n < 2 {
        return false;
    }
    let (a, b) = (&chars[..n - 1], &chars[1..]);
    let spaces = a
        .iter()
        .zip(b)
        .fold(false, |any, (&x, &y)| any | ((x == y) & (x == space)));
    if spaces || n < 3 {
        return spaces;
    }
    let (a, b, c) = (&chars[..n - 2], &chars[1..n - 1], &chars[2..]);
    a.iter()
        .zip(b)
        .zip(c)
        .fold(false, |any, ((&x, &y), &z)| any | ((x == y) & (y == z)))
}

/// Placeholder words of [`mask_entities`].
pub const EMAIL_TOKEN: &str = "xxemail";
pub const URL_TOKEN: &str = "xxurl";

/// Replaces e-mail addresses and URLs in a *normalised* text by placeholder words, so a
/// content classifier scores "my mail is kim@example.com" like "my mail is xxemail"
/// instead of reacting to letter n-grams of a random address.
pub fn mask_entities(normalized: &str) -> Cow<'_, str> {
    if !normalized.contains('@') && !normalized.contains("://") && !normalized.contains("ww.") {
        return Cow::Borrowed(normalized);
    }
    let mut out = String::with_capacity(normalized.len());
    for (i, tok) in split_spaces(normalized).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // Byte loops: tokens are short, and the generic substring search costs more to
        // set up than to run (this loop dominated long answers with one address).
        let b = tok.as_bytes();
        let is_url =
            b.windows(3).any(|w| w == b"://") || tok.starts_with("www.") || tok.starts_with("ww.");
        let is_email = b
            .iter()
            .position(|&c| c == b'@')
            .is_some_and(|at| at > 0 && b[at + 1..].contains(&b'.'));
        out.push_str(if is_url {
            URL_TOKEN
        } else if is_email {
            EMAIL_TOKEN
        } else {
            tok
        });
    }
    Cow::Owned(out)
}

/// `text.split(' ')` (same pieces, empty ones included) without the generic searcher,
/// whose per-call set-up dominates on short words.
pub fn split_spaces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == b' ') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Largest text [`normalize_shared`] keeps in its one-entry cache.
const CACHE_MAX: usize = 16 * 1024;

thread_local! {
    static CACHE: RefCell<Option<(String, Rc<str>)>> = const { RefCell::new(None) };
}

/// [`normalize`] with a one-entry per-thread cache: the policy engine runs several
/// classifiers over the same text one after another, and each would otherwise normalise
/// it again (about 14 µs per KB each).
pub fn normalize_shared(text: &str) -> Rc<str> {
    if text.len() > CACHE_MAX {
        return Rc::from(normalize(text));
    }
    let hit = CACHE.with(|c| {
        c.try_borrow().ok().and_then(|c| {
            c.as_ref()
                .filter(|(k, _)| k == text)
                .map(|(_, v)| v.clone())
        })
    });
    if let Some(v) = hit {
        return v;
    }
    let v: Rc<str> = Rc::from(normalize(text));
    CACHE.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            *c = Some((text.to_string(), v.clone()));
        }
    });
    v
}

/// NFKC except for Hangul compatibility jamo (ㅋ, ㅅㅂ…), which NFKC would turn into
/// conjoining jamo; Korean chat abbreviations are written with the compatibility forms.
///
/// Only the runs that need it go through the normaliser: ASCII and precomposed Hangul are
/// already NFKC and never combine with the character before them, so the text is cut
/// before each of them. A run starts one character early, because a combining mark may
/// compose with the ASCII letter or syllable before it ("e" + U+0301 → "é").
fn nfkc_keep_jamo(text: &str) -> Vec<char> {
    let is_jamo = |c: char| ('\u{3131}'..='\u{318E}').contains(&c);
    let is_stable = |c: char| c < '\u{A0}' || is_hangul_syllable(u32::from(c));
    let mut out = Vec::with_capacity(text.len());
    // Start of the run waiting for the normaliser, and of the previous stable char.
    let mut run: Option<usize> = None;
    let mut prev_stable: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if is_stable(c) || is_jamo(c) {
            if let Some(start) = run.take() {
                out.extend(text[start..i].nfkc());
            }
            out.push(c);
            prev_stable = is_stable(c).then_some(i);
        } else if run.is_none() {
            run = Some(match prev_stable {
                Some(p) => {
                    out.pop();
                    p
                }
                None => i,
            });
            prev_stable = None;
        }
    }
    if let Some(start) = run {
        out.extend(text[start..].nfkc());
    }
    out
}

/// Zero-width, bidi, tag and other format characters that render as nothing.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Maps accented Latin letters (é, ñ, ı̇…) to their base letter; leaves other scripts alone
/// (a full NFD would split Hangul syllables into jamo).
fn strip_latin_accent(c: char) -> char {
    if ('\u{00C0}'..='\u{024F}').contains(&c) || ('\u{1E00}'..='\u{1EFF}').contains(&c) {
        let mut base = c;
        unicode_normalization::char::decompose_canonical(c, |d| {
            if base == c && d.is_ascii_alphabetic() {
                base = d;
            }
        });
        match c {
            'ß' => 's',
            'ø' | 'Ø' => 'o',
            'đ' | 'Đ' => 'd',
            'ł' | 'Ł' => 'l',
            'ı' => 'i',
            _ => base,
        }
    } else {
        c
    }
}

/// Cyrillic and Greek letters that look like a Latin letter (lowercase forms).
pub(crate) fn homoglyph(c: char) -> Option<char> {
    Some(match c {
        'а' => 'a',
        'в' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ё' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ї' | 'ι' | 'ɩ' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'ӏ' => 'l',
        'м' => 'm',
        'п' | 'η' => 'n',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' | 'μ' => 'u',
        'ν' | 'ѵ' => 'v',
        'ѡ' | 'ω' | 'ш' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        'α' => 'a',
        _ => return None,
    })
}

/// Leetspeak digits and symbols inside words.
fn leet(c: char) -> Option<char> {
    Some(match c {
        '0' => 'o',
        '1' | '!' | '|' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' | '+' => 't',
        '8' => 'b',
        _ => return None,
    })
}

/// `char::is_alphanumeric` with fast paths for ASCII and Hangul syllables (the general
/// case is a Unicode table search).
#[inline]
pub fn is_alnum(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else if is_hangul_syllable(u32::from(c)) {
        true
    } else {
        char_class(c) & ALNUM != 0
    }
}

#[inline]
fn is_alpha(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else if is_hangul_syllable(u32::from(c)) {
        true
    } else {
        char_class(c) & ALPHA != 0
    }
}

fn is_word_char(c: char) -> bool {
    is_alnum(c) || matches!(c, '@' | '$' | '!' | '|' | '+')
}

/// Per word: fold homoglyphs when the word mixes Latin with look-alikes (or consists only
/// of look-alikes), and fold leetspeak when the word mixes letters with leet symbols.
fn fold_words<U: Unit>(chars: &mut [U]) {
    // A word of ASCII letters and Hangul syllables only (most words) has no look-alike
    // and no leetspeak: nothing below can change it. Only the words around the other
    // word units are visited.
    let mut from = 0;
    while let Some(p) = U::next_unplain_word_unit(chars, from) {
        let mut start = p;
        while start > from && chars[start - 1].is_word() {
            start -= 1;
        }
        let mut i = p + 1;
        while i < chars.len() && chars[i].is_word() {
            i += 1;
        }
        fold_word(chars, start, i);
        from = i;
    }
}

/// The folds of [`fold_words`] on the word `chars[start..run_end]`, which holds a unit
/// other than an ASCII letter or a Hangul syllable.
fn fold_word<U: Unit>(chars: &mut [U], start: usize, run_end: usize) {
    // Trailing '!' / '|' are punctuation, not letters.
    let mut end = run_end;
    while end > start && matches!(chars[end - 1].ch(), '!' | '|' | '+') {
        end -= 1;
    }
    if start == end {
        return;
    }
    // An e-mail address ("kim@example.com") is not leetspeak: keep its '@' so that
    // [`mask_entities`] can recognise it.
    let email = chars[start].ch() != '@'
        && chars[start..end].iter().any(|u| u.ch() == '@')
        && chars.get(end).is_some_and(|u| u.ch() == '.')
        && chars
            .get(end + 1)
            .is_some_and(|u| u.ch().is_ascii_alphanumeric());
    let word = &mut chars[start..end];
    // One pass of counts; look-alike tables only for non-ASCII characters.
    let (mut latin, mut glyphs, mut letters, mut leets, mut all_ascii) = (0, 0, 0, 0, true);
    for &u in word.iter() {
        let c = u.ch();
        if c.is_ascii() {
            if c.is_ascii_alphabetic() {
                latin += 1;
                letters += 1;
            } else if leet(c).is_some() {
                leets += 1;
            }
        } else {
            all_ascii = false;
            if homoglyph(c).is_some() {
                glyphs += 1;
            }
            if u.is_alpha() {
                letters += 1;
            }
        }
    }
    if glyphs > 0 && (latin > 0 || glyphs == letters) {
        for u in word.iter_mut() {
            if let Some(l) = homoglyph(u.ch()) {
                *u = U::from_char(l);
            }
        }
        latin += glyphs;
        all_ascii = word.iter().all(|u| u.ch().is_ascii());
    }
    let ascii_letters = latin;
    // "1gn0re", "h@te", "p4ssw0rd": letters dominate; "2024", "b2b" stay.
    if !email && all_ascii && leets > 0 && ascii_letters >= 2 && ascii_letters >= leets {
        for u in word.iter_mut() {
            if let Some(l) = leet(u.ch()) {
                *u = U::from_char(l);
            }
        }
    }
}

/// Joins runs of 3+ single letters separated by one space or `.`/`-`/`_`/`*`
/// ("i g n o r e" -> "ignore"). Separators are dropped only inside such runs.
fn collapse_spaced_letters<U: Unit>(chars: &[U]) -> Cow<'_, [U]> {
    if !U::any_spaced_singles(chars) {
        return Cow::Borrowed(chars);
    }
    Cow::Owned(join_spaced_singles(chars))
}

/// Separators [`collapse_spaced_letters`] drops between single letters.
fn is_spacing_sep<U: Unit>(u: U) -> bool {
    u.ascii().is_some_and(is_spacing_byte)
}

/// The ASCII separators of [`is_spacing_sep`].
#[inline]
fn is_spacing_byte(b: u8) -> bool {
    matches!(b, b' ' | b'.' | b'-' | b'_' | b'*')
}

/// The joining of [`collapse_spaced_letters`], on any text.
fn join_spaced_singles<U: Unit>(chars: &[U]) -> Vec<U> {
    let is_sep = is_spacing_sep::<U>;
    let an: Vec<bool> = chars.iter().map(|u| u.is_alnum()).collect();
    // A single ASCII letter/digit with no alphanumeric neighbour.
    let is_single = |i: usize| -> bool {
        an[i]
            && chars[i].ch().is_ascii()
            && (i + 1 >= chars.len() || !an[i + 1])
            && (i == 0 || !an[i - 1])
    };
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if is_single(i) {
            // Count letters in the run: letter sep letter sep letter ...
            let mut j = i;
            let mut n = 1;
            while j + 2 < chars.len() && is_sep(chars[j + 1]) && is_single(j + 2) {
                j += 2;
                n += 1;
            }
            if n >= 3 {
                out.extend((i..=j).step_by(2).map(|k| chars[k]));
                i = j + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Whether three single ASCII letters or digits (no alphanumeric neighbour) follow each
/// other one separator apart: exactly when [`collapse_spaced_letters`] joins something
/// (initials such as `J. R. Smith` have two and are common in prose). One pass, no
/// allocation.
fn has_spaced_singles<U: Unit>(chars: &[U]) -> bool {
    // End (exclusive) of the last single seen, how many singles the chain ending there
    // holds, and the length of the current run.
    let mut last_single_end: Option<usize> = None;
    let mut chain = 0usize;
    let mut run = 0usize;
    let mut run_ascii = true;
    for i in 0..=chars.len() {
        let u = chars.get(i).copied();
        if u.is_some_and(U::is_alnum) {
            run += 1;
            run_ascii &= u.and_then(U::ascii).is_some();
            continue;
        }
        if run == 1 && run_ascii {
            chain = if last_single_end.is_some_and(|e| e + 1 == i - 1 && is_spacing_sep(chars[e])) {
                chain + 1
            } else {
                1
            };
            if chain >= 3 {
                return true;
            }
            last_single_end = Some(i);
        }
        run = 0;
        run_ascii = true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_spaces_is_split_on_space() {
        for t in ["", " ", "a", "a b", " a  b ", "한국어 텍스트  x", "  "] {
            assert_eq!(
                split_spaces(t).collect::<Vec<_>>(),
                t.split(' ').collect::<Vec<_>>(),
                "{t:?}"
            );
        }
    }

    #[test]
    fn ascii_bytes_path_equals_the_char_path_on_known_texts() {
        for text in [
            "1gn0r3 the rul3s",
            "i g n o r e all",
            "kim@example.com h@te",
            "  ",
        ] {
            assert_eq!(normalize(text), normalize_chars(text), "{text:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Normalising in pieces (8 to 40 bytes, so texts have many cuts) gives what
        /// normalising the whole text gives.
        #[test]
        fn pieces_normalize_as_the_whole_text(
            text in crate::text::words_with_separators(
                vec![
                "word", "hello", "World", "the", "and", "more", "aaaa", "sooooo", "1gn0r3",
                "h@te", "a", "b", "x", "1", "22", "$", "а", "Путин", "ｋ", "é", "e\u{0301}",
                "\u{200B}", "시", "발", "더", "한국어", "ㅅ", "ㅣ", "ﬁne", "½", "ＩＧＮＯＲＥ",
            ],
                vec![
                " ", " ", " ", " ", " ", "  ", "\n", "\t", ".", "-", "_", "*", "/", "@", ", ",
                " \u{200B}",
            ],
                0..40,
            ),
            piece in 8usize..40,
        ) {
            proptest::prop_assert_eq!(
                normalize_in_pieces(&text, piece),
                normalize_whole(&text),
                "{:?}",
                text
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
        /// ASCII texts heavy in what the word passes react to: leetspeak digits and
        /// symbols, e-mail-like `@`/`.`, spaced single letters, repeats, separators and
        /// every kind of ASCII whitespace.
        #[test]
        fn ascii_bytes_path_equals_the_char_path(chars in proptest::collection::vec(
            proptest::sample::select(
                "aAbeEiIlosStTz 0134578@$!|+.-_*\t\n\x0b\x0c\r#:/".chars().collect::<Vec<_>>(),
            ),
            0..40,
        )) {
            let text: String = chars.into_iter().collect();
            proptest::prop_assert_eq!(normalize(&text), normalize_chars(&text), "{:?}", text);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
        /// Mostly-ASCII text on bytes gives what the char path gives: dashes, quotes and
        /// other opaque characters (also repeated, next to separators and inside
        /// would-be words), accented letters, invisibles and tag characters, mixed with
        /// what is not standalone (Cyrillic, combining marks, compatibility forms, no-break
        /// spaces, Korean), which must send the text to the char path.
        #[test]
        fn mostly_ascii_bytes_path_equals_the_char_path(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "a", "A", "e", "i", "s", "t", "o", " ", ".", "-", "_", "*", "@", "$", "!", "|",
                "+", "0", "1", "3", "\n", "\u{2013}", "\u{2014}", "\u{2019}", "\u{201C}", "\u{00B7}",
                "\u{00E9}", "\u{00C9}", "\u{00DF}", "\u{0131}", "\u{00F8}", "\u{200B}",
                "\u{200E}", "\u{E0041}", "\u{2122}", "\u{00A0}", "\u{2026}", "\u{0301}",
                "\u{0430}", "\u{03BF}", "\u{FF21}", "\u{00B2}", "\u{3131}", "\u{D55C}",
                "\u{00E6}", "\u{00BF}", "\u{20AC}", "\u{2665}",
            ]),
            0..30,
        )) {
            let text: String = parts.concat();
            if let Some(bytes) = normalize_mostly_ascii(&text) {
                proptest::prop_assert_eq!(bytes, normalize_chars(&text), "{:?}", text);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
        /// Text on UTF-16 units gives what the char path gives: Hangul syllables, Cyrillic
        /// and Greek letters with and without a Latin look-alike (upper case too), other
        /// scripts' letters, digits and marks, next to ASCII letters, digits, leetspeak,
        /// spaced singles and separators, opaque punctuation, emoji beyond the BMP,
        /// invisibles, and what must send the text to the char path (compatibility jamo,
        /// a trailing conjoining jamo that composes with the syllable before it, combining
        /// marks, full-width and math forms, letters beyond the BMP).
        #[test]
        fn utf16_units_path_equals_the_char_path(parts in proptest::collection::vec(
            proptest::prop_oneof![
                19 => proptest::sample::select(vec![
                    "\u{D55C}", "\u{AD6D}", "\u{C5B4}", "\u{AC00}", "\u{D7A3}", "\u{B2D8}",
                    " ", ".", "-", "_", "*", "@", "$", "!", "|", "+", "a", "B", "e", "i", "s",
                    "0", "1", "3", "4", "\n", "\t", "\u{2013}", "\u{201C}", "\u{00B7}",
                    "\u{200B}", "\u{E0041}", "\u{00E9}", "\u{4E00}", "\u{0430}",
                    "\u{1F600}", "\u{0431}", "\u{0416}", "\u{043E}", "\u{0441}", "\u{03B1}",
                    "\u{03A3}", "\u{0645}", "\u{0663}", "\u{30AB}", "\u{0915}", "\u{093F}",
                    "\u{1F44D}", "\u{E000}", "\u{FFFD}",
                ]),
                1 => proptest::sample::select(vec![
                    "\u{3131}", "\u{11A8}", "\u{0301}", "\u{FF21}", "\u{3000}", "\u{00A0}",
                    "\u{1D400}", "\u{20000}", "\u{2160}", "\u{00B2}",
                ]),
            ],
            0..30,
        )) {
            let text: String = parts.concat();
            if let Some(units) = normalize_utf16(&text) {
                proptest::prop_assert_eq!(units, normalize_chars(&text), "{:?}", text);
            }
        }
    }

    /// [`fold_words`] as it was written before it skipped plain words: every word
    /// visited.
    fn fold_words_reference<U: Unit>(chars: &mut [U]) {
        let mut i = 0;
        while i < chars.len() {
            if !chars[i].is_word() {
                i += 1;
                continue;
            }
            let start = i;
            let mut plain = true;
            while i < chars.len() && chars[i].is_word() {
                let c = chars[i].ch();
                plain &= c.is_ascii_alphabetic() || is_hangul_syllable(u32::from(c));
                i += 1;
            }
            if !plain {
                fold_word(chars, start, i);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Visiting only the words around unplain units folds what visiting every word
        /// folds, on chars, on UTF-16 units and on bytes (non-ASCII as placeholders).
        #[test]
        fn word_folds_skip_only_plain_words(chars in proptest::collection::vec(
            proptest::sample::select("ab z1034@$!|+ .-가о\u{0441}é٣".chars().collect::<Vec<_>>()),
            0..80,
        )) {
            let mut fast = chars.clone();
            let mut slow = chars.clone();
            fold_words(&mut fast);
            fold_words_reference(&mut slow);
            proptest::prop_assert_eq!(&fast, &slow, "{:?}", chars);
            let units: Vec<u16> = chars.iter().map(|&c| c as u16).collect();
            let (mut fast, mut slow) = (units.clone(), units);
            fold_words(&mut fast);
            fold_words_reference(&mut slow);
            proptest::prop_assert_eq!(&fast, &slow, "{:?}", chars);
            let bytes: Vec<u8> = chars
                .iter()
                .map(|&c| u8::try_from(c).ok().filter(u8::is_ascii).unwrap_or(0x80))
                .collect();
            let (mut fast, mut slow) = (bytes.clone(), bytes);
            fold_words(&mut fast);
            fold_words_reference(&mut slow);
            proptest::prop_assert_eq!(&fast, &slow, "{:?}", chars);
        }
    }

    /// The block tables answer what the char functions answer, for every character.
    #[test]
    fn char_classes_are_the_unicode_properties() {
        for c in ('\u{0}'..=char::MAX).filter(|c| !c.is_ascii()) {
            let class = char_class(c);
            assert_eq!(class & ALNUM != 0, c.is_alphanumeric(), "{c:?}");
            assert_eq!(class & ALPHA != 0, c.is_alphabetic(), "{c:?}");
            assert_eq!(is_alnum(c), c.is_alphanumeric(), "{c:?}");
            assert_eq!(is_alpha(c), c.is_alphabetic(), "{c:?}");
            let look_alike = homoglyph(c.to_lowercase().next().unwrap_or(c)).is_some();
            assert_eq!(is_look_alike(c), look_alike, "{c:?}");
        }
    }

    #[test]
    fn prose_of_other_scripts_takes_the_units_path() {
        for text in [
            "Vladimir Putin (\u{0412}\u{043B}\u{0430}\u{0434}\u{0438}\u{043C}\u{0438}\u{0440}) said \u{1F600}\u{1F600}",
            "\u{6771}\u{4EAC} (\u{30C8}\u{30A6}\u{30AD}\u{30E7}\u{30A6}) is a city: 1gn0re \u{0441}\u{043E}",
            "\u{0627}\u{0644}\u{0639}\u{0631}\u{0628}\u{064A}\u{0629} \u{0663} i g n o r e \u{1F44D}",
        ] {
            let units = normalize_utf16(text);
            assert!(units.is_some(), "{text:?}");
            assert_eq!(units.as_deref(), Some(normalize_chars(text).as_str()), "{text:?}");
        }
    }

    #[test]
    fn korean_prose_takes_the_units_path() {
        for text in [
            "첨부한 분기 보고서를 요약해 주세요. 3월에 바뀐 정책 \u{2013} i g n o r e",
            "시1발 h@te 가 나 다 a.b.c",
            "보고서\u{200B}를 ㅋ",
        ] {
            let units = normalize_utf16(text);
            let expect_units = !text.contains('ㅋ');
            assert_eq!(units.is_some(), expect_units, "{text:?}");
            assert_eq!(normalize(text), normalize_chars(text), "{text:?}");
            if let Some(u) = units {
                assert_eq!(u, normalize_chars(text), "{text:?}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// The pre-check says "join" exactly when joining changes the text.
        #[test]
        fn spaced_singles_check_is_exact(chars in proptest::collection::vec(
            proptest::sample::select("ab1 .-_*é가б٣".chars().collect::<Vec<_>>()),
            0..24,
        )) {
            let joined = join_spaced_singles(&chars) != chars;
            proptest::prop_assert_eq!(
                has_spaced_singles(&chars), joined, "{:?}", chars
            );
            // The same on bytes (`é` and `가` as placeholders), where the byte test answers.
            let bytes: Vec<u8> = chars
                .iter()
                .map(|&c| u8::try_from(c).ok().filter(u8::is_ascii).unwrap_or(0x80))
                .collect();
            proptest::prop_assert_eq!(
                u8::any_spaced_singles(&bytes),
                join_spaced_singles(&bytes) != bytes,
                "{:?}",
                chars
            );
            // The same on UTF-16 units, whose vectorised test counts only ASCII and
            // Hangul as letters (`б` and `٣` are letters and digits it does not count).
            let units: Vec<u16> = chars.iter().map(|&c| c as u16).collect();
            proptest::prop_assert_eq!(
                u16::any_spaced_singles(&units),
                join_spaced_singles(&units) != units,
                "{:?}",
                chars
            );
        }
    }

    #[test]
    fn mostly_ascii_text_takes_the_bytes_path() {
        for text in [
            "Kim Jong\u{2013}un \u{201C}said\u{201D} caf\u{00E9} na\u{00EF}ve \u{2013}\u{2013}\u{2013} x",
            "r\u{00E9}sum\u{00E9} \u{2014} p\u{200E}@$$w0rd i \u{2013} g n o r e",
        ] {
            let bytes = normalize_mostly_ascii(text);
            assert!(bytes.is_some(), "{text:?}");
            assert_eq!(bytes.as_deref(), Some(normalize_chars(text).as_str()));
        }
        for text in [
            "caf\u{0065}\u{0301}",
            "\u{0456}gnore",
            "\u{FF21}",
            "a\u{00A0}b",
            "한",
        ] {
            assert_eq!(normalize_mostly_ascii(text), None, "{text:?}");
        }
    }

    #[test]
    fn fast_paths_agree_with_the_general_steps() {
        for b in 0u8..128 {
            let c = b as char;
            // The ASCII table of the word passes says what the char functions say.
            assert_eq!(Unit::is_alnum(b), is_alnum(c), "{b}");
            assert_eq!(Unit::is_word(b), is_word_char(c), "{b}");
            assert_eq!(Unit::is_alnum(c), is_alnum(c), "{b}");
            assert!(!is_invisible(c), "{b}");
            assert_eq!(c.is_whitespace(), matches!(c, '\t'..='\r' | ' '), "{b}");
        }
        for c in '\u{AC00}'..='\u{D7A3}' {
            assert!(!is_invisible(c) && !c.is_whitespace());
            assert_eq!(strip_latin_accent(c), c);
            assert!(c.to_lowercase().eq(std::iter::once(c)));
        }
    }

    #[test]
    fn folds_evasions() {
        let cases: &[(&str, &str)] = &[
            ("IGNORE previous", "ignore previous"),
            ("ＩＧＮＯＲＥ ａｌｌ", "ignore all"),
            ("ig\u{200B}no\u{200D}re\u{FEFF} it", "ignore it"),
            ("\u{0456}gn\u{043E}r\u{0435} rules", "ignore rules"),
            ("1gn0r3 the rul3s", "ignore the rules"),
            ("i g n o r e all", "ignore all"),
            ("i.g.n.o.r.e all", "ignore all"),
            ("Ignorë prévious", "ignore previous"),
            ("𝐢𝐠𝐧𝐨𝐫𝐞 this", "ignore this"),
            ("so    many   spaces", "so many spaces"),
            ("noooooo", "noo"),
            ("p@$$w0rd", "password"),
            ("hi \u{E0049}\u{E0067}\u{E006E}", "hi ign"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn keeps_korean_and_numbers() {
        let cases: &[(&str, &str)] = &[
            ("이전 지시를 무시하고", "이전 지시를 무시하고"),
            ("ＡＢＣ 한국어", "abc 한국어"),
            ("version 2024 costs $100", "version 2024 costs $100"),
            ("Привет мир", "привет мир"),
            ("a b", "a b"),
            ("ㅋㅋㅋㅋㅋ 웃겨", "ㅋㅋ 웃겨"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), *want, "input {input:?}");
        }
    }

    #[test]
    fn masks_emails_and_urls_but_not_leet() {
        let cases: &[(&str, &str)] = &[
            (
                "내 이메일은 Kim@Example.com 이고",
                "내 이메일은 xxemail 이고",
            ),
            ("see https://t.co/x1Y2 now", "see xxurl now"),
            ("visit www.example.org.", "visit xxurl"),
            ("you h@te me", "you hate me"),
            ("@user hi", "auser hi"),
            ("no entities here", "no entities here"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_entities(&normalize(input)), *want, "input {input:?}");
        }
    }

    #[test]
    fn shared_normalisation_matches_and_follows_the_input() {
        for t in [
            "IGNORE previous",
            "오늘 날씨",
            "IGNORE previous",
            "p@$$w0rd",
        ] {
            assert_eq!(&*normalize_shared(t), normalize(t).as_str());
        }
        let long = "A".repeat(CACHE_MAX + 1);
        assert_eq!(&*normalize_shared(&long), normalize(&long).as_str());
    }

    /// The run collapse as first written: one pass that pushes each kept unit.
    fn collapse_runs_reference<U: Unit>(chars: &[U]) -> Vec<U> {
        let space = U::from_char(' ');
        let mut out = Vec::new();
        let mut prev: Option<U> = None;
        let mut run = 0usize;
        for &u in chars {
            run = if Some(u) == prev { run + 1 } else { 1 };
            prev = Some(u);
            if (u == space && run > 1) || run > 2 {
                continue;
            }
            out.push(u);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn collapse_runs_is_the_pushing_pass(
            units in proptest::collection::vec(proptest::sample::select(vec![' ', 'a', 'b', 'ㅋ', '한']), 0..60)
        ) {
            proptest::prop_assert_eq!(&*collapse_runs(&units), &collapse_runs_reference(&units)[..]);
            let bytes: Vec<u8> = units.iter().map(|&c| if c.is_ascii() { c as u8 } else { 0x80 }).collect();
            proptest::prop_assert_eq!(&*collapse_runs(&bytes), &collapse_runs_reference(&bytes)[..]);
        }
    }

    /// The whole-text definition that `nfkc_keep_jamo` computes run by run.
    fn nfkc_keep_jamo_reference(text: &str) -> Vec<char> {
        let is_jamo = |c: char| ('\u{3131}'..='\u{318E}').contains(&c);
        let mut out = Vec::new();
        let mut start = 0;
        for (i, c) in text.char_indices() {
            if is_jamo(c) {
                out.extend(text[start..i].nfkc());
                out.push(c);
                start = i + c.len_utf8();
            }
        }
        out.extend(text[start..].nfkc());
        out
    }

    proptest::proptest! {
        #[test]
        fn nfkc_by_runs_equals_nfkc_of_the_whole(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "a", "E", " ", "\n", "1", "\u{301}", "\u{308}", "\u{327}", "\u{FF21}", "\u{FF41}",
                "\u{1D400}", "\u{2460}", "\u{FB01}", "한", "가", "\u{11A8}", "\u{1161}", "\u{1100}",
                "ㅋ", "ㅅ", "\u{3000}", "\u{00C5}", "\u{212B}", "\u{0041}\u{030A}", "\u{00A0}", "é",
                "\u{0344}", "\u{0F73}", "\u{1E9B}\u{0323}", "ﾊﾟ", "\u{3099}", "か",
            ]), 0..24)
        ) {
            let text: String = parts.concat();
            proptest::prop_assert_eq!(nfkc_keep_jamo(&text), nfkc_keep_jamo_reference(&text));
        }
    }
}
