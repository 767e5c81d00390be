//! Policy engine benchmarks: the default policy on a 1 KB prompt, and `scan` throughput.
//!
//! Run: `CARGO_TARGET_DIR=/work/target cargo bench --bench engine`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use haechi::cli::scan::scan_threads;
use haechi::cli::{scan, ScanOptions};
use haechi::detect::DetectContext;
use haechi::engine::{evaluate, EvalOptions, PseudonymMap, Stage};
use haechi::policy::{compile_sources, embedded_default, Source};

#[path = "common/real_texts.rs"]
mod real_texts;
#[path = "common/repeat.rs"]
mod repeat;
use real_texts::texts;
use repeat::text;

const EN: &str = "Could you summarise the attached quarterly report for our support team? \
Focus on customer complaints about delivery times, the refund policy changes introduced in March, \
and any recurring issues with the mobile app login flow. Please keep it under two hundred words, \
use bullet points, and avoid internal jargon so that new agents can follow it easily. ";
const KO: &str =
    "첨부한 분기 보고서를 고객지원팀이 읽기 쉽게 요약해 주세요. 배송 지연에 대한 고객 불만, \
3월에 바뀐 환불 정책, 모바일 앱 로그인 문제를 중심으로 정리하고 신입 상담원도 이해할 수 있게 \
전문 용어는 피해 주세요. ";

/// Rotations of one seed prompt, evaluated in turn (the `_seed_repeated` figure, which
/// sessions 1-12 quoted): each call sees a text other than the last, so the one-entry
/// per-thread memos miss, but the n-grams, DFA states and branches repeat.
const VARIANTS: usize = 16;

/// `VARIANTS` texts of about `n` bytes: `seed` repeated, starting at another of its words
/// each time.
fn variants(seed: &str, n: usize) -> Vec<String> {
    let words: Vec<&str> = seed.split_inclusive(' ').collect();
    (0..VARIANTS)
        .map(|k| {
            let k = k % words.len();
            text(&[&words[k..], &words[..k]].concat().concat(), n)
        })
        .collect()
}

fn engine(c: &mut Criterion) {
    let set = embedded_default();
    let policy = set.default_policy();
    let empty = compile_sources(&[Source {
        name: "empty.yaml".into(),
        text: "id: default\n".into(),
    }])
    .expect("empty policy");
    let empty = empty.default_policy();
    let mut g = c.benchmark_group("evaluate_1kb");
    // The seed-repeated figure once per language.
    for (name, seed) in [("en", Some(EN)), ("ko", Some(KO)), ("en_prompts", None)] {
        let real = texts(name);
        let repeated = seed.map(|s| variants(s, 1024)).unwrap_or_default();
        for (bench, policy, texts) in [
            ("default_policy", &policy, &real),
            ("empty_policy_baseline", &empty, &real),
            ("default_policy_seed_repeated", &policy, &repeated),
        ] {
            if texts.is_empty() {
                continue;
            }
            let bytes = texts.iter().map(String::len).sum::<usize>() / texts.len();
            g.throughput(Throughput::Bytes(bytes as u64));
            g.bench_with_input(BenchmarkId::new(bench, name), texts, |b, texts| {
                let mut next = texts.iter().cycle();
                b.iter(|| {
                    let t = next.next().map_or("", String::as_str);
                    let mut map = PseudonymMap::new();
                    black_box(evaluate(
                        policy,
                        Stage::Input,
                        &[t],
                        &DetectContext::default(),
                        &EvalOptions::default(),
                        &mut map,
                    ))
                })
            });
        }
    }
    g.finish();
}

fn scan_lines(c: &mut Criterion) {
    let set = embedded_default();
    let policy = set.default_policy();
    const LINES: usize = 10_000;
    let mut input = Vec::new();
    let (en, ko) = (texts("en"), texts("ko"));
    for i in 0..LINES {
        let pool = if i % 2 == 0 { &en } else { &ko };
        let t = &pool[(i / 2) % pool.len()];
        let line = serde_json::json!({ "id": i, "text": t });
        input.extend_from_slice(line.to_string().as_bytes());
        input.push(b'\n');
    }
    let mut out = Vec::with_capacity(input.len());
    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("10k_lines_1kb_default_policy", |b| {
        b.iter(|| {
            out.clear();
            black_box(scan(&policy, &input[..], &mut out, &ScanOptions::default()).expect("scan"))
        })
    });
    // The same on one thread (`scan` uses every core): the per-core figure.
    g.bench_function("10k_lines_1kb_default_policy_1_thread", |b| {
        b.iter(|| {
            out.clear();
            black_box(
                scan_threads(&policy, &input[..], &mut out, &ScanOptions::default(), 1)
                    .expect("scan"),
            )
        })
    });
    g.finish();
}

/// The word-list walk on its own: the shipped profanity lists' DFAs over the 1 KB prompts
/// of `benches/data` in the script they hold, one overlapping search (`aho-corasick`'s,
/// the baseline) against the lane walk the `word` detector uses (`detect::overlapping`).
/// Same matches, same order.
fn word_list_walk(c: &mut Criterion) {
    use aho_corasick::{dfa, AhoCorasick, MatchKind};
    let list = |text: &str, ascii: bool| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && l.is_ascii() == ascii)
            .map(str::to_lowercase)
            .collect()
    };
    let en_words = list(include_str!("../src/detect/lists/profanity_en.txt"), true);
    let ko_words = list(include_str!("../src/detect/lists/profanity_ko.txt"), false);
    let mut g = c.benchmark_group("word_list_walk_1kb");
    let prompts = [
        include_str!("data/prompt_en_1k.txt"),
        include_str!("data/prompt_ko_1k.txt"),
    ];
    for ((name, words), prompt) in [("en", en_words), ("ko", ko_words)]
        .into_iter()
        .zip(prompts)
    {
        let texts = [prompt.to_string()];
        g.throughput(Throughput::Bytes(prompt.len() as u64));
        let one = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&words)
            .expect("list automaton");
        let lanes = dfa::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&words)
            .expect("list DFA");
        g.bench_with_input(
            BenchmarkId::new("one_walk_baseline", name),
            &texts,
            |b, texts| {
                let mut next = texts.iter().cycle();
                b.iter(|| {
                    let t = next.next().map_or("", String::as_str);
                    black_box(one.find_overlapping_iter(t).map(|m| m.end()).sum::<usize>())
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("lanes", name), &texts, |b, texts| {
            let mut next = texts.iter().cycle();
            b.iter(|| {
                let t = next.next().map_or("", String::as_str);
                let mut sum = 0usize;
                haechi::detect::overlapping::for_each_match(&lanes, t.as_bytes(), |_, _, e| {
                    sum += e
                });
                black_box(sum)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, engine, scan_lines, word_list_walk);
criterion_main!(benches);
