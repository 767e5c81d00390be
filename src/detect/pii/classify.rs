//! Per-family classification of regex candidates: validators, cue words, scores.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::context::{Cue, CueFinder};
use super::rules::Family;
use super::validators as v;
use super::{korean, names};
use crate::detect::Finding;

/// What a classifier needs besides the span.
pub struct Cx<'a> {
    pub text: &'a str,
    pub cues: &'a CueFinder,
    /// Whether `ADDRESS` is enabled: a number no other rule claims is then looked at as
    /// a house number or postcode (the most expensive question about prose numbers, and
    /// one whose answer would be dropped otherwise).
    pub addresses: bool,
}

impl Cx<'_> {
    fn cues(&self, s: usize, e: usize) -> u64 {
        self.cues
            .cues(self.text, s, e, 48, super::context::CUE_AFTER)
    }
}

/// The fewest digits a number needs to be any identifier or phone number. A shorter run
/// of digits alone (a year, a count) is never reported unless `ADDRESS` is enabled (a
/// house number); the streaming stage relies on this to release it at once
/// ([`inert_number`]).
pub const MIN_NUMBER_DIGITS: usize = 5;

/// Whether `span`, the longest candidate match from its start, can never be reported
/// whatever text follows it: only the number family matches a run of ASCII digits alone,
/// and `digits` drops one shorter than [`MIN_NUMBER_DIGITS`] before it looks at any
/// context; with `addresses` it may still be a house number.
pub fn inert_number(span: &[u8], addresses: bool) -> bool {
    !addresses && span.len() < MIN_NUMBER_DIGITS && span.iter().all(u8::is_ascii_digit)
}

/// A classified candidate: zero or more findings and where to resume scanning.
pub struct Classified {
    pub findings: Vec<Finding>,
    pub resume: usize,
}

pub fn finding(label: &str, score: f32, start: usize, end: usize) -> Finding {
    Finding {
        kind: "pii",
        label: label.to_string(),
        score: score.clamp(0.0, 1.0),
        start,
        end,
    }
}

fn one(label: &str, score: f32, s: usize, e: usize) -> Option<Classified> {
    Some(Classified {
        findings: vec![finding(label, score, s, e)],
        resume: e,
    })
}

fn none_at(e: usize) -> Option<Classified> {
    Some(Classified {
        findings: Vec::new(),
        resume: e,
    })
}

fn has(mask: u64, c: Cue) -> bool {
    mask & c.bit() != 0
}

/// Classifies the candidate `text[s..e]` proposed by a pattern of family `f`.
/// `None` means "not this family": the scanner then tries the other patterns here.
pub fn classify(f: Family, cx: &Cx, s: usize, e: usize) -> Option<Classified> {
    let t = &cx.text[s..e];
    match f {
        Family::Email => {
            let t2 = t.trim_end_matches(['.', '-']);
            one("EMAIL", 0.95, s, s + t2.len())
        }
        Family::Url => {
            let mut t2 = t.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'']);
            while t2.ends_with(')') && t2.matches('(').count() < t2.matches(')').count() {
                t2 = &t2[..t2.len() - 1];
            }
            while t2.ends_with(']') && !t2.contains('[') {
                t2 = &t2[..t2.len() - 1];
            }
            (t2.len() > 8)
                .then(|| one("URL", 0.9, s, s + t2.len()))
                .flatten()
        }
        Family::Ipv4 => {
            let b = cx.text.as_bytes();
            // "1.2.3.4.5" is a version or an OID, not an address.
            if e + 1 < b.len() && b[e] == b'.' && b[e + 1].is_ascii_digit() {
                return None;
            }
            t.parse::<Ipv4Addr>().ok()?;
            let prefixed_v = s > 0 && matches!(b[s - 1], b'v' | b'V');
            let cues = cx.cues.cues(cx.text, s, e, 24, 0);
            let score = if prefixed_v || has(cues, Cue::Version) {
                0.2
            } else {
                0.9
            };
            one("IP_ADDRESS", score, s, e)
        }
        Family::Mac => {
            let seps: Vec<u8> = t.bytes().filter(|c| !c.is_ascii_hexdigit()).collect();
            seps.windows(2)
                .all(|w| w[0] == w[1])
                .then(|| one("MAC_ADDRESS", 0.9, s, e))
                .flatten()
        }
        Family::Ipv6 => {
            if t.bytes().filter(|&c| c == b':').count() < 2 {
                return None;
            }
            t.parse::<Ipv6Addr>().ok()?;
            // Clock times such as 10:30:45 are not valid IPv6 (no "::", too few groups).
            one("IP_ADDRESS", 0.9, s, e)
        }
        Family::Iban => iban(cx, s, e),
        Family::Nino => {
            let p = &t[..2];
            if matches!(p, "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ") {
                return None;
            }
            let score = if has(cx.cues(s, e), Cue::Nino) {
                0.9
            } else {
                0.6
            };
            one("UK_NATIONAL_INSURANCE_NUMBER", score, s, e)
        }
        Family::Vin => {
            let b = t.as_bytes();
            let nd = b.iter().filter(|c| c.is_ascii_digit()).count();
            if nd == 0 || nd == b.len() {
                return None;
            }
            let cue = has(cx.cues(s, e), Cue::Vin);
            let score = match (v::vin(t), cue) {
                (true, true) => 0.95,
                (true, false) => 0.85,
                // Outside North America the 9th character is not a check digit.
                (false, true) => 0.6,
                (false, false) => 0.25,
            };
            one("VEHICLE_IDENTIFICATION_NUMBER", score, s, e)
        }
        Family::Swift => {
            // The pattern includes its cue word ("SWIFT: DEUTDEFF"); the code is the tail.
            let code_len = t
                .bytes()
                .rev()
                .take_while(u8::is_ascii_alphanumeric)
                .count();
            let cs = e - code_len;
            if !(8..=11).contains(&code_len) {
                return None;
            }
            let cc = &cx.text[cs + 4..cs + 6];
            if v::iban_length(cc).is_none() && !SWIFT_EXTRA.contains(&cc) {
                return None;
            }
            one("SWIFT_CODE", 0.9, cs, e)
        }
        Family::AlnumId => alnum_id(cx, s, e),
        Family::KrPlate => {
            let ch = t.chars().find(|c| !c.is_ascii_digit() && *c != ' ')?;
            if !KR_PLATE_LETTERS.contains(ch) {
                return None;
            }
            let score = if has(cx.cues(s, e), Cue::Plate) {
                0.9
            } else {
                0.6
            };
            one("LICENSE_PLATE", score, s, e)
        }
        Family::Cvv => {
            trailing_digits(t, s).and_then(|(a, b)| one("CREDIT_DEBIT_CARD_CVV", 0.85, a, b))
        }
        Family::Pin => trailing_digits(t, s).and_then(|(a, b)| one("PIN", 0.8, a, b)),
        Family::Expiry => {
            // Span from the first digit of the date to the end.
            let off = t.bytes().position(|c| c.is_ascii_digit())?;
            one("CREDIT_DEBIT_CARD_EXPIRY", 0.85, s + off, e)
        }
        Family::Password => value_after(cx.text, e)
            .and_then(|(a, b, strong)| one("PASSWORD", if strong { 0.85 } else { 0.45 }, a, b)),
        Family::Username => value_after(cx.text, e)
            .and_then(|(a, b, strong)| one("USERNAME", if strong { 0.8 } else { 0.4 }, a, b)),
        Family::Age | Family::KrAge => {
            let off = t.bytes().position(|c| c.is_ascii_digit())?;
            let len = t[off..].bytes().take_while(u8::is_ascii_digit).count();
            let n: u32 = t[off..off + len].parse().ok()?;
            if n == 0 || n > 120 {
                return none_at(e);
            }
            let score = if f == Family::Age { 0.85 } else { 0.7 };
            one("AGE", score, s + off, s + off + len)
        }
        Family::EnMilitary | Family::EnPoBox | Family::EnAddrCue => {
            names::address_candidate(cx.text, f, s, e)
        }
        Family::Digits => {
            // A number no other rule claims may be a house number or a postcode.
            let got = digits(cx, s, e);
            if !cx.addresses || got.as_ref().is_some_and(|c| !c.findings.is_empty()) {
                return got;
            }
            names::address_around_number(cx.text, cx.cues, s, e).or(got)
        }
        Family::EnNameCue => {
            names::name_after_cue(cx.text, e).and_then(|(a, b)| one("NAME", 0.75, a, b))
        }
        Family::KrNameCue => korean::name_before_cue(cx.text, s).map(|(a, b, sc)| Classified {
            findings: vec![finding("KR_NAME", sc, a, b)],
            resume: e,
        }),
        Family::KrNameLead => {
            korean::name_after_lead(cx.text, e).and_then(|(a, b)| one("KR_NAME", 0.9, a, b))
        }
        Family::KrRoad | Family::KrJibun => {
            korean::address(cx.text, cx.cues, f == Family::KrRoad, s, e).map(|(a, b, sc)| {
                Classified {
                    findings: vec![finding("KR_ADDRESS", sc, a, b)],
                    resume: b.max(e),
                }
            })
        }
    }
}

const SWIFT_EXTRA: &[&str] = &[
    "US", "CA", "CN", "JP", "KR", "IN", "AU", "NZ", "SG", "HK", "TW", "MX", "AR", "CL", "CO", "PE",
    "ZA", "NG", "KE", "MA", "TH", "MY", "ID", "PH", "VN", "RU",
];

/// Hangul letters used on Korean licence plates.
const KR_PLATE_LETTERS: &str =
    "가나다라마거너더러머버서어저고노도로모보소오조구누두루무부수우주아바사자하허호배육해공국합";

fn trailing_digits(t: &str, s: usize) -> Option<(usize, usize)> {
    let end = t.len();
    let len = t.bytes().rev().take_while(u8::is_ascii_digit).count();
    (len > 0).then_some((s + end - len, s + end))
}

/// The token after a `password:`-like cue. `strong` when it looks like a credential
/// (has a digit, a symbol or mixed case) rather than an ordinary word ("is required").
fn value_after(text: &str, at: usize) -> Option<(usize, usize, bool)> {
    let b = text.as_bytes();
    let mut s = at;
    while s < b.len() && matches!(b[s], b'"' | b'\'' | b'`') {
        s += 1;
    }
    let mut e = s;
    while e < b.len() && b[e].is_ascii_graphic() {
        e += 1;
    }
    while e > s + 1
        && matches!(
            b[e - 1],
            b'.' | b',' | b';' | b')' | b'"' | b'\'' | b'`' | b'!' | b'?'
        )
    {
        e -= 1;
    }
    if e < s + 3 {
        return None;
    }
    let tok = &text[s..e];
    let lower = tok.bytes().any(|c| c.is_ascii_lowercase());
    let upper = tok.bytes().any(|c| c.is_ascii_uppercase());
    let strong = tok
        .bytes()
        .any(|c| c.is_ascii_digit() || c.is_ascii_punctuation())
        || (lower && upper);
    Some((s, e, strong))
}

fn iban(cx: &Cx, s: usize, e: usize) -> Option<Classified> {
    let t = &cx.text[s..e];
    let cc = t[..2].to_ascii_uppercase();
    let compact: Vec<(usize, u8)> = t
        .bytes()
        .enumerate()
        .filter(|(_, c)| c.is_ascii_alphanumeric())
        .collect();
    let take = match v::iban_length(&cc) {
        Some(l) if compact.len() >= l => l,
        Some(_) => return None,
        None => compact.len(),
    };
    let end = s + compact[take - 1].0 + 1;
    // The candidate must not stop inside a longer alphanumeric run.
    let next = cx.text.as_bytes().get(end).copied().unwrap_or(b' ');
    if next.is_ascii_alphanumeric() {
        return None;
    }
    let ok = v::iban_mod97(&cx.text[s..end]);
    let score = match (ok, v::iban_length(&cc).is_some()) {
        (true, true) => 0.95,
        (true, false) => 0.8,
        (false, _) if has(cx.cues(s, end), Cue::Iban) => 0.4,
        (false, _) => 0.2,
    };
    Some(Classified {
        findings: vec![finding("INTERNATIONAL_BANK_ACCOUNT_NUMBER", score, s, end)],
        resume: end,
    })
}

fn alnum_id(cx: &Cx, s: usize, e: usize) -> Option<Classified> {
    let t = &cx.text[s..e];
    let b = t.as_bytes();
    let cues = cx.cues(s, e);
    let letters = b.iter().take_while(|c| c.is_ascii_uppercase()).count();
    let kr_old = letters == 1 && b.len() == 9 && b"MSRODG".contains(&b[0]);
    let kr_new = b.len() == 9 && b[4].is_ascii_uppercase() && b"MSRODG".contains(&b[0]);
    if has(cues, Cue::KrPassport) && (kr_old || kr_new) {
        return one("KR_PASSPORT", 0.9, s, e);
    }
    if has(cues, Cue::Passport) {
        if kr_new {
            return one("KR_PASSPORT", 0.85, s, e);
        }
        if letters <= 1 && (8..=9).contains(&b.len()) {
            return one("US_PASSPORT_NUMBER", 0.85, s, e);
        }
    }
    if has(cues, Cue::Driver) {
        return one("DRIVER_ID", 0.8, s, e);
    }
    if has(cues, Cue::Plate) && b.len() <= 8 {
        return one("LICENSE_PLATE", 0.7, s, e);
    }
    if kr_new {
        return one("KR_PASSPORT", 0.4, s, e);
    }
    None
}

/// Groups of digits in a numeric candidate and what separated them.
struct Shape {
    groups: Vec<usize>,
    seps: Vec<u8>,
    plus: bool,
    paren: bool,
}

fn shape(t: &str) -> Shape {
    let mut groups = Vec::new();
    let mut seps = Vec::new();
    let mut run = 0;
    for c in t.bytes() {
        if c.is_ascii_digit() {
            run += 1;
        } else {
            if run > 0 {
                groups.push(run);
                run = 0;
            }
            if matches!(c, b' ' | b'-' | b'.') {
                seps.push(c);
            }
        }
    }
    if run > 0 {
        groups.push(run);
    }
    Shape {
        groups,
        seps,
        plus: t.starts_with('+'),
        paren: t.contains('('),
    }
}

fn is_date(d: &[u8], g: &[usize]) -> bool {
    let n = |a: usize, b: usize| d[a..b].iter().fold(0u32, |x, &y| x * 10 + u32::from(y));
    if g.len() < 3 {
        return false;
    }
    let (a, b, c) = (g[0], g[1], g[2]);
    if a == 4 && b <= 2 && c <= 2 {
        let (m, dd) = (n(a, a + b), n(a + b, a + b + c));
        return (1..=12).contains(&m) && (1..=31).contains(&dd);
    }
    if a <= 2 && b <= 2 && (c == 4 || c == 2) && g.len() == 3 {
        let (x, y) = (n(0, a), n(a, a + b));
        return (1..=31).contains(&x) && (1..=31).contains(&y) && (x <= 12 || y <= 12);
    }
    false
}

/// Whether eight digits read as two years, the second after the first and within a
/// long lifetime of it: `18321910` as 1832-1910.
fn is_year_span(d: &[u8]) -> bool {
    let year = |p: &[u8]| p.iter().fold(0u32, |x, &y| x * 10 + u32::from(y));
    let [a, b] = [d.get(..4), d.get(4..)].map(|p| p.filter(|p| p.len() == 4).map(year));
    matches!((a, b), (Some(from), Some(to))
        if (1000..=2100).contains(&from) && from < to && to - from <= 130)
}

fn kr_phone_national(d: &[u8], plus: bool) -> Option<Vec<u8>> {
    if plus {
        if d.len() > 2 && d[0] == 8 && d[1] == 2 {
            let mut v = vec![0];
            v.extend_from_slice(if d[2] == 0 { &d[3..] } else { &d[2..] });
            return Some(v);
        }
        return None;
    }
    (d.first() == Some(&0)).then(|| d.to_vec())
}

fn kr_phone_ok(n: &[u8]) -> bool {
    let l = n.len();
    match n {
        [0, 1, 0 | 1 | 6 | 7 | 8 | 9, ..] => l == 10 || l == 11,
        [0, 2, ..] => l == 9 || l == 10,
        [0, 7, 0, ..] => l == 11,
        [0, 5, 0, ..] => l == 11 || l == 12,
        [0, a, b, ..] if (3..=6).contains(a) && (1..=5).contains(b) => l == 10 || l == 11,
        _ => false,
    }
}

const KR_REGIONS: &[&str] = &[
    "서울", "부산", "경기", "강원", "충북", "충남", "전북", "전남", "경북", "경남", "제주", "대구",
    "인천", "광주", "대전", "울산",
];

fn digits(cx: &Cx, s: usize, e: usize) -> Option<Classified> {
    let t = &cx.text[s..e];
    let d = v::digits(t);
    let n = d.len();
    if n < MIN_NUMBER_DIGITS {
        return None;
    }
    let sh = shape(t);
    let g = sh.groups.as_slice();
    if is_date(&d, g) {
        return none_at(e);
    }
    let cues = cx.cues(s, e);
    let c = |k: Cue| has(cues, k);
    let dash_only = sh.seps.iter().all(|&x| x == b'-');
    let plain = g.len() == 1;

    // Korean 13-digit identifiers: RRN / FRN / CRN share the 6-7 shape.
    if n == 13 && ((g == [6, 7] && dash_only) || plain) {
        if let Some(k) = v::kr_rrn(&d) {
            if k.date_ok && (k.check_ok || !plain || c(Cue::Rrn) || c(Cue::Frn)) {
                let label = match k.kind {
                    v::KrIdKind::Citizen => "KR_RRN",
                    v::KrIdKind::Foreigner => "KR_FRN",
                };
                if !k.check_ok && v::kr_crn(&d) && c(Cue::Crn) {
                    return one("KR_CRN", 0.9, s, e);
                }
                let score = match (k.check_ok, c(Cue::Rrn) || c(Cue::Frn)) {
                    (true, _) => 0.95,
                    // Issued since 2020-10: no check digit, so a cue word must vouch for it.
                    (false, true) => 0.7,
                    (false, false) => 0.4,
                };
                return one(label, score, s, e);
            }
        }
        if v::kr_crn(&d) && (!plain || c(Cue::Crn)) {
            return one("KR_CRN", if c(Cue::Crn) { 0.95 } else { 0.6 }, s, e);
        }
        if !plain {
            return none_at(e);
        }
    }
    // 사업자등록번호 3-2-5.
    if n == 10 && ((g == [3, 2, 5] && dash_only) || (plain && c(Cue::Brn))) {
        if v::kr_brn(&d) {
            return one("KR_BRN", 0.95, s, e);
        }
        if c(Cue::Brn) {
            return one("KR_BRN", 0.3, s, e);
        }
        return none_at(e);
    }
    // Driver licence 2-2-6-2 (or "서울 12-345678-90").
    if n == 12 && g == [2, 2, 6, 2] && v::kr_driver_region(&d) {
        return one("KR_DRIVER_LICENSE", 0.9, s, e);
    }
    if n == 10 && g == [2, 6, 2] {
        let before = &cx.text[floor(cx.text, s.saturating_sub(9))..s];
        if KR_REGIONS.iter().any(|r| before.contains(r)) {
            let start = s - (before.len() - before.find(|ch: char| !ch.is_ascii()).unwrap_or(0));
            return one("KR_DRIVER_LICENSE", 0.85, start, e);
        }
    }
    if n == 12
        && plain
        && c(Cue::Driver)
        && v::kr_driver_region(&d)
        && cx.text.as_bytes()[s.saturating_sub(48)..s]
            .iter()
            .any(|&b| b >= 0x80)
    {
        return one("KR_DRIVER_LICENSE", 0.8, s, e);
    }
    // Korean phone numbers.
    if let Some(nat) = kr_phone_national(&d, sh.plus) {
        // 02-123-4567, 010-1234-5678, +82 10 1234 5678: area, 3-4 digits, 4 digits.
        let area = if nat.starts_with(&[0, 2]) { 2 } else { 3 };
        let grouped = plain
            || (g.len() == 3 && (g[0] == area || sh.plus) && (3..=4).contains(&g[1]) && g[2] == 4)
            || (sh.plus && g.len() == 4 && (3..=4).contains(&g[2]) && g[3] == 4);
        // Next to a bank word only mobile numbers count as phones (accounts look alike).
        let bank_ok = !c(Cue::KrBank) || nat.starts_with(&[0, 1]);
        if kr_phone_ok(&nat) && grouped && bank_ok {
            let mut score: f32 = if c(Cue::Phone) { 0.95 } else { 0.85 };
            if c(Cue::NotPhone) {
                score -= 0.3;
            }
            return one("KR_PHONE", score, s, e);
        }
    }
    // Korean nationwide numbers 15xx-, 16xx-, 18xx-xxxx; not a span of years
    // ("(1832-1910)", a life in a biography) unless a phone word vouches for it.
    if n == 8
        && g == [4, 4]
        && matches!(d[..2], [1, 5] | [1, 6] | [1, 8])
        && dash_only
        && (c(Cue::Phone) || !is_year_span(&d))
    {
        return one("KR_PHONE", if c(Cue::Phone) { 0.9 } else { 0.6 }, s, e);
    }
    // Korean bank accounts are only recognisable next to a bank word.
    if c(Cue::KrBank) && (10..=14).contains(&n) && (g.len() >= 2 || c(Cue::Bank)) && dash_only {
        return one("KR_BANK_ACCOUNT", 0.85, s, e);
    }
    // US SSN / ITIN 3-2-4.
    let ssn_shape = (g == [3, 2, 4] && sh.seps.windows(2).all(|w| w[0] == w[1]))
        || (plain && n == 9 && (c(Cue::Ssn) || c(Cue::Itin)));
    if ssn_shape && (c(Cue::Ssn) || !c(Cue::Driver)) {
        if v::itin(&d) {
            return one(
                "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
                if c(Cue::Itin) { 0.95 } else { 0.8 },
                s,
                e,
            );
        }
        if v::ssn(&d) {
            return one(
                "US_SOCIAL_SECURITY_NUMBER",
                if c(Cue::Ssn) { 0.98 } else { 0.85 },
                s,
                e,
            );
        }
        if c(Cue::Ssn) {
            return one("US_SOCIAL_SECURITY_NUMBER", 0.3, s, e);
        }
    }
    // Payment cards: 12-19 digits, plain or in groups of four (Amex 4-6-5).
    let card_shape = plain
        || g == [4, 6, 5]
        || g == [4, 6, 4]
        || (g.len() >= 3 && g[..g.len() - 1].iter().all(|&x| x == 4) && g[g.len() - 1] <= 4);
    if (12..=19).contains(&n)
        && card_shape
        && (sh.seps.is_empty() || !sh.seps.contains(&b'.'))
        && !sh.plus
        && !sh.paren
    {
        if v::luhn(&d) {
            let issuer = v::card_issuer_ok(&d);
            let score: f32 = match (issuer, c(Cue::Card), n >= 13) {
                (true, true, _) => 1.0,
                (true, false, true) => 0.9,
                (false, true, _) => 0.8,
                (true, false, false) => 0.45,
                (false, false, _) => 0.4,
            };
            // 13-digit cards (old Visa) are rare; without a card word such a number is
            // more likely a Korean 13-digit identifier with a failed check digit.
            let score = if n == 13 && !c(Cue::Card) {
                score.min(0.45)
            } else {
                score
            };
            if score >= 0.5 || !(c(Cue::Phone) || c(Cue::Bank)) {
                return one("CREDIT_DEBIT_CARD_NUMBER", score, s, e);
            }
        } else if c(Cue::Card) && !c(Cue::Phone) {
            return one("CREDIT_DEBIT_CARD_NUMBER", 0.25, s, e);
        }
    }
    if n == 9 && (g == [3, 3, 3] || plain) && c(Cue::Sin) && v::ca_sin(&d) {
        return one("CA_SOCIAL_INSURANCE_NUMBER", 0.9, s, e);
    }
    if n == 10 && (g == [3, 3, 4] || plain) && c(Cue::Nhs) && v::nhs(&d) {
        return one("UK_NATIONAL_HEALTH_SERVICE_NUMBER", 0.9, s, e);
    }
    // UK UTR and Canadian health card numbers have no public check digit: cue-bound.
    if n == 10 && (plain || g == [5, 5]) && c(Cue::UkUtr) {
        return one("UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER", 0.85, s, e);
    }
    if n == 10 && (plain || g == [4, 3, 3]) && c(Cue::CaHealth) {
        // Ontario numbers may carry a two-letter version code ("1234-567-890-AB").
        let b = cx.text.as_bytes();
        let mut end = e;
        if b.get(e).is_some_and(|&x| x == b'-' || x == b' ')
            && b.get(e + 1..e + 3)
                .is_some_and(|v| v.iter().all(u8::is_ascii_uppercase))
            && b.get(e + 3).is_none_or(|x| !x.is_ascii_alphanumeric())
        {
            end = e + 3;
        }
        return one("CA_HEALTH_NUMBER", 0.8, s, end);
    }
    if n == 9 && plain && c(Cue::Routing) {
        let ok = v::aba_routing(&d);
        return one("US_BANK_ROUTING_NUMBER", if ok { 0.9 } else { 0.3 }, s, e);
    }
    if c(Cue::Driver) && !c(Cue::Phone) && (5..=15).contains(&n) {
        return one("DRIVER_ID", 0.8, s, e);
    }
    if c(Cue::Passport) && n == 9 && plain {
        return one("US_PASSPORT_NUMBER", 0.8, s, e);
    }
    if c(Cue::Bank) && !c(Cue::Phone) && (8..=17).contains(&n) && (plain || dash_only) {
        return one("US_BANK_ACCOUNT_NUMBER", 0.7, s, e);
    }
    phone(cx, &d, &sh, cues, s, e)
}

fn phone(cx: &Cx, d: &[u8], sh: &Shape, cues: u64, s: usize, e: usize) -> Option<Classified> {
    let n = d.len();
    let g = sh.groups.as_slice();
    if !(7..=15).contains(&n) || (!sh.plus && g.iter().any(|&x| x > 11)) {
        return none_at(e);
    }
    // Two groups: "467 3395", "99 668472" are phones; "3610-114" and "17151 2450" are a
    // postcode and a house number.
    if g.len() == 2 && !sh.plus && !sh.paren && (g[0] > 4 || g[1] < 4) {
        return none_at(e);
    }
    if names::looks_like_address_number(cx.text, s, e) {
        return None;
    }
    // In Korean text a domestic number follows the Korean rules above; anything else must
    // carry a country code or a phone cue word to count as a phone.
    let w0 = floor(cx.text, s.saturating_sub(48));
    let w1 = (e + 24).min(cx.text.len());
    let korean = cx.text.as_bytes()[w0..w1]
        .iter()
        .any(|&b| (0xEA..=0xED).contains(&b));
    if korean && !sh.plus && !has(cues, Cue::Phone) {
        return none_at(e);
    }
    // Three or more equal groups of four digits are serials or card fragments.
    if g.len() >= 3 && g.iter().all(|&x| x == 4) {
        return none_at(e);
    }
    // Lists of years ("1999 2000 2001") and long even blocks of one size are not phones,
    // nor is a span of years ("1832-1910") that no phone word vouches for.
    if g.len() >= 2
        && g.iter().all(|&x| x == 4)
        && d.chunks(4).all(|y| matches!(y[..2], [1, 9] | [2, 0]))
    {
        return none_at(e);
    }
    if g == [4, 4] && is_year_span(d) && !has(cues, Cue::Phone) {
        return none_at(e);
    }
    if sh.seps.contains(&b'.') && g.iter().any(|&x| x > 4) {
        return none_at(e);
    }
    let mut score: f32 = if sh.plus {
        0.75
    } else if sh.paren {
        0.7
    } else if g.len() >= 2 {
        0.6
    } else if (10..=11).contains(&n) {
        0.35
    } else {
        0.2
    };
    if (n == 10 || (n == 11 && d[0] == 1)) && g.len() != 2 {
        score += 0.05;
    }
    if has(cues, Cue::Phone) {
        score += 0.3;
    }
    if has(cues, Cue::NotPhone) || has(cues, Cue::Version) {
        score -= 0.35;
    }
    // A number glued to letters on the right ("555-1234abc") is something else.
    if cx
        .text
        .as_bytes()
        .get(e)
        .is_some_and(|c| c.is_ascii_alphabetic())
    {
        score -= 0.3;
    }
    if score < 0.2 {
        return none_at(e);
    }
    one("PHONE", score, s, e)
}

pub fn floor(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}
