//! How much of a streamed answer the output stage holds back, delta by delta: the delay
//! a reader sees beyond the upstream's, in bytes (at a model's pace of a few bytes every
//! 20-50 ms, each 4 bytes held is one more delta of delay).
//!
//! `cargo run --release --example stream_holds -- en 4` streams the four 16 KB real
//! answers of a set (`en`, `ko`, `en_prompts`) in deltas of that many bytes through the
//! shipped default policy and prints the mean bytes held after each delta, a histogram
//! in 8-byte steps, and a few of the longest holds (their text: these are public
//! encyclopedia passages).
use std::collections::BTreeMap;

use haechi::engine::TextKind;
use haechi::policy::embedded_default;

#[path = "../benches/common/real_texts.rs"]
mod real_texts;
#[path = "../benches/common/stream_answer.rs"]
#[allow(dead_code)] // the support-desk seeds are for the other examples
mod stream_answer;

fn main() {
    let mut args = std::env::args().skip(1);
    let set = args.next().unwrap_or_else(|| "en".into());
    let size: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4);
    let answers = stream_answer::four_answers(&real_texts::texts(&set));
    if answers.is_empty() {
        eprintln!("no texts in set {set:?} (en, ko, en_prompts)");
        std::process::exit(2);
    }
    let policy = embedded_default().default_policy();
    let mut histogram: BTreeMap<usize, usize> = BTreeMap::new();
    let mut longest: Vec<(usize, String)> = Vec::new();
    let (mut deltas, mut held_sum) = (0usize, 0usize);
    for answer in &answers {
        let mut guard = stream_answer::plain_guard(&policy);
        let id = guard.open(TextKind::Text);
        let mut pushed = 0;
        for piece in stream_answer::deltas(answer, size) {
            pushed += piece.len();
            let _ = guard.push(id, piece);
            let held = guard.held(id);
            deltas += 1;
            held_sum += held;
            *histogram.entry(held / 8 * 8).or_default() += 1;
            if held >= 48 {
                longest.push((held, answer[pushed - held..pushed].to_string()));
            }
        }
        let _ = guard.finish_text(id);
    }
    println!(
        "{set}, {size}-byte deltas, {deltas} deltas: mean {:.1} bytes held after a delta",
        held_sum as f64 / deltas.max(1) as f64
    );
    for (from, count) in &histogram {
        println!("  {from:>5}-{:<5} {count}", from + 7);
    }
    longest.sort_by_key(|b| std::cmp::Reverse(b.0));
    longest.dedup_by(|a, b| b.1.starts_with(&a.1[..a.1.len().min(16)]));
    for (held, text) in longest.iter().take(5) {
        println!("  held {held}: {text:?}");
    }
}
