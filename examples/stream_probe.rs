//! Time to first token and per-token delivery of streamed chat answers (`bench/stream.sh`).
//!
//! `stream_probe URL STREAMS CONCURRENCY` runs STREAMS streamed chat requests, at most
//! CONCURRENCY at a time, and prints one JSON line with percentiles (ms) of:
//! - `ttft`: request start → first event with non-empty `delta.content`;
//! - `first_text_bytes`: how much text that first event carried (the output stage may
//!   hold a word back until the next delta shows where it ends);
//! - `total`: request start → end of stream;
//! - `chunk_at`: arrival time of each content event, by index (p50 over streams), so that
//!   the script can compare the gateway's first token with the direct stream's arrival of
//!   the delta that completed that token.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

const BODY: &str = r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"Where is my parcel?"}]}"#;

#[derive(Default)]
struct Stream {
    ttft_us: Option<u64>,
    first_text: usize,
    total_us: u64,
    chunk_at_us: Vec<u64>,
    text: String,
}

fn percentile(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx.min(v.len() - 1)] as f64 / 1000.0
}

/// The `delta.content` strings of the complete events in `buf` (consumed).
fn contents(buf: &mut Vec<u8>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let event: Vec<u8> = buf.drain(..end + 2).collect();
        for line in String::from_utf8_lossy(&event).lines() {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(data) {
                if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                    out.push(c.to_string());
                }
            }
        }
    }
    out
}

async fn one(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &hyper::Uri,
) -> Option<Stream> {
    let start = Instant::now();
    let request = hyper::Request::post(url.clone())
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-bench")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .ok()?;
    let response = client.request(request).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let mut body = response.into_body();
    let mut s = Stream::default();
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        for c in contents(&mut buf) {
            let at = start.elapsed().as_micros() as u64;
            if c.is_empty() {
                continue;
            }
            if s.ttft_us.is_none() {
                s.ttft_us = Some(at);
                s.first_text = c.len();
            }
            s.chunk_at_us.push(at);
            s.text.push_str(&c);
        }
    }
    s.total_us = start.elapsed().as_micros() as u64;
    Some(s)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: stream_probe URL STREAMS CONCURRENCY");
        std::process::exit(2);
    }
    let url: hyper::Uri = args[1].parse().expect("url");
    let streams: usize = args[2].parse().expect("streams");
    let concurrency: usize = args[3].parse().expect("concurrency");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let results: Vec<Option<Stream>> = runtime.block_on(async move {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(concurrency)
            .build_http();
        let gate = Arc::new(Semaphore::new(concurrency));
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let (client, url, gate) = (client.clone(), url.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.ok()?;
                one(&client, &url).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.ok().flatten());
        }
        out
    });
    let ok: Vec<Stream> = results.into_iter().flatten().collect();
    let errors = streams - ok.len();
    let mut ttft: Vec<u64> = ok.iter().filter_map(|s| s.ttft_us).collect();
    let mut total: Vec<u64> = ok.iter().map(|s| s.total_us).collect();
    let mut first_text: Vec<u64> = ok.iter().map(|s| s.first_text as u64 * 1000).collect();
    let chunks = ok.iter().map(|s| s.chunk_at_us.len()).max().unwrap_or(0);
    let chunk_at: Vec<f64> = (0..chunks.min(16))
        .map(|i| {
            let mut v: Vec<u64> = ok
                .iter()
                .filter_map(|s| s.chunk_at_us.get(i).copied())
                .collect();
            percentile(&mut v, 0.5)
        })
        .collect();
    let text_len = ok.first().map_or(0, |s| s.text.len());
    println!(
        "{{\"streams\":{},\"errors\":{errors},\"text_bytes\":{text_len},\"ttft_p50\":{:.3},\"ttft_p99\":{:.3},\"first_text_bytes_p50\":{:.0},\"total_p50\":{:.3},\"total_p99\":{:.3},\"chunk_at_p50\":{:?}}}",
        ok.len(),
        percentile(&mut ttft.clone(), 0.5),
        percentile(&mut ttft, 0.99),
        percentile(&mut first_text, 0.5),
        percentile(&mut total.clone(), 0.5),
        percentile(&mut total, 0.99),
        chunk_at,
    );
}
