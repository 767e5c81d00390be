//! Table tests per entity: positives with their exact span, near-misses that must not
//! reach the medium threshold, API behaviour and the Korean generated set.

use super::*;
use crate::detect::DetectContext;

fn det() -> PiiDetector {
    PiiDetector::new(None, &[]).unwrap()
}

fn found(d: &PiiDetector, text: &str) -> Vec<(String, String)> {
    d.detect(text, &DetectContext::default())
        .findings
        .into_iter()
        .filter(|f| f.score >= strength_threshold(Strength::Medium))
        .map(|f| (f.label, text[f.start..f.end].to_string()))
        .collect()
}

#[test]
fn positives_table() {
    let d = det();
    let cases: &[(&str, &str, &str)] = &[
        (
            "mail me at jane.doe+x@example.co.uk today",
            "EMAIL",
            "jane.doe+x@example.co.uk",
        ),
        ("call (415) 555-0132 now", "PHONE", "(415) 555-0132"),
        ("tel: +44 20 7946 0958", "PHONE", "+44 20 7946 0958"),
        ("phone 212.555.0199", "PHONE", "212.555.0199"),
        (
            "card 4111 1111 1111 1111 please",
            "CREDIT_DEBIT_CARD_NUMBER",
            "4111 1111 1111 1111",
        ),
        (
            "amex 3782-822463-10005",
            "CREDIT_DEBIT_CARD_NUMBER",
            "3782-822463-10005",
        ),
        ("cvv: 123", "CREDIT_DEBIT_CARD_CVV", "123"),
        ("exp 09/27", "CREDIT_DEBIT_CARD_EXPIRY", "09/27"),
        (
            "SSN 536-22-1234",
            "US_SOCIAL_SECURITY_NUMBER",
            "536-22-1234",
        ),
        (
            "ITIN 912-70-1234",
            "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
            "912-70-1234",
        ),
        (
            "routing number 011000015",
            "US_BANK_ROUTING_NUMBER",
            "011000015",
        ),
        (
            "bank account 12345678901",
            "US_BANK_ACCOUNT_NUMBER",
            "12345678901",
        ),
        ("passport 912345678", "US_PASSPORT_NUMBER", "912345678"),
        (
            "IBAN GB82 WEST 1234 5698 7654 32 thanks",
            "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
            "GB82 WEST 1234 5698 7654 32",
        ),
        ("SWIFT code DEUTDEFF500", "SWIFT_CODE", "DEUTDEFF500"),
        (
            "server 192.168.10.20 is down",
            "IP_ADDRESS",
            "192.168.10.20",
        ),
        (
            "host 2001:db8::8a2e:370:7334 up",
            "IP_ADDRESS",
            "2001:db8::8a2e:370:7334",
        ),
        ("mac 00:1A:2b:3C:4d:5E", "MAC_ADDRESS", "00:1A:2b:3C:4d:5E"),
        (
            "see https://example.com/a?b=1.",
            "URL",
            "https://example.com/a?b=1",
        ),
        (
            "NHS number 943 476 5919",
            "UK_NATIONAL_HEALTH_SERVICE_NUMBER",
            "943 476 5919",
        ),
        (
            "NI number AB 12 34 56 C",
            "UK_NATIONAL_INSURANCE_NUMBER",
            "AB 12 34 56 C",
        ),
        (
            "SIN 130 692 544",
            "CA_SOCIAL_INSURANCE_NUMBER",
            "130 692 544",
        ),
        (
            "my UTR is 12345 67890",
            "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER",
            "12345 67890",
        ),
        (
            "OHIP health card 1234-567-890-AB ok",
            "CA_HEALTH_NUMBER",
            "1234-567-890-AB",
        ),
        (
            "VIN 1M8GDM9AXKP042788",
            "VEHICLE_IDENTIFICATION_NUMBER",
            "1M8GDM9AXKP042788",
        ),
        ("driver's license D1234567", "DRIVER_ID", "D1234567"),
        ("password: Hunter2!x", "PASSWORD", "Hunter2!x"),
        ("username = jdoe_42", "USERNAME", "jdoe_42"),
        ("my PIN is 4321", "PIN", "4321"),
        ("a 34-year-old man", "AGE", "34"),
        ("Contact Mr. Johnson tomorrow", "NAME", "Johnson"),
        ("I met Maria Garcia yesterday", "NAME", "Maria Garcia"),
        (
            "Ship to 1600 Pennsylvania Avenue, Washington, DC 20500 please",
            "ADDRESS",
            "1600 Pennsylvania Avenue, Washington, DC 20500",
        ),
        ("주민등록번호 900101-1234568", "KR_RRN", "900101-1234568"),
        ("전화 010-1234-5678입니다", "KR_PHONE", "010-1234-5678"),
        ("+82 10 1234 5678로 연락", "KR_PHONE", "+82 10 1234 5678"),
        ("사업자등록번호 220-81-62517", "KR_BRN", "220-81-62517"),
        ("법인등록번호 110111-0006240", "KR_CRN", "110111-0006240"),
        ("여권번호 M12345678", "KR_PASSPORT", "M12345678"),
        (
            "면허 11-22-333333-44",
            "KR_DRIVER_LICENSE",
            "11-22-333333-44",
        ),
        (
            "국민은행 123456-01-234567 계좌",
            "KR_BANK_ACCOUNT",
            "123456-01-234567",
        ),
        ("홍길동님 안녕하세요", "KR_NAME", "홍길동"),
        ("김철수 고객님", "KR_NAME", "김철수"),
        (
            "주소는 서울특별시 강남구 테헤란로 152입니다",
            "KR_ADDRESS",
            "서울특별시 강남구 테헤란로 152",
        ),
        ("차량 번호판 12가3456", "LICENSE_PLATE", "12가3456"),
        ("고객센터 1588-1234", "KR_PHONE", "1588-1234"),
        // Two years, but a phone word vouches for the number.
        ("대표번호 1833-1900 으로", "KR_PHONE", "1833-1900"),
        ("call 1832-1910 now", "KR_PHONE", "1832-1910"),
    ];
    for (text, label, span) in cases {
        let got = found(&d, text);
        assert!(
            got.contains(&(label.to_string(), span.to_string())),
            "{label}: want {span:?} in {text:?}, got {got:?}"
        );
    }
}

#[test]
fn near_misses_table() {
    let d = det();
    let cases: &[(&str, &str)] = &[
        ("card 4111 1111 1111 1112", "CREDIT_DEBIT_CARD_NUMBER"),
        ("order 4111111111111112 shipped", "CREDIT_DEBIT_CARD_NUMBER"),
        ("SSN 666-12-3456", "US_SOCIAL_SECURITY_NUMBER"),
        ("SSN 912-12-3456 maybe", "US_SOCIAL_SECURITY_NUMBER"),
        (
            "IBAN GB82 WEST 1234 5698 7654 33",
            "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
        ),
        ("upgrade to v1.2.3.4 now", "IP_ADDRESS"),
        ("version 10.0.0.1 released", "IP_ADDRESS"),
        ("release 1.2.3.4.5", "IP_ADDRESS"),
        ("order number 555-123-4567 shipped", "PHONE"),
        ("invoice #20230115 paid", "PHONE"),
        ("meeting at 10:30:45", "IP_ADDRESS"),
        ("on 2024-01-15 we met", "PHONE"),
        ("the years 1999 2000 2001 2002", "PHONE"),
        ("John Smith (1832-1910) was a minister", "KR_PHONE"),
        ("John Smith (1832-1910) was a minister", "PHONE"),
        ("in power 1500-1600 and after", "PHONE"),
        ("생일은 2001-02-03 입니다", "KR_RRN"),
        ("900231-1234567 날짜 오류", "KR_RRN"),
        ("참조번호 9001011234567", "KR_RRN"),
        ("번호 220-81-62518", "KR_BRN"),
        ("선생님 안녕하세요", "KR_NAME"),
        ("오늘 날씨가 좋네요", "KR_NAME"),
        ("앞으로 3개월", "KR_ADDRESS"),
        ("the password is required", "PASSWORD"),
        ("The Wisdom of Crowds is a book", "NAME"),
        ("I have 3 dogs in the park", "ADDRESS"),
        ("code 1M8GDM9A1KP042788", "VEHICLE_IDENTIFICATION_NUMBER"),
        ("routing 011000016", "US_BANK_ROUTING_NUMBER"),
    ];
    for (text, label) in cases {
        let got = found(&d, text);
        assert!(
            !got.iter().any(|(l, _)| l == label),
            "{label} must not match in {text:?}: {got:?}"
        );
    }
}

#[test]
fn entity_filter_and_errors() {
    let only = PiiDetector::new(Some(&["email".to_string()]), &[]).unwrap();
    let got = found(&only, "a@b.io 010-1234-5678");
    assert_eq!(got, vec![("EMAIL".to_string(), "a@b.io".to_string())]);
    let err = PiiDetector::new(Some(&["EMAILS".to_string()]), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("EMAILS") && err.contains("KR_RRN"), "{err}");
    let bad = CustomEntity {
        label: "X".into(),
        pattern: "a".into(),
        validator: Some("nope".into()),
        context: vec![],
        score: 0.5,
    };
    assert!(PiiDetector::new(None, &[bad]).is_err());
}

#[test]
fn custom_entity_with_validator_and_context() {
    let c = CustomEntity {
        label: "EMPLOYEE_CARD".into(),
        pattern: r"\bEMP-\d{16}\b".into(),
        validator: None,
        context: vec!["사번".into()],
        score: 0.4,
    };
    let d = PiiDetector::new(Some(&[]), &[c]).unwrap();
    let text = "사번 EMP-4111111111111111 and EMP-1234123412341234";
    let f = d.detect(text, &DetectContext::default()).findings;
    assert_eq!(f.len(), 2);
    assert!(
        (f[0].score - 0.7).abs() < 1e-6,
        "context raises the first: {f:?}"
    );
    let luhn = CustomEntity {
        label: "CARDLIKE".into(),
        pattern: r"\d{16}".into(),
        validator: Some("luhn".into()),
        context: vec![],
        score: 0.6,
    };
    let d = PiiDetector::new(Some(&[]), &[luhn]).unwrap();
    let f = d
        .detect(
            "4111111111111111 4111111111111112",
            &DetectContext::default(),
        )
        .findings;
    assert_eq!(f.len(), 2);
    assert!((f[0].score - 0.8).abs() < 1e-6, "valid raised: {f:?}");
    assert!((f[1].score - 0.18).abs() < 1e-6, "invalid lowered: {f:?}");
}

#[test]
fn detectors_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PiiDetector>();
    assert_send_sync::<crate::detect::secret::SecretDetector>();
}

#[test]
fn offsets_are_char_boundaries_on_mixed_text() {
    let d = det();
    let text =
        "고객 홍길동님의 전화는 010-9876-5432이고 메일은 hong@예시.kr, ✓ card 4111111111111111끝";
    for f in d.detect(text, &DetectContext::default()).findings {
        assert!(
            text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
            "{f:?}"
        );
        assert!(f.start < f.end);
    }
}

#[test]
fn korean_generated_set_meets_floor() {
    let d = det();
    let data = include_str!("../../../tests/data/pii_ko.jsonl");
    let (mut gold, mut found_n, mut pred, mut tp) = (0usize, 0usize, 0usize, 0usize);
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = v["text"].as_str().unwrap();
        let spans: Vec<(String, usize, usize)> = v["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["label"].as_str().unwrap().to_string(),
                    s["start"].as_u64().unwrap() as usize,
                    s["end"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        let preds: Vec<(String, usize, usize)> = d
            .detect(text, &DetectContext::default())
            .findings
            .into_iter()
            .filter(|f| f.score >= 0.5)
            .map(|f| {
                (
                    f.label,
                    crate::text::char_offset(text, f.start),
                    crate::text::char_offset(text, f.end),
                )
            })
            .collect();
        let ov = |a: &(String, usize, usize), b: &(String, usize, usize)| {
            a.0 == b.0 && a.1 < b.2 && b.1 < a.2
        };
        gold += spans.len();
        found_n += spans
            .iter()
            .filter(|g| preds.iter().any(|p| ov(p, g)))
            .count();
        pred += preds.len();
        tp += preds
            .iter()
            .filter(|p| spans.iter().any(|g| ov(p, g)))
            .count();
    }
    let recall = found_n as f64 / gold as f64;
    let precision = tp as f64 / pred as f64;
    assert!(gold > 300, "set too small: {gold}");
    assert!(
        recall >= 0.98 && precision >= 0.98,
        "recall {recall:.3} precision {precision:.3}"
    );
}

mod fuzz {
    use super::*;
    use crate::detect::secret::SecretDetector;
    use proptest::prelude::*;

    /// Fragments that steer random text towards the detectors' code paths.
    const PIECES: &[&str] = &[
        "010-1234-5678",
        "주민번호 ",
        "900101-1234568",
        "님",
        "씨",
        "고객님",
        "테헤란로 ",
        "동 ",
        "12",
        "-",
        "4111 1111 1111 1111",
        "@",
        "a@b.co",
        "http://",
        "www.",
        "::",
        ":",
        "Mr. ",
        "Name: ",
        "name is ",
        "Apt. 4",
        " Street",
        " Strasse 9",
        "password: ",
        "SSN ",
        "IBAN GB82",
        "서울특별시 강남구 ",
        "Ã",
        "Å",
        "é",
        "ß",
        "😀",
        "\n",
        " ",
        "12가3456",
        "성명: ",
        "+82 ",
        "(",
        ")",
        "lives at ",
        "sk-",
        "eyJ",
        "AKIA",
        "postgres://u:",
        "-----BEGIN PRIVATE KEY-----",
        "Password=",
        "aws secret=",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(PIECES).prop_map(str::to_string),
                any::<char>().prop_map(|c| c.to_string()),
                "[0-9]{1,14}",
                "[A-Za-z가-힣 ]{1,12}",
            ],
            0..40,
        )
        .prop_map(|v| v.concat())
    }

    fn detectors() -> &'static (PiiDetector, SecretDetector) {
        static D: std::sync::OnceLock<(PiiDetector, SecretDetector)> = std::sync::OnceLock::new();
        D.get_or_init(|| {
            (
                PiiDetector::new(None, &[]).unwrap(),
                SecretDetector::new().unwrap(),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]
        #[test]
        fn findings_are_sorted_disjoint_and_on_char_boundaries(t in text()) {
            let (d, s) = detectors();
            let f = d.detect(&t, &DetectContext::default()).findings;
            for w in f.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
            }
            for x in &f {
                prop_assert!(x.start < x.end && x.end <= t.len());
                prop_assert!(t.is_char_boundary(x.start) && t.is_char_boundary(x.end));
                prop_assert!((0.0..=1.0).contains(&x.score));
            }
            for x in s.detect(&t, &DetectContext::default()).findings {
                prop_assert!(x.start < x.end && x.end <= t.len());
                prop_assert!(t.is_char_boundary(x.start) && t.is_char_boundary(x.end));
            }
        }
    }
}

mod partial_patterns {
    use super::*;
    use crate::detect::partial::{PartialMatcher, StreamMemo};
    use proptest::prelude::*;

    /// The entities of the shipped output rule (no free-text ones, which hold a fixed
    /// window).
    const ENTITIES: &[&str] = &[
        "EMAIL",
        "PHONE",
        "KR_PHONE",
        "KR_RRN",
        "CREDIT_DEBIT_CARD_NUMBER",
        "US_SOCIAL_SECURITY_NUMBER",
        "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
    ];

    /// The detector, and a partial matcher of its built-in patterns as the rules write
    /// them (the reference the scan's patterns are held to).
    fn setup() -> &'static (PiiDetector, PartialMatcher) {
        static S: std::sync::OnceLock<(PiiDetector, PartialMatcher)> = std::sync::OnceLock::new();
        S.get_or_init(|| {
            let names: Vec<String> = ENTITIES.iter().map(|e| e.to_string()).collect();
            let detector = PiiDetector::new(Some(&names), &[]).expect("builds");
            let written: Vec<String> = rules::rules()
                .into_iter()
                .filter(|(f, _)| {
                    rules::family_labels(*f)
                        .iter()
                        .any(|l| ENTITIES.contains(l))
                })
                .map(|(_, p)| p)
                .collect();
            (
                detector,
                PartialMatcher::new(&written, false).expect("builds"),
            )
        })
    }

    fn hold(text: &str, from: usize) -> usize {
        setup()
            .0
            .stream_tail(text, from, &mut StreamMemo::default())
            .hold
    }

    #[test]
    fn an_address_is_held_from_where_its_local_part_begins() {
        let cases: &[(&str, usize, usize)] = &[
            ("write to bob", 0, 9),
            ("write to bob.smith@exa", 0, 9),
            ("x_bob@exa", 0, 0),
            ("say hi_bob@exa", 0, 4),
            ("say -_bob@exa", 0, 5),
            ("문의bob@exa", 0, 6),
            ("bob@exa", 0, 0),
            // A scan that starts inside a word (released text before it).
            ("bobsmith@exa", 3, 3),
            ("bob_smith@exa", 4, 4),
            ("bobsmith, ok", 3, 10),
            ("bobsmith; ", 3, 10),
        ];
        for &(text, from, want) in cases {
            assert_eq!(hold(text, from), want, "{text:?} from {from}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Whatever the text and wherever the scan starts, the detector holds a growing
        /// text from the byte the patterns as written would (knowing, as the detector
        /// does, that short numbers are never reported), or earlier: never later.
        #[test]
        fn never_held_later_than_the_written_patterns(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "bob", "@", "ex", ".", "com", " ", "_", "x", "1", "-", "+", "김", "\n",
                    "010", "a.b", "%", "55",
                ]),
                1..14,
            ),
            from_at in 0usize..64,
        ) {
            let text = parts.concat();
            let mut from = from_at.min(text.len());
            while !text.is_char_boundary(from) {
                from -= 1;
            }
            let bytes = text.as_bytes();
            let inert = |s: usize, e: usize| classify::inert_number(&bytes[s..e], false);
            let want = setup()
                .1
                .tail_memo_inert(bytes, from, 64, &mut Default::default(), inert)
                .hold;
            let got = hold(&text, from);
            prop_assert!(got <= want, "{:?} from {}: {} > {}", text, from, got, want);
            prop_assert!(text.is_char_boundary(got));
        }
    }

    /// Every label a number can be reported as, except `ADDRESS` (a house number).
    fn number_detector() -> PiiDetector {
        let labels: Vec<String> = rules::family_labels(rules::Family::Digits)
            .iter()
            .filter(|l| **l != "ADDRESS")
            .map(|l| l.to_string())
            .collect();
        PiiDetector::new(Some(&labels), &[]).expect("builds")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// The streaming stage releases a run of fewer than `MIN_NUMBER_DIGITS` digits at
        /// once, without waiting for the cue words after it
        /// (`classify::inert_number`): whatever cue words surround such a number, no
        /// number label is reported over it.
        #[test]
        fn short_numbers_are_never_reported_whatever_surrounds_them(
            before in proptest::sample::select(super::context::CUES.to_vec()),
            after in proptest::sample::select(super::context::CUES.to_vec()),
            joins in proptest::sample::subsequence(vec![" ", ": ", " is ", " no. ", "# ", "\n"], 2),
            number in "[0-9]{1,4}",
        ) {
            let text = format!("my {}{}{}{}{} here", before.0, joins[0], number, joins[1], after.0);
            let at = text.find(&number).expect("number in text");
            // Only where the number stands alone: as a run of its own digits.
            let d = number_detector().detect(&text, &DetectContext::default());
            for f in &d.findings {
                prop_assert!(
                    f.end <= at || f.start >= at + number.len(),
                    "{:?}: {} over {:?}", text, f.label, &text[f.start..f.end]
                );
            }
            prop_assert!(classify::inert_number(number.as_bytes(), false));
            prop_assert!(!classify::inert_number(number.as_bytes(), true));
        }
    }
}
