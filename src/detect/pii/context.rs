//! Context cues: words near a candidate that raise (or lower) its score.
//!
//! One Aho-Corasick automaton over all cue words (English, ASCII case-insensitive, and
//! Korean) is run only over a small window around each candidate, never over the text.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// How many bytes after a candidate its cue words are looked for (a streamed answer
/// holds a candidate until this much text follows it).
pub const CUE_AFTER: usize = 24;

/// The furthest any PII check looks past a candidate (the street words after a house
/// number); a streamed answer holds a complete candidate until this much text follows.
pub const LOOKAHEAD: usize = 64;

/// Cue groups, used as bits in a `u64` mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Cue {
    Card,
    Cvv,
    Expiry,
    Ssn,
    Itin,
    Phone,
    NotPhone,
    Rrn,
    Frn,
    Brn,
    Crn,
    Passport,
    KrPassport,
    Driver,
    Bank,
    KrBank,
    Routing,
    Sin,
    Nhs,
    Iban,
    Swift,
    Vin,
    Plate,
    Pin,
    Age,
    Version,
    Name,
    Address,
    Nino,
    UkUtr,
    CaHealth,
}

impl Cue {
    pub const fn bit(self) -> u64 {
        1u64 << (self as u8)
    }
}

pub(super) const CUES: &[(&str, Cue)] = &[
    ("card", Cue::Card),
    ("credit", Cue::Card),
    ("debit", Cue::Card),
    ("visa", Cue::Card),
    ("mastercard", Cue::Card),
    ("amex", Cue::Card),
    ("cc", Cue::Card),
    ("카드", Cue::Card),
    ("cvv", Cue::Cvv),
    ("cvc", Cue::Cvv),
    ("cvv2", Cue::Cvv),
    ("security code", Cue::Cvv),
    ("보안코드", Cue::Cvv),
    ("cid", Cue::Cvv),
    ("exp", Cue::Expiry),
    ("expiry", Cue::Expiry),
    ("expires", Cue::Expiry),
    ("expiration", Cue::Expiry),
    ("valid thru", Cue::Expiry),
    ("유효기간", Cue::Expiry),
    ("만료", Cue::Expiry),
    ("ssn", Cue::Ssn),
    ("social security", Cue::Ssn),
    ("itin", Cue::Itin),
    ("taxpayer", Cue::Itin),
    ("phone", Cue::Phone),
    ("tel", Cue::Phone),
    ("telephone", Cue::Phone),
    ("call", Cue::Phone),
    ("mobile", Cue::Phone),
    ("cell", Cue::Phone),
    ("fax", Cue::Phone),
    ("office", Cue::Phone),
    ("contact", Cue::Phone),
    ("whatsapp", Cue::Phone),
    ("sms", Cue::Phone),
    ("text me", Cue::Phone),
    ("messages", Cue::Phone),
    ("answering", Cue::Phone),
    ("dial", Cue::Phone),
    ("reach me", Cue::Phone),
    ("전화", Cue::Phone),
    ("대표번호", Cue::Phone),
    ("연락처", Cue::Phone),
    ("휴대폰", Cue::Phone),
    ("핸드폰", Cue::Phone),
    ("휴대전화", Cue::Phone),
    ("팩스", Cue::Phone),
    ("order", Cue::NotPhone),
    ("invoice", Cue::NotPhone),
    ("tracking", Cue::NotPhone),
    ("ticket", Cue::NotPhone),
    ("ref", Cue::NotPhone),
    ("reference", Cue::NotPhone),
    ("serial", Cue::NotPhone),
    ("isbn", Cue::NotPhone),
    ("part", Cue::NotPhone),
    ("model", Cue::NotPhone),
    ("#", Cue::NotPhone),
    ("주문", Cue::NotPhone),
    ("송장", Cue::NotPhone),
    ("운송장", Cue::NotPhone),
    ("주민등록번호", Cue::Rrn),
    ("주민번호", Cue::Rrn),
    ("주민", Cue::Rrn),
    ("rrn", Cue::Rrn),
    ("resident registration", Cue::Rrn),
    ("외국인등록번호", Cue::Frn),
    ("외국인", Cue::Frn),
    ("alien registration", Cue::Frn),
    ("사업자등록번호", Cue::Brn),
    ("사업자번호", Cue::Brn),
    ("사업자", Cue::Brn),
    ("business registration", Cue::Brn),
    ("법인등록번호", Cue::Crn),
    ("법인번호", Cue::Crn),
    ("법인", Cue::Crn),
    ("corporate registration", Cue::Crn),
    ("passport", Cue::Passport),
    ("여권", Cue::KrPassport),
    ("driver", Cue::Driver),
    ("driver's", Cue::Driver),
    ("driving", Cue::Driver),
    ("licence", Cue::Driver),
    ("license", Cue::Driver),
    ("dl", Cue::Driver),
    ("운전면허", Cue::Driver),
    ("면허", Cue::Driver),
    ("account", Cue::Bank),
    ("acct", Cue::Bank),
    ("a/c", Cue::Bank),
    ("bank", Cue::Bank),
    ("계좌", Cue::KrBank),
    ("은행", Cue::KrBank),
    ("입금", Cue::KrBank),
    ("예금주", Cue::KrBank),
    ("송금", Cue::KrBank),
    ("이체", Cue::KrBank),
    ("농협", Cue::KrBank),
    ("신한", Cue::KrBank),
    ("국민", Cue::KrBank),
    ("우리", Cue::KrBank),
    ("하나", Cue::KrBank),
    ("기업", Cue::KrBank),
    ("카카오뱅크", Cue::KrBank),
    ("토스뱅크", Cue::KrBank),
    ("케이뱅크", Cue::KrBank),
    ("우체국", Cue::KrBank),
    ("새마을금고", Cue::KrBank),
    ("신협", Cue::KrBank),
    ("routing", Cue::Routing),
    ("aba", Cue::Routing),
    ("rtn", Cue::Routing),
    ("sin", Cue::Sin),
    ("social insurance", Cue::Sin),
    ("nhs", Cue::Nhs),
    ("health service", Cue::Nhs),
    ("iban", Cue::Iban),
    ("swift", Cue::Swift),
    ("bic", Cue::Swift),
    ("vin", Cue::Vin),
    ("vehicle", Cue::Vin),
    ("chassis", Cue::Vin),
    ("plate", Cue::Plate),
    ("번호판", Cue::Plate),
    ("차량번호", Cue::Plate),
    ("pin", Cue::Pin),
    ("pin code", Cue::Pin),
    ("비밀번호", Cue::Pin),
    ("age", Cue::Age),
    ("aged", Cue::Age),
    ("turned", Cue::Age),
    ("나이", Cue::Age),
    ("version", Cue::Version),
    ("release", Cue::Version),
    ("build", Cue::Version),
    ("ver", Cue::Version),
    ("버전", Cue::Version),
    ("name", Cue::Name),
    ("이름", Cue::Name),
    ("성명", Cue::Name),
    ("address", Cue::Address),
    ("주소", Cue::Address),
    ("utr", Cue::UkUtr),
    ("unique taxpayer", Cue::UkUtr),
    ("tax reference", Cue::UkUtr),
    ("health card", Cue::CaHealth),
    ("ohip", Cue::CaHealth),
    ("health number", Cue::CaHealth),
    ("health insurance number", Cue::CaHealth),
    ("carte soleil", Cue::CaHealth),
    ("ramq", Cue::CaHealth),
    ("national insurance", Cue::Nino),
    ("nino", Cue::Nino),
    ("ni number", Cue::Nino),
];

/// Finds cue words in windows around candidates.
#[derive(Debug)]
pub struct CueFinder {
    ac: AhoCorasick,
}

impl CueFinder {
    pub fn new() -> Result<Self, aho_corasick::BuildError> {
        // A DFA: the cue list is small, and it is searched around every candidate.
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(CUES.iter().map(|(w, _)| w.as_bytes()))?;
        Ok(Self { ac })
    }

    /// Cue bits found in `text[start - before .. end + after]` (clamped to char boundaries).
    /// ASCII cue words must stand alone (not inside a longer ASCII word).
    pub fn cues(&self, text: &str, start: usize, end: usize, before: usize, after: usize) -> u64 {
        let b = text.as_bytes();
        let mut ws = start.saturating_sub(before);
        while ws > 0 && !text.is_char_boundary(ws) {
            ws -= 1;
        }
        let mut we = (end + after).min(b.len());
        while we < b.len() && !text.is_char_boundary(we) {
            we += 1;
        }
        let mut mask = 0u64;
        for m in self.ac.find_overlapping_iter(&b[ws..we]) {
            let (s, e) = (ws + m.start(), ws + m.end());
            // Skip cues that lie inside the candidate itself.
            if s >= start && e <= end {
                continue;
            }
            let (w, cue) = CUES[m.pattern().as_usize()];
            if w.is_ascii() && w.as_bytes()[0].is_ascii_alphanumeric() {
                let pre = s > 0 && b[s - 1].is_ascii_alphanumeric();
                let post = e < b.len() && b[e].is_ascii_alphanumeric();
                if pre || post {
                    continue;
                }
            }
            mask |= cue.bit();
        }
        mask
    }
}
