//! Sentence segmentation and tokenisation for English and Korean.
//!
//! Tokens are reduced to 64-bit hashes of a normalised form so that support checks are
//! set look-ups without allocation-heavy string maps. English words are lower-cased and
//! lightly stemmed (plural / possessive); Korean eojeol are stripped of their josa and a
//! few verbal endings and also carry their syllable bigrams, because whitespace tokens
//! alone miss most matches in an agglutinative language.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for keys that are already 64-bit hashes.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type IdBuild = BuildHasherDefault<IdHasher>;
pub type KeySet = HashSet<u64, IdBuild>;
pub type KeyMap<V> = HashMap<u64, V, IdBuild>;

/// FNV-1a over bytes, then a final mix so low bits are usable by the hash table.
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

/// Hash of an unordered pair of token keys.
pub fn pair_key(a: u64, b: u64) -> u64 {
    let (x, y) = if a < b { (a, b) } else { (b, a) };
    mix(x.wrapping_mul(31) ^ y.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15)
}

/// What kind of token this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Latin,
    Number,
    Hangul,
}

/// One token of a text.
#[derive(Debug, Clone)]
pub struct Tok {
    /// Hash of the normalised stem.
    pub key: u64,
    /// Hash of the first five characters for long Latin words (else `key`): a cheap
    /// stand-in for stemming (`produced` / `producer`).
    pub prefix: u64,
    pub start: usize,
    pub end: usize,
    pub script: Script,
    /// A function word that carries no claim on its own.
    pub stop: bool,
    /// Starts with an upper-case letter (a likely name in English).
    pub cap: bool,
    /// A negation marker (`not`, `never`, `않`, `없`, ...).
    pub neg: bool,
    /// Range into [`Tokens::bigrams`] (Hangul syllable bigrams of the stem).
    pub bg: (u32, u32),
}

/// The tokens of a text plus shared storage.
#[derive(Debug, Default)]
pub struct Tokens {
    pub toks: Vec<Tok>,
    pub bigrams: Vec<u64>,
    /// Bigrams of the whole Hangul runs (josa included), used on the context side.
    pub run_bigrams: Vec<u64>,
}

impl Tokens {
    pub fn bigrams_of(&self, t: &Tok) -> &[u64] {
        &self.bigrams[t.bg.0 as usize..t.bg.1 as usize]
    }
}

/// Normalised key of a word as the tokenizer would produce it (used to load tables).
pub fn word_key(word: &str) -> Option<u64> {
    let toks = tokenize(word, 0);
    toks.toks.first().map(|t| t.key)
}

fn is_hangul(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
}

const EN_STOP: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "but",
    "if",
    "of",
    "to",
    "in",
    "on",
    "at",
    "by",
    "for",
    "with",
    "from",
    "as",
    "into",
    "onto",
    "about",
    "over",
    "after",
    "before",
    "than",
    "then",
    "so",
    "that",
    "this",
    "these",
    "those",
    "there",
    "here",
    "it",
    "its",
    "it's",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "am",
    "do",
    "does",
    "did",
    "have",
    "has",
    "had",
    "having",
    "i",
    "you",
    "he",
    "she",
    "we",
    "they",
    "me",
    "him",
    "her",
    "us",
    "them",
    "my",
    "your",
    "his",
    "our",
    "their",
    "what",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "will",
    "would",
    "can",
    "could",
    "shall",
    "should",
    "may",
    "might",
    "must",
    "also",
    "too",
    "very",
    "just",
    "yes",
    "yeah",
    "oh",
    "well",
    "all",
    "any",
    "some",
    "such",
    "both",
    "each",
    "other",
    "more",
    "most",
    "much",
    "many",
    "own",
    "same",
    "up",
    "down",
    "out",
    "off",
    "again",
    "further",
    "once",
    "only",
    "s",
    "t",
    "d",
    "ll",
    "re",
    "ve",
    "m",
    "o",
    "while",
    "during",
    "through",
    "between",
    "because",
    "until",
    "against",
    "like",
    "know",
    "think",
    "really",
    "one",
    "get",
    "got",
    "go",
    "going",
    "let",
    "lot",
    "thing",
    "something",
];

const EN_NEG: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot",
    "n't", "nt", "didn", "doesn", "isn", "wasn", "aren", "weren", "won", "wouldn", "couldn",
    "shouldn", "hasn", "haven", "hadn", "don",
];

const NUM_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("twenty", "20"),
    ("hundred", "100"),
];

/// Josa and common verbal endings, longest first; stripped from the end of an eojeol.
const KO_SUFFIX: &[&str] = &[
    "했습니다",
    "되었습니다",
    "었습니다",
    "았습니다",
    "입니다",
    "합니다",
    "됩니다",
    "습니다",
    "으로부터",
    "에서부터",
    "하였다",
    "되었다",
    "이었다",
    "이라고",
    "이라는",
    "에게서",
    "한테서",
    "으로서",
    "으로써",
    "에서는",
    "에서도",
    "에게는",
    "까지는",
    "부터는",
    "이지만",
    "했다",
    "한다",
    "하는",
    "하고",
    "하여",
    "해서",
    "하며",
    "하지",
    "했던",
    "된다",
    "되는",
    "됐다",
    "였다",
    "이다",
    "에서",
    "에게",
    "한테",
    "으로",
    "부터",
    "까지",
    "처럼",
    "보다",
    "라고",
    "이라",
    "라는",
    "에는",
    "와는",
    "과는",
    "이며",
    "였던",
    "은",
    "는",
    "이",
    "가",
    "을",
    "를",
    "에",
    "의",
    "도",
    "로",
    "와",
    "과",
    "만",
    "께",
    "랑",
    "된",
    "한",
    "할",
    "다",
];

const KO_STOP: &[&str] = &[
    "그",
    "이",
    "저",
    "것",
    "수",
    "등",
    "및",
    "또한",
    "그리고",
    "하지만",
    "그러나",
    "있",
    "있다",
    "있습니다",
    "있는",
    "하다",
    "되다",
    "때문",
    "위해",
    "대한",
    "통해",
    "더",
    "좀",
    "잘",
    "매우",
    "정말",
    "아주",
    "또",
    "그래서",
    "그런데",
    "때",
    "중",
    "네",
    "예",
    "제",
    "저는",
    "우리",
];

fn ko_is_neg(run: &str) -> bool {
    run == "안"
        || run == "못"
        || run.contains('않')
        || run.contains('없')
        || run.starts_with("아니")
        || run.starts_with("아닌")
        || run.starts_with("아닙")
        || run.starts_with("못하")
        || run.starts_with("불가")
        || run.contains("지마")
        || run.contains("지 마")
}

/// Strips one josa/ending from a Hangul run; keeps at least one syllable.
pub fn ko_stem(run: &str) -> &str {
    let n = run.chars().count();
    for suf in KO_SUFFIX {
        if let Some(stem) = run.strip_suffix(suf) {
            let sn = n - suf.chars().count();
            if sn >= 1 {
                return stem;
            }
        }
    }
    run
}

fn en_stem(w: &str) -> &str {
    if let Some(s) = w.strip_suffix("'s").or_else(|| w.strip_suffix("’s")) {
        return s;
    }
    if w.len() > 4 && w.ends_with("ies") {
        return &w[..w.len() - 3];
    }
    if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        return &w[..w.len() - 1];
    }
    w
}

const SEED_WORD: u64 = 1;
const SEED_NUM: u64 = 2;
const SEED_KO: u64 = 3;
const SEED_PREFIX: u64 = 4;
const SEED_BIGRAM: u64 = 5;

/// Tokenises `text`; offsets are shifted by `base` (for tokenising a slice).
pub fn tokenize(text: &str, base: usize) -> Tokens {
    let mut out = Tokens::default();
    let mut buf = String::new();
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if c.is_ascii_digit() {
            // Number: digits with inner ',' or '.' followed by a digit.
            buf.clear();
            buf.push(c);
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = iter.peek() {
                if d.is_ascii_digit() {
                    buf.push(d);
                    end = j + 1;
                    iter.next();
                } else if d == ',' || d == '.' {
                    let next = text[j + 1..].chars().next();
                    if next.is_some_and(|n| n.is_ascii_digit()) {
                        if d == '.' {
                            buf.push('.');
                        }
                        iter.next();
                    } else {
                        break;
                    }
                } else {
                    break;
                }
            }
            let key = hash_bytes(SEED_NUM, buf.as_bytes());
            out.toks.push(Tok {
                key,
                prefix: key,
                start: base + i,
                end: base + end,
                script: Script::Number,
                stop: false,
                cap: false,
                neg: false,
                bg: (0, 0),
            });
        } else if is_hangul(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = iter.peek() {
                if is_hangul(d) {
                    end = j + d.len_utf8();
                    iter.next();
                } else {
                    break;
                }
            }
            let run = &text[i..end];
            push_hangul(&mut out, run, base + i, base + end);
        } else if c.is_alphabetic() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = iter.peek() {
                if d.is_alphabetic() && !is_hangul(d) {
                    end = j + d.len_utf8();
                    iter.next();
                } else if (d == '\'' || d == '’') && end == j {
                    // keep apostrophes inside words ("don't", "Oberoi's")
                    let next = text[j + d.len_utf8()..].chars().next();
                    if next.is_some_and(|n| n.is_alphabetic() && !is_hangul(n)) {
                        end = j + d.len_utf8();
                        iter.next();
                    } else {
                        break;
                    }
                } else {
                    break;
                }
            }
            push_latin(&mut out, &text[i..end], base + i, base + end, &mut buf);
        }
    }
    out
}

fn push_latin(out: &mut Tokens, word: &str, start: usize, end: usize, buf: &mut String) {
    let cap = word.chars().next().is_some_and(char::is_uppercase);
    buf.clear();
    for ch in word.chars() {
        if ch == '’' {
            buf.push('\'');
        } else {
            buf.extend(ch.to_lowercase());
        }
    }
    let lower = buf.as_str();
    let mut neg = EN_NEG.contains(&lower);
    let mut stem_src = lower;
    if let Some(s) = lower.strip_suffix("n't") {
        neg = true;
        stem_src = s;
    }
    if let Some(&(_, digit)) = NUM_WORDS.iter().find(|(w, _)| *w == lower) {
        let key = hash_bytes(SEED_NUM, digit.as_bytes());
        out.toks.push(Tok {
            key,
            prefix: key,
            start,
            end,
            script: Script::Number,
            stop: lower == "one",
            cap,
            neg: false,
            bg: (0, 0),
        });
        return;
    }
    let stem = en_stem(stem_src);
    let stop = neg || EN_STOP.contains(&stem) || EN_STOP.contains(&lower);
    let key = hash_bytes(SEED_WORD, stem.as_bytes());
    let prefix = if stem.chars().count() >= 6 {
        let cut = stem.char_indices().nth(5).map_or(stem.len(), |(k, _)| k);
        hash_bytes(SEED_PREFIX, &stem.as_bytes()[..cut])
    } else {
        key
    };
    out.toks.push(Tok {
        key,
        prefix,
        start,
        end,
        script: Script::Latin,
        stop,
        cap,
        neg,
        bg: (0, 0),
    });
}

fn push_hangul(out: &mut Tokens, run: &str, start: usize, end: usize) {
    let neg = ko_is_neg(run);
    let stem = ko_stem(run);
    let stop = KO_STOP.contains(&stem) || KO_STOP.contains(&run) || neg && stem.len() <= 6;
    let key = hash_bytes(SEED_KO, stem.as_bytes());
    let b0 = out.bigrams.len() as u32;
    push_bigrams(&mut out.bigrams, stem);
    let b1 = out.bigrams.len() as u32;
    push_bigrams(&mut out.run_bigrams, run);
    out.toks.push(Tok {
        key,
        prefix: key,
        start,
        end,
        script: Script::Hangul,
        stop,
        cap: false,
        neg,
        bg: (b0, b1),
    });
}

/// Syllable bigrams of a Hangul string (a single syllable yields its unigram).
fn push_bigrams(dst: &mut Vec<u64>, s: &str) {
    let idx: Vec<usize> = s.char_indices().map(|(k, _)| k).collect();
    if idx.len() == 1 {
        dst.push(hash_bytes(SEED_BIGRAM, s.as_bytes()));
        return;
    }
    for w in 0..idx.len().saturating_sub(1) {
        let end = idx.get(w + 2).copied().unwrap_or(s.len());
        dst.push(hash_bytes(SEED_BIGRAM, &s.as_bytes()[idx[w]..end]));
    }
}

/// Abbreviations after which a full stop does not end a sentence.
const ABBREV: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "inc", "co", "no", "prof", "gen",
    "col", "lt", "sgt", "mt", "ft", "corp", "ltd", "u.s", "e.g", "i.e", "jan", "feb", "mar", "apr",
    "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
];

/// Splits `text` into sentence byte ranges, trimmed of surrounding whitespace.
///
/// Splits after `.`, `!`, `?`, `。`, `！`, `？` (and closing quotes/brackets that follow)
/// when whitespace or the end follows, and at line breaks; not after decimals, single
/// capitals (initials) or common abbreviations.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0usize;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let mut cut: Option<usize> = None;
        if c == '\n' {
            cut = Some(i);
        } else if matches!(c, '.' | '!' | '?' | '。' | '！' | '？') {
            let mut end = i + c.len_utf8();
            // absorb repeated punctuation and closing quotes/brackets
            while let Some(&(j, d)) = iter.peek() {
                if matches!(
                    d,
                    '.' | '!' | '?' | '"' | '\'' | '”' | '’' | ')' | ']' | '」' | '』'
                ) {
                    end = j + d.len_utf8();
                    iter.next();
                } else {
                    break;
                }
            }
            let next = text[end..].chars().next();
            let at_boundary = next.is_none_or(char::is_whitespace);
            let cjk_stop = matches!(c, '。' | '！' | '？');
            // "p.m. today": a lower-case Latin word after a full stop continues the sentence.
            let lower_next = text[end..]
                .trim_start()
                .chars()
                .next()
                .is_some_and(|n| n.is_lowercase() && !is_hangul(n));
            let abbrev = c == '.' && (is_abbrev(&text[start..i]) || lower_next);
            if (at_boundary || cjk_stop) && !abbrev {
                cut = Some(end);
            }
        }
        if let Some(end) = cut {
            push_trimmed(&mut out, text, start, end);
            start = end;
        }
    }
    if start < bytes.len() {
        push_trimmed(&mut out, text, start, bytes.len());
    }
    out
}

fn is_abbrev(before: &str) -> bool {
    let word = before
        .rsplit(|ch: char| ch.is_whitespace() || ch == '(')
        .next()
        .unwrap_or("");
    if word.is_empty() {
        return false;
    }
    let mut chars = word.chars();
    if let (Some(f), None) = (chars.next(), chars.next()) {
        return f.is_uppercase();
    }
    let lw = word.to_lowercase();
    ABBREV.contains(&lw.as_str())
}

fn push_trimmed(out: &mut Vec<(usize, usize)>, text: &str, start: usize, end: usize) {
    let seg = &text[start..end];
    let lead = seg.len() - seg.trim_start().len();
    let trail = seg.len() - seg.trim_end().len();
    let (s, e) = (start + lead, end - trail);
    if e > s && text[s..e].chars().any(char::is_alphanumeric) {
        out.push((s, e));
    }
}

/// Quoted strings (between straight or typographic double quotes, or 「」『』) up to 80
/// bytes, as byte ranges of their inner text.
pub fn quoted(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (i, c) in text.char_indices() {
        match open {
            None => {
                if matches!(c, '"' | '“' | '「' | '『') {
                    open = Some((c, i + c.len_utf8()));
                }
            }
            Some((o, s)) => {
                let closes = match o {
                    '"' => c == '"',
                    '“' => c == '”',
                    '「' => c == '」',
                    _ => c == '』',
                };
                if closes {
                    if i > s && i - s <= 80 {
                        out.push((s, i));
                    }
                    open = None;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_english_and_korean_sentences() {
        let cases: &[(&str, &[&str])] = &[
            (
                "Dr. Kim arrived at 3.5 p.m. today. He left! Did he?",
                &["Dr. Kim arrived at 3.5 p.m. today.", "He left!", "Did he?"],
            ),
            (
                "서울은 한국의 수도이다. 인구는 약 940만 명이다.",
                &["서울은 한국의 수도이다.", "인구는 약 940만 명이다."],
            ),
            ("J. R. R. Tolkien wrote it", &["J. R. R. Tolkien wrote it"]),
            ("line one\nline two", &["line one", "line two"]),
        ];
        for (text, want) in cases {
            let got: Vec<&str> = sentences(text).iter().map(|&(s, e)| &text[s..e]).collect();
            assert_eq!(&got, want, "{text}");
        }
    }

    #[test]
    fn josa_stripping_maps_inflected_forms_together() {
        assert_eq!(ko_stem("서울은"), "서울");
        assert_eq!(ko_stem("서울에서"), "서울");
        assert_eq!(ko_stem("가능합니다"), "가능");
        assert_eq!(word_key("서울을"), word_key("서울의"));
        assert_ne!(word_key("서울"), word_key("부산"));
    }

    #[test]
    fn numbers_and_negations_are_marked() {
        let t = tokenize("It didn't cost 1,000 dollars, not two.", 0);
        let nums: Vec<&Tok> = t
            .toks
            .iter()
            .filter(|t| t.script == Script::Number)
            .collect();
        assert_eq!(nums.len(), 2);
        assert_eq!(Some(nums[0].key), word_key("1000"));
        assert_eq!(Some(nums[1].key), word_key("2"));
        assert_eq!(t.toks.iter().filter(|t| t.neg).count(), 2);
        let k = tokenize("방에서 흡연할 수 없습니다", 0);
        assert!(k.toks.iter().any(|t| t.neg));
    }

    #[test]
    fn finds_quotes() {
        let s = "He said \"hello world\" and 「안녕」.";
        let q: Vec<&str> = quoted(s).iter().map(|&(a, b)| &s[a..b]).collect();
        assert_eq!(q, vec!["hello world", "안녕"]);
    }
}
