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

const EN: &str = "Thanks for reaching out. I looked at your order history and the delivery \
was delayed by the carrier, not by our warehouse. You can expect the parcel by Friday; if it \
does not arrive, reply to this message and we will send a replacement at no cost. For billing \
questions write to billing@example.com or call 010-2345-6789 during office hours. ";
const KO: &str = "문의해 주셔서 감사합니다. 주문 내역을 확인해 보니 배송은 창고가 아니라 택배사 \
사정으로 늦어졌습니다. 금요일까지 받으실 수 있으며, 도착하지 않으면 이 메시지에 답장해 주시면 \
무료로 다시 보내 드리겠습니다. 결제 문의는 010-2345-6789 로 연락 주세요. ";

/// The bench's answer: `seed` repeated to 16 KiB, cut on a char boundary.
fn answer(seed: &str) -> String {
    let mut s = String::new();
    while s.len() < 16 * 1024 {
        s.push_str(seed);
    }
    let mut cut = 16 * 1024;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

/// `text` in deltas of about `size` bytes, on char boundaries.
fn deltas(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[at..end]);
        at = end;
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lang = args.get(1).map_or("en", String::as_str);
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4).max(1);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let text = answer(if lang == "ko" { KO } else { EN });
    let pieces = deltas(&text, size);
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
        (text.len() * reps) as f64 / secs / (1024.0 * 1024.0),
    );
}
