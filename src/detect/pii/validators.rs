//! Check-digit and validity rules run on candidate spans only (never on the whole text).
//!
//! Every function takes the candidate's significant characters (separators removed) and
//! answers whether the identifier is well formed. They are also the named validators a
//! policy's custom entity may ask for (see [`by_name`]).

/// Digits of `s` as values 0..=9, separators dropped.
pub fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// Luhn (mod 10) check used by payment cards and Canadian SINs.
pub fn luhn(d: &[u8]) -> bool {
    if d.len() < 2 {
        return false;
    }
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Whether a card number's prefix and length belong to a known issuer network.
pub fn card_issuer_ok(d: &[u8]) -> bool {
    let n = d.len();
    let p = |k: usize| d.iter().take(k).fold(0u32, |a, &x| a * 10 + u32::from(x));
    match d.first() {
        Some(4) => matches!(n, 13 | 16 | 19),
        // Mastercard 51-55 (16) and Maestro 50, 56-58 (12-19).
        Some(5) => (12..=19).contains(&n),
        Some(2) => {
            (2221..=2720).contains(&p(4)) && n == 16
                || (2200..=2204).contains(&p(4)) && (16..=19).contains(&n)
                || (p(4) == 2131 && n == 15)
        }
        Some(3) => {
            (matches!(p(2), 34 | 37) && n == 15)
                || ((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39))
                    && (14..=19).contains(&n)
                || (3528..=3589).contains(&p(4)) && (16..=19).contains(&n)
        }
        Some(6) => (12..=19).contains(&n),
        Some(1) => p(4) == 1800 && n == 15,
        _ => false,
    }
}

/// IBAN lengths per country (ISO 13616 registry, common subset).
pub fn iban_length(cc: &str) -> Option<usize> {
    Some(match cc {
        "AD" => 24,
        "AE" => 23,
        "AL" => 28,
        "AT" => 20,
        "AZ" => 28,
        "BA" => 20,
        "BE" => 16,
        "BG" => 22,
        "BH" => 22,
        "BR" => 29,
        "CH" => 21,
        "CR" => 22,
        "CY" => 28,
        "CZ" => 24,
        "DE" => 22,
        "DK" => 18,
        "DO" => 28,
        "EE" => 20,
        "EG" => 29,
        "ES" => 24,
        "FI" => 18,
        "FO" => 18,
        "FR" => 27,
        "GB" => 22,
        "GE" => 22,
        "GI" => 23,
        "GL" => 18,
        "GR" => 27,
        "GT" => 28,
        "HR" => 21,
        "HU" => 28,
        "IE" => 22,
        "IL" => 23,
        "IQ" => 23,
        "IS" => 26,
        "IT" => 27,
        "JO" => 30,
        "KW" => 30,
        "KZ" => 20,
        "LB" => 28,
        "LC" => 32,
        "LI" => 21,
        "LT" => 20,
        "LU" => 20,
        "LV" => 21,
        "MC" => 27,
        "MD" => 24,
        "ME" => 22,
        "MK" => 19,
        "MR" => 27,
        "MT" => 31,
        "MU" => 30,
        "NL" => 18,
        "NO" => 15,
        "PK" => 24,
        "PL" => 28,
        "PS" => 29,
        "PT" => 25,
        "QA" => 29,
        "RO" => 24,
        "RS" => 22,
        "SA" => 24,
        "SC" => 31,
        "SE" => 24,
        "SI" => 19,
        "SK" => 24,
        "SM" => 27,
        "ST" => 25,
        "SV" => 28,
        "TL" => 23,
        "TN" => 24,
        "TR" => 26,
        "UA" => 29,
        "VA" => 22,
        "VG" => 24,
        "XK" => 20,
        _ => return None,
    })
}

/// ISO 7064 mod-97-10 over an IBAN given without separators (any letter case).
pub fn iban_mod97(s: &str) -> bool {
    let b: Vec<u8> = s
        .bytes()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if b.len() < 15
        || b.len() > 34
        || !b[..2].iter().all(u8::is_ascii_alphabetic)
        || !b[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    let mut rem = 0u32;
    for &c in b[4..].iter().chain(&b[..4]) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97;
        }
    }
    rem == 1
}

/// ABA routing transit number: prefix range and the 3-7-1 weighted checksum.
pub fn aba_routing(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let p = u32::from(d[0]) * 10 + u32::from(d[1]);
    if !(p <= 12 || (21..=32).contains(&p) || (61..=72).contains(&p) || p == 80) {
        return false;
    }
    let w = [3u32, 7, 1, 3, 7, 1, 3, 7, 1];
    d.iter().zip(w).map(|(&x, w)| u32::from(x) * w).sum::<u32>() % 10 == 0
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |a, &x| a * 10 + u32::from(x))
}

/// US SSN rules since the 2011 randomisation: area not 000, 666 or 9xx; group not 00;
/// serial not 0000; plus a few numbers known to be published samples.
pub fn ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let (a, g, s) = (num(&d[..3]), num(&d[3..5]), num(&d[5..]));
    if a == 0 || a == 666 || a >= 900 || g == 0 || s == 0 {
        return false;
    }
    // Advertised sample numbers (Woolworth wallet card, IRS examples).
    !matches!((a, g, s), (78, 5, 1120) | (219, 9, 9999) | (123, 45, 6789))
}

/// US ITIN: 9xx-[50-65|70-88|90-92|94-99]-xxxx.
pub fn itin(d: &[u8]) -> bool {
    if d.len() != 9 || d[0] != 9 {
        return false;
    }
    let g = num(&d[3..5]);
    (50..=65).contains(&g)
        || (70..=88).contains(&g)
        || (90..=92).contains(&g)
        || (94..=99).contains(&g)
}

/// UK NHS number: weights 10..2 on the first nine digits, mod 11.
pub fn nhs(d: &[u8]) -> bool {
    if d.len() != 10 {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &x)| u32::from(x) * (10 - i as u32))
        .sum();
    let c = 11 - sum % 11;
    let c = if c == 11 { 0 } else { c };
    c != 10 && c == u32::from(d[9])
}

/// Canadian SIN: Luhn over nine digits; 0 and 8 are not issued as first digit.
pub fn ca_sin(d: &[u8]) -> bool {
    d.len() == 9 && d[0] != 0 && d[0] != 8 && luhn(d)
}

/// VIN check digit (position 9) as required in North America (ISO 3779 transliteration).
pub fn vin(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 17 {
        return false;
    }
    let w = [8u32, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let mut sum = 0;
    for (i, &c) in b.iter().enumerate() {
        let v = match c.to_ascii_uppercase() {
            c @ b'0'..=b'9' => u32::from(c - b'0'),
            b'A' | b'J' => 1,
            b'B' | b'K' | b'S' => 2,
            b'C' | b'L' | b'T' => 3,
            b'D' | b'M' | b'U' => 4,
            b'E' | b'N' | b'V' => 5,
            b'F' | b'W' => 6,
            b'G' | b'P' | b'X' => 7,
            b'H' | b'Y' => 8,
            b'R' | b'Z' => 9,
            _ => return false,
        };
        sum += v * w[i];
    }
    let c = sum % 11;
    let want = if c == 10 { b'X' } else { b'0' + c as u8 };
    b[8].to_ascii_uppercase() == want
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

/// What the 7th digit of a Korean resident/foreigner number says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KrIdKind {
    /// 주민등록번호 (citizen): gender digits 9,0 (1800s), 1,2 (1900s), 3,4 (2000s).
    Citizen,
    /// 외국인등록번호 (foreigner): 5,6 (1900s), 7,8 (2000s).
    Foreigner,
}

/// Result of checking a 13-digit Korean resident or foreigner registration number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KrIdCheck {
    pub kind: KrIdKind,
    /// Birth date and gender digit are valid.
    pub date_ok: bool,
    /// The pre-October-2020 check digit holds. Numbers issued since 2020-10 have random
    /// trailing digits, so a failed check digit alone does not prove a number fake.
    pub check_ok: bool,
}

/// Checks a 13-digit KR RRN or FRN: YYMMDD + gender/century digit + 6 digits.
pub fn kr_rrn(d: &[u8]) -> Option<KrIdCheck> {
    if d.len() != 13 {
        return None;
    }
    let (kind, century) = match d[6] {
        9 | 0 => (KrIdKind::Citizen, 1800),
        1 | 2 => (KrIdKind::Citizen, 1900),
        3 | 4 => (KrIdKind::Citizen, 2000),
        5 | 6 => (KrIdKind::Foreigner, 1900),
        7 | 8 => (KrIdKind::Foreigner, 2000),
        _ => return None,
    };
    let y = century + num(&d[..2]);
    let m = num(&d[2..4]);
    let day = num(&d[4..6]);
    let date_ok = day >= 1 && day <= days_in_month(y, m);
    let w = [2u32, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
    let sum: u32 = d[..12].iter().zip(w).map(|(&x, w)| u32::from(x) * w).sum();
    let check = match kind {
        KrIdKind::Citizen => (11 - sum % 11) % 10,
        KrIdKind::Foreigner => (13 - sum % 11) % 10,
    };
    Some(KrIdCheck {
        kind,
        date_ok,
        check_ok: check == u32::from(d[12]),
    })
}

/// 사업자등록번호 (business registration number, 10 digits) checksum.
pub fn kr_brn(d: &[u8]) -> bool {
    if d.len() != 10 {
        return false;
    }
    let w = [1u32, 3, 7, 1, 3, 7, 1, 3, 5];
    let mut sum: u32 = d[..9].iter().zip(w).map(|(&x, w)| u32::from(x) * w).sum();
    sum += u32::from(d[8]) * 5 / 10;
    (10 - sum % 10) % 10 == u32::from(d[9])
}

/// 법인등록번호 (corporate registration number, 13 digits): weights 1,2 alternating.
pub fn kr_crn(d: &[u8]) -> bool {
    if d.len() != 13 {
        return false;
    }
    let sum: u32 = d[..12]
        .iter()
        .enumerate()
        .map(|(i, &x)| u32::from(x) * if i % 2 == 0 { 1 } else { 2 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(d[12])
}

/// Korean driver licence region codes (11–26, 28) used in the first two digits.
pub fn kr_driver_region(d: &[u8]) -> bool {
    d.len() == 12 && matches!(num(&d[..2]), 11..=26 | 28)
}

/// Looks up a validator by the name a policy file uses for a custom entity.
pub fn by_name(name: &str) -> Option<fn(&str) -> bool> {
    Some(match name {
        "luhn" => |s| luhn(&digits(s)),
        "iban" | "mod97" => iban_mod97,
        "aba" | "aba_routing" => |s| aba_routing(&digits(s)),
        "ssn" | "us_ssn" => |s| ssn(&digits(s)),
        "itin" => |s| itin(&digits(s)),
        "nhs" | "mod11" => |s| nhs(&digits(s)),
        "ca_sin" | "sin" => |s| ca_sin(&digits(s)),
        "vin" => vin,
        "kr_rrn" => |s| kr_rrn(&digits(s)).is_some_and(|c| c.date_ok && c.check_ok),
        "kr_brn" => |s| kr_brn(&digits(s)),
        "kr_crn" => |s| kr_crn(&digits(s)),
        _ => return None,
    })
}

/// Names accepted by [`by_name`], for error messages and the policy schema.
pub const VALIDATOR_NAMES: &[&str] = &[
    "luhn", "iban", "aba", "ssn", "itin", "nhs", "ca_sin", "vin", "kr_rrn", "kr_brn", "kr_crn",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_table() {
        type Case = (&'static str, fn(&str) -> bool, &'static str, bool);
        let cases: &[Case] = &[
            ("luhn ok", |s| luhn(&digits(s)), "4111 1111 1111 1111", true),
            (
                "luhn bad",
                |s| luhn(&digits(s)),
                "4111 1111 1111 1112",
                false,
            ),
            ("iban ok", iban_mod97, "GB82 WEST 1234 5698 7654 32", true),
            ("iban lower", iban_mod97, "gb82west12345698765432", true),
            ("iban bad", iban_mod97, "GB82 WEST 1234 5698 7654 33", false),
            ("aba ok", |s| aba_routing(&digits(s)), "011000015", true),
            ("aba bad", |s| aba_routing(&digits(s)), "011000016", false),
            ("ssn ok", |s| ssn(&digits(s)), "536-22-1234", true),
            ("ssn 666", |s| ssn(&digits(s)), "666-22-1234", false),
            ("ssn 9xx", |s| ssn(&digits(s)), "912-22-1234", false),
            ("ssn group 00", |s| ssn(&digits(s)), "536-00-1234", false),
            ("itin ok", |s| itin(&digits(s)), "912-70-1234", true),
            ("itin group", |s| itin(&digits(s)), "912-40-1234", false),
            ("nhs ok", |s| nhs(&digits(s)), "943 476 5919", true),
            ("nhs bad", |s| nhs(&digits(s)), "943 476 5918", false),
            ("sin ok", |s| ca_sin(&digits(s)), "130 692 544", true),
            ("sin bad", |s| ca_sin(&digits(s)), "130 692 545", false),
            ("vin ok", vin, "1M8GDM9AXKP042788", true),
            ("vin bad", vin, "1M8GDM9A1KP042788", false),
            ("brn ok", |s| kr_brn(&digits(s)), "220-81-62517", true),
            ("brn bad", |s| kr_brn(&digits(s)), "220-81-62518", false),
            ("crn ok", |s| kr_crn(&digits(s)), "110111-0006240", true),
            ("crn bad", |s| kr_crn(&digits(s)), "110111-0006247", false),
        ];
        for (name, f, input, want) in cases {
            assert_eq!(f(input), *want, "{name}: {input}");
        }
    }

    #[test]
    fn rrn_date_and_check_digit() {
        // 900101-1234568: date ok; check digit computed by the pre-2020 rule.
        let c = kr_rrn(&digits("900101-1234568")).unwrap();
        assert!(c.date_ok && c.check_ok && c.kind == KrIdKind::Citizen);
        let c = kr_rrn(&digits("900101-1234567")).unwrap();
        assert!(c.date_ok && !c.check_ok);
        // 31 February is not a date.
        assert!(!kr_rrn(&digits("900231-1234567")).unwrap().date_ok);
        // 2000-02-29 is (leap year), 1900-02-29 is not.
        assert!(kr_rrn(&digits("000229-3000000")).unwrap().date_ok);
        assert!(!kr_rrn(&digits("000229-1000000")).unwrap().date_ok);
        assert_eq!(
            kr_rrn(&digits("900101-5234567")).unwrap().kind,
            KrIdKind::Foreigner
        );
    }

    #[test]
    fn card_issuers() {
        assert!(card_issuer_ok(&digits("4111111111111111")));
        assert!(card_issuer_ok(&digits("378282246310005")));
        assert!(!card_issuer_ok(&digits("9111111111111111")));
    }
}
