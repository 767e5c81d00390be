//! Grounding / relevance latency on a 4 KB context and a 1 KB answer (one core).
//!
//! `cargo bench --bench grounding`. The baseline in the same run lower-cases the same
//! 5 KB of text, the cheapest pass any detector makes over its input.

use criterion::{criterion_group, criterion_main, Criterion};
use haechi::detect::grounding::{GroundingDetector, RelevanceDetector};
use haechi::detect::DetectContext;
use std::hint::black_box;

const EN_FACTS: &[&str] = &[
    "The Oberoi Group is a hotel company with its head office in Delhi",
    "It was founded in 1934 by Mohan Singh Oberoi and now runs 31 hotels",
    "The Han River flows through Seoul and is crossed by 31 bridges",
    "Marseille prosecutor Brice Robin said no videos were used in the investigation",
    "The museum opened in 1972 and received 1.2 million visitors last year",
    "Officials said the new rail line would not open before the spring of 2027",
];
const KO_FACTS: &[&str] = &[
    "해치는 서울시의 상징으로 2009년에 공식 지정되었다",
    "한강은 서울을 가로질러 흐르며 31개의 다리가 놓여 있다",
    "박물관은 1972년에 문을 열었고 지난해 120만 명이 방문했다",
    "관계자는 새 철도 노선이 2027년 봄 이전에는 개통되지 않는다고 밝혔다",
];

fn build(facts: &[&str], bytes: usize) -> String {
    let mut s = String::new();
    let mut i = 0usize;
    while s.len() < bytes {
        s.push_str(facts[i % facts.len()]);
        s.push_str(&format!(" (item {i}). "));
        i += 1;
    }
    let mut end = bytes.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn bench(c: &mut Criterion) {
    let g = GroundingDetector::new().expect("weights");
    let r = RelevanceDetector::new().expect("weights");
    for (lang, facts) in [("en", EN_FACTS), ("ko", KO_FACTS)] {
        let context = vec![build(facts, 4096)];
        let answer = build(&facts[1..], 1024);
        let query = "When was it founded and how many hotels does it run?";
        let ctx = DetectContext {
            context: &context,
            query: Some(query),
        };
        c.bench_function(&format!("baseline_lowercase_5kb_{lang}"), |b| {
            b.iter(|| {
                let x = black_box(&context[0]).to_lowercase();
                let y = black_box(&answer).to_lowercase();
                x.len() + y.len()
            })
        });
        c.bench_function(&format!("grounding_4kb_ctx_1kb_answer_{lang}"), |b| {
            b.iter(|| g.detect(black_box(&answer), black_box(&ctx)))
        });
        c.bench_function(&format!("relevance_4kb_ctx_1kb_answer_{lang}"), |b| {
            b.iter(|| r.detect(black_box(&answer), black_box(&ctx)))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
