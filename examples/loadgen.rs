//! A small closed-loop HTTP load generator for the benchmark harness.
//!
//! `loadgen URL BODY_FILE CONCURRENCY SECONDS [stream]` keeps CONCURRENCY requests in
//! flight for SECONDS (after a one-second warm-up) and prints one JSON line:
//! requests/s, latency percentiles and, for streams, time-to-first-byte percentiles.
//! `LOADGEN_HEADERS="name: value; name: value"` adds request headers (another gateway's
//! routing headers, for comparisons).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Default)]
struct Samples {
    total_us: Vec<u64>,
    first_byte_us: Vec<u64>,
    errors: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen URL BODY_FILE CONCURRENCY SECONDS [stream]");
        std::process::exit(2);
    }
    let url: hyper::Uri = args[1].parse().expect("url");
    let body = Bytes::from(std::fs::read(&args[2]).expect("body file"));
    let concurrency: usize = args[3].parse().expect("concurrency");
    let seconds: u64 = args[4].parse().expect("seconds");
    let stream = args.get(5).is_some_and(|a| a == "stream");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let samples = runtime.block_on(run(url, body, concurrency, seconds));
    let mut total = samples.total_us.clone();
    total.sort_unstable();
    let mut first = samples.first_byte_us.clone();
    first.sort_unstable();
    let rps = total.len() as f64 / seconds as f64;
    println!(
        "{{\"concurrency\":{concurrency},\"stream\":{stream},\"requests\":{},\"errors\":{},\"rps\":{rps:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"ttfb_p50_ms\":{:.3},\"ttfb_p99_ms\":{:.3}}}",
        total.len(),
        samples.errors,
        percentile(&total, 0.50),
        percentile(&total, 0.99),
        percentile(&first, 0.50),
        percentile(&first, 0.99),
    );
}

async fn run(url: hyper::Uri, body: Bytes, concurrency: usize, seconds: u64) -> Samples {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http();
    let extra: Arc<Vec<(String, String)>> = Arc::new(
        std::env::var("LOADGEN_HEADERS")
            .unwrap_or_default()
            .split(';')
            .filter_map(|h| h.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    );
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        let extra = extra.clone();
        let (recording, stop) = (recording.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let mut request = hyper::Request::post(url.clone())
                    .header("content-type", "application/json")
                    .header("authorization", "Bearer sk-bench");
                for (k, v) in extra.iter() {
                    request = request.header(k.as_str(), v.as_str());
                }
                let request = request.body(Full::new(body.clone())).expect("request");
                let outcome = async {
                    let response = client.request(request).await.ok()?;
                    if !response.status().is_success() {
                        return None;
                    }
                    let mut b = response.into_body();
                    let mut first = None;
                    while let Some(frame) = b.frame().await {
                        frame.ok()?;
                        if first.is_none() {
                            first = Some(start.elapsed());
                        }
                    }
                    Some(first.unwrap_or_else(|| start.elapsed()))
                }
                .await;
                if recording.load(Ordering::Relaxed) {
                    match outcome {
                        Some(first) => {
                            s.total_us.push(start.elapsed().as_micros() as u64);
                            s.first_byte_us.push(first.as_micros() as u64);
                        }
                        None => s.errors += 1,
                    }
                }
            }
            s
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    recording.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    recording.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut all = Samples::default();
    for t in tasks {
        if let Ok(s) = t.await {
            all.total_us.extend(s.total_us);
            all.first_byte_us.extend(s.first_byte_us);
            all.errors += s.errors;
        }
    }
    all
}
