//! A fast mock model upstream for the load harness (`bench/run.sh`).
//!
//! `cargo run --release --example mock_upstream -- 127.0.0.1:9100 [chunk_delay_ms] [prose]`
//! answers OpenAI and Anthropic chat requests (JSON or SSE) like the test mock does.
//! With `prose`, streamed chat answers are [`PROSE`] in 4-byte deltas, one every
//! `chunk_delay_ms`, the way a model streams tokens (`bench/stream.sh`).

#[path = "../tests/support/mock_upstream.rs"]
mod mock_upstream;

use std::sync::Arc;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9100".to_string());
    let delay_ms: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let prose = args.next().is_some_and(|a| a == "prose");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let delay = Duration::from_millis(delay_ms);
        let script: mock_upstream::Script = Arc::new(move |req| {
            let streams = String::from_utf8_lossy(&req.body).contains("\"stream\":true");
            if prose && streams && req.path.ends_with("/chat/completions") {
                let pieces: Vec<&str> = prose_deltas();
                return mock_upstream::openai_sse("bench", &pieces, delay);
            }
            let reply = mock_upstream::default_reply(req);
            match reply {
                mock_upstream::Reply::Chunks {
                    status,
                    content_type,
                    chunks,
                } if !delay.is_zero() => mock_upstream::Reply::Chunks {
                    status,
                    content_type,
                    chunks: chunks.into_iter().map(|(_, c)| (delay, c)).collect(),
                },
                other => other,
            }
        });
        let mock = mock_upstream::MockUpstream::start_on(&addr, script).await;
        eprintln!("mock upstream on http://{}", mock.addr);
        std::future::pending::<()>().await;
    });
}

/// The streamed answer of `prose` mode: ordinary support prose, about 1 KB.
pub const PROSE: &str = "Thanks for reaching out. I looked at your order history and the \
delivery was delayed by the carrier, not by our warehouse. You can expect the parcel by \
Friday; if it does not arrive, reply to this message and we will send a replacement at no \
cost. In the meantime you can follow the parcel on the carrier's site with the tracking \
number in your confirmation mail. We are sorry for the wait and thank you for your patience. \
If anything else comes up, our support team is available every weekday from nine to six, \
and the help centre has answers to the most common questions about returns, refunds and \
delivery times. Have a good week!";

/// [`PROSE`] in 4-byte deltas (on char boundaries).
fn prose_deltas() -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < PROSE.len() {
        let mut end = (at + 4).min(PROSE.len());
        while !PROSE.is_char_boundary(end) {
            end += 1;
        }
        out.push(&PROSE[at..end]);
        at = end;
    }
    out
}
