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

const EN: &str = "Thanks for reaching out. I looked at your order history and the delivery \
was delayed by the carrier, not by our warehouse. You can expect the parcel by Friday; if it \
does not arrive, reply to this message and we will send a replacement at no cost. For billing \
questions write to billing@example.com or call 010-2345-6789 during office hours. ";
const KO: &str = "문의해 주셔서 감사합니다. 주문 내역을 확인해 보니 배송은 창고가 아니라 택배사 \
사정으로 늦어졌습니다. 금요일까지 받으실 수 있으며, 도착하지 않으면 이 메시지에 답장해 주시면 \
무료로 다시 보내 드리겠습니다. 결제 문의는 010-2345-6789 로 연락 주세요. ";

fn text(seed: &str, n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(seed);
    }
    let mut cut = n;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

/// `text` cut into deltas of about `size` bytes (on char boundaries), as a model streams.
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
