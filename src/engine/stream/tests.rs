//! The streaming invariant: whatever the cut points, the client reads what the same
//! policy makes of the whole answer.

use super::*;
use crate::policy::compile::{compile_sources, embedded_default, PolicySet};
use crate::policy::load::Source;
use proptest::prelude::*;

fn set(yaml: &str) -> PolicySet {
    match compile_sources(&[Source {
        name: "t.yaml".into(),
        text: yaml.into(),
    }]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

/// Masks e-mails (custom regex), blocks a denied word, hashes a custom ID, keeps the
/// shipped PII and secret rules.
fn custom_policy() -> Arc<CompiledPolicy> {
    static POLICY: std::sync::OnceLock<Arc<CompiledPolicy>> = std::sync::OnceLock::new();
    Arc::clone(POLICY.get_or_init(build_custom_policy))
}

fn shipped_policy() -> Arc<CompiledPolicy> {
    static POLICY: std::sync::OnceLock<Arc<CompiledPolicy>> = std::sync::OnceLock::new();
    Arc::clone(POLICY.get_or_init(|| embedded_default().default_policy()))
}

fn build_custom_policy() -> Arc<CompiledPolicy> {
    let set = set(r#"id: custom
extends: default
output:
  - id: ticket
    detector: regex
    patterns: [{label: TICKET, pattern: 'TCK-[0-9]{4,8}'}]
    action: hash
  - id: denied
    detector: word
    words: [frobnicate, "launch codes"]
    action: block
"#);
    set.get("custom").expect("custom policy")
}

fn map() -> PseudonymMap {
    let mut m = PseudonymMap::new();
    m.placeholder("EMAIL", "kim@corp.example");
    m.placeholder("PHONE", "010-9876-5432");
    m.placeholder("NAME", "O\"Brien");
    m
}

/// What the non-streaming output stage makes of `text`: `None` when it blocks.
fn whole(policy: &Arc<CompiledPolicy>, text: &str, pseudonyms: &PseudonymMap) -> Option<String> {
    let mut m = pseudonyms.clone();
    let d = evaluate(
        policy,
        Stage::Output,
        &[text],
        &DetectContext::default(),
        &EvalOptions {
            hash_key: b"k",
            ..EvalOptions::default()
        },
        &mut m,
    );
    if d.action == Verdict::Block {
        return None;
    }
    let t = d.rewritten[0].clone().unwrap_or_else(|| text.to_string());
    Some(restore(&t, &m))
}

/// Streams `pieces` through a guard: what the client read, and whether it was blocked.
fn streamed(
    policy: &Arc<CompiledPolicy>,
    pieces: &[&str],
    pseudonyms: &PseudonymMap,
) -> (String, Option<usize>, Option<Decision>) {
    let mut g = StreamGuard::new(
        Arc::clone(policy),
        Vec::new(),
        None,
        b"k".to_vec(),
        None,
        pseudonyms.clone(),
    );
    let id = g.open(TextKind::Text);
    let mut out = String::new();
    for piece in pieces {
        match g.push(id, piece) {
            Ok(s) => out.push_str(&s),
            Err(b) => return (out, Some(b.released), g.finish()),
        }
    }
    match g.finish_text(id) {
        Ok(s) => out.push_str(&s),
        Err(b) => return (out, Some(b.released), g.finish()),
    }
    (out, None, g.finish())
}

fn cut(text: &str, cuts: &[usize]) -> Vec<String> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| c % (text.len() + 1))
        .filter(|&c| text.is_char_boundary(c))
        .collect();
    points.sort_unstable();
    points.dedup();
    let mut pieces = Vec::new();
    let mut last = 0;
    for p in points {
        pieces.push(text[last..p].to_string());
        last = p;
    }
    pieces.push(text[last..].to_string());
    pieces
}

fn check(policy: &Arc<CompiledPolicy>, text: &str, pieces: &[String]) {
    check_with(policy, text, pieces, &map());
}

/// [`check`] for a request whose input stage made the pseudonyms `pseudonyms` (none,
/// for most requests: the guard then holds nothing back for placeholders).
fn check_with(
    policy: &Arc<CompiledPolicy>,
    text: &str,
    pieces: &[String],
    pseudonyms: &PseudonymMap,
) {
    let pseudonyms = pseudonyms.clone();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let (out, blocked, decision) = streamed(policy, &refs, &pseudonyms);
    match whole(policy, text, &pseudonyms) {
        Some(want) => {
            assert!(
                blocked.is_none(),
                "blocked a stream the whole answer allows: {text:?} {pieces:?}"
            );
            assert_eq!(out, want, "text {text:?} cut {pieces:?}");
        }
        None => {
            let released = blocked.unwrap_or_else(|| panic!("no block on {text:?} cut {pieces:?}"));
            // The stream stops at the whole answer's first blocking finding, and nothing
            // of it was released.
            let first_block = |d: &Decision| {
                d.hits
                    .iter()
                    .filter(|h| h.action == Action::Block && h.mode == Mode::Enforce)
                    .flat_map(|h| h.findings.iter().map(|f| f.start))
                    .min()
            };
            let want = evaluate(
                policy,
                Stage::Output,
                &[text],
                &DetectContext::default(),
                &EvalOptions::default(),
                &mut pseudonyms.clone(),
            );
            let got = decision.expect("decision");
            assert_eq!(first_block(&got), first_block(&want), "{text:?} {pieces:?}");
            assert!(
                released <= first_block(&want).unwrap_or(0),
                "{text:?} {pieces:?}"
            );
        }
    }
}

const FRAGMENTS: &[&str] = &[
    "Hello",
    " world",
    ", ",
    ". ",
    "\n",
    "write to ",
    "jane.doe@example.com",
    " or call ",
    "010-1234-5678",
    "+1 (415) 555-0132",
    "주민번호 ",
    "900101-1234567",
    " card ",
    "4111 1111 1111 1111",
    "<EMAIL_1>",
    "<PHONE_1>",
    "<NAME_1>",
    "<EMAIL_9>",
    "<",
    ">",
    "a < b and c > d",
    "3.14",
    "고객님 ",
    "안녕하세요. ",
    "sk-proj-abcdefghijklmnopqrstuvwx1234",
    " AKIAIOSFODNN7EXAMPLE ",
    "-----BEGIN PRIVATE KEY-----\nMIIBVgIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
    "TCK-123456",
    " in 2024 ",
    "frobnicate",
    "launch ",
    "codes",
    "frob",
    // Evasions the span detectors fold.
    "\u{200B}",
    "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",
    " at ",
    " dot ",
    "f.r.o.b.n.i.c.a.t.e",
    "4111.1111.1111.1111",
    "fr0bn1c4te",
    "$",
    "f4ck",
    "공일공",
    " 일이삼사",
    " 오육칠팔",
    "사일일일-일일일일-일일일일-일일일일",
    "ㅇㅗ",
];

fn text_of(ix: &[usize]) -> String {
    ix.iter().map(|&i| FRAGMENTS[i % FRAGMENTS.len()]).collect()
}

#[test]
fn every_cut_point_of_short_texts() {
    let policies = [shipped_policy(), custom_policy()];
    let texts = [
        "Mail jane.doe@example.com today.",
        "전화 010-1234-5678 으로 연락 주세요. <EMAIL_1>님",
        "Reply to <EMAIL_1> or <PHONE_1>, thanks <NAME_1>.",
        "Key: sk-proj-abcdefghijklmnopqrstuvwx1234 ok",
        "Ticket TCK-98765 was closed.",
        "Do not frobnicate the launch codes.",
        "a <b> c < d <EMAIL_",
    ];
    for policy in &policies {
        for text in texts {
            check_every_cut(policy, text);
        }
    }
}

/// Every single cut point, and one-character deltas.
fn check_every_cut(policy: &Arc<CompiledPolicy>, text: &str) {
    for c in 0..=text.len() {
        if text.is_char_boundary(c) {
            check(policy, text, &cut(text, &[c]));
        }
    }
    let chars: Vec<String> = text.chars().map(String::from).collect();
    check(policy, text, &chars);
}

/// Deltas of one size throughout, for sizes from one byte to 200.
fn check_even_deltas(policy: &Arc<CompiledPolicy>, text: &str) {
    for size in [1usize, 2, 3, 5, 7, 11, 31, 64, 200] {
        let cuts: Vec<usize> = (size..text.len()).step_by(size).collect();
        check(policy, text, &cut(text, &cuts));
    }
}

proptest! {
    // 3,000 cases (~8 s in a debug build): at 400 the numeral-chain leak of session 21
    // turned up in one CI run of many; at 30,000 in one run of two.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
    ))]

    #[test]
    fn any_cuts_of_generated_answers(
        ix in proptest::collection::vec(0usize..FRAGMENTS.len(), 1..24),
        cuts in proptest::collection::vec(0usize..4096, 0..40),
        shipped in any::<bool>(),
        pseudonyms in any::<bool>(),
    ) {
        let policy = policy_of(shipped);
        let text = text_of(&ix);
        let map = if pseudonyms { map() } else { PseudonymMap::new() };
        check_with(&policy, &text, &cut(&text, &cuts), &map);
    }
}

/// Per delta, what guard `g` releases (or the offset of its block), with or without
/// skipping the deltas that cannot release anything.
fn releases_of<S: AsRef<str>>(
    mut g: StreamGuard,
    pieces: &[S],
    skip_until_wake: bool,
) -> Vec<Result<String, usize>> {
    g.skip_until_wake = skip_until_wake;
    let id = g.open(TextKind::Text);
    let mut out: Vec<Result<String, usize>> = pieces
        .iter()
        .map(|p| g.push(id, p.as_ref()).map_err(|b| b.released))
        .collect();
    out.push(g.finish_text(id).map_err(|b| b.released));
    out
}

fn releases(
    policy: &Arc<CompiledPolicy>,
    pieces: &[String],
    skip_until_wake: bool,
) -> Vec<Result<String, usize>> {
    let g = StreamGuard::new(
        Arc::clone(policy),
        Vec::new(),
        None,
        b"k".to_vec(),
        None,
        map(),
    );
    releases_of(g, pieces, skip_until_wake)
}

/// The shipped policy or the custom one.
fn policy_of(shipped: bool) -> Arc<CompiledPolicy> {
    if shipped {
        shipped_policy()
    } else {
        custom_policy()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200)
    ))]

    /// Skipping the deltas before a known hold lifts changes nothing: every delta
    /// releases what a scan of it would have released.
    #[test]
    fn skipped_deltas_release_what_a_scan_would(
        ix in proptest::collection::vec(0usize..FRAGMENTS.len(), 1..24),
        cuts in proptest::collection::vec(0usize..4096, 0..60),
        shipped in any::<bool>(),
    ) {
        let policy = policy_of(shipped);
        let text = text_of(&ix);
        let pieces = cut(&text, &cuts);
        prop_assert_eq!(releases(&policy, &pieces, true), releases(&policy, &pieces, false));
    }
}

/// A policy whose grounding rule blocks: a streamed answer to a request with context is
/// buffered until its end (or the hold bound).
fn buffering_policy() -> Arc<CompiledPolicy> {
    set(r#"id: default
output:
  - {id: grounded, detector: grounding, threshold: 0.5, action: block}
  - {id: pii, detector: pii, entities: [EMAIL], action: mask}
"#)
    .default_policy()
}

/// Per delta, what a guard over a request with context releases.
fn buffered_releases(pieces: &[&str], skip_until_wake: bool) -> Vec<Result<String, usize>> {
    let g = StreamGuard::new(
        buffering_policy(),
        vec!["The parcel was shipped on Monday and arrives on Friday.".to_string()],
        Some("When does my parcel arrive?".to_string()),
        Vec::new(),
        None,
        map(),
    );
    releases_of(g, pieces, skip_until_wake)
}

#[test]
fn a_buffered_answer_is_appended_until_its_end_or_the_bound() {
    // Short: nothing before the end, then the whole answer (grounded: allowed).
    let short = [
        "The parcel ",
        "was shipped on Monday ",
        "and arrives on ",
        "Friday.",
    ];
    let got = buffered_releases(&short, true);
    assert_eq!(got, buffered_releases(&short, false));
    assert!(got[..short.len()]
        .iter()
        .all(|r| r.as_ref().is_ok_and(|s| s.is_empty())));
    assert_eq!(got.last().cloned(), Some(Ok(short.concat())));
    // Longer than the bound: the oldest text is forced out at the same deltas either way.
    let sentence = "The parcel arrives on Friday as planned. ";
    let long: Vec<&str> = std::iter::repeat_n(sentence, 2 * MAX_HOLD / sentence.len()).collect();
    let got = buffered_releases(&long, true);
    assert_eq!(got, buffered_releases(&long, false));
    let first = got
        .iter()
        .position(|r| r.as_ref().is_ok_and(|s| !s.is_empty()));
    assert!(
        first.is_some_and(|i| i < long.len()),
        "forced out before the end"
    );
}

#[test]
fn a_complete_value_sleeps_until_its_right_context_arrived() {
    let policy = shipped_policy();
    let mut g = StreamGuard::new(policy, Vec::new(), None, Vec::new(), None, map());
    let id = g.open(TextKind::Text);
    let mut out = g.push(id, "Mail ").expect("ok");
    out += &g.push(id, "jane.doe@example.com ").expect("ok");
    out += &g.push(id, "and").expect("ok");
    assert_eq!(out, "Mail ");
    // The e-mail ends at byte 25; the PII checks look 64 bytes past it.
    assert_eq!(g.texts[id].wake, 25 + 64);
}

#[test]
fn prose_is_released_as_it_arrives() {
    let policy = shipped_policy();
    let mut g = StreamGuard::new(policy, Vec::new(), None, Vec::new(), None, map());
    let id = g.open(TextKind::Text);
    // Each word is out as soon as the next character shows it cannot be an identifier.
    assert_eq!(g.push(id, "The").expect("ok"), "");
    assert_eq!(g.push(id, " answer").expect("ok"), "The ");
    assert_eq!(g.push(id, " is").expect("ok"), "answer ");
    // A value in progress is held from its start...
    assert_eq!(g.push(id, " mail jane").expect("ok"), "is mail ");
    assert_eq!(g.push(id, ".doe@exam").expect("ok"), "");
    assert_eq!(g.push(id, "ple.com, ok").expect("ok"), "");
    // ...until the text the PII checks look at after it (64 bytes) has arrived, then
    // released masked.
    assert_eq!(g.push(id, " and that is all").expect("ok"), "");
    let out = g
        .push(id, " for today, thank you for asking us about it")
        .expect("ok");
    assert!(out.starts_with("{EMAIL}, ok"), "{out:?}");
    assert!(!out.contains("jane"));
}

#[test]
fn short_numbers_in_prose_are_not_held_for_cue_words() {
    // A year can never be an identifier: released as soon as it ends. A longer number
    // may still become one with the cue words after it, and waits for them; so does a
    // short one when `ADDRESS` is on (a house number).
    let pushes = |policy: Arc<CompiledPolicy>, number: &str| {
        let mut g = StreamGuard::new(policy, Vec::new(), None, Vec::new(), None, map());
        let id = g.open(TextKind::Text);
        let first = g.push(id, &format!("It opened in {number}")).expect("ok");
        let second = g.push(id, ", the hotel").expect("ok");
        (first, second)
    };
    let shipped = shipped_policy();
    let year = pushes(Arc::clone(&shipped), "2012");
    assert_eq!(year, ("It opened in ".into(), "2012, the ".into()));
    let long = pushes(Arc::clone(&shipped), "20125");
    assert_eq!(long, ("It opened in ".into(), String::new()));
    let addresses = set(
        "id: a\noutput:\n  - {id: a, detector: pii, entities: [PHONE, ADDRESS], action: mask}\n",
    )
    .get("a")
    .expect("policy a");
    let house = pushes(addresses, "2012");
    assert_eq!(house.1, "");
    for text in [
        "In 2012, card 4111 and code 123 (since 1999) cost 42 dollars, call 5551 234 later.",
        "Account no. 1234 or 12345678; 2019년 3월, 010 1234 5678 번으로.",
    ] {
        check_every_cut(&shipped, text);
    }
}

#[test]
fn without_pseudonyms_placeholders_are_text_unless_an_output_rule_makes_them() {
    // No pseudonyms from the input stage: a `<` at the end holds nothing back, and a
    // placeholder-like text is released as written, as the whole answer keeps it.
    let shipped = shipped_policy();
    let mut g = StreamGuard::new(
        Arc::clone(&shipped),
        Vec::new(),
        None,
        Vec::new(),
        None,
        PseudonymMap::new(),
    );
    let id = g.open(TextKind::Text);
    assert_eq!(
        g.push(id, "if a < b and <EM").expect("ok"),
        "if a < b and <"
    );
    // An output rule that pseudonymizes fills the map as the answer streams: a
    // placeholder after the value it stands for is restored as in the whole answer.
    let pseudonymizing = set(
        "id: p\noutput:\n  - {id: p, detector: pii, entities: [EMAIL], action: pseudonymize}\n",
    )
    .get("p")
    .expect("policy p");
    let none = PseudonymMap::new();
    for text in [
        "Write to jane@example.com, or to <EMAIL_1> later.",
        "if a < b and <EMAIL_1> then <EMAIL_",
    ] {
        for policy in [&shipped, &pseudonymizing] {
            for c in (0..=text.len()).filter(|&c| text.is_char_boundary(c)) {
                check_with(policy, text, &cut(text, &[c]), &none);
            }
        }
    }
}

#[test]
fn placeholder_split_across_deltas_is_restored() {
    let policy = shipped_policy();
    let mut g = StreamGuard::new(policy, Vec::new(), None, Vec::new(), None, map());
    let id = g.open(TextKind::Text);
    let mut out = String::new();
    for piece in ["Write to <EM", "AIL", "_1", "> now."] {
        out.push_str(&g.push(id, piece).expect("ok"));
    }
    out.push_str(&g.finish_text(id).expect("ok"));
    assert_eq!(out, "Write to kim@corp.example now.");
}

#[test]
fn tool_arguments_restore_json_escaped() {
    let policy = shipped_policy();
    let mut g = StreamGuard::new(policy, Vec::new(), None, Vec::new(), None, map());
    let id = g.open(TextKind::JsonArgs);
    let mut out = String::new();
    for piece in ["{\"who\": \"<NA", "ME_1>\", \"to\": \"<EMAIL_1>\"}"] {
        out.push_str(&g.push(id, piece).expect("ok"));
    }
    out.push_str(&g.finish_text(id).expect("ok"));
    assert_eq!(out, r#"{"who": "O\"Brien", "to": "kim@corp.example"}"#);
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["who"], "O\"Brien");
}

#[test]
fn block_mid_stream_records_the_rule_and_stops() {
    let policy = custom_policy();
    let (out, blocked, decision) = streamed(
        &policy,
        &["Sure. ", "First, frob", "nicate the thing. ", "Then more."],
        &map(),
    );
    assert_eq!(blocked, Some("Sure. First, ".len()));
    assert_eq!(out, "Sure. First, ");
    let d = decision.expect("decision");
    assert_eq!(d.action, Verdict::Block);
    assert_eq!(d.hits[0].rule, "denied");
    // Offsets are into the whole answer, not into a window.
    assert_eq!(d.hits[0].findings[0].start, "Sure. First, ".len());
}

#[test]
fn record_equals_the_whole_answer_decision() {
    let policy = shipped_policy();
    let text = "Call 010-1234-5678 or mail a.b@example.org. Damn, that is it.";
    let pieces = cut(text, &[5, 17, 30, 44]);
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let (_, _, d) = streamed(&policy, &refs, &map());
    let d = d.expect("decision");
    let want = evaluate(
        &policy,
        Stage::Output,
        &[text],
        &DetectContext::default(),
        &EvalOptions::default(),
        &mut map(),
    );
    type Summary = Vec<(String, Vec<(String, usize, usize)>)>;
    let summary = |d: &Decision| -> Summary {
        d.hits
            .iter()
            .map(|h| {
                (
                    h.rule.clone(),
                    h.findings
                        .iter()
                        .map(|f| (f.label.clone(), f.start, f.end))
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(d.action, want.action);
    assert_eq!(summary(&d), summary(&want));
}

#[test]
fn sentence_classifiers_release_whole_sentences() {
    let policy = set(r#"id: default
output:
  - {id: tox, detector: toxicity, strength: low, action: block}
"#)
    .default_policy();
    let mut g = StreamGuard::new(policy, Vec::new(), None, Vec::new(), None, map());
    let id = g.open(TextKind::Text);
    assert_eq!(g.push(id, "Here is the plan").expect("ok"), "");
    assert_eq!(
        g.push(id, ". Next").expect("ok"),
        "Here is the plan.",
        "released at the sentence end once judged"
    );
    assert_eq!(g.finish_text(id).expect("ok"), " Next");
}

/// Evasions the span detectors fold (docs/reliability.md) hold the stream back too: a
/// value spelled with invisible characters, full-width forms, spaced letters or spelled
/// separators is not released before it can be recognised.
#[test]
fn folded_evasions_are_held_like_plain_values() {
    // Without free-text PII (which holds a fixed window anyway), so each fold's own
    // hold-back is what keeps the value whole.
    let spans_only = set(r#"id: spans
output:
  - id: denied
    detector: word
    words: [frobnicate, sesame]
    action: block
  - id: card
    detector: regex
    patterns: [{label: CARD, pattern: '[0-9]{4}-[0-9]{4}-[0-9]{4}-[0-9]{4}'}]
    action: mask
  - id: mail
    detector: regex
    patterns: [{label: EMAIL, pattern: '[a-z]+@[a-z]+\.[a-z]{2,}'}]
    action: mask
"#)
    .get("spans")
    .expect("spans policy");
    let policies = [shipped_policy(), custom_policy(), spans_only];
    let texts = [
        "Mail jane\u{200B}.doe@exa\u{200B}mple.com today.",
        "Mail ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ today.",
        "write to kim at example dot com please",
        "mail kim [at] example [dot] co [dot] kr now",
        "Do not f.r.o.b.n.i.c.a.t.e it",
        "card 4111.1111.1111.1111 ok",
        "Call 0\u{200B}1\u{200B}0-1234-5678 now",
        "Key: АКIАIOSFODNN7EXAMPLE ok",
        "Do not fr0bn1c4te it, a$$",
        "say $h1t or f4ck $",
        "Open $3$4m3 now",
        "Open $e$@me",
        "전화 공일공 일이삼사 오육칠팔 주세요",
        "카드 사일일일-일일일일-일일일일-일일일일 ok",
        "번호 공일공-1234-5678로 연락",
        "전화 일이삼사\u{200B} ㅇㅗ육칠팔 주세요",
        "Open $\u{200B}3$4m3 and a\u{200B}$$ now",
        "mail kim@일이삼사오육칠.com or kim at 일이삼사오육칠.com, +82 일공-일이삼사-오육칠팔",
        "card 4111 1111 일일일일 일일일일 ok",
        " AKIAIOSFODNN7EXAMPLE  at  일이삼사4111.1111.1111.1111f.r.o.b.n.i.c.a.t.e in 2024",
    ];
    for policy in &policies {
        for text in texts {
            check_every_cut(policy, text);
        }
    }
}

#[test]
fn past_the_bound_every_span_rule_judges_the_oldest_text() {
    // An address whose domain keeps growing is a complete match at the hold, not a
    // candidate before it. Past the bound its oldest text is released anyway, and the
    // rule must judge that window although its scan found no candidate.
    let mut g = StreamGuard::new(
        shipped_policy(),
        Vec::new(),
        None,
        b"k".to_vec(),
        None,
        map(),
    );
    let id = g.open(TextKind::Text);
    let mut out = g.push(id, "Write to bob@example.com").unwrap_or_default();
    for _ in 0..2 * MAX_HOLD / ".example.com".len() {
        out.push_str(&g.push(id, ".example.com").unwrap_or_default());
    }
    // Released at the bound, rewritten whole (the finding across the cut is carried to
    // its end), never in the clear.
    assert!(
        out.starts_with("Write to {EMAIL}"),
        "{}",
        &out[..out.len().min(80)]
    );
    assert!(!out.contains("bob@"));
}

#[test]
fn windows_see_as_far_back_as_the_detectors_look() {
    // The secret detector names a password by the connection string up to 160 bytes
    // before it; a streamed answer must name it the same at every cut.
    let name = "x".repeat(120);
    let text = format!("Use Server=db.internal;Application Name={name};Password=Tr0ub4dorZq9 now.");
    let policy = shipped_policy();
    let mut m = map();
    let whole = evaluate(
        &policy,
        Stage::Output,
        &[text.as_str()],
        &DetectContext::default(),
        &EvalOptions::default(),
        &mut m,
    );
    let masked = whole.rewritten[0].clone().unwrap_or_default();
    assert!(masked.contains("{CONNECTION_STRING_PASSWORD}"), "{masked}");
    check_every_cut(&policy, &text);
}

/// Custom patterns anchored to the text's start or end, or to lines, mask in a stream what
/// they mask in the whole answer: a window's first byte is not the text's start (the
/// window starts in the left context, whose findings are not taken), and the text so far
/// does not end where the answer does (a match waiting on `$` or `\z` is held).
#[test]
fn anchored_patterns_stream_as_the_whole_answer_reads_them() {
    let set = set(r#"id: anchored
output:
  - id: a
    detector: regex
    patterns:
      - {label: START, pattern: '\AID-[0-9]+'}
      - {label: LINE, pattern: '(?m)^LN-[0-9]+$'}
      - {label: END, pattern: 'END-[0-9]+\z'}
      - {label: EOL, pattern: 'EL-[0-9]+$'}
    action: mask
"#);
    let policy = set.get("anchored").expect("p");
    let pad = "lorem ipsum dolor sit amet ".repeat(8);
    let texts = [
        format!("ID-123 {pad}ID-456 and\nLN-77\n{pad}LN-88 END-9 x END-10"),
        format!("{pad}ID-1\nLN-5 EL-4\n{pad}\nLN-6\nEL-7 END-3"),
        format!("ID-1{pad}\nLN-12345{pad}EL-9"),
    ];
    for text in &texts {
        check_even_deltas(&policy, text);
    }
}

/// Free-text addresses (no partial-match model: held by a fixed window) stream as the
/// whole answer reads them, also where their reading looks far back: a Korean road
/// address after a long chain of districts, a house number after `apt` and 200 spaces.
/// Fails with an 8-byte window.
#[test]
fn long_look_behinds_stream_as_the_whole_answer_reads_them() {
    let set = set(r#"id: addr
output:
  - id: a
    detector: pii
    entities: [KR_ADDRESS, ADDRESS]
    action: mask
"#);
    let policy = set.get("addr").expect("policy");
    let texts = [
        format!(
            "주소: {}테헤란로 123 2층",
            "서울특별시 강남구 역삼동 ".repeat(6)
        ),
        format!("Ship to apt{}12 Main Street, Springfield", " ".repeat(200)),
        "Ship to 1600 Pennsylvania Avenue NW, Washington, DC 20500 please".to_string(),
    ];
    for text in &texts {
        check_even_deltas(&policy, text);
    }
}

/// Found by `any_cuts_of_generated_answers`: a run of Korean numerals is read as digits
/// only when its whole chain of groups is long enough, so the undecided text after a
/// released group folds differently alone than in the whole answer (`일이삼사3` alone is
/// not a number; after `일이삼사 ` it is, and an e-mail's local part starts there). The
/// stream released the group and then the rest of the address unmasked.
#[test]
fn numeral_chains_across_the_released_text_fold_as_in_the_whole_answer() {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (" 일이삼사 일이삼사3.14jane.doe@example.comf4ck4111 1111 1111 1111공일공<NAME_1>><NAME_1>frobnicate 오육칠팔<EMAIL_9>",
         vec![" 일이삼사", " 일", "이삼사3.1", "4jane.d", "oe@", "exam", "ple.comf4", "ck411", "1 1111 1111 1111공일공", "<NA", "ME", "_1>><", "N", "AME_", "1>frobnicate ", "오육칠팔<E", "MAIL_9>"]),
        ("+1 (415) 555-0132010-1234-5678+1 (415) 555-0132 오육칠팔 at f4ckf.r.o.b.n.i.c.a.t.e$<codescodesTCK-123456-----BEGIN PRIVATE KEY-----\nMIIBVgIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\u{200b}사일일일-일일일일-일일일일-일일일일\u{200b}",
         vec!["+1 (415)", " 555-0132010", "-1234-5678+1 (", "415) 555-01", "3", "2 오육칠팔 at f4ckf", ".r.o", ".b", ".n.i.", "c.a.t.e", "$", "<codescod", "es", "TCK-123456-----B", "EGIN PRIVATE", " KEY-----\nMIIBV", "gIBADANBg", "kqhkiG", "9w0BAQ", "EFAASC\n-----END", " PRIV", "ATE", " ", "K", "EY-----\u{200b}사일일", "일-일일일일-일", "일", "일일-일", "일", "일", "일\u{200b}"]),
    ];
    for (text, pieces) in cases {
        let pieces: Vec<String> = pieces.iter().map(|s| s.to_string()).collect();
        assert_eq!(pieces.concat(), text);
        for shipped in [true, false] {
            check(&policy_of(shipped), text, &pieces);
        }
    }
}
