//! A fast mock model upstream for the load harness (`bench/run.sh`).
//!
//! `cargo run --release --example mock_upstream -- 127.0.0.1:9100 [chunk_delay_ms]`
//! answers OpenAI and Anthropic chat requests (JSON or SSE) like the test mock does.

#[path = "../tests/support/mock_upstream.rs"]
mod mock_upstream;

use std::sync::Arc;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9100".to_string());
    let delay_ms: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let delay = Duration::from_millis(delay_ms);
        let script: mock_upstream::Script = Arc::new(move |req| {
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
