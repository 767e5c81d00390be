//! Provider SSE streams through the gateway's streaming output stage, event by event,
//! for instruction counts (the wall-clock rows are `sse_*` in `cargo bench --bench
//! stream`).
//!
//! `sse_cost FORMAT SET REPS` streams the four real 16 KB answers of SET (`en` or `ko`)
//! in 4-byte deltas, one event per read, REPS times, as FORMAT events (`chat`: OpenAI
//! chat completion chunks; `responses`: Responses API events), through the shipped
//! default policy. One round without the set-up is REPS 3 minus REPS 1, halved:
//!
//! ```sh
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     --toggle-collect='haechi::proxy::stream_guard::GuardedEvents::event_before' \
//!     target/release/examples/sse_cost responses en 3
//! ```

use bytes::BytesMut;
use haechi::dialect::sse::StreamFormat;
use haechi::policy::embedded_default;
use haechi::proxy::stream_guard::GuardedEvents;

#[path = "../benches/common/real_texts.rs"]
mod real_texts;
#[path = "../benches/common/sse_events.rs"]
mod sse_events;
#[path = "../benches/common/stream_answer.rs"]
#[allow(dead_code)]
mod stream_answer;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let responses = args.get(1).is_some_and(|f| f == "responses");
    let set = args.get(2).map_or("en", String::as_str);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let format = if responses {
        StreamFormat::OpenAiResponses
    } else {
        StreamFormat::OpenAiChat
    };
    let streams: Vec<Vec<u8>> = stream_answer::four_answers(&real_texts::texts(set))
        .iter()
        .map(|a| {
            let pieces = stream_answer::deltas(a, 4);
            if responses {
                sse_events::responses_sse(&pieces)
            } else {
                sse_events::openai_sse(&pieces)
            }
        })
        .collect();
    let policy = embedded_default().default_policy();
    let mut written = 0;
    for _ in 0..reps {
        for sse in &streams {
            let guard = stream_answer::plain_guard(&policy);
            let mut events = GuardedEvents::new(format, guard);
            let mut out = BytesMut::new();
            sse_events::relay(&mut events, sse, 0, &mut out);
            events.end(&mut out);
            written += out.len();
        }
    }
    println!(
        "{format:?} {set}: {} streams x {reps}, {written} bytes written",
        streams.len()
    );
}
