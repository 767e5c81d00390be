//! Cost of tracing + audit per request, against baselines measured in the same run.
//!
//! Run: `CARGO_TARGET_DIR=/work/target cargo bench --bench audit`
//!
//! - `baseline/noop`: an empty closure (harness overhead).
//! - `baseline/build_record`: building the audit record and stage summary, which the
//!   request path does anyway; the costs below are on top of it.
//! - `audit/append_*`: one `append` round trip to the writer thread, by fsync policy.
//! - `spans/request_tree`: server span + 2 guardrail spans + GenAI client span (with
//!   traceparent injection) and all attributes, into the real batch processor (with an
//!   exporter that discards).
//! - `spans/bare_tree`: four attribute-less `tracing` spans through the bridge, for scale.
//! - `request/spans_plus_audit`: both, what one request pays.
//!
//! Before the Criterion groups, a per-request latency table is printed (`p50 table`):
//! every request of each variant is timed on its own (`Instant` around one request) and
//! p50/p90/p99 are reported, the variants interleaved in rounds so that load on the
//! machine hits them alike. `without` is the request path with neither (an empty closure);
//! `audit` builds the record and appends it (`interval_ms:100`); `spans` makes the span
//! tree; `spans+audit` both. The added cost is `spans+audit` minus `without`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, Criterion};
use haechi::audit::log::{rotated_siblings, AuditLog, AuditLogOptions, FsyncPolicy};
use haechi::audit::record::{AuditRecord, FindingRecord, Outcome, RuleRecord, StageRecord, Usage};
use haechi::audit::telemetry::{
    provider_with_exporter, record_request, server_span, span_layer, GenAiCall, GenAiResult,
    TelemetryConfig, Tracer,
};
use http::HeaderMap;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn stage() -> StageRecord {
    let mut s = StageRecord {
        action: "anonymize".into(),
        shadow_action: "anonymize".into(),
        policy_id: "support-bot".into(),
        policy_version: "sha256:1f2e3d4c".into(),
        latency_ms: Some(0.042),
        ..StageRecord::default()
    };
    s.rules.push(RuleRecord {
        id: "pii-in".into(),
        detector: "pii".into(),
        action: "pseudonymize".into(),
        score: 1.0,
        count: 2,
    });
    s.labels.insert("EMAIL".into(), 1);
    s.labels.insert("CREDIT_DEBIT_CARD_NUMBER".into(), 1);
    for (label, start, end) in [("EMAIL", 11, 34), ("CREDIT_DEBIT_CARD_NUMBER", 48, 67)] {
        s.findings.push(FindingRecord {
            rule: "pii-in".into(),
            label: label.into(),
            text: 0,
            start,
            end,
            hash: Some("hmac:0123456789abcdef".into()),
        });
    }
    s.scores.insert("pii".into(), 1.0);
    s
}

fn record(stage: &StageRecord) -> AuditRecord {
    let mut r = AuditRecord::new("req_0123456789abcdef", "chat_completions", 200, Outcome::Ok);
    r.tenant = Some("acme".into());
    r.key_id = Some("key_1".into());
    r.provider = Some("openai".into());
    r.model = Some("gpt-4o-mini".into());
    r.upstream = Some("seoul".into());
    r.region = Some("ap-northeast-2".into());
    r.input = Some(stage.clone());
    r.output = Some(StageRecord {
        action: "allow".into(),
        shadow_action: "allow".into(),
        policy_id: "support-bot".into(),
        policy_version: "sha256:1f2e3d4c".into(),
        ..StageRecord::default()
    });
    r.usage = Some(Usage {
        input_tokens: Some(120),
        output_tokens: Some(80),
        estimated: false,
    });
    r
}

fn spans(tracer: &Tracer, stage: &StageRecord, rec: &AuditRecord, headers: &HeaderMap) {
    let server = server_span(
        "POST",
        "/v1/chat/completions",
        "req_0123456789abcdef",
        headers,
    );
    tracer.guardrail(&server, "input", SystemTime::now(), stage);
    let call = tracer.genai(
        &server,
        &GenAiCall {
            operation: "chat",
            provider: "openai",
            request_model: Some("gpt-4o-mini"),
            upstream: "seoul",
            region: Some("ap-northeast-2"),
            server_address: None,
            stream: false,
        },
    );
    let mut upstream_headers = HeaderMap::new();
    call.inject(&mut upstream_headers);
    call.finish(&GenAiResult {
        response_model: Some("gpt-4o-mini"),
        input_tokens: Some(120),
        output_tokens: Some(80),
        finish_reasons: &["stop"],
        error_type: None,
    });
    if let Some(out) = &rec.output {
        tracer.guardrail(&server, "output", SystemTime::now(), out);
    }
    record_request(&server, rec);
}

fn open(dir: &Path, fsync: FsyncPolicy) -> AuditLog {
    AuditLog::open(AuditLogOptions {
        path: Some(dir.join(format!("audit-{fsync:?}.jsonl"))),
        fsync,
        max_bytes: Some(64 << 20),
        ..AuditLogOptions::default()
    })
    .expect("open audit log")
}

/// Appends `iters` records, timing only the appends; deletes rotated files afterwards.
fn timed_appends(log: &AuditLog, rec: &AuditRecord, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        log.append_blocking(rec.clone()).expect("append");
    }
    let took = start.elapsed();
    if let Some(p) = log.path() {
        for old in rotated_siblings(p) {
            let _ = std::fs::remove_file(old);
        }
    }
    took
}

/// Per-request percentiles of the variants (see the module doc), interleaved in rounds.
fn p50_table() {
    const ROUNDS: usize = 40;
    const PER_ROUND: usize = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let st = stage();
    let rec = record(&st);
    let headers = HeaderMap::new();
    let provider = provider_with_exporter(
        Discard,
        &TelemetryConfig::default(),
        2048,
        Default::default(),
    )
    .expect("provider");
    let tracer = Tracer::from_provider(&provider);
    let subscriber = tracing_subscriber::registry().with(span_layer(&provider));
    let _guard = tracing::subscriber::set_default(subscriber);
    let log = open(dir.path(), FsyncPolicy::IntervalMs(100));
    let names = ["without", "audit", "spans", "spans+audit"];
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(ROUNDS * PER_ROUND); names.len()];
    for _ in 0..ROUNDS {
        for (v, out) in samples.iter_mut().enumerate() {
            for _ in 0..PER_ROUND {
                let t = Instant::now();
                match v {
                    0 => black_box(()),
                    1 => log.append_blocking(rec.clone()).expect("append"),
                    2 => spans(&tracer, &st, &rec, &headers),
                    _ => {
                        spans(&tracer, &st, &rec, &headers);
                        log.append_blocking(rec.clone()).expect("append");
                    }
                }
                out.push(t.elapsed().as_nanos() as u64);
            }
            if let Some(p) = log.path() {
                for old in rotated_siblings(p) {
                    let _ = std::fs::remove_file(old);
                }
            }
        }
    }
    println!(
        "p50 table ({} requests per variant, µs):",
        ROUNDS * PER_ROUND
    );
    println!("| variant | p50 | p90 | p99 | mean |");
    println!("|---|---|---|---|---|");
    for (name, mut xs) in names.iter().zip(samples) {
        xs.sort_unstable();
        let q = |f: f64| xs[((xs.len() as f64 - 1.0) * f) as usize] as f64 / 1000.0;
        let mean = xs.iter().sum::<u64>() as f64 / xs.len() as f64 / 1000.0;
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {mean:.2} |",
            q(0.5),
            q(0.9),
            q(0.99)
        );
    }
    let _ = log.close_blocking();
    let _ = provider.shutdown();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let st = stage();
    let rec = record(&st);
    let headers = HeaderMap::new();

    let mut g = c.benchmark_group("baseline");
    g.bench_function("noop", |b| b.iter(|| black_box(())));
    g.bench_function("build_record", |b| {
        b.iter(|| black_box(record(black_box(&st))))
    });
    g.finish();

    let mut g = c.benchmark_group("audit");
    for (name, fsync) in [
        ("append_fsync_never", FsyncPolicy::Never),
        ("append_fsync_interval_100ms", FsyncPolicy::IntervalMs(100)),
    ] {
        let log = open(dir.path(), fsync);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| timed_appends(&log, &rec, iters))
        });
        let _ = log.close_blocking();
    }
    g.finish();

    let provider = provider_with_exporter(
        Discard,
        &TelemetryConfig::default(),
        2048,
        Default::default(),
    )
    .expect("provider");
    let tracer = Tracer::from_provider(&provider);
    let subscriber = tracing_subscriber::registry().with(span_layer(&provider));
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut g = c.benchmark_group("spans");
    g.bench_function("request_tree", |b| {
        b.iter(|| spans(&tracer, &st, &rec, &headers))
    });
    // Same four spans without attributes: what the span machinery alone costs.
    g.bench_function("bare_tree", |b| {
        b.iter(|| {
            let server = tracing::info_span!(target: "haechi", "http.server");
            for _ in 0..3 {
                let child = tracing::info_span!(target: "haechi", parent: &server, "child");
                drop(child);
            }
        })
    });
    g.finish();

    let log = open(dir.path(), FsyncPolicy::IntervalMs(100));
    let mut g = c.benchmark_group("request");
    g.bench_function("spans_plus_audit", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                spans(&tracer, &st, &rec, &headers);
                log.append_blocking(rec.clone()).expect("append");
            }
            let took = start.elapsed();
            if let Some(p) = log.path() {
                for old in rotated_siblings(p) {
                    let _ = std::fs::remove_file(old);
                }
            }
            took
        })
    });
    g.finish();
    let _ = log.close_blocking();
    let _ = provider.shutdown();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).sample_size(30);
    targets = bench
}

fn main() {
    // `--list` (cargo test's bench discovery) and filtered runs skip the table.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filtered = args.iter().any(|a| !a.starts_with('-'));
    if !args.iter().any(|a| a == "--list") && (!filtered || args.iter().any(|a| a == "p50")) {
        p50_table();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
