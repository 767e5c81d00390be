//! One answer through the streaming output stage, delta by delta, for instruction counts
//! (the wall-clock bench is `cargo bench --bench stream`; this host's speed swings too
//! much between runs to compare builds by time alone).
//!
//! `stream_cost LANG DELTA_BYTES REPS` streams the 16 KB answer of `benches/stream.rs`
//! (`en` or `ko`) in deltas of DELTA_BYTES, REPS times, through the shipped default
//! policy, and prints what it released and how fast. Count the instructions of the
//! stage alone with callgrind:
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='*StreamGuard::push*' \
//!     target/release/examples/stream_cost en 4 3
//! ```
//!
//! (REPS 3 minus REPS 1, halved, is the cost of one answer without the one-time set-up.)

use std::sync::Arc;
use std::time::Instant;

use haechi::engine::{PseudonymMap, StreamGuard, TextKind};
use haechi::policy::embedded_default;

#[path = "../benches/common/repeat.rs"]
mod repeat;
#[path = "../benches/common/stream_answer.rs"]
mod stream_answer;
use repeat::text;
use stream_answer::{deltas, EN, KO};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lang = args.get(1).map_or("en", String::as_str);
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4).max(1);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let answer = text(if lang == "ko" { KO } else { EN }, 16 * 1024);
    let pieces = deltas(&answer, size);
    let policy = embedded_default().default_policy();
    let started = Instant::now();
    let (mut released, mut quiet) = (0, 0);
    for _ in 0..reps {
        let mut guard = StreamGuard::new(
            Arc::clone(&policy),
            Vec::new(),
            None,
            b"k".to_vec(),
            None,
            PseudonymMap::new(),
        );
        let id = guard.open(TextKind::Text);
        for piece in &pieces {
            let out = guard.push(id, piece).unwrap_or_default();
            quiet += usize::from(out.is_empty());
            released += out.len();
        }
        released += guard.finish_text(id).map(|s| s.len()).unwrap_or(0);
        let _ = guard.finish();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{lang}, {} deltas of {size} bytes x {reps}: {released} bytes released, {quiet} deltas released nothing, {:.2} MiB/s",
        pieces.len(),
        (answer.len() * reps) as f64 / secs / (1024.0 * 1024.0),
    );
}
