//! English NAME and ADDRESS heuristics: no neural NER, only gazetteers (Faker's MIT
//! first/last name lists, built by `scripts/build_gazetteers.py`), capitalisation,
//! titles and cue phrases. What they catch and miss is written down in docs/pii.md.

use std::collections::HashSet;
use std::sync::OnceLock;

use super::classify::{finding, Classified};
use super::context::{Cue, CueFinder};
use super::rules::Family;
use super::swar;
use crate::detect::Finding;

static FIRST: &str = include_str!("data/first_names.txt");
static LAST: &str = include_str!("data/last_names.txt");

struct Gazetteer {
    first: HashSet<&'static str>,
    last: HashSet<&'static str>,
}

fn gazetteer() -> &'static Gazetteer {
    static G: OnceLock<Gazetteer> = OnceLock::new();
    G.get_or_init(|| Gazetteer {
        first: FIRST.lines().filter(|l| !l.is_empty()).collect(),
        last: LAST.lines().filter(|l| !l.is_empty()).collect(),
    })
}

fn stop(w: &str) -> bool {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| STOP.iter().copied().collect()).contains(w)
}

/// Capitalised words that are not names even when a gazetteer lists them.
const STOP: &[&str] = &[
    "a",
    "an",
    "the",
    "i",
    "i'm",
    "i've",
    "i'd",
    "my",
    "mine",
    "me",
    "we",
    "our",
    "you",
    "your",
    "he",
    "she",
    "his",
    "her",
    "it",
    "its",
    "they",
    "their",
    "this",
    "that",
    "these",
    "those",
    "what",
    "who",
    "whom",
    "why",
    "how",
    "when",
    "where",
    "which",
    "is",
    "are",
    "was",
    "were",
    "be",
    "can",
    "could",
    "would",
    "should",
    "will",
    "shall",
    "may",
    "might",
    "must",
    "do",
    "does",
    "did",
    "have",
    "has",
    "had",
    "not",
    "no",
    "yes",
    "and",
    "or",
    "but",
    "if",
    "so",
    "for",
    "of",
    "on",
    "in",
    "at",
    "to",
    "from",
    "by",
    "with",
    "as",
    "about",
    "into",
    "over",
    "after",
    "before",
    "please",
    "thanks",
    "thank",
    "hello",
    "hi",
    "dear",
    "hey",
    "ok",
    "okay",
    "mr",
    "mrs",
    "ms",
    "dr",
    "miss",
    "sir",
    "madam",
    "prof",
    "mx",
    "name",
    "phone",
    "email",
    "e-mail",
    "address",
    "website",
    "date",
    "personal",
    "info",
    "office",
    "fax",
    "mobile",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "god",
    "lord",
    "jesus",
    "christ",
    "allah",
    "buddha",
    "english",
    "french",
    "german",
    "spanish",
    "chinese",
    "american",
    "european",
    "african",
    "asian",
    "north",
    "south",
    "east",
    "west",
    "new",
    "old",
    "great",
    "big",
    "small",
    "good",
    "bad",
    "best",
    "first",
    "last",
    "next",
    "all",
    "any",
    "some",
    "every",
    "each",
    "other",
    "such",
    "here",
    "there",
    "then",
    "now",
    "today",
    "tomorrow",
    "yesterday",
    "also",
    "just",
    "only",
    "very",
    "well",
    "still",
    "even",
    "let",
    "make",
    "write",
    "tell",
    "give",
    "get",
    "find",
    "create",
    "explain",
    "describe",
    "imagine",
    "consider",
    "suppose",
    "generate",
    "provide",
    "list",
    "show",
    "help",
    "use",
    "using",
    "story",
    "character",
    "chapter",
    "part",
    "section",
    "act",
    "scene",
    "king",
    "queen",
    "prince",
    "princess",
    "president",
    "doctor",
    "professor",
    "captain",
    "general",
    "officer",
    "agent",
    "sister",
    "brother",
    "mother",
    "father",
    "mom",
    "dad",
    "uncle",
    "aunt",
    "grandma",
    "grandpa",
    "baby",
    "love",
    "hope",
    "faith",
    "joy",
    "grace",
    "charity",
    "honor",
    "justice",
    "liberty",
    "victory",
    "summer",
    "winter",
    "spring",
    "autumn",
    "fall",
    "dawn",
    "sky",
    "star",
    "sun",
    "moon",
    "rose",
    "lily",
    "ivy",
    "iris",
    "violet",
    "daisy",
    "holly",
    "jade",
    "ruby",
    "pearl",
    "amber",
    "crystal",
    "diamond",
    "gold",
    "silver",
    "golden",
    "black",
    "white",
    "green",
    "brown",
    "gray",
    "grey",
    "red",
    "blue",
    "young",
    "long",
    "short",
    "little",
    "king's",
    "saint",
    "st",
    "san",
    "santa",
    "internet",
    "google",
    "apple",
    "amazon",
    "microsoft",
    "facebook",
    "twitter",
    "youtube",
    "covid",
    "ai",
    "chatgpt",
    "gpt",
    "python",
    "java",
    "rust",
    "linux",
    "windows",
    "android",
    "wisdom",
    "discipline",
    "patience",
    "courage",
    "truth",
    "peace",
    "war",
    "world",
    "earth",
    "human",
    "people",
    "person",
    "man",
    "woman",
    "men",
    "women",
    "child",
    "children",
    "kid",
    "kids",
    "team",
    "company",
    "group",
    "bank",
    "card",
    "account",
    "number",
    "credit",
    "patient",
    "customer",
    "client",
    "user",
    "admin",
    "sure",
    "sorry",
    "wow",
    "oh",
    "dear",
    "while",
    "through",
    "although",
    "because",
    "since",
    "during",
    "upon",
    "despite",
    "unlike",
    "southern",
    "northern",
    "eastern",
    "western",
    "central",
    "america",
    "india",
    "china",
    "japan",
    "korea",
    "france",
    "germany",
    "italy",
    "spain",
    "russia",
    "canada",
    "brazil",
    "mexico",
    "egypt",
    "israel",
    "jordan",
    "georgia",
    "chad",
    "australia",
    "africa",
    "europe",
    "asia",
    "london",
    "paris",
    "rome",
    "berlin",
    "sydney",
    "tokyo",
    "seoul",
    "beijing",
    "moscow",
    "dallas",
    "houston",
    "austin",
    "phoenix",
    "denver",
    "boston",
    "chelsea",
    "venus",
    "mars",
    "jupiter",
    "saturn",
    "mercury",
    "neptune",
    "pluto",
    "roman",
    "greek",
    "empire",
    "republic",
    "kingdom",
    "house",
    "opera",
    "palace",
    "museum",
    "church",
    "temple",
    "cathedral",
    "castle",
    "bridge",
    "hotel",
    "restaurant",
    "cafe",
    "syndrome",
    "disease",
    "war",
    "revolution",
    "act",
    "law",
    "bible",
    "quran",
    "christmas",
    "easter",
    "halloween",
];

/// Words after a capitalised run that make it an organisation or a place, not a person.
const ORG_TAIL: &[&str] = &[
    "inc",
    "ltd",
    "llc",
    "corp",
    "corporation",
    "company",
    "co",
    "group",
    "technologies",
    "associates",
    "solutions",
    "partners",
    "services",
    "labs",
    "media",
    "holdings",
    "agency",
    "consulting",
    "industries",
    "enterprises",
    "international",
    "global",
    "capital",
    "bros",
    "gateway",
    "route",
    "parks",
    "coves",
    "square",
    "terrace",
    "tower",
    "building",
    "systems",
    "university",
    "college",
    "school",
    "institute",
    "bank",
    "hospital",
    "foundation",
    "association",
    "society",
    "club",
    "orchestra",
    "band",
    "street",
    "avenue",
    "road",
    "city",
    "county",
    "state",
    "river",
    "mountain",
    "lake",
    "island",
    "park",
    "airport",
    "station",
];

/// Cue words right before a name.
/// Lead words that almost always introduce a person ("named X", "says X", "call me X").
const STRONG_LEAD: &[&str] = &[
    "name is",
    "name's",
    "name:",
    "named",
    "called",
    "call me",
    "says",
    "said",
    "dear",
    "i'm",
    "i am",
    "this is",
    "signed",
    "regards",
    "sincerely",
];

/// Verbs right after a capitalised word that make it a subject ("David lives ...").
const AFTER_VERBS: &[&str] = &[
    "is", "was", "has", "had", "lives", "lived", "said", "says", "shouted", "asked", "told",
    "went", "began", "wrote", "works", "worked", "called", "wants", "needs", "will", "would",
];

const LEAD_CUES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "sir",
    "dame",
    "dear",
    "hi",
    "hello",
    "hey",
    "name is",
    "name's",
    "name:",
    "named",
    "called",
    "i'm",
    "i am",
    "this is",
    "by",
    "says",
    "said",
    "asked",
    "told",
    "with",
    "from",
    "contact",
    "cc",
    "signed",
    "regards",
    "sincerely",
    "thanks",
    "meet",
    "ask",
    "met",
    "and",
];

const TITLES: &[&str] = &["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame"];

/// SWAR test: is any byte an ASCII capital, or a lead byte 0xC3–0xC5 (Latin-1 and
/// Latin Extended-A capitals such as Å, Ö, Ž)? (Bit Twiddling Hacks' `hasbetween`.)
fn chunk_may_start_word(x: u64) -> bool {
    swar::has_between(x, 0x40, 0x5B)
        || swar::has_byte(x, 0xC3)
        || swar::has_byte(x, 0xC4)
        || swar::has_byte(x, 0xC5)
}

/// Finds person names in English (Latin-script) text.
#[derive(Debug, Clone, Copy)]
pub struct NameFinder;

#[derive(Debug, Clone, Copy)]
struct Tok {
    s: usize,
    e: usize,
    cap: bool,
    initial: bool,
}

fn is_letter_start(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next().filter(|c| c.is_alphabetic())
}

/// Reads a word (letters, apostrophes, hyphens) at `i`; `None` if no letter is there.
fn word_at(text: &str, i: usize) -> Option<Tok> {
    let first = is_letter_start(text, i)?;
    let mut e = i;
    for (k, c) in text[i..].char_indices() {
        if c.is_alphabetic() || ((c == '\'' || c == '-') && k > 0) {
            e = i + k + c.len_utf8();
        } else {
            break;
        }
    }
    while text[..e].ends_with(['\'', '-']) {
        e -= 1;
    }
    let word = &text[i..e];
    let cap = first.is_uppercase()
        && !(word.chars().count() > 1 && word.chars().all(|c| !c.is_lowercase()));
    let mut initial = word.chars().count() == 1;
    let mut end = e;
    if initial && text[e..].starts_with('.') {
        end += 1;
        initial = true;
    }
    Some(Tok {
        s: i,
        e: end,
        cap,
        initial,
    })
}

fn lower(text: &str, t: &Tok) -> String {
    let w = text[t.s..t.e].trim_end_matches('.');
    let w = w
        .strip_suffix("'s")
        .or_else(|| w.strip_suffix("\u{2019}s"))
        .unwrap_or(w);
    w.to_lowercase()
}

impl NameFinder {
    pub fn new() -> Self {
        let _ = gazetteer();
        NameFinder
    }

    /// Scans for capitalised word runs (and cue-introduced lower-case names).
    pub fn find(&self, text: &str, cues: &CueFinder, out: &mut Vec<Finding>) {
        let g = gazetteer();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            // Skip 8 bytes at a time when none can start a capitalised word.
            if let Some(chunk) = b.get(i..i + 8) {
                if !chunk_may_start_word(swar::load(chunk)) {
                    i += 8;
                    continue;
                }
            }
            let c = b[i];
            let boundary = i == 0
                || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] >= 0x80 || b[i - 1] == b'\'');
            let candidate = boundary && (c.is_ascii_uppercase() || (0xC3..=0xC5).contains(&c));
            if !candidate {
                i += 1;
                continue;
            }
            let Some(first) = word_at(text, i) else {
                i += 1;
                continue;
            };
            if !first.cap {
                i = first.e.max(i + 1);
                continue;
            }
            // Collect a run of capitalised words (single spaces; initials allowed).
            let mut run = vec![first];
            let mut j = first.e;
            while run.len() < 4 {
                let sep_ok = text[j..].starts_with(' ') && !text[j + 1..].starts_with(' ');
                if !sep_ok {
                    break;
                }
                match word_at(text, j + 1) {
                    Some(t) if t.cap => {
                        run.push(t);
                        j = t.e;
                    }
                    _ => break,
                }
            }
            let next = run.last().map_or(i + 1, |t| t.e);
            // Fast path: a lone capitalised stop word ("The", "Please") is the common case.
            let lone_stop = run.len() == 1 && {
                let w = &text[run[0].s..run[0].e];
                let mut buf = [0u8; 16];
                w.len() <= 16 && w.is_ascii() && {
                    buf[..w.len()].copy_from_slice(w.as_bytes());
                    buf[..w.len()].make_ascii_lowercase();
                    std::str::from_utf8(&buf[..w.len()]).is_ok_and(stop)
                }
            };
            if lone_stop {
                i = next.max(i + 1);
                continue;
            }
            if let Some(f) = self.score_run(text, cues, g, &run) {
                out.push(f);
            }
            i = next.max(i + 1);
            while i < b.len() && !text.is_char_boundary(i) {
                i += 1;
            }
        }
    }

    fn score_run(
        &self,
        text: &str,
        cues: &CueFinder,
        g: &Gazetteer,
        run: &[Tok],
    ) -> Option<Finding> {
        let words: Vec<String> = run.iter().map(|t| lower(text, t)).collect();
        // Drop leading stop words and titles ("Dear John", "Mr. Smith").
        let mut a = 0;
        let mut titled = false;
        while a < run.len() && (stop(&words[a]) || TITLES.contains(&words[a].as_str())) {
            titled |= TITLES.contains(&words[a].as_str());
            a += 1;
        }
        let mut z = run.len();
        while z > a && stop(&words[z - 1]) {
            z -= 1;
        }
        if a >= z {
            return None;
        }
        let toks = &run[a..z];
        let ws = &words[a..z];
        // Organisation, street or place words inside the run ("Loveland Technologies",
        // "Gordon Terrace", "Rua Cyro Franco").
        let street = regex_street_words();
        if ws
            .iter()
            .any(|w| ORG_TAIL.contains(&w.as_str()) || street.contains(w.as_str()))
        {
            return None;
        }
        // An organisation or place word right after the run.
        let after = &text[toks[toks.len() - 1].e..];
        let next_word = after
            .trim_start()
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("")
            .to_lowercase();
        if ORG_TAIL.contains(&next_word.as_str()) {
            return None;
        }
        let is_first = |w: &str| g.first.contains(w);
        let is_last = |w: &str| g.last.contains(w);
        let (s, e) = (toks[0].s, toks[toks.len() - 1].e);
        let before = tail(&text[..s], 32);
        let lead = lead_cue(before);
        let title_before = titled
            || TITLES
                .iter()
                .any(|t| ends_with_word(before.trim_end().trim_end_matches('.'), t));
        let known = ws.iter().filter(|w| is_first(w) || is_last(w)).count();
        let first_known = is_first(&ws[0]) || toks[0].initial;
        let last_known = is_last(&ws[ws.len() - 1]) || is_first(&ws[ws.len() - 1]);
        let mut score: f32 = if toks.len() >= 2 {
            match (first_known, last_known) {
                (true, true) => 0.8,
                (true, false) => 0.6,
                (false, true) => 0.5,
                (false, false) => 0.25,
            }
        } else if is_first(&ws[0]) {
            0.5
        } else if known == 1 {
            0.3
        } else {
            0.1
        };
        if toks.iter().all(|t| t.initial) {
            return None;
        }
        if title_before || strong_lead(before) {
            score += 0.4;
        } else if lead {
            score += 0.25;
        }
        // Cheap exit before the cue-window scan: even every bonus cannot lift it.
        if score + 0.35 < 0.5 {
            return None;
        }
        let window = cues.cues(text, s, e, 24, 0);
        if window & Cue::Name.bit() != 0 {
            score += 0.2;
        }
        // A capitalised word at the start of a sentence is weak evidence.
        let sentence_start = before.trim_end().is_empty()
            || before.trim_end().ends_with(['.', '!', '?', ':', '\n', '"']);
        let subject = verb_after(&text[e..]);
        if sentence_start && toks.len() == 1 && !title_before && !(subject && is_first(&ws[0])) {
            score -= if is_first(&ws[0]) { 0.1 } else { 0.2 };
        }
        // A speaker label ("Nicole: ...") or a possessive ("Meza's song").
        let tail = &text[e..];
        if tail.starts_with(':') || tail.starts_with("'s") || tail.starts_with(',') {
            score += 0.15;
        }
        // Places: "from Denmark", "in Paris".
        let prev = before
            .trim_end()
            .rsplit(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("")
            .to_lowercase();
        if matches!(
            prev.as_str(),
            "in" | "at" | "to" | "near" | "of" | "visit" | "visited" | "the"
        ) && !title_before
        {
            score -= 0.25;
        }
        (score >= 0.3).then(|| finding("NAME", score.min(0.95), s, e))
    }
}

/// "my name is lena andersson", "name: hyuuma t. maida": names after a `name is` /
/// `name:` cue (the regex consumed the cue), lower-case allowed, 1–3 words, at least one
/// of them in the gazetteer or an initial.
pub fn name_after_cue(text: &str, at: usize) -> Option<(usize, usize)> {
    let g = gazetteer();
    let mut toks = Vec::new();
    let mut j = at;
    while toks.len() < 3 {
        match word_at(text, j) {
            Some(t) => {
                let w = lower(text, &t);
                if stop(&w) {
                    break;
                }
                toks.push((
                    t,
                    g.first.contains(w.as_str()) || g.last.contains(w.as_str()) || t.initial,
                ));
                j = t.e;
                if !text[j..].starts_with(' ') {
                    break;
                }
                j += 1;
            }
            None => break,
        }
    }
    if !toks.iter().any(|(_, k)| *k) {
        return None;
    }
    Some((toks[0].0.s, toks[toks.len() - 1].0.e))
}

/// The last `n` bytes of `s` (widened to a char boundary).
fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[i..]
}

/// `s` ends with the word `w` (ASCII case-insensitive) at a word boundary. No allocation.
fn ends_with_word(s: &str, w: &str) -> bool {
    let (sb, wb) = (s.as_bytes(), w.as_bytes());
    if sb.len() < wb.len() {
        return false;
    }
    let st = sb.len() - wb.len();
    sb[st..].eq_ignore_ascii_case(wb)
        && (st == 0 || !(sb[st - 1].is_ascii_alphanumeric() || sb[st - 1] >= 0x80))
}

fn lead_cue(before: &str) -> bool {
    let t = tail(before, 20).trim_end().trim_end_matches([',', '.']);
    LEAD_CUES.iter().any(|c| ends_with_word(t, c))
}

fn strong_lead(before: &str) -> bool {
    let t = tail(before, 20).trim_end().trim_end_matches(',');
    STRONG_LEAD.iter().any(|c| ends_with_word(t, c))
}

fn verb_after(after: &str) -> bool {
    let w = after.strip_prefix(' ').unwrap_or("");
    let end = w
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(w.len());
    AFTER_VERBS.contains(&&w[..end])
}

/// Whether the number at `s..e` is part of an address: after "Apt."/"Suite"/"Box", or
/// followed on its line by a capitalised word and a house number or a street word.
pub fn looks_like_address_number(text: &str, s: usize, e: usize) -> bool {
    let before = text[..s].trim_end();
    if [
        "apt", "apt.", "suite", "box", "unit", "ste", "ste.", "no", "no.",
    ]
    .iter()
    .any(|w| ends_with_word(before, w))
    {
        return true;
    }
    // The street words that follow a house number come within a few words; looking no
    // further than `LOOKAHEAD` bytes keeps the decision local (streams hold that much).
    let mut end = (e + super::context::LOOKAHEAD).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let line = text[e..end].split('\n').next().unwrap_or("");
    let mut words = line.split(' ').filter(|w| !w.is_empty()).take(5);
    let Some(w1) = words.next() else { return false };
    if !w1.chars().next().is_some_and(char::is_uppercase) {
        return false;
    }
    let street = regex_street_words();
    let mut prev_cap = true;
    for w in std::iter::once(w1).chain(words) {
        let lw = w.trim_end_matches([',', '.']).to_ascii_lowercase();
        if street.contains(&lw.as_str()) {
            return true;
        }
        if prev_cap && w.bytes().all(|c| c.is_ascii_digit()) {
            return true;
        }
        prev_cap = w.chars().next().is_some_and(char::is_uppercase);
    }
    false
}

fn regex_street_words() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| {
        super::rules::STREET_WORDS
            .split('|')
            .filter(|w| w.len() > 1)
            .collect()
    })
}

/// Delimiter-separated continuation of an address: units, cities, state codes, zips.
fn extend_address(text: &str, mut end: usize) -> usize {
    let mut lines = 0;
    for _ in 0..6 {
        let rest = &text[end..];
        let sep_len = rest.len()
            - rest
                .trim_start_matches([',', ' ', '\t', '\n', '\r', '\\', '>'])
                .len();
        let sep = &rest[..sep_len];
        // One blank line inside an address block is fine ("Riisa\n\n Estonia 62488").
        if sep.matches('\n').count() > 2 || sep.contains("\\,") {
            break;
        }
        // "... Spring. However": a full stop followed by a space ends the sentence.
        if text[..end].ends_with('.') && !sep.contains([',', '\n']) {
            break;
        }
        if sep.contains('\n') {
            lines += 1;
            if lines > 4 {
                break;
            }
        }
        let seg_start = end + sep_len;
        let Some(seg_end) = address_segment(text, seg_start) else {
            break;
        };
        end = seg_end;
    }
    end
}

/// One address segment at `i`: a unit ("Apt. 12"), a zip, a state code + zip, or a short
/// capitalised place name ending at a delimiter.
fn address_segment(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let lower: String = rest.chars().take(12).collect::<String>().to_lowercase();
    for u in [
        "apt",
        "apartment",
        "suite",
        "ste",
        "unit",
        "floor",
        "fl",
        "room",
        "box",
        "#",
        "flat",
        "no",
    ] {
        if lower.starts_with(u) {
            let mut k = u.len();
            let b = rest.as_bytes();
            while k < b.len() && matches!(b[k], b'.' | b' ' | b'#') {
                k += 1;
            }
            let nd = rest[k..]
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric())
                .count();
            if nd > 0 && rest[k..k + nd].bytes().any(|c| c.is_ascii_digit()) {
                return Some(i + k + nd);
            }
        }
    }
    // Zip / postal code.
    let nd = rest
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'-')
        .count();
    if (3..=10).contains(&nd) && rest[..nd].bytes().filter(u8::is_ascii_digit).count() >= 3 {
        let after = rest[nd..].chars().next();
        let more_digits = rest[nd..]
            .trim_start_matches(' ')
            .starts_with(|c: char| c.is_ascii_digit());
        if after.is_none_or(|c| !c.is_alphanumeric()) && !more_digits {
            return Some(i + nd);
        }
    }
    // Place name: up to 4 words, each capitalised or upper-case, optional trailing zip.
    let mut k = 0;
    let mut words = 0;
    let mut zip = false;
    while let Some(t) = word_at(text, i + k) {
        let w = &text[t.s..t.e];
        let upper_first = w.chars().next().is_some_and(char::is_uppercase);
        if !upper_first || with_lower(w, stop) {
            break;
        }
        words += 1;
        k = t.e - i;
        if words == 4 || !rest[k..].starts_with(' ') {
            break;
        }
        let nxt = &rest[k + 1..];
        if nxt.starts_with(|c: char| c.is_ascii_digit()) {
            let nd = nxt
                .bytes()
                .take_while(|c| c.is_ascii_digit() || *c == b'-')
                .count();
            if (3..=10).contains(&nd) {
                k += 1 + nd;
                zip = true;
            }
            break;
        }
        if !nxt.starts_with(|c: char| c.is_uppercase()) {
            break;
        }
        k += 1;
    }
    if words == 0 {
        return None;
    }
    // The segment must end at a delimiter, not run into a sentence.
    let tail = &rest[k..];
    let ok = zip
        || tail.is_empty()
        || tail.starts_with([',', '\n', '\r', '.', ';', '\\'])
        || tail.starts_with(" for ")
        || tail.starts_with(" in ");
    ok.then_some(i + k)
}

/// Street-name endings in several languages ("Søndergade", "Kiannonkatu", "Mellemvej").
const STREET_ENDINGS: &[&str] = &[
    "strasse", "straße", "gasse", "gade", "vej", "vei", "veien", "vegen", "katu", "tie", "kuja",
    "gata", "gatan", "weg", "straat", "laan", "steig", "allee", "utca", "ulica", "polku", "tér",
];

fn street_like(w: &str) -> bool {
    with_lower(w.trim_end_matches(['.', ',']), |l| {
        regex_street_words().contains(l)
            || STREET_FIRST.contains(&l)
            || STREET_ENDINGS
                .iter()
                .any(|e| l.len() > e.len() + 2 && l.ends_with(e))
    })
}

/// Calls `f` with `w` in lower case: on the stack for short ASCII words (every number in
/// prose looks at the words around it, so this runs per word), allocated otherwise.
fn with_lower<R>(w: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 32];
    if let Some(b) = buf.get_mut(..w.len()).filter(|_| w.is_ascii()) {
        b.copy_from_slice(w.as_bytes());
        b.make_ascii_lowercase();
        if let Ok(l) = std::str::from_utf8(b) {
            return f(l);
        }
    }
    f(&w.to_lowercase())
}

/// Words that open a street name ("Rua Igreja 25", "Via Franscini 71").
const STREET_FIRST: &[&str] = &[
    "rue",
    "via",
    "viale",
    "calle",
    "avenida",
    "rua",
    "ulica",
    "ul",
    "strada",
    "piazza",
    "carrer",
    "camino",
    "rambla",
    "avenue",
    "boulevard",
    "plaza",
    "praça",
    "largo",
    "travessa",
];

/// Words (with their spans) on the same line after byte `e`, at most `n`.
fn words_after(text: &str, e: usize, n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = e;
    let b = text.as_bytes();
    while out.len() < n && i < b.len() && b[i] == b' ' {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let st = i;
        while i < b.len() && !matches!(b[i], b' ' | b'\n' | b'\r' | b',' | b';' | b'\t') {
            i += 1;
        }
        if i == st {
            break;
        }
        out.push((st, i));
    }
    out
}

/// Words before byte `s` on the same line, nearest first, at most `n`.
fn words_before(text: &str, s: usize, n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = s;
    while out.len() < n && i > 0 && b[i - 1] == b' ' {
        while i > 0 && b[i - 1] == b' ' {
            i -= 1;
        }
        let en = i;
        while i > 0 && !matches!(b[i - 1], b' ' | b'\n' | b'\r' | b',' | b';' | b'\t' | b':') {
            i -= 1;
        }
        if i == en {
            break;
        }
        out.push((i, en));
    }
    out
}

/// Capitalised, or a lower-case particle inside a street name ("Paseo del Atlántico").
fn capitalised(w: &str) -> bool {
    w.chars().next().is_some_and(char::is_uppercase)
        || matches!(
            w,
            "de" | "del"
                | "du"
                | "des"
                | "la"
                | "le"
                | "di"
                | "da"
                | "do"
                | "dos"
                | "das"
                | "van"
                | "von"
                | "der"
                | "den"
                | "y"
        )
}

/// A house number or postcode that opens or closes a street address:
/// "1600 Pennsylvania Avenue", "4844 Søndergade 52", "Villacher Strasse 89".
pub fn address_around_number(
    text: &str,
    cues: &CueFinder,
    s: usize,
    e: usize,
) -> Option<Classified> {
    // Whether an address cue is near, looked up only when a decision needs it: most
    // numbers in prose are followed by a stop word and settled without it.
    let cue_near = std::cell::OnceCell::new();
    let cue = || *cue_near.get_or_init(|| cues.cues(text, s, e, 48, 0) & Cue::Address.bit() != 0);
    // Forward: words then a street word, or a capitalised street name then a number.
    let after = words_after(text, e, 5);
    let mut end = None;
    for (k, &(ws, we)) in after.iter().enumerate() {
        let w = &text[ws..we];
        if with_lower(w, stop) && !street_like(w) {
            break;
        }
        let all_cap = after[..k]
            .iter()
            .all(|&(a, b)| capitalised(&text[a..b]) || street_like(&text[a..b]));
        if k > 0
            && street_like(w)
            && all_cap
            && (capitalised(&text[after[0].0..after[0].1]) || cue())
        {
            end = Some(we);
            break;
        }
        if k > 0 && w.bytes().take_while(u8::is_ascii_digit).count() >= 1 && w.len() <= 6 && all_cap
        {
            let tail = text[we..].trim_start_matches(' ');
            let delim = tail.is_empty()
                || tail.starts_with([',', '\n', '\r', ';', '\\'])
                || ["apt", "suite", "unit", "ste", "box"]
                    .iter()
                    .any(|u| tail.to_ascii_lowercase().starts_with(u));
            if delim && (capitalised(&text[after[0].0..after[0].1]) || cue()) {
                end = Some(we);
            }
            break;
        }
        if !(capitalised(w) || street_like(w) || cue()) {
            break;
        }
        if k == 0 && street_like(w) && after.len() == 1 {
            end = Some(we);
        }
    }
    let mut start = s;
    if end.is_none() {
        // Backward: "Villacher Strasse 89", "Rua Igreja 25".
        let before = words_before(text, s, 4);
        let mut found = false;
        for &(ws, we) in &before {
            let w = &text[ws..we];
            if !(capitalised(w) || street_like(w)) {
                break;
            }
            if street_like(w) {
                found = true;
                start = ws;
                // Keep going left while capitalised: "Rua Cyro Franco".
            } else if found {
                start = ws;
            }
        }
        if !found {
            return None;
        }
        let nd = text[e..]
            .bytes()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        end = Some(e + nd.min(1));
    }
    let mut end = extend_address(text, end?);
    let b = text.as_bytes();
    while end > start && matches!(b[end - 1], b' ' | b',' | b'\n') {
        end -= 1;
    }
    let score = if cue() { 0.85 } else { 0.75 };
    Some(Classified {
        findings: vec![finding("ADDRESS", score, start, end)],
        resume: end.max(e),
    })
}

/// Classifies English address candidates proposed by the regex pass.
pub fn address_candidate(text: &str, f: Family, s: usize, e: usize) -> Option<Classified> {
    let (start, mut end, score) = match f {
        Family::EnMilitary | Family::EnPoBox => (s, e, 0.8),
        Family::EnAddrCue => {
            // The address follows the cue: the first segment must hold a number within
            // a short span and end at a delimiter.
            let rest = &text[e..];
            let line_end = rest
                .find(['\n', '?', '!', ';'])
                .unwrap_or(rest.len())
                .min(90);
            let mut seg = &rest[..crate::detect::pii::classify::floor(rest, line_end)];
            for stop in [
                " for ", " in case", ". ", " to ", " and ", " but ", " blocked",
            ] {
                if let Some(p) = seg.find(stop) {
                    seg = &seg[..p];
                }
            }
            let seg = seg.trim_end_matches([',', ' ', '.']);
            if seg.is_empty() || !seg.bytes().take(40).any(|c| c.is_ascii_digit()) {
                return None;
            }
            // "address 41.173.96.26" and e-mails are other entities.
            if seg.contains('@') || seg.bytes().filter(|&c| c == b'.').count() >= 3 {
                return None;
            }
            let seg = seg.split(',').next().unwrap_or(seg).trim_end();
            (e, e + seg.len(), 0.75)
        }
        _ => return None,
    };
    end = extend_address(text, end);
    let b = text.as_bytes();
    while end > start && matches!(b[end - 1], b' ' | b',' | b'\n') {
        end -= 1;
    }
    Some(Classified {
        findings: vec![finding("ADDRESS", score, start, end)],
        resume: end,
    })
}

#[cfg(test)]
mod swar_tests {
    use super::{chunk_may_start_word, with_lower};

    #[test]
    fn lower_case_on_the_stack_is_to_lowercase() {
        for w in [
            "Avenue",
            "STRASSE",
            "straße",
            "Søndergade",
            "",
            "x".repeat(40).as_str(),
            "İ",
        ] {
            assert_eq!(with_lower(w, str::to_string), w.to_lowercase(), "{w:?}");
        }
    }

    #[test]
    fn chunk_test_matches_bytewise_rule() {
        let samples: [&[u8; 8]; 6] = [
            b"abcdefgh",
            b"abcDefgh",
            b"12345678",
            b"zzzzzzzZ",
            b"@[`{AZaz",
            b"\xEA\xB0\x80\xEA\xB0\x80ab",
        ];
        for s in samples {
            let want = s
                .iter()
                .any(|c| c.is_ascii_uppercase() || (0xC3..=0xC5).contains(c));
            assert_eq!(chunk_may_start_word(u64::from_le_bytes(*s)), want, "{s:?}");
        }
        let latin = "xxÅxxxx".as_bytes();
        let mut a = [0u8; 8];
        a.copy_from_slice(&latin[..8]);
        assert!(chunk_may_start_word(u64::from_le_bytes(a)));
    }
}
