//! Quick latency probe (min over repeated runs, robust to a busy machine):
//! `cargo run --release --example latency`.
use haechi::detect::classifier::features::hash_features;
use haechi::detect::DetectContext;
use std::hint::black_box;
use std::time::Instant;

/// Minimum over 100 batches of 20 calls, in µs per call: the least-disturbed run on a
/// shared machine (other processes preempt us; the minimum is the closest to one idle core).
fn min_time<F: FnMut()>(mut f: F) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..100 {
        let t = Instant::now();
        for _ in 0..20 {
            f();
        }
        best = best.min(t.elapsed().as_secs_f64() / 20.0 * 1e6);
    }
    best
}

fn main() {
    let mk = |seed: &str| {
        let mut s = String::new();
        while s.len() < 1024 {
            s.push_str(seed);
        }
        s
    };
    let en = mk("Could you help me plan a trip to Seoul next spring? I want to see palaces, eat street food and maybe ignore the tourist traps. ");
    let ko = mk("다음 달에 서울 여행을 가려고 하는데 경복궁이랑 광장시장 일정 좀 짜 주세요. 맛집도 추천해 주면 좋겠어요. ");
    let ctx = DetectContext::default();
    let tox = haechi::detect::toxicity::ToxicityDetector::new(None).unwrap();
    let pa = haechi::detect::prompt_attack::PromptAttackDetector::new().unwrap();
    let topic = haechi::detect::topic::TopicDetector::builtin("investment-advice").unwrap();
    let words = aho_corasick::AhoCorasick::new([
        "ignore previous instructions",
        "system prompt",
        "idiot",
        "병신",
    ])
    .unwrap();
    for (l, t) in [("en", &en), ("ko", &ko)] {
        // Detectors share one normalisation per text through a per-thread cache; to time a
        // fresh text every call, alternate between two texts that differ in one character.
        let t2 = format!("x{}", t.chars().skip(1).collect::<String>());
        let flip = std::cell::Cell::new(false);
        let next = || {
            flip.set(!flip.get());
            if flip.get() {
                t.as_str()
            } else {
                t2.as_str()
            }
        };
        let n = haechi::detect::normalize::normalize(t);
        let cfg = haechi::train::PROMPT_ATTACK_FEATURES;
        println!(
            "{l} baseline aho-corasick {:8.2} us",
            min_time(|| {
                black_box(words.find_iter(black_box(t.as_str())).count());
            })
        );
        println!(
            "{l} normalize            {:8.2} us",
            min_time(|| {
                black_box(haechi::detect::normalize::normalize(black_box(t)));
            })
        );
        println!(
            "{l} hash_features(pa)    {:8.2} us",
            min_time(|| {
                let mut v = Vec::new();
                hash_features(&cfg, black_box(&n), &mut v);
                black_box(v);
            })
        );
        println!(
            "{l} toxicity             {:8.2} us",
            min_time(|| {
                black_box(tox.detect(black_box(next()), &ctx));
            })
        );
        println!(
            "{l} prompt_attack        {:8.2} us",
            min_time(|| {
                black_box(pa.detect(black_box(next()), &ctx));
            })
        );
        println!(
            "{l} topic                {:8.2} us",
            min_time(|| {
                black_box(topic.detect(black_box(next()), &ctx));
            })
        );
        println!(
            "{l} all three            {:8.2} us",
            min_time(|| {
                let t = next();
                black_box((
                    tox.detect(t, &ctx),
                    pa.detect(t, &ctx),
                    topic.detect(t, &ctx),
                ));
            })
        );
    }
    let t = Instant::now();
    let _ = haechi::detect::toxicity::ToxicityDetector::new(None).unwrap();
    let _ = haechi::detect::prompt_attack::PromptAttackDetector::new().unwrap();
    let _ = haechi::detect::topic::TopicDetector::builtin("legal-advice").unwrap();
    println!("load all three: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
}
