//! The candidate patterns, compiled together into one multi-pattern regex.
//!
//! Patterns are ASCII/byte patterns (Unicode off, so `\b` is the ASCII word boundary and
//! Hangul bytes count as non-word): the lazy DFA stays fast on Korean text. Korean cue
//! words are plain UTF-8 literals. A pattern only proposes a candidate; the family's
//! classifier in `classify.rs` decides the label and score, running validators.

/// How a candidate is classified. The order of [`RULES`] is the priority when two
/// patterns match at the same position (leftmost-first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Email,
    Url,
    Ipv4,
    Mac,
    Ipv6,
    Iban,
    Nino,
    Vin,
    Swift,
    AlnumId,
    KrPlate,
    Cvv,
    Expiry,
    Pin,
    Password,
    Username,
    Age,
    KrAge,
    EnMilitary,
    EnPoBox,
    EnAddrCue,
    Digits,
    EnNameCue,
    KrNameCue,
    KrNameLead,
    KrRoad,
    KrJibun,
}

/// Whether every match of the family contains an ASCII digit. Such families run in a
/// second regex that starts just before the first digit of the text (and not at all
/// when the text has none): the cheap "no digit run, skip the family" prefilter.
pub fn needs_digit(f: Family) -> bool {
    use Family::*;
    !matches!(
        f,
        Email | Url | Swift | Password | Username | EnNameCue | KrNameCue | KrNameLead
    )
}

/// How far before the first digit a digit-bearing match may start ("billing address
/// with " + a street name, "security code is ").
pub const DIGIT_LOOKBACK: usize = 128;

/// Labels each family can produce (used to drop families no enabled entity needs).
pub fn family_labels(f: Family) -> &'static [&'static str] {
    use Family::*;
    match f {
        Email => &["EMAIL"],
        Url => &["URL"],
        Ipv4 | Ipv6 => &["IP_ADDRESS"],
        Mac => &["MAC_ADDRESS"],
        Iban => &["INTERNATIONAL_BANK_ACCOUNT_NUMBER"],
        Nino => &["UK_NATIONAL_INSURANCE_NUMBER"],
        Vin => &["VEHICLE_IDENTIFICATION_NUMBER"],
        Swift => &["SWIFT_CODE"],
        AlnumId => &[
            "US_PASSPORT_NUMBER",
            "KR_PASSPORT",
            "DRIVER_ID",
            "LICENSE_PLATE",
        ],
        KrPlate => &["LICENSE_PLATE"],
        Cvv => &["CREDIT_DEBIT_CARD_CVV"],
        Expiry => &["CREDIT_DEBIT_CARD_EXPIRY"],
        Pin => &["PIN"],
        Password => &["PASSWORD"],
        Username => &["USERNAME"],
        Age | KrAge => &["AGE"],
        EnMilitary | EnPoBox | EnAddrCue => &["ADDRESS"],
        KrNameCue | KrNameLead => &["KR_NAME"],
        EnNameCue => &["NAME"],
        KrRoad | KrJibun => &["KR_ADDRESS"],
        Digits => &[
            "ADDRESS",
            "PHONE",
            "KR_PHONE",
            "CREDIT_DEBIT_CARD_NUMBER",
            "US_SOCIAL_SECURITY_NUMBER",
            "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
            "US_BANK_ACCOUNT_NUMBER",
            "US_BANK_ROUTING_NUMBER",
            "UK_NATIONAL_HEALTH_SERVICE_NUMBER",
            "CA_SOCIAL_INSURANCE_NUMBER",
            "KR_RRN",
            "KR_FRN",
            "KR_BRN",
            "KR_CRN",
            "KR_DRIVER_LICENSE",
            "KR_BANK_ACCOUNT",
            "DRIVER_ID",
            "US_PASSPORT_NUMBER",
            "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER",
            "CA_HEALTH_NUMBER",
        ],
    }
}

const HANGUL: &str = r"[\xEA-\xED][\x80-\xBF][\x80-\xBF]";

/// Street designators (USPS suffix abbreviations and common European street words),
/// `|`-separated; used as a word list.
pub const STREET_WORDS: &str = "street|st|avenue|ave|av|road|rd|lane|ln|drive|dr|court|ct|\
boulevard|blvd|way|place|pl|square|sq|terrace|ter|parkway|pkwy|highway|hwy|circle|cir|trail|trl|\
crescent|cres|alley|aly|plaza|plz|creek|crk|cliff|cliffs|rapids|heights|hts|hill|hills|park|point|pt|\
ridge|run|crossing|xing|mission|port|ports|estate|estates|garden|gardens|grove|harbor|harbour|junction|jct|\
landing|manor|meadow|meadows|mill|mills|mount|mountain|orchard|pass|pines|ranch|shore|shores|spring|springs|station|\
summit|union|valley|vly|view|views|village|vlg|ville|vista|walk|well|wells|expressway|expy|freeway|fwy|\
loop|row|path|pike|green|close|mews|gata|gatan|gade|gate|vej|vei|veien|vegen|strasse|str|weg|laan|\
terrasse|plads|torv|vagen|gasse|\
straat|rue|via|viale|calle|avenida|rua|ulica|utca|katu|tie|kuja";

/// The pattern the streaming stage's partial-match scan uses for a family's pattern: the
/// pattern itself, except for the e-mail pattern, which may begin at any letter of a
/// word. Every letter of a word is then a start alive to the word's end, each walked there
/// on each scan. For partial matching only, an address begins where no letter or digit
/// precedes it: at a word boundary, or with the `_` before it (a local part may follow an
/// underscore). A start inside a word then dies on its first byte, which the partial
/// matcher answers without a walk. The earliest live start is the same (a run of letters
/// and digits before an address belongs to its local part) or, after `_`, one byte
/// earlier: never later.
pub fn partial_pattern(family: Family, pattern: &str) -> String {
    match family {
        Family::Email => format!(r"(?-u:\b)(?:{pattern})|_(?:{pattern})"),
        _ => pattern.to_string(),
    }
}

/// Builds the pattern list: `(family, regex)`, in priority order.
pub fn rules() -> Vec<(Family, String)> {
    use Family::*;
    let h = HANGUL;
    vec![
        (Email, r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9][A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}".into()),
        (Url, r"(?i)\b(?:https?://|ftp://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+".into()),
        (Mac, r"\b[0-9A-Fa-f]{2}(?:[:\-][0-9A-Fa-f]{2}){5}\b|\b[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\b".into()),
        (Ipv4, r"\b(?:\d{1,3}\.){3}\d{1,3}\b".into()),
        (Ipv6, r"(?:\b[0-9A-Fa-f]{1,4}|:)(?::{1,2}[0-9A-Fa-f]{1,4}){2,7}(?:::)?".into()),
        (Iban, r"(?i)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}\b".into()),
        (Nino, r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b".into()),
        (Vin, r"\b[A-HJ-NPR-Z0-9]{17}\b".into()),
        (Swift, r"(?i:\bswift|\bbic)(?i: code| no\.?| number)?[ :#=]*[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?\b".into()),
        (AlnumId, r"\b[A-Z]{1,2}\d{5,14}\b|\b[A-Z]\d{3}[A-Z]\d{4}\b".into()),
        (KrPlate, format!(r"\b\d{{2,3}} ?{h} ?\d{{4}}\b")),
        (Cvv, r"(?i)\b(?:cvv2?|cvc2?|csc|cid|security code|보안코드)\s*(?:is\s*|[:=#]\s*)?\d{3,4}\b".into()),
        (Expiry, r"(?i)\b(?:exp(?:iry|iration)?(?: date)?|expires?|valid (?:thru|through|until)|good thru|유효기간|만료일?)\s*(?:on\s*|is\s*|[:=]\s*)?(?:0?[1-9]|1[0-2]) ?[/\-] ?(?:20)?\d{2}\b".into()),
        (Pin, r"(?i)\bpin(?: code| number| no\.?)?\s*(?:is\s*|[:=#]\s*)?\d{4,8}\b".into()),
        (Password, r"(?i)\b(?:password|passwd|pwd|passcode|passphrase)\s*(?:is\s*|[:=]\s*)|(?:비밀번호|패스워드|암호)(?:는|은)?\s*[:=]?\s*".into()),
        (Username, r"(?i)\b(?:username|user name|user id|userid|login id|login)\s*(?:is\s*|[:=]\s*)|(?:아이디|사용자명|계정)(?:는|은)?\s*[:=]?\s*".into()),
        (Age, r"(?i)\b\d{1,3}(?:-| )?(?:years?|yrs?)(?:-| )old\b|\b\d{1,3} ?y/?o\b|\bage(?:d| of| is|:)? ?\d{1,3}\b|\bturned \d{1,3}\b".into()),
        (KrAge, r"(?:만 ?)?\d{1,3} ?(?:세|살)".into()),
        (EnMilitary, r"(?i)\b(?:psc|unit|cmr) \d{3,5},? box \d{3,5}\b|\b(?:uss|usns|usnv|usav|usv) [A-Za-z\x80-\xFF]+".into()),
        (EnPoBox, r"(?i)\bp\.? ?o\.? box \d{1,6}\b".into()),
        (EnAddrCue, r"(?i)\b(?:(?:my |new |billing |shipping |home |mailing |street )?address(?: is| with|:)|lives at|live at|living at|moved to|ship(?:ped)? (?:it )?to|deliver(?:ed)? (?:it )?to|send (?:it )?to|mail(?:ed)? (?:it )?to|return(?:ed)? (?:it )?to|located at|resides? at)[ \t]*:?[ \t]*\n?[ \t]*".into()),
        (Digits, r"(?:\+\d{1,3} ?(?:\(\d{1,4}\) ?)?|\(\d{1,4}\) ?|\b)\d+(?:[ .\-]?\d+)*\b".into()),
        (EnNameCue, r"(?i)\bname(?: is|:)[ \t]*".into()),
        (KrNameCue, "님|씨".into()),
        (KrNameLead, r"(?:성명|이름|고객명|예금주|담당자|수취인|받는 ?분)\s*[:=]?\s*".into()),
        (KrRoad, r"(?:로|길) ?\d{1,4}(?:-\d{1,4})?".into()),
        (KrJibun, r"(?:동|리|가) ?\d{1,4}(?:-\d{1,4})?(?:번지)?".into()),
    ]
}
