//! `word`: deny lists of words and phrases, with a managed English and Korean profanity list.
//!
//! One Aho-Corasick automaton holds every word (ASCII case-insensitive; other scripts are
//! case-folded char by char when the lower-case form has the same UTF-8 length, so byte
//! offsets into the folded text are offsets into the original). Words that start or end
//! with a letter or digit of a spaced script must stand as whole words ("ass" does not
//! fire in "class"); Hangul and CJK words match as substrings because Korean attaches
//! particles to words ("바보야"). An allow list drops hits that lie inside an allowed
//! phrase (korcen's false-positive list for Korean, e.g. "시발점" is "starting point").

use std::borrow::Cow;

use std::sync::OnceLock;

use aho_corasick::{dfa, nfa, MatchKind, PatternID};

use super::overlapping;
use super::partial::Tail;
use super::{DetectContext, Detection, Finding};

const PROFANITY_EN: &str = include_str!("lists/profanity_en.txt");
const PROFANITY_KO: &str = include_str!("lists/profanity_ko.txt");
const PROFANITY_KO_ALLOW: &str = include_str!("lists/profanity_ko_allow.txt");

/// Label of findings from the managed profanity list.
pub const PROFANITY_LABEL: &str = "PROFANITY";
/// Default label of findings from a rule's own `words`.
pub const DEFAULT_LABEL: &str = "DENIED_WORD";
/// Upper bound on the number of words a rule may list (keeps automata small).
pub const MAX_WORDS: usize = 100_000;

/// Why a word list cannot be built.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WordError {
    #[error("word list is empty: give `words` or `profanity: true`")]
    Empty,
    #[error("word {index} is blank")]
    Blank { index: usize },
    #[error("too many words ({count}, at most {max})")]
    TooMany { count: usize, max: usize },
    #[error("cannot build the word automaton: {0}")]
    Build(#[from] aho_corasick::BuildError),
}

/// Per-pattern data, indexed by the automaton's pattern id.
#[derive(Debug, Clone)]
struct Entry {
    label: u16,
    whole_start: bool,
    whole_end: bool,
}

impl Entry {
    fn new(word: &str, label: u16) -> Self {
        Self {
            label,
            whole_start: word.chars().next().is_some_and(needs_boundary),
            whole_end: word.chars().next_back().is_some_and(needs_boundary),
        }
    }
}

/// Lists up to this many words are compiled to a DFA: the 916-word English profanity list
/// takes 1.5 MB and scans ~1.9x faster than the NFA; the 801 Korean words take 3.4 MB
/// (`AhoCorasick::memory_usage`) and scan Korean text ~1.6x faster. Built once per process.
const DFA_MAX_WORDS: usize = 5_000;
/// Allow lists up to this many phrases are compiled to a DFA (the `aho-corasick` crate's
/// own choice); the 424 Korean phrases are a contiguous NFA.
const ALLOW_DFA_MAX_WORDS: usize = 100;

/// One automaton and its per-pattern data. Words are split by script: ASCII words in
/// one automaton, words with other characters in another. Each is skipped on text that
/// holds none of its [`Automaton::needles`] (English text with an accent or a dash cannot
/// hold a Korean word; Korean text without Latin letters cannot hold an English one).
#[derive(Debug, Clone)]
struct Automaton {
    search: Search,
    entries: Vec<Entry>,
    /// Bytes of which every match holds one: for ASCII words their first bytes (both
    /// cases: the automaton is ASCII case-insensitive), for the others the leading bytes
    /// of their non-ASCII characters (matched exactly).
    needles: [bool; 256],
}

/// The automaton of a word group or allow list, searched by
/// [`overlapping::for_each_match`].
#[derive(Debug, Clone)]
enum Search {
    Dfa(Box<dfa::DFA>),
    Nfa(Box<nfa::contiguous::NFA>),
}

impl Search {
    /// ASCII case-insensitive, unanchored, standard semantics and no prefilter (what the
    /// lane walk expects); a DFA up to `dfa_max` patterns, a contiguous NFA above.
    fn new(patterns: &[String], dfa_max: usize) -> Result<Self, aho_corasick::BuildError> {
        Ok(if patterns.len() <= dfa_max {
            Self::Dfa(Box::new(
                dfa::Builder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .prefilter(false)
                    .build(patterns)?,
            ))
        } else {
            Self::Nfa(Box::new(
                nfa::contiguous::Builder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .prefilter(false)
                    .build(patterns)?,
            ))
        })
    }

    /// Calls `f(pattern, start, end)` for every match in `hay`, overlapping ones too.
    fn for_each_match(&self, hay: &[u8], f: impl FnMut(PatternID, usize, usize)) {
        match self {
            Self::Dfa(d) => overlapping::for_each_match(d.as_ref(), hay, f),
            Self::Nfa(n) => overlapping::for_each_match(n.as_ref(), hay, f),
        }
    }

    /// Length in bytes of the longest pattern.
    fn max_pattern_len(&self) -> usize {
        use aho_corasick::automaton::Automaton as _;
        match self {
            Self::Dfa(d) => d.max_pattern_len(),
            Self::Nfa(n) => n.max_pattern_len(),
        }
    }
}

impl Automaton {
    /// Whether some word could occur in `hay`: a byte-table scan that stops at the first
    /// hit, much cheaper than running the automaton over text that cannot match.
    fn may_match(&self, hay: &[u8]) -> bool {
        let needle = |b: &u8| self.needles[usize::from(*b)];
        if self.needles[..0x80].contains(&true) {
            return hay.iter().any(needle);
        }
        // Needles are non-ASCII bytes only: look into the 32-byte chunks holding one (a
        // vectorised compare), which English text with a dash or two barely has.
        hay.chunks(32).any(|chunk| {
            chunk.iter().fold(false, |any, &b| any | (b >= 0x80)) && chunk.iter().any(needle)
        })
    }
}

/// [`Automaton::needles`] of a group of words (every byte when a word folded to nothing).
fn needles(patterns: &[String], ascii: bool) -> [bool; 256] {
    if patterns.iter().any(String::is_empty) {
        return [true; 256];
    }
    let mut table = [false; 256];
    for p in patterns {
        if ascii {
            if let Some(b) = p.bytes().next() {
                table[usize::from(b.to_ascii_lowercase())] = true;
                table[usize::from(b.to_ascii_uppercase())] = true;
            }
        } else {
            for b in p.bytes().filter(|&b| b >= 0xC0) {
                table[usize::from(b)] = true;
            }
        }
    }
    table
}

/// Automata for a list of (folded word, entry) pairs.
fn build_automata(words: Vec<(String, Entry)>) -> Result<Vec<Automaton>, WordError> {
    let (ascii, other): (Vec<_>, Vec<_>) = words.into_iter().partition(|(w, _)| w.is_ascii());
    let mut automata = Vec::new();
    for (group, is_ascii) in [(ascii, true), (other, false)] {
        if group.is_empty() {
            continue;
        }
        let (patterns, entries): (Vec<String>, Vec<Entry>) = group.into_iter().unzip();
        automata.push(Automaton {
            needles: needles(&patterns, is_ascii),
            search: Search::new(&patterns, DFA_MAX_WORDS)?,
            entries,
        });
    }
    Ok(automata)
}

/// The managed profanity list, compiled once per process and shared by every rule that
/// enables it (a policy usually has one on each stage).
fn profanity_automata() -> Result<&'static [Automaton], WordError> {
    static PROFANITY: OnceLock<Result<Vec<Automaton>, WordError>> = OnceLock::new();
    let built = PROFANITY.get_or_init(|| {
        let words = list_lines(PROFANITY_EN)
            .chain(list_lines(PROFANITY_KO))
            .map(|w| (fold(w).into_owned(), Entry::new(w, PROFANITY_INDEX)))
            .collect();
        build_automata(words)
    });
    match built {
        Ok(a) => Ok(a),
        Err(e) => Err(e.clone()),
    }
}

/// Index of [`PROFANITY_LABEL`] in every detector's label table.
const PROFANITY_INDEX: u16 = 1;

/// A compiled deny list.
#[derive(Debug, Clone)]
pub struct WordDetector {
    /// The rule's own words.
    own: Vec<Automaton>,
    /// The shared managed profanity list, when the rule enables it.
    profanity: &'static [Automaton],
    labels: Vec<String>,
    allow: Option<Search>,
    /// Every word and allowed phrase, folded and ASCII-lower-cased, sorted: a growing
    /// text's tail that is a prefix of one of them may still become (or cancel) a hit.
    prefixes: Vec<String>,
    /// Byte length of the longest entry of `prefixes`.
    longest: usize,
}

impl WordDetector {
    /// Builds a detector from a rule's words (labelled `label`), optionally the managed
    /// profanity list, and phrases to allow.
    pub fn new(
        words: &[String],
        label: &str,
        profanity: bool,
        allow: &[String],
    ) -> Result<Self, WordError> {
        if words.len() > MAX_WORDS {
            return Err(WordError::TooMany {
                count: words.len(),
                max: MAX_WORDS,
            });
        }
        if let Some(index) = words.iter().position(|w| w.trim().is_empty()) {
            return Err(WordError::Blank { index });
        }
        if words.is_empty() && !profanity {
            return Err(WordError::Empty);
        }
        let labels = vec![label.to_string(), PROFANITY_LABEL.to_string()];
        let own_words: Vec<(String, Entry)> = words
            .iter()
            .map(|w| (fold(w.trim()).into_owned(), Entry::new(w.trim(), 0)))
            .collect();
        let mut prefixes: Vec<String> = own_words.iter().map(|(w, _)| w.clone()).collect();
        let own = build_automata(own_words)?;
        let mut allow_list: Vec<String> =
            allow.iter().map(|a| fold(a.trim()).into_owned()).collect();
        let profanity = if profanity {
            prefixes.extend(
                list_lines(PROFANITY_EN)
                    .chain(list_lines(PROFANITY_KO))
                    .map(|w| fold(w).into_owned()),
            );
            allow_list.extend(list_lines(PROFANITY_KO_ALLOW).map(|a| fold(a).into_owned()));
            profanity_automata()?
        } else {
            &[]
        };
        allow_list.retain(|a| !a.is_empty());
        prefixes.extend(allow_list.iter().cloned());
        for p in &mut prefixes {
            p.make_ascii_lowercase();
        }
        prefixes.sort_unstable();
        prefixes.dedup();
        let longest = prefixes.iter().map(String::len).max().unwrap_or(0);
        let allow = if allow_list.is_empty() {
            None
        } else {
            // Only read where there are candidates: the compact NFA (as the crate picks
            // for lists of this size) rather than a DFA of megabytes.
            Some(Search::new(&allow_list, ALLOW_DFA_MAX_WORDS)?)
        };
        Ok(Self {
            own,
            profanity,
            labels,
            allow,
            prefixes,
            longest,
        })
    }

    /// Where a word (or an allowed phrase that would cancel one) may still be in
    /// progress at the end of a growing text: the earliest start whose tail is a prefix
    /// of a listed entry. A complete word at the very end is held too, since its
    /// whole-word check needs the next character.
    pub fn stream_tail(&self, text: &str, from: usize) -> Tail {
        let mut start = text.len().saturating_sub(self.longest).max(from);
        while start < text.len() {
            if text.is_char_boundary(start) {
                let tail = fold(&text[start..]).to_ascii_lowercase();
                let i = self
                    .prefixes
                    .partition_point(|p| p.as_str() < tail.as_str());
                if self.prefixes.get(i).is_some_and(|p| p.starts_with(&tail)) {
                    return Tail {
                        hold: start,
                        candidate: true,
                        firm_until: 0,
                    };
                }
            }
            start += 1;
        }
        Tail {
            hold: text.len(),
            candidate: true,
            firm_until: 0,
        }
    }

    /// Finds denied words, leftmost-longest, without overlaps.
    pub fn detect(&self, text: &str, _ctx: &DetectContext) -> Detection {
        let folded = fold(text);
        let hay = folded.as_ref();
        let bytes = hay.as_bytes();
        let mut cands: Vec<(usize, usize, u16)> = Vec::new();
        for automaton in self.own.iter().chain(self.profanity) {
            if !automaton.may_match(bytes) {
                continue;
            }
            automaton
                .search
                .for_each_match(bytes, |pattern, start, end| {
                    let Some(e) = automaton.entries.get(pattern.as_usize()) else {
                        return;
                    };
                    let (Some(before), Some(after)) = (hay.get(..start), hay.get(end..)) else {
                        return;
                    };
                    if e.whole_start && before.chars().next_back().is_some_and(is_word_char) {
                        return;
                    }
                    if e.whole_end && after.chars().next().is_some_and(is_word_char) {
                        return;
                    }
                    cands.push((start, end, e.label));
                });
        }
        if cands.is_empty() {
            return Detection::default();
        }
        if let Some(allow) = &self.allow {
            let mut allowed: Vec<(usize, usize)> = Vec::new();
            for (lo, hi) in allow_windows(&cands, allow.max_pattern_len(), bytes.len()) {
                allow.for_each_match(&bytes[lo..hi], |_, start, end| {
                    allowed.push((lo + start, lo + end))
                });
            }
            if !allowed.is_empty() {
                cands.retain(|&(s, e, _)| !allowed.iter().any(|&(a, b)| a <= s && e <= b));
            }
        }
        // Leftmost-longest, non-overlapping.
        cands.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut findings = Vec::new();
        let mut last_end = 0;
        for (s, e, label) in cands {
            if s < last_end {
                continue;
            }
            debug_assert!(s <= bytes.len() && e <= bytes.len());
            last_end = e;
            findings.push(Finding {
                kind: "word",
                label: self.labels.get(label as usize).cloned().unwrap_or_default(),
                score: 1.0,
                start: s,
                end: e,
            });
        }
        Detection::from_findings(findings)
    }
}

/// Non-comment, non-blank lines of an embedded list.
fn list_lines(list: &str) -> impl Iterator<Item = &str> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Letters and digits of spaced scripts need word boundaries; Hangul, kana and CJK
/// ideographs are matched as substrings.
fn needs_boundary(c: char) -> bool {
    is_word_char(c) && !is_unspaced(c)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xA960..=0xA97F | 0xAC00..=0xD7AF | 0xD7B0..=0xD7FF // Hangul
        | 0x3040..=0x30FF // kana
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF // CJK ideographs
    )
}

/// The byte ranges where an allow-list word may cover a candidate: an allowed span
/// holds the candidate and is at most `reach` bytes long, so it lies within `reach` bytes
/// of the candidate's end before it and of its start after it. Merged and in order; the
/// allow list is walked only there (an English answer with one whole-word candidate had
/// the Korean allow list walked over all of its text).
fn allow_windows(cands: &[(usize, usize, u16)], reach: usize, len: usize) -> Vec<(usize, usize)> {
    let mut windows: Vec<(usize, usize)> = cands
        .iter()
        .map(|&(s, e, _)| (e.saturating_sub(reach), s.saturating_add(reach).min(len)))
        .filter(|(lo, hi)| lo < hi)
        .collect();
    windows.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(windows.len());
    for (lo, hi) in windows {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// Lower-cases non-ASCII chars whose lower-case form is one char of the same UTF-8
/// length, so offsets are preserved; ASCII case is handled by the automaton.
fn fold(text: &str) -> Cow<'_, str> {
    // ASCII case is the automaton's; most texts have no other cased letter.
    if !has_foldable_letter(text) {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // ASCII runs are copied whole; each other character is looked at.
    while i < b.len() {
        let j = crate::text::next_non_ascii(b, i);
        out.push_str(&text[i..j]);
        let Some(c) = text.get(j..).and_then(|t| t.chars().next()) else {
            break;
        };
        out.push(if needs_fold(c) {
            same_len_lower(c).unwrap_or(c)
        } else {
            c
        });
        i = j + c.len_utf8();
    }
    Cow::Owned(out)
}

/// A character [`fold`] lower-cases: a non-ASCII upper-case letter of a spaced script
/// whose lower-case form has the same UTF-8 length.
fn needs_fold(c: char) -> bool {
    !c.is_ascii() && !is_unspaced(c) && c.is_uppercase() && same_len_lower(c).is_some()
}

/// Whether some character of `text` [`needs_fold`]. Walks the bytes and skips, without
/// decoding, ASCII and the three-byte characters of U+3000..U+9FFF and U+AC00..U+EFFF
/// (CJK, kana, Hangul syllables, private use: no upper-case letter there, which a test
/// checks character by character), so Korean prose costs a byte test per character.
fn has_foldable_letter(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(&lead) = b.get(i) {
        let caseless = match lead {
            0x00..=0x7F => {
                i = crate::text::next_non_ascii(b, i);
                continue;
            }
            0xE3..=0xE9 | 0xEB..=0xEE => true,
            0xEA => b.get(i + 1).is_some_and(|&x| x >= 0xB0),
            _ => false,
        };
        if caseless {
            i += 3;
            continue;
        }
        let Some(c) = text.get(i..).and_then(|t| t.chars().next()) else {
            // Not at a character boundary: cannot happen on a `str` walked by lengths.
            return text.chars().any(needs_fold);
        };
        if needs_fold(c) {
            return true;
        }
        i += c.len_utf8();
    }
    false
}

fn same_len_lower(c: char) -> Option<char> {
    let mut it = c.to_lowercase();
    let l = it.next()?;
    (it.next().is_none() && l.len_utf8() == c.len_utf8()).then_some(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// An automaton skipped by its needles has no match in the text: the skip only
        /// saves work. The words mix scripts the way list words do: ASCII in any case,
        /// Korean starting with ASCII digits or letters, loose jamo, accents.
        #[test]
        fn skipped_automata_have_no_match(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    " ", "the ", "FUCK", "fu", "ck", "Shit", "10발놈", "X발", "x", "발",
                    "ㅗㅗ", "ㅗ", "naïve", "na", "ï", "é", "—", "Иван", "中", "1",
                ]),
                0..12,
            )
        ) {
            let list = ["fuck", "shit", "10발놈", "x발", "ㅗㅗ", "naïve", "ива"];
            let automata = build_automata(
                list.iter().map(|w| (w.to_string(), Entry::new(w, 0))).collect(),
            )
            .expect("automata build");
            let hay = parts.concat();
            for automaton in &automata {
                if !automaton.may_match(hay.as_bytes()) {
                    let mut any = false;
                    automaton.search.for_each_match(hay.as_bytes(), |_, _, _| any = true);
                    prop_assert!(!any, "{:?}", hay);
                }
            }
        }
    }

    /// The byte skip of [`has_foldable_letter`] is exact: no character it skips needs
    /// folding.
    #[test]
    fn skipped_characters_are_caseless() {
        for c in ('\u{3000}'..='\u{9FFF}').chain('\u{AC00}'..='\u{EFFF}') {
            assert!(!needs_fold(c), "{c:?} ({:X})", c as u32);
        }
    }

    proptest! {
        #[test]
        fn foldable_letter_check_is_the_char_scan(
            text in "[a-zA-Z 가-힣ÀÉÖäßΣσДд中ｶＡａꙀꙁ\u{A7B0}\u{10400}\u{1E900}]{0,24}"
        ) {
            prop_assert_eq!(has_foldable_letter(&text), text.chars().any(needs_fold));
        }
    }

    proptest! {
        /// Copying ASCII runs whole folds what folding every character folds.
        #[test]
        fn fold_by_runs_is_the_char_fold(
            text in "[a-zA-Z 가-힣ÀÉÖäßΣσДд中ｶＡａꙀꙁ\u{A7B0}\u{10400}\u{1E900}]{0,40}"
        ) {
            let each: String = text
                .chars()
                .map(|c| if needs_fold(c) { same_len_lower(c).unwrap_or(c) } else { c })
                .collect();
            let folded = fold(&text);
            prop_assert_eq!(folded.as_ref(), each.as_str());
        }

        /// Walking the allow list only near the candidates finds every allowed span that
        /// covers one: the detector gives what walking the whole text gives.
        #[test]
        fn allow_windows_keep_every_covering_span(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    " ", "시발", "무시발언", "무", "언", "시발역", "씨발", "damn", "the ", "x",
                    "개새끼", "8", "구로역", "강아지",
                ]),
                0..24,
            )
        ) {
            let text = parts.concat();
            let d = WordDetector::new(&words(&["damn"]), "X", true, &[]).expect("detector");
            let got = d.detect(&text, &DetectContext::default());
            let bytes = text.as_bytes();
            let allow = d.allow.as_ref().expect("the managed list has an allow list");
            let mut allowed = Vec::new();
            allow.for_each_match(bytes, |_, s, e| allowed.push((s, e)));
            for f in &got.findings {
                prop_assert!(
                    !allowed.iter().any(|&(a, b)| a <= f.start && f.end <= b),
                    "{:?} kept {:?}", text, f
                );
            }
            let reach = allow.max_pattern_len();
            for &(a, b) in &allowed {
                prop_assert!(b - a <= reach);
            }
        }
    }

    fn spans(d: &WordDetector, text: &str) -> Vec<(String, String)> {
        d.detect(text, &DetectContext::default())
            .findings
            .into_iter()
            .map(|f| (text[f.start..f.end].to_string(), f.label))
            .collect()
    }

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn table() {
        let d = WordDetector::new(
            &words(&["frobnicate", "bad word", "ÄRGER", "바보"]),
            "X",
            false,
            &[],
        )
        .unwrap();
        let cases: &[(&str, &[&str])] = &[
            ("please FROBNICATE now", &["FROBNICATE"]),
            ("frobnicated", &[]),
            ("a Bad Word here", &["Bad Word"]),
            ("kein ärger", &["ärger"]),
            ("너 바보야", &["바보"]),
            ("바보바보", &["바보", "바보"]),
            ("nothing", &[]),
            ("_frobnicate", &[]),
        ];
        for (text, want) in cases {
            let got: Vec<String> = spans(&d, text).into_iter().map(|(s, _)| s).collect();
            assert_eq!(&got, want, "text {text:?}");
        }
    }

    #[test]
    fn leftmost_longest_without_overlap() {
        let d =
            WordDetector::new(&words(&["new", "new york", "york city"]), "X", false, &[]).unwrap();
        let got: Vec<String> = spans(&d, "new york city")
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(got, vec!["new york"]);
    }

    #[test]
    fn profanity_list_english_and_korean_with_allow_list() {
        let d = WordDetector::new(&[], "X", true, &[]).unwrap();
        assert_eq!(
            spans(&d, "you are an asshole"),
            vec![("asshole".into(), PROFANITY_LABEL.into())]
        );
        assert!(spans(&d, "a classic class assignment").is_empty());
        assert_eq!(spans(&d, "이 병신아").len(), 1);
        // 시발점 (starting point) is on korcen's false-positive list.
        assert!(spans(&d, "여기가 시발점이다").is_empty());
        assert!(spans(&d, "안녕하세요, 오늘 날씨가 좋네요.").is_empty());
    }

    #[test]
    fn rule_allow_list_applies() {
        let d = WordDetector::new(
            &words(&["scunthorpe"]),
            "X",
            false,
            &words(&["scunthorpe united"]),
        )
        .unwrap();
        assert!(spans(&d, "Scunthorpe United won").is_empty());
        assert_eq!(spans(&d, "Scunthorpe town").len(), 1);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            WordDetector::new(&[], "X", false, &[]),
            Err(WordError::Empty)
        ));
        assert!(matches!(
            WordDetector::new(&words(&["ok", " "]), "X", false, &[]),
            Err(WordError::Blank { index: 1 })
        ));
    }
}
