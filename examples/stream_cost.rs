//! Answers through the streaming output stage, delta by delta, for instruction counts
//! (the wall-clock bench is `cargo bench --bench stream`; this host's speed swings too
//! much between runs to compare builds by time alone).
//!
//! `stream_cost SET DELTA_BYTES REPS` streams answers in deltas of DELTA_BYTES, REPS
//! times, through the shipped default policy, and prints what it released and how fast.
//! SET is `en` or `ko` (the repeated 16 KB support-desk answer of `benches/stream.rs`) or
//! `en_real` or `ko_real` (four different 16 KB answers of the benches' real texts).
//! DELTA_BYTES 0 evaluates each answer whole (the non-streaming stage, the baseline; with
//! `en` or `ko`, one answer evaluated again and again is answered partly from the
//! per-thread caches of the folds and classifiers, so take the baseline from the real
//! sets).
//! A fifth argument `warm` first streams (or evaluates) the set's other 64 texts once,
//! as a gateway that has served other answers before (`en_real`/`ko_real` only): REPS 1
//! minus REPS 0 with `warm` is then one round over texts the process has not seen (the
//! lazy DFAs and caches warmed on other text), the figure closest to live traffic; the
//! printed MiB/s times that round alone.
//!
//! Count instructions with callgrind; REPS 3 minus REPS 1, halved, is the cost of one
//! round without the one-time set-up:
//!
//! ```sh
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/stream_cost en_real 32 3
//! ```

use std::sync::Arc;
use std::time::Instant;

use haechi::policy::embedded_default;

#[path = "../benches/common/real_texts.rs"]
mod real_texts;
#[path = "../benches/common/repeat.rs"]
mod repeat;
#[path = "../benches/common/stream_answer.rs"]
mod stream_answer;
use repeat::text;
use stream_answer::{four_answers, run_output_stage, EN, KO};

fn answers(set: &str) -> Vec<String> {
    match set {
        "en_real" | "ko_real" => four_answers(&real_texts::texts(&set[..2])),
        // The other 64 texts of a real set: what a warm gateway has read before.
        "en_warm" | "ko_warm" => four_answers(&real_texts::texts(&set[..2])[64..]),
        "ko" => vec![text(KO, 16 * 1024)],
        _ => vec![text(EN, 16 * 1024)],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let set = args.get(1).map_or("en", String::as_str);
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let policy = embedded_default().default_policy();
    if args.get(4).is_some_and(|a| a == "warm") {
        let warm = set.replace("_real", "_warm");
        run(&policy, &answers(&warm), size, 1);
    }
    let answers = answers(set);
    let started = Instant::now();
    let (released, quiet, bytes) = run(&policy, &answers, size, reps);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{set}, deltas of {size} bytes (0: whole), {} answers x {reps}: {bytes} bytes in, \
         {released} released, {quiet} deltas released nothing, {:.2} MiB/s",
        answers.len(),
        bytes as f64 / secs / (1024.0 * 1024.0),
    );
}

/// Streams (or, `size` 0, evaluates) `answers` `reps` times: bytes released, deltas that
/// released nothing, bytes in.
fn run(
    policy: &Arc<haechi::policy::CompiledPolicy>,
    answers: &[String],
    size: usize,
    reps: usize,
) -> (usize, usize, usize) {
    let (mut released, mut quiet, mut bytes) = (0, 0, 0);
    for _ in 0..reps {
        for answer in answers {
            bytes += answer.len();
            released += run_output_stage(policy, answer, size, |out| {
                quiet += usize::from(out.is_empty());
            });
        }
    }
    (released, quiet, bytes)
}
