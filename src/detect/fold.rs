//! Evasion folding for span detectors, with offsets back into the original text.
//!
//! [`super::normalize`] folds text for classifiers, whose output need not map back.
//! Span detectors (PII, secrets, word lists, patterns) must report where a value is, so
//! this module builds a *folded view* of a text together with, for each byte of the
//! view, the byte range of the original text it came from. A detector runs on the
//! original text and, when folding changed anything, on the view too; findings of the
//! view are mapped back and added where they do not overlap the original's
//! ([`with_folded`]).
//!
//! What is folded (see docs/reliability.md, "Prompt-side evasions", for what each catches):
//! - invisible characters (zero-width, bidi controls, tag characters, variation
//!   selectors, soft hyphen) and combining marks (NFD accents) are dropped;
//! - compatibility forms whose NFKC is ASCII become that ASCII (full-width, mathematical
//!   alphanumerics, circled and superscript digits, ligatures, exotic spaces), and other
//!   scripts' decimal digits (Arabic-Indic, Devanagari, ...) become ASCII digits;
//! - Cyrillic/Greek look-alikes become Latin inside words that also hold ASCII letters or
//!   digits (Russian or Greek words stay as they are);
//! - Hangul jamo written one by one (`ㅅㅣㅂㅏㄹ`, NFD syllables) are composed;
//! - runs of three or more single ASCII letters or digits separated by one space, `.`,
//!   `-`, `_`, `*` or `/` are joined (`f.u.c.k`; digits from seven on: `0 1 0 1 2 …`),
//!   and so are runs of two or
//!   more single Hangul syllables separated by single spaces (`시 발`);
//! - dotted digit groups that look like card or phone numbers get dashes;
//! - `name at host dot com` (also `[at]`, `(at)`, `{at}`, `[dot]`, ...) becomes an address;
//! - word view only: leetspeak (`4`→a, `3`→e, `1`→i, `0`→o, `5`/`$`→s, `7`→t, `@`→a)
//!   inside tokens of ASCII letters, digits, `$` and `@` that hold both a letter and one
//!   of those (`f4ck`, `a$$`); tokens without a letter (`2024`, `4 apples`) stay;
//! - value view only: Sino-Korean digit syllables (`공`/`영` 0, `일` 1, `이` 2, `삼` 3,
//!   `사` 4, `오` 5, `육`/`륙` 6, `칠` 7, `팔` 8, `구` 9) become digits in a run of 7 or
//!   more digits and such syllables, made of whole words (a particle may follow the
//!   last) separated by one space, `-` or `.`, with a group of three or more or seven
//!   single ones (`공일공-1234-5678`, `공일공 일이삼사 오육칠팔`).
//!
//! Texts longer than [`MAX_FOLD_BYTES`] are not folded (their original is still
//! scanned): the view costs 9 bytes of memory per byte of text.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;

use super::normalize::{homoglyph, is_alnum, is_invisible, is_look_alike};
use super::partial::PartialMatcher;
use super::{Detection, Finding};

/// Longest text that gets a folded view.
pub const MAX_FOLD_BYTES: usize = 1 << 20;

/// A folded view of a text and where each of its bytes came from.
#[derive(Debug)]
pub struct Folded {
    pub text: String,
    src: SourceMap,
}

/// Where the bytes of a view came from.
#[derive(Debug)]
enum SourceMap {
    /// Per byte of the view: start and end byte of the original character(s) it came from.
    Bytes(Vec<(u32, u32)>),
    /// The view has the original's byte layout (only ASCII characters were replaced by
    /// ASCII characters): each byte comes from the character at the same place.
    SameLayout,
    /// The view is the original without some one-byte spaces: for each removed space, in
    /// order, the view offset it stood before. View byte `k` came from original byte
    /// `k + (number of these offsets <= k)`.
    SpacesRemoved(Vec<u32>),
}

impl Folded {
    /// The original span of the view's span `start..end` (byte offsets into `text`).
    pub fn original(&self, start: usize, end: usize) -> Option<(usize, usize)> {
        if start >= end || end > self.text.len() {
            return None;
        }
        match &self.src {
            SourceMap::Bytes(src) => Some((src[start].0 as usize, src[end - 1].1 as usize)),
            SourceMap::SameLayout => Some((
                floor_boundary(&self.text, start),
                ceil_boundary(&self.text, end),
            )),
            // Characters are whole in both texts: map the first byte of the first
            // character and the last byte of the last one.
            SourceMap::SpacesRemoved(gaps) => Some((
                source_byte(gaps, floor_boundary(&self.text, start)),
                source_byte(gaps, ceil_boundary(&self.text, end) - 1) + 1,
            )),
        }
    }
}

/// The original byte of view byte `at` under [`SourceMap::SpacesRemoved`].
fn source_byte(gaps: &[u32], at: usize) -> usize {
    at + gaps.partition_point(|&g| g as usize <= at)
}

/// The char boundary at or before `at` (`at <= text.len()`).
fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The char boundary at or after `at` (`at <= text.len()`).
fn ceil_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// Which detectors a view is for. Korean prose is full of one-syllable words side by
/// side ("더 잘", "그 후"), so joining spaced syllables (`시 발`) would give almost every
/// Korean text a second view; only word lists (profanity) need that fold, and a second
/// pass of their automaton is cheap. Values (PII, secrets, patterns) get every other fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    /// Word and phrase lists: every fold, including spaced Hangul syllables.
    Words,
    /// Values and patterns: every fold except spaced Hangul syllables.
    Values,
}

/// One character of the view under construction and its original byte range.
#[derive(Clone, Copy)]
struct Unit {
    c: char,
    start: u32,
    end: u32,
}

/// Runs `detect` on `text` and on its folded view (when folding changes it), returning
/// the original's findings plus the view's findings, mapped back, that overlap none of
/// them. Findings stay sorted by start and non-overlapping.
pub fn with_folded(text: &str, kind: ViewKind, detect: impl Fn(&str) -> Detection) -> Detection {
    let mut detection = detect(text);
    let Some(view) = folded_shared(text, kind) else {
        return detection;
    };
    let extra = detect(&view.text);
    let mut added = false;
    for f in extra.findings {
        let Some((start, end)) = view.original(f.start, f.end) else {
            continue;
        };
        if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        // A folded finding replaces original ones it covers whole (the evasion cut the
        // value short there); one that only partly overlaps them is dropped.
        let overlapping = |g: &Finding| g.start < end && start < g.end;
        let inside = |g: &Finding| start <= g.start && g.end <= end;
        if detection
            .findings
            .iter()
            .any(|g| overlapping(g) && !(inside(g) && (g.start, g.end) != (start, end)))
        {
            continue;
        }
        detection.findings.retain(|g| !overlapping(g));
        detection.findings.push(Finding { start, end, ..f });
        added = true;
    }
    if added {
        detection.findings.sort_by_key(|f| f.start);
        detection.score = detection
            .findings
            .iter()
            .map(|f| f.score)
            .fold(detection.score, f32::max);
    }
    detection
}

/// Both folded views of one text; `None` where folding changes nothing.
#[derive(Debug, Clone, Default)]
struct Views {
    words: Option<Rc<Folded>>,
    values: Option<Rc<Folded>>,
}

impl Views {
    fn get(&self, kind: ViewKind) -> Option<Rc<Folded>> {
        match kind {
            ViewKind::Words => self.words.clone(),
            ViewKind::Values => self.values.clone(),
        }
    }
}

thread_local! {
    static CACHE: RefCell<Option<(String, Views)>> = const { RefCell::new(None) };
}

/// [`fold_for`] with a one-entry per-thread cache holding both views: a policy runs
/// several span detectors over the same text one after another.
pub fn folded_shared(text: &str, kind: ViewKind) -> Option<Rc<Folded>> {
    if text.len() > MAX_FOLD_BYTES {
        return None;
    }
    let hit = CACHE.with(|c| {
        c.try_borrow().ok().and_then(|c| {
            c.as_ref()
                .filter(|(k, _)| k == text)
                .map(|(_, views)| views.get(kind))
        })
    });
    if let Some(v) = hit {
        return v;
    }
    let views = fold_views(text);
    let v = views.get(kind);
    CACHE.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            // The key's buffer is reused: streams ask about a new short text per delta.
            match c.as_mut() {
                Some((key, cached)) => {
                    key.clear();
                    key.push_str(text);
                    *cached = views;
                }
                None => *c = Some((text.to_string(), views)),
            }
        }
    });
    v
}

/// The folded view of `text`, or `None` when folding changes nothing.
pub fn fold(text: &str) -> Option<Folded> {
    fold_for(text, ViewKind::Words)
}

/// The folded view of `text` for one kind of detector, or `None` when folding changes
/// nothing.
pub fn fold_for(text: &str, kind: ViewKind) -> Option<Folded> {
    let views = fold_views(text);
    let view = views.get(kind)?;
    drop(views);
    Rc::try_unwrap(view).ok()
}

/// Both views, sharing the per-character passes; texts where nothing can fold (most
/// prose) cost one scan and no allocation.
fn fold_views(text: &str) -> Views {
    if text.len() > MAX_FOLD_BYTES {
        return Views::default();
    }
    fold_views_in_pieces(text, FOLD_PIECE, SLOW_PIECE)
}

/// Texts longer than twice this are folded in pieces of about this size. One character
/// that needs the per-character passes (a look-alike letter, a `1990s`) sends its whole
/// text through them; in pieces, only its piece goes (a 16 KB English answer folded
/// 5x slower per byte than its 1 KB parts did).
const FOLD_PIECE: usize = 1024;
/// Mostly-ASCII texts of up to two [`FOLD_PIECE`]s that need the general passes are
/// folded in pieces of about this size. Not every text: cutting all texts (and their
/// normalisation) this small cost the plain majority more than it saved (measured 0.96x
/// English passages, 1.04-1.07x Korean and English prompts).
const SLOW_PIECE: usize = 256;

/// [`fold_views_whole`] of each piece of `text` ([`crate::text::piece_bounds`]: cut
/// between two plain words, where no fold crosses), joined: pieces of about `piece`
/// bytes, and of about `slow_piece` for a text of up to two pieces that needs the general
/// passes.
fn fold_views_in_pieces(text: &str, piece: usize, slow_piece: usize) -> Views {
    if text.len() <= 2 * piece {
        return match fold_views_fast(text) {
            Ok(views) => views,
            Err(plain) => {
                // One odd character (an invisible mark, a look-alike in a name, `U.S.`)
                // sent a whole 1 KB prompt through the general passes, ~2.5x the cost of
                // its plain neighbours; in pieces only its own goes. (Korean text seldom
                // has a gap to cut at: not looked for.)
                if slow_piece < piece && crate::text::mostly_ascii(text.as_bytes()) {
                    let bounds = crate::text::piece_bounds(text.as_bytes(), slow_piece);
                    if bounds.len() > 2 {
                        return fold_pieces(text, &bounds);
                    }
                }
                fold_views_general(text, plain)
            }
        };
    }
    let bounds = crate::text::piece_bounds(text.as_bytes(), piece);
    if bounds.len() <= 2 {
        return fold_views_whole(text);
    }
    fold_pieces(text, &bounds)
}

/// [`fold_views_whole`] of each piece of `text` between `bounds` (from
/// [`crate::text::piece_bounds`]), joined.
fn fold_pieces(text: &str, bounds: &[usize]) -> Views {
    let pieces: Vec<(usize, Views)> = bounds
        .windows(2)
        .map(|w| (w[0], fold_views_whole(&text[w[0]..w[1]])))
        .collect();
    let join = |kind: ViewKind| {
        let views: Vec<(usize, &str, Option<Rc<Folded>>)> = pieces
            .iter()
            .zip(bounds.windows(2))
            .map(|((start, views), w)| (*start, &text[w[0]..w[1]], views.get(kind)))
            .collect();
        join_views(&views).map(Rc::new)
    };
    let words = join(ViewKind::Words);
    let values = join(ViewKind::Values);
    Views { words, values }
}

/// One view of a text from the views of its pieces (`start` of each piece in the text,
/// the piece, its view or `None` where folding left it alone).
fn join_views(pieces: &[(usize, &str, Option<Rc<Folded>>)]) -> Option<Folded> {
    if pieces.iter().all(|(_, _, v)| v.is_none()) {
        return None;
    }
    let mut text = String::new();
    let same_layout = pieces.iter().all(|(_, _, v)| {
        v.as_ref()
            .is_none_or(|v| matches!(v.src, SourceMap::SameLayout))
    });
    // Pieces that only lost spaces (Korean prose's word view) keep that map: the
    // removed spaces' view offsets, shifted by the view before the piece.
    let spaces_removed = !same_layout
        && pieces.iter().all(|(_, _, v)| {
            v.as_ref()
                .is_none_or(|v| matches!(v.src, SourceMap::SpacesRemoved(_)))
        });
    let mut gaps: Vec<u32> = Vec::new();
    let mut src: Vec<(u32, u32)> = Vec::new();
    for (start, piece, view) in pieces {
        let view_text = view.as_ref().map_or(*piece, |v| v.text.as_str());
        let view_start = text.len() as u32;
        text.push_str(view_text);
        if same_layout {
            continue;
        }
        if spaces_removed {
            if let Some(SourceMap::SpacesRemoved(g)) = view.as_ref().map(|v| &v.src) {
                gaps.extend(g.iter().map(|&at| at + view_start));
            }
            continue;
        }
        let offset = *start as u32;
        match view.as_ref().map(|v| &v.src) {
            Some(SourceMap::Bytes(bytes)) => {
                src.extend(bytes.iter().map(|&(a, b)| (a + offset, b + offset)));
            }
            Some(SourceMap::SpacesRemoved(_)) => {
                for (i, c) in view_text.char_indices() {
                    let end = i + c.len_utf8();
                    let span = view
                        .as_ref()
                        .and_then(|v| v.original(i, end))
                        .map_or((i as u32, end as u32), |(a, b)| (a as u32, b as u32));
                    src.extend((i..end).map(|_| (span.0 + offset, span.1 + offset)));
                }
            }
            // The piece's own layout: each byte comes from the character at its place.
            None | Some(SourceMap::SameLayout) => {
                for (i, c) in view_text.char_indices() {
                    let span = (i as u32 + offset, (i + c.len_utf8()) as u32 + offset);
                    src.extend((0..c.len_utf8()).map(|_| span));
                }
            }
        }
    }
    let src = if same_layout {
        SourceMap::SameLayout
    } else if spaces_removed {
        SourceMap::SpacesRemoved(gaps)
    } else {
        SourceMap::Bytes(src)
    };
    Some(Folded { text, src })
}

/// Both views of `text`, folded as one piece.
fn fold_views_whole(text: &str) -> Views {
    fold_views_fast(text).unwrap_or_else(|plain| fold_views_general(text, plain))
}

/// What the pre-checks of [`fold_views_whole`] found about a text that needs the general
/// passes.
#[derive(Debug, Clone, Copy)]
struct Plainness {
    /// Every character is plain ([`all_plain`]).
    simple: bool,
    /// Korean numerals may fold.
    numerals: bool,
    /// Only the word view can differ from the text.
    values_plain: bool,
}

/// [`fold_views_whole`] by its fast paths, or what the general passes need to know when
/// none applies.
fn fold_views_fast(text: &str) -> Result<Views, Plainness> {
    let simple = all_plain(text);
    let numerals = has_korean_numerals(text);
    let values_plain = simple && !numerals && no_value_folds(text);
    let plain = Plainness {
        simple,
        numerals,
        values_plain,
    };
    if values_plain {
        // Only the word view can differ from the text. Two common cases are built on the
        // original's bytes: leetspeak alone (English prose holding a token like `1990s`:
        // letters for leetspeak characters, byte for byte) and spaced Hangul syllables
        // alone (Korean prose: the spaces between one-syllable words dropped). Either
        // falls back to the general passes when its view spells out an address.
        let words = match (has_spaced_syllables(text), has_leet(text)) {
            (false, false) => return Ok(Views::default()),
            (false, true) => leet_only_view(text).map(Some),
            (true, false) => spaced_hangul_view(text),
            (true, true) => None,
        };
        if let Some(words) = words {
            return Ok(Views {
                words: words.map(Rc::new),
                values: None,
            });
        }
    }
    Err(plain)
}

/// The word view of a text in which only spaced Hangul syllables fold ([`fold_views`]
/// decides that): runs of two or more syllables that stand alone, one space apart, lose
/// those spaces, exactly as [`join_spaced`] joins them. `Some(None)` when no run joins;
/// `None` when the general passes are needed after all (the view spells an address).
fn spaced_hangul_view(text: &str) -> Option<Option<Folded>> {
    let chars: Vec<(u32, char)> = text.char_indices().map(|(i, c)| (i as u32, c)).collect();
    let char_at = |k: usize| chars.get(k).map(|&(_, c)| c);
    let alnum = |k: usize| char_at(k).is_some_and(is_alnum);
    let word = |k: usize| alnum(k) || char_at(k) == Some('@');
    let single = |k: usize| alnum(k) && !word(k + 1) && (k == 0 || !word(k - 1));
    let hangul = |k: usize| char_at(k).is_some_and(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c));
    // View offsets before which a space was dropped (see `SourceMap::SpacesRemoved`).
    let mut gaps: Vec<u32> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if hangul(i) && single(i) {
            let mut j = i;
            while char_at(j + 1) == Some(' ') && single(j + 2) && hangul(j + 2) {
                j += 2;
            }
            if j > i {
                for k in (i + 1..j).step_by(2) {
                    gaps.push(chars[k].0 - gaps.len() as u32);
                }
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    if gaps.is_empty() {
        return Some(None);
    }
    let mut view = String::with_capacity(text.len());
    let mut from = 0;
    for (n, &g) in gaps.iter().enumerate() {
        let space = g as usize + n;
        view.push_str(&text[from..space]);
        from = space + 1;
    }
    view.push_str(&text[from..]);
    if may_spell_at(&view) && address_regexes().is_none_or(|(address, _)| address.is_match(&view)) {
        return None;
    }
    Some(Some(Folded {
        text: view,
        src: SourceMap::SpacesRemoved(gaps),
    }))
}

/// The word view of a text in which only leetspeak folds ([`fold_views`] decides that),
/// built on bytes with the original's layout; `None` when the general passes are needed
/// after all (the folded text spells an address, which the word view joins).
fn leet_only_view(text: &str) -> Option<Folded> {
    let mut bytes = text.as_bytes().to_vec();
    leet_token_spans(text, |s, e| {
        for b in &mut bytes[s..e] {
            if let Some(l) = leet(char::from(*b)) {
                *b = l as u8;
            }
        }
    });
    let view = String::from_utf8(bytes).ok()?;
    if may_spell_at(&view) && address_regexes().is_none_or(|(address, _)| address.is_match(&view)) {
        return None;
    }
    (view != text).then_some(Folded {
        text: view,
        src: SourceMap::SameLayout,
    })
}

/// [`fold_views`] through the per-character passes (any text).
fn fold_views_general(text: &str, plain: Plainness) -> Views {
    let Plainness {
        simple,
        numerals,
        values_plain,
    } = plain;
    let units = if simple {
        // Nothing here is mapped, a look-alike or a loose jamo: the identity.
        text.char_indices()
            .map(|(i, c)| Unit {
                c,
                start: i as u32,
                end: (i + c.len_utf8()) as u32,
            })
            .collect()
    } else {
        let mut units = map_chars(text);
        fold_homoglyphs(&mut units);
        compose_jamo(units)
    };
    let (mut joined, joined_hangul) = join_spaced(units.clone(), true);
    let leet = fold_leet(&mut joined);
    let words = finish(text, joined).map(Rc::new);
    // Korean numerals: `numerals` is exact on plain text; other text is checked after
    // the per-character passes (a zero-width space may hide inside a run).
    let mut read_numerals = None;
    if !values_plain && (numerals || !simple) {
        let mut v = units.clone();
        if fold_korean_numerals(&mut v) {
            read_numerals = Some(v);
        }
    }
    let values = if values_plain {
        None
    } else if joined_hangul || leet || read_numerals.is_some() {
        let units = read_numerals.unwrap_or(units);
        finish(text, join_spaced(units, false).0).map(Rc::new)
    } else {
        // Nothing only one view folds was found: the two views are the same.
        words.clone()
    };
    Views { words, values }
}

/// The passes after spacing, and the view's text and source map; `None` when the view
/// equals the original.
fn finish(text: &str, units: Vec<Unit>) -> Option<Folded> {
    let units = dotted_digit_groups(units);
    let units = join_spelled_addresses(units);
    let mut out = String::with_capacity(text.len());
    let mut src = Vec::with_capacity(text.len());
    for u in &units {
        out.push(u.c);
        for _ in 0..u.c.len_utf8() {
            src.push((u.start, u.end));
        }
    }
    (out != text).then_some(Folded {
        text: out,
        src: SourceMap::Bytes(src),
    })
}

/// For text made only of characters the per-character passes leave alone ([`is_plain`]:
/// most prompts, English or Korean), only spaced single characters, dotted digit groups
/// and spelled addresses can fold. `true` when none of them (except spaced Hangul
/// syllables, which only the word view joins) can be present; a `false` only means "fold
/// to find out".
fn no_value_folds(text: &str) -> bool {
    // Bytes of non-ASCII letters count as "not alphanumeric" here: ASCII characters then
    // look single more often, which only sends more texts to the full fold.
    let b = text.as_bytes();
    let singles_or_dotted = if b.len() < SHORT_TEXT {
        // A short text (a streamed answer's undecided part, asked about on every delta)
        // is cheaper to walk once than to test in shifted views: the walk finds the
        // spaced singles too, and its dotted numbers need a `d.d`.
        !no_singles_or_dotted_numbers(b)
    } else {
        // `x?y?z`: three singles one byte apart, the shortest run spacing joins. Dotted
        // digit groups need a digit, a dot and a digit somewhere (prose rarely has one:
        // the walk is skipped).
        crate::text::has_spaced_singles(b, |_| true)
            || (has_digit_dot_digit(b) && !no_singles_or_dotted_numbers(b))
    };
    if singles_or_dotted {
        return false;
    }
    !(may_spell_at(text) && address_regexes().is_some_and(|(address, _)| address.is_match(text)))
}

/// Whether some `d.d` (ASCII digits around a dot) is in `b`, branch-free.
fn has_digit_dot_digit(b: &[u8]) -> bool {
    let m = b.len().saturating_sub(2);
    let w = |k: usize| b.get(k..k + m).unwrap_or_default();
    let (c0, c1, c2) = (w(0), w(1), w(2));
    let k = c0.len();
    let (c1, c2) = (&c1[..k], &c2[..k]);
    let mut any = false;
    for j in 0..k {
        any |= c0[j].is_ascii_digit() & (c1[j] == b'.') & c2[j].is_ascii_digit();
    }
    any
}

/// The walk behind [`no_value_folds`], one pass over the bytes: `false` on three spaced
/// singles or on a dotted number the number patterns would read (two dots, ten digits).
fn no_singles_or_dotted_numbers(b: &[u8]) -> bool {
    // End of the last single alphanumeric (a run of length one), how many singles one
    // byte apart end there, and the current run.
    let mut last_single_end: Option<usize> = None;
    let mut chained = 0usize;
    let mut run = 0usize;
    // Whether the current run is all digits (kept as it grows: no second look at it).
    let mut run_digits = true;
    // Digit groups joined by single dots: digits and dots of the current chain.
    let (mut digits, mut dots) = (0usize, 0usize);
    let mut i = 0;
    while i <= b.len() {
        let c = b.get(i).copied();
        if let Some(x) = c.filter(u8::is_ascii_alphanumeric) {
            run += 1;
            run_digits &= x.is_ascii_digit();
            i += 1;
            continue;
        }
        if run == 1 {
            // `x?y?z`: three singles one byte apart, the shortest run spacing joins.
            chained = if last_single_end.is_some_and(|e| e + 1 == i - 1) {
                chained + 1
            } else {
                1
            };
            if chained >= 3 {
                return false;
            }
            last_single_end = Some(i);
        }
        // `d.d.d` with ten digits: the least a dotted number the number patterns are
        // given with dashes has (two dots, ten digits).
        let group = if run_digits { run } else { 0 };
        if group > 0 {
            digits += group;
            if c == Some(b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                dots += 1;
                if dots >= 2 && digits >= 10 {
                    return false;
                }
            } else {
                if dots >= 2 && digits >= 10 {
                    return false;
                }
                (digits, dots) = (0, 0);
            }
        } else {
            (digits, dots) = (0, 0);
        }
        (run, run_digits) = (0, true);
        // Further separators with no run before them change nothing (Korean text is
        // mostly such bytes): skip to the next alphanumeric.
        i += 1;
        while let Some(&x) = b.get(i).filter(|x| !x.is_ascii_alphanumeric()) {
            // A multi-byte character at once (its other bytes are not ASCII either).
            i += match x {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
        }
    }
    true
}

/// The byte shortcuts of [`all_plain`]: whether lead byte `x`, followed by `y`, starts a
/// three-byte character that is plain by its bytes alone: U+B000..U+CFFF (lead 0xEB, 0xEC)
/// and U+AC00..U+AFFF, U+D000..U+D77F (0xEA, 0xED by the next byte) are Hangul syllables;
/// U+5000..U+9FFF (0xE5..=0xE9) ideographs. Branch-free, so the byte test vectorises.
#[inline]
fn plain_three_byte_lead(x: u8, y: u8) -> bool {
    (x.wrapping_sub(0xE5) < 5)
        | (x.wrapping_sub(0xEB) < 2)
        | ((x == 0xEA) & (y >= 0xB0))
        | ((x == 0xED) & (y < 0x9E))
}

/// Whether every character of `b` is one that [`all_plain`] reads as plain from its bytes
/// alone (ASCII, and the three-byte syllables and ideographs of its byte shortcuts), so
/// that its walk could only answer `true`. Each byte is tested with the one after it,
/// branch-free and 32 at a time, which the compiler vectorises: the walk took one step per
/// ASCII byte and a tenth of the view building of Korean prose. `false` sends the text to
/// the walk.
fn plain_by_bytes_alone(b: &[u8]) -> bool {
    let Some((&last, init)) = b.split_last() else {
        return true;
    };
    // A continuation byte belongs to a lead byte tested on its own.
    let fine = |x: u8, y: u8| (x < 0xC0) | plain_three_byte_lead(x, y);
    last < 0xC0
        && init.chunks(32).zip(b[1..].chunks(32)).all(|(xs, ys)| {
            xs.iter()
                .zip(ys)
                .fold(true, |all, (&x, &y)| all & fine(x, y))
        })
}

/// Whether the per-character passes leave `text` as it is: every character
/// [`is_plain`], or a look-alike in a word without ASCII letters or digits (Russian or
/// Greek words, which [`fold_homoglyphs`] keeps). ASCII, Hangul syllables and most CJK
/// ideographs are read from their bytes without decoding them (Korean prose is mostly
/// syllables; English mostly ASCII).
fn all_plain(text: &str) -> bool {
    let b = text.as_bytes();
    if plain_by_bytes_alone(b) {
        return true;
    }
    let mut look_alikes = false;
    let mut i = 0;
    while let Some(&x) = b.get(i) {
        if x.is_ascii() {
            i += 1;
            continue;
        }
        // A `str` has the continuation byte after a three-byte lead.
        if plain_three_byte_lead(x, b.get(i + 1).copied().unwrap_or(0)) {
            i += 3;
            continue;
        }
        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
            return text.chars().all(is_plain);
        };
        if !is_plain(c) {
            if !is_look_alike(c) {
                return false;
            }
            look_alikes = true;
        }
        i += c.len_utf8();
    }
    !look_alikes || look_alikes_stay(text)
}

/// Whether no word of `text` (a run of [`is_word_unit`]s, as [`fold_homoglyphs`] reads
/// it) holds both a look-alike and an ASCII letter or digit, so that no look-alike
/// folds. For text whose other characters are all [`is_plain`].
fn look_alikes_stay(text: &str) -> bool {
    let (mut latin, mut glyph) = (false, false);
    for c in text.chars() {
        if !is_word_unit(c) {
            (latin, glyph) = (false, false);
            continue;
        }
        latin |= c.is_ascii_alphanumeric();
        glyph |= is_look_alike(c);
        if latin && glyph {
            return false;
        }
    }
    true
}

/// Characters the per-character passes leave as they are: ASCII, precomposed Hangul,
/// CJK ideographs, and any other character that is not invisible, a combining mark, a
/// foreign digit, non-ASCII whitespace, a loose jamo, a look-alike of a Latin letter or a
/// compatibility form of ASCII (so en dashes, accented letters and CJK punctuation are
/// plain, full-width letters and Cyrillic `а` are not).
fn is_plain(c: char) -> bool {
    if c.is_ascii()
        || ('\u{AC00}'..='\u{D7A3}').contains(&c)
        || ('\u{4E00}'..='\u{9FFF}').contains(&c)
    {
        return true;
    }
    if c.is_whitespace()
        || is_invisible(c)
        || is_combining_mark(c)
        || is_jamo(c)
        || foreign_digit(c).is_some()
        || is_look_alike(c)
    {
        return false;
    }
    !nfkc_is_ascii(c)
}

/// Whether NFKC turns `c` into ASCII (its compatibility decomposition is all ASCII: ASCII
/// never recomposes), without allocating.
fn nfkc_is_ascii(c: char) -> bool {
    let (mut any, mut all) = (false, true);
    unicode_normalization::char::decompose_compatible(c, |d| {
        any = true;
        all &= d.is_ascii();
    });
    any && all
}

/// Two one-syllable Hangul words separated by one space (`시 발`).
fn has_spaced_syllables(text: &str) -> bool {
    if text.is_ascii() {
        return false;
    }
    // `a x ' ' y b`, where x and y are syllables standing alone (a and b are not letters
    // or digits, or the text's edge): looked for around each space, on bytes.
    let syllable = |s: Option<&str>| {
        s.and_then(|s| s.chars().next())
            .is_some_and(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
    };
    memchr::memchr_iter(b' ', text.as_bytes()).any(|p| {
        p >= 3
            && syllable(text.get(p - 3..p))
            && syllable(text.get(p + 1..p + 4))
            && !text[..p - 3].chars().next_back().is_some_and(is_alnum)
            && !text[p + 4..].chars().next().is_some_and(is_alnum)
    })
}

/// Texts shorter than this take the one-pass byte walks of the pre-checks instead of
/// their searches and shifted views, whose set-up costs more than a short text's bytes.
const SHORT_TEXT: usize = 64;

/// Whether `text` may hold a spelled-out `at` separator (` at `, `[at]`, `( at )`...):
/// the address regex cannot match without one, and most text has none.
fn may_spell_at(text: &str) -> bool {
    let b = text.as_bytes();
    // `\s` of the regex: ASCII whitespace and vertical tab (other spaces are not plain).
    let space = |c: u8| c.is_ascii_whitespace() || c == 0x0B;
    let open = |c: u8| space(c) || matches!(c, b'[' | b'(' | b'{' | b'<');
    let close = |c: u8| space(c) || matches!(c, b']' | b')' | b'}' | b'>');
    if b.len() < SHORT_TEXT {
        return b.windows(4).any(|w| {
            open(w[0])
                && w[1].eq_ignore_ascii_case(&b'a')
                && w[2].eq_ignore_ascii_case(&b't')
                && close(w[3])
        });
    }
    // Around each `t`: an opener, `a`, `t`, a closer.
    memchr::memchr2_iter(b't', b'T', b).any(|p| {
        p >= 2
            && p + 1 < b.len()
            && open(b[p - 2])
            && b[p - 1].eq_ignore_ascii_case(&b'a')
            && close(b[p + 1])
    })
}

/// Per character: drop invisibles and combining marks, ASCII-fy compatibility forms and
/// foreign digits; everything else as it is.
fn map_chars(text: &str) -> Vec<Unit> {
    let mut units = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let (start, end) = (i as u32, (i + c.len_utf8()) as u32);
        let mut push = |c: char| units.push(Unit { c, start, end });
        if c.is_ascii() || ('\u{AC00}'..='\u{D7A3}').contains(&c) {
            push(c);
        } else if is_invisible(c) || is_combining_mark(c) {
            // Renders as nothing (or as an accent): dropped.
        } else if let Some(d) = foreign_digit(c) {
            push(d);
        } else if c.is_whitespace() {
            push(' ');
        } else if is_jamo(c) {
            push(c);
        } else {
            let ascii: String = std::iter::once(c).nfkc().collect();
            if !ascii.is_empty() && ascii.is_ascii() {
                for a in ascii.chars() {
                    push(a);
                }
            } else {
                push(c);
            }
        }
    }
    units
}

fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// Decimal digits of other scripts (NFKC leaves them alone).
fn foreign_digit(c: char) -> Option<char> {
    const ZEROS: &[u32] = &[
        0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
        0x0D66, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x17E0, 0x1810,
    ];
    let cp = c as u32;
    ZEROS
        .iter()
        .find(|&&z| (z..z + 10).contains(&cp))
        .and_then(|&z| char::from_digit(cp - z, 10))
}

fn is_jamo(c: char) -> bool {
    ('\u{1100}'..='\u{11FF}').contains(&c) || ('\u{3131}'..='\u{3163}').contains(&c)
}

fn is_word_unit(c: char) -> bool {
    is_alnum(c) || matches!(c, '@' | '.' | '_' | '-' | '+')
}

/// Look-alikes become Latin in words that also hold ASCII letters or digits.
fn fold_homoglyphs(units: &mut [Unit]) {
    let mut i = 0;
    while i < units.len() {
        if !is_word_unit(units[i].c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < units.len() && is_word_unit(units[i].c) {
            i += 1;
        }
        let word = &mut units[start..i];
        let latin = word.iter().any(|u| u.c.is_ascii_alphanumeric());
        let glyph = |c: char| -> Option<char> {
            if !is_look_alike(c) {
                return None;
            }
            let lower = c.to_lowercase().next().unwrap_or(c);
            let l = homoglyph(lower)?;
            Some(if lower == c {
                l
            } else {
                l.to_ascii_uppercase()
            })
        };
        if latin && word.iter().any(|u| glyph(u.c).is_some()) {
            for u in word.iter_mut() {
                if let Some(l) = glyph(u.c) {
                    u.c = l;
                }
            }
        }
    }
}

/// Choseong index of a compatibility or conjoining jamo.
fn lead(c: char) -> Option<u32> {
    const COMPAT: [i8; 30] = [
        0, 1, -1, 2, -1, -1, 3, 4, 5, -1, -1, -1, -1, -1, -1, -1, 6, 7, 8, -1, 9, 10, 11, 12, 13,
        14, 15, 16, 17, 18,
    ];
    match c {
        '\u{1100}'..='\u{1112}' => Some(c as u32 - 0x1100),
        '\u{3131}'..='\u{314E}' => u32::try_from(COMPAT[(c as u32 - 0x3131) as usize]).ok(),
        _ => None,
    }
}

/// Jungseong index.
fn vowel(c: char) -> Option<u32> {
    match c {
        '\u{1161}'..='\u{1175}' => Some(c as u32 - 0x1161),
        '\u{314F}'..='\u{3163}' => Some(c as u32 - 0x314F),
        _ => None,
    }
}

/// Jongseong index (1-based).
fn tail(c: char) -> Option<u32> {
    const COMPAT: [i8; 30] = [
        1, 2, 3, 4, 5, 6, 7, -1, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, -1, 18, 19, 20, 21, 22, -1,
        23, 24, 25, 26, 27,
    ];
    match c {
        '\u{11A8}'..='\u{11C2}' => Some(c as u32 - 0x11A7),
        '\u{3131}'..='\u{314E}' => u32::try_from(COMPAT[(c as u32 - 0x3131) as usize]).ok(),
        _ => None,
    }
}

/// Composes lead + vowel (+ tail unless a vowel follows) into Hangul syllables.
fn compose_jamo(units: Vec<Unit>) -> Vec<Unit> {
    if !units.iter().any(|u| is_jamo(u.c)) {
        return units;
    }
    let mut out = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        let (l, v) = (lead(units[i].c), units.get(i + 1).and_then(|u| vowel(u.c)));
        if let (Some(l), Some(v)) = (l, v) {
            let t_unit = units.get(i + 2);
            let t = t_unit
                .and_then(|u| tail(u.c))
                .filter(|_| units.get(i + 3).and_then(|u| vowel(u.c)).is_none());
            let used = if t.is_some() { 3 } else { 2 };
            let cp = 0xAC00 + (l * 21 + v) * 28 + t.unwrap_or(0);
            if let Some(c) = char::from_u32(cp) {
                out.push(Unit {
                    c,
                    start: units[i].start,
                    end: units[i + used - 1].end,
                });
                i += used;
                continue;
            }
        }
        out.push(units[i]);
        i += 1;
    }
    out
}

/// Joins spaced-out single characters (see the module docs).
/// Also says whether a run of spaced Hangul syllables was joined.
fn join_spaced(units: Vec<Unit>, hangul_runs: bool) -> (Vec<Unit>, bool) {
    let alnum = |i: usize| units.get(i).is_some_and(|u| is_alnum(u.c));
    // A letter touching `@` belongs to an address ("A-a a@b.com" is not "Aaa@b.com").
    let word = |i: usize| alnum(i) || units.get(i).is_some_and(|u| u.c == '@');
    let single = |i: usize| alnum(i) && !word(i + 1) && (i == 0 || !word(i - 1));
    let hangul = |c: char| ('\u{AC00}'..='\u{D7A3}').contains(&c);
    let mut out = Vec::with_capacity(units.len());
    let mut joined_hangul = false;
    let mut i = 0;
    while i < units.len() {
        if single(i) {
            let first = units[i].c;
            let korean = hangul(first);
            let ascii = first.is_ascii_alphanumeric();
            let sep_ok = |c: char| {
                if korean {
                    c == ' '
                } else {
                    matches!(c, ' ' | '.' | '-' | '_' | '*' | '/')
                }
            };
            let same_kind = |c: char| {
                if korean {
                    hangul(c)
                } else {
                    c.is_ascii_alphanumeric()
                }
            };
            let mut j = i;
            let mut n = 1;
            while ((korean && hangul_runs) || ascii)
                && j + 2 < units.len()
                && sep_ok(units[j + 1].c)
                && single(j + 2)
                && same_kind(units[j + 2].c)
            {
                j += 2;
                n += 1;
            }
            // Digits need a number's length (`1.2.3` is a version, not an evasion).
            let all_digits = (i..=j).step_by(2).all(|k| units[k].c.is_ascii_digit());
            let enough = match (korean, all_digits) {
                (true, _) if hangul_runs => 2,
                (true, _) => usize::MAX,
                (false, true) => 7,
                (false, false) => 3,
            };
            if n >= enough {
                joined_hangul |= korean;
                out.extend((i..=j).step_by(2).map(|k| units[k]));
                i = j + 1;
                continue;
            }
        }
        out.push(units[i]);
        i += 1;
    }
    (out, joined_hangul)
}

/// A character of a leetspeak token: ASCII letters and digits, `$` and `@`.
const fn is_leet_token(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '$' | '@')
}

/// [`LEET_CLASS`] bits: a byte of a leetspeak token, an ASCII letter, a byte [`leet`]
/// maps, `@`.
const LEET_TOKEN: u8 = 1;
const LEET_LETTER: u8 = 2;
const LEET_MAPPED: u8 = 4;
const LEET_AT: u8 = 8;

/// What [`leet_token_spans`] asks of each byte, looked up once instead of a chain of
/// comparisons (it runs over every byte of every text).
static LEET_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8 as char;
        let mut class = 0;
        if is_leet_token(c) {
            class |= LEET_TOKEN;
        }
        if c.is_ascii_alphabetic() {
            class |= LEET_LETTER;
        }
        if leet(c).is_some() {
            class |= LEET_MAPPED;
        }
        if c == '@' {
            class |= LEET_AT;
        }
        table[b] = class;
        b += 1;
    }
    table
};

/// The letter a leetspeak character stands for.
const fn leet(c: char) -> Option<char> {
    Some(match c {
        '4' | '@' => 'a',
        '3' => 'e',
        '1' => 'i',
        '0' => 'o',
        '5' | '$' => 's',
        '7' => 't',
        _ => return None,
    })
}

/// Calls `f` with each token of leetspeak characters that holds an ASCII letter and a
/// character [`leet`] maps (index range into `cs`). A token with `@` followed by `.` and
/// a letter or digit is the front of an e-mail address, not leetspeak.
fn leet_tokens(cs: &[char], mut f: impl FnMut(usize, usize)) {
    let mut i = 0;
    while i < cs.len() {
        if !is_leet_token(cs[i]) {
            i += 1;
            continue;
        }
        let start = i;
        let (mut letter, mut mapped, mut at) = (false, false, false);
        while i < cs.len() && is_leet_token(cs[i]) {
            letter |= cs[i].is_ascii_alphabetic();
            mapped |= leet(cs[i]).is_some();
            at |= cs[i] == '@';
            i += 1;
        }
        let address = at && cs.get(i) == Some(&'.') && cs.get(i + 1).is_some_and(|c| is_alnum(*c));
        if letter && mapped && !address {
            f(start, i);
        }
    }
}

/// Whether the word view would fold leetspeak in `text`: only the tokens around a byte
/// [`leet`] maps can fold, and prose has few (years, amounts), so those are found with a
/// vectorised test per 32 bytes instead of walking every token.
fn has_leet(text: &str) -> bool {
    let b = text.as_bytes();
    let token = |x: u8| LEET_CLASS[usize::from(x)] & LEET_TOKEN != 0;
    let mut from = 0;
    while let Some(p) = next_mapped(b, from) {
        let start = b[..p].iter().rposition(|&x| !token(x)).map_or(0, |q| q + 1);
        let (end, folds) = leet_token_at(text, start);
        if folds {
            return true;
        }
        // A mapped byte is a token byte: the token ends after it.
        from = end.max(p + 1);
    }
    false
}

/// Whether [`leet`] maps byte `x`, by comparisons (vectorised where [`LEET_CLASS`] is a
/// lookup); a test holds the two equal.
fn leet_maps(x: u8) -> bool {
    matches!(x, b'0' | b'1' | b'3' | b'4' | b'5' | b'7' | b'@' | b'$')
}

/// The first byte at or after `from` that [`leet`] maps.
fn next_mapped(b: &[u8], from: usize) -> Option<usize> {
    crate::text::next_byte_where(b, from, leet_maps)
}

/// The leetspeak token that starts at byte `start` (a token byte, or its end): where it
/// ends, and whether it folds (a letter and a mapped byte, not the front of an address).
fn leet_token_at(text: &str, start: usize) -> (usize, bool) {
    let b = text.as_bytes();
    let class = |i: usize| b.get(i).map_or(0, |&x| LEET_CLASS[usize::from(x)]);
    let mut i = start;
    let mut seen = 0;
    while class(i) & LEET_TOKEN != 0 {
        seen |= class(i);
        i += 1;
    }
    let (letter, mapped, at) = (
        seen & LEET_LETTER != 0,
        seen & LEET_MAPPED != 0,
        seen & LEET_AT != 0,
    );
    let address = at
        && b.get(i) == Some(&b'.')
        && text
            .get(i + 1..)
            .and_then(|t| t.chars().next())
            .is_some_and(is_alnum);
    (i, letter && mapped && !address)
}

/// [`leet_tokens`] on the text as written, in byte offsets, without allocating
/// (leetspeak tokens are ASCII).
fn leet_token_spans(text: &str, mut f: impl FnMut(usize, usize)) {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(&x) = b.get(i) {
        if LEET_CLASS[usize::from(x)] & LEET_TOKEN == 0 {
            i += 1;
            continue;
        }
        let (end, folds) = leet_token_at(text, i);
        if folds {
            f(i, end);
        }
        i = end;
    }
}

/// Folds leetspeak inside tokens that mix letters with digits or symbols (see the
/// module docs); `true` when something changed.
fn fold_leet(units: &mut [Unit]) -> bool {
    let mut spans = Vec::new();
    let cs: Vec<char> = units.iter().map(|u| u.c).collect();
    leet_tokens(&cs, |s, e| spans.push((s, e)));
    for &(s, e) in &spans {
        for u in &mut units[s..e] {
            if let Some(l) = leet(u.c) {
                u.c = l;
            }
        }
    }
    !spans.is_empty()
}

/// The digit a Sino-Korean numeral syllable reads as.
const fn korean_digit(c: char) -> Option<char> {
    Some(match c {
        '공' | '영' => '0',
        '일' => '1',
        '이' => '2',
        '삼' => '3',
        '사' => '4',
        '오' => '5',
        '육' | '륙' => '6',
        '칠' => '7',
        '팔' => '8',
        '구' => '9',
        _ => return None,
    })
}

/// Whether [`korean_digit`] reads `c`: one bit per Hangul syllable, so the pre-check
/// that runs over every character of Korean text tests a bit instead of walking the
/// comparisons of a `match`.
fn is_numeral_syllable(c: char) -> bool {
    const FIRST: u32 = 0xAC00;
    // Built from `korean_digit` itself at compile time (one list of numerals).
    const BITS: [u64; 175] = {
        let mut bits = [0u64; 175];
        let mut i = 0;
        while i < 175 * 64 {
            if let Some(c) = char::from_u32(FIRST + i as u32) {
                if korean_digit(c).is_some() {
                    bits[i / 64] |= 1 << (i % 64);
                }
            }
            i += 1;
        }
        bits
    };
    let Some(i) = (c as u32).checked_sub(FIRST) else {
        return false;
    };
    BITS.get(i as usize / 64)
        .is_some_and(|word| word & (1 << (i % 64)) != 0)
}

/// Fewest digits and numeral syllables a run needs before it is read as a number.
const NUMERAL_RUN: usize = 7;

/// Syllables that may follow the last group of a numeral run (a particle:
/// `오육칠팔로`, `…으로`, `…번`, `…입니다`).
fn is_particle_start(c: char) -> bool {
    matches!(
        c,
        '로' | '으'
            | '은'
            | '는'
            | '을'
            | '를'
            | '에'
            | '와'
            | '과'
            | '도'
            | '만'
            | '번'
            | '입'
            | '예'
            | '까'
    )
}

/// Runs of Sino-Korean numerals and ASCII digits that read as a number (see the module
/// docs): index ranges into `cs`, each holding at least one numeral syllable.
fn numeral_runs(cs: &[char]) -> Vec<(usize, usize)> {
    let numeral = |c: char| c.is_ascii_digit() || korean_digit(c).is_some();
    let hangul = |c: char| ('\u{AC00}'..='\u{D7A3}').contains(&c);
    let n = cs.len();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < n {
        if !numeral(cs[i]) || (i > 0 && is_alnum(cs[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        // Numerals in groups of three or more, groups, the longest group.
        let (mut count, mut groups, mut longest, mut end) = (0, 0, 0, i);
        let mut j = i;
        loop {
            let mut k = j;
            while k < n && numeral(cs[k]) {
                k += 1;
            }
            let whole = k == n || !is_alnum(cs[k]);
            let particle = !whole && hangul(cs[k]) && is_particle_start(cs[k]);
            if !(whole || particle) {
                break;
            }
            if k - j >= 3 {
                count += k - j;
            }
            groups += 1;
            longest = longest.max(k - j);
            end = k;
            if particle {
                break;
            }
            if k + 1 < n && matches!(cs[k], ' ' | '-' | '.') && numeral(cs[k + 1]) {
                j = k + 1;
            } else {
                break;
            }
        }
        // Groups of three or more (`공일공 일이삼사`), or seven single syllables or
        // digits spaced out (`공 일 공 …`); words of one or two syllables (`이 사이`,
        // `일이`) do not add up to a number.
        let shaped = count >= NUMERAL_RUN || (longest == 1 && groups >= NUMERAL_RUN);
        if shaped && cs[start..end].iter().any(|&c| korean_digit(c).is_some()) {
            runs.push((start, end));
        }
        i = end.max(i + 1);
    }
    runs
}

/// Whether the value view would read Korean numerals in `text` as digits.
fn has_korean_numerals(text: &str) -> bool {
    if !has_syllable_lead_byte(text) {
        return false;
    }
    may_hold_numerals(text.chars()) && !numeral_runs(&text.chars().collect::<Vec<_>>()).is_empty()
}

/// Whether `text` holds a byte 0xEA..=0xED, with which every Hangul syllable (U+AC00..
/// U+D7A3) starts: a numeral run holds a syllable, so text without one (English with a
/// dash) needs no reading. Chunked so that the test compiles to vector compares.
fn has_syllable_lead_byte(text: &str) -> bool {
    text.as_bytes().chunks(32).any(|chunk| {
        chunk
            .iter()
            .fold(false, |any, &b| any | (b.wrapping_sub(0xEA) < 4))
    })
}

/// Whether [`numeral_runs`] can find a run: some chain of numeral groups joined by single
/// ` `, `-` or `.` holds a numeral syllable and either seven numerals in groups of three or
/// more, or seven groups. A run lies inside one such chain, so `false` is exact; one pass,
/// no allocation (Korean prose is full of `이`, `일`, `사`, which a count alone cannot
/// tell from a number).
fn may_hold_numerals(cs: impl Iterator<Item = char>) -> bool {
    // The group being read, and the chain it belongs to.
    let (mut group, mut groups, mut in_long_groups, mut syllable) = (0usize, 0usize, 0usize, false);
    // The last character closed a group and may join it to the next one.
    let mut joiner = false;
    /// Ends the group being read; `true` when its chain is shaped like a run.
    fn close(group: &mut usize, groups: &mut usize, long: &mut usize, syllable: bool) -> bool {
        *groups += 1;
        if *group >= 3 {
            *long += *group;
        }
        *group = 0;
        syllable && (*long >= NUMERAL_RUN || *groups >= NUMERAL_RUN)
    }
    for c in cs {
        let numeral = is_numeral_syllable(c);
        if numeral || c.is_ascii_digit() {
            if group == 0 && !joiner {
                (groups, in_long_groups, syllable) = (0, 0, false);
            }
            joiner = false;
            group += 1;
            syllable |= numeral;
        } else if group > 0 {
            if close(&mut group, &mut groups, &mut in_long_groups, syllable) {
                return true;
            }
            joiner = matches!(c, ' ' | '-' | '.');
        } else {
            joiner = false;
        }
    }
    group > 0 && close(&mut group, &mut groups, &mut in_long_groups, syllable)
}

/// Reads Sino-Korean numerals as digits in runs that form a number (see the module
/// docs); `true` when something changed.
fn fold_korean_numerals(units: &mut [Unit]) -> bool {
    if !may_hold_numerals(units.iter().map(|u| u.c)) {
        return false;
    }
    let cs: Vec<char> = units.iter().map(|u| u.c).collect();
    let runs = numeral_runs(&cs);
    for &(s, e) in &runs {
        for u in &mut units[s..e] {
            if let Some(d) = korean_digit(u.c) {
                u.c = d;
            }
        }
    }
    !runs.is_empty()
}

/// A spelled-out address (`kim at example dot com`, `kim[at]example.com`) and its
/// separators. `None` only if they fail to compile (they are constants).
fn address_regexes() -> Option<(&'static regex::Regex, &'static regex::Regex)> {
    static ADDRESS: OnceLock<Option<regex::Regex>> = OnceLock::new();
    static SEP: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let address = ADDRESS
        .get_or_init(|| regex::Regex::new(&address_pattern()).ok())
        .as_ref()?;
    let sep = SEP
        .get_or_init(|| regex::Regex::new(&format!(r"(?i)(?P<at>{AT})|(?P<dot>{DOT})")).ok())
        .as_ref()?;
    Some((address, sep))
}

/// Separators of a spelled-out address.
const AT: &str = r"(?:\s*[\[\(\{<]\s*at\s*[\]\)\}>]\s*|\s+at\s+)";
const DOT: &str = r"(?:\s*[\[\(\{<]\s*dot\s*[\]\)\}>]\s*|\s+dot\s+|\.)";

/// A spelled-out address. An ASCII word boundary at the end: the Unicode one makes the
/// regex engine leave its DFA for a backtracker on non-ASCII text.
fn address_pattern() -> String {
    format!(
        r"(?i)[a-z0-9][a-z0-9._%+-]*{AT}[a-z0-9-]+(?:{DOT}[a-z0-9-]+)*{DOT}[a-z]{{2,24}}(?-u:\b)"
    )
}

/// Digit groups joined by dots, with at least 10 digits and a 4-digit group
/// (`4111.1111.1111.1111`, `010.1234.5678`), get `-` instead: the number patterns know
/// spaces and dashes. IP addresses (groups of at most 3) are left alone.
fn dotted_digit_groups(mut units: Vec<Unit>) -> Vec<Unit> {
    let mut i = 0;
    while i < units.len() {
        if !units[i].c.is_ascii_digit() || (i > 0 && units[i - 1].c.is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let start = i;
        let (mut digits, mut dots, mut longest, mut group) = (0, Vec::new(), 0, 0);
        while i < units.len() {
            let c = units[i].c;
            if c.is_ascii_digit() {
                digits += 1;
                group += 1;
                longest = longest.max(group);
            } else if c == '.'
                && units.get(i + 1).is_some_and(|u| u.c.is_ascii_digit())
                && group > 0
            {
                dots.push(i);
                group = 0;
            } else {
                break;
            }
            i += 1;
        }
        let ends_clean = !units.get(i).is_some_and(|u| u.c.is_ascii_alphanumeric());
        if dots.len() >= 2 && digits >= 10 && longest == 4 && ends_clean && start < i {
            for d in dots {
                units[d].c = '-';
            }
        }
    }
    units
}

/// `kim at example dot com` → `kim@example.com` (separators as the module docs list).
fn join_spelled_addresses(units: Vec<Unit>) -> Vec<Unit> {
    let Some((address, sep)) = address_regexes() else {
        return units;
    };
    let text: String = units.iter().map(|u| u.c).collect();
    let lower = text.to_ascii_lowercase();
    if !lower.contains("at") {
        return units;
    }
    // Byte offset in `text` → index in `units`.
    let mut unit_at = Vec::with_capacity(text.len() + 1);
    for (k, u) in units.iter().enumerate() {
        for _ in 0..u.c.len_utf8() {
            unit_at.push(k);
        }
    }
    unit_at.push(units.len());
    let mut out = Vec::with_capacity(units.len());
    let mut next = 0;
    for m in address.find_iter(&text) {
        let chunk = &text[m.start()..m.end()];
        if !chunk.contains(|c: char| c.is_whitespace() || matches!(c, '[' | '(' | '{' | '<')) {
            continue; // an ordinary address: nothing to fold
        }
        for s in sep.captures_iter(chunk) {
            let Some(whole) = s.get(0) else { continue };
            let (a, b) = (
                unit_at[m.start() + whole.start()],
                unit_at[m.start() + whole.end()],
            );
            out.extend_from_slice(&units[next..a]);
            let c = if s.name("at").is_some() { '@' } else { '.' };
            out.push(Unit {
                c,
                start: units[a].start,
                end: units[b - 1].end,
            });
            next = b;
        }
    }
    out.extend_from_slice(&units[next..]);
    out
}

/// Folding of a text that is still growing (the undecided part of a streamed answer).
#[derive(Debug)]
pub struct Growing {
    /// The view of the text so far, when folding changes it.
    pub view: Option<Rc<Folded>>,
    /// Earliest byte of the text from which more text could still change its view (a
    /// word with look-alikes or jamo, spaced single characters, a digit run, a spelled
    /// address, a leetspeak token or a run of Korean numerals in progress); the text's
    /// length when none.
    pub pending: usize,
}

impl Folded {
    /// The original byte where the view's byte `at` came from (`None` past the end).
    pub fn source_start(&self, at: usize) -> Option<usize> {
        match &self.src {
            SourceMap::Bytes(src) => src.get(at).map(|&(s, _)| s as usize),
            SourceMap::SameLayout => (at < self.text.len()).then(|| floor_boundary(&self.text, at)),
            SourceMap::SpacesRemoved(gaps) => {
                (at < self.text.len()).then(|| source_byte(gaps, floor_boundary(&self.text, at)))
            }
        }
    }

    /// The first character of the view that comes from original bytes at or after
    /// `source` (the view's length when none): where a scan of the original from
    /// `source` begins in the view.
    pub fn view_start(&self, source: usize) -> usize {
        let (mut lo, mut hi) = (0, self.text.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.source_start(mid).is_some_and(|s| s < source) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        ceil_boundary(&self.text, lo)
    }
}

/// Longest tail of a growing text looked at for folds in progress: a value longer than
/// this is not held for folding (the detectors' own hold-back still applies).
const GROWING_WINDOW: usize = 256;

/// Where the folds of `text[from..]` may depend on the text before `from`: a run of
/// Korean numerals is read as digits only when its whole chain of groups is long enough
/// (`일이삼사 일이삼사3` folds, `일이삼사3` alone does not), and a dotted number joins its
/// groups, so a chain of numeral and digit groups that reaches `from` is folded with it.
/// The start of that chain (at most [`GROWING_WINDOW`] bytes back), or `from`.
pub fn fold_context_start(text: &str, from: usize) -> usize {
    let Some(before) = text.get(..from) else {
        return from;
    };
    let mut start = from;
    for (i, c) in before.char_indices().rev() {
        if from - i > GROWING_WINDOW {
            break;
        }
        match mapped_char(c) {
            None | Some(' ' | '-' | '.') => {}
            Some(m) if m.is_ascii_digit() || korean_digit(m).is_some() || is_jamo(m) => start = i,
            Some(_) => break,
        }
    }
    start
}

/// See [`Growing`]. Cheap when the text is plain prose: a few scans of its last bytes,
/// no allocation (the view comes from the per-thread cache the detectors share).
pub fn growing(text: &str, kind: ViewKind) -> Growing {
    if text.len() > MAX_FOLD_BYTES {
        return Growing {
            view: None,
            pending: text.len(),
        };
    }
    // Several span rules ask about the same undecided text on each delta.
    type Entry = (String, usize, Option<Rc<Folded>>);
    thread_local! {
        static LAST: RefCell<[Option<Entry>; 2]> = const { RefCell::new([None, None]) };
    }
    let slot = kind as usize;
    let hit = LAST.with(|c| {
        c.try_borrow().ok().and_then(|c| {
            c[slot]
                .as_ref()
                .filter(|(k, _, _)| k == text)
                .map(|(_, pending, view)| Growing {
                    view: view.clone(),
                    pending: *pending,
                })
        })
    });
    if let Some(g) = hit {
        return g;
    }
    let g = growing_uncached(text, kind);
    LAST.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            match c[slot].as_mut() {
                Some((key, pending, view)) => {
                    key.clear();
                    key.push_str(text);
                    *pending = g.pending;
                    *view = g.view.clone();
                }
                None => c[slot] = Some((text.to_string(), g.pending, g.view.clone())),
            }
        }
    });
    g
}

fn growing_uncached(text: &str, kind: ViewKind) -> Growing {
    if kind == ViewKind::Values {
        if let Some(g) = prose_growing(text) {
            return g;
        }
    }
    growing_general(text, kind)
}

/// [`growing_general`] for the value view of ASCII text in which no value fold applies
/// ([`no_value_folds`]: no spaced single characters, no dotted digit groups that could
/// join, no complete spelled address). Every ASCII character is plain and no Korean
/// numeral is ASCII, so the view is the text itself, exactly when [`fold_views_whole`]
/// leaves it alone, and only the scans for runs still growing are left: spaced single
/// characters, a number (digits and dots) and spelled addresses in progress. `None` for
/// any other text, and for texts long enough to be folded in pieces. A streamed answer's
/// undecided part is mostly such text (prose with years, counts and parentheses); the
/// general passes cost a dozen pre-checks and two per-thread caches for every delta.
fn prose_growing(text: &str) -> Option<Growing> {
    if text.len() > 2 * FOLD_PIECE || !text.is_ascii() || !no_value_folds(text) {
        return None;
    }
    let mut pending = text.len();
    // ASCII: every byte is a character boundary.
    let w = text.len().saturating_sub(GROWING_WINDOW);
    let tail = &text[w..];
    if let Some(s) = spaced_run_start(tail, false) {
        pending = pending.min(w + s);
    }
    if let Some(s) = digit_run_start(tail) {
        pending = pending.min(w + s);
    }
    pending = spelled_address_pending(text, w, pending);
    Some(Growing {
        view: None,
        pending,
    })
}

/// The start of the earliest spelled address still in progress in `text` from byte `w`
/// on, when it is before `pending`; `pending` otherwise.
fn spelled_address_pending(text: &str, w: usize, mut pending: usize) -> usize {
    let Some(m) = address_partial() else {
        return pending;
    };
    for s in address_starts(&text[w..]) {
        if w + s < pending && m.live_from(text.as_bytes(), w + s) {
            pending = w + s;
        }
    }
    pending
}

/// [`growing`] through the folds themselves (any text).
fn growing_general(text: &str, kind: ViewKind) -> Growing {
    let mut view = folded_shared(text, kind);
    let mut pending = text.len();
    // Where the tail starts (the last GROWING_WINDOW bytes, on a char boundary).
    let mut w = text.len().saturating_sub(GROWING_WINDOW);
    while !text.is_char_boundary(w) {
        w += 1;
    }
    // (a) The last word holds a character whose fold depends on the rest of its word.
    let mut word_start = None;
    let mut folds_in_word = false;
    for (i, c) in text[w..].char_indices().rev() {
        if !(is_word_unit(c) || is_invisible(c) || is_combining_mark(c)) {
            break;
        }
        word_start = Some(w + i);
        folds_in_word |= !is_plain(c);
    }
    if let (true, Some(s)) = (folds_in_word, word_start) {
        pending = pending.min(s);
    }
    // (b)-(d) on the text as written (the view has already joined what is complete):
    // spaced singles, digit runs, spelled addresses in progress.
    let tail = &text[w..];
    if let Some(s) = spaced_run_start(tail, kind == ViewKind::Words) {
        pending = pending.min(w + s);
    }
    if let Some(s) = digit_run_start(tail) {
        pending = pending.min(w + s);
    }
    let trailing = match kind {
        ViewKind::Words => leet_token_start(tail),
        ViewKind::Values => numeral_run_start(tail),
    };
    if let Some(s) = trailing {
        pending = pending.min(w + s);
    }
    pending = spelled_address_pending(text, w, pending);
    // A numeral run still growing may become digits that complete a value begun before
    // it (`kim@일이삼…`, `+82 일공-…`, `x at 일이삼…`), which no scan of the text as
    // written can see: the view handed back reads the run as digits already, so that the
    // detectors' partial matches on it hold from where such a value starts, and spelled
    // addresses are looked for in it too.
    if let (ViewKind::Values, Some(s)) = (kind, trailing) {
        if let Some(spec) = speculative_values(text, w + s) {
            view = Some(Rc::new(spec));
        }
    }
    // A leetspeak token of the word view may have been joined from spaced singles
    // (`f.r.o.b.n.i.c.a.t.e$…`): its start is where the view's last token starts.
    if let (ViewKind::Words, Some(v)) = (kind, &view) {
        let t = v.text.as_str();
        let mut vw = t.len().saturating_sub(GROWING_WINDOW);
        while !t.is_char_boundary(vw) {
            vw += 1;
        }
        // The view has folded the token's leetspeak already: any token at its end counts.
        if let Some(o) = token_start(&t[vw..], false).and_then(|a| v.source_start(vw + a)) {
            pending = pending.min(o);
        }
    }
    // Spelled addresses whose parts only the view reads as such (digits from numerals).
    if let (ViewKind::Values, Some(v), Some(m)) = (kind, &view, address_partial()) {
        let t = v.text.as_str();
        let mut vw = t.len().saturating_sub(GROWING_WINDOW);
        while !t.is_char_boundary(vw) {
            vw += 1;
        }
        for a in address_starts(&t[vw..]) {
            if m.live_from(t.as_bytes(), vw + a) {
                if let Some(o) = v.source_start(vw + a) {
                    pending = pending.min(o);
                }
            }
        }
    }
    Growing { view, pending }
}

/// The value view of `text` with every numeral syllable from `run` on read as a digit,
/// however short its run is yet (see [`growing_uncached`]).
fn speculative_values(text: &str, run: usize) -> Option<Folded> {
    let mut units = compose_jamo({
        let mut units = map_chars(text);
        fold_homoglyphs(&mut units);
        units
    });
    fold_korean_numerals(&mut units);
    for u in &mut units {
        if u.start as usize >= run {
            if let Some(d) = korean_digit(u.c) {
                u.c = d;
            }
        }
    }
    finish(text, join_spaced(units, false).0)
}

/// Start of a run of spaced single characters at the end of `t` (`f.u.`, `a b c`, and,
/// for word lists, `시 발`), which more singles could still join.
fn spaced_run_start(t: &str, hangul_runs: bool) -> Option<usize> {
    let hangul = |c: char| ('\u{AC00}'..='\u{D7A3}').contains(&c);
    let joinable = |c: char| c.is_ascii_alphanumeric() || (hangul_runs && hangul(c));
    let sep = |c: char| matches!(c, ' ' | '.' | '-' | '_' | '*' | '/');
    let word = |c: char| is_alnum(c) || c == '@';
    let mut it = t.char_indices().rev().peekable();
    if it.peek().is_some_and(|&(_, c)| sep(c)) {
        it.next();
    }
    let mut start = None;
    while let Some((i, c)) = it.next() {
        if !joinable(c) || it.peek().is_some_and(|&(_, l)| word(l)) {
            break;
        }
        start = Some(i);
        if !it.next().is_some_and(|(_, l)| sep(l)) {
            break;
        }
    }
    start
}

/// Start of a run of digits and dots at the end of `t` (a dotted number may still grow).
fn digit_run_start(t: &str) -> Option<usize> {
    let b = t.as_bytes();
    let mut i = b.len();
    while i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
        i -= 1;
    }
    b[i..].iter().any(u8::is_ascii_digit).then_some(i)
}

/// What the per-character passes make of `c`, for the scans of a growing text's end:
/// `None` when it is dropped (invisible, combining mark); look-alikes count as the
/// letter they may become.
fn mapped_char(c: char) -> Option<char> {
    if c.is_ascii() || ('\u{AC00}'..='\u{D7A3}').contains(&c) || is_jamo(c) {
        return Some(c);
    }
    if is_invisible(c) || is_combining_mark(c) {
        return None;
    }
    if let Some(d) = foreign_digit(c) {
        return Some(d);
    }
    if c.is_whitespace() {
        return Some(' ');
    }
    if let Some(l) = homoglyph(c.to_lowercase().next().unwrap_or(c)) {
        return Some(l);
    }
    let mut nfkc = std::iter::once(c).nfkc();
    match (nfkc.next(), nfkc.next()) {
        (Some(a), None) if a.is_ascii() => Some(a),
        _ => Some(c),
    }
}

/// Start of the token at the end of `t` when it holds a leetspeak character (its fold
/// depends on the rest of the token: `$` may become `s` once a letter follows).
fn leet_token_start(t: &str) -> Option<usize> {
    token_start(t, true)
}

/// Start of the token of leetspeak characters at the end of `t` (when `mapped`, only if
/// it holds a character leetspeak maps).
fn token_start(t: &str, need_mapped: bool) -> Option<usize> {
    let mut start = None;
    let mut mapped = false;
    // A `.` at the very end may still turn out to end an address's local part and host.
    let t = t.strip_suffix('.').unwrap_or(t);
    for (i, c) in t.char_indices().rev() {
        match mapped_char(c) {
            None => {}
            Some(m) if is_leet_token(m) => {
                start = Some(i);
                mapped |= leet(m).is_some();
            }
            Some(_) => break,
        }
    }
    start.filter(|_| mapped || !need_mapped)
}

/// Start of a run of digits, Korean numeral syllables (or jamo that may compose into
/// one) and separators at the end of `t` when it holds a syllable or jamo (more of them
/// may still make it a number).
fn numeral_run_start(t: &str) -> Option<usize> {
    let mut start = None;
    let mut syllable = false;
    for (i, c) in t.char_indices().rev() {
        match mapped_char(c) {
            None | Some(' ' | '-' | '.') => {}
            Some(m) if m.is_ascii_digit() => start = Some(i),
            Some(m) if korean_digit(m).is_some() || is_jamo(m) => {
                start = Some(i);
                syllable = true;
            }
            Some(_) => break,
        }
    }
    start.filter(|_| syllable)
}

/// Where a spelled-out address may start in `t`: the local part before each spelled
/// `at` separator (` at `, `[at]`, …), and before a separator that may be starting at
/// the very end (` `, ` a`, `[`).
fn address_starts(t: &str) -> Vec<usize> {
    let b = t.as_bytes();
    let n = b.len();
    // A separator's opening is two bytes before a `t` (spelled) or one of the last two
    // bytes (starting at the end): only those bytes are looked at, in order, instead of
    // every byte of the tail on every delta.
    let before_t = memchr::memchr2_iter(b't', b'T', b).filter_map(|p| p.checked_sub(2));
    let last_two = [n.checked_sub(2), n.checked_sub(1)].into_iter().flatten();
    address_starts_at(b, before_t.chain(last_two))
}

/// [`address_starts`] trying the bytes `openings` (in increasing order) as the opening
/// of a separator.
fn address_starts_at(b: &[u8], openings: impl Iterator<Item = usize>) -> Vec<usize> {
    let n = b.len();
    let space = |c: u8| c.is_ascii_whitespace() || c == 0x0B;
    let open = |c: u8| space(c) || matches!(c, b'[' | b'(' | b'{' | b'<');
    let close = |c: u8| space(c) || matches!(c, b']' | b')' | b'}' | b'>');
    let is_a = |i: usize| b.get(i).is_some_and(|c| c.eq_ignore_ascii_case(&b'a'));
    let is_t = |i: usize| b.get(i).is_some_and(|c| c.eq_ignore_ascii_case(&b't'));
    let local = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut starts = Vec::new();
    for j in openings {
        if !b.get(j).is_some_and(|&c| open(c)) {
            continue;
        }
        let spelled = is_a(j + 1) && is_t(j + 2) && (j + 3 == n || close(b[j + 3]));
        let at_end = j + 1 == n || (j + 2 == n && is_a(j + 1));
        if !(spelled || at_end) {
            continue;
        }
        // Back over the separator's opening, then over the local part.
        let mut k = j;
        while k > 0 && open(b[k - 1]) {
            k -= 1;
        }
        let end = k;
        while k > 0 && local(b[k - 1]) {
            k -= 1;
        }
        if k < end && starts.last() != Some(&k) {
            starts.push(k);
        }
    }
    starts
}

/// The spelled-address pattern as a partial matcher (where a match may be in progress).
fn address_partial() -> Option<&'static PartialMatcher> {
    static MATCHER: OnceLock<Option<PartialMatcher>> = OnceLock::new();
    MATCHER
        .get_or_init(|| PartialMatcher::new(&[address_pattern()], true))
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leet_byte_test_is_the_leet_table() {
        for x in 0..=u8::MAX {
            assert_eq!(leet_maps(x), leet(char::from(x)).is_some(), "{x:#x}");
            assert_eq!(
                leet_maps(x),
                LEET_CLASS[usize::from(x)] & LEET_MAPPED != 0,
                "{x:#x}"
            );
        }
    }

    #[test]
    fn numeral_bitset_is_korean_digit() {
        let chars = ('\u{0}'..='\u{FFFF}').chain(['\u{1F600}', '\u{10FFFF}']);
        for c in chars {
            assert_eq!(is_numeral_syllable(c), korean_digit(c).is_some(), "{c:?}");
        }
    }

    /// The byte shortcuts of [`all_plain`] hold for every character they skip.
    #[test]
    fn plain_by_bytes_is_plain() {
        for c in ('\u{AC00}'..='\u{D77F}').chain('\u{5000}'..='\u{9FFF}') {
            assert!(is_plain(c), "{c:?}");
            assert!(all_plain(&format!("a{c}b")), "{c:?}");
        }
        for text in [
            "\u{3131}",
            "a\u{200B}b",
            "\u{FF21}",
            "가\u{0301}",
            "\u{D7B0}",
            "\u{4E00}\u{3000}",
        ] {
            assert_eq!(all_plain(text), text.chars().all(is_plain), "{text:?}");
        }
    }

    /// [`all_plain`] (its vectorised byte test, and the walk when that test gives up) is
    /// `is_plain` of every character (a look-alike counting as plain in a word without
    /// ASCII letters or digits), for every character of the BMP between ASCII letters,
    /// and after a Hangul syllable (whose next byte the test reads).
    #[test]
    fn all_plain_is_is_plain_for_every_character() {
        for c in ('\u{0}'..='\u{FFFF}').chain(['\u{1F600}', '\u{10FFFF}']) {
            for text in [format!("a{c}b"), format!("가{c}"), format!("{c}")] {
                let plain = text.chars().all(is_plain)
                    || (text.chars().all(|c| is_plain(c) || is_look_alike(c))
                        && !text.starts_with('a'));
                assert_eq!(all_plain(&text), plain, "{text:?}");
            }
        }
        assert!(plain_by_bytes_alone("plain 한국어 text 文字".as_bytes()));
        assert!(!plain_by_bytes_alone("caf\u{E9}".as_bytes()));
    }

    /// The byte pre-check of [`has_korean_numerals`] lets through every text holding a
    /// numeral syllable: a run of only `공` and `구` (lead byte 0xEA) is still read.
    #[test]
    fn numeral_prefilter_keeps_every_numeral_syllable() {
        for c in '\u{AC00}'..='\u{D7A3}' {
            assert!(has_syllable_lead_byte(&format!("abc {c} 123")), "{c:?}");
        }
        assert!(!has_syllable_lead_byte(
            "ab\u{2013}cd \u{3131} \u{E000} \u{9FFF}"
        ));
        assert!(has_korean_numerals("공공구 구공공 공구공공"));
    }

    fn view(text: &str) -> String {
        fold(text)
            .map(|f| f.text)
            .unwrap_or_else(|| text.to_string())
    }

    #[test]
    fn folds_evasions_and_leaves_plain_text_alone() {
        let cases: &[(&str, &str)] = &[
            (
                "plain text, nothing to do 1.2.3",
                "plain text, nothing to do 1.2.3",
            ),
            ("kim\u{200B}@exa\u{2060}mple.com", "kim@example.com"),
            ("ｋｉｍ＠ｅｘａｍｐｌｅ．ｃｏｍ", "kim@example.com"),
            ("4\u{0301}111 1111", "4111 1111"),
            ("АКIА key", "AKIA key"),
            ("Привет мир", "Привет мир"),
            ("kіm@еxample.com", "kim@example.com"),
            ("4 1 1 1 1 1 1 1", "41111111"),
            ("version 1.2.3.4", "version 1.2.3.4"),
            ("card 4111.1111.1111.1111", "card 4111-1111-1111-1111"),
            ("ip 192.168.100.200", "ip 192.168.100.200"),
            ("f.u.c.k you", "fuck you"),
            ("a b", "a b"),
            ("ㅅㅣㅂㅏㄹ", "시발"),
            ("ㅋㅋㅋ", "ㅋㅋㅋ"),
            ("시 발 놈", "시발놈"),
            ("kim at example dot com", "kim@example.com"),
            (
                "mail kim [at] example [dot] co [dot] kr now",
                "mail kim@example.co.kr now",
            ),
            ("look at this", "look at this"),
            ("٠١٠", "010"),
            ("𝟎𝟏𝟎-𝟏𝟐𝟑𝟒", "010-1234"),
        ];
        for (input, want) in cases {
            assert_eq!(view(input), *want, "input {input:?}");
        }
        assert!(fold("nothing here").is_none());
        assert!(fold("한국어 문장입니다").is_none());
    }

    fn values_view(text: &str) -> String {
        fold_for(text, ViewKind::Values)
            .map(|f| f.text)
            .unwrap_or_else(|| text.to_string())
    }

    #[test]
    fn leetspeak_is_folded_only_in_tokens_that_mix_letters_and_symbols() {
        let cases: &[(&str, &str)] = &[
            ("what the f4ck", "what the fack"),
            ("sh1t happens", "shit happens"),
            ("you a$$", "you ass"),
            ("@ss and 5h17", "ass and shit"),
            ("f 4 c k", "fack"),
            // Tokens without a letter stay numbers.
            ("in 2024 we had 4 apples", "in 2024 we had 4 apples"),
            ("pay $5 or 10 $", "pay $5 or 10 $"),
            ("room 101, 3.14", "room 101, 3.14"),
        ];
        for (input, want) in cases {
            assert_eq!(view(input), *want, "input {input:?}");
        }
        // Only the word view folds leetspeak: values keep their digits.
        assert!(fold_for("call 010-1234-5678 or kim4@example.com", ViewKind::Values).is_none());
        assert!(fold("in 2024 we had 4 apples and 3 pears").is_none());
        let text = "oh f4ck!";
        let f = fold(text).expect("folds");
        let (s, e) = f.original(3, 7).expect("maps");
        assert_eq!(&text[s..e], "f4ck");
        assert_eq!(&f.text[3..7], "fack");
    }

    #[test]
    fn korean_numerals_are_read_as_digits_only_in_number_shaped_runs() {
        let cases: &[(&str, &str)] = &[
            ("전화 공일공-1234-5678", "전화 010-1234-5678"),
            ("전화 공일공 일이삼사 오육칠팔", "전화 010 1234 5678"),
            ("공일공 일이삼사 오육칠팔로 연락", "010 1234 5678로 연락"),
            ("번호 영일영.일이삼사.오육칠팔", "번호 010-1234-5678"),
            ("공 일 공 일 이 삼 사 오 육 칠 팔", "01012345678"),
            (
                "카드 사일일일 일일일일 일일일일 일일일일",
                "카드 4111 1111 1111 1111",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(values_view(input), *want, "input {input:?}");
        }
        // Ordinary Korean: words holding 이/일/사/오/구 are words, not digits.
        for text in [
            "이 사람이 일을 사랑합니다",
            "오늘 이사 가는 날이에요. 구월 일일까지 일이 많아요",
            "이 사이 공사 일이 많다",
            "일일이 사오 구이 이야기",
            "사과 오이 구두 일곱 이십 삼십 사십",
            "공일공 일이",
            "전화공일공일이삼사오육칠팔",
            "2024년 3월 1일 오후 2시",
        ] {
            assert!(fold_for(text, ViewKind::Values).is_none(), "{text:?}");
            assert!(!has_korean_numerals(text), "{text:?}");
        }
        // Offsets map back to the syllables.
        let text = "전화 공일공-1234-5678";
        let f = fold_for(text, ViewKind::Values).expect("folds");
        let s = f.text.find("010").expect("digits");
        let (os, oe) = f.original(s, s + "010-1234-5678".len()).expect("maps");
        assert_eq!(&text[os..oe], "공일공-1234-5678");
        // The word view leaves them (profanity lists hold Korean words).
        assert!(fold("전화 공일공 일이삼사 오육칠팔").is_none());
    }

    #[test]
    fn growing_holds_leet_tokens_and_numeral_runs_in_progress() {
        let g = growing("what the f4", ViewKind::Words);
        assert_eq!(g.pending, "what the ".len());
        let g = growing("you a$", ViewKind::Words);
        assert_eq!(g.pending, "you ".len());
        let g = growing("you $", ViewKind::Words);
        assert_eq!(g.pending, "you ".len());
        let g = growing("plain words", ViewKind::Words);
        assert_eq!(g.pending, "plain words".len());
        let g = growing("전화 공일공 일이", ViewKind::Values);
        assert_eq!(g.pending, "전화 ".len());
        let g = growing("전화 주세요", ViewKind::Values);
        assert_eq!(g.pending, "전화 주세요".len());
    }

    #[test]
    fn spans_map_back_to_the_original() {
        let text = "write to kim\u{200B}@exa\u{2060}mple.com now";
        let f = fold(text).expect("folds");
        let s = f.text.find("kim@").expect("found");
        let e = s + "kim@example.com".len();
        let (os, oe) = f.original(s, e).expect("maps");
        assert_eq!(&text[os..oe], "kim\u{200B}@exa\u{2060}mple.com");
        let text = "a ｋｉｍ b";
        let f = fold(text).expect("folds");
        let (os, oe) = f.original(2, 5).expect("maps");
        assert_eq!(&text[os..oe], "ｋｉｍ");
    }

    #[test]
    fn huge_texts_are_not_folded() {
        let big = "\u{200B}".repeat(MAX_FOLD_BYTES / 3 + 1);
        assert!(fold(&big).is_none());
    }
}
#[cfg(test)]
mod shared_pass_tests {
    use super::*;
    use proptest::prelude::*;

    /// Texts of `len` pieces drawn from `pieces`.
    fn texts(
        pieces: &[&'static str],
        len: std::ops::Range<usize>,
    ) -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(pieces.to_vec()), len)
            .prop_map(|parts| parts.concat())
    }

    /// A byte-built view has the text and the source of every span that the
    /// per-character passes give.
    fn same_view_and_sources(
        text: &str,
        fast: &Folded,
        general: &Folded,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(&fast.text, &general.text, "{:?}", text);
        let bounds: Vec<usize> = (0..=fast.text.len())
            .filter(|&i| fast.text.is_char_boundary(i))
            .collect();
        for (k, &a) in bounds.iter().enumerate() {
            prop_assert_eq!(
                fast.source_start(a),
                general.source_start(a),
                "{:?} {}",
                text,
                a
            );
            for &b in &bounds[k + 1..] {
                prop_assert_eq!(
                    fast.original(a, b),
                    general.original(a, b),
                    "{:?} {}..{}",
                    text,
                    a,
                    b
                );
            }
        }
        Ok(())
    }

    /// The straightforward pipeline, one view at a time, as the reference.
    fn reference(text: &str, kind: ViewKind) -> Option<String> {
        let mut units = map_chars(text);
        fold_homoglyphs(&mut units);
        let units = compose_jamo(units);
        let units = match kind {
            ViewKind::Words => {
                let (mut units, _) = join_spaced(units, true);
                fold_leet(&mut units);
                units
            }
            ViewKind::Values => {
                let mut units = units;
                fold_korean_numerals(&mut units);
                join_spaced(units, false).0
            }
        };
        let units = dotted_digit_groups(units);
        let units = join_spelled_addresses(units);
        let out: String = units.iter().map(|u| u.c).collect();
        (out != text).then_some(out)
    }

    fn check(text: &str) {
        let views = fold_views(text);
        for kind in [ViewKind::Words, ViewKind::Values] {
            let got = views.get(kind).map(|f| f.text.clone());
            assert_eq!(got, reference(text, kind), "{kind:?} on {text:?}");
        }
    }

    #[test]
    fn shared_passes_and_fast_paths_agree_with_the_reference() {
        for t in [
            "At the end of the day “we” went home · 한국어 「문장」 漢字 ‘q’",
            "the price is 4.2 dollars – or 4.3 – café",
            "write to kim at example dot com",
            "더 잘 하자",
            "더 잘 하자 f.u.c.k",
            "a b c d e f",
            "plain English prose with nothing to fold.",
            "한국어 문장입니다. 오늘 날씨가 좋네요.",
            "ㅅㅣ ㅂㅏㄹ 시 발",
            "ｋｉｍ at ｅｘａｍｐｌｅ dot com",
            "what the f4ck, a$$ and sh1t in 2024",
            "전화 공일공 일이삼사 오육칠팔",
            "공일공-1234-5678로 전화",
            "이 사람이 일을 사랑해",
            "카드 4111.1111.1111.1111 결제",
            "call 010.1234.5678 now",
            "version 1.2.3 and 10.0.0.1",
            "the U.S. rate is 3.5 and x y",
            "1 2 3 4 5 6 7 and a.b.c",
        ] {
            check(t);
        }
    }

    #[test]
    fn prose_with_only_leetspeak_takes_the_byte_path() {
        for text in [
            "songs of the 1990s",
            "what the f4ck, a$$ and sh1t",
            "h3ll0 kim4",
        ] {
            assert!(no_value_folds(text) && !has_spaced_syllables(text) && has_leet(text));
            let view = leet_only_view(text).expect("the byte path gives the view");
            let plain = Plainness {
                simple: true,
                numerals: false,
                values_plain: true,
            };
            let general = fold_views_general(text, plain).words;
            assert_eq!(Some(view.text), general.map(|f| f.text.clone()), "{text:?}");
        }
    }

    /// Prose whose numeral syllables are words skips the full reading.
    #[test]
    fn numeral_precheck_passes_over_ordinary_prose() {
        for text in [
            "이 사람이 일을 사랑합니다",
            "오늘 이사 가는 날이에요. 구월 일일까지 일이 많아요",
            "일일이 사오 구이 이야기",
            "2024년 3월 1일 오후 2시",
        ] {
            assert!(!may_hold_numerals(text.chars()), "{text:?}");
        }
        for text in ["공 일 공 일 이 삼 사", "공일공-1234-5678", "사일일일 1111"] {
            assert!(may_hold_numerals(text.chars()), "{text:?}");
        }
    }

    /// Text the per-character passes leave alone is read as plain; Russian prose with
    /// look-alikes too, unless a word mixes them with ASCII letters or digits.
    #[test]
    fn look_alikes_in_foreign_words_are_plain() {
        for text in [
            "Орден «Материнская слава» (Order of Maternal Glory) was founded in 1944",
            "Νίκος Γεωργίου, born 1990",
            "В Москве - 3 дня",
        ] {
            assert!(all_plain(text), "{text:?}");
        }
        for text in ["Путин-2", "p\u{0430}ypal", "сор1", "Мо_x"] {
            assert!(!all_plain(text), "{text:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// Looking only two bytes before each `t` and at the last two bytes finds the
        /// starts that trying every byte finds, in the same order.
        #[test]
        fn address_starts_equal_a_scan_of_every_byte(text in texts(&[
                "a", "A", "t", "T", " ", "  ", "\n", "[", "]", "(", ")", "{", "}", "<", ">",
                "bob", ".", "_", "-", "x1", "at", " at ", "[at]", "김",
        ], 0..20)) {
            // As first written: every byte of the tail tried as a separator's opening.
            let every_byte = address_starts_at(text.as_bytes(), 0..text.len());
            prop_assert_eq!(address_starts(&text), every_byte, "{:?}", text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// On text [`all_plain`] accepts, the per-character passes change nothing: each
        /// unit is the original character with its own byte range.
        #[test]
        fn plain_text_is_left_alone_by_the_character_passes(text in texts(&[
                "a", "Z", "1", " ", ".", "-", "_", "@", "+", "/", "а", "о", "Р", "в", "б", "ж",
                "ο", "Σ", "ν", "ϲ", "é", "漢", "시", "–", "\u{200B}", "\u{0301}", "٣", "ㅅ",
                "word", "Путин", "сор", "Νίκος",
        ], 0..16)) {
            if all_plain(&text) {
                let mut units = map_chars(&text);
                fold_homoglyphs(&mut units);
                let units = compose_jamo(units);
                let got: Vec<(usize, char, usize)> = units
                    .iter()
                    .map(|u| (u.start as usize, u.c, u.end as usize))
                    .collect();
                let want: Vec<(usize, char, usize)> = text
                    .char_indices()
                    .map(|(i, c)| (i, c, i + c.len_utf8()))
                    .collect();
                prop_assert_eq!(got, want, "{:?}", text);
            }
        }
    }

    /// Cuts land wherever the piece size puts them, next to a spelled address too.
    #[test]
    fn spelled_addresses_are_never_cut() {
        let text = "please write to kim at example dot com and also lee at mail dot example \
                    dot org soon or jane dot doe at corp dot net today and see ya";
        for piece in 4..60 {
            let pieces = fold_views_in_pieces(text, piece, piece / 2);
            let whole = fold_views_whole(text);
            for kind in [ViewKind::Words, ViewKind::Values] {
                assert_eq!(
                    pieces.get(kind).map(|v| v.text.clone()),
                    whole.get(kind).map(|v| v.text.clone()),
                    "piece {piece}"
                );
            }
        }
    }

    /// Pieces whose views come from the byte paths (spaced syllables, leetspeak) or the
    /// per-character passes join with the sources the whole text's view has.
    #[test]
    fn joined_pieces_keep_every_source() {
        let mixed = "first words here 시 발 그 사람 then more words here what the f4ck \
                     again words here ｋｉｍ wrote words here 더 잘 and the end words here";
        // Only spaced syllables fold: every piece's word view only lost spaces.
        let spaced = "first words here 시 발 그 사람 then more words here 더 잘 해 again \
                      words here 그 후 더 and the end words here 시 발 done";
        for (text, piece) in [mixed, spaced]
            .into_iter()
            .flat_map(|t| (4..60).map(move |p| (t, p)))
        {
            let pieces = fold_views_in_pieces(text, piece, piece / 2);
            let whole = fold_views_whole(text);
            for kind in [ViewKind::Words, ViewKind::Values] {
                match (pieces.get(kind), whole.get(kind)) {
                    (Some(p), Some(w)) => {
                        if let Err(e) = same_view_and_sources(text, &p, &w) {
                            panic!("piece {piece}: {e}");
                        }
                    }
                    (p, w) => assert_eq!(p.is_none(), w.is_none(), "piece {piece}"),
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_mix_agrees_with_the_reference(text in texts(&[
                "a", "b", "Z", "1", "4111", "0", " ", " ", ".", "-", "@", " at ", " dot ", "[at]",
                "com", "\u{000B}at\t", " AT ", "( at )", "시", "발", "더", "잘", "한국어", "ㅅ", "ㅣ", "ㅂ", "ㅏ", "ㄹ", "\u{200B}",
                "а", "ｋ", "é", "e\u{0301}", "–", "٣", "\u{3000}", "·", "漢", "word",
                "f4ck", "$", "3", "7", "a$$", "2024", "공", "일", "이삼사", "오육칠팔", "영", "로", "사람",
                "Путин", "сор", "Ж", "_",
        ], 0..24)) {
            check(&text);
        }

        /// Folding in pieces gives the views, and the source of every span, that folding
        /// the text whole gives (pieces of 8 to 40 bytes, so texts have many cuts; texts of
        /// up to two pieces that need the general passes cut smaller still).
        #[test]
        fn pieces_fold_as_the_whole_text(
            text in crate::text::words_with_separators(
                vec![
                "word", "hello", "world", "dot", "Dot", "at", "AT", "com", "kim", "example",
                "the", "and", "more", "[at]", "(dot)", "a", "b", "x", "1", "22", "4111", "f4ck",
                "a$$", "$", "а", "Путин", "ｋ", "é", "e\u{0301}", "\u{200B}", "시", "발", "더",
                "한국어", "공", "일", "이삼사", "오육칠팔", "ㅅ", "ㅣ", "kim.lee", "e.x.a",
            ],
                vec![
                " ", " ", " ", " ", " ", "  ", "\n", ".", "-", "_", "*", "/", "@", ", ",
            ],
                0..40,
            ),
            piece in 8usize..40,
            slow_piece in 4usize..40,
        ) {
            let pieces = fold_views_in_pieces(&text, piece, slow_piece);
            let whole = fold_views_whole(&text);
            for kind in [ViewKind::Words, ViewKind::Values] {
                match (pieces.get(kind), whole.get(kind)) {
                    (None, None) => {}
                    (Some(p), Some(w)) => same_view_and_sources(&text, &p, &w)?,
                    (p, w) => prop_assert!(
                        false,
                        "{:?} {:?}: pieces {:?}, whole {:?}",
                        kind,
                        text,
                        p.map(|v| v.text.clone()),
                        w.map(|v| v.text.clone())
                    ),
                }
            }
        }

        /// The byte pre-checks (spaced singles, dotted digit groups) send every text whose
        /// value view folds to the passes that fold it.
        #[test]
        fn digit_and_single_mixes_agree_with_the_reference(text in texts(&[
                "1", "22", "333", "4111", "0101", ".", ".", " ", "-", "a", "b", "가", "/", "*",
        ], 0..16)) {
            check(&text);
            // The vector pre-checks say what the one walk over the bytes says.
            let walk = no_singles_or_dotted_numbers(text.as_bytes())
                && !(may_spell_at(&text)
                    && address_regexes().is_some_and(|(a, _)| a.is_match(&text)));
            prop_assert_eq!(no_value_folds(&text), walk, "{:?}", text);
        }

        /// Every text the byte path of [`spaced_hangul_view`] takes gives the view and the
        /// source of every span that the per-character passes give.
        #[test]
        fn spaced_hangul_views_equal_the_general_passes(text in texts(&[
                "시", "발", "더", "잘", "한국어", "그", " ", " ", "  ", "@", ".", "-", "a", "x",
                "kim", " at ", "example", " dot ", "com", "7", "é", "漢", "사람", "1", "\n",
        ], 1..14)) {
            let simple = text.is_ascii() || text.chars().all(is_plain);
            let numerals = has_korean_numerals(&text);
            let values_plain = simple && !numerals && no_value_folds(&text);
            let byte_path = values_plain && has_spaced_syllables(&text) && !has_leet(&text);
            if let Some(fast) = spaced_hangul_view(&text).filter(|_| byte_path) {
                let plain = Plainness { simple, numerals, values_plain };
                let general = fold_views_general(&text, plain);
                prop_assert!(general.values.is_none(), "{text:?}");
                prop_assert_eq!(fast.is_some(), general.words.is_some(), "{:?}", text);
                let (Some(fast), Some(general)) = (fast, general.words) else {
                    return Ok(());
                };
                same_view_and_sources(&text, &fast, &general)?;
            }
        }

        /// The byte scans around spaces and `t`s say what the character windows they
        /// replaced said.
        #[test]
        fn byte_prechecks_equal_character_windows(text in texts(&[
                "시", "발", "한국", " ", " ", "a", "at", "AT", "t", "[", "]", "(", ")", "\t", "\u{000B}",
                "1", "é", "漢", "@", "\u{00A0}", "x", "<", ">",
        ], 0..16)) {
            let hangul = |c: char| ('\u{AC00}'..='\u{D7A3}').contains(&c);
            let mut w: [Option<char>; 5] = [None; 5];
            let mut spaced = false;
            for c in text.chars().map(Some).chain([None]) {
                w = [w[1], w[2], w[3], w[4], c];
                spaced |= w[1].is_some_and(hangul)
                    && w[2] == Some(' ')
                    && w[3].is_some_and(hangul)
                    && !w[0].is_some_and(is_alnum)
                    && !w[4].is_some_and(is_alnum);
            }
            prop_assert_eq!(has_spaced_syllables(&text), spaced, "{:?}", text);
            let space = |c: u8| c.is_ascii_whitespace() || c == 0x0B;
            let spelled_in = |text: &str| text.as_bytes().windows(4).any(|w| {
                (space(w[0]) || matches!(w[0], b'[' | b'(' | b'{' | b'<'))
                    && w[1].eq_ignore_ascii_case(&b'a')
                    && w[2].eq_ignore_ascii_case(&b't')
                    && (space(w[3]) || matches!(w[3], b']' | b')' | b'}' | b'>'))
            });
            let spelled = spelled_in(&text);
            prop_assert_eq!(may_spell_at(&text), spelled, "{:?}", text);
            // Long texts take the byte search.
            let long = text.repeat(SHORT_TEXT / text.len().max(1) + 1);
            prop_assert_eq!(may_spell_at(&long), spelled_in(&long), "{:?}", long);
        }

        /// The one-pass walk of short texts says what the spaced-singles test and the
        /// walk behind a `d.d` say together.
        #[test]
        fn the_walk_alone_answers_like_the_shifted_views(text in texts(&[
                "a", "b", "1", "2", "0", " ", ".", "-", "/", "x1", "ab", "12", "345", "김",
                "é", "\t", "_",
        ], 0..24)) {
            let b = text.as_bytes();
            let both = crate::text::has_spaced_singles(b, |_| true)
                || (has_digit_dot_digit(b) && !no_singles_or_dotted_numbers(b));
            prop_assert_eq!(!no_singles_or_dotted_numbers(b), both, "{:?}", text);
        }

        /// The one-pass numeral pre-check never says "no" where the full reading finds a
        /// run (it only spares texts the reading would find nothing in).
        #[test]
        fn numeral_precheck_never_misses_a_run(text in texts(&[
                "공", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구", "영", "1", "23", "456",
                " ", "-", ".", "로", "은", "번", "사람", "가", "a", "  ", ",",
        ], 0..30)) {
            let cs: Vec<char> = text.chars().collect();
            if !numeral_runs(&cs).is_empty() {
                prop_assert!(may_hold_numerals(cs.iter().copied()), "{:?}", text);
            }
        }

        /// The byte scan of leetspeak tokens finds the tokens the character scan finds.
        #[test]
        fn leet_token_bytes_equal_the_char_scan(text in texts(&[
                "f4ck", "a$$", "1990s", "sh1t", "@", ".", "com", "x", "ab", "한", "é", " ", "7",
                "h3ll0", "$", "|", "!", "Z", "@.", "4@", "-", "_",
        ], 0..12)) {
            let cs: Vec<char> = text.chars().collect();
            let offsets: Vec<usize> =
                text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
            let mut chars = Vec::new();
            leet_tokens(&cs, |s, e| chars.push((offsets[s], offsets[e])));
            let mut bytes = Vec::new();
            leet_token_spans(&text, |s, e| bytes.push((s, e)));
            prop_assert_eq!(has_leet(&text), !chars.is_empty(), "{:?}", text);
            prop_assert_eq!(bytes, chars, "{:?}", text);
        }

        /// Every text the byte path of [`leet_only_view`] takes gives the view and the
        /// source of every span that the per-character passes give.
        #[test]
        fn leet_only_views_equal_the_general_passes(text in texts(&[
                "f4ck", "a$$", "1990s", "sh1t", "kim4", "@", ".", "com", " at ", " dot ", "x",
                "ab", "한국", "가", " ", " ", "-", "7", "2024", "h3ll0", "mail", "é", "4t", "d0t",
        ], 1..9)) {
            let simple = text.is_ascii() || text.chars().all(is_plain);
            let numerals = has_korean_numerals(&text);
            let values_plain = simple && !numerals && no_value_folds(&text);
            let byte_path = values_plain && !has_spaced_syllables(&text) && has_leet(&text);
            if let Some(fast) = leet_only_view(&text).filter(|_| byte_path) {
                let plain = Plainness { simple, numerals, values_plain };
                let general = fold_views_general(&text, plain);
                prop_assert!(general.values.is_none(), "{text:?}");
                let general = general.words.expect("the general passes fold it too");
                same_view_and_sources(&text, &fast, &general)?;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The prose shortcut of a growing text's value view answers as the folds do:
        /// no view, the same bytes held; and it declines the texts it cannot answer.
        #[test]
        fn prose_growing_equals_the_general_passes(
            text in texts(
                &["a", "b", "x", "t", "at", "AT", " ", "  ", ".", ",", "'", "-", "_", "kim",
                  "fuck", "the cat", " a", "Thanks ", "reach", "!", "?", "\"", ":", ";",
                  "1", "0", "2024", "3.5", "1.2.3", "(", ")", "[", "]", "@", "$", "\n",
                  "\t", "/", "&", "+", "5 5", "010-", "kim at ", "é"],
                0..14,
            ),
        ) {
            if let Some(fast) = prose_growing(&text) {
                let general = growing_general(&text, ViewKind::Values);
                prop_assert!(general.view.is_none(), "{:?}", text);
                prop_assert_eq!(fast.pending, general.pending, "{:?}", text);
            }
        }
    }

    #[test]
    fn prose_growing_takes_prose_and_declines_what_folds() {
        for text in [
            "Thanks for reaching out",
            "Thanks f",
            "write to kim",
            "ok. ",
            "In 2015 (see p. 3) it sold 40 million copies",
            "call 010-",
            "won $5",
            "a\tb",
            "kim at ",
        ] {
            assert!(prose_growing(text).is_some(), "{text:?}");
        }
        // Spaced singles, an address spelled out, spaced digits, a non-ASCII letter.
        for text in ["f u c", "kim at example dot com ", "5 5 5 1 2 3 4", "café"] {
            assert!(prose_growing(text).is_none(), "{text:?}");
        }
    }
}
