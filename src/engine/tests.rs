use super::*;
use crate::policy::compile::{compile_sources, PolicySet};
use crate::policy::load::Source;
use proptest::prelude::*;

const EMAIL: &str = r"[^\s@]+@[^\s@]+\.[a-z]{2,}";

fn set(yaml: &str) -> PolicySet {
    match compile_sources(&[Source {
        name: "t.yaml".into(),
        text: yaml.into(),
    }]) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn email_policy(action: &str) -> PolicySet {
    set(&format!(
        "id: default\ninput:\n  - id: email\n    detector: regex\n    patterns: [{{label: EMAIL, pattern: '{EMAIL}'}}]\n    action: {action}\n"
    ))
}

fn run(set: &PolicySet, texts: &[&str], opts: &EvalOptions, map: &mut PseudonymMap) -> Decision {
    evaluate(
        &set.default_policy(),
        Stage::Input,
        texts,
        &DetectContext::default(),
        opts,
        map,
    )
}

fn run1(set: &PolicySet, text: &str) -> Decision {
    run(
        set,
        &[text],
        &EvalOptions::default(),
        &mut PseudonymMap::new(),
    )
}

#[test]
fn final_action_precedence() {
    let p = set(r#"id: default
input:
  - {id: w, detector: word, words: [warnme], action: warn}
  - {id: m, detector: word, words: [maskme], action: mask}
  - {id: b, detector: word, words: [blockme], action: block}
  - {id: n, detector: word, words: [noteme], action: none}
"#);
    let cases = [
        ("hello", Verdict::Allow),
        ("noteme", Verdict::Allow),
        ("warnme", Verdict::Warn),
        ("warnme maskme", Verdict::Anonymize),
        ("maskme warnme blockme", Verdict::Block),
        ("blockme", Verdict::Block),
    ];
    for (text, want) in cases {
        let d = run(
            &p,
            &[text],
            &EvalOptions {
                run_all: true,
                ..Default::default()
            },
            &mut PseudonymMap::new(),
        );
        assert_eq!(d.action, want, "{text}");
        if want == Verdict::Block {
            assert!(
                d.rewritten.iter().all(Option::is_none),
                "no rewrite on block"
            );
            assert!(d.message.is_some());
        } else {
            assert!(d.message.is_none());
        }
    }
    let d = run1(&p, "noteme");
    assert_eq!(d.hits.len(), 1);
    assert_eq!(d.acting_rules().count(), 0);
}

#[test]
fn shadow_rules_are_reported_not_enforced() {
    let p = set("id: default\ninput:\n  - {id: s, detector: word, words: [secret], action: block, mode: shadow}\n  - {id: m, detector: word, words: [mask], action: mask, mode: shadow}\n");
    let d = run1(&p, "the secret mask");
    assert_eq!(d.action, Verdict::Allow);
    assert_eq!(d.shadow_action, Verdict::Block);
    assert_eq!(d.message, None);
    assert_eq!(d.rewritten, vec![None]);
    let reported: Vec<String> = d.hits.iter().map(RuleHit::reported_action).collect();
    assert_eq!(reported, vec!["would_block", "would_mask"]);
    assert_eq!(d.acting_rules().count(), 0);
}

#[test]
fn each_rewrite_action_on_korean_text() {
    let text = "제 메일은 김철수@예시.kr 이고 또 kim@x.com 입니다";
    let key = b"tenant-key";
    let opts = EvalOptions {
        hash_key: key,
        ..Default::default()
    };
    let mask = run(
        &email_policy("mask"),
        &[text],
        &opts,
        &mut PseudonymMap::new(),
    );
    assert_eq!(
        mask.rewritten[0].as_deref(),
        Some("제 메일은 {EMAIL} 이고 또 {EMAIL} 입니다")
    );
    assert_eq!(mask.action, Verdict::Anonymize);
    let redact = run(
        &email_policy("redact"),
        &[text],
        &opts,
        &mut PseudonymMap::new(),
    );
    assert_eq!(
        redact.rewritten[0].as_deref(),
        Some("제 메일은  이고 또  입니다")
    );
    let hash = run(
        &email_policy("hash"),
        &[text],
        &opts,
        &mut PseudonymMap::new(),
    );
    let h = hash.rewritten[0].clone().unwrap();
    let re =
        regex::Regex::new(r"^제 메일은 <EMAIL:[0-9a-f]{8}> 이고 또 <EMAIL:[0-9a-f]{8}> 입니다$")
            .unwrap();
    assert!(re.is_match(&h), "{h}");
    let other_key = run(
        &email_policy("hash"),
        &[text],
        &EvalOptions {
            hash_key: b"other",
            ..Default::default()
        },
        &mut PseudonymMap::new(),
    );
    assert_ne!(
        other_key.rewritten[0].as_deref(),
        Some(h.as_str()),
        "hash is keyed"
    );
    // Findings carry byte offsets on char boundaries that point at the value.
    let f = &mask.hits[0].findings[0];
    assert_eq!(&text[f.start..f.end], "김철수@예시.kr");
}

#[test]
fn pseudonyms_are_consistent_across_texts_and_restorable() {
    let p = email_policy("pseudonymize");
    let texts = ["a@x.com and b@x.com", "again a@x.com"];
    let mut map = PseudonymMap::new();
    let d = run(&p, &texts, &EvalOptions::default(), &mut map);
    assert_eq!(d.rewritten[0].as_deref(), Some("<EMAIL_1> and <EMAIL_2>"));
    assert_eq!(d.rewritten[1].as_deref(), Some("again <EMAIL_1>"));
    let answer = "I wrote to <EMAIL_2>, cc <EMAIL_1>.";
    assert_eq!(restore(answer, &map), "I wrote to b@x.com, cc a@x.com.");
}

#[test]
fn overlapping_findings_merge_into_one_rewrite() {
    let p = set(r#"id: default
input:
  - {id: id, detector: regex, patterns: [{label: ID, pattern: 'ID-[0-9]+'}], action: mask}
  - {id: long, detector: regex, patterns: [{label: ORDER, pattern: '[0-9]+-ID-[0-9]+-X'}], action: mask}
"#);
    let d = run1(&p, "주문 77-ID-12-X 끝, ID-5");
    assert_eq!(d.rewritten[0].as_deref(), Some("주문 {ORDER} 끝, {ID}"));
}

#[test]
fn block_message_language_and_fallbacks() {
    let p = set(r#"id: default
message: { en: "Policy says no.", ko: "정책상 안 됩니다." }
input:
  - {id: a, detector: word, words: [alpha], action: block, message: {en: "No alpha.", ko: "알파 금지."}}
  - {id: b, detector: word, words: [beta], action: block}
"#);
    let cases: [(&str, Option<Lang>, &str); 5] = [
        ("alpha please", None, "No alpha."),
        ("alpha 주세요", None, "알파 금지."),
        ("alpha please", Some(Lang::Ko), "알파 금지."),
        ("beta please", None, "Policy says no."),
        ("beta 주세요", None, "정책상 안 됩니다."),
    ];
    for (text, language, want) in cases {
        let d = run(
            &p,
            &[text],
            &EvalOptions {
                language,
                ..Default::default()
            },
            &mut PseudonymMap::new(),
        );
        assert_eq!(d.message.as_deref(), Some(want), "{text}");
    }
    let bare =
        set("id: default\ninput:\n  - {id: b, detector: word, words: [beta], action: block}\n");
    assert_eq!(
        run1(&bare, "beta").message.as_deref(),
        Some("This request was blocked by policy.")
    );
}

#[test]
fn block_short_circuits_unless_run_all() {
    let p = set(r#"id: default
input:
  - {id: b, detector: word, words: [stop], action: block}
  - {id: r, detector: regex, patterns: [{label: N, pattern: '[0-9]+'}], action: warn}
"#);
    let d = run1(&p, "stop 123");
    assert_eq!((d.hits.len(), d.scores.contains_key("regex")), (1, false));
    let d = run(
        &p,
        &["stop 123"],
        &EvalOptions {
            run_all: true,
            ..Default::default()
        },
        &mut PseudonymMap::new(),
    );
    assert_eq!(d.hits.len(), 2);
    assert_eq!(d.scores.get("regex"), Some(&1.0));
    assert_eq!(d.action, Verdict::Block);
}

#[test]
fn decision_carries_policy_identity_and_scores() {
    let p = email_policy("warn");
    let d = run1(&p, "nothing here");
    assert_eq!(d.policy_id, "default");
    assert_eq!(d.policy_version, p.default_policy().version);
    assert_eq!(d.scores.get("regex"), Some(&0.0));
    assert!(d.hits.is_empty());
}

proptest! {
    #[test]
    fn masking_keeps_unmatched_text_intact(
        a in "[^@\\s]{0,20}", b in "[^@\\s]{0,20}", c in "\\PC{0,30}",
        user in "[a-z0-9]{1,8}", host in "[a-z]{1,8}",
    ) {
        let c: String = c.chars().filter(|&ch| ch != '@').collect();
        let email = format!("{user}@{host}.com");
        let text = format!("{a} {email} {b} {c}");
        let d = run1(&email_policy("mask"), &text);
        prop_assert_eq!(d.rewritten[0].clone(), Some(format!("{a} {{EMAIL}} {b} {c}")));
        for h in &d.hits {
            for f in &h.findings {
                prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            }
        }
    }

    #[test]
    fn pseudonymize_then_restore_is_identity(parts in proptest::collection::vec(("\\PC{0,12}", 0usize..3), 0..6)) {
        let emails = ["a@x.com", "김@예시.kr", "b@y.org"];
        let mut text = String::new();
        for (p, e) in &parts {
            let p: String = p.chars().filter(|&ch| ch != '@' && ch != '<' && !ch.is_whitespace()).collect();
            text.push_str(&p);
            text.push(' ');
            text.push_str(emails[*e]);
            text.push(' ');
        }
        let mut map = PseudonymMap::new();
        let d = run(&email_policy("pseudonymize"), &[&text], &EvalOptions::default(), &mut map);
        let out = d.rewritten[0].clone().unwrap_or_else(|| text.clone());
        for e in emails { prop_assert!(!out.contains(e)); }
        prop_assert_eq!(restore(&out, &map), text);
    }
}

fn output_run(set: &PolicySet, text: &str, lang: Option<Lang>) -> Decision {
    evaluate(
        &set.default_policy(),
        Stage::Output,
        &[text],
        &DetectContext::default(),
        &EvalOptions {
            language: lang,
            ..EvalOptions::default()
        },
        &mut PseudonymMap::new(),
    )
}

#[test]
fn annotate_is_warn_with_a_notice() {
    let p = set(r#"id: default
output:
  - {id: a, detector: word, words: [rumour, 소문], action: annotate, notice: {en: "Unverified.", ko: "확인되지 않음."}}
  - {id: d, detector: word, words: [maybe, 아마], action: annotate}
  - {id: s, detector: word, words: [shadowy], action: annotate, mode: shadow}
  - {id: b, detector: word, words: [forbidden], action: block}
"#);
    // (text, verdict, annotation)
    let cases: [(&str, Verdict, Option<&str>); 7] = [
        ("plain", Verdict::Allow, None),
        ("a rumour", Verdict::Warn, Some("Unverified.")),
        ("그건 소문이다", Verdict::Warn, Some("확인되지 않음.")),
        (
            "a rumour, maybe",
            Verdict::Warn,
            Some("Unverified.\nNote: this answer was flagged by a content policy check."),
        ),
        (
            "아마 그럴 것",
            Verdict::Warn,
            Some("참고: 이 답변은 콘텐츠 정책 검사에서 표시되었습니다."),
        ),
        ("shadowy", Verdict::Allow, None),
        ("a forbidden rumour", Verdict::Block, None),
    ];
    for (text, verdict, note) in cases {
        let d = output_run(&p, text, None);
        assert_eq!(d.action, verdict, "{text}");
        assert_eq!(d.annotation.as_deref(), note, "{text}");
    }
    let d = output_run(&p, "a rumour", Some(Lang::Ko));
    assert_eq!(d.annotation.as_deref(), Some("확인되지 않음."));
    let hit = &output_run(&p, "a rumour", None).hits[0];
    assert_eq!(hit.reported_action(), "annotate");
}

#[test]
fn annotate_needs_the_output_stage_and_stream_defaults() {
    let bad = compile_sources(&[Source {
        name: "t.yaml".into(),
        text: "id: default\ninput:\n  - {id: a, detector: word, words: [x], action: annotate}\n"
            .into(),
    }]);
    let err = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("annotate"), "{err}");
    let p = set(r#"id: default
output:
  - {id: w, detector: word, words: [x], action: warn}
  - {id: a, detector: word, words: [y], action: annotate}
  - {id: b, detector: word, words: [z], action: block}
  - {id: m, detector: word, words: [v], action: mask}
  - {id: o, detector: word, words: [u], action: block, stream: annotate}
"#);
    use crate::policy::model::StreamMode;
    let modes: Vec<(String, StreamMode)> = p
        .default_policy()
        .output
        .iter()
        .map(|r| (r.id.clone(), r.stream))
        .collect();
    let want = [
        ("w", StreamMode::Annotate),
        ("a", StreamMode::Annotate),
        ("b", StreamMode::Buffer),
        ("m", StreamMode::Buffer),
        ("o", StreamMode::Annotate),
    ];
    for (id, mode) in want {
        assert!(
            modes.iter().any(|(i, m)| i == id && *m == mode),
            "{id}: {modes:?}"
        );
    }
}

#[test]
fn grounding_sources_are_inherited_and_overridden() {
    use crate::dialect::context::ContextSources;
    let s = compile_sources(&[
        Source {
            name: "default.yaml".into(),
            text: "id: default\n".into(),
        },
        Source {
            name: "rag.yaml".into(),
            text: "id: rag\nextends: default\ngrounding: {sources: [tool, tags]}\n".into(),
        },
        Source {
            name: "child.yaml".into(),
            text: "id: child\nextends: rag\n".into(),
        },
        Source {
            name: "off.yaml".into(),
            text: "id: off\nextends: rag\ngrounding: {sources: []}\n".into(),
        },
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let get = |id: &str| s.get(id).map(|p| p.grounding);
    assert_eq!(get("default"), Some(ContextSources::default()));
    let tool_tags = ContextSources {
        extension: false,
        tool: true,
        tags: true,
    };
    assert_eq!(get("rag"), Some(tool_tags));
    assert_eq!(get("child"), Some(tool_tags));
    assert_eq!(
        get("off"),
        Some(ContextSources {
            extension: false,
            tool: false,
            tags: false
        })
    );
}

mod judges {
    use super::*;
    use crate::detect::judge::{FailReason, JudgeOutcome, JudgeVerdict, Judgement};

    const JUDGE_POLICY: &str = r#"id: default
input:
  - {id: guard-open, detector: llm_judge, endpoint: 'http://127.0.0.1:9/v1', action: block, fail: open,
     message: {en: judged unsafe}}
  - {id: guard-closed, detector: llm_judge, endpoint: 'http://127.0.0.1:9/v1', action: block, fail: closed,
     message: {en: judge unavailable}}
  - {id: guard-shadow, detector: llm_judge, endpoint: 'http://127.0.0.1:9/v1', action: block, mode: shadow}
  - {id: guard-score, detector: llm_judge, endpoint: 'http://127.0.0.1:9/v1', action: warn, threshold: 0.3,
     verdict: {json: score}}
"#;

    fn verdict(rule: &str, outcome: JudgeOutcome) -> JudgeVerdict {
        JudgeVerdict {
            rule: rule.into(),
            text: 1,
            outcome,
            latency_ms: 12.0,
        }
    }

    fn judged(flagged: bool, score: f32, labels: &[&str]) -> JudgeOutcome {
        JudgeOutcome::Judged(Judgement {
            flagged,
            score,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn eval(verdicts: &[JudgeVerdict]) -> Decision {
        let p = set(JUDGE_POLICY);
        run(
            &p,
            &["system prompt", "user text"],
            &EvalOptions {
                judged: verdicts,
                skip: &[],
                run_all: true,
                ..Default::default()
            },
            &mut PseudonymMap::new(),
        )
    }

    fn outcome_of<'a>(d: &'a Decision, rule: &str) -> (&'a str, Option<&'a str>) {
        let r = d
            .judges
            .iter()
            .find(|j| j.rule == rule)
            .unwrap_or_else(|| panic!("no report for {rule}"));
        (r.outcome, r.reason)
    }

    #[test]
    fn verdicts_become_rule_hits() {
        // Table: (verdicts, final action, shadow action, rules that fired, reports).
        let safe = || judged(false, 0.0, &[]);
        let cases: Vec<(Vec<JudgeVerdict>, Verdict, Verdict, Vec<&str>)> = vec![
            (
                vec![
                    verdict("guard-open", safe()),
                    verdict("guard-closed", safe()),
                    verdict("guard-shadow", safe()),
                    verdict("guard-score", judged(false, 0.1, &[])),
                ],
                Verdict::Allow,
                Verdict::Allow,
                vec![],
            ),
            (
                vec![
                    verdict("guard-open", judged(true, 1.0, &["S1"])),
                    verdict("guard-closed", safe()),
                ],
                Verdict::Block,
                Verdict::Block,
                vec!["guard-open"],
            ),
            (
                vec![
                    verdict("guard-shadow", judged(true, 1.0, &[])),
                    // Below its own flagged verdict but over the rule's threshold.
                    verdict("guard-score", judged(false, 0.4, &[])),
                ],
                Verdict::Warn,
                Verdict::Block,
                vec!["guard-shadow", "guard-score"],
            ),
        ];
        for (verdicts, action, shadow, fired) in cases {
            let d = eval(&verdicts);
            assert_eq!(d.action, action, "{verdicts:?}");
            assert_eq!(d.shadow_action, shadow, "{verdicts:?}");
            let hits: Vec<&str> = d.hits.iter().map(|h| h.rule.as_str()).collect();
            assert_eq!(hits, fired, "{verdicts:?}");
            for h in &d.hits {
                // The hit covers the text the proxy named, whole.
                assert_eq!(h.findings.len(), 1);
                assert_eq!(
                    (h.findings[0].text, h.findings[0].start, h.findings[0].end),
                    (1, 0, "user text".len())
                );
            }
        }
        let d = eval(&[verdict("guard-open", judged(true, 1.0, &["S10"]))]);
        assert_eq!(d.hits[0].findings[0].label, "S10");
        assert_eq!(d.message.as_deref(), Some("judged unsafe"));
        assert_eq!(d.scores.get("llm_judge"), Some(&1.0));
        assert_eq!(outcome_of(&d, "guard-open"), ("flagged", None));
        // Rules without a verdict did not run, and say so.
        assert_eq!(outcome_of(&d, "guard-closed"), ("not_run", None));
    }

    #[test]
    fn failures_follow_the_fail_mode() {
        let failed = || JudgeOutcome::Failed(FailReason::Timeout);
        let d = eval(&[
            verdict("guard-open", failed()),
            verdict("guard-closed", safe_outcome()),
        ]);
        assert_eq!(d.action, Verdict::Allow);
        assert_eq!(outcome_of(&d, "guard-open"), ("fail_open", Some("timeout")));

        let d = eval(&[
            verdict("guard-open", safe_outcome()),
            verdict("guard-closed", failed()),
        ]);
        assert_eq!(d.action, Verdict::Block);
        assert_eq!(d.message.as_deref(), Some("judge unavailable"));
        assert_eq!(d.hits[0].findings[0].label, "JUDGE_UNAVAILABLE");
        assert_eq!(
            outcome_of(&d, "guard-closed"),
            ("fail_closed", Some("timeout"))
        );
        let record = crate::audit::StageRecord::from_decision(&d);
        let j = record
            .judges
            .iter()
            .find(|j| j.rule == "guard-closed")
            .expect("judge record");
        assert_eq!(j.outcome, "fail_closed");
        assert_eq!(j.latency_ms, Some(12.0));
        let event = j.fail_event().expect("fail event");
        assert_eq!(
            (
                event.mode.as_str(),
                event.component.as_str(),
                event.reason.as_str()
            ),
            ("fail_closed", "guard-closed", "timeout")
        );
    }

    fn safe_outcome() -> JudgeOutcome {
        judged(false, 0.0, &[])
    }

    #[test]
    fn judge_rules_compile_and_reject_bad_settings() {
        assert!(compile_sources(&[Source {
            name: "t.yaml".into(),
            text: JUDGE_POLICY.into(),
        }])
        .is_ok());
        for (yaml, needle) in [
            ("{id: j, detector: llm_judge, action: block}", "endpoint"),
            (
                "{id: j, detector: llm_judge, endpoint: 'http://x/v1', action: mask}",
                "whole text",
            ),
            (
                "{id: j, detector: word, words: [x], endpoint: 'http://x'}",
                "endpoint",
            ),
        ] {
            let text = format!("id: default\ninput:\n  - {yaml}\n");
            let err = compile_sources(&[Source {
                name: "t.yaml".into(),
                text,
            }])
            .expect_err(yaml)
            .to_string();
            assert!(err.contains(needle), "{yaml}: {err}");
        }
    }
}

/// A value cut at a message boundary (the end of one message and the start of the next)
/// is found as one value: each part is rewritten with the value's label, and
/// pseudonyms restore to the parts.
#[test]
fn values_split_at_a_message_boundary_are_found_as_one() {
    let set = crate::policy::compile::embedded_default();
    let texts = ["my card is 4111 1111", "1111 1111 thanks"];
    let mut map = PseudonymMap::new();
    let d = run(&set, &texts, &EvalOptions::default(), &mut map);
    let pii = d
        .hits
        .iter()
        .find(|h| h.rule == "pii-in")
        .expect("pii-in fires");
    let parts: Vec<(usize, &str, &str)> = pii
        .findings
        .iter()
        .map(|f| (f.text, &texts[f.text][f.start..f.end], f.label.as_str()))
        .collect();
    assert!(
        parts.contains(&(0, "4111 1111", "CREDIT_DEBIT_CARD_NUMBER"))
            && parts.contains(&(1, "1111 1111", "CREDIT_DEBIT_CARD_NUMBER")),
        "{parts:?}"
    );
    let first = d.rewritten[0].as_deref().expect("first part rewritten");
    let second = d.rewritten[1].as_deref().expect("second part rewritten");
    assert!(
        !first.contains("4111") && !second.contains("1111"),
        "{first:?} {second:?}"
    );
    assert_eq!(restore(first, &map), texts[0]);
    assert_eq!(restore(second, &map), texts[1]);

    // Numbers that only make a value when glued together without a space stay apart
    // when each message is a sentence of its own.
    let texts = ["I was born in 1990.", "5 people came."];
    let d = run(
        &set,
        &texts,
        &EvalOptions::default(),
        &mut PseudonymMap::new(),
    );
    assert!(d.hits.iter().all(|h| h.rule != "pii-in"), "{:?}", d.hits);
}
