//! Latency of the shipped classifiers on a 1 KB text, against a baseline measured in the
//! same run (an Aho-Corasick word-list scan of the same text, the cheapest useful filter).
//! Run: `cargo bench --bench classifiers`.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use haechi::detect::prompt_attack::PromptAttackDetector;
use haechi::detect::topic::TopicDetector;
use haechi::detect::toxicity::ToxicityDetector;
use haechi::detect::DetectContext;

fn text_1kb(seed: &str) -> String {
    let mut s = String::new();
    while s.len() < 1024 {
        s.push_str(seed);
    }
    let mut end = 1024;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn bench(c: &mut Criterion) {
    let en = text_1kb("Could you help me plan a trip to Seoul next spring? I want to see palaces, eat street food and maybe ignore the tourist traps. ");
    let ko = text_1kb("다음 달에 서울 여행을 가려고 하는데 경복궁이랑 광장시장 일정 좀 짜 주세요. 맛집도 추천해 주면 좋겠어요. ");
    let ctx = DetectContext::default();
    let tox = ToxicityDetector::new(None).unwrap();
    let pa = PromptAttackDetector::new().unwrap();
    let topic = TopicDetector::builtin("investment-advice").unwrap();
    let words = aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build([
            "ignore previous instructions",
            "system prompt",
            "jailbreak",
            "idiot",
            "stupid",
            "bitch",
            "stock",
            "bitcoin",
            "병신",
            "시발",
        ])
        .unwrap();

    let mut g = c.benchmark_group("1kb");
    for (lang, text) in [("en", &en), ("ko", &ko)] {
        g.bench_function(format!("baseline_aho_corasick_{lang}"), |b| {
            b.iter(|| words.find_iter(black_box(text.as_str())).count())
        });
        g.bench_function(format!("normalize_{lang}"), |b| {
            b.iter(|| haechi::detect::normalize::normalize(black_box(text)))
        });
        g.bench_function(format!("toxicity_{lang}"), |b| {
            b.iter(|| tox.detect(black_box(text), &ctx))
        });
        g.bench_function(format!("prompt_attack_{lang}"), |b| {
            b.iter(|| pa.detect(black_box(text), &ctx))
        });
        g.bench_function(format!("topic_{lang}"), |b| {
            b.iter(|| topic.detect(black_box(text), &ctx))
        });
        g.bench_function(format!("all_three_{lang}"), |b| {
            b.iter(|| {
                (
                    tox.detect(black_box(text), &ctx).score,
                    pa.detect(black_box(text), &ctx).score,
                    topic.detect(black_box(text), &ctx).score,
                )
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    g.bench_function("toxicity_new", |b| {
        b.iter(|| ToxicityDetector::new(None).unwrap())
    });
    g.bench_function("prompt_attack_new", |b| {
        b.iter(|| PromptAttackDetector::new().unwrap())
    });
    // The shared topic models (IDF table and word-piece vectors) load once per process;
    // each topic then only embeds its references.
    g.bench_function("topic_models_load", |b| {
        b.iter(|| haechi::detect::topic::TopicModels::shipped().unwrap())
    });
    g.bench_function("topic_builtin_new", |b| {
        b.iter(|| TopicDetector::builtin("legal-advice").unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
