//! Streaming output stage throughput: an answer's text through the shipped default
//! policy's output stage, delta by delta, against the same policy on the whole answer
//! (the non-streaming stage, measured in the same run as the baseline).
//!
//! Run: `cargo bench --bench stream`

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use haechi::detect::DetectContext;
use haechi::dialect::sse::{EventSplitter, StreamFormat};
use haechi::engine::{evaluate, restore, EvalOptions, PseudonymMap, Stage, StreamGuard, TextKind};
use haechi::policy::{embedded_default, CompiledPolicy};
use haechi::proxy::stream_guard::GuardedEvents;

#[path = "common/repeat.rs"]
mod repeat;
#[path = "common/stream_answer.rs"]
mod stream_answer;
use repeat::text;
use stream_answer::{deltas, EN, KO};

fn openai_sse(pieces: &[&str]) -> Vec<u8> {
    let mut s = String::new();
    for p in pieces {
        let lit = serde_json::to_string(p).unwrap_or_default();
        s.push_str(&format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{lit}}},\"finish_reason\":null}}]}}\n\n"));
    }
    s.push_str("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

fn guard(policy: &Arc<CompiledPolicy>) -> StreamGuard {
    StreamGuard::new(
        Arc::clone(policy),
        Vec::new(),
        None,
        b"k".to_vec(),
        None,
        PseudonymMap::new(),
    )
}

fn stream(c: &mut Criterion) {
    let policy = embedded_default().default_policy();
    let mut g = c.benchmark_group("output_stage_16kb");
    g.sample_size(20);
    for (lang, seed) in [("en", EN), ("ko", KO)] {
        let answer = text(seed, 16 * 1024);
        g.throughput(Throughput::Bytes(answer.len() as u64));
        g.bench_with_input(BenchmarkId::new("whole_answer", lang), &answer, |b, t| {
            b.iter(|| {
                let mut m = PseudonymMap::new();
                let d = evaluate(
                    &policy,
                    Stage::Output,
                    &[t.as_str()],
                    &DetectContext::default(),
                    &EvalOptions::default(),
                    &mut m,
                );
                let out = d.rewritten[0].as_deref().unwrap_or(t);
                black_box(restore(out, &m))
            })
        });
        for size in [4usize, 32] {
            let pieces = deltas(&answer, size);
            g.bench_with_input(
                BenchmarkId::new(format!("stream_deltas_{size}b"), lang),
                &pieces,
                |b, pieces| {
                    b.iter(|| {
                        let mut sg = guard(&policy);
                        let id = sg.open(TextKind::Text);
                        let mut n = 0;
                        for p in pieces {
                            n += sg.push(id, p).map(|s| s.len()).unwrap_or(0);
                        }
                        n += sg.finish_text(id).map(|s| s.len()).unwrap_or(0);
                        black_box((n, sg.finish()))
                    })
                },
            );
        }
        let sse = openai_sse(&deltas(&answer, 4));
        g.bench_with_input(BenchmarkId::new("sse_openai_4b", lang), &sse, |b, sse| {
            b.iter(|| {
                let mut events = GuardedEvents::new(StreamFormat::OpenAiChat, guard(&policy));
                let mut splitter = EventSplitter::default();
                let mut out = BytesMut::new();
                for read in sse.chunks(1400) {
                    splitter.push(read);
                    while let Some(e) = splitter.next_event() {
                        events.event(e, &mut out);
                    }
                }
                events.end(&mut out);
                black_box((out.len(), events.finish()))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stream);
criterion_main!(benches);
