//! Cost per byte of the shipped default policy's output stage by text length, on the
//! benches' real texts cut into pieces of 1 KB to 64 KB (the 1 KB row is the baseline
//! of the same run). A stage whose passes are linear shows the same figure in every
//! row; one slow character sending a whole long text down a slow path shows as growth.
//!
//! ```sh
//! cargo run --release --example length_scaling -- en     # or: ko
//! ```

use std::time::Instant;

use haechi::detect::DetectContext;
use haechi::engine::{evaluate, EvalOptions, PseudonymMap, Stage};
use haechi::policy::embedded_default;

#[path = "../benches/common/real_texts.rs"]
mod real_texts;

fn main() {
    let set = std::env::args().nth(1).unwrap_or_else(|| "en".into());
    let all = real_texts::texts(&set).join(" ");
    let policy = embedded_default().default_policy();
    let mut baseline = None;
    for size in [1024usize, 2048, 4096, 8192, 16384, 32768, 65536] {
        let mut pieces = Vec::new();
        let mut start = 0;
        while start + size <= all.len() {
            let mut end = start + size;
            while !all.is_char_boundary(end) {
                end += 1;
            }
            pieces.push(&all[start..end]);
            start = end;
        }
        let bytes: usize = pieces.iter().map(|p| p.len()).sum();
        // Best of three passes over different pieces (no text is evaluated twice in a
        // row, so no per-thread cache answers).
        let mut best = f64::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            for piece in &pieces {
                let mut map = PseudonymMap::new();
                let d = evaluate(
                    &policy,
                    Stage::Output,
                    &[*piece],
                    &DetectContext::default(),
                    &EvalOptions::default(),
                    &mut map,
                );
                std::hint::black_box(d);
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        let per_byte = best * 1e9 / bytes as f64;
        let base = *baseline.get_or_insert(per_byte);
        println!(
            "{set} {size:>6} bytes: {per_byte:6.1} ns/byte ({:.2}x the 1 KB row)",
            per_byte / base
        );
    }
}
