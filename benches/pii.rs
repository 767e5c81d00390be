//! PII and secret detector throughput on ~1 KB English and Korean prompts with few
//! matches, beside a baseline pass (memchr for '@' + `str::contains` of a keyword) over
//! the same text in the same run.
//!
//! cargo bench --bench pii

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haechi::detect::pii::PiiDetector;
use haechi::detect::secret::SecretDetector;
use haechi::detect::DetectContext;
use std::hint::black_box;

const EN: &str = include_str!("data/prompt_en_1k.txt");
const KO: &str = include_str!("data/prompt_ko_1k.txt");

fn bench(c: &mut Criterion) {
    let pii = PiiDetector::new(None, &[]).expect("built-in patterns compile");
    let structured: Vec<String> = [
        "EMAIL",
        "PHONE",
        "CREDIT_DEBIT_CARD_NUMBER",
        "KR_RRN",
        "KR_PHONE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pii_few = PiiDetector::new(Some(&structured), &[]).expect("built-in patterns compile");
    let secret = SecretDetector::new().expect("built-in patterns compile");
    let ctx = DetectContext::default();
    for (name, text) in [("en_1k", EN), ("ko_1k", KO)] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("baseline_memchr_contains", |b| {
            b.iter(|| {
                let t = black_box(text);
                (
                    memchr::memchr(b'@', t.as_bytes()).is_some(),
                    t.contains("password"),
                )
            })
        });
        g.bench_function("pii_all_entities", |b| {
            b.iter(|| pii.detect(black_box(text), &ctx))
        });
        g.bench_function("pii_five_structured", |b| {
            b.iter(|| pii_few.detect(black_box(text), &ctx))
        });
        g.bench_function("secret", |b| {
            b.iter(|| secret.detect(black_box(text), &ctx))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
