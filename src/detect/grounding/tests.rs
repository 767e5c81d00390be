//! Hand-made grounded / ungrounded pairs in English and Korean, and the trainer end to end.

use super::*;

const EN_CTX: &str = "The Oberoi Group is a hotel company with its head office in Delhi. \
It was founded in 1934 by Mohan Singh Oberoi and operates 31 hotels in seven countries. \
The group does not operate any casinos.";

const KO_CTX: &str = "해치는 서울시의 상징으로 2009년에 공식 지정되었다. \
해치는 선악을 판단하는 상상의 동물로 알려져 있다. \
서울시청 앞에는 해치 조형물 세 개가 설치되어 있다. \
이 조형물은 시민들이 만질 수 없도록 울타리가 쳐져 있지 않다.";

fn ctx_of(s: &str) -> Vec<String> {
    vec![s.to_string()]
}

fn score(d: &GroundingDetector, answer: &str, context: &str) -> f32 {
    let c = ctx_of(context);
    d.grounding_score(
        answer,
        &DetectContext {
            context: &c,
            query: None,
        },
    )
}

/// (grounded answer, ungrounded variant, what changed)
const EN_PAIRS: &[(&str, &str, &str)] = &[
    (
        "The Oberoi Group has its head office in Delhi.",
        "The Oberoi Group has its head office in Mumbai.",
        "entity swapped",
    ),
    (
        "It was founded in 1934 by Mohan Singh Oberoi.",
        "It was founded in 1962 by Mohan Singh Oberoi.",
        "number changed",
    ),
    (
        "The group operates 31 hotels in seven countries.",
        "The group operates 85 hotels in twelve countries.",
        "numbers changed",
    ),
    (
        "The group does not operate any casinos.",
        "The group operates several casinos.",
        "negation flipped",
    ),
    (
        "The Oberoi Group is a hotel company based in Delhi.",
        "The Oberoi Group is a hotel company based in Delhi that was acquired by Marriott International for $2.5 billion in 2019.",
        "unsupported addition",
    ),
];

const KO_PAIRS: &[(&str, &str, &str)] = &[
    (
        "해치는 2009년에 서울시의 상징으로 지정되었다.",
        "해치는 1995년에 서울시의 상징으로 지정되었다.",
        "숫자 변경",
    ),
    (
        "해치는 서울시의 상징이다.",
        "해치는 부산시의 상징이다.",
        "개체 교체",
    ),
    (
        "서울시청 앞에는 해치 조형물 세 개가 있다.",
        "광화문 광장에는 호랑이 동상 다섯 개가 있다.",
        "개체·숫자 교체",
    ),
    (
        "해치는 선악을 판단하는 상상의 동물이다.",
        "해치는 선악을 판단하는 상상의 동물이며 조선 왕실이 1412년 경복궁에서 처음 제작한 청동상으로 유명하다.",
        "근거 없는 추가",
    ),
];

#[test]
fn english_pairs_rank_and_classify() {
    let d = GroundingDetector::new().expect("embedded weights load");
    let th = d.scorer().threshold();
    for (good, bad, why) in EN_PAIRS {
        let g = score(&d, good, EN_CTX);
        let b = score(&d, bad, EN_CTX);
        assert!(g > b, "{why}: grounded {g} should beat ungrounded {b}");
        assert!(g >= th, "{why}: grounded answer scored {g} < {th}");
        assert!(b < th, "{why}: ungrounded answer scored {b} >= {th}");
    }
}

#[test]
fn korean_pairs_rank_and_classify() {
    let d = GroundingDetector::new().expect("embedded weights load");
    let th = d.scorer().threshold();
    for (good, bad, why) in KO_PAIRS {
        let g = score(&d, good, KO_CTX);
        let b = score(&d, bad, KO_CTX);
        assert!(g > b, "{why}: grounded {g} should beat ungrounded {b}");
        assert!(g >= th, "{why}: grounded answer scored {g} < {th}");
        assert!(b < th, "{why}: ungrounded answer scored {b} >= {th}");
    }
}

#[test]
fn korean_negation_flip_lowers_the_score() {
    let d = GroundingDetector::new().expect("embedded weights load");
    let good = score(
        &d,
        "해치는 선악을 판단하는 상상의 동물로 알려져 있다.",
        KO_CTX,
    );
    let bad = score(
        &d,
        "해치는 선악을 판단하는 상상의 동물로 알려져 있지 않다.",
        KO_CTX,
    );
    assert!(good > bad, "negation flip: {good} vs {bad}");
}

#[test]
fn findings_point_at_the_unsupported_sentence() {
    let d = GroundingDetector::new().expect("embedded weights load");
    let answer = "The Oberoi Group has its head office in Delhi. \
                  Its chairman Rajiv Kapoor bought Hilton Worldwide in 2021 for $9 billion.";
    let c = ctx_of(EN_CTX);
    let det = d.detect(
        answer,
        &DetectContext {
            context: &c,
            query: None,
        },
    );
    assert_eq!(det.findings.len(), 1, "{det:?}");
    let f = &det.findings[0];
    assert_eq!(f.kind, "grounding");
    assert_eq!(f.label, "UNGROUNDED");
    assert!(answer[f.start..f.end].starts_with("Its chairman"));
    assert!(f.score > 0.5);
    assert!(det.score < 1.0);
}

#[test]
fn korean_finding_offsets_lie_on_char_boundaries() {
    let d = GroundingDetector::new().expect("embedded weights load");
    let answer = "해치는 서울시의 상징이다. 해치 동상은 뉴욕 타임스퀘어에도 2015년 세워졌다.";
    let c = ctx_of(KO_CTX);
    let det = d.detect(
        answer,
        &DetectContext {
            context: &c,
            query: None,
        },
    );
    assert!(!det.findings.is_empty(), "{det:?}");
    for f in &det.findings {
        assert!(answer.is_char_boundary(f.start) && answer.is_char_boundary(f.end));
        assert!(answer[f.start..f.end].contains("뉴욕"));
    }
}

#[test]
fn no_context_means_grounded_and_silent() {
    let d = GroundingDetector::new().expect("embedded weights load");
    let det = d.detect("Anything at all, 1999.", &DetectContext::default());
    assert_eq!(det.score, 1.0);
    assert!(det.findings.is_empty());
    let c = ctx_of(EN_CTX);
    let det = d.detect(
        "Yes, it is.",
        &DetectContext {
            context: &c,
            query: None,
        },
    );
    assert_eq!(det.score, 1.0);
    assert!(det.findings.is_empty());
    let empty = vec![String::new()];
    let det = d.detect(
        "Anything.",
        &DetectContext {
            context: &empty,
            query: None,
        },
    );
    assert_eq!(det.score, 1.0);
}

#[test]
fn sentence_scores_cover_each_sentence() {
    let d = GroundingDetector::new().expect("embedded weights load");
    let c = ctx_of(EN_CTX);
    let answer = "It has its head office in Delhi. It runs 500 theme parks on Mars.";
    let s = d.sentence_scores(
        answer,
        &DetectContext {
            context: &c,
            query: None,
        },
    );
    assert_eq!(s.len(), 2);
    assert!(s[0].grounding > s[1].grounding, "{s:?}");
}

#[test]
fn relevance_prefers_the_answer_to_the_question() {
    let d = RelevanceDetector::new().expect("embedded weights load");
    let c = ctx_of(EN_CTX);
    let cases: &[(&str, &str, &str)] = &[
        (
            "When was the Oberoi Group founded?",
            "It was founded in 1934.",
            "The Mediterranean diet is rich in olive oil and vegetables.",
        ),
        (
            "Where is the head office of the Oberoi Group?",
            "Its head office is in Delhi.",
            "Python is a programming language created by Guido van Rossum.",
        ),
    ];
    for (q, good, bad) in cases {
        let ctx = DetectContext {
            context: &c,
            query: Some(q),
        };
        let g = d.detect(good, &ctx);
        let b = d.detect(bad, &ctx);
        assert!(g.score > b.score, "{q}: {} vs {}", g.score, b.score);
        assert!(g.findings.is_empty(), "{q}: {g:?}");
        assert_eq!(b.findings.len(), 1, "{q}: {b:?}");
        assert_eq!(b.findings[0].label, "IRRELEVANT");
    }
    let kc = ctx_of(KO_CTX);
    let ctx = DetectContext {
        context: &kc,
        query: Some("해치는 언제 서울시의 상징으로 지정되었나요?"),
    };
    let g = d.relevance_score("해치는 2009년에 서울시의 상징으로 지정되었습니다.", &ctx);
    let b = d.relevance_score("김치찌개는 돼지고기와 두부를 넣어 끓인다.", &ctx);
    assert!(g > b, "ko: {g} vs {b}");
    assert_eq!(
        d.relevance_score("anything", &DetectContext::default()),
        1.0
    );
}

#[test]
fn declarative_answers_read_as_sentences() {
    let cases = [
        (
            "The Oberoi family is part of a hotel company that has a head office in what city?",
            "Delhi",
            Some("The Oberoi family is part of a hotel company that has a head office in Delhi."),
        ),
        (
            "Who wrote Hamlet?",
            "Shakespeare",
            Some("Shakespeare wrote Hamlet."),
        ),
        ("Are cats mammals?", "yes", Some("Yes, Are cats mammals.")),
        (
            "Who wrote Hamlet?",
            "It was written by a famous English playwright long ago",
            None,
        ),
    ];
    for (q, a, want) in cases {
        assert_eq!(train::declarative(q, a).as_deref(), want, "{q}");
    }
}

#[test]
fn trainer_runs_end_to_end_on_a_small_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let corpora = dir.path().join("corpora");
    std::fs::create_dir_all(corpora.join("halueval")).expect("mkdir");
    let mut qa = String::new();
    let cities = [
        "Delhi", "Paris", "Seoul", "Lima", "Oslo", "Cairo", "Quito", "Hanoi",
    ];
    for i in 0..60u64 {
        let city = cities[i as usize % cities.len()];
        let other = cities[(i as usize + 3) % cities.len()];
        let item = serde_json::json!({
            "halueval_index": i,
            "knowledge": format!("Company number {i} is a firm with its head office in {city}. It makes boats."),
            "question": format!("Where is the head office of company number {i}?"),
            "right_answer": city,
            "hallucinated_answer": format!("The head office of company number {i} is in {other}, founded in {}.", 1900 + i),
        });
        qa.push_str(&item.to_string());
        qa.push('\n');
    }
    std::fs::write(corpora.join("halueval/qa_shared.jsonl"), qa).expect("write");
    let out = dir.path().join("out");
    let opt = train::Options {
        max_per_set: None,
        epochs: 200,
    };
    let report = train::run_with(&corpora, &out, &opt).expect("trainer runs");
    // 48 training items x 2 answers, plus synthetic perturbations of their knowledge
    assert!(report.grounding_units > 96, "{report:?}");
    assert_eq!(report.train_accuracy[0].0, "halueval_qa");
    assert_eq!(report.train_accuracy[0].1, 96);
    let acc = report.train_accuracy[0].2;
    assert!(acc > 0.9, "{report:?}");
    let w = std::fs::read(out.join("grounding.json")).expect("weights written");
    let t = std::fs::read_to_string(out.join("grounding_idf.tsv")).expect("table written");
    let scorer = Scorer::from_parts(&w, &t).expect("written weights load");
    let c = vec!["Company number 7 has its head office in Lima.".to_string()];
    assert!(
        scorer.grounding_score("Lima", &c, None)
            > scorer.grounding_score("It is in Tokyo, founded in 1911.", &c, None)
    );
    // A missing corpus is a typed error, not a panic.
    assert!(train::run(&dir.path().join("nope"), &out).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any input: no panic, scores in [0, 1], findings on char boundaries.
    #[test]
    fn never_panics_and_offsets_are_char_boundaries(
        answer in "[a-zA-Z0-9가-힣 .,!?\"'’「」()\n-]{0,120}",
        context in "[a-zA-Z0-9가-힣 .,!?\"\n-]{0,200}",
        query in "[a-zA-Z가-힣 ?]{0,40}",
    ) {
        let g = GroundingDetector::new().expect("weights");
        let r = RelevanceDetector::new().expect("weights");
        let c = vec![context];
        let ctx = DetectContext { context: &c, query: Some(&query) };
        for det in [g.detect(&answer, &ctx), r.detect(&answer, &ctx)] {
            proptest::prop_assert!((0.0..=1.0).contains(&det.score));
            for f in &det.findings {
                proptest::prop_assert!(f.start < f.end && f.end <= answer.len());
                proptest::prop_assert!(answer.is_char_boundary(f.start) && answer.is_char_boundary(f.end));
                proptest::prop_assert!((0.0..=1.0).contains(&f.score));
            }
        }
    }
}
