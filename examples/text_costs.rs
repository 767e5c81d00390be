//! Per-text cost of the shipped default policy (input stage) on one set of the engine
//! bench's real 1 KB texts: the least of 30 timed evaluations of each text, each after
//! evaluating another text (so the per-thread memos miss, as for a new request). Shows
//! how heavy-tailed a set is, and which texts make the tail.
//!
//! `cargo run --release --example text_costs -- en` (sets: `en`, `ko`, `en_prompts`)
use std::hint::black_box;
use std::time::Instant;

use haechi::detect::DetectContext;
use haechi::engine::{evaluate, EvalOptions, PseudonymMap, Stage};
use haechi::policy::embedded_default;

#[path = "../benches/common/real_texts.rs"]
mod real_texts;

const ROUNDS: usize = 30;

fn main() {
    let set = std::env::args().nth(1).unwrap_or_else(|| "en".into());
    let texts = real_texts::texts(&set);
    if texts.len() < 2 {
        eprintln!("no texts in set {set:?} (en, ko, en_prompts)");
        std::process::exit(2);
    }
    let policies = embedded_default();
    let policy = policies.default_policy();
    let run = |text: &str| {
        let mut map = PseudonymMap::new();
        black_box(evaluate(
            &policy,
            Stage::Input,
            &[text],
            &DetectContext::default(),
            &EvalOptions::default(),
            &mut map,
        ));
    };
    let mut best = vec![f64::MAX; texts.len()];
    for _ in 0..ROUNDS {
        for (i, text) in texts.iter().enumerate() {
            run(&texts[(i + 1) % texts.len()]);
            let start = Instant::now();
            run(text);
            best[i] = best[i].min(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    let mut sorted = best.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = best.iter().sum::<f64>() / best.len() as f64;
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!(
        "{set}: {} texts, µs per text: mean {mean:.1}, median {:.1}, p90 {:.1}, max {:.1}",
        texts.len(),
        at(0.5),
        at(0.9),
        at(1.0)
    );
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by(|&a, &b| best[b].total_cmp(&best[a]));
    println!("slowest: µs, text #, non-ASCII characters, the characters");
    for &i in order.iter().take(8) {
        let mut odd: Vec<char> = texts[i].chars().filter(|c| !c.is_ascii()).collect();
        odd.sort_unstable();
        odd.dedup();
        let shown: String = odd.iter().take(24).collect();
        let count = texts[i].chars().filter(|c| !c.is_ascii()).count();
        println!("{:7.1}  #{i:<3}  {count:3}  {shown:?}", best[i]);
    }
}
